"""Live processing, with no HTTP: a chain fed block by block for one client, and shared
streams whose producers write into an input ring, whose one processing task runs the
chain, and whose many consumers read the output ring, each at its own cursor.

Everything here runs on the event loop except chain processing of blocks larger than
``inline_frames``, which goes to a worker thread so that one client's big block never
stalls the others. Every block has a deadline (:class:`BlockRunner`): an effect that
hangs ends its session, not the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import secrets
import signal
import threading
import time
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import msgspec
import numpy as np
from fxhost_sdk import AssetLoader, FieldError

from fxhost.chains import ResolvedStep
from fxhost.engine import CompiledChain, EffectFault, EffectTimeout, running_step
from fxhost.ring import RingBuffer, RingReader, RingStats

log = logging.getLogger(__name__)

Overflow = Literal["reject", "drop_oldest"]
WireFormat = Literal["f32le", "s16le"]
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


class _Abandoned(BaseException):
    """Raised into a thread stuck in an effect, to end it if it is running Python code."""


class BlockRunner:
    """Runs live blocks through chains, each block within ``timeout`` seconds, so that an
    effect that hangs ends its session instead of freezing the server.

    Small blocks run on the event loop (:meth:`now`): a thread hop per block would cost
    more than the processing (bench/streaming.py: 37 -> 102 us of server CPU per 256-frame
    block). There a watchdog thread sends the loop's thread a signal when a block runs
    past the deadline, and the handler raises EffectTimeout into it: that ends an effect
    that sleeps or loops in Python, but one stuck in native code that ignores signals
    still freezes the loop (set FXHOST_INLINE_FRAMES=0 to send every block to a thread).

    Large blocks run in worker threads (:meth:`run`). A thread stuck in an effect cannot
    be killed (Python has no way to stop a thread): it is abandoned. Its pool is
    replaced, so no other block waits for its slot, and an exception is raised into it,
    which ends a pure-Python loop at its next bytecode but not a call blocked in native
    code (a sleep, a C++ deadlock): that thread stays until the call returns, or the
    process ends."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self._threads = min(32, (os.cpu_count() or 1) + 4)
        self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix="live")
        # The block on the loop: when it started (0.0: none), and the one signalled.
        self._started = 0.0
        self._signalled = 0.0
        self._watchdog: threading.Thread | None = None
        self._stopping = threading.Event()
        self._previous_handler: Any = None

    def start(self) -> None:
        """Call on the event loop. Python runs signal handlers in the main thread only: a
        loop elsewhere (a test client's thread) runs blocks with no deadline."""
        if threading.current_thread() is not threading.main_thread():
            return
        self._previous_handler = signal.signal(signal.SIGALRM, self._expired)
        loop_thread = threading.get_ident()

        def watch() -> None:
            while not self._stopping.wait(min(0.1, self.timeout / 4)):
                started = self._started
                if started and started != self._signalled and time.monotonic() - started > self.timeout:
                    self._signalled = started
                    signal.pthread_kill(loop_thread, signal.SIGALRM)

        self._watchdog = threading.Thread(target=watch, name="live-deadline", daemon=True)
        self._watchdog.start()

    def now(self, chain: CompiledChain, block: np.ndarray) -> np.ndarray:
        """``chain.process(block)`` here, on the event loop; EffectTimeout past the deadline."""
        self._started = time.monotonic()
        try:
            return chain.process(block)
        finally:
            self._started = 0.0

    def _expired(self, signum: int, frame: Any) -> None:
        if self._started and self._started == self._signalled:  # else that block has ended
            self._started = 0.0
            index, effect = running_step(threading.get_ident()) or (None, None)
            raise EffectTimeout(index, effect, f"took longer than {self.timeout:g} s on one block")

    async def run(self, chain: CompiledChain, block: np.ndarray) -> np.ndarray:
        """``chain.process(block)`` in a worker thread; EffectTimeout past the deadline."""
        loop = asyncio.get_running_loop()
        worker: list[int] = []

        def work() -> np.ndarray:
            worker.append(threading.get_ident())
            return chain.process(block)

        future = loop.run_in_executor(self._executor, work)
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            future.cancel()

        timer = loop.call_later(self.timeout, expire)
        try:
            return await future
        except asyncio.CancelledError:
            if not expired:
                raise
            index, effect = (running_step(worker[0]) if worker else None) or (None, None)
            self._abandon(worker[0] if worker else None)
            raise EffectTimeout(index, effect, f"took longer than {self.timeout:g} s on one block") from None
        finally:
            timer.cancel()

    def _abandon(self, thread_id: int | None) -> None:
        old, self._executor = self._executor, ThreadPoolExecutor(self._threads, thread_name_prefix="live")
        old.shutdown(wait=False)  # blocks queued there still run on its other threads
        if thread_id is not None:
            set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
            set_async_exc(ctypes.c_ulong(thread_id), ctypes.py_object(_Abandoned))
        log.warning("abandoned a live processing thread stuck in an effect for over %g s", self.timeout)

    def stop(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._watchdog is not None:
            self._stopping.set()
            self._watchdog.join()
            signal.signal(signal.SIGALRM, self._previous_handler)
            self._watchdog = None


class LiveChain:
    """A compiled chain driven block by block, with its counters. Blocks larger than
    ``inline_frames`` are processed in a worker thread."""

    def __init__(
        self,
        steps: Sequence[ResolvedStep],
        sample_rate: int,
        channels: int,
        *,
        inline_frames: int,
        max_tail_seconds: float,
        runner: BlockRunner,
        assets: AssetLoader | None = None,
    ):
        self.steps = list(steps)
        self.chain = CompiledChain(steps, sample_rate, channels, assets=assets)
        self.inline_frames = inline_frames
        self.runner = runner
        self.max_tail_seconds = max_tail_seconds
        self.frames_in = 0
        self.frames_out = 0
        self.blocks = 0
        self.process_seconds = 0.0
        self._lock = asyncio.Lock()  # one block at a time, parameter changes in between

    @property
    def latency(self) -> int:
        return self.chain.latency

    def step_params(self) -> list[dict[str, Any]]:
        """Each step's effect and its parameters as they are now."""
        return [
            {"effect": step.effect, "params": msgspec.to_builtins(effect.params)}
            for step, effect in zip(self.steps, self.chain.effects, strict=True)
        ]

    def tail_frames(self) -> int:
        return self.chain.tail_frames(self.max_tail_seconds) + self.chain.latency

    async def process(self, block: np.ndarray) -> np.ndarray:
        if block.shape[1] <= self.inline_frames and not self._lock.locked():
            # Runs to completion without awaiting: nothing can interleave, no lock needed.
            return self._process_now(block)
        async with self._lock:
            if block.shape[1] <= self.inline_frames:
                return self._process_now(block)
            start = time.perf_counter()
            out = await self.runner.run(self.chain, block)
            return self._count(block, out, start)

    def _process_now(self, block: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        return self._count(block, self.runner.now(self.chain, block), start)

    def _count(self, block: np.ndarray, out: np.ndarray, start: float) -> np.ndarray:
        self.process_seconds += time.perf_counter() - start
        self.frames_in += block.shape[1]
        self.frames_out += out.shape[1]
        self.blocks += 1
        return out

    async def set_params(self, index: int, params: dict[str, Any], path: str = "params") -> dict[str, Any]:
        """Validate and apply new parameters for step ``index`` between blocks; returns
        the step's full parameters. FieldError names the field; nothing changes then."""
        if not 0 <= index < len(self.chain.effects):
            raise FieldError("step", f"no step {index}: the chain has {len(self.chain.effects)} step(s)")
        effect = self.chain.effects[index]
        checked = effect.check_params({**msgspec.to_builtins(effect.params), **params}, path)
        async with self._lock:
            self.chain.set_params(index, checked)  # a plugin that fails here is a fault
        return msgspec.to_builtins(checked)

    async def tail(self, block_frames: int) -> list[np.ndarray]:
        """The chain ringing out: its tail (and latency) as processed silence, in blocks."""
        remaining = self.tail_frames()
        out = []
        silence = np.zeros((self.chain.channels, block_frames), dtype=np.float32)
        while remaining > 0:
            n = min(block_frames, remaining)
            out.append(await self.process(silence[:, :n]))
            remaining -= n
        return out


class StreamInfo(msgspec.Struct, kw_only=True):
    id: str
    chain: str | None
    steps: list[dict[str, Any]]
    sample_rate: int
    channels: int
    format: WireFormat
    capacity: int
    overflow: Overflow
    latency: int
    consumers: int
    created: float
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
        wire_format: WireFormat,
        capacity: int,
        overflow: Overflow,
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
        self.input_ready = Broadcast()
        self.output_ready = Broadcast()
        self.created = time.time()
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

    async def _run(self) -> None:
        try:
            while not self.closed:
                block, _lost = self._processor.read(STREAM_CHUNK)
                if block.shape[1] == 0:
                    await self.input_ready.wait()
                    continue
                out = await self.live.process(block)
                self.output.write(out)
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
            consumers=self.consumers,
            created=self.created,
            idle_seconds=round(time.monotonic() - self.last_active, 3),
        )

    def buffers(self) -> StreamBuffers:
        return StreamBuffers(stream=self.id, input=self.input.stats, output=self.output.stats)

    def consumer(self) -> RingReader:
        self.consumers += 1
        self.touch()
        return self.output.reader(start="now", name=f"consumer-{secrets.token_hex(3)}")

    def release(self, reader: RingReader) -> None:
        self.consumers -= 1
        self.output.remove_reader(reader)


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
    ):
        self.max_streams = max_streams
        self.idle_seconds = idle_seconds
        self.inline_frames = inline_frames
        self.max_tail_seconds = max_tail_seconds
        self.runner = BlockRunner(block_timeout)
        self.streams: dict[str, Stream] = {}
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
        steps: Sequence[ResolvedStep],
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
        )

    def create(
        self,
        chain_name: str | None,
        steps: Sequence[ResolvedStep],
        *,
        sample_rate: int,
        channels: int,
        wire_format: WireFormat,
        capacity: int,
        overflow: Overflow,
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
        return True

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, self.idle_seconds / 2))
            now = time.monotonic()
            for stream in list(self.streams.values()):
                idle = now - stream.last_active
                if stream.closed or (stream.consumers == 0 and idle > self.idle_seconds):
                    log.info("stream %s expired after %.0f s idle", stream.id, idle)
                    await self.delete(stream.id)
