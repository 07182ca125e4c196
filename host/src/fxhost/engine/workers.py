"""Worker processes for offline processing (renders and ``/api/process``), with a time limit.

A thread stuck in an effect cannot be stopped; a process can. Tasks run in a pebble
``ProcessPool``: a task past the time limit has its worker killed and replaced, and the
server and the other tasks carry on. Workers are forked from a forkserver (a clean,
single-threaded process with the engine imported), never from the threaded server; a
command-line batch, which is no server, may fork them from itself (``start_method``).

The workers start with the server, in the background (a thread waits for the
forkserver to import the engine and the effects' modules: 0.4 s on the idle development
machine, 3 s when it is busy), so that the first task does not pay for it; a task
submitted before they are ready waits for them. "render workers ready" is logged once
every worker has said so from its initializer.

Each task reports back on one pipe shared by the workers: its progress, and, when it
reaches the time limit, which step it is stuck in (read from its stack by a timer
thread a moment before pebble kills it). Messages are far smaller than PIPE_BUF, so
each write is atomic and the workers need no lock that a killed one could leave held.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Literal, TypeVar

import msgspec
from pebble import ProcessExpired, ProcessPool

from fxhost.engine.compiled import EffectFault, EffectTimeout, running_step

T = TypeVar("T")

log = logging.getLogger(__name__)

#: After the time limit, pebble kills the worker this much later: time for the timer
#: thread to report the hung step first.
KILL_GRACE_SECONDS = 1.0
#: Stopping waits at most this long for the workers' start to finish.
STOP_WAIT_SECONDS = 10.0
#: Progress is reported at most this often per task.
PROGRESS_SECONDS = 0.1

_encode = msgspec.json.encode
_decode = msgspec.json.decode


@dataclass
class _Watch:
    progress: Callable[[float], None] | None
    stuck: tuple[int, str] | None = None


class WorkerPool:
    """Processes that run offline tasks, each within ``time_limit`` seconds."""

    def __init__(
        self,
        workers: int,
        time_limit: float,
        *,
        preload: tuple[str, ...] = (),
        start_method: Literal["forkserver", "fork"] = "forkserver",
    ):
        self.workers = workers
        self.time_limit = time_limit
        #: Modules the workers' forkserver imports once, so each task starts warm (the
        #: module of the task functions, and what it imports).
        self.preload = ("fxhost.engine.workers", *preload)
        #: "fork" forks the workers from this process, warm with whatever it has imported:
        #: only for a process with no threads of its own at work (``fxhost render
        #: --out-dir``), where it saves the forkserver's start (a new interpreter importing
        #: the engine and the effects again: 0.5 s of CPU before the first file).
        self.start_method = start_method
        self._pool: ProcessPool | None = None
        self._reader: Connection | None = None
        self._writer: Connection | None = None
        self._watches: dict[str, _Watch] = {}
        self._warming: asyncio.Task | None = None
        self._starter: threading.Thread | None = None
        self._lock = threading.Lock()
        self._starting = self._closing = False
        #: Process ids of the first workers, as they start.
        self.started_pids: set[int] = set()
        #: Workers that have started, replacements included: every one past the first
        #: ``workers`` replaced a worker that was killed (time limit, cancel) or died.
        self.worker_starts = 0
        self._all_started = asyncio.Event()

    def start(self) -> None:
        """Start the workers, in the background. Call on the event loop."""
        context = multiprocessing.get_context(self.start_method)
        if self.start_method == "forkserver":
            context.set_forkserver_preload(list(self.preload))
        # The writing end stays open here too: every replacement worker is handed it.
        self._reader, self._writer = context.Pipe(duplex=False)
        self._pool = ProcessPool(
            max_workers=self.workers,
            initializer=_init_worker,
            initargs=(self._writer, sys.path),
            context=context,
        )
        loop = asyncio.get_running_loop()
        loop.add_reader(self._reader.fileno(), self._on_message)
        started: asyncio.Future[Future] = loop.create_future()
        if self.start_method == "fork":
            # Forking takes milliseconds: here, from this thread, which outlives the
            # workers as it must (a worker dies with the thread that forked it, below).
            _settle(started, _schedule_first(self._pool))
        else:
            self._starting = True
            # A daemon thread, not the loop's executor: a server that stops while this runs
            # waits for it only so long (the forkserver, and with it the workers, die with it).
            args = (loop, self._pool, started)
            self._starter = threading.Thread(
                target=self._start_workers, args=args, name="pool-start", daemon=True
            )
            self._starter.start()
        self._warming = asyncio.create_task(self._warm(started))

    def _start_workers(
        self, loop: asyncio.AbstractEventLoop, pool: ProcessPool, started: asyncio.Future
    ) -> None:
        """In a thread: pebble starts its workers on the first ``schedule``, which blocks
        until the forkserver has imported the preloaded modules (seconds)."""
        outcome = _schedule_first(pool)
        with self._lock:
            self._starting = False
            closing = self._closing
        if closing:  # stop() came meanwhile, and left the pool to this thread
            pool.stop()
            pool.join()
        else:
            loop.call_soon_threadsafe(_settle, started, outcome)

    async def _warm(self, started: asyncio.Future[Future]) -> None:
        """Wait until the pool has started, has run a first task, and every worker has
        said it started (from its initializer)."""
        began = time.monotonic()
        try:
            await asyncio.wrap_future(await started)
        except Exception as error:  # the first task starts the pool again, and reports it
            log.warning("render workers failed to start: %s", error)
            return
        await self._all_started.wait()
        log.info(
            "render workers ready: %d process(es) in %.1f s (pids %s)",
            self.workers,
            time.monotonic() - began,
            " ".join(map(str, sorted(self.started_pids))),
        )

    @property
    def restarts(self) -> int:
        """Workers started to replace one that was killed or died."""
        return max(0, self.worker_starts - self.workers)

    @property
    def ready(self) -> bool:
        """True once every worker has started (the first tasks start warm)."""
        return self._warming is not None and self._warming.done() and self._all_started.is_set()

    async def stop(self) -> None:
        if self._starter is not None and self._starter.is_alive():
            # Stopping a pool halfway through its start leaves semaphores to the resource
            # tracker (a warning at exit): give the start a moment to finish first.
            await asyncio.to_thread(self._starter.join, STOP_WAIT_SECONDS)
        with self._lock:
            self._closing = True
            starting = self._starting
        if self._warming is not None:
            self._warming.cancel()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._reader.fileno())
        if self._pool is not None and not starting:
            self._pool.stop()  # kills the workers, whatever they are doing
            self._pool.join()
        for end in (self._reader, self._writer):
            if end is not None:
                end.close()

    async def run(
        self,
        fn: Callable[..., T],
        /,
        *args: Any,
        progress: Callable[[float], None] | None = None,
        **kwargs: Any,
    ) -> T:
        """``fn(*args, progress=..., **kwargs)`` in a worker (``fn`` and its arguments must
        pickle; ``fn`` takes a ``progress(fraction)`` keyword). Raises what ``fn`` raised;
        EffectTimeout past the time limit, naming the hung step if it could be seen;
        EffectFault if the worker died (a crash in native code). Cancelled, the worker is killed."""
        assert self._pool is not None and self._warming is not None, "WorkerPool.start() first"
        if not self._warming.done():
            await asyncio.shield(self._warming)  # scheduling now would block the loop
        task = secrets.token_hex(8)
        watch = self._watches[task] = _Watch(progress)
        future = self._pool.schedule(
            _run_task,
            args=(task, self.time_limit, fn, args, kwargs),
            timeout=self.time_limit + KILL_GRACE_SECONDS,
        )
        try:
            return await asyncio.wrap_future(future)
        except TimeoutError:
            index, effect = watch.stuck or (None, None)
            raise EffectTimeout(index, effect, f"exceeded the time limit of {self.time_limit:g} s") from None
        except ProcessExpired as error:
            how = f"signal {-error.exitcode}" if (error.exitcode or 0) < 0 else f"exit code {error.exitcode}"
            raise EffectFault(None, None, f"the worker process died ({how})", "crashed") from None
        finally:
            del self._watches[task]

    def _on_message(self) -> None:
        assert self._reader is not None
        task, kind, value = _decode(self._reader.recv_bytes())
        if kind == "started":  # from a worker's initializer; replacements too, later
            self.worker_starts += 1
            if not self._all_started.is_set():
                self.started_pids.add(value)
                if len(self.started_pids) >= self.workers:
                    self._all_started.set()
            return
        watch = self._watches.get(task)
        if watch is None:
            return
        if kind == "progress" and watch.progress is not None:
            watch.progress(value)
        elif kind == "stuck":
            watch.stuck = tuple(value) if value else None


# -- in the worker processes ----------------------------------------------------------

_channel: Connection | None = None


def _init_worker(channel: Connection, path: list[str]) -> None:
    global _channel
    _channel = channel
    # Effect classes travel by reference: import them from where the server found them
    # (plugins.toml's paths included).
    sys.path[:] = path
    # Forked from a command line, a worker would inherit what it redirected them to (a
    # progress display, whose thread is gone here): write to the real ones.
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    # multiprocessing hands every child the write end of the forkserver's liveness pipe.
    # A worker never starts processes of its own, and holding it would keep the
    # forkserver (and with it, through PDEATHSIG, the worker) alive after the server dies.
    alive = getattr(multiprocessing.forkserver._forkserver, "_forkserver_alive_fd", None)
    if alive is not None:
        with contextlib.suppress(OSError):
            os.close(alive)
        multiprocessing.forkserver._forkserver._forkserver_alive_fd = None
    if sys.platform == "linux":
        # Die with the forkserver, which dies with the server: a worker stuck in an
        # effect must not outlive a server that was killed. (Linux sends it when the
        # *thread* that forked the worker ends: the forkserver's only one, or, forked from
        # a command line, its main thread or pebble's, which outlive the pool.)
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
            if os.getppid() == 1:
                os._exit(1)
    _send("", "started", os.getpid())


def _schedule_first(pool: ProcessPool) -> Future | BaseException:
    """Pebble starts its workers on the first ``schedule``: a task that returns a pid."""
    try:
        return pool.schedule(os.getpid)
    except Exception as error:
        return error


def _settle(future: asyncio.Future, outcome: object) -> None:
    if not future.done():
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def _send(task: str, kind: str, value: Any) -> None:
    assert _channel is not None
    _channel.send_bytes(_encode((task, kind, value)))


def _run_task(task: str, time_limit: float, fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
    main = threading.get_ident()
    # At the limit, say which step hangs; pebble kills this process a moment later.
    timer = threading.Timer(time_limit, lambda: _send(task, "stuck", running_step(main)))
    timer.daemon = True
    timer.start()
    last = 0.0

    def progress(fraction: float) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= PROGRESS_SECONDS:
            last = now
            _send(task, "progress", fraction)

    try:
        return fn(*args, progress=progress, **kwargs)
    finally:
        timer.cancel()
