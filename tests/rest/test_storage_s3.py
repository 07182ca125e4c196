"""Audio in an S3 bucket of a real S3 API (moto's server mode, started by the test):
what the bucket holds after uploads, renders and deletes; Range; a large file through a
multipart upload; presigned redirects followed by a real GET; the orphan sweep; the
order object-then-row under an injected failure and a SIGKILL between the two, in both
storage modes; bad storage settings refused at start in one line naming the setting."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import threading
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest
from clitools import run_fxhost
from restkit import (
    PG_URL,
    decode,
    encode,
    free_port,
    fresh_postgres,
    kill_tree,
    pg_execute,
    start_server,
    stored_names,
    tone,
)
from s3kit import bucket_of, objects
from waiting import wait_until

SR = 44100
#: boto3's multipart threshold: larger files go up in parts.
MULTIPART_THRESHOLD = 8 * 1024 * 1024
#: Renders to float: the inverted audio comes back exact.
FLOAT = {"subtype": "FLOAT"}


@pytest.fixture(scope="module")
def s3(moto_s3):
    return moto_s3.client()


@pytest.fixture(scope="module")
def server(moto_s3, tmp_path_factory):
    root = tmp_path_factory.mktemp("s3-server")
    srv = start_server(root, moto_s3.env(root))
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    with server.client() as c:
        yield c


def upload(client, name: str, data: bytes) -> dict:
    response = client.post("/api/assets", params={"name": name}, content=data)
    assert response.status_code == 201, response.text
    return response.json()


def wait_render(client, render_id: str) -> dict:
    def finished():
        view = client.get(f"/api/renders/{render_id}").json()
        return view if view["status"] in ("done", "failed") else None

    return wait_until(finished, timeout=120, interval=0.05, what=f"render {render_id} finished")


def scratch_files(server) -> list[str]:
    scratch = server.root / "scratch"
    return sorted(p.name for p in scratch.iterdir()) if scratch.exists() else []


def test_the_bucket_holds_each_upload_and_render_as_received_and_loses_it_on_delete(server, client, s3):
    data = encode(tone(1.0), SR, "WAV", "PCM_16")
    asset = upload(client, "takes/one.wav", data)
    bucket, prefix = bucket_of(server.env)
    stored = s3.get_object(Bucket=bucket, Key=f"{prefix}uploads/{asset['id']}")["Body"].read()
    assert stored == data
    assert objects(s3, server.env)[asset["id"]]["Size"] == asset["size"] == len(data)

    whole = client.get(f"/api/assets/{asset['id']}/audio")
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["content-type"] == "audio/x-wav" or whole.headers["content-type"].startswith(
        "audio/"
    )
    for header, (first, last) in {
        "bytes=100-999": (100, 999),
        "bytes=5000-": (5000, len(data) - 1),
        "bytes=-300": (len(data) - 300, len(data) - 1),
    }.items():
        part = client.get(f"/api/assets/{asset['id']}/audio", headers={"Range": header})
        assert part.status_code == 206, (header, part.text)
        assert part.content == data[first : last + 1]
        assert part.headers["content-range"] == f"bytes {first}-{last}/{len(data)}"
    outside = client.get(f"/api/assets/{asset['id']}/audio", headers={"Range": f"bytes={len(data)}-"})
    assert outside.status_code == 416

    # whole-file work reads a scratch copy, removed after
    assert client.get(f"/api/assets/{asset['id']}/analysis").status_code == 200
    assert client.get(f"/api/assets/{asset['id']}/waveform.png").status_code == 200
    flac = client.get(f"/api/assets/{asset['id']}/audio", params={"format": "flac"})
    audio, rate = decode(flac.content)
    assert rate == SR and np.abs(audio - decode(data)[0]).max() == 0

    done = render_inverted(client, asset["id"])
    result = done["result"]
    rendered = s3.get_object(Bucket=bucket, Key=f"{prefix}renders/{result['id']}")["Body"].read()
    assert hashlib.sha256(rendered).hexdigest() == result["sha256"]
    np.testing.assert_array_equal(decode(rendered)[0], -decode(data)[0])
    assert client.get(f"/api/assets/{result['id']}/audio").content == rendered
    assert scratch_files(server) == []

    assert client.delete(f"/api/assets/{asset['id']}").status_code == 204
    assert asset["id"] not in objects(s3, server.env)
    assert client.get(f"/api/assets/{asset['id']}/audio").status_code == 404


def render_inverted(client, asset_id: str) -> dict:
    """The asset rendered through an invert (exact: its samples negated) as float samples,
    waited for: the render's resource, done."""
    render = client.post(
        "/api/renders",
        json={
            "asset": asset_id,
            "chain": [{"effect": "invert"}],
            "tail": False,
            "output": {"subtype": "FLOAT"},
        },
    )
    done = wait_render(client, render.json()["id"])
    assert done["status"] == "done", done
    return done


def test_a_large_file_goes_up_in_parts_and_comes_back_whole(server, client, s3):
    audio = tone(100.0, SR, 2, seed=3)  # 100 s of 16-bit stereo: 17.6 MB
    data = encode(audio, SR, "WAV", "PCM_16")
    assert len(data) > 2 * MULTIPART_THRESHOLD
    asset = upload(client, "long.wav", data)
    entry = objects(s3, server.env)[asset["id"]]
    assert "-" in entry["ETag"], entry["ETag"]  # a multipart upload's ETag: md5-of-parts "-" count
    down = client.get(f"/api/assets/{asset['id']}/audio")
    assert hashlib.sha256(down.content).hexdigest() == hashlib.sha256(data).hexdigest()
    middle = client.get(f"/api/assets/{asset['id']}/audio", headers={"Range": "bytes=9000000-9000999"})
    assert middle.status_code == 206 and middle.content == data[9_000_000:9_001_000]

    # the render of it: fetched whole to scratch, its 35 MB result uploaded in parts too
    done = render_inverted(client, asset["id"])
    assert "-" in objects(s3, server.env, "renders")[done["result"]["id"]]["ETag"]
    out, _ = decode(client.get(f"/api/assets/{done['result']['id']}/audio").content)
    np.testing.assert_array_equal(out, -decode(data)[0])
    assert scratch_files(server) == []


def test_presigned_downloads_redirect_to_the_store_and_the_url_serves_the_audio(moto_s3, tmp_path):
    env = {**moto_s3.env(tmp_path), "FXHOST_S3_PRESIGN_DOWNLOADS": "true", "FXHOST_S3_PRESIGN_SECONDS": "120"}
    srv = start_server(tmp_path, env)
    try:
        with srv.client() as client:
            data = encode(tone(0.5), SR, "FLAC")
            asset = upload(client, "kit/snare.flac", data)
            answer = client.get(f"/api/assets/{asset['id']}/audio")
            assert answer.status_code == 307, answer.text
            url = answer.headers["location"]
            assert url.startswith(moto_s3.endpoint)
            query = parse_qs(urlsplit(url).query)
            assert query["X-Amz-Expires"] == ["120"]
            fetched = httpx.get(url)  # a real GET of the presigned URL, no credentials
            assert fetched.status_code == 200 and fetched.content == data
            assert fetched.headers["content-type"] == "audio/flac"
            assert "snare.flac" in fetched.headers["content-disposition"]
            part = httpx.get(url, headers={"Range": "bytes=10-99"})
            assert part.status_code == 206 and part.content == data[10:100]
            # transcoded audio is made by fxhost: no redirect
            wav = client.get(f"/api/assets/{asset['id']}/audio", params={"format": "wav"})
            assert wav.status_code == 200 and wav.headers["content-type"].startswith("audio/")
    finally:
        srv.stop()


def test_orphan_objects_are_swept_once_older_than_the_grace_and_young_ones_kept(moto_s3, s3, tmp_path):
    grace = 15
    env = {**moto_s3.env(tmp_path), "FXHOST_S3_SWEEP_GRACE_SECONDS": str(grace)}
    bucket, prefix = bucket_of(env)
    srv = start_server(tmp_path, env)
    data = encode(tone(0.3), SR, "WAV")
    with srv.client() as client:
        kept = upload(client, "kept.wav", data)
    # What a crash between object and row leaves: objects with no row, an open multipart upload
    old = "0" * 31 + "1"
    s3.put_object(Bucket=bucket, Key=f"{prefix}uploads/{old}", Body=data)
    s3.put_object(Bucket=bucket, Key=f"{prefix}renders/{old}", Body=data)
    left_open = s3.create_multipart_upload(Bucket=bucket, Key=f"{prefix}renders/{'0' * 31 + '2'}")
    # a dead process's scratch file (its pid is gone) and a live one's
    dead = tmp_path / "scratch" / f".part-{socket.gethostname()}~999999999~00"
    dead.write_bytes(b"x")
    alive = tmp_path / "scratch" / f".part-{socket.gethostname()}~{srv.proc.pid}~00"
    alive.write_bytes(b"x")
    srv.stop()
    time.sleep(grace + 1)  # an age is what the sweep goes by: wait it out
    young = "0" * 31 + "3"  # an upload "in flight": object in, row not yet
    s3.put_object(Bucket=bucket, Key=f"{prefix}uploads/{young}", Body=data)
    srv = start_server(tmp_path, env, fresh=False)  # the start-up sweep
    try:
        assert set(objects(s3, env)) == {kept["id"], young}
        assert set(objects(s3, env, "renders")) == set()
        assert not any(
            u["UploadId"] == left_open["UploadId"]
            for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        )
        assert not dead.exists()
        with srv.client() as client:
            assert client.get(f"/api/assets/{kept['id']}/audio").content == data
            assert [a["id"] for a in client.get("/api/assets").json()["items"]] == [kept["id"]]
    finally:
        srv.stop()
        alive.unlink(missing_ok=True)


needs_postgres = pytest.mark.skipif(
    not PG_URL, reason="FXHOST_TEST_DATABASE_URL is not set (.ci/run sets it to the local PostgreSQL)"
)


def _storage_env(mode: str, moto_s3, root) -> dict[str, str]:
    return moto_s3.env(root) if mode == "s3" else {}


@needs_postgres
@pytest.mark.parametrize("mode", ["local", "s3"])
def test_a_failed_row_insert_leaves_no_object(moto_s3, tmp_path, mode):
    """The object is stored before the row; when the insert fails (a trigger makes it
    fail, in the real database) the writer removes the object again."""
    database = fresh_postgres()
    srv = start_server(tmp_path, {"FXHOST_DATABASE_URL": database, **_storage_env(mode, moto_s3, tmp_path)})
    try:
        with srv.client() as client:
            data = encode(tone(0.3), SR, "WAV")
            first = upload(client, "first.wav", data)
            before = stored_names(srv)
            pg_execute(
                database,
                "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'injected'; END $$ "
                "LANGUAGE plpgsql; CREATE TRIGGER refuse BEFORE INSERT ON assets "
                "FOR EACH ROW EXECUTE FUNCTION refuse();",
            )
            failed = client.post("/api/assets", params={"name": "second.wav"}, content=data)
            assert failed.status_code == 500, failed.text
            # Answered and logged once, by fxhost; not re-raised to uvicorn, which would log
            # it again and drop the connection (a client then saw a reset, not the 500).
            port = srv.base.rsplit(":", 1)[1]
            log = (srv.root / f"server-{port}.log").read_text()
            assert log.count("unhandled error on POST /api/assets") == 1, log
            assert "Exception in ASGI application" not in log, log
            assert stored_names(srv) == before
            assert [a["id"] for a in client.get("/api/assets").json()["items"]] == [first["id"]]
            pg_execute(database, "DROP TRIGGER refuse ON assets")
            upload(client, "second.wav", data)
    finally:
        srv.stop()


@needs_postgres
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["local", "s3"])
def test_sigkill_between_object_and_row_leaves_an_orphan_the_sweep_removes(moto_s3, tmp_path, mode):
    """SIGKILL while the row insert waits (a trigger sleeps in it): the object is stored
    and has no row; the next start sweeps it, the acknowledged upload is still whole."""
    database = fresh_postgres()
    env = {"FXHOST_DATABASE_URL": database, **_storage_env(mode, moto_s3, tmp_path)}
    srv = start_server(tmp_path, env)
    data = encode(tone(0.5), SR, "WAV")
    with srv.client() as client:
        acknowledged = upload(client, "acknowledged.wav", data)
    before = stored_names(srv)
    pg_execute(
        database,
        "CREATE FUNCTION stall() RETURNS trigger AS $$ BEGIN PERFORM pg_sleep(600); RETURN NEW; END $$ "
        "LANGUAGE plpgsql; CREATE TRIGGER stall BEFORE INSERT ON assets "
        "FOR EACH ROW EXECUTE FUNCTION stall();",
    )

    def post() -> None:
        with contextlib.suppress(httpx.HTTPError):  # cut off by the kill
            httpx.post(f"{srv.base}/api/assets", params={"name": "cut.wav"}, content=data, timeout=60)

    cut_off = threading.Thread(target=post, daemon=True)
    try:
        cut_off.start()
        # the object is stored (under its id, not a temporary name) and the insert waits
        orphan = wait_until(
            lambda: {n for n in stored_names(srv) - before if not n.startswith(".part")},
            what="the object stored before its row",
        )
        kill_tree(srv)
    finally:
        pg_execute(
            database,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        pg_execute(database, "DROP TRIGGER stall ON assets")
    assert orphan <= stored_names(srv)  # the crash left it behind
    # the sweep goes by claims (local) or by age (S3): a grace of 1 s, long past by now
    srv = start_server(tmp_path, {**env, "FXHOST_S3_SWEEP_GRACE_SECONDS": "1"}, fresh=False)
    try:
        assert not orphan & stored_names(srv)
        with srv.client() as client:
            assert [a["id"] for a in client.get("/api/assets").json()["items"]] == [acknowledged["id"]]
            assert client.get(f"/api/assets/{acknowledged['id']}/audio").content == data
    finally:
        srv.stop()


def _serve_fails(tmp_path, env: dict[str, str]) -> str:
    """``fxhost serve`` with ``env``: it must stop at once with one line; returns it."""
    base = {
        "FXHOST_PORT": str(free_port()),
        "FXHOST_DATABASE_URL": f"sqlite://{tmp_path / 'fxhost.db'}",
        "FXHOST_LOG_LEVEL": "warning",
        "FXHOST_SCRATCH_DIR": str(tmp_path / "scratch"),
        # no credentials, config or instance role found by boto3 but those given here
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    result = run_fxhost("serve", cwd=tmp_path, env={**base, **env}, timeout=120)
    assert result.returncode != 0, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_bad_storage_settings_stop_the_server_in_one_line_naming_the_setting(moto_s3, tmp_path):
    s3_env = moto_s3.env(tmp_path)
    cases = {
        "FXHOST_STORAGE_URL: ": {"FXHOST_STORAGE_URL": "ftp://host/x"},
        "FXHOST_STORAGE_URL: 's3://': an S3 URL is s3://bucket": {"FXHOST_STORAGE_URL": "s3://"},
        "FXHOST_STORAGE_URL: 'file://elsewhere/x': a file URL is": {
            "FXHOST_STORAGE_URL": "file://elsewhere/x"
        },
        "FXHOST_S3_ENDPOINT_URL: ": {**s3_env, "FXHOST_S3_ENDPOINT_URL": "localhost:9000"},
        "FXHOST_S3_ENDPOINT_URL: cannot reach the S3 endpoint": {
            **s3_env,
            "FXHOST_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        },
        "FXHOST_STORAGE_URL: the bucket 'no-such-bucket' does not exist at": {
            **s3_env,
            "FXHOST_STORAGE_URL": "s3://no-such-bucket/fx",
        },
        "FXHOST_S3_ACCESS_KEY_ID: no S3 credentials": {
            **s3_env,
            "FXHOST_S3_ACCESS_KEY_ID": "",
            "FXHOST_S3_SECRET_ACCESS_KEY": "",
            "AWS_ACCESS_KEY_ID": "",
            "AWS_SECRET_ACCESS_KEY": "",
        },
    }
    for expected, env in cases.items():
        line = _serve_fails(tmp_path, env)
        assert line.startswith(f"fxhost: {expected}"), (env, line)
    # the missing bucket is named, and left alone: fxhost does not create it
    assert "no-such-bucket" not in [b["Name"] for b in moto_s3.client().list_buckets()["Buckets"]]


def test_a_store_that_refuses_a_put_answers_503_and_keeps_nothing(moto_s3, s3, tmp_path):
    env = moto_s3.env(tmp_path)
    bucket, _ = bucket_of(env)
    srv = start_server(tmp_path, env)
    try:
        with srv.client() as client:
            data = encode(tone(0.2), SR, "WAV")
            health = client.get("/api/audio/health")
            assert health.status_code == 200 and health.json()["storage"]["ok"], health.text
            assert bucket in health.json()["storage"]["detail"] and health.json()["storage"]["free_bytes"] > 0
            s3.delete_bucket(Bucket=bucket)  # gone while the server runs
            # The readiness check says so, naming the bucket.
            health = client.get("/api/audio/health")
            assert health.status_code == 503 and health.json()["status"] == "degraded", health.text
            storage = health.json()["storage"]
            assert not storage["ok"] and "does not exist" in storage["detail"] and bucket in storage["detail"]
            refused = client.post("/api/assets", params={"name": "x.wav"}, content=data)
            assert refused.status_code == 503, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            assert "storage" in refused.json()["detail"] and "http" not in refused.json()["detail"]
            assert refused.headers["retry-after"]
            assert client.get("/api/assets").json()["items"] == []
            assert scratch_files(srv) == []
            s3.create_bucket(Bucket=bucket)
            upload(client, "x.wav", data)
    finally:
        srv.stop()
