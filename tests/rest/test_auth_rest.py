"""API keys and tenants, against a real server: every /api and /ws route needs a key,
/health does not, keys made with ``fxhost keys`` work and are revoked, and one key never
sees another's assets, chains, renders or streams -- not by id, not in listings, not
through cursors, server-sent events or stream outputs."""

from __future__ import annotations

import json
import re
import time

import httpx
import numpy as np
import pytest
from clitools import run_fxhost
from restkit import BACKENDS, encode, fresh_postgres, start_server, tone
from waiting import wait_until
from websockets.exceptions import ConnectionClosed
from wskit import Session, interleave, open_ws

STATIC_KEY = "static-key-for-tests-0123456789"
RATE = 44100


def cli_env(server) -> dict[str, str]:
    url = server.env.get("FXHOST_DATABASE_URL") or f"sqlite://{server.root / 'fxhost.db'}"
    return {"FXHOST_DATABASE_URL": url, "FXHOST_LOG_LEVEL": "warning"}


def make_key(server, name: str) -> str:
    done = run_fxhost("keys", "create", name, cwd=server.root, env=cli_env(server))
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    assert key.startswith("fxk_") and key not in done.stderr
    return key


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tmp_path_factory):
    env = {"FXHOST_API_KEYS": STATIC_KEY}
    if request.param == "postgres":
        env["FXHOST_DATABASE_URL"] = fresh_postgres()
    srv = start_server(tmp_path_factory.mktemp(f"auth-{request.param}"), env)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def keys(server):
    """Two tenants: the static key (A) and a key made with ``fxhost keys create`` (B)."""
    return {"A": STATIC_KEY, "B": make_key(server, "tenant b")}


def as_(server, key: str) -> httpx.Client:
    return server.client(headers={"Authorization": f"Bearer {key}"})


def upload(client: httpx.Client, name: str, seconds: float = 0.5) -> dict:
    r = client.post("/api/assets", params={"name": name}, content=encode(tone(seconds, RATE), RATE, "WAV"))
    assert r.status_code == 201, r.text
    return r.json()


def assert_problem(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")
    return r.json()


# -- the key itself ---------------------------------------------------------------------


def concrete(path: str) -> str:
    """An OpenAPI path with its parameters filled in ({index} must be a number)."""
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: "0" if m[1] == "index" else "x" * 32, path)


def test_every_api_route_needs_a_key_and_health_does_not(server):
    with server.client() as anyone:
        assert anyone.get("/health").status_code == 200
        spec = anyone.get("/openapi.json")
        assert spec.status_code == 200
        assert anyone.get("/docs").status_code == 200
        operations = [
            (method, path)
            for path, item in spec.json()["paths"].items()
            for method in item
            if path.startswith("/api")
        ]
        assert len(operations) >= 20
        for method, path in operations:
            r = anyone.request(method.upper(), concrete(path), content=b"{}")
            problem = assert_problem(r, 401)
            assert "API key" in problem["detail"], (method, path)
            assert r.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    ["Bearer nope", "Bearer", "Basic dXNlcjpwYXNz", f"Token {STATIC_KEY}", f"Bearer {STATIC_KEY}x"],
)
def test_a_wrong_key_is_refused(server, header):
    with server.client(headers={"Authorization": header}) as client:
        problem = assert_problem(client.get("/api/assets"), 401)
        assert "not valid" in problem["detail"]


def test_openapi_declares_the_bearer_scheme(server):
    with server.client() as anyone:
        spec = anyone.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert spec["security"] == [{"apiKey": []}]
    assert all(
        "401" in op["responses"]
        for path, item in spec["paths"].items()
        if path.startswith("/api")
        for op in item.values()
    )
    assert spec["paths"]["/health"]["get"]["security"] == []
    assert "401" not in spec["paths"]["/health"]["get"]["responses"]


def test_a_key_made_while_running_works_and_revoking_it_locks_it_out(server, keys):
    key = make_key(server, "short-lived")
    with as_(server, key) as client:
        assert client.get("/api/assets").status_code == 200
        listed = run_fxhost("keys", "list", "--json", cwd=server.root, env=cli_env(server))
        infos = {info["name"]: info for info in json.loads(listed.stdout)}
        assert infos["short-lived"]["revoked"] is None
        assert key not in listed.stdout and key[:10] == infos["short-lived"]["prefix"]
        done = run_fxhost("keys", "revoke", "short-lived", cwd=server.root, env=cli_env(server))
        assert done.returncode == 0, done.stderr
        assert_problem(client.get("/api/assets"), 401)
    with as_(server, keys["B"]) as other:  # revoking one key leaves the others alone
        assert other.get("/api/assets").status_code == 200


def test_keys_cli_refuses_bad_input(server):
    env = cli_env(server)
    for args, word in [(("keys", "create", ""), "NAME"), (("keys", "revoke", "no-such-key"), "no key")]:
        done = run_fxhost(*args, cwd=server.root, env=env)
        assert done.returncode != 0 and word in done.stderr and "Traceback" not in done.stderr


# -- WebSockets -------------------------------------------------------------------------


START = {"type": "start", "chain": "hall", "sample_rate": RATE, "channels": 2}


def closed_with(ws) -> tuple[dict, int]:
    error = json.loads(ws.recv(timeout=10))
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    return error, closed.value.rcvd.code


def test_websocket_with_the_header(server, keys):
    session = Session(server.base, headers={"Authorization": f"Bearer {keys['B']}"}, **START)
    assert session.ready["type"] == "ready"
    out = session.process(tone(0.05, RATE))
    assert out.shape == (2, int(0.05 * RATE)) and np.isfinite(out).all()
    session.close()


def test_websocket_with_a_token_in_the_first_message(server, keys):
    ws = open_ws(server.base, "/ws/process")
    ws.send(json.dumps({"type": "auth", "token": keys["A"]}))
    ws.send(json.dumps(START))
    assert json.loads(ws.recv(timeout=10))["type"] == "ready"
    ws.send(interleave(tone(0.02, RATE)))
    assert isinstance(ws.recv(timeout=10), bytes)
    ws.close()


@pytest.mark.parametrize(
    ("headers", "first"),
    [
        (None, START),  # no key at all: the start message is not an auth message
        (None, {"type": "auth", "token": "wrong"}),
        (None, {"type": "auth"}),
        ({"Authorization": "Bearer wrong"}, None),  # refused at once, before any message
    ],
    ids=["no-key", "wrong-token", "token-missing", "wrong-header"],
)
def test_websocket_without_a_valid_key_is_closed_1008(server, headers, first):
    ws = open_ws(server.base, "/ws/process", headers)
    if first is not None:
        ws.send(json.dumps(first))
    error, code = closed_with(ws)
    assert error["type"] == "error" and error["code"] == "unauthorized"
    assert code == 1008
    with server.client() as anyone:
        assert anyone.get("/health").status_code == 200


def test_websocket_sending_audio_before_the_key_is_closed(server):
    ws = open_ws(server.base, "/ws/process")
    ws.send(interleave(tone(0.01, RATE)))
    error, code = closed_with(ws)
    assert (error["code"], code) == ("unauthorized", 1008)


# -- tenants ----------------------------------------------------------------------------


def test_assets_belong_to_their_key(server, keys):
    with as_(server, keys["A"]) as a, as_(server, keys["B"]) as b:
        mine = upload(a, "iso-a-secret.wav")
        upload(a, "iso-a-second.wav")
        theirs = upload(b, "iso-b-own.wav")
        for path in ("", "/audio", "/audio?format=flac", "/analysis", "/waveform.png", "/spectrogram.png"):
            assert_problem(b.get(f"/api/assets/{mine['id']}{path}"), 404)
        assert_problem(b.delete(f"/api/assets/{mine['id']}"), 404)
        assert a.get(f"/api/assets/{mine['id']}").status_code == 200  # untouched
        # Listings and prefix searches show only the caller's own.
        names_b = [item["name"] for item in b.get("/api/assets", params={"limit": 1000}).json()["items"]]
        assert "iso-b-own.wav" in names_b and not any(n.startswith("iso-a") for n in names_b)
        assert b.get("/api/assets", params={"prefix": "iso-a"}).json()["items"] == []
        # A's cursor, replayed by B, pages only through B's own assets.
        page = a.get("/api/assets", params={"prefix": "iso-a", "limit": 1}).json()
        assert page["next_cursor"]
        replay = b.get("/api/assets", params={"cursor": page["next_cursor"], "limit": 1000}).json()
        assert all(not item["name"].startswith("iso-a") for item in replay["items"])
        # Statistics count the caller's own.
        stats_b = b.get("/api/audio/statistics").json()
        assert stats_b["assets"]["count"] == len(names_b)
        assert a.get(f"/api/assets/{theirs['id']}").status_code == 404


def test_chains_belong_to_their_key(server, keys):
    steps_a = [{"effect": "gain", "params": {"gain_db": -6.0}}]
    steps_b = [{"effect": "gain", "params": {"gain_db": 3.0}}]
    with as_(server, keys["A"]) as a, as_(server, keys["B"]) as b:
        assert a.post("/api/chains", json={"name": "mine", "steps": steps_a}).status_code == 201
        assert_problem(b.get("/api/chains/mine"), 404)
        assert "mine" not in [c["name"] for c in b.get("/api/chains").json()]
        assert "hall" in [c["name"] for c in b.get("/api/chains").json()]  # plugins.toml: everyone's
        assert_problem(b.delete("/api/chains/mine"), 404)
        # The same name is free for another key, and the two never mix.
        assert b.post("/api/chains", json={"name": "mine", "steps": steps_b}).status_code == 201
        assert a.get("/api/chains/mine").json()["steps"][0]["params"]["gain_db"] == -6.0
        assert b.get("/api/chains/mine").json()["steps"][0]["params"]["gain_db"] == 3.0
        body = encode(np.full((1, 4410), 0.25, np.float32), RATE, "WAV", "FLOAT")
        for client, gain_db in ((a, -6.0), (b, 3.0)):
            r = client.post("/api/process", params={"chain": "mine", "tail": "false"}, content=body)
            assert r.status_code == 200, r.text
            out = np.frombuffer(r.content[-400:], "<f4")
            assert np.allclose(out, 0.25 * 10 ** (gain_db / 20), atol=1e-4)
        assert b.delete("/api/chains/mine").status_code == 204
        assert a.get("/api/chains/mine").status_code == 200


def test_asset_parameters_resolve_within_the_key(server, keys):
    with as_(server, keys["A"]) as a, as_(server, keys["B"]) as b:
        ir = upload(a, "iso-room-ir.wav", 0.1)
        body = encode(tone(0.2, RATE), RATE, "WAV")
        source_b = upload(b, "iso-dry-b.wav")
        for ref in (ir["id"], "iso-room-ir.wav"):
            query = {"effect": "convolution", "impulse_response": ref}
            problem = assert_problem(b.post("/api/process", params=query, content=body), 422)
            assert problem["errors"][0]["path"].endswith("impulse_response"), problem
            steps = [{"effect": "convolution", "params": {"impulse_response": ref}}]
            render = {"asset": source_b["id"], "chain": steps}
            problem = assert_problem(b.post("/api/renders", json=render), 422)
            assert problem["errors"][0]["path"] == "chain[0].params.impulse_response", problem
            # A saved chain naming it fails when B uses it, not silently with A's audio.
            assert b.put("/api/chains/borrowed", json={"steps": steps}).status_code in (200, 201)
            problem = assert_problem(b.post("/api/process", params={"chain": "borrowed"}, content=body), 422)
            assert "impulse_response" in problem["errors"][0]["path"], problem
        query = {"effect": "convolution", "impulse_response": "iso-room-ir.wav", "tail": "false"}
        assert a.post("/api/process", params=query, content=body).status_code == 200


def test_renders_belong_to_their_key(server, keys):
    with as_(server, keys["A"]) as a, as_(server, keys["B"]) as b:
        mine = upload(a, "iso-render-src.wav")
        problem = assert_problem(b.post("/api/renders", json={"asset": mine["id"], "chain": "hall"}), 422)
        assert problem["errors"][0]["path"] == "asset"
        r = a.post("/api/renders", json={"asset": mine["id"], "chain": "hall", "tail": False})
        assert r.status_code == 202, r.text
        render_id = r.json()["id"]
        assert_problem(b.get(f"/api/renders/{render_id}"), 404)
        assert_problem(b.get(f"/api/renders/{render_id}/events"), 404)
        with a.stream("GET", f"/api/renders/{render_id}/events") as events:
            final = [line for line in events.iter_lines() if line.startswith("data:")][-1]
        result = json.loads(final.removeprefix("data:"))
        assert result["status"] == "done", result
        assert_problem(b.get(f"/api/assets/{result['result']['id']}"), 404)
        assert a.get(f"/api/assets/{result['result']['id']}/audio").status_code == 200
        assert b.get("/api/audio/statistics").json()["renders"]["done"] == 0


def test_streams_belong_to_their_key(server, keys):
    with as_(server, keys["A"]) as a, as_(server, keys["B"]) as b:
        r = a.post("/api/streams", json={"chain": "hall", "sample_rate": RATE, "channels": 2})
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        pcm = interleave(tone(0.05, RATE))
        for method, path, body in [
            ("GET", f"/api/streams/{sid}", None),
            ("GET", f"/api/streams/{sid}/buffers", None),
            ("GET", f"/api/streams/{sid}/output", None),
            ("POST", f"/api/streams/{sid}/input", pcm),
            ("PATCH", f"/api/streams/{sid}/steps/0", b'{"room_size": 0.1}'),
            ("DELETE", f"/api/streams/{sid}", None),
        ]:
            assert_problem(b.request(method, path, content=body), 404)
        assert sid not in [s["id"] for s in b.get("/api/streams").json()]
        assert sid not in [s["id"] for s in b.get("/api/audio/buffers").json()]
        for path in (f"/ws/streams/{sid}/output", f"/ws/streams/{sid}/input"):
            ws = open_ws(server.base, path, {"Authorization": f"Bearer {keys['B']}"})
            error, code = closed_with(ws)  # at once, before anything is sent
            assert (error["code"], code) == ("unknown_stream", 4404)
        # The owner's stream is intact and works.
        consumer = open_ws(server.base, f"/ws/streams/{sid}/output", {"Authorization": f"Bearer {keys['A']}"})
        assert a.post(f"/api/streams/{sid}/input", content=pcm).status_code == 200
        assert isinstance(consumer.recv(timeout=10), bytes)
        consumer.close()
        assert a.delete(f"/api/streams/{sid}").status_code == 204


# -- running open -----------------------------------------------------------------------


def test_open_server_says_so_and_a_first_key_closes_it(tmp_path):
    server = start_server(tmp_path / "open", {})
    try:
        log = next(tmp_path.glob("open/server-*.log"))
        assert "OPEN to anyone" in log.read_text()
        with server.client() as anyone:
            # The document says what this server does: no keys, no security requirement.
            assert "security" not in anyone.get("/openapi.json").json()
            asset = upload(anyone, "before-keys.wav")
            key = make_key(server, "first")
            # Enforced within seconds (the "any keys?" memory expires; nothing signals it).
            wait_until(lambda: anyone.get("/api/assets").status_code != 200, what="a new key enforced")
            assert_problem(anyone.get("/api/assets"), 401)
            assert anyone.get("/health").status_code == 200
            assert anyone.get("/openapi.json").json()["security"] == [{"apiKey": []}]
        with as_(server, key) as keyed:  # what was made open is not the key's
            assert keyed.get(f"/api/assets/{asset['id']}").status_code == 404
        # Revoking the last key locks the server, it does not open it again.
        assert run_fxhost("keys", "revoke", "first", cwd=server.root, env=cli_env(server)).returncode == 0
        # Not synchronisation but the behaviour under test: once the "any keys?" memory
        # (KEYS_EXIST_TTL_SECONDS) has expired, the server must still be locked.
        time.sleep(2.5)
        with server.client() as anyone, as_(server, key) as revoked:
            assert_problem(anyone.get("/api/assets"), 401)
            assert_problem(revoked.get("/api/assets"), 401)
    finally:
        server.stop()
