"""Deadlines for live blocks: an effect that hangs ends its session, not the server.

The machinery is signals (a watchdog thread interrupts the event loop's thread) and
thread state (an exception raised into a thread stuck in an effect), which is why it
lives apart from the live chain that uses it.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from fxhost.engine.compiled import CompiledChain, EffectTimeout, running_step

log = logging.getLogger(__name__)


class _Abandoned(BaseException):
    """Raised into a thread stuck in an effect, to end it if it is running Python code."""


class DeadlineRunner:
    """Runs live blocks through chains, each block within ``timeout`` seconds, so that an
    effect that hangs ends its session instead of freezing the server.

    Small blocks run on the event loop (:meth:`process_inline`): a thread hop per block would cost
    more than the processing (bench/streaming.py: 37 -> 102 us of server CPU per 256-frame
    block). There a watchdog thread sends the loop's thread a signal when a block runs
    past the deadline, and the handler raises EffectTimeout into it: that ends an effect
    that sleeps or loops in Python, but one stuck in native code that ignores signals
    still freezes the loop (set FXHOST_INLINE_FRAMES=0 to send every block to a thread).

    Large blocks run in worker threads (:meth:`process_in_thread`). A thread stuck in an effect cannot
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
        #: Seconds the last block run by :meth:`process_inline` took.
        self.last_seconds = 0.0
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

    def process_inline(self, chain: CompiledChain, block: np.ndarray) -> np.ndarray:
        """``chain.process(block)`` here, on the event loop; EffectTimeout past the deadline.
        The seconds it took are left in :attr:`last_seconds` (the deadline's clock
        reading serves the caller's counters too: one clock read per block fewer)."""
        self._started = started = time.monotonic()
        try:
            out = chain.process(block)
        finally:
            self._started = 0.0
        self.last_seconds = time.monotonic() - started
        return out

    def _expired(self, signum: int, frame: Any) -> None:
        if self._started and self._started == self._signalled:  # else that block has ended
            self._started = 0.0
            index, effect = running_step(threading.get_ident()) or (None, None)
            raise EffectTimeout(index, effect, f"took longer than {self.timeout:g} s on one block")

    async def process_in_thread(self, chain: CompiledChain, block: np.ndarray) -> np.ndarray:
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
