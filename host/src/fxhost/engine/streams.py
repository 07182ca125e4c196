"""Shared streams: named live sessions whose producers write into an input ring, whose
one processing task runs the chain, and whose many consumers read the output ring, each
at its own cursor. No HTTP; everything here runs on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Literal

import msgspec
import numpy as np
from fxhost_sdk.host import AssetLoader

from fxhost.audio.pcm import PcmFormat
from fxhost.engine import clock
from fxhost.engine.clock import Timestamp
from fxhost.engine.compiled import EffectFault, Step
from fxhost.engine.deadline import DeadlineRunner
from fxhost.engine.live import LiveChain
from fxhost.engine.ring import RingBuffer, RingReader, RingStats
from fxhost.engine.tally import LiveTotals
from fxhost.engine.timing import AudioClock

log = logging.getLogger(__name__)

#: What a producer's block that does not fit the input ring does: refused, or the oldest
#: unprocessed input dropped.
OverflowPolicy = Literal["reject", "drop_oldest"]
#: The most frames a stream's processing task runs through the chain at once before
#: letting other tasks run.
STREAM_CHUNK = 4096


class Broadcast:
    """Wakes every waiting task when something changes (an asyncio.Event per round)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    def wait(self) -> Coroutine[Any, Any, Literal[True]]:
        # Bound to the current round now, not when the awaiting task first runs: a
        # notify() in between must still wake it.
        return self._event.wait()


class StreamInfo(msgspec.Struct, kw_only=True):
    id: str
    chain: str | None
    steps: list[dict[str, Any]]
    sample_rate: int
    channels: int
    format: PcmFormat
    capacity: int
    overflow: OverflowPolicy
    #: The chain's latency, in frames and in ms at ``sample_rate``.
    latency: int
    latency_ms: float = 0.0
    consumers: int
    created: Timestamp
    idle_seconds: float


class StreamBuffers(msgspec.Struct, kw_only=True):
    stream: str
    input: RingStats
    output: RingStats


class Stream:
    """A named, shared session: producers write into the input ring, one processing task
    runs the chain into the output ring, consumers read it at their own cursors."""

    def __init__(
        self,
        stream_id: str,
        chain_name: str | None,
        live: LiveChain,
        *,
        sample_rate: int,
        channels: int,
        wire_format: PcmFormat,
        capacity: int,
        overflow: OverflowPolicy,
        tenant: str,
    ):
        self.id = stream_id
        #: The API key that made it; only that key may produce, consume or change it.
        self.tenant = tenant
        self.chain_name = chain_name
        self.live = live
        self.sample_rate = sample_rate
        self.channels = channels
        self.format = wire_format
        self.capacity = capacity
        self.overflow = overflow
        self.input = RingBuffer(channels, capacity)
        self.output = RingBuffer(channels, capacity)
        self._processor = self.input.reader(name="processing")
        #: The processing task's audio clock: its late chunks are the stream's late blocks.
        self.clock = AudioClock(sample_rate)
        self.input_ready = Broadcast()
        self.output_ready = Broadcast()
        self.created = clock.now()
        self.last_active = time.monotonic()
        self.consumers = 0
        self.closed = False
        #: Why processing stopped, when an effect failed: producers and consumers are told.
        self.failure: EffectFault | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"stream-{self.id}")

    def touch(self) -> None:
        self.last_active = time.monotonic()

    def write(self, block: np.ndarray) -> None:
        """Producer side. Raises RingOverflow under the ``reject`` policy when the input
        ring cannot take the block (nothing is written then)."""
        if self.closed:
            raise RuntimeError("the stream is closed")
        self.touch()
        self.input.write(block, overflow=self.overflow, guard=self._processor)
        self.input_ready.notify()

    @property
    def unprocessed(self) -> int:
        """Input frames written but not yet processed (the input queue's depth)."""
        return self.input.write_pos - self._processor.cursor

    async def _run(self) -> None:
        # Output position == input position, always: the chain gives as many frames as
        # it is given, and input frames dropped before processing (``drop_oldest``)
        # come out as silence. The chain's latency is inside that audio (StreamInfo.latency).
        clock = self.clock
        try:
            while not self.closed:
                block, lost = self._processor.read(STREAM_CHUNK)
                if lost:
                    self.output.write_silence(lost)
                if block.shape[1] == 0:
                    await self.input_ready.wait()
                    continue
                clock.arrive(block.shape[1], time.perf_counter())
                out = await self.live.process(block)
                self.output.write(out)
                clock.done(time.perf_counter())
                self.output_ready.notify()
                await asyncio.sleep(0)  # let producers and consumers run between chunks
        except asyncio.CancelledError:
            raise
        except EffectFault as fault:
            self.fail(fault)
        except Exception:
            log.exception("stream %s: processing failed; the stream is closed", self.id)
            self.closed = True
            self.output_ready.notify()

    def fail(self, fault: EffectFault) -> None:
        """Stop the stream for an effect's fault; it answers with the fault until reaped."""
        log.warning("stream %s: %s; the stream is closed", self.id, fault)
        self.failure, self.closed = fault, True
        self.input_ready.notify()
        self.output_ready.notify()

    async def close(self) -> None:
        self.closed = True
        self.input_ready.notify()
        self.output_ready.notify()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def info(self) -> StreamInfo:
        return StreamInfo(
            id=self.id,
            chain=self.chain_name,
            steps=self.live.step_params(),
            sample_rate=self.sample_rate,
            channels=self.channels,
            format=self.format,
            capacity=self.capacity,
            overflow=self.overflow,
            latency=self.live.latency,
            latency_ms=round(self.live.latency * 1000 / self.sample_rate, 3),
            consumers=self.consumers,
            created=self.created,
            idle_seconds=round(time.monotonic() - self.last_active, 3),
        )

    def buffers(self) -> StreamBuffers:
        return StreamBuffers(stream=self.id, input=self.input.stats, output=self.output.stats)

    def consumer(self, start: int | None = None) -> RingReader:
        """A reader of the output from ``start`` (an absolute frame position, at most
        the output's ``write_pos``; ValueError beyond), or from now."""
        reader = self.output.reader(
            start="now" if start is None else start, name=f"consumer-{secrets.token_hex(3)}"
        )
        self.consumers += 1
        self.touch()
        return reader

    def release(self, reader: RingReader) -> None:
        self.consumers -= 1
        self.output.remove_reader(reader)


class RingCounts(msgspec.Struct, kw_only=True):
    """Ring counters summed over streams: what consumers lost (the output rings'
    overruns and lost frames) and what producers had refused or dropped (the input
    rings'; dropped input also laps the processing reader, which is not counted again)."""

    overruns: int = 0
    frames_lost: int = 0
    rejected_frames: int = 0
    dropped_frames: int = 0

    def add(self, stream: Stream) -> None:
        output, input_ = stream.output.stats, stream.input.stats
        self.add_counts(
            RingCounts(
                overruns=output.overruns,
                frames_lost=output.frames_lost,
                rejected_frames=input_.rejected_frames,
                dropped_frames=input_.dropped_frames,
            )
        )

    def add_counts(self, counts: RingCounts) -> None:
        self.overruns += counts.overruns
        self.frames_lost += counts.frames_lost
        self.rejected_frames += counts.rejected_frames
        self.dropped_frames += counts.dropped_frames


class StreamLimit(Exception):
    pass


class StreamManager:
    """The streams of this process, with a limit and idle expiry."""

    def __init__(
        self,
        *,
        max_streams: int,
        idle_seconds: float,
        inline_frames: int,
        max_tail_seconds: float,
        block_timeout: float,
        time_effects: bool = True,
        on_create: Callable[[Stream], object] | None = None,
    ):
        self.max_streams = max_streams
        #: Called with each stream made here once it runs (services: publish its output).
        self.on_create = on_create
        self.idle_seconds = idle_seconds
        self.inline_frames = inline_frames
        self.max_tail_seconds = max_tail_seconds
        self.runner = DeadlineRunner(block_timeout)
        self.streams: dict[str, Stream] = {}
        #: Told of each stream deleted (by a client or for idling), once it is closed.
        self.on_deleted: Callable[[str], Awaitable[None]] | None = None
        #: What every live chain made here ran (streams and /ws/process sessions alike).
        self.totals = LiveTotals(time_effects=time_effects)
        #: The ring counters of the streams deleted so far (:meth:`ring_counts`).
        self._retired = RingCounts()
        self._reaper: asyncio.Task | None = None

    def start(self) -> None:
        self.runner.start()
        self._reaper = asyncio.create_task(self._reap())

    async def stop(self) -> None:
        if self._reaper:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for stream in list(self.streams.values()):
            await stream.close()
        self.streams.clear()
        self.runner.stop()

    def live_chain(
        self,
        steps: Sequence[Step],
        sample_rate: int,
        channels: int,
        assets: AssetLoader | None = None,
    ) -> LiveChain:
        return LiveChain(
            steps,
            sample_rate,
            channels,
            inline_frames=self.inline_frames,
            max_tail_seconds=self.max_tail_seconds,
            runner=self.runner,
            assets=assets,
            totals=self.totals,
        )

    def create(
        self,
        chain_name: str | None,
        steps: Sequence[Step],
        *,
        sample_rate: int,
        channels: int,
        wire_format: PcmFormat,
        capacity: int,
        overflow: OverflowPolicy,
        tenant: str,
        assets: AssetLoader | None = None,
    ) -> Stream:
        if len(self.streams) >= self.max_streams:
            raise StreamLimit(f"this server runs at most {self.max_streams} streams; delete one first")
        stream = Stream(
            secrets.token_hex(12),
            chain_name,
            self.live_chain(steps, sample_rate, channels, assets),
            sample_rate=sample_rate,
            channels=channels,
            wire_format=wire_format,
            capacity=capacity,
            overflow=overflow,
            tenant=tenant,
        )
        self.streams[stream.id] = stream
        stream.start()
        if self.on_create is not None:
            self.on_create(stream)
        return stream

    def get(self, stream_id: str, tenant: str) -> Stream | None:
        """The tenant's stream, open or stopped by a fault (until reaped, so that it can
        say why); another tenant's is as absent as one that never was."""
        stream = self.streams.get(stream_id)
        if stream is None or stream.tenant != tenant:
            return None
        return stream if not stream.closed or stream.failure is not None else None

    def of(self, tenant: str) -> list[Stream]:
        return [s for s in self.streams.values() if s.tenant == tenant and not s.closed]

    async def delete(self, stream_id: str) -> bool:
        stream = self.streams.pop(stream_id, None)
        if stream is None:
            return False
        await stream.close()
        if self.on_deleted is not None:
            await self.on_deleted(stream_id)
        self._retired.add(stream)
        return True

    def ring_counts(self) -> RingCounts:
        """Overruns, lost, rejected and dropped frames of every stream's rings, deleted
        streams included: counters that only grow."""
        counts = RingCounts()
        counts.add_counts(self._retired)
        for stream in self.streams.values():
            counts.add(stream)
        return counts

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, self.idle_seconds / 2))
            now = time.monotonic()
            for stream in list(self.streams.values()):
                idle = now - stream.last_active
                if stream.closed or (stream.consumers == 0 and idle > self.idle_seconds):
                    log.info("stream %s expired after %.0f s idle", stream.id, idle)
                    await self.delete(stream.id)
