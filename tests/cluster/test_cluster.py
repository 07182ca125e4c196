"""Streams across processes: every worker of ``fxhost serve --workers 2``, and every node
(another ``fxhost serve`` on the same PostgreSQL database, here on another port), serves
every stream, forwarding to the process that owns it; an owner that dies leaves its
streams lost, with their clients told; the internal listener refuses what the cluster
did not sign; a node that stops cleanly leaves the registry."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time

import httpx
import numpy as np
import pedalboard
import pytest
from restkit import PG_URL, Server, fresh_postgres, kill_tree, start_server
from restkit import pg_query as query
from waiting import wait_until
from websockets.exceptions import ConnectionClosed, InvalidStatus
from wskit import deinterleave, interleave, open_ws

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not PG_URL, reason="FXHOST_TEST_DATABASE_URL is not set (.ci/run sets it to the local PostgreSQL)"
    ),
]

SR = 48000
HALL = {"room_size": 0.9, "damping": 0.6, "wet_level": 0.35, "dry_level": 0.6, "width": 1.0}
LOST = 4410


def noise(seconds: float, channels: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.3 * rng.standard_normal((channels, int(seconds * SR)))).astype(np.float32)


def create(server: Server, headers: dict[str, str] | None = None, **body) -> dict:
    response = httpx.post(
        f"{server.base}/api/streams",
        json={"chain": "hall", "sample_rate": SR, **body},
        headers=headers,
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()


def consumers(server: Server, stream: dict) -> int:
    response = httpx.get(f"{server.base}/api/streams/{stream['id']}", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["consumers"]


def collect(ws, frames: int, channels: int = 2) -> np.ndarray:
    got, total = [], 0
    while total < frames:
        message = ws.recv(timeout=30)
        assert isinstance(message, bytes), message
        block = deinterleave(message, channels)
        got.append(block)
        total += block.shape[1]
    return np.concatenate(got, axis=1)[:, :frames]


def closed_with(ws) -> tuple[int, dict]:
    """Read until the server closes: the close code and the last JSON message before it."""
    last: dict = {}
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            message = ws.recv(timeout=30)
            if isinstance(message, str):
                last = json.loads(message)
    return closed.value.rcvd.code if closed.value.rcvd else 1006, last


def two_nodes(tmp_path, **env: str) -> tuple[str, Server, Server]:
    database = fresh_postgres()
    common = {"FXHOST_DATABASE_URL": database, **env}
    # One after the other: the second finds the schema made by the first.
    return database, start_server(tmp_path / "a", common), start_server(tmp_path / "b", common)


def nodes_of(database: str) -> dict[str, str]:
    return {row["id"]: row["address"] for row in query(database, "SELECT id, address FROM cluster_nodes")}


def owner_of(database: str, server: Server) -> str:
    """The registry's id of a one-worker server (its process is the worker)."""
    (node,) = [n for n in nodes_of(database) if n.rpartition(":")[2] == str(server.proc.pid)]
    return node


def test_every_worker_serves_every_stream(tmp_path):
    database = fresh_postgres()
    server = start_server(tmp_path, {"FXHOST_DATABASE_URL": database, "FXHOST_WORKERS": "2"})
    try:
        wait_until(lambda: len(nodes_of(database)) == 2, what="both workers registered")
        # Each create runs on the worker that takes the connection: go on until both
        # workers own one, which proves that fresh connections land on both.
        streams = []

        def owners() -> set[str]:
            streams.append(create(server))
            return set(r["node"] for r in query(database, "SELECT node FROM cluster_streams"))

        wait_until(lambda: len(owners()) == 2, what="streams owned by both workers")
        listed = httpx.get(f"{server.base}/api/streams", timeout=30).json()
        assert {s["id"] for s in listed} == {s["id"] for s in streams}
        rows = query(database, "SELECT id, node FROM cluster_streams")
        by_owner = {}
        for row in rows:
            by_owner.setdefault(row["node"], row["id"])
        block = interleave(noise(0.01))
        for stream_id in by_owner.values():  # one stream of each worker
            base = f"{server.base}/api/streams/{stream_id}"
            for _ in range(25):  # a fresh connection each: the kernel picks the worker
                assert httpx.get(base, timeout=30).status_code == 200
                patched = httpx.patch(f"{base}/steps/0", json={"room_size": 0.5}, timeout=30)
                assert patched.status_code == 200, patched.text
                written = httpx.post(f"{base}/input", content=block, timeout=30)
                assert written.status_code == 200, written.text
                output = httpx.get(f"{base}/output", timeout=30)
                assert output.status_code == 200 and int(output.headers["x-next-cursor"]) > 0
                assert httpx.get(f"{base}/buffers", timeout=30).status_code == 200
                producer = open_ws(server.base, f"/ws/streams/{stream_id}/input")
                producer.send(block)
                producer.close()
                assert producer.close_code == 1000
            outs = [open_ws(server.base, f"/ws/streams/{stream_id}/output") for _ in range(25)]
            wait_until(lambda stream_id=stream_id: consumers(server, {"id": stream_id}) == 25)
            httpx.post(f"{base}/input", content=block, timeout=30).raise_for_status()
            for ws in outs:
                assert collect(ws, 480).shape == (2, 480)
                ws.close()
            wait_until(
                lambda base=base: (
                    httpx.get(f"{base}/buffers", timeout=30).json()["input"]["frames_written"] == 51 * 480
                ),
                what="every block written",
            )
        for stream in streams:
            assert httpx.delete(f"{server.base}/api/streams/{stream['id']}", timeout=30).status_code == 204
        assert httpx.get(f"{server.base}/api/streams", timeout=30).json() == []
        assert query(database, "SELECT id FROM cluster_streams") == []
    finally:
        server.stop()


def test_produce_on_one_node_consume_on_both(tmp_path):
    _, a, b = two_nodes(tmp_path)
    try:
        stream = create(a)
        sid = stream["id"]
        # Consumers first, on both nodes: they get every frame from the first one.
        on_a = open_ws(a.base, f"/ws/streams/{sid}/output")
        on_b = open_ws(b.base, f"/ws/streams/{sid}/output")
        wait_until(lambda: consumers(b, stream) == 2, what="both consumers at the owner")
        patched = httpx.patch(f"{b.base}/api/streams/{sid}/steps/0", json={"room_size": 0.5}, timeout=30)
        assert patched.status_code == 200 and patched.json()["params"]["room_size"] == 0.5
        assert [s["id"] for s in httpx.get(f"{b.base}/api/streams", timeout=30).json()] == [sid]
        x = noise(1.0)
        producer = open_ws(b.base, f"/ws/streams/{sid}/input")
        for i in range(0, x.shape[1], 480):
            producer.send(interleave(x[:, i : i + 480]))
        expected = pedalboard.Reverb(**{**HALL, "room_size": 0.5}).process(x, SR)
        np.testing.assert_allclose(collect(on_a, x.shape[1]), expected, atol=1e-5)
        np.testing.assert_allclose(collect(on_b, x.shape[1]), expected, atol=1e-5)
        # A late consumer on B resumes from a frame index: the query reaches the owner.
        late = open_ws(b.base, f"/ws/streams/{sid}/output?from=0")
        assert json.loads(late.recv(timeout=30)) == {"type": "position", "frame": 0}
        np.testing.assert_allclose(collect(late, x.shape[1]), expected, atol=1e-5)
        late.close()
        # REST by cursor, through B, from the owner's output ring.
        page = httpx.get(f"{b.base}/api/streams/{sid}/output", params={"cursor": 0, "max_frames": x.shape[1]})
        assert page.status_code == 200 and page.headers["x-lost-frames"] == "0"
        np.testing.assert_allclose(deinterleave(page.content, 2), expected, atol=1e-5)
        # A problem from the owner reaches the client as the owner gave it.
        bad = httpx.patch(f"{b.base}/api/streams/{sid}/steps/0", json={"room_size": 5}, timeout=30)
        assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
        assert bad.json()["errors"][0]["path"] == "params.room_size"
        producer.close()
        # Deleting through B closes the consumers of both nodes with the owner's 4404.
        assert httpx.delete(f"{b.base}/api/streams/{sid}", timeout=30).status_code == 204
        for ws in (on_a, on_b):
            code, error = closed_with(ws)
            assert code == 4404 and error["code"] == "gone"
        assert httpx.get(f"{b.base}/api/streams/{sid}", timeout=30).status_code == 404
        # Ids that name no stream anywhere are not found, whatever they hold.
        for bad in ("%00", "f" * 300, "ABCDEF", "%C3%A9"):
            assert httpx.get(f"{b.base}/api/streams/{bad}", timeout=30).status_code == 404, bad
            code, error = closed_with(open_ws(b.base, f"/ws/streams/{bad}/output"))
            assert code == 4404 and error["code"] == "unknown_stream", bad
    finally:
        a.stop()
        b.stop()


def test_an_owner_killed_leaves_its_streams_lost_and_clients_told(tmp_path):
    # Lost streams are told of for as long as idle ones live, then purged.
    database, a, b = two_nodes(tmp_path, FXHOST_STREAM_IDLE_SECONDS="30")
    try:
        stream = create(a)
        sid = stream["id"]
        consumer = open_ws(b.base, f"/ws/streams/{sid}/output")
        producer = open_ws(b.base, f"/ws/streams/{sid}/input")
        wait_until(lambda: consumers(b, stream) == 1)
        producer.send(interleave(noise(0.01)))
        assert collect(consumer, 480).shape == (2, 480)
        owner = owner_of(database, a)
        kill_tree(a)
        for ws in (consumer, producer):
            code, error = closed_with(ws)
            assert code == LOST and error["code"] == "stream_lost"
            assert sid in error["message"] and owner in error["message"], error
        gone = httpx.get(f"{b.base}/api/streams/{sid}", timeout=30)
        assert gone.status_code == 410 and gone.headers["content-type"] == "application/problem+json"
        assert "lost" in gone.json()["detail"] and owner in gone.json()["detail"]
        assert httpx.post(f"{b.base}/api/streams/{sid}/input", content=b"\0" * 8).status_code == 410
        # A new WebSocket to the lost stream is told too.
        code, error = closed_with(open_ws(b.base, f"/ws/streams/{sid}/output"))
        assert code == LOST and error["code"] == "stream_lost"
        # The dead node is out of the registry; its stream is listed nowhere.
        assert owner not in nodes_of(database)
        assert query(database, "SELECT id FROM cluster_streams WHERE node = $1", owner) == []
        assert httpx.get(f"{b.base}/api/streams", timeout=30).json() == []
        # A new stream works on the surviving node.
        fresh = create(b)
        out = open_ws(b.base, f"/ws/streams/{fresh['id']}/output")
        x = noise(0.1, seed=3)
        httpx.post(f"{b.base}/api/streams/{fresh['id']}/input", content=interleave(x)).raise_for_status()
        np.testing.assert_allclose(
            collect(out, x.shape[1]), pedalboard.Reverb(**HALL).process(x, SR), atol=1e-5
        )
        out.close()
        # Once told for long enough, the lost stream's row goes too.
        wait_until(
            lambda: not query(database, "SELECT id FROM cluster_streams WHERE id = $1", sid),
            timeout=120,
            interval=0.5,
            what="the lost stream's row purged",
        )
        assert httpx.get(f"{b.base}/api/streams/{sid}", timeout=30).status_code == 404
    finally:
        kill_tree(a) if a.proc.poll() is None else None
        b.stop()


def sign(secret: bytes, method: str, path: str, tenant: str, exp: int) -> dict[str, str]:
    """Internal headers, made as the cluster's processes make them (HMAC-SHA256)."""
    message = b"\n".join((b"fxhost-internal/1", method.encode(), path.encode(), tenant.encode(), b"%d" % exp))
    sig = base64.urlsafe_b64encode(hmac.new(secret, message, hashlib.sha256).digest()).rstrip(b"=")
    return {"x-fxhost-tenant": tenant, "x-fxhost-exp": str(exp), "x-fxhost-signature": sig.decode()}


def test_the_internal_listener_refuses_what_the_cluster_did_not_sign(tmp_path):
    database = fresh_postgres()
    key = "k" * 40
    server = start_server(tmp_path, {"FXHOST_DATABASE_URL": database, "FXHOST_API_KEYS": key})
    try:
        auth = {"Authorization": f"Bearer {key}"}
        stream = create(server, headers=auth)
        path = f"/api/streams/{stream['id']}"
        ((internal,),) = [tuple(nodes_of(database).values())]
        (row,) = query(database, "SELECT tenant FROM cluster_streams WHERE id = $1", stream["id"])
        tenant = row["tenant"]
        (secret,) = query(database, "SELECT value FROM server_secrets WHERE name = 'internal'")
        secret = secret["value"].encode()
        exp = int(time.time()) + 60
        url = f"http://{internal}{path}"
        # The genuine article works: the refusals below are for what they lack.
        assert httpx.get(url, headers=sign(secret, "GET", path, tenant, exp), timeout=30).status_code == 200
        forged = {
            "no signature": {"x-fxhost-tenant": tenant},
            "a wrong secret": sign(b"not the secret", "GET", path, tenant, exp),
            "another path": sign(secret, "GET", "/api/streams", tenant, exp),
            "another method": sign(secret, "DELETE", path, tenant, exp),
            "another tenant": {**sign(secret, "GET", path, "someone", exp), "x-fxhost-tenant": tenant},
            "expired": sign(secret, "GET", path, tenant, int(time.time()) - 1),
            "a garbled expiry": {**sign(secret, "GET", path, tenant, exp), "x-fxhost-exp": "soon"},
        }
        for what, headers in forged.items():
            refused = httpx.get(url, headers=headers, timeout=30)
            assert refused.status_code == 403, what
            assert refused.headers["content-type"] == "application/problem+json", what
        # A GET's signature does not delete.
        assert httpx.delete(url, headers=sign(secret, "GET", path, tenant, exp)).status_code == 403
        assert httpx.get(url, timeout=30).status_code == 403
        ws_path = f"/ws/streams/{stream['id']}/output"
        for headers in (
            {},
            sign(b"not the secret", "WS", ws_path, tenant, exp),
            sign(secret, "GET", ws_path, tenant, exp),
        ):
            with pytest.raises(InvalidStatus) as refused:
                open_ws(f"http://{internal}", ws_path, headers)
            assert refused.value.response.status_code == 403
        # A valid internal request replayed to the public port is just a request with no key.
        valid = sign(secret, "GET", path, tenant, exp)
        assert httpx.get(f"{server.base}{path}", headers=valid, timeout=30).status_code == 401
        with pytest.raises(ConnectionClosed) as closed:
            ws = open_ws(server.base, ws_path, sign(secret, "WS", ws_path, tenant, exp))
            ws.send(b"\0" * 8)  # audio where the key should come first
            while True:
                ws.recv(timeout=30)
        assert closed.value.rcvd.code == 1008
        # The server carries on.
        assert httpx.get(f"{server.base}{path}", headers=auth, timeout=30).status_code == 200
    finally:
        server.stop()


def test_a_node_that_stops_cleanly_leaves_the_registry(tmp_path):
    database, a, b = two_nodes(tmp_path)
    try:
        stream = create(a)
        sid = stream["id"]
        direct = open_ws(a.base, f"/ws/streams/{sid}/output")
        forwarded = open_ws(b.base, f"/ws/streams/{sid}/output")
        wait_until(lambda: consumers(a, stream) == 2)
        owner = owner_of(database, a)
        a.stop()
        direct_code, _ = closed_with(direct)
        forwarded_code, _ = closed_with(forwarded)
        # The owner's close reaches the forwarded client as it was given.
        assert forwarded_code == direct_code != LOST
        assert owner not in nodes_of(database)
        assert query(database, "SELECT id FROM cluster_streams") == []
        assert httpx.get(f"{b.base}/api/streams/{sid}", timeout=30).status_code == 404
    finally:
        a.stop()
        b.stop()


def test_a_node_taken_for_dead_while_alive_takes_its_streams_back(tmp_path):
    database, a, b = two_nodes(tmp_path)
    try:
        stream = create(a)
        sid = stream["id"]
        owner = owner_of(database, a)
        # What another node's housekeeping does to a node that gave no heartbeat for too long.
        query(database, "UPDATE cluster_streams SET node = NULL, lost = 'taken for dead', lost_at = now()")
        query(database, "DELETE FROM cluster_nodes WHERE id = $1", owner)
        # Alive, A registers again at its next heartbeat, with the streams it still runs.
        wait_until(lambda: httpx.get(f"{b.base}/api/streams/{sid}", timeout=30).status_code == 200)
        assert owner in nodes_of(database)
        assert [s["id"] for s in httpx.get(f"{b.base}/api/streams", timeout=30).json()] == [sid]
    finally:
        a.stop()
        b.stop()


REDIS_URL = os.environ.get("FXHOST_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(
    not REDIS_URL, reason="FXHOST_TEST_REDIS_URL is not set (.ci/run sets it to the local Redis)"
)


@needs_redis
def test_listeners_on_another_node_hear_the_stream_through_its_redis_mirror(tmp_path):
    prefix = f"fxtest-{secrets.token_hex(4)}"
    _, a, b = two_nodes(tmp_path, FXHOST_REDIS_URL=REDIS_URL, FXHOST_REDIS_PREFIX=prefix)
    try:
        stream = create(a)
        sid = stream["id"]
        on_a = open_ws(a.base, f"/ws/streams/{sid}/output")
        # B's listeners read B's mirror ring: the owner sees only its own consumer.
        on_b = [open_ws(b.base, f"/ws/streams/{sid}/output?from=now") for _ in range(3)]
        starts = [json.loads(ws.recv(timeout=30)) for ws in on_b]
        assert starts == [{"type": "position", "frame": 0}] * 3
        wait_until(lambda: consumers(a, stream) == 1, what="the owner's own consumer")
        x = noise(1.0, seed=5)
        producer = open_ws(b.base, f"/ws/streams/{sid}/input")
        for i in range(0, x.shape[1], 480):
            producer.send(interleave(x[:, i : i + 480]))
        expected = pedalboard.Reverb(**HALL).process(x, SR)
        np.testing.assert_allclose(collect(on_a, x.shape[1]), expected, atol=1e-5)
        for ws in on_b:
            np.testing.assert_allclose(collect(ws, x.shape[1]), expected, atol=1e-5)
        assert consumers(a, stream) == 1
        on_b[0].send(json.dumps({"type": "stats"}))
        stats = json.loads(on_b[0].recv(timeout=30))
        assert stats["frame"] == x.shape[1] and stats["lost"] == 0 and "late_blocks" not in stats, stats
        producer.close()
        # Deleting the stream ends the mirror: B's listeners are told as A's are.
        assert httpx.delete(f"{a.base}/api/streams/{sid}", timeout=30).status_code == 204
        for ws in (on_a, *on_b):
            code, error = closed_with(ws)
            assert code == 4404 and error["code"] == "gone"
        # An owner killed publishes no end: the registry tells B's listeners it is lost.
        stream = create(a)
        listener = open_ws(b.base, f"/ws/streams/{stream['id']}/output?from=now")
        assert json.loads(listener.recv(timeout=30))["type"] == "position"
        assert consumers(a, stream) == 0
        kill_tree(a)
        code, error = closed_with(listener)
        assert code == LOST and error["code"] == "stream_lost"
    finally:
        kill_tree(a) if a.proc.poll() is None else None
        b.stop()
