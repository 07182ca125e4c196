"""A stream's output beyond its process: with Redis configured (``FXHOST_REDIS_URL``), the
process that owns a stream publishes its output to a Redis Stream, and any process relays
it into a local *mirror ring* that its own consumers read, so that the listeners of one
stream spread over many nodes. Input and control stay with the owner.

One Redis Stream per stream, ``<prefix>:stream:<id>:out``. Entry ids are frame positions
(``<frame>-<seq>``, explicit, increasing because positions do; seq 1, 2, 3 order a start,
a chunk and an end at one position), so that trimming is by
frames: each chunk's ``XADD`` trims the entries older than ``end - capacity`` (``MINID``),
which keeps at most the owner ring's capacity of frames in Redis. Entries:

- ``<W>-1`` start: ``{kind: start, frame: W, channels, sample_rate, capacity}``, written
  once when publishing starts (``W`` the output ring's ``write_pos`` then);
- ``<F>-2`` chunk: ``{kind: chunk, frame: F, frames: n, channels, data}``, ``F`` the
  output ring's position of the chunk's first frame, ``data`` its ``n`` frames as
  float32 little-endian, channel after channel (the ring's own layout: no conversion);
- ``<W>-3`` end: ``{kind: end, frame: W, end: deleted|failed, message, fault, index,
  effect, problem}`` when the stream closes (deleted, expired, stopped with the server,
  or failed: then the effect fault's fields). The key then expires after
  ``end_seconds``; while publishing, its expiry is renewed every ``alive_seconds / 3``,
  so that what a killed owner leaves behind expires too.

The publisher is one more reader of the output ring, woken by ``output_ready`` like any
consumer, after them: nothing changes in the processing task. It never waits for Redis:
its commands go down one pipelined connection per process (:class:`_Pipe`), and while
Redis is down or lags it skips ahead (frames counted, one log line per incident) and
picks up again. A mirror's relay ``XREAD``s from where it is, over a connection of its
own, and writes each chunk at the same position in its ring; frames trimmed before it
read them (or never published) are a jump of the ring (:meth:`RingBuffer.skip_to`), told
to its readers as lost frames. Both hot paths speak RESP by hand: through redis-py,
each command cost ten times the CPU (see :class:`_Pipe`); redis-py opens mirrors, and
parses the URL.

redis is imported only when a :class:`Fanout` starts, which services do only when
``FXHOST_REDIS_URL`` is set.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from fxhost.engine.compiled import EffectFault, EffectTimeout
from fxhost.engine.ring import RingBuffer, RingReader
from fxhost.engine.streams import Broadcast, Stream

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

__all__ = ["Fanout", "FanoutUnavailable", "Mirror", "PublisherStats"]

#: The most frames one chunk carries (a publisher that fell behind sends several).
MAX_CHUNK_FRAMES = 16384
#: Entries one relay XREAD takes at most.
RELAY_BATCH = 64
#: Longest wait before retrying Redis after a failure (doubling from 0.1 s).
MAX_BACKOFF_SECONDS = 5.0
#: How long ``Fanout.stop`` lets publishers write the end of the streams closed with the
#: server before cancelling them.
STOP_GRACE_SECONDS = 2.0

#: The sequence part of entry ids (``<frame>-<seq>``); never 0, as Redis refuses ``0-0``.
START, CHUNK, END = 1, 2, 3

Ended = Literal["deleted", "failed", "lost"]


async def _cancel(task: asyncio.Task) -> None:
    """Cancel ``task`` and wait for it to end. Insists: on Python 3.11 a cancel that lands
    as an ``asyncio.timeout`` expires can be taken for the timeout and swallowed."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.5)
    if not task.cancelled() and task.exception() is not None:
        log.error("fan-out: task %s failed", task.get_name(), exc_info=task.exception())


class FanoutUnavailable(Exception):
    """Redis did not answer (a mirror could not be made)."""


def _redis_errors() -> tuple[type[BaseException], ...]:
    from redis.exceptions import RedisError

    return (RedisError, OSError, asyncio.TimeoutError)


def _pack(args: tuple[Any, ...]) -> bytes:
    """One command in RESP, as redis-py's encoder makes it, without its per-call overhead."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if type(arg) is str:
            arg = arg.encode()
        elif type(arg) is int:
            arg = b"%d" % arg
        elif not isinstance(arg, bytes):
            arg = str(arg).encode()
        parts += (b"$%d\r\n" % len(arg), arg, b"\r\n")
    return b"".join(parts)


class _RedisError(Exception):
    """An error reply."""


async def _open(options: dict[str, Any], timeout: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to Redis as ``redis.asyncio.connection.parse_url`` describes it,
    authenticated and on its database."""
    async with asyncio.timeout(timeout):
        if "path" in options:
            reader, writer = await asyncio.open_unix_connection(options["path"])
        else:
            ssl = options.get("connection_class") is not None  # rediss://
            reader, writer = await asyncio.open_connection(
                options.get("host", "localhost"), options.get("port", 6379), ssl=ssl
            )
        try:
            hello = []
            if options.get("password"):
                user = (options["username"],) if options.get("username") else ()
                hello.append(("AUTH", *user, options["password"]))
            if options.get("db"):
                hello.append(("SELECT", options["db"]))
            for command in hello:
                writer.write(_pack(command))
                if isinstance(reply := await _reply(reader), _RedisError):
                    raise reply
        except BaseException:
            writer.close()
            raise
    return reader, writer


async def _reply(reader: asyncio.StreamReader) -> Any:
    """One RESP2 reply: bytes, int, None (nil), a list, or a :class:`_RedisError`."""
    line = await reader.readuntil(b"\r\n")
    kind, rest = line[:1], line[1:-2]
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else (await reader.readexactly(n + 2))[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [await _reply(reader) for _ in range(n)]
    if kind == b":":
        return int(rest)
    if kind == b"+":
        return rest
    if kind == b"-":
        return _RedisError(rest.decode(errors="replace"))
    raise ValueError(f"unexpected reply from Redis: {line[:40]!r}")


#: What a broken connection to Redis raises, on our own connections.
_CONNECTION_ERRORS = (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError, _RedisError)


class _Pipe:
    """The owner's one connection for publishing: commands are written without waiting
    for their replies (pipelined; those of one event-loop round in one socket write), and
    a reader task takes the replies in order. Awaiting each reply through redis-py cost
    150-200 µs of CPU per command here, writing the same command by hand and reading its
    reply 18 µs (2026-12-02, a loaded 2-core machine). ``send`` never waits:
    while the connection is down, or while Redis lags by more than ``MAX_BUFFER`` bytes,
    it refuses and the publisher skips ahead. One task keeps it connected (log lines
    once per incident)."""

    #: Bytes written and not yet taken by Redis past which sends are refused.
    MAX_BUFFER = 4 * 1024 * 1024

    def __init__(self, url: str, options: dict[str, Any], connect_timeout: float) -> None:
        self.url = url
        self.options = options
        self.connect_timeout = connect_timeout
        self._writer: asyncio.StreamWriter | None = None
        #: Commands sent in this event-loop round, written together at its end.
        self._queued: list[bytes] = []
        #: Per command sent, in order: a future for its reply, or None (reply ignored).
        self._pending: collections.deque[asyncio.Future | None] = collections.deque()
        self._task: asyncio.Task | None = None
        self.connected = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._keep_connected(), name="fanout-publishing")

    async def stop(self) -> None:
        if self._task is not None:
            await _cancel(self._task)
        self._close()

    def send(self, *args: Any, reply: bool = False) -> asyncio.Future | bool:
        """Write a command; False if it cannot be now. With ``reply``, a future of the
        reply (an error reply sets it to :class:`_RedisError`)."""
        writer = self._writer
        if writer is None or writer.transport.get_write_buffer_size() > self.MAX_BUFFER:
            return False
        if not self._queued:
            # One socket write per event-loop round for every stream publishing in it.
            asyncio.get_running_loop().call_soon(self._flush)
        self._queued.append(_pack(args))
        future = asyncio.get_running_loop().create_future() if reply else None
        self._pending.append(future)
        return future if future is not None else True

    def _flush(self) -> None:
        queued, self._queued = self._queued, []
        if queued and self._writer is not None:
            self._writer.write(b"".join(queued) if len(queued) > 1 else queued[0])

    async def _keep_connected(self) -> None:
        backoff, down_since = 0.1, None
        while True:
            try:
                reader = await self._connect()
            except (TimeoutError, OSError, _RedisError) as error:
                self._close()
                if down_since is None:
                    down_since = time.monotonic()
                    log.error("fan-out: Redis at %s does not answer (%s); will keep trying", self.url, error)
                await asyncio.sleep(backoff)
                backoff = min(2 * backoff, MAX_BACKOFF_SECONDS)
                continue
            if down_since is not None:
                log.warning("fan-out: Redis answers again after %.1f s", time.monotonic() - down_since)
            backoff, down_since = 0.1, None
            self.connected.set()
            try:
                await self._read_replies(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as error:
                down_since = time.monotonic()
                log.error("fan-out: the connection to Redis broke (%s); reconnecting", error)
            finally:
                self.connected.clear()
                self._close()

    async def _connect(self) -> asyncio.StreamReader:
        reader, self._writer = await _open(self.options, self.connect_timeout)
        return reader

    async def _read_replies(self, reader: asyncio.StreamReader) -> None:
        while True:
            reply = await _reply(reader)
            future = self._pending.popleft()
            if future is None:
                if isinstance(reply, _RedisError) and "equal or smaller" not in str(reply):
                    log.warning("fan-out: Redis refused a command: %s", reply)
            elif not future.done():
                if isinstance(reply, _RedisError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._queued = []
        while self._pending:
            future = self._pending.popleft()
            if future is not None and not future.done():
                future.set_exception(ConnectionError("the connection to Redis was lost"))


class PublisherStats:
    """What a stream's publisher did (attributes, read by tests and logs)."""

    __slots__ = ("chunks", "frames", "incidents", "skipped")

    def __init__(self) -> None:
        #: Chunks and frames written to Redis.
        self.chunks = 0
        self.frames = 0
        #: Frames of output never published (Redis down or too slow), and how many times
        #: publishing broke off.
        self.skipped = 0
        self.incidents = 0


class Fanout:
    """One per process: publishes the streams it owns, relays the others' into mirrors."""

    def __init__(
        self,
        url: str,
        prefix: str = "fxhost",
        *,
        alive_seconds: float = 30.0,
        end_seconds: float = 60.0,
        relay_block_ms: int = 1000,
        connect_timeout: float = 2.0,
    ) -> None:
        self.url = url
        self.prefix = prefix
        #: The key of a stream being published expires this long after its publisher
        #: last renewed it (so an owner killed leaves nothing for long).
        self.alive_seconds = alive_seconds
        #: An ended stream's key stays this long, for mirrors to read the end.
        self.end_seconds = end_seconds
        #: How long a relay's XREAD waits before checking that the key still exists.
        self.relay_block_ms = relay_block_ms
        self.connect_timeout = connect_timeout
        self.redis: Redis | None = None
        self._pipe: _Pipe | None = None
        self._options: dict[str, Any] = {}
        #: Stream id -> its publishing task, while it runs.
        self._publishers: dict[str, asyncio.Task] = {}
        self._mirrors: dict[str, Mirror] = {}
        self._making: dict[str, asyncio.Lock] = {}

    def key(self, stream_id: str) -> str:
        return f"{self.prefix}:stream:{stream_id}:out"

    async def start(self) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.connection import parse_url
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # Mirrors read through redis-py (no retries inside it: a relay retries on its own
        # schedule); publishers write through the pipe.
        self.redis = Redis.from_url(
            self.url, socket_connect_timeout=self.connect_timeout, retry=Retry(NoBackoff(), 0)
        )
        self._options = parse_url(self.url)
        self._pipe = _Pipe(self.url, self._options, self.connect_timeout)
        self._pipe.start()
        # Give it a moment, so that the first streams are published from their start.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.connect_timeout):
                await self._pipe.connected.wait()
                log.info("fan-out: stream output is published to Redis at %s", self.url)

    async def stop(self) -> None:
        publishers = list(self._publishers.values())
        if publishers:
            # Streams closed with the server are still writing their end: give them a moment.
            await asyncio.wait(publishers, timeout=STOP_GRACE_SECONDS)
        for task in [*publishers, *(m._relay for m in self._mirrors.values() if m._relay)]:
            await _cancel(task)
        self._publishers.clear()
        self._mirrors.clear()
        if self._pipe is not None:
            await self._pipe.stop()
            self._pipe = None
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None

    # -- the owner's side ----------------------------------------------------------------

    def publish(self, stream: Stream) -> PublisherStats:
        """Publish ``stream``'s output from now until it closes (a task; never blocks)."""
        if self.redis is None:
            raise RuntimeError("the fan-out is not started")
        stats = PublisherStats()
        reader = stream.output.reader(start="now", name="fanout")
        task = asyncio.create_task(self._publish(stream, reader, stats), name=f"fanout-{stream.id}")
        self._publishers[stream.id] = task
        task.add_done_callback(lambda _: self._publishers.pop(stream.id, None))
        return stats

    async def _publish(self, stream: Stream, reader: RingReader, stats: PublisherStats) -> None:
        pipe, key = self._pipe, self.key(stream.id)
        assert pipe is not None
        started = failing = False
        renew_at = 0.0
        try:
            while True:
                # Bound to this round before reading: a notify meanwhile must still wake
                # the wait below.
                woken = stream.output_ready.wait()
                try:
                    # Consumers woken with this task read first: publishing never delays them.
                    await asyncio.sleep(0)
                    ended = stream.closed  # read first: what was written before it is sent
                    sent = started = started or bool(
                        pipe.send(
                            "XADD", key, f"{reader.cursor}-{START}", *self._start_fields(stream, reader)
                        )
                    )
                    sent = sent and self._drain(pipe, stream, reader, key, stats)
                    now = time.monotonic()
                    if sent and now >= renew_at:
                        sent = bool(pipe.send("EXPIRE", key, max(1, round(self.alive_seconds))))
                        renew_at = now + self.alive_seconds / 3
                    if sent and failing:
                        log.warning(
                            "fan-out: stream %s is published again (%d frames skipped so far)",
                            stream.id,
                            stats.skipped,
                        )
                        failing = False
                    elif not sent:
                        if not failing:
                            stats.incidents += 1
                            log.error(
                                "fan-out: publishing stream %s to Redis failed (Redis down or lagging); "
                                "its output is skipped until Redis takes it",
                                stream.id,
                            )
                        failing = True
                        stats.skipped += reader.skip_to_end()
                    if ended:
                        await self._end(pipe, stream, key)
                        return
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.alive_seconds / 3):
                            await woken
                finally:
                    woken.close()  # when not awaited (the round raised, or ended)
        finally:
            stream.output.remove_reader(reader)

    @staticmethod
    def _drain(pipe: _Pipe, stream: Stream, reader: RingReader, key: str, stats: PublisherStats) -> bool:
        """Send every chunk there is; False when the pipe refused one (its frames are
        counted as skipped)."""
        capacity = stream.output.capacity
        while True:
            frame = reader.cursor
            block, lost = reader.read(MAX_CHUNK_FRAMES)
            stats.skipped += lost  # lapped: the publisher was slower than the stream
            n = block.shape[1]
            if n == 0:
                return True
            frame += lost
            trim = frame + n - capacity
            data = block.astype("<f4", copy=False).tobytes()
            fields = ("kind", "chunk", "frame", frame, "frames", n, "channels", stream.channels, "data", data)
            trimming = ("MINID", "=", trim) if trim > 0 else ()
            if not pipe.send("XADD", key, *trimming, f"{frame}-{CHUNK}", *fields):
                stats.skipped += n
                return False
            stats.chunks += 1
            stats.frames += n

    @staticmethod
    def _start_fields(stream: Stream, reader: RingReader) -> tuple[Any, ...]:
        return (
            "kind",
            "start",
            "frame",
            reader.cursor,
            "channels",
            stream.channels,
            "sample_rate",
            stream.sample_rate,
            "capacity",
            stream.output.capacity,
        )

    async def _end(self, pipe: _Pipe, stream: Stream, key: str) -> None:
        fault = stream.failure
        frame = stream.output.write_pos
        fields: dict[str, Any] = {"kind": "end", "frame": frame}
        if fault is None:
            fields |= {"end": "deleted", "message": "the stream was deleted"}
        else:
            fields |= {
                "end": "failed",
                "message": str(fault),
                "fault": "effect_timeout" if isinstance(fault, EffectTimeout) else "effect_failed",
                "index": "" if fault.index is None else fault.index,
                "effect": fault.effect or "",
                "problem": fault.problem,
            }
        added = pipe.send(
            "XADD", key, f"{frame}-{END}", *(x for kv in fields.items() for x in kv), reply=True
        )
        expiring = pipe.send("EXPIRE", key, max(1, round(self.end_seconds)), reply=True)
        try:
            if not added or not expiring:
                raise ConnectionError("no connection to Redis")
            async with asyncio.timeout(STOP_GRACE_SECONDS):
                await asyncio.gather(added, expiring)  # type: ignore[arg-type]
        except (_RedisError, ConnectionError, TimeoutError) as error:
            if "equal or smaller" not in str(error):
                log.error("fan-out: the end of stream %s could not be published (%s)", stream.id, error)

    # -- a node's side ---------------------------------------------------------------------

    async def mirror(
        self, stream_id: str, *, channels: int, capacity: int, wait_seconds: float = 2.0
    ) -> Mirror:
        """This process's mirror of a stream published by another, with one reference for
        the caller (give it back with :meth:`Mirror.release`). Raises ``LookupError`` if
        nothing is published for ``stream_id`` within ``wait_seconds`` (a stream just
        created may not have published its start yet), :class:`FanoutUnavailable` if
        Redis does not answer."""
        if self.redis is None:
            raise RuntimeError("the fan-out is not started")
        # One opening at a time per stream: those who come meanwhile share it.
        lock = self._making.setdefault(stream_id, asyncio.Lock())
        try:
            async with lock:
                mirror = self._mirrors.get(stream_id)
                if mirror is None:
                    try:
                        mirror = await self._open_mirror(stream_id, channels, capacity, wait_seconds)
                    except _redis_errors() as error:
                        raise FanoutUnavailable(f"Redis did not answer: {error}") from None
                    self._mirrors[stream_id] = mirror
                mirror._refs += 1
                return mirror
        finally:
            if not lock.locked():
                self._making.pop(stream_id, None)

    async def _open_mirror(self, stream_id: str, channels: int, capacity: int, wait_seconds: float) -> Mirror:
        assert self.redis is not None
        key = self.key(stream_id)
        last = await self.redis.xrevrange(key, "+", "-", count=1)
        if not last:
            reply = await self.redis.xread({key: "0-0"}, count=1, block=max(1, round(wait_seconds * 1000)))
            last = reply[0][1] if reply else []
            if not last:
                raise LookupError(f"stream {stream_id!r} is not published")
        entry_id, fields = last[-1]
        frame = int(fields[b"frame"])
        if fields[b"kind"] == b"chunk":
            frame += int(fields[b"frames"])
        mirror = Mirror(self, stream_id, RingBuffer(channels, capacity, start=frame))
        if fields[b"kind"] == b"end":
            mirror._finish(fields)
        else:
            mirror._relay = asyncio.create_task(mirror._run(key, entry_id), name=f"mirror-{stream_id}")
        return mirror

    async def _drop(self, mirror: Mirror) -> None:
        if self._mirrors.get(mirror.stream_id) is mirror:
            del self._mirrors[mirror.stream_id]
        if mirror._relay is not None:
            await _cancel(mirror._relay)


class Mirror:
    """A copy, in this process, of a stream published by its owner elsewhere: ``output``
    is a ring at the owner's frame positions, written by a relay task; consumers read it
    like the stream's own output ring and wait on ``output_ready``. Shared by all the
    consumers of this process (reference-counted; the last :meth:`release` stops the
    relay).

    When it ends, ``closed`` is True and ``ended`` says why: ``"deleted"`` (the stream was
    deleted or expired: tell consumers 4404), ``"failed"`` (``failure`` is the effect
    fault, as on the owner), ``"lost"`` (its key vanished from Redis: the owner died or
    stopped publishing). ``message`` says it in words."""

    def __init__(self, fanout: Fanout, stream_id: str, output: RingBuffer) -> None:
        self.stream_id = stream_id
        self.output = output
        self.channels = output.channels
        self.output_ready = Broadcast()
        self.closed = False
        self.ended: Ended | None = None
        self.message = ""
        self.failure: EffectFault | None = None
        #: Frames the relay jumped over: trimmed in Redis before it read them, or never
        #: published (the owner's publisher skipped them).
        self.gap_frames = 0
        self.consumers = 0
        self._fanout = fanout
        self._refs = 0
        self._made = 0
        self._relay: asyncio.Task | None = None

    def __repr__(self) -> str:
        return f"Mirror({self.stream_id!r}, write_pos={self.output.write_pos}, ended={self.ended!r})"

    def consumer(self) -> RingReader:
        """A reader of the mirror from now on (like ``Stream.consumer``)."""
        self.consumers += 1
        self._made += 1
        return self.output.reader(start="now", name=f"mirror-consumer-{self._made}")

    async def release(self, reader: RingReader | None = None) -> None:
        """Give back the reference that ``Fanout.mirror`` gave, and remove ``reader``."""
        if reader is not None and reader.active:
            self.consumers -= 1
            self.output.remove_reader(reader)
        self._refs -= 1
        if self._refs <= 0:
            await self._fanout._drop(self)

    async def _run(self, key: str, last_id: bytes | str) -> None:
        # A connection of its own (XREAD BLOCK holds it), spoken to by hand like the
        # publisher's: redis-py's XREAD cost about ten times the CPU per chunk.
        fanout = self._fanout
        xread = ("XREAD", "COUNT", RELAY_BATCH, "BLOCK", fanout.relay_block_ms, "STREAMS", key)
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        failing, backoff = False, 0.1
        try:
            while True:
                try:
                    if writer is None:
                        reader, writer = await _open(fanout._options, fanout.connect_timeout)
                    assert reader is not None
                    writer.write(_pack((*xread, last_id)))
                    reply = await _reply(reader)
                    if isinstance(reply, _RedisError):
                        raise reply
                    if reply is None:  # nothing new within the block time: is the key still there?
                        writer.write(_pack(("EXISTS", key)))
                        if (await _reply(reader)) == 0:
                            self._finish(
                                {b"end": b"lost", b"message": b"the stream's owner stopped publishing"}
                            )
                            return
                        continue
                except _CONNECTION_ERRORS as error:
                    if writer is not None:
                        writer.close()
                        reader = writer = None
                    if not failing:
                        log.error(
                            "fan-out: relaying stream %s from Redis failed (%s); retrying",
                            self.stream_id,
                            error,
                        )
                    failing = True
                    await asyncio.sleep(backoff)
                    backoff = min(2 * backoff, MAX_BACKOFF_SECONDS)
                    continue
                if failing:
                    log.warning("fan-out: relaying stream %s again", self.stream_id)
                    failing, backoff = False, 0.1
                try:
                    for entry_id, flat in reply[0][1]:
                        last_id = entry_id
                        fields = dict(zip(flat[::2], flat[1::2], strict=True))
                        kind = fields[b"kind"]
                        if kind == b"chunk":
                            self._write(fields)
                        elif kind == b"end":
                            self._finish(fields)
                            return
                except (KeyError, ValueError, TypeError, IndexError) as error:
                    # Not what a publisher writes (another channel count, another program
                    # on the key): end rather than relay nonsense, or hang the consumers.
                    log.error(
                        "fan-out: stream %s: an entry in Redis makes no sense (%r)", self.stream_id, error
                    )
                    self._finish(
                        {b"end": b"lost", b"message": b"the stream's entries in Redis make no sense"}
                    )
                    return
                self.output_ready.notify()
        finally:
            if writer is not None:
                writer.close()

    def _write(self, fields: dict[bytes, bytes]) -> None:
        frame, n = int(fields[b"frame"]), int(fields[b"frames"])
        block = np.frombuffer(fields[b"data"], dtype="<f4").reshape(self.channels, n)
        ring = self.output
        expected = ring.write_pos
        if frame > expected:
            self.gap_frames += ring.skip_to(frame)
        elif frame < expected:  # already here (the relay started inside this chunk)
            if frame + n <= expected:
                return
            block = block[:, expected - frame :]
        ring.write(block)

    def _finish(self, fields: dict[bytes, bytes]) -> None:
        ended = fields[b"end"].decode()
        self.ended = ended  # type: ignore[assignment]
        self.message = fields.get(b"message", b"").decode()
        if ended == "failed":
            kind = EffectTimeout if fields.get(b"fault") == b"effect_timeout" else EffectFault
            index = fields.get(b"index", b"")
            self.failure = kind(
                int(index) if index else None,
                fields.get(b"effect", b"").decode() or None,
                fields.get(b"problem", b"").decode(),
            )
        self.closed = True
        self.output_ready.notify()
