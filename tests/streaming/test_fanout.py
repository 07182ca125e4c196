"""fxhost.store.fanout with a real Redis and real streams: the owner's stream publishes its
output to a Redis Stream, a "node" (a Fanout on its own event loop in a thread) relays it
into a mirror ring whose consumers get the owner's audio at the owner's frame positions;
a late mirror starts at now; a node too slow to keep up loses trimmed frames and is told;
the end (deleted, failed, owner gone) reaches mirror consumers; keys expire; a Redis that
does not answer leaves the owner's stream untouched. And one real ``fxhost serve`` with
FXHOST_REDIS_URL: its streams' output appears in Redis with the right frame positions.

Needs FXHOST_TEST_REDIS_URL (``redis://127.0.0.1:6379/0``); every test uses keys of its
own prefix."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import pedalboard
import pytest
from broken_effects import Raises
from fxhost.catalog.chains import ResolvedStep
from fxhost.engine.ring import RingReader
from fxhost.engine.streams import Stream, StreamManager
from fxhost.settings import load_settings
from fxhost.store.fanout import Fanout, FanoutUnavailable, Mirror
from fxhost_pedalboard import Reverb
from fxhost_sdk import FieldError
from restkit import free_port, start_server
from waiting import wait_until
from wskit import deinterleave, interleave, open_ws

REDIS_URL = os.environ.get("FXHOST_TEST_REDIS_URL", "")
needs_redis = pytest.mark.skipif(
    not REDIS_URL,
    reason="FXHOST_TEST_REDIS_URL is unset (e.g. redis://127.0.0.1:6379/0): no Redis to test with",
)

SR = 48000
HALL = {"room_size": 0.9, "damping": 0.6, "wet_level": 0.35, "dry_level": 0.6, "width": 1.0}


def noise(frames: int, channels: int = 2, seed: int = 0) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal((channels, frames))).astype(np.float32)


def reverb_steps() -> list[ResolvedStep]:
    return [ResolvedStep("reverb", Reverb, Reverb.check_params(HALL))]


@pytest.fixture
def prefix():
    """A key prefix of this test's own; its keys are removed afterwards."""
    import redis

    name = f"fxtest-{uuid.uuid4().hex[:10]}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{name}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def sync_redis():
    import redis

    return redis.Redis.from_url(REDIS_URL)


async def until(predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """``waiting.wait_until`` for a coroutine: poll without blocking the event loop."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout:g} s (last: {value!r})")
        await asyncio.sleep(0.005)
    return value


def manager(fanout: Fanout | None) -> StreamManager:
    return StreamManager(
        max_streams=8,
        idle_seconds=300,
        inline_frames=2048,
        max_tail_seconds=30,
        block_timeout=5,
        on_create=fanout.publish if fanout else None,
    )


@contextlib.asynccontextmanager
async def publishing(url: str, prefix: str, **options):
    """An owner's fan-out and its stream manager, which publishes every stream it makes."""
    owner = Fanout(url, prefix, **options)
    await owner.start()
    streams = manager(owner)
    streams.start()
    try:
        yield owner, streams
    finally:
        await streams.stop()
        await owner.stop()


def make_stream(streams: StreamManager, steps=None, *, capacity: int = SR) -> Stream:
    return streams.create(
        None,
        steps or reverb_steps(),
        sample_rate=SR,
        channels=2,
        wire_format="f32le",
        capacity=capacity,
        overflow="reject",
        tenant="",
    )


class Node:
    """Another node's Fanout: its own event loop in a thread, as another process would
    have. ``pause()`` holds that loop still (a node too busy to relay) until resumed."""

    def __init__(self, prefix: str, **options) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.fanout = Fanout(REDIS_URL, prefix, **options)
        self.call_sync(self.fanout.start())

    def call_sync(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    async def call(self, coro):
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    async def mirror(self, stream_id: str, capacity: int = SR) -> Mirror:
        return await self.call(self.fanout.mirror(stream_id, channels=2, capacity=capacity))

    async def consumer(self, mirror: Mirror) -> RingReader:
        async def make():
            return mirror.consumer()

        return await self.call(make())

    def pause(self) -> threading.Event:
        held, resume = threading.Event(), threading.Event()

        def hold() -> None:
            held.set()
            resume.wait(30)

        self.loop.call_soon_threadsafe(hold)
        held.wait(30)
        return resume

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call_sync(self.fanout.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@contextlib.contextmanager
def node(prefix: str, **options):
    n = Node(prefix, **options)
    try:
        yield n
    finally:
        n.close()


async def collect(reader: RingReader, frames: int, what: str) -> tuple[int, np.ndarray, int]:
    """``(first position, audio, lost)``: ``frames`` frames from ``reader``."""
    start, got, lost = reader.cursor, [], 0

    def more() -> bool:
        nonlocal lost
        block, skipped = reader.read()
        lost += skipped
        got.append(block)
        return sum(b.shape[1] for b in got) >= frames

    await until(more, what)
    return start, np.concatenate(got, axis=1)[:, :frames], lost


async def feed(stream: Stream, audio: np.ndarray, block: int = 480) -> None:
    """Producer: the audio in blocks, each once the last is processed (no overflow)."""
    for i in range(0, audio.shape[1], block):
        stream.write(audio[:, i : i + block])
        target = stream.input.write_pos
        await until(lambda t=target: stream.output.write_pos >= t, "the block processed")


def published_end(fanout: Fanout, stream: Stream) -> Callable[[], bool]:
    """True once the last entry in Redis ends where the owner's output ring does."""
    client = sync_redis()

    def check() -> bool:
        last = client.xrevrange(fanout.key(stream.id), "+", "-", count=1)
        if not last:
            return False
        fields = last[0][1]
        end = int(fields[b"frame"]) + int(fields.get(b"frames", 0))
        return end == stream.output.write_pos

    return check


# -- the tests ----------------------------------------------------------------------------


@needs_redis
def test_mirror_consumers_get_the_owners_audio_at_the_owners_positions(prefix):
    async def run():
        async with publishing(REDIS_URL, prefix) as (owner, streams):
            stream = make_stream(streams)
            await feed(stream, noise(4800, seed=1))  # the rings are past position 0
            await until(published_end(owner, stream), "the output published")
            with node(prefix) as far:
                mirror = await far.mirror(stream.id)
                assert await far.mirror(stream.id) is mirror  # one mirror per node, shared
                assert mirror.output.write_pos == stream.output.write_pos == 4800
                here, there = stream.consumer(), await far.consumer(mirror)
                x = noise(SR // 2, seed=2)
                await feed(stream, x)
                a_start, a, a_lost = await collect(here, x.shape[1], "the owner's consumer")
                b_start, b, b_lost = await collect(there, x.shape[1], "the mirror's consumer")
                assert a_start == b_start == 4800 and a_lost == b_lost == 0
                np.testing.assert_array_equal(b, a)
                # and it is the reverb of the input, continuing from the first 4800 frames
                expected = pedalboard.Reverb(**HALL).process(
                    np.concatenate([noise(4800, seed=1), x], axis=1), SR
                )[:, 4800:]
                np.testing.assert_allclose(b, expected, atol=1e-5)

                # A consumer that joins the mirror later starts at now.
                late = await far.consumer(mirror)
                assert late.cursor == mirror.output.write_pos == 4800 + x.shape[1]
                # So does the mirror of a node that joins later.
                with node(prefix) as later:
                    second = await later.mirror(stream.id)
                    assert second.output.write_pos == 4800 + x.shape[1]
                    newcomer = await later.consumer(second)
                    y = noise(4800, seed=3)
                    await feed(stream, y)
                    c_start, c, _ = await collect(newcomer, y.shape[1], "the late node's consumer")
                    d_start, d, _ = await collect(late, y.shape[1], "the late consumer")
                    e_start, e, _ = await collect(here, y.shape[1], "the owner's consumer")
                    assert c_start == d_start == e_start == 4800 + x.shape[1]
                    np.testing.assert_array_equal(c, e)
                    np.testing.assert_array_equal(d, e)
                    await later.call(second.release(newcomer))
                assert mirror.gap_frames == 0 and mirror.output.stats.frames_lost == 0
                # two references (two far.mirror calls), two consumers
                await far.call(mirror.release(there))
                assert mirror._relay is not None and not mirror._relay.done()  # one reference left
                assert mirror.consumers == 1
                await far.call(mirror.release(late))
                assert mirror._relay.done()  # the last release stops the relay

    asyncio.run(run())


@needs_redis
def test_a_node_that_falls_behind_the_trimmed_stream_loses_frames_and_is_told(prefix):
    capacity = 1024

    async def run():
        async with publishing(REDIS_URL, prefix) as (owner, streams):
            stream = make_stream(streams, capacity=capacity)
            await until(published_end(owner, stream), "the start published")
            here = stream.consumer()
            with node(prefix) as far:
                mirror = await far.mirror(stream.id, capacity=capacity)
                there = await far.consumer(mirror)
                await feed(stream, noise(512, seed=1), block=256)
                _, a, _ = await collect(here, 512, "the owner's consumer")
                _, b, lost = await collect(there, 512, "the mirror's consumer")
                np.testing.assert_array_equal(b, a)
                assert lost == 0

                resume = far.pause()  # the node is busy: its relay reads nothing
                x = noise(4 * capacity, seed=2)
                owner_audio = []
                for i in range(0, x.shape[1], 256):
                    await feed(stream, x[:, i : i + 256], block=256)
                    owner_audio.append((await collect(here, 256, "the owner's consumer"))[1])
                await until(published_end(owner, stream), "the output published")
                first_kept = int(sync_redis().xrange(owner.key(stream.id), count=1)[0][0].split(b"-")[0])
                assert first_kept >= 512 + 4 * capacity - capacity  # Redis kept at most a capacity
                resume.set()

                end = 512 + 4 * capacity
                await until(lambda: mirror.output.write_pos == end, "the relay caught up")
                block, lost = there.read()
                assert lost > 0  # told, like a lapped reader
                assert lost + block.shape[1] == 4 * capacity
                assert mirror.gap_frames > 0
                assert mirror.output.stats.frames_lost == lost
                # what it does get is the owner's audio at the same positions
                np.testing.assert_array_equal(block, np.concatenate(owner_audio, axis=1)[:, lost:])
                await far.call(mirror.release(there))

    asyncio.run(run())


@needs_redis
def test_deleting_or_failing_the_stream_ends_its_mirrors_and_the_keys_expire(prefix):
    async def run():
        owner = Fanout(REDIS_URL, prefix, end_seconds=1)
        await owner.start()
        streams = manager(owner)
        streams.start()
        client = sync_redis()
        try:
            with node(prefix) as far:
                # deleted: every frame before the end, then the end
                stream = make_stream(streams)
                await until(published_end(owner, stream), "the start published")
                mirror = await far.mirror(stream.id)
                there = await far.consumer(mirror)
                x = noise(4800, seed=4)
                await feed(stream, x)
                await streams.delete(stream.id)
                await until(lambda: mirror.closed, "the mirror ended")
                assert (mirror.ended, mirror.message, mirror.failure) == (
                    "deleted",
                    "the stream was deleted",
                    None,
                )
                block, lost = there.read()
                assert (block.shape[1], lost) == (x.shape[1], 0)
                await far.call(mirror.release(there))
                # a mirror asked for afterwards (while the key lasts) is ended at once
                again = await far.mirror(stream.id)
                assert again.closed and again.ended == "deleted"
                await far.call(again.release())
                await until(lambda: not client.exists(owner.key(stream.id)), "the key expired")

                # failed: the effect's fault, as the owner has it
                broken = make_stream(streams, [ResolvedStep("broken_raise", Raises, Raises.Params())])
                await until(published_end(owner, broken), "the start published")
                mirror = await far.mirror(broken.id)
                broken.write(noise(256))
                await until(lambda: mirror.closed, "the mirror ended")
                assert broken.failure is not None
                assert mirror.ended == "failed"
                assert type(mirror.failure) is type(broken.failure)
                assert str(mirror.failure) == mirror.message == str(broken.failure)
                assert "steps[0] (broken_raise): raised RuntimeError" in mirror.message
                await far.call(mirror.release())
                await until(lambda: not client.exists(owner.key(broken.id)), "the key expired")
        finally:
            await streams.stop()
            await owner.stop()
            client.close()

    asyncio.run(run())


@needs_redis
def test_an_owner_that_stops_publishing_ends_mirrors_as_lost(prefix):
    """An owner killed writes no end: its key expires, and mirrors learn it is gone."""

    async def run():
        async with publishing(REDIS_URL, prefix, alive_seconds=1) as (owner, streams):
            stream = make_stream(streams)
            await until(published_end(owner, stream), "the start published")
            with node(prefix, relay_block_ms=100) as far:
                mirror = await far.mirror(stream.id)
                await owner.stop()  # the stream goes on, unpublished: no end marker
                await until(lambda: mirror.closed, "the mirror ended")
                assert mirror.ended == "lost" and "stopped publishing" in mirror.message
                await far.call(mirror.release())
                with pytest.raises(LookupError, match="is not published"):
                    await far.call(far.fanout.mirror(stream.id, channels=2, capacity=SR, wait_seconds=0.1))

    asyncio.run(run())


class Proxy:
    """A TCP relay to the test's Redis that can be cut (every connection closed, new ones
    refused) and restored on the same port: Redis going away and coming back."""

    def __init__(self) -> None:
        from redis.asyncio.connection import parse_url

        options = parse_url(REDIS_URL)
        self.target = (options.get("host", "localhost"), options.get("port", 6379))
        self.url = f"redis://127.0.0.1:{{port}}/{options.get('db', 0)}"
        self.port = 0
        self.server: asyncio.Server | None = None
        self.links: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._link, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        self.url = self.url.format(port=self.port)

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.links:
            writer.close()
        self.links.clear()
        await self.server.wait_closed()

    async def _link(self, client_reader, client_writer) -> None:
        redis_reader, redis_writer = await asyncio.open_connection(*self.target)
        self.links += [client_writer, redis_writer]

        async def pump(reader, writer) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            writer.close()

        # ends at the cut; cancelled when the test's loop closes (then quietly)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(pump(client_reader, redis_writer), pump(redis_reader, client_writer))


@needs_redis
def test_an_owner_that_loses_redis_skips_ahead_and_publishes_again(prefix, caplog):
    caplog.set_level(logging.WARNING, logger="fxhost.store.fanout")

    async def run():
        proxy = Proxy()
        await proxy.start()
        owner = Fanout(proxy.url, prefix)
        await owner.start()
        published = []
        streams = manager(None)
        streams.on_create = lambda stream: published.append(owner.publish(stream))
        streams.start()
        try:
            stream = make_stream(streams)
            await until(published_end(owner, stream), "the start published")
            here = stream.consumer()
            with node(prefix) as far:
                mirror = await far.mirror(stream.id)
                there = await far.consumer(mirror)
                x = noise(3 * 4800, seed=7)
                await feed(stream, x[:, :4800])
                _, before, _ = await collect(there, 4800, "the mirror's consumer")
                await proxy.cut()
                await until(lambda: not owner._pipe.connected.is_set(), "the publisher saw Redis go")
                await feed(stream, x[:, 4800:9600])  # the stream goes on
                await proxy.start()  # the same port
                await until(lambda: owner._pipe.connected.is_set(), "the publisher reconnected")
                await feed(stream, x[:, 9600:])
                _, a, lost_here = await collect(here, x.shape[1], "the owner's consumer")
                assert lost_here == 0
                np.testing.assert_array_equal(before, a[:, :4800])
                await until(published_end(owner, stream), "the output published")
                await until(lambda: mirror.output.write_pos == x.shape[1], "the relay caught up")
                after, lost = there.read()
                assert 0 < lost <= 4800  # what was processed while Redis was away
                np.testing.assert_array_equal(after, a[:, 4800 + lost :])
                assert published[0].skipped == lost == mirror.gap_frames
                assert published[0].incidents == 1
                await far.call(mirror.release(there))
        finally:
            await streams.stop()
            await owner.stop()
            await proxy.cut()

    asyncio.run(run())
    messages = [r.getMessage() for r in caplog.records]
    assert sum("publishing stream" in m for m in messages) == 1, messages
    assert sum("is published again" in m for m in messages) == 1, messages
    assert any("connection to Redis broke" in m for m in messages)


def test_a_redis_that_does_not_answer_leaves_the_owners_stream_untouched(caplog):
    caplog.set_level(logging.ERROR, logger="fxhost.store.fanout")

    async def run():
        nowhere = f"redis://127.0.0.1:{free_port()}/0"
        # Starting logs, does not fail.
        async with publishing(nowhere, "fxtest-nowhere") as (owner, streams):
            stream = make_stream(streams)
            here = stream.consumer()
            x = noise(SR // 2, seed=5)
            await feed(stream, x)
            _, a, lost = await collect(here, x.shape[1], "the owner's consumer")
            assert lost == 0
            np.testing.assert_allclose(a, pedalboard.Reverb(**HALL).process(x, SR), atol=1e-5)
            with pytest.raises(FanoutUnavailable, match="Redis did not answer"):
                await owner.mirror(stream.id, channels=2, capacity=SR)
            await streams.delete(stream.id)  # ends, and the publisher with it
            await until(lambda: not owner._publishers, "the publisher ended")

    asyncio.run(run())
    records = [r.getMessage() for r in caplog.records]
    assert any("does not answer" in m for m in records)
    incidents = [m for m in records if "publishing stream" in m]
    assert len(incidents) == 1, records  # one line per incident, not per block
    assert any("could not be published" in m for m in records)  # its end


@needs_redis
def test_a_server_with_redis_publishes_stream_output_at_its_frame_positions(tmp_path, prefix):
    server = start_server(tmp_path, {"FXHOST_REDIS_URL": REDIS_URL, "FXHOST_REDIS_PREFIX": prefix})
    client = sync_redis()
    try:
        with server.client() as http:
            response = http.post("/api/streams", json={"chain": "hall", "sample_rate": SR, "capacity": SR})
            assert response.status_code == 201, response.text
            stream = response.json()
            key = f"{prefix}:stream:{stream['id']}:out"
            wait_until(lambda: client.exists(key), what="the stream published")
            consumer = open_ws(server.base, f"/ws/streams/{stream['id']}/output")
            wait_until(lambda: http.get(f"/api/streams/{stream['id']}").json()["consumers"] == 1)
            producer = open_ws(server.base, f"/ws/streams/{stream['id']}/input")
            x = noise(SR // 2, seed=6)
            for i in range(0, x.shape[1], 480):
                producer.send(interleave(x[:, i : i + 480]))
            got, total = [], 0
            while total < x.shape[1]:
                message = consumer.recv(timeout=20)
                if isinstance(message, bytes):
                    got.append(deinterleave(message, 2))
                    total += got[-1].shape[1]
            heard = np.concatenate(got, axis=1)
            np.testing.assert_allclose(heard, pedalboard.Reverb(**HALL).process(x, SR), atol=1e-5)

            def entries() -> list[tuple[bytes, dict]]:
                return client.xrange(key)

            wait_until(
                lambda: sum(int(f.get(b"frames", 0)) for _, f in entries()) == x.shape[1],
                what="every frame in Redis",
            )
            start, *chunks = entries()
            assert start[0] == b"0-1" and start[1][b"kind"] == b"start"
            assert int(start[1][b"channels"]) == 2 and int(start[1][b"capacity"]) == SR
            position = 0
            for entry_id, fields in chunks:
                assert fields[b"kind"] == b"chunk"
                assert int(fields[b"frame"]) == position and entry_id == f"{position}-2".encode()
                n = int(fields[b"frames"])
                block = np.frombuffer(fields[b"data"], "<f4").reshape(2, n)
                np.testing.assert_array_equal(block, heard[:, position : position + n])
                position += n
            assert 0 < client.ttl(key) <= 30  # renewed while published

            assert http.delete(f"/api/streams/{stream['id']}").status_code == 204
            wait_until(lambda: entries()[-1][1][b"kind"] == b"end", what="the end in Redis")
            end = entries()[-1]
            assert end[0] == f"{x.shape[1]}-3".encode() and end[1][b"end"] == b"deleted"
            assert 0 < client.ttl(key) <= 60
            producer.close()
            consumer.close()
    finally:
        server.stop()
        client.close()


def test_redis_settings_are_checked_and_name_the_variable(tmp_path):
    settings = load_settings({}, tmp_path / ".env")
    assert (settings.redis_url, settings.redis_prefix) == ("", "fxhost")  # off by default
    with pytest.raises(FieldError) as error:
        load_settings({"FXHOST_REDIS_URL": "http://127.0.0.1:6379"}, tmp_path / ".env")
    assert error.value.path == "FXHOST_REDIS_URL"
    with pytest.raises(FieldError) as error:
        load_settings({"FXHOST_REDIS_PREFIX": "two words"}, tmp_path / ".env")
    assert error.value.path == "FXHOST_REDIS_PREFIX"
    assert load_settings({"FXHOST_REDIS_URL": "rediss://u:p@h:6380/2"}, tmp_path / ".env").redis_url


@needs_redis
def test_a_mirror_made_with_the_wrong_channel_count_ends_instead_of_relaying_nonsense(prefix, caplog):
    caplog.set_level(logging.ERROR, logger="fxhost.store.fanout")

    async def run():
        async with publishing(REDIS_URL, prefix) as (owner, streams):
            stream = make_stream(streams)
            await until(published_end(owner, stream), "the start published")
            with node(prefix) as far:
                mirror = await far.call(far.fanout.mirror(stream.id, channels=3, capacity=SR))
                await feed(stream, noise(256))
                await until(lambda: mirror.closed, "the mirror ended")
                assert mirror.ended == "lost" and "make no sense" in mirror.message
                assert mirror.output.write_pos == 0
                await far.call(mirror.release())

    asyncio.run(run())
    assert any("makes no sense" in r.getMessage() for r in caplog.records)
