"""Benchmark: live processing over ``WS /ws/process`` at 48 kHz stereo in 256-frame blocks
(5.33 ms of audio each) through the reverb, against a bare Starlette + pedalboard handler
run side by side in the same run.

    uv run python bench/streaming.py [--quick] [--workers 2] [--generators 2]
        [--rt-seconds 5] [--ramp-seconds 3] [--tp-seconds 5] [--paired 5] [--generator-loop c]

1. Round-trip latency (send of a block -> receipt of its processed block), p50 and p99,
   for 1 and 16 concurrent real-time clients (one block every 5.333 ms each, paced
   against the monotonic clock).
2. The largest number of concurrent real-time clients with no late block (or at most
   ``--late-per-mille``; a ramp, then a bisection), and the p99 there: fxhost with 1
   worker, the bare handler, fxhost with ``--workers`` uvicorn workers and the bare app in
   as many processes (each started for its ramp only), with the CPU of each worker
   process, its clients and its late blocks; then one process at its ramp's N and the
   workers at 1.5 N, in turn ``--paired`` times (the same moments of the machine for
   both), fxhost and bare alike: the bare pair shows how far two event loops scale on
   this machine with none of fxhost's code.
3. Throughput with closed-loop clients (next block as soon as the reply is in), fxhost
   against the bare handler, runs interleaved (ABBA), and server CPU per block.

Starts ``fxhost serve`` on a free port in a temporary folder (SQLite), and the bare app
(``--serve-bare``, this file) under uvicorn with the options ``fxhost serve`` uses. The
real-time clients come from ``--generators`` processes running the lean client of
bench/wsload.py (the websockets client cost about as much CPU per block as the server),
under SCHED_IDLE (``--generator-policy``): they stand for clients on other machines, so
they run on what the servers leave idle rather than taking turns with them;
the closed loop runs in this process on uvloop with the ``websockets`` client. All on the
same machine as the servers: the generator's own CPU use, how late it sends against the
audio clock, and the CPU used by everything else on the machine are reported next to
every figure; replies are stamped by the kernel as they reach the client's socket. About
four minutes on a 2-core machine (``--quick``: about two).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import benchkit
import numpy as np
import uvloop
import wsload

SR = 48_000
CHANNELS = 2
BLOCK = 256
PERIOD = BLOCK / SR  # 5.333 ms
STEPS = [{"effect": "reverb"}]
START = {
    "type": "start",
    "steps": STEPS,
    "sample_rate": SR,
    "channels": CHANNELS,
    "format": "f32le",
    "block": BLOCK,
}
#: uvicorn options of ``fxhost serve`` (host/src/fxhost/cli.py), with the default
#: max_frame_bytes of 1 MiB.
UVICORN_OPTIONS = {"log_level": "warning", "timeout_graceful_shutdown": 10, "ws_max_size": 4 * 1024 * 1024}
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- the bare baseline server -------------------------------------------------------


def bare_app():
    """Accept, read the start message, reply ready, then per binary frame: deinterleave,
    ``pedalboard.Reverb().process(block, rate, 8192, False)`` (buffer size and reset=False
    by position) on one Reverb per connection, interleave, send."""
    import pedalboard
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    async def process(ws: WebSocket) -> None:
        await ws.accept()
        start = json.loads(await ws.receive_text())
        channels = start.get("channels", 2)
        rate = start.get("sample_rate") or SR
        reverb = pedalboard.Reverb()
        await ws.send_text(
            json.dumps(
                {"type": "ready", "latency": 0, "sample_rate": rate, "channels": channels, "format": "f32le"}
            )
        )
        try:
            while True:
                data = await ws.receive_bytes()
                block = np.frombuffer(data, dtype="<f4").reshape(-1, channels).T.copy()
                # Arguments by position, as fxhost's plugin passes them (by keyword, pybind11
                # matches names on every call: 6,000 instructions a block).
                out = reverb.process(block, rate, 8192, False)
                await ws.send_bytes(out.T.astype("<f4").tobytes())
        except WebSocketDisconnect:
            pass

    async def health(request):
        return PlainTextResponse("ok")

    return Starlette(routes=[WebSocketRoute("/ws/process", process), Route("/health", health)])


def serve_bare(port: int, processes: int = 1) -> None:
    """The bare app under uvicorn; with ``processes`` > 1, in that many processes, each
    with its own SO_REUSEPORT listening socket on ``port``, as ``fxhost serve --workers``
    runs (host/src/fxhost/supervisor.py): the baseline of how far two event loops scale
    on this machine with nothing of fxhost's in them."""
    import uvicorn

    if processes == 1:
        uvicorn.run(bare_app(), host="127.0.0.1", port=port, **UVICORN_OPTIONS)
        return
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # "spawn_main" in their command lines: Server.workers()
    procs = [ctx.Process(target=_serve_bare_reuseport, args=(port,)) for _ in range(processes)]
    for proc in procs:
        proc.start()

    def stop(*_) -> None:
        for proc in procs:
            proc.terminate()

    signal.signal(signal.SIGTERM, stop)
    for proc in procs:
        proc.join()


def _serve_bare_reuseport(port: int) -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    server = uvicorn.Server(uvicorn.Config(bare_app(), **UVICORN_OPTIONS))
    server.run(sockets=[sock])


# -- servers --------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/process"

    def cpu_seconds(self) -> float:
        """User + system CPU of the server: its process and all their descendants (uvicorn's
        workers, render pools), from /proc."""
        return sum(cpu_of(pid) for pid in descendants(self.proc.pid))

    def workers(self) -> list[int]:
        """The pids of uvicorn's worker processes (children started with spawn), or the
        server's own pid when it runs in one process."""
        pids = [pid for pid in children(self.proc.pid) if b"spawn_main" in _cmdline(pid)]
        return pids or [self.proc.pid]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def cpu_of(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:  # it has exited
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children(p)
    return out


def start_fxhost(root: Path, workers: int = 1) -> Server:
    """``fxhost serve`` (SQLite in ``root``) with ``workers`` uvicorn workers."""
    root.mkdir(parents=True, exist_ok=True)
    env = {"FXHOST_HOST": "127.0.0.1", "FXHOST_MAX_CONNECTIONS": "10000", "FXHOST_WORKERS": str(workers)}
    proc, port, log = benchkit.start_fxhost(root, env)
    name = "fxhost" if workers == 1 else f"fxhost-{workers}w"
    server = Server(name, proc, port, log)
    if workers > 1:
        deadline = time.monotonic() + 60
        while len(server.workers()) < workers and time.monotonic() < deadline:
            time.sleep(0.1)
    return server


def wait_healthy(name: str, proc: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{name} did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


def start_bare(root: Path, processes: int = 1) -> Server:
    port = benchkit.free_port()
    name = "bare" if processes == 1 else f"bare-{processes}p"
    log = root / f"{name}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-bare", str(port), "--bare-processes", str(processes)],
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(name, proc, port, log)
    wait_healthy(f"{name} server", proc, port, log)
    if processes > 1:  # healthy is one process listening: wait for all of them
        deadline = time.monotonic() + 60
        while len(listening(server.workers(), port)) < processes:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
    return server


# -- the load generator ---------------------------------------------------------------


def payloads(count: int = 16) -> list[bytes]:
    """Interleaved f32le blocks of a tone plus noise, cycled by every client."""
    rng = np.random.default_rng(0)
    n = count * BLOCK
    t = np.arange(n) / SR
    x = 0.3 * np.sin(2 * np.pi * 330 * t)[:, None] + 0.1 * rng.standard_normal((n, CHANNELS))
    x = x.astype("<f4")
    return [x[i * BLOCK : (i + 1) * BLOCK].tobytes() for i in range(count)]


PAYLOADS = payloads()
FRAME_BYTES = len(PAYLOADS[0])


async def open_client(url: str):
    """Connect, start, wait for ready, and process one untimed warm-up block (the first
    block primes the effect). No permessage-deflate: PCM does not compress."""
    from websockets.asyncio.client import connect

    ws = await connect(url, max_size=None, compression=None, open_timeout=60, ping_interval=None)
    await ws.send(json.dumps(START))
    ready = json.loads(await ws.recv())
    if ready.get("type") != "ready":
        raise RuntimeError(f"expected ready, got {ready}")
    await ws.send(PAYLOADS[0])
    if len(await ws.recv()) != FRAME_BYTES:
        raise RuntimeError("the warm-up reply has the wrong size")
    return ws


async def open_clients(url: str, n: int) -> list:
    clients = []
    for i in range(0, n, 16):  # a few at a time: connection setup is not measured
        clients += await asyncio.gather(*(open_client(url) for _ in range(i, min(n, i + 16))))
    return clients


async def close_clients(clients: list) -> None:
    await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)


class Meter:
    """CPU over a measured window, in cores: this process (the load generator), the
    server, and everything else on the machine (from /proc/stat, all cores)."""

    def __init__(self, server: Server):
        self.server = server

    def __enter__(self) -> Meter:
        self.wall = time.monotonic()
        self.cpu = _self_cpu()
        self.server_cpu = self.server.cpu_seconds()
        self.worker_pids = self.server.workers()
        self.worker_cpu = [cpu_of(pid) for pid in self.worker_pids]
        # Called once every client is connected: which worker took which connection.
        self.peer_worker = peer_ports(self.worker_pids, self.server.port)
        self.machine = _machine_busy()
        self.stolen = _machine_stolen()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = wall = time.monotonic() - self.wall
        self.gen_load = (_self_cpu() - self.cpu) / wall
        self.server_load = (self.server.cpu_seconds() - self.server_cpu) / wall
        #: Each uvicorn worker's share of a core (one entry for a single process).
        pairs = zip(self.worker_pids, self.worker_cpu, strict=True)
        self.worker_loads = [(cpu_of(pid) - before) / wall for pid, before in pairs]
        busy = (_machine_busy() - self.machine) / wall
        self.other_load = max(0.0, busy - self.gen_load - self.server_load)
        self.steal_load = (_machine_stolen() - self.stolen) / wall


def _socket_inodes(pids: list[int]) -> dict[int, int]:
    """Socket inode -> index in ``pids`` of the process holding it (from /proc/PID/fd)."""
    inode_owner = {}
    for i, pid in enumerate(pids):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inode_owner[int(target[8:-1])] = i
        except OSError:
            continue
    return inode_owner


def peer_ports(pids: list[int], port: int) -> dict[int, int]:
    """Peer port -> index in ``pids`` of the process holding each established connection
    to ``port`` (from /proc: the processes' socket inodes, /proc/net/tcp's rows)."""
    inode_owner = _socket_inodes(pids)
    owner = {}
    with open("/proc/net/tcp") as f:
        next(f)
        for row in f:
            cols = row.split()
            local, remote, state, inode = cols[1], cols[2], cols[3], int(cols[9])
            if state == "01" and int(local.split(":")[1], 16) == port and inode in inode_owner:
                owner[int(remote.split(":")[1], 16)] = inode_owner[inode]
    return owner


def listening(pids: list[int], port: int) -> set[int]:
    """Indices in ``pids`` of the processes with a socket listening on ``port``."""
    inodes = _socket_inodes(pids)
    found = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for row in f:
            cols = row.split()
            if cols[3] == "0A" and int(cols[1].split(":")[1], 16) == port and int(cols[9]) in inodes:
                found.add(inodes[int(cols[9])])
    return found


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _machine_stolen() -> float:
    """CPU seconds the hypervisor gave to other guests while this one wanted to run
    (/proc/stat's steal): on a virtual machine, bursts of it stall servers and generator
    alike for milliseconds, late blocks that none of them caused."""
    with open("/proc/stat") as f:
        return int(f.readline().split()[8]) / CLK_TCK


def _machine_busy() -> float:
    """CPU seconds spent by all cores: user, nice, system, irq and softirq."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return sum(values[i] for i in (0, 1, 2, 5, 6)) / CLK_TCK


@dataclass
class RealtimeResult:
    server: str
    n: int
    target: np.ndarray  # (clients, blocks): when each block was due, by the audio clock
    sent: np.ndarray  # when the generator sent it
    received: np.ndarray  # when its processed block arrived (nan: never)
    gen_load: float
    server_load: float
    other_load: float
    worker_loads: list[float]
    steal_load: float = 0.0
    #: Each client's worker (index into worker_loads; -1: not found).
    client_worker: np.ndarray | None = None

    @property
    def disturbed(self) -> bool:
        """Other processes, or the hypervisor, took enough CPU to make blocks late."""
        return self.other_load > BUSY or self.steal_load > STOLEN

    @property
    def rtt_ms(self) -> np.ndarray:
        rtt = (self.received - self.sent).ravel()
        return 1e3 * rtt[np.isfinite(rtt)]

    def pct(self, q: float) -> float:
        rtt = self.rtt_ms
        return float(np.percentile(rtt, q)) if rtt.size else math.nan

    @property
    def max_ms(self) -> float:
        rtt = self.rtt_ms
        return float(rtt.max()) if rtt.size else math.nan

    @property
    def send_late_p99_ms(self) -> float:
        """How late the generator sent, against the audio clock (its own lag)."""
        return float(np.percentile(1e3 * (self.sent - self.target), 99))

    def late(self, jitter: float) -> np.ndarray:
        """Per block, whether its processed block arrived more than one period +
        ``jitter`` after the block was sent (never received counts as late)."""
        with np.errstate(invalid="ignore"):
            return ~(self.received <= self.sent + PERIOD + jitter)

    def late_blocks(self, jitter: float) -> int:
        return int(self.late(jitter).sum())

    def passes(self, jitter: float, late_allowed: float) -> bool:
        """The ramp's criterion (and the paired runs'): at most ``late_allowed`` of the
        blocks late."""
        return self.late_blocks(jitter) <= late_allowed * self.sent.size

    @property
    def clients_per_worker(self) -> list[int]:
        return [int((self.client_worker == w).sum()) for w in range(len(self.worker_loads))]

    def late_by_worker(self, jitter: float) -> list[int]:
        """Late blocks of the clients of each worker."""
        late = self.late(jitter).sum(axis=1)
        return [int(late[self.client_worker == w].sum()) for w in range(len(self.worker_loads))]


async def realtime(server: Server, n: int, seconds: float) -> RealtimeResult:
    """``n`` clients, each sending one block every PERIOD for ``seconds``, paced against
    the monotonic clock (block k of client i is due at start + (k + i / n) * PERIOD: the
    clients' phases are spread evenly over one period, as independent clients' are), run
    by the lean generator processes (bench/wsload.py)."""
    blocks = round(seconds / PERIOD)
    meter = Meter(server)
    target, sent, received, gen_cpu, ports = await asyncio.to_thread(
        GENERATORS.run, server.port, "/ws/process", START, PAYLOADS, PERIOD, n, blocks, meter.__enter__
    )
    meter.__exit__(None, None, None)
    # The generator processes' own CPU, in cores (this process only waits meanwhile).
    gen_load = gen_cpu / meter.seconds
    other = max(0.0, meter.other_load + meter.gen_load - gen_load)
    return RealtimeResult(
        server.name,
        n,
        target,
        sent,
        received,
        gen_load,
        meter.server_load,
        other,
        meter.worker_loads,
        meter.steal_load,
        np.array([meter.peer_worker.get(int(p), -1) for p in ports]),
    )


#: The load generator's processes (bench/wsload.py), made in main().
GENERATORS: wsload.Generators


@dataclass
class ClosedLoopResult:
    server: str
    blocks: int
    seconds: float
    gen_load: float
    server_load: float
    other_load: float
    clients: int

    @property
    def rate(self) -> float:
        return self.blocks / self.seconds

    @property
    def rtt_ms(self) -> float:
        return 1e3 * self.seconds * self.clients / self.blocks


async def closed_loop(server: Server, n: int, seconds: float) -> ClosedLoopResult:
    """``n`` clients, each sending its next block as soon as the previous reply is in."""
    clients = await open_clients(server.url, n)
    counts = [0] * n
    stop_at = 0.0

    async def client(ws, i: int) -> None:
        k = 0
        while time.monotonic() < stop_at:
            await ws.send(PAYLOADS[k % len(PAYLOADS)])
            if len(await ws.recv()) != FRAME_BYTES:
                raise RuntimeError("a reply of the wrong size")
            k += 1
        counts[i] = k

    with Meter(server) as meter:
        start = time.monotonic()
        stop_at = start + seconds
        await asyncio.gather(*(client(ws, i) for i, ws in enumerate(clients)))
        elapsed = time.monotonic() - start
    await close_clients(clients)
    return ClosedLoopResult(
        server.name, sum(counts), elapsed, meter.gen_load, meter.server_load, meter.other_load, n
    )


# -- the runs ---------------------------------------------------------------------------

RAMP = (8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
#: Bisection stops when the last N with no late block and the first with some are this close.
RAMP_RESOLUTION = 4


def pct_cols(r: RealtimeResult) -> str:
    return f"{r.pct(50):>7.2f}{r.pct(99):>7.2f}{r.max_ms:>7.2f}"


def cpu_cols(load_gen: float, load_srv: float, load_other: float) -> str:
    return f"{100 * load_gen:>6.0f}%{100 * load_srv:>6.0f}%{100 * load_other:>6.0f}%"


RT_HEAD = (
    f"{'server':<8}{'N':>5}{'blocks':>8}{'p50':>7}{'p99':>7}{'max':>7}{'late':>9}{'send':>7}"
    f"{'gen':>7}{'srv':>7}{'other':>7}{'steal':>7}"
)
RT_HEAD2 = (
    f"{'':<8}{'':>5}{'':>8}{'ms':>7}{'ms':>7}{'ms':>7}{'blocks':>9}{'p99 ms':>7}"
    f"{'CPU':>7}{'CPU':>7}{'CPU':>7}{'CPU':>7}"
)


def limit(r: RealtimeResult) -> str:
    """What most likely made a run late: the load generator, the machine, or the server."""
    total = r.gen_load + r.server_load + r.other_load
    cores = os.cpu_count() or 1
    where = (
        f"the hypervisor ({100 * r.steal_load:.1f}% of a core stolen from this virtual machine)"
        if r.steal_load > STOLEN
        else "the load generator (>= 80% of a core)"
        if r.gen_load >= 0.8
        else f"other processes on this machine ({100 * r.other_load:.0f}% of a core)"
        if r.other_load > BUSY
        else f"the whole machine ({total:.1f} of {cores} cores busy)"
        if total >= 0.9 * cores
        else "server CPU (>= 90% of a core)"
        if r.server_load >= 0.9
        else f"no core saturated (machine {total:.1f} of {cores} busy): queueing in the server's one "
        f"event loop at {100 * r.server_load:.0f}% busy"
    )
    return (
        f"gen {100 * r.gen_load:.0f}%, srv {100 * r.server_load:.0f}%, other {100 * r.other_load:.0f}%, "
        f"steal {100 * r.steal_load:.1f}%, "
        f"send lag p99 {r.send_late_p99_ms:.2f} ms -> {where}"
    )


def rt_row(r: RealtimeResult, jitter: float, note: str = "") -> str:
    if len(r.worker_loads) > 1:  # which worker took which clients, and whose blocks were late
        clients = "/".join(str(c) for c in r.clients_per_worker)
        late = "/".join(str(c) for c in r.late_by_worker(jitter))
        note = f"workers: clients {clients}, late {late}  {note}"
    return (
        f"{r.server:<8}{r.n:>5}{r.sent.size:>8}{pct_cols(r)}{r.late_blocks(jitter):>9}"
        f"{r.send_late_p99_ms:>7.2f}{cpu_cols(r.gen_load, r.server_load, r.other_load)}"
        f"{100 * r.steal_load:>6.1f}%  {note}"
    )


#: A run during which other processes used more than this share of a core was disturbed.
BUSY = 0.25
#: ... or the hypervisor took more than this share of a core from the machine (it comes
#: in bursts of milliseconds: 1% over a 3 s run is 30 ms of stalls).
STOLEN = 0.01


class Budget:
    """Reruns of disturbed runs are allowed until this many seconds into the benchmark."""

    def __init__(self, seconds: float):
        self.until = time.monotonic() + seconds

    def left(self) -> bool:
        return time.monotonic() < self.until


async def wait_quiet(budget: Budget, emit: Callable[[str], None], longest: float = 6.0) -> None:
    """Before a rerun: wait (up to ``longest`` seconds, within the budget) until the rest of
    the machine uses less than BUSY of a core. Between runs our own processes are idle."""
    deadline = min(time.monotonic() + longest, budget.until)
    waited = False
    while True:
        before, start = _machine_busy(), time.monotonic()
        await asyncio.sleep(0.5)
        load = (_machine_busy() - before) / (time.monotonic() - start)
        if load < BUSY or time.monotonic() >= deadline:
            if waited:
                emit(f"  (waited for other processes: now {100 * load:.0f}% of a core)")
            return
        waited = True


async def ramp(
    server: Server,
    seconds: float,
    jitter: float,
    max_n: int,
    budget: Budget,
    emit: Callable[[str], None],
    late_allowed: float = 0.0,
) -> tuple[int, RealtimeResult | None, int | None, list[RealtimeResult]]:
    """Grow N until a block is late, then bisect between the last N with none and the
    first with some. A step with a late block is run once more (the machine is shared),
    twice more if other processes or the hypervisor were busy during it: N passes if any run had no late
    block. Returns the largest N that passed, its run, the smallest N that failed, and
    every run."""
    runs: list[RealtimeResult] = []
    passed: dict[int, RealtimeResult] = {}

    async def trial(n: int) -> bool:
        attempt = 0
        while True:
            attempt += 1
            r = await realtime(server, n, seconds)
            runs.append(r)
            ok = r.passes(jitter, late_allowed)
            emit(rt_row(r, jitter, ("" if ok else "LATE") + (" (rerun)" if attempt > 1 else "")))
            if ok:
                passed[n] = r
                return True
            if attempt >= (3 if r.disturbed and budget.left() else 2):
                return False
            await wait_quiet(budget, emit)

    good, bad = 0, None
    for n in RAMP:
        if n > max_n:
            break
        if await trial(n):
            good = n
        else:
            bad = n
            break
    while bad is not None and bad - good > (1 if good < 8 else RAMP_RESOLUTION):
        mid = (good + bad) // 2
        if await trial(mid):
            good = mid
        else:
            bad = mid
    return good, passed.get(good), bad, runs


def allowed(args: argparse.Namespace) -> str:
    """The ramp's pass criterion, in words."""
    if not args.late_per_mille:
        return "no late block"
    return f"at most {args.late_per_mille:g} late blocks per 1000"


def check_alive(*servers: Server) -> None:
    for server in servers:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"the {server.name} server exited with {server.proc.returncode}:\n"
                f"{server.log.read_text()[-3000:]}"
            )


async def run(args: argparse.Namespace) -> None:
    jitter = args.jitter_ms / 1e3
    progress: list[str] = []

    def emit(line: str) -> None:
        print(line, flush=True)
        progress.append(line)

    budget = Budget(args.rerun_budget)
    with tempfile.TemporaryDirectory() as tmp:
        fx = start_fxhost(Path(tmp) / "fxhost")
        bare = start_bare(Path(tmp))
        try:
            for server in (fx, bare):  # imports, first chain, first connections: not measured
                await close_clients(await open_clients(server.url, 4))
                await closed_loop(server, 2, 0.5)
            emit(
                f"progress (late: processed block later than sent + {1e3 * PERIOD:.3f} ms + "
                f"{args.jitter_ms:g} ms):"
            )
            emit(RT_HEAD)
            emit(RT_HEAD2)
            latency = {}
            for n in (1, 16):
                for server in (fx, bare):
                    tries = [await realtime(server, n, args.rt_seconds)]
                    emit(rt_row(tries[-1], jitter, "latency run"))
                    while tries[-1].disturbed and len(tries) < 3 and budget.left():
                        await wait_quiet(budget, emit)
                        tries.append(await realtime(server, n, args.rt_seconds))
                        emit(rt_row(tries[-1], jitter, "latency run (rerun: disturbed)"))
                    latency[server.name, n] = min(tries, key=lambda x: x.other_load)
                    check_alive(fx, bare)
            ramps = {}
            #: Per single-process server: its paired runs against its multi-process form.
            paired: dict[str, list[tuple[RealtimeResult, RealtimeResult]]] = {}
            late_allowed = args.late_per_mille / 1e3
            for server in (fx, bare) if not args.no_bare_ramp else (fx,):
                ramps[server.name] = await ramp(
                    server, args.ramp_seconds, jitter, args.max_clients, budget, emit, late_allowed
                )
                check_alive(fx, bare)
            if args.workers > 1:
                # Each started only now, so that its processes are not there during the other
                # runs. The bare app in as many processes shows how far two event loops scale
                # on this machine with none of fxhost's code.
                for one in (fx, bare) if not args.no_bare_ramp else (fx,):
                    if one is fx:
                        multi = start_fxhost(Path(tmp) / "fxhost-multi", args.workers)
                    else:
                        multi = start_bare(Path(tmp), args.workers)
                    try:
                        await close_clients(await open_clients(multi.url, 8 * args.workers))
                        ramps[multi.name] = await ramp(
                            multi, args.ramp_seconds, jitter, args.max_clients, budget, emit, late_allowed
                        )
                        check_alive(multi)
                        if args.paired and ramps[one.name][0]:
                            paired[one.name] = await paired_runs(
                                one, multi, ramps[one.name][0], args.paired, args.ramp_seconds, jitter, emit
                            )
                    finally:
                        multi.stop()
            tp: list[ClosedLoopResult] = []
            for server in (fx, bare, bare, fx):
                tries: list[ClosedLoopResult] = []
                while not tries or (
                    (tries[-1].other_load > BUSY or tries[-1].server_load < 0.9)
                    and len(tries) < 3
                    and budget.left()
                ):
                    if tries:
                        await wait_quiet(budget, emit)
                    r = await closed_loop(server, args.tp_clients, args.tp_seconds)
                    emit(
                        f"{r.server:<8} closed loop, {r.clients} clients: {r.rate:8.0f} blocks/s  "
                        f"CPU gen/srv/other {cpu_cols(r.gen_load, r.server_load, r.other_load)}"
                        + ("  (rerun: not server-bound)" if tries else "")
                    )
                    tries.append(r)
                tp.append(min(tries, key=lambda x: (x.server_load < 0.9, x.other_load)))
                check_alive(fx, bare)
        finally:
            fx.stop()
            bare.stop()
    report(args, latency, ramps, tp, jitter, paired)


#: The paired runs' multiple of one worker's clients for ``--workers`` workers.
PAIRED_SCALE = 1.5


async def paired_runs(
    one: Server,
    multi: Server,
    n: int,
    rounds: int,
    seconds: float,
    jitter: float,
    emit: Callable[[str], None],
) -> list[tuple[RealtimeResult, RealtimeResult]]:
    """One worker at ``n`` clients (its ramp's result) and the workers at 1.5 n, run in
    turn ``rounds`` times: the same moments of a shared machine for both (a ramp run
    after another meets other moments: this machine's hypervisor takes from 0 to 30% of a
    core within minutes)."""
    pairs = []
    m = math.ceil(PAIRED_SCALE * n)
    for _ in range(rounds):
        a = await realtime(one, n, seconds)
        emit(rt_row(a, jitter, "paired"))
        b = await realtime(multi, m, seconds)
        emit(rt_row(b, jitter, "paired"))
        pairs.append((a, b))
    return pairs


def report(args, latency, ramps, tp: list[ClosedLoopResult], jitter: float, paired=None) -> None:
    paired = paired or {}
    period_ms = 1e3 * PERIOD
    rule = "=" * 104
    print()
    print(rule)
    print(
        f"WS /ws/process through {json.dumps(STEPS)}: 48 kHz stereo f32le, {BLOCK}-frame blocks "
        f"({period_ms:.3f} ms of audio, {FRAME_BYTES} bytes)."
    )
    print(
        f"Load generator, real-time runs: {args.generators} processes of the lean client of "
        "bench/wsload.py (one pacing loop per"
    )
    print(
        f"process: {GENERATORS.loop}; replies stamped by the kernel on arrival, scheduling policy "
        f"{args.generator_policy}); "
        "closed loop: this process, "
        f"websockets {_ws_version()} asyncio client "
        "(no permessage-deflate). On the SAME"
    )
    print(
        f"{os.cpu_count()}-core machine as the servers (loopback). Servers: `fxhost serve` (1 worker; "
        f"and {args.workers} workers), a bare Starlette app (1 process, and {args.workers})"
    )
    print(
        "(this file: deinterleave, one pedalboard.Reverb per connection, .process(block, 48000, 8192, "
        "False), interleave) under uvicorn"
    )
    print(
        "with the options of `fxhost serve`. CPU: share of one core over the measured window; gen = "
        "load generator, srv = server,"
    )
    print(
        "other = everything else on the machine (other users' jobs, kernel softirq), steal = CPU the "
        "hypervisor gave to other"
    )
    print("virtual machines while this one wanted it (bursts of it stall every process), all from /proc.")
    print()
    print(
        f"1. Round trip, send of a block -> receipt of its processed block. Each client sends one block "
        f"every {period_ms:.3f} ms"
    )
    print(
        f"   for {args.rt_seconds:g} s against the monotonic clock, phases spread over one period; "
        "connect, start, ready and one warm-up"
    )
    print(
        f"   block per client are not timed. A run during which other processes used > {100 * BUSY:.0f}% "
        "of a core is rerun (up to"
    )
    print("   twice, within the rerun budget) and the least disturbed one is shown.")
    print(
        f"{'server':<8}{'clients':>8}{'blocks':>8}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'late':>6}"
        f"{'gen':>7}{'srv':>7}{'other':>7}{'steal':>7}"
    )
    for n in (1, 16):
        for name in ("fxhost", "bare"):
            r = latency[name, n]
            print(
                f"{name:<8}{n:>8}{r.sent.size:>8}{r.pct(50):>8.2f}{r.pct(99):>8.2f}{r.max_ms:>8.2f}"
                f"{r.late_blocks(jitter):>6}{cpu_cols(r.gen_load, r.server_load, r.other_load)}"
                f"{100 * r.steal_load:>6.1f}%"
            )
        f, b = latency["fxhost", n], latency["bare", n]
        print(f"{'  fxhost/bare':<24}{f.pct(50) / b.pct(50):>8.2f}{f.pct(99) / b.pct(99):>8.2f}")
    print()
    print(
        f"2. Most concurrent real-time clients with {allowed(args)}, {args.ramp_seconds:g} s per N "
        f"(N = {', '.join(map(str, RAMP[:6]))}, ... then bisection to"
    )
    print(
        f"   {RAMP_RESOLUTION}; a step with a late block is rerun once, twice if others or the hypervisor "
        f"were busy; N passes if any run had {allowed(args)})."
    )
    print("   A block is late if its processed")
    print(
        f"   block arrives later than its send time + {period_ms:.3f} ms (one block period: the client "
        f"plays it one period after capture)"
    )
    print(
        f"   + {args.jitter_ms:g} ms (fixed jitter allowance), or never. Send time = when the "
        "generator actually sent it; its lag behind the audio"
    )
    print("   clock is the 'send p99' column.")
    print(
        f"{'server':<8}{'max N':>7}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'send p99':>9}{'gen':>7}"
        f"{'srv':>7}{'other':>7}{'steal':>7}   first N that failed (late blocks, p99 ms)"
    )
    best = {}
    for name, (good, r, bad, runs) in ramps.items():
        best[name] = good
        fails = [x for x in runs if x.n == bad]
        first = (
            "none up to " + str(args.max_clients)
            if bad is None
            else f"{bad} (" + "; ".join(f"{x.late_blocks(jitter)}, {x.pct(99):.2f}" for x in fails) + ")"
        )
        if r is None:
            print(f"{name:<8}{0:>7}{'':>57}   {first}")
            continue
        print(
            f"{name:<8}{good:>7}{r.pct(50):>8.2f}{r.pct(99):>8.2f}{r.max_ms:>8.2f}{r.send_late_p99_ms:>9.2f}"
            f"{cpu_cols(r.gen_load, r.server_load, r.other_load)}{100 * r.steal_load:>6.1f}%   {first}"
        )
    if best.get("bare"):
        print(f"  fxhost/bare max N: {best['fxhost'] / best['bare']:.2f}")
    for one in ("fxhost", "bare"):
        multi = next((name for name in ramps if name.startswith(one + "-")), None)
        if multi and best.get(one):
            report_scaling(one, multi, ramps[multi], best[multi] / best[one])
        if paired.get(one):
            report_paired(args, paired[one], jitter)
    all_rt = [
        *latency.values(),
        *(x for v in ramps.values() for x in v[3]),
        *(x for pairs in paired.values() for p in pairs for x in p),
    ]
    busiest = max(all_rt, key=lambda x: x.gen_load)
    print(
        f"  load generator: at most {100 * busiest.gen_load:.0f}% of one core in any run (N={busiest.n}, "
        f"{busiest.server}); it sends blocks due within 1 ms together."
    )
    for name, (_, _, bad, runs) in ramps.items():
        fails = [x for x in runs if x.n == bad]
        if fails:
            print(f"  {name}, what limited N={bad}: " + "; ".join(limit(x) for x in fails))
    if "bare" in ramps and ramps["fxhost"][2] is not None and ramps["bare"][0] > ramps["fxhost"][2]:
        print(
            f"  the same generator drove the bare server at N={ramps['bare'][0]} with {allowed(args)}, so it "
            f"is not what limits fxhost at N={ramps['fxhost'][2]}."
        )
    disturbed = [x for x in all_rt if x.disturbed]
    if disturbed:
        print(
            f"  NOTE: other processes used more than {100 * BUSY:.0f}% of a core, or the hypervisor more "
            f"than {100 * STOLEN:g}%, during {len(disturbed)} of {len(all_rt)} real-time runs: this shared "
            "machine was busy; rerun on a quiet one."
        )
    print()
    print(
        f"3. Throughput, closed loop: {args.tp_clients} clients each send the next block as soon as the "
        f"reply to the previous one arrives,"
    )
    print(
        f"   {args.tp_seconds:g} s per run, runs in the order fxhost, bare, bare, fxhost; a run that is not "
        "server-bound or is disturbed"
    )
    print("   by other processes is rerun (up to twice, within the rerun budget); the best one is shown.")
    print(
        f"{'server':<8}{'run':>5}{'blocks/s':>10}{'x realtime':>11}{'rtt ms':>8}{'gen':>7}{'srv':>7}"
        f"{'other':>7}{'srv CPU/block':>15}"
    )
    for i, r in enumerate(tp):
        print(
            f"{r.server:<8}{i + 1:>5}{r.rate:>10.0f}{r.rate * PERIOD:>11.1f}{r.rtt_ms:>8.3f}"
            f"{cpu_cols(r.gen_load, r.server_load, r.other_load)}{1e6 * r.server_load / r.rate:>12.1f} us"
        )
    rate, per_block = {}, {}
    for name in ("fxhost", "bare"):
        mine = [r for r in tp if r.server == name]
        rate[name] = sum(r.blocks for r in mine) / sum(r.seconds for r in mine)
        per_block[name] = 1e6 * sum(r.server_load * r.seconds for r in mine) / sum(r.blocks for r in mine)
        print(
            f"{name:<8}{'all':>5}{rate[name]:>10.0f}{rate[name] * PERIOD:>11.1f}{'':>29}"
            f"{per_block[name]:>12.1f} us"
        )
    ratio = rate["fxhost"] / rate["bare"]
    capacity = per_block["bare"] / per_block["fxhost"]
    low = [r for r in tp if r.server_load < 0.9]
    verdict = (
        "target >= 0.85: " + ("met" if ratio >= 0.85 else "NOT met")
        if not low
        else f"INCONCLUSIVE: the server used < 90% of a core in {len(low)} run(s), so blocks/s did not "
        "measure its capacity"
    )
    print(f"fxhost/bare throughput: {ratio:.3f} ({verdict})")
    print(
        f"fxhost/bare capacity from server CPU per block (bare {per_block['bare']:.1f} us / fxhost "
        f"{per_block['fxhost']:.1f} us): {capacity:.3f}"
    )
    cost = per_block["fxhost"] / per_block["bare"]
    verdict = "met" if cost <= 1.1 else "NOT met"
    print(f"server CPU per block, fxhost/bare: {cost:.3f} (target <= 1.1: {verdict})")
    if not low:
        print("every closed-loop run was server-bound (server >= 90% of a core).")
    print("(bench/ring.py measures the ring buffers and wire conversions on their own.)")


def report_scaling(one: str, multi: str, multi_ramp, scale: float) -> None:
    """The multi-process server's ramp against its single process's."""
    target = f" (target >= 1.5: {'met' if scale >= 1.5 else 'NOT met'})" if one == "fxhost" else ""
    print(f"  {multi}/{one} max N: {scale:.2f}{target}")
    _, r, _, runs = multi_ramp
    shown = r or (runs[-1] if runs else None)
    if shown is not None:
        print(
            f"  {multi} at N={shown.n}: CPU per process "
            + ", ".join(f"{100 * x:.0f}%" for x in shown.worker_loads)
            + " of a core, clients per process "
            + ", ".join(str(c) for c in shown.clients_per_worker)
            + " (each has its own SO_REUSEPORT socket: the kernel spreads connections "
            f"by a hash), generator {100 * shown.gen_load:.0f}%, other {100 * shown.other_load:.0f}%"
        )


def report_paired(args, pairs: list[tuple[RealtimeResult, RealtimeResult]], jitter: float) -> None:
    a0, b0 = pairs[0]
    late_allowed = args.late_per_mille / 1e3
    one_ok = sum(a.passes(jitter, late_allowed) for a, _ in pairs)
    multi_ok = sum(b.passes(jitter, late_allowed) for _, b in pairs)
    # One process failing every paired run at its own limit leaves nothing to compare.
    verdict = "INCONCLUSIVE" if one_ok == 0 else "met" if multi_ok >= one_ok else "NOT met"
    print(
        f"  paired, in turn {len(pairs)} times: {a0.server} at N={a0.n} with {allowed(args)} in {one_ok} of "
        f"{len(pairs)} runs (late: {', '.join(str(a.late_blocks(jitter)) for a, _ in pairs)}); "
        f"{b0.server} at N={b0.n} ({PAIRED_SCALE:g}x) in {multi_ok} of {len(pairs)} "
        f"(late: {', '.join(str(b.late_blocks(jitter)) for _, b in pairs)}; clients per process "
        + "; ".join("/".join(map(str, b.clients_per_worker)) for _, b in pairs)
        + f"): {verdict} (the processes at {PAIRED_SCALE:g}x as often on time as one at its own "
        "limit)"
    )


def _ws_version() -> str:
    import websockets

    return websockets.__version__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--bare-processes", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--rt-seconds", type=float, default=5.0, help="seconds per latency run")
    parser.add_argument("--ramp-seconds", type=float, default=3.0, help="seconds per ramp step")
    parser.add_argument("--jitter-ms", type=float, default=2.0, help="jitter allowance of the deadline")
    parser.add_argument("--max-clients", type=int, default=512)
    parser.add_argument(
        "--late-per-mille",
        type=float,
        default=0.0,
        help="late blocks a ramp step may have, per 1000 blocks (default 0: none)",
    )
    parser.add_argument(
        "--rerun-budget", type=float, default=110.0, help="seconds into the run after which nothing is rerun"
    )
    parser.add_argument("--no-bare-ramp", action="store_true", help="ramp fxhost only")
    parser.add_argument("--tp-clients", type=int, default=4)
    parser.add_argument("--tp-seconds", type=float, default=5.0)
    parser.add_argument(
        "--workers", type=int, default=2, help="uvicorn workers of the second fxhost ramp (1: none)"
    )
    parser.add_argument(
        "--generators", type=int, default=2, help="load generator processes of the real-time runs"
    )
    parser.add_argument(
        "--paired",
        type=int,
        default=5,
        help="rounds of one worker at its ramp's N and the workers at 1.5x N, in turn (0: none)",
    )
    parser.add_argument(
        "--generator-policy",
        choices=("idle", "normal"),
        default="idle",
        help="scheduling policy of the real-time generator processes (idle: SCHED_IDLE, they run only on a "
        "core the servers leave idle, as remote clients would)",
    )
    parser.add_argument(
        "--generator-loop",
        choices=("c", "python"),
        default="c",
        help="the real-time generator's paced loop: c (bench/wsload_paced.c, compiled with the machine's "
        "C compiler; the Python loop where none is found) or python",
    )
    parser.add_argument(
        "--quick", action="store_true", help="shorter runs (2 s latency and ramp steps, 3 s closed loop)"
    )
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare, args.bare_processes)
        return
    if args.quick:
        args.rt_seconds, args.ramp_seconds, args.tp_seconds = 2.0, 2.0, 3.0
    # Stopped with SIGTERM: still stop the servers and generators (the finally clauses).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    global GENERATORS
    GENERATORS = wsload.Generators(
        args.generators, idle=args.generator_policy == "idle", c_loop=args.generator_loop == "c"
    )
    started = time.monotonic()
    try:
        uvloop.run(run(args))
    finally:
        GENERATORS.close()
    print(f"(whole run: {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
