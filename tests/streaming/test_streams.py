"""Shared streams over a real server: producers over WebSocket and REST, one processing
task, many consumers each getting every frame, live parameter changes, overflow
policies, lapped readers, buffers, deletion and idle expiry."""

import json
import threading

import httpx
import numpy as np
import pedalboard
import pytest
from restkit import start_server
from waiting import wait_until
from websockets.exceptions import ConnectionClosed
from wskit import deinterleave, interleave, open_ws

SR = 48000


def noise(seconds, channels=2, seed=0):
    rng = np.random.default_rng(seed)
    return (0.3 * rng.standard_normal((channels, int(seconds * SR)))).astype(np.float32)


def create(client, **body):
    response = client.post("/api/streams", json={"chain": "hall", "sample_rate": SR, **body})
    assert response.status_code == 201, response.text
    return response.json()


def consumer_count(client, stream) -> int:
    return client.get(f"/api/streams/{stream['id']}").json()["consumers"]


def buffers(client, stream) -> dict:
    return client.get(f"/api/streams/{stream['id']}/buffers").json()


HALL = {"room_size": 0.9, "damping": 0.6, "wet_level": 0.35, "dry_level": 0.6, "width": 1.0}


def collect(ws, frames, channels=2, events=None):
    got, total = [], 0
    while total < frames:
        message = ws.recv(timeout=20)
        if isinstance(message, str):
            if events is not None:
                events.append(json.loads(message))
            continue
        block = deinterleave(message, channels)
        got.append(block)
        total += block.shape[1]
    return np.concatenate(got, axis=1)


def test_producer_and_many_consumers_over_websocket(server):
    with server.client() as client:
        stream = create(client)
        consumers = [open_ws(server.base, f"/ws/streams/{stream['id']}/output") for _ in range(3)]
        wait_until(lambda: consumer_count(client, stream) == 3)  # all registered before the first frame
        x = noise(1.0)
        producer = open_ws(server.base, f"/ws/streams/{stream['id']}/input")
        for i in range(0, x.shape[1], 480):
            producer.send(interleave(x[:, i : i + 480]))
        expected = pedalboard.Reverb(**HALL).process(x, SR)
        for ws in consumers:
            np.testing.assert_allclose(collect(ws, x.shape[1]), expected, atol=1e-5)
            ws.close()
        producer.close()
        buffers = client.get("/api/audio/buffers").json()
        mine = next(b for b in buffers if b["stream"] == stream["id"])
        assert mine["input"]["frames_written"] == x.shape[1] == mine["output"]["frames_written"]
        assert client.delete(f"/api/streams/{stream['id']}").status_code == 204
        assert client.get(f"/api/streams/{stream['id']}").status_code == 404


def test_rest_producer_and_cursor_consumer(server):
    with server.client() as client:
        stream = create(client, channels=1, format="s16le")
        x = np.round(np.clip(noise(0.5, channels=1), -1, 32767 / 32768) * 32768) / 32768
        for i in range(0, x.shape[1], 4800):
            body = interleave(x[:, i : i + 4800], "s16le")
            assert client.post(f"/api/streams/{stream['id']}/input", content=body).status_code == 200
        cursor, got = 0, []

        def read_page() -> bool:
            """Read the next page; True once every frame has arrived."""
            nonlocal cursor
            page = client.get(f"/api/streams/{stream['id']}/output", params={"cursor": cursor})
            assert page.status_code == 200 and page.headers["x-lost-frames"] == "0"
            cursor = int(page.headers["x-next-cursor"])
            got.append(deinterleave(page.content, 1, "s16le"))
            return cursor >= x.shape[1]

        wait_until(read_page, what="every frame read by cursor")
        out = np.concatenate(got, axis=1)
        expected = np.clip(pedalboard.Reverb(**HALL).process(x.astype(np.float32), SR), -1, 32767 / 32768)
        np.testing.assert_allclose(out, expected, atol=2 / 32768)
        client.delete(f"/api/streams/{stream['id']}")


def test_live_parameter_change_through_patch(server):
    with server.client() as client:
        stream = create(client)
        patched = client.patch(f"/api/streams/{stream['id']}/steps/0", json={"room_size": 0.1})
        assert patched.status_code == 200 and patched.json()["params"]["room_size"] == 0.1
        assert client.get(f"/api/streams/{stream['id']}").json()["steps"][0]["params"]["room_size"] == 0.1
        bad = client.patch(f"/api/streams/{stream['id']}/steps/0", json={"room_size": 5})
        assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "params.room_size"
        assert client.patch(f"/api/streams/{stream['id']}/steps/9", json={}).status_code == 404
        assert client.patch(f"/api/streams/{stream['id']}/steps/0", json={"nope": 1}).status_code == 422
        client.delete(f"/api/streams/{stream['id']}")


def test_overflow_policies(server):
    with server.client() as client:
        strict = create(client, capacity=1024, overflow="reject")
        too_much = interleave(noise(2048 / SR))
        refused = client.post(f"/api/streams/{strict['id']}/input", content=too_much)
        assert refused.status_code == 413 and refused.headers["content-type"] == "application/problem+json"
        producer = open_ws(server.base, f"/ws/streams/{strict['id']}/input")
        producer.send(too_much)
        rejected = json.loads(producer.recv(timeout=10))
        assert rejected["type"] == "rejected" and rejected["frames"] == 2048
        producer.send(interleave(noise(256 / SR)))  # still open: a block that fits goes in
        producer.close()
        stats = wait_until(lambda: (b := buffers(client, strict)["input"])["frames_written"] and b)
        assert stats["rejected_frames"] == 2048 and stats["frames_written"] == 256
        loose = create(client, capacity=1024, overflow="drop_oldest")
        producer = open_ws(server.base, f"/ws/streams/{loose['id']}/input")
        producer.send(too_much)
        producer.close()
        stats = wait_until(lambda: (b := buffers(client, loose)["input"])["frames_written"] and b)
        assert stats["frames_written"] == 2048
        assert stats["dropped_frames"] == 1024 and stats["rejected_frames"] == 0
        for s in (strict, loose):
            client.delete(f"/api/streams/{s['id']}")


def test_lapped_cursor_reports_lost_frames(server):
    with server.client() as client:
        stream = create(client, capacity=2048, overflow="drop_oldest")
        for i in range(1, 7):
            client.post(f"/api/streams/{stream['id']}/input", content=interleave(noise(1000 / SR)))
            # Each block processed before the next arrives: only the output ring laps.
            wait_until(lambda i=i: buffers(client, stream)["output"]["frames_written"] == 1000 * i)
        page = client.get(f"/api/streams/{stream['id']}/output", params={"cursor": 0})
        assert int(page.headers["x-lost-frames"]) == 6000 - 2048
        assert int(page.headers["x-next-cursor"]) == 6000
        too_far = client.get(f"/api/streams/{stream['id']}/output", params={"cursor": 10**9})
        assert too_far.status_code == 422
        client.delete(f"/api/streams/{stream['id']}")


def drain(ws, total):
    """What a consumer receives until all ``total`` frames are accounted for, delivered or
    reported lost: (frames, events). A frame neither delivered nor reported times out."""
    frames, lost, events = 0, 0, []
    while frames + lost < total:
        message = ws.recv(timeout=20)
        if isinstance(message, str):
            events.append(json.loads(message))
            lost += events[-1].get("lost", 0) if events[-1]["type"] == "overrun" else 0
        else:
            frames += len(message) // 8
    return frames, events


def test_slow_consumer_is_lapped_and_never_stalls_the_producer(server):
    with server.client() as client:
        stream = create(client, capacity=SR)  # one second of audio
        slow = open_ws(server.base, f"/ws/streams/{stream['id']}/output")  # reads nothing until the end
        fast = open_ws(server.base, f"/ws/streams/{stream['id']}/output")
        wait_until(lambda: consumer_count(client, stream) == 2)
        x = noise(30.0)  # 11.5 MB of f32le: more than the slow consumer's socket buffers hold
        received, heard = [], [0]

        def read_fast() -> None:
            while heard[0] < x.shape[1]:
                message = fast.recv(timeout=20)
                if isinstance(message, bytes):
                    received.append(deinterleave(message, 2))
                    heard[0] += received[-1].shape[1]

        reader = threading.Thread(target=read_fast)
        reader.start()
        producer = open_ws(server.base, f"/ws/streams/{stream['id']}/input")
        for i in range(0, x.shape[1], 4800):
            producer.send(interleave(x[:, i : i + 4800]))
            # Paced by the fast consumer, not by the clock: never more than half the ring
            # ahead of it, so it is not lapped on however slow a machine. The slow one
            # falls behind by up to 30 s of audio and must not hold the producer up.
            wait_until(lambda i=i: heard[0] >= i + 4800 - SR // 2 or not reader.is_alive())
        reader.join(timeout=60)
        assert heard[0] == x.shape[1]
        expected = pedalboard.Reverb(**HALL).process(x, SR)
        np.testing.assert_allclose(np.concatenate(received, axis=1), expected, atol=1e-5)
        frames, events = drain(slow, x.shape[1])
        lost = sum(e["lost"] for e in events if e["type"] == "overrun")
        assert lost > 0, events
        assert frames + lost == x.shape[1]  # every frame was either delivered or reported lost
        for ws in (slow, fast, producer):
            ws.close()
        client.delete(f"/api/streams/{stream['id']}")


def test_deleting_a_stream_closes_its_consumers(server):
    with server.client() as client:
        stream = create(client)
        consumer = open_ws(server.base, f"/ws/streams/{stream['id']}/output")
        wait_until(lambda: consumer_count(client, stream) == 1)
        client.delete(f"/api/streams/{stream['id']}")
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                consumer.recv(timeout=10)
        assert closed.value.rcvd.code == 4404
        ws = open_ws(server.base, f"/ws/streams/{stream['id']}/input")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
            ws.recv(timeout=10)
        assert closed.value.rcvd.code == 4404


@pytest.mark.parametrize(
    "body, path",
    [
        ({"chain": "nope"}, "chain"),
        ({"chain": "hall", "channels": 0}, "channels"),
        ({"chain": "hall", "format": "f64"}, "format"),
        ({"chain": "hall", "overflow": "block"}, "overflow"),
        ({"chain": "hall", "capacity": 3}, "capacity"),
        # 100M frames of 32 channels would be a 12.8 GB ring: over FXHOST_MAX_STREAM_RING_BYTES.
        ({"chain": "hall", "capacity": 100_000_000, "channels": 32}, "capacity"),
        ({"chain": "hall", "capacity": 4_194_305, "channels": 2}, "capacity"),  # 1 frame over 32 MiB
        # The default capacity (10 s) at 384 kHz and 32 channels is over it too: said so.
        ({"chain": "hall", "sample_rate": 384000, "channels": 32}, "capacity"),
        ({"chain": [{"effect": "reverb", "params": {"width": 2}}]}, "chain[0].params.width"),
    ],
)
def test_bad_stream_requests(server, body, path):
    with server.client() as client:
        response = client.post("/api/streams", json=body)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["path"] == path
        assert client.get("/api/streams").json() == []  # nothing made


def test_largest_ring_allowed(server):
    with server.client() as client:
        r = client.post("/api/streams", json={"chain": "hall", "capacity": 4_194_304, "channels": 2})
        assert r.status_code == 201, r.text
        assert client.delete(f"/api/streams/{r.json()['id']}").status_code == 204


def test_idle_streams_expire(tmp_path):
    server = start_server(tmp_path, {"FXHOST_STREAM_IDLE_SECONDS": "1"})
    try:
        with server.client() as client:
            stream = create(client)
            # The second of idleness is the behaviour under test; the wait is for its sweep.
            wait_until(lambda: client.get(f"/api/streams/{stream['id']}").status_code == 404)
            assert client.get("/api/streams").json() == []
    finally:
        server.stop()


def test_stream_limit(tmp_path):
    server = start_server(tmp_path, {"FXHOST_MAX_STREAMS": "1"})
    try:
        with server.client() as client:
            create(client)
            assert client.post("/api/streams", json={"chain": "hall"}).status_code == 429
    finally:
        server.stop()


def test_unknown_stream(server):
    with httpx.Client(base_url=server.base) as client:
        assert client.get("/api/streams/nope").status_code == 404
        assert client.post("/api/streams/nope/input", content=b"").status_code == 404
