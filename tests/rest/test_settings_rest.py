"""Settings reach the server: CORS and GZip middleware, a bad setting refused in one
line, and orphans from an interrupted delete swept at start-up."""

import os
import subprocess
import time

from procenv import child_env
from restkit import FXHOST, encode, start_server, tone


def test_cors_and_gzip_follow_settings(tmp_path):
    server = start_server(tmp_path, {"FXHOST_CORS_ORIGINS": "http://app.example, http://other.example"})
    try:
        with server.client() as client:
            preflight = client.options(
                "/api/effects",
                headers={"Origin": "http://app.example", "Access-Control-Request-Method": "GET"},
            )
            assert preflight.headers["access-control-allow-origin"] == "http://app.example"
            refused = client.get("/api/effects", headers={"Origin": "http://evil.example"})
            assert "access-control-allow-origin" not in refused.headers
            zipped = client.get("/api/effects", headers={"Accept-Encoding": "gzip"})
            assert zipped.headers["content-encoding"] == "gzip" and zipped.json()
            asset = client.post(
                "/api/assets", params={"name": "a.wav"}, content=encode(tone(0.2), 44100, "WAV")
            )
            audio = client.get(f"/api/assets/{asset.json()['id']}/audio", headers={"Accept-Encoding": "gzip"})
            assert "content-encoding" not in audio.headers  # audio is never gzipped (Range must work)
    finally:
        server.stop()


def test_bad_setting_is_one_line(tmp_path):
    env = child_env({"FXHOST_PORT": "not-a-port"})
    result = subprocess.run(
        [FXHOST, "serve"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "fxhost: FXHOST_PORT: Expected int, got str"


def test_orphans_are_swept_at_start(tmp_path):
    server = start_server(tmp_path, {})
    with server.client() as client:
        kept = client.post(
            "/api/assets", params={"name": "kept.wav"}, content=encode(tone(0.1), 44100, "WAV")
        ).json()
    server.stop()
    uploads = tmp_path / "uploads"
    # a delete cut off after the row went, before the file did; and a stale temporary file
    orphan, stale = uploads / ("f" * 32), uploads / ".part-somewhere~1~abcd"
    orphan.write_bytes(b"x")
    stale.write_bytes(b"y")
    old = time.time() - 3600
    for path in (orphan, stale):
        os.utime(path, (old, old))
    server = server.restart()
    try:
        assert sorted(p.name for p in uploads.iterdir()) == [kept["id"]]
        with server.client() as client:
            assert client.get(f"/api/assets/{kept['id']}/audio").status_code == 200
    finally:
        server.stop()
