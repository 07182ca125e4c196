"""Timing for live clients over a real server: every processed block matched to the block
it came from (by order, or by the tag of an ``indexed`` session), stream frame indices
(producer acks, consumers resuming from a frame index, reconnecting without gap or
duplicate, resuming from frames no longer kept), and the per-connection stats: late
blocks, underruns, queue depth. Audio is compared with pedalboard run directly."""

import itertools
import json
import socket
import struct
import time
from urllib.parse import urlsplit

import numpy as np
import pedalboard
import pytest
from fxhost.engine.timing import AudioClock
from restkit import REPO, start_server
from waiting import wait_until
from websockets.exceptions import ConnectionClosed
from wskit import Session, deinterleave, interleave, open_ws

SR = 48000
HALL = {"room_size": 0.9, "damping": 0.6, "wet_level": 0.35, "dry_level": 0.6, "width": 1.0}
REVERB = [{"effect": "reverb", "params": HALL}]
#: Sleeps 50 ms on every block: slower than real time for blocks under 2400 frames.
SLOW = [{"effect": "broken_slow", "params": {"seconds": 0.05}}]
PLUGINS_TOML = f"""
[plugins]
paths = ["{REPO / "tests" / "support"}"]
modules = ["broken_effects"]
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("timing")
    (root / "plugins.toml").write_text(PLUGINS_TOML)
    srv = start_server(root, {"FXHOST_PLUGINS_CONFIG": str(root / "plugins.toml")})
    yield srv
    srv.stop()


def noise(frames, channels=2, seed=0):
    rng = np.random.default_rng(seed)
    return (0.3 * rng.standard_normal((channels, frames))).astype(np.float32)


def hall(x):
    return pedalboard.Reverb(**HALL).process(x, SR)


def start(**extra):
    return {"steps": REVERB, "sample_rate": SR, "channels": 2, **extra}


def stats_of(session: Session) -> dict:
    session.send_json({"type": "stats"})
    reply = session.recv_json()
    assert reply["type"] == "stats", reply
    return reply


def ask_stats(ws) -> dict:
    """A stream socket's stats reply (binary frames before it are skipped)."""
    ws.send(json.dumps({"type": "stats"}))
    while isinstance(message := ws.recv(timeout=20), bytes):
        pass
    reply = json.loads(message)
    assert reply["type"] == "stats", reply
    return reply


# -- the audio clock, with times given (a block of 100 frames at 1 kHz lasts 0.1 s) --------


def clock_after(events) -> AudioClock:
    """Events: ("in", frames, time) for an arrival, ("out", time) for its answer."""
    clock = AudioClock(1000)
    for event in events:
        if event[0] == "in":
            clock.arrive(event[1], event[2])
        else:
            clock.done(event[1])
    return clock


def test_clock_real_time_client_and_fast_server():
    clock = clock_after(
        [("in", 100, 10.0), ("out", 10.01), ("in", 100, 10.1), ("out", 10.11), ("in", 100, 10.2)]
    )
    assert (clock.late, clock.underruns, clock.blocks, clock.frames) == (0, 0, 3, 300)


def test_clock_block_slower_than_its_duration_is_late():
    clock = clock_after([("in", 100, 10.0), ("out", 10.15)])
    assert (clock.late, clock.underruns) == (1, 0)


def test_clock_backlog_of_a_server_behind_stays_late():
    # Sent in real time; the server takes 0.15 s a block, so each is read when the one
    # before is answered: it never catches up, and no underrun is the client's.
    events, t = [], 10.0
    for _ in range(4):
        events += [("in", 100, t), ("out", t + 0.15)]
        t += 0.15
    clock = clock_after(events)
    assert (clock.late, clock.underruns) == (4, 0)


def test_clock_server_that_catches_up_is_late_once():
    # Four blocks (0.4 s) sent at once: the first takes 0.12 s (late), the others 0.02 s,
    # each answered before the clock reaches its end.
    events = [("in", 100, 10.0), ("out", 10.12)]
    for t in (10.12, 10.14, 10.16):
        events += [("in", 100, t), ("out", t + 0.02)]
    clock = clock_after(events)
    assert (clock.late, clock.underruns) == (1, 0)


def test_clock_pause_is_an_underrun_and_restarts_the_clock():
    clock = clock_after([("in", 100, 10.0), ("out", 10.01), ("in", 100, 10.5), ("out", 10.51)])
    assert (clock.late, clock.underruns) == (0, 1)
    assert clock.due == pytest.approx(10.6)


# -- /ws/process ------------------------------------------------------------------------


def test_each_processed_block_matches_its_block_by_order(server):
    """Sixty blocks of random sizes, all in flight at once: the n-th binary frame back is
    the n-th sent, the same size, and block n covers the frames after all those before."""
    sizes = np.random.default_rng(1).integers(1, 3000, 60)
    x = noise(int(sizes.sum()))
    edges = np.concatenate([[0], np.cumsum(sizes)])
    session = Session(server.base, **start(block=256))
    assert session.ready["indexed"] is False
    for a, b in itertools.pairwise(edges):
        session.ws.send(interleave(x[:, a:b]))
    expected = hall(x)
    for a, b in itertools.pairwise(edges):
        reply = session.ws.recv(timeout=20)
        assert isinstance(reply, bytes)
        out = deinterleave(reply, 2)
        assert out.shape[1] == b - a
        np.testing.assert_allclose(out, expected[:, a:b], atol=1e-5)
    stats = stats_of(session)
    assert stats["blocks"] == len(sizes) and stats["frame"] == x.shape[1] == stats["frames_out"]
    for field in ("late_blocks", "underruns", "queue_frames", "process_seconds", "latency"):
        assert isinstance(stats[field], int | float), field
    session.close()


def tagged(tag: int, block: np.ndarray) -> bytes:
    return struct.pack("<Q", tag) + interleave(block)


def untag(message: bytes) -> tuple[int, np.ndarray]:
    return struct.unpack_from("<Q", message)[0], deinterleave(message[8:], 2)


def test_indexed_session_echoes_each_blocks_tag(server):
    sizes = np.random.default_rng(2).integers(1, 3000, 40)
    x = noise(int(sizes.sum()), seed=2)
    edges = np.concatenate([[0], np.cumsum(sizes)])
    session = Session(server.base, **start(indexed=True))
    assert session.ready["indexed"] is True
    for a, b in itertools.pairwise(edges):  # tagged with their first frame's index
        session.ws.send(tagged(int(a), x[:, a:b]))
    expected = hall(x)
    for a, b in itertools.pairwise(edges):
        tag, out = untag(session.ws.recv(timeout=20))
        assert tag == a and out.shape[1] == b - a
        np.testing.assert_allclose(out, expected[:, a:b], atol=1e-5)
    # Any 64-bit tag comes back as it went, on an empty block too.
    session.ws.send(tagged(2**64 - 1, x[:, :0]))
    assert untag(session.ws.recv(timeout=20))[0] == 2**64 - 1
    # The tail's blocks carry their frame index: on from the frames received.
    session.send_json({"type": "flush"})
    index = x.shape[1]
    while isinstance(message := session.ws.recv(timeout=30), bytes):
        tag, out = untag(message)
        assert tag == index
        index += out.shape[1]
    flushed = json.loads(message)
    assert flushed["type"] == "flushed" and index == x.shape[1] + flushed["frames"]
    session.close()


def test_indexed_frame_without_its_tag_is_refused(server):
    session = Session(server.base, **start(indexed=True))
    session.ws.send(b"\x00" * 4)
    error = session.recv_json()
    assert error["type"] == "error" and error["code"] == "invalid_audio" and "tag" in error["message"]
    with pytest.raises(ConnectionClosed) as closed:
        session.ws.recv(timeout=10)
    assert closed.value.rcvd.code == 1007


def test_late_blocks_counted_for_a_chain_slower_than_real_time(server):
    """480 frames last 10 ms; the chain sleeps 50 ms on each: every block is late."""
    session = Session(server.base, steps=SLOW, sample_rate=SR, channels=2)
    x = noise(480 * 3)
    for i in range(3):
        session.ws.send(interleave(x[:, 480 * i : 480 * (i + 1)]))
    for _ in range(3):
        assert isinstance(session.ws.recv(timeout=20), bytes)
    stats = stats_of(session)
    assert stats["blocks"] == 3 and stats["late_blocks"] == 3
    session.close()


def test_a_pause_longer_than_the_audio_sent_is_an_underrun(server):
    session = Session(server.base, **start())
    block = noise(SR // 5)  # 200 ms
    session.process(block)
    before = stats_of(session)["underruns"]
    time.sleep(0.5)  # the 200 ms have played out, and more
    session.process(block)
    after = stats_of(session)
    assert after["underruns"] > before and after["blocks"] == 2
    session.close()


def test_queue_depth_counts_blocks_waiting_behind_a_slow_chain(server):
    """Stats sent between two bursts of blocks: the second burst waits in the server's
    socket while the first is processed (50 ms a block), and is counted."""
    session = Session(server.base, steps=SLOW, sample_rate=SR, channels=2)
    block = interleave(noise(480))
    for _ in range(5):
        session.ws.send(block)
    session.send_json({"type": "stats"})
    for _ in range(5):
        session.ws.send(block)
    for _ in range(5):
        assert isinstance(session.ws.recv(timeout=20), bytes)
    stats = session.recv_json()
    assert stats["type"] == "stats" and stats["frame"] == 5 * 480
    # Up to all five blocks of the second burst (WebSocket headers make the estimate a little high).
    assert 0 < stats["queue_frames"] <= 5 * 480 + 10
    for _ in range(5):
        session.ws.recv(timeout=20)
    session.close()


# -- shared streams -----------------------------------------------------------------------


def create(client, **body):
    response = client.post("/api/streams", json={"chain": REVERB, "sample_rate": SR, **body})
    assert response.status_code == 201, response.text
    return response.json()


def output_written(client, stream) -> int:
    return client.get(f"/api/streams/{stream['id']}/buffers").json()["output"]["frames_written"]


def produce(server, client, stream, x, block=4800) -> list[dict]:
    """Write ``x`` through a WebSocket producer with acks; wait until it is all processed."""
    producer = open_ws(server.base, f"/ws/streams/{stream['id']}/input?ack=true")
    acks = []
    for i in range(0, x.shape[1], block):
        producer.send(interleave(x[:, i : i + block]))
        acks.append(json.loads(producer.recv(timeout=10)))
    producer.close()
    wait_until(lambda: output_written(client, stream) >= x.shape[1], what="all input processed")
    return acks


def consume(ws, frames) -> tuple[np.ndarray, list[dict]]:
    """``frames`` frames from a consumer, and the text messages on the way."""
    got, events, total = [], [], 0
    while total < frames:
        message = ws.recv(timeout=20)
        if isinstance(message, str):
            events.append(json.loads(message))
            continue
        got.append(deinterleave(message, 2))
        total += got[-1].shape[1]
    return np.concatenate(got, axis=1), events


def test_producer_acks_give_input_indices_which_are_output_indices(server):
    with server.client() as client:
        stream = create(client)
        x = noise(SR, seed=3)
        acks = produce(server, client, stream, x)
        assert [a["type"] for a in acks] == ["written"] * len(acks)
        assert [a["frame"] for a in acks] == list(range(0, x.shape[1], 4800))
        page = client.get(f"/api/streams/{stream['id']}/output", params={"cursor": 0, "max_frames": SR})
        np.testing.assert_allclose(deinterleave(page.content, 2), hall(x), atol=1e-5)
        client.delete(f"/api/streams/{stream['id']}")


def test_late_consumer_resumes_from_a_frame_index(server):
    with server.client() as client:
        stream = create(client)
        x = noise(SR, seed=4)
        produce(server, client, stream, x)
        consumer = open_ws(server.base, f"/ws/streams/{stream['id']}/output?from=12345")
        assert json.loads(consumer.recv(timeout=10)) == {"type": "position", "frame": 12345}
        out, events = consume(consumer, x.shape[1] - 12345)
        assert events == [] and out.shape[1] == x.shape[1] - 12345
        np.testing.assert_allclose(out, hall(x)[:, 12345:], atol=1e-5)
        stats = ask_stats(consumer)
        assert stats["frame"] == x.shape[1] and stats["frames_out"] == x.shape[1] - 12345
        assert stats["queue_frames"] == 0 and stats["lost"] == 0 and stats["overruns"] == 0
        consumer.send("hello")  # not a message: said so, and the consumer goes on
        error = json.loads(consumer.recv(timeout=10))
        assert error["type"] == "error" and error["code"] == "invalid_message"
        assert ask_stats(consumer)["frame"] == x.shape[1]
        consumer.close()
        client.delete(f"/api/streams/{stream['id']}")


def test_reconnecting_consumer_resumes_without_gap_or_duplicate(server):
    with server.client() as client:
        stream = create(client)
        first = open_ws(server.base, f"/ws/streams/{stream['id']}/output?from=now")
        assert json.loads(first.recv(timeout=10)) == {"type": "position", "frame": 0}
        x = noise(SR, seed=5)
        producer = open_ws(server.base, f"/ws/streams/{stream['id']}/input")
        for i in range(0, SR // 2, 4800):
            producer.send(interleave(x[:, i : i + 4800]))
        heard, _ = consume(first, 10_000)  # some of what was written; the index is what it got
        resume_at = heard.shape[1]
        first.close()
        for i in range(SR // 2, SR, 4800):  # written while no one listens
            producer.send(interleave(x[:, i : i + 4800]))
        producer.close()
        wait_until(lambda: output_written(client, stream) >= SR, what="all input processed")
        again = open_ws(server.base, f"/ws/streams/{stream['id']}/output?from={resume_at}")
        assert json.loads(again.recv(timeout=10)) == {"type": "position", "frame": resume_at}
        rest, events = consume(again, SR - resume_at)
        assert events == []
        np.testing.assert_allclose(np.concatenate([heard, rest], axis=1), hall(x), atol=1e-5)
        again.close()
        client.delete(f"/api/streams/{stream['id']}")


def test_resuming_from_frames_no_longer_kept_reports_them_lost(server):
    with server.client() as client:
        stream = create(client, capacity=2048)
        x = noise(6000, seed=6)
        for i in range(0, 6000, 1000):  # each block processed before the next: no input is dropped
            client.post(f"/api/streams/{stream['id']}/input", content=interleave(x[:, i : i + 1000]))
            wait_until(lambda i=i: output_written(client, stream) == i + 1000)
        consumer = open_ws(server.base, f"/ws/streams/{stream['id']}/output?from=0")
        assert json.loads(consumer.recv(timeout=10)) == {"type": "position", "frame": 0}
        out, events = consume(consumer, 2048)
        assert events == [{"type": "overrun", "lost": 6000 - 2048, "frame": 6000 - 2048}]
        np.testing.assert_allclose(out, hall(x)[:, 6000 - 2048 :], atol=1e-5)
        stats = ask_stats(consumer)
        assert stats["lost"] == 6000 - 2048 and stats["overruns"] == 1 and stats["frame"] == 6000
        consumer.close()
        oldest = open_ws(server.base, f"/ws/streams/{stream['id']}/output?from=oldest")
        assert json.loads(oldest.recv(timeout=10)) == {"type": "position", "frame": 6000 - 2048}
        out, events = consume(oldest, 2048)
        assert events == []
        np.testing.assert_allclose(out, hall(x)[:, 6000 - 2048 :], atol=1e-5)
        oldest.close()
        client.delete(f"/api/streams/{stream['id']}")


@pytest.mark.parametrize(
    "query, path",
    [
        ("from=-1", "from"),
        ("from=soon", "from"),
        ("from=1.5", "from"),
        ("from=1000000", "from"),
        ("frm=0", "frm"),
    ],
)
def test_bad_consumer_query_closes_naming_the_field(server, query, path):
    with server.client() as client:
        stream = create(client)
        ws = open_ws(server.base, f"/ws/streams/{stream['id']}/output?{query}")
        error = json.loads(ws.recv(timeout=10))
        assert error["type"] == "error" and error["code"] == "invalid_query" and error["path"] == path
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd.code == 1008
        # Nothing was left behind: no consumer registered, the stream goes on.
        assert client.get(f"/api/streams/{stream['id']}").json()["consumers"] == 0
        client.delete(f"/api/streams/{stream['id']}")


def test_dropped_input_comes_out_as_silence_keeping_output_index_equal_to_input_index(server):
    with server.client() as client:
        stream = create(client, capacity=1024, overflow="drop_oldest")
        x = noise(2048, seed=7)
        producer = open_ws(server.base, f"/ws/streams/{stream['id']}/input?ack=true")
        producer.send(interleave(x))  # twice the ring: the first 1024 frames are dropped
        assert json.loads(producer.recv(timeout=10)) == {"type": "written", "frame": 0, "frames": 2048}
        producer.close()
        wait_until(lambda: output_written(client, stream) == 2048, what="output at the input's position")
        page = client.get(f"/api/streams/{stream['id']}/output", params={"cursor": 1024})
        assert page.headers["x-next-cursor"] == "2048"
        np.testing.assert_allclose(deinterleave(page.content, 2), hall(x[:, 1024:]), atol=1e-5)
        client.delete(f"/api/streams/{stream['id']}")


def test_producer_stats_and_underruns_when_it_pauses(server):
    with server.client() as client:
        stream = create(client, capacity=4800, overflow="reject")
        producer = open_ws(server.base, f"/ws/streams/{stream['id']}/input")
        producer.send(interleave(noise(SR // 5)))  # 200 ms, more than the ring: rejected
        assert json.loads(producer.recv(timeout=10))["type"] == "rejected"
        producer.send(interleave(noise(2400)))
        before = ask_stats(producer)
        assert before["blocks"] == 2 and before["frames_in"] == 2400
        assert before["rejected_blocks"] == 1 and before["rejected_frames"] == SR // 5
        assert before["frame"] == 2400 and 0 <= before["queue_frames"] <= 2400
        time.sleep(0.5)  # the 250 ms received have played out, and more
        producer.send(interleave(noise(2400)))
        after = ask_stats(producer)
        assert after["underruns"] > before["underruns"] and after["frame"] == 4800
        producer.send("hello")  # any other text is still refused
        error = json.loads(producer.recv(timeout=10))
        assert error["code"] == "expected_audio"
        with pytest.raises(ConnectionClosed) as closed:
            producer.recv(timeout=10)
        assert closed.value.rcvd.code == 1003
        client.delete(f"/api/streams/{stream['id']}")


class RawWebSocket:
    """A WebSocket client on a plain socket with a small receive buffer, that reads only
    when told to (a websockets client reads ahead in a thread of its own)."""

    def __init__(self, base: str, path: str):
        where = urlsplit(base)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # before connecting: a small window
        self.sock.connect((where.hostname, where.port))
        self.sock.settimeout(20)
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {where.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        self.buffer = b""
        head = self._until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 20)
        assert chunk, "the server closed the connection"
        self.buffer += chunk

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def _take(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def send_text(self, text: str) -> None:
        payload = text.encode()
        assert len(payload) < 126
        self.sock.sendall(bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)  # a zero mask

    def recv(self) -> bytes | str:
        first, second = self._take(2)
        size = second & 0x7F
        if size == 126:
            size = struct.unpack(">H", self._take(2))[0]
        elif size == 127:
            size = struct.unpack(">Q", self._take(8))[0]
        payload = self._take(size)
        return payload.decode() if first & 0x0F == 1 else payload

    def close(self) -> None:
        self.sock.close()


def test_queue_depth_of_a_consumer_that_does_not_read(server):
    """A consumer joins from frame 0 of 30 s of audio and reads nothing. Its small
    receive window and the server's send buffer (4 MB at most here) hold far less than
    30 s of stereo float32 (11.5 MB), so stats finds most of it still to send."""
    with server.client() as client:
        frames = 30 * SR
        stream = create(client, capacity=frames)
        produce(server, client, stream, noise(frames, seed=8), block=48000)
        consumer = RawWebSocket(server.base, f"/ws/streams/{stream['id']}/output?from=0")
        consumer.send_text(json.dumps({"type": "stats"}))
        assert json.loads(consumer.recv()) == {"type": "position", "frame": 0}
        while isinstance(message := consumer.recv(), bytes):
            pass
        stats = json.loads(message)
        assert stats["type"] == "stats" and stats["frame"] + stats["queue_frames"] == frames
        assert stats["queue_frames"] > frames // 4
        consumer.close()
        client.delete(f"/api/streams/{stream['id']}")
