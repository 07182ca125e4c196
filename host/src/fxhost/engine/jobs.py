"""A gate for whole-file jobs (analysis, pictures, transcoding of an asset): at most
``limit`` run at once, each in a thread of the gate's own pool, so the event loop stays
free; others wait in line, first come first served, for up to ``wait_seconds``, and are
then refused with :class:`Busy` (the edge answers 503 with ``Retry-After``).

Why a line with a bounded wait rather than refusing at once: these jobs last seconds,
so a client that arrives just after another usually gets its answer a moment later
instead of an error; past the wait the server is overloaded and says so, and a client
that went away leaves the line. A slot is freed when the job's thread ends, not when
its request does: a client that disconnects cannot make room for more work than
``limit`` threads, so the memory the jobs hold stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

__all__ = ["Busy", "JobGate"]


class Busy(Exception):
    """Every slot stayed taken for the whole wait; try again in ``retry_after`` seconds."""

    def __init__(self, limit: int, waited: float, retry_after: int):
        super().__init__(
            f"the server is busy with {limit} whole-file job(s) (analysis, pictures, transcoding) "
            f"and none ended within {waited:g} s; try again in {retry_after} s"
        )
        self.retry_after = retry_after


class JobGate:
    def __init__(self, limit: int, wait_seconds: float, *, name: str = "fxhost-job"):
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self.limit, self.wait_seconds = limit, wait_seconds
        #: Jobs holding a slot now (running in a thread, or handed a slot and about to).
        self.running = 0
        #: Most jobs that held a slot at once, since start.
        self.peak = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._executor = ThreadPoolExecutor(max_workers=limit, thread_name_prefix=name)
        self._mean_seconds = 1.0  # recent jobs' duration, for Retry-After

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    async def run(self, work: Callable[[], T]) -> T:
        """``work()`` in a thread once a slot is free; raises :class:`Busy` past the wait."""
        await self._acquire()
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        try:
            future = self._executor.submit(work)
        except BaseException:
            self._release()
            raise

        def done(_: Future) -> None:
            seconds = time.monotonic() - started
            with contextlib.suppress(RuntimeError):  # a closed loop: the server is stopping
                loop.call_soon_threadsafe(self._finished, seconds)

        future.add_done_callback(done)
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Refuse new jobs; jobs running finish in their threads."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _acquire(self) -> None:
        if self.running < self.limit and not self.waiting:
            self._take()
            return
        ticket: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(ticket)
        try:
            await asyncio.wait({ticket}, timeout=self.wait_seconds if self.wait_seconds > 0 else 0)
        except asyncio.CancelledError:
            self._leave(ticket)
            raise
        if not ticket.done():
            self._leave(ticket)
            raise Busy(self.limit, self.wait_seconds, self._retry_after())

    def _take(self) -> None:
        self.running += 1
        self.peak = max(self.peak, self.running)

    def _leave(self, ticket: asyncio.Future[None]) -> None:
        """A waiter gives up: its place in line goes, and a slot handed to it just now is passed on."""
        if ticket.done() and not ticket.cancelled():
            self._release()
        else:
            ticket.cancel()
        with contextlib.suppress(ValueError):  # handed a slot: out of line already
            self._waiters.remove(ticket)

    def _finished(self, seconds: float) -> None:
        self._mean_seconds += 0.25 * (seconds - self._mean_seconds)
        self._release()

    def _release(self) -> None:
        """A slot is free: the first waiter still in line gets it, or it goes back."""
        self.running -= 1
        while self._waiters:
            ticket = self._waiters.popleft()
            if not ticket.done():
                self._take()
                ticket.set_result(None)
                return

    def _retry_after(self) -> int:
        """Seconds until a slot is likely free: the line ahead, at the recent jobs' pace."""
        rounds = 1 + self.waiting / self.limit
        return max(1, min(3600, math.ceil(self._mean_seconds * rounds)))
