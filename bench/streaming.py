"""Benchmark: live processing over ``WS /ws/process`` at 48 kHz stereo in 256-frame blocks
(5.33 ms of audio each) through the reverb, against a bare Starlette + pedalboard handler
run side by side in the same run.

    uv run python bench/streaming.py [--rt-seconds 5] [--ramp-seconds 3] [--tp-seconds 5]

1. Round-trip latency (send of a block -> receipt of its processed block), p50 and p99,
   for 1 and 16 concurrent real-time clients (one block every 5.333 ms each, paced
   against the monotonic clock).
2. The largest number of concurrent real-time clients with no late block (a ramp, then
   a bisection), and the p99 there.
3. Throughput with closed-loop clients (next block as soon as the reply is in), fxhost
   against the bare handler, runs interleaved (ABBA).

Starts ``fxhost serve`` on a free port in a temporary folder (SQLite), and the bare app
(``--serve-bare``, this file) under uvicorn with the options ``fxhost serve`` uses. The load
generator is this process: asyncio and the ``websockets`` asyncio client, on the same
2-core machine as the servers; its own CPU use and its send lateness are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SR = 48_000
CHANNELS = 2
BLOCK = 256
PERIOD = BLOCK / SR  # 5.333 ms
STEPS = [{"effect": "reverb"}]
START = {"type": "start", "steps": STEPS, "sample_rate": SR, "channels": CHANNELS, "format": "f32le",
         "block": BLOCK}
#: uvicorn options of ``fxhost serve`` (host/src/fxhost/cli.py), with the default
#: max_frame_bytes of 1 MiB.
UVICORN_OPTIONS = {"log_level": "warning", "timeout_graceful_shutdown": 10, "ws_max_size": 4 * 1024 * 1024}
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- the bare baseline server -------------------------------------------------------


def bare_app():
    """Accept, read the start message, reply ready, then per binary frame: deinterleave,
    ``pedalboard.Reverb().process(block, rate, reset=False)`` on one Reverb per
    connection, interleave, send."""
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
        await ws.send_text(json.dumps({"type": "ready", "latency": 0, "sample_rate": rate,
                                       "channels": channels, "format": "f32le"}))
        try:
            while True:
                data = await ws.receive_bytes()
                block = np.frombuffer(data, dtype="<f4").reshape(-1, channels).T.copy()
                out = reverb.process(block, rate, reset=False)
                await ws.send_bytes(out.T.astype("<f4").tobytes())
        except WebSocketDisconnect:
            pass

    async def health(request):
        return PlainTextResponse("ok")

    return Starlette(routes=[WebSocketRoute("/ws/process", process), Route("/health", health)])


def serve_bare(port: int) -> None:
    import uvicorn

    uvicorn.run(bare_app(), host="127.0.0.1", port=port, **UVICORN_OPTIONS)


# -- servers --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/process"

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process (all its threads), from /proc."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


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


def start_fxhost(root: Path) -> Server:
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "FXHOST_HOST": "127.0.0.1",
        "FXHOST_PORT": str(port),
        "FXHOST_UPLOADS_DIR": str(root / "uploads"),
        "FXHOST_RENDERS_DIR": str(root / "renders"),
        "FXHOST_PLUGINS_CONFIG": str(REPO / "plugins.toml"),
        "FXHOST_DATABASE_URL": f"sqlite://{root / 'fxhost.db'}",
        "FXHOST_LOG_LEVEL": "warning",
        "FXHOST_MAX_CONNECTIONS": "10000",
    }
    log = root / "fxhost.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "fxhost"), "serve"], cwd=root, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    wait_healthy("fxhost serve", proc, port, log)
    return Server("fxhost", proc, port)


def start_bare(root: Path) -> Server:
    port = free_port()
    log = root / "bare.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, __file__, "--serve-bare", str(port)], cwd=root,
                                stdout=out, stderr=subprocess.STDOUT)
    wait_healthy("bare server", proc, port, log)
    return Server("bare", proc, port)


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
        self.machine = _machine_busy()
        return self

    def __exit__(self, *exc) -> None:
        wall = time.monotonic() - self.wall
        self.gen_load = (_self_cpu() - self.cpu) / wall
        self.server_load = (self.server.cpu_seconds() - self.server_cpu) / wall
        busy = (_machine_busy() - self.machine) / wall
        self.other_load = max(0.0, busy - self.gen_load - self.server_load)


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _machine_busy() -> float:
    """CPU seconds spent by all cores: user, nice, system, irq and softirq."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return sum(values[i] for i in (0, 1, 2, 5, 6)) / CLK_TCK


@dataclass
class RealtimeResult:
    n: int
    target: np.ndarray  # (clients, blocks) scheduled send time (the audio clock)
    sent: np.ndarray  # actual send time
    received: np.ndarray  # receipt of the processed block (nan: never)
    gen_load: float = 0.0
    server_load: float = 0.0
    late: dict[float, int] = field(default_factory=dict)

    @property
    def rtt_ms(self) -> np.ndarray:
        rtt = (self.received - self.sent).ravel()
        return 1e3 * rtt[np.isfinite(rtt)]

    def pct(self, q: float) -> float:
        rtt = self.rtt_ms
        return float(np.percentile(rtt, q)) if rtt.size else math.nan

    @property
    def send_lateness_ms(self) -> np.ndarray:
        return 1e3 * (self.sent - self.target).ravel()

    @property
    def lost(self) -> int:
        return int(np.isnan(self.received).sum())

    def late_blocks(self, jitter: float) -> int:
        """Blocks whose processed block arrived after target + one period + ``jitter``
        (a block never received is late)."""
        deadline = self.target + PERIOD + jitter
        with np.errstate(invalid="ignore"):
            on_time = self.received <= deadline
        return int((~on_time).sum())

    def late_clients(self, jitter: float) -> int:
        deadline = self.target + PERIOD + jitter
        with np.errstate(invalid="ignore"):
            on_time = self.received <= deadline
        return int((~on_time.all(axis=1)).sum())


async def realtime(server: Server, n: int, seconds: float) -> RealtimeResult:
    """``n`` clients, each sending one block every PERIOD against the monotonic clock for
    ``seconds``; the clients' phases are spread evenly over one period."""
    clients = await open_clients(server.url, n)
    blocks = round(seconds / PERIOD)
    start = time.monotonic() + 0.2
    target = np.array([[start + (i / n + k) * PERIOD for k in range(blocks)] for i in range(n)])
    sent = np.full((n, blocks), np.nan)
    received = np.full((n, blocks), np.nan)

    async def sender(ws, i: int) -> None:
        times, row = sent[i], target[i]
        for k in range(blocks):
            delay = row[k] - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            times[k] = time.monotonic()
            await ws.send(PAYLOADS[k % len(PAYLOADS)])

    async def receiver(ws, i: int) -> None:
        times = received[i]
        for k in range(blocks):
            reply = await ws.recv()
            times[k] = time.monotonic()
            if len(reply) != FRAME_BYTES:
                raise RuntimeError(f"a reply of {len(reply)} bytes, expected {FRAME_BYTES}")

    tasks = [asyncio.ensure_future(f(ws, i)) for i, ws in enumerate(clients) for f in (sender, receiver)]
    with Meter(server) as meter:
        # Replies still missing 2 s after the last send count as never received.
        done, pending = await asyncio.wait(tasks, timeout=seconds + 2.5)
    for task in pending:
        task.cancel()
    for task in done:
        task.result()
    await close_clients(clients)
    return RealtimeResult(n, target, sent, received, meter.gen_load, meter.server_load)


@dataclass
class ClosedLoopResult:
    server: str
    blocks: int
    seconds: float
    gen_load: float
    server_load: float
    rtt_ms: float

    @property
    def rate(self) -> float:
        return self.blocks / self.seconds


async def closed_loop(server: Server, n: int, seconds: float) -> ClosedLoopResult:
    clients = await open_clients(server.url, n)
    counts = [0] * n
    stop_at = 0.0

    async def client(ws, i: int) -> None:
        k = 0
        while time.monotonic() < stop_at:
            await ws.send(PAYLOADS[k % len(PAYLOADS)])
            await ws.recv()
            k += 1
        counts[i] = k

    with Meter(server) as meter:
        start = time.monotonic()
        stop_at = start + seconds
        await asyncio.gather(*(client(ws, i) for i, ws in enumerate(clients)))
        elapsed = time.monotonic() - start
    await close_clients(clients)
    total = sum(counts)
    return ClosedLoopResult(server.name, total, elapsed, meter.gen_load, meter.server_load,
                            1e3 * elapsed * n / total)


# -- the report -------------------------------------------------------------------------


def fmt_rt(label: str, r: RealtimeResult, jitters: list[float]) -> str:
    lateness = r.send_lateness_ms
    late = "/".join(str(r.late_blocks(j)) for j in jitters)
    return (f"{label:<24}{r.n:>5}{r.rtt_ms.size:>8}{r.pct(50):>8.2f}{r.pct(99):>8.2f}"
            f"{np.max(r.rtt_ms):>8.2f}{late:>11}{np.percentile(lateness, 99):>9.2f}"
            f"{100 * r.gen_load:>8.0f}%{100 * r.server_load:>8.0f}%")


RT_HEADER = (f"{'':<24}{'N':>5}{'blocks':>8}{'p50':>8}{'p99':>8}{'max':>8}{'late':>11}{'send p99':>9}"
             f"{'gen CPU':>9}{'srv CPU':>9}")


async def ramp(server: Server, seconds: float, jitter: float, jitters: list[float], max_n: int,
               log: Callable[[str], None]) -> tuple[int, RealtimeResult | None, list[RealtimeResult]]:
    """Grow N until a block is late, then bisect between the last N with none and the
    first with some. Returns the largest N with no late block, its result, and all runs."""
    runs: list[RealtimeResult] = []
    results: dict[int, RealtimeResult] = {}

    async def trial(n: int) -> bool:
        r = await realtime(server, n, seconds)
        runs.append(r)
        results[n] = r
        log(fmt_rt(f"  {server.name} ramp", r, jitters))
        return r.late_blocks(jitter) == 0

    good, bad = 0, None
    for n in (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256):
        if n > max_n:
            break
        if await trial(n):
            good = n
        else:
            bad = n
            break
    while bad is not None and bad - good > max(1, good // 8):
        mid = (good + bad) // 2
        if await trial(mid):
            good = mid
        else:
            bad = mid
    return good, results.get(good), runs


async def run(args: argparse.Namespace) -> None:
    jitter = args.jitter_ms / 1e3
    jitters = [jitter, PERIOD]
    lines: list[str] = []

    def log(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    with tempfile.TemporaryDirectory() as tmp:
        fx = start_fxhost(Path(tmp) / "fxhost")
        bare = start_bare(Path(tmp))
        try:
            await close_clients(await open_clients(fx.url, 2))  # import paths, first chain compile
            await close_clients(await open_clients(bare.url, 2))
            log("progress (late = blocks late with jitter allowance "
                f"{args.jitter_ms:g} ms / {1e3 * PERIOD:.3f} ms):")
            log(RT_HEADER)
            latency = {}
            for n in (1, 16):
                for server in (fx, bare):
                    latency[server.name, n] = r = await realtime(server, n, args.rt_seconds)
                    log(fmt_rt(f"  {server.name} latency", r, jitters))
            ramps = {}
            for server in (fx, bare) if not args.no_bare_ramp else (fx,):
                ramps[server.name] = await ramp(server, args.ramp_seconds, jitter, jitters, args.max_clients,
                                                log)
            tp: list[ClosedLoopResult] = []
            for server in (fx, bare, bare, fx):
                r = await closed_loop(server, args.tp_clients, args.tp_seconds)
                tp.append(r)
                log(f"  closed loop {r.server:<8} {r.rate:8.0f} blocks/s  mean rtt {r.rtt_ms:6.2f} ms  "
                    f"gen CPU {100 * r.gen_load:3.0f}%  srv CPU {100 * r.server_load:3.0f}%")
        finally:
            fx.stop()
            bare.stop()

    report(args, latency, ramps, tp, jitters)


def report(args, latency, ramps, tp, jitters) -> None:
    j_ms = 1e3 * jitters[0]
    print()
    print("=" * 100)
    print(f"WS /ws/process, 48 kHz stereo f32le, {BLOCK}-frame blocks ({1e3 * PERIOD:.3f} ms), "
          f"steps {json.dumps(STEPS)}")
    print(f"Load generator: this one Python process (asyncio + websockets {_ws_version()} client, "
          f"no permessage-deflate) on the SAME {os.cpu_count()}-core machine as the servers.")
    print("Servers: `fxhost serve` (1 worker) and a bare Starlette app (this file) under uvicorn with "
          "the same options.")
    print("CPU columns: share of one core over the measured window (gen = load generator, srv = server).")
    print()
    print("1. Real-time round trip (send of a block -> receipt of its processed block), ms; "
          f"each client sends one block every {1e3 * PERIOD:.3f} ms for {args.rt_seconds:g} s,")
    print("   clients' phases spread over one period; one untimed warm-up block per client after 'ready'.")
    print(f"{'server':<10}{'clients':>8}{'blocks':>8}{'p50':>8}{'p99':>8}{'max':>8}{'send late p99':>15}"
          f"{'gen CPU':>9}{'srv CPU':>9}")
    for n in (1, 16):
        for name in ("fxhost", "bare"):
            r = latency[name, n]
            print(f"{name:<10}{n:>8}{r.rtt_ms.size:>8}{r.pct(50):>8.2f}{r.pct(99):>8.2f}"
                  f"{np.max(r.rtt_ms):>8.2f}{np.percentile(r.send_lateness_ms, 99):>15.2f}"
                  f"{100 * r.gen_load:>8.0f}%{100 * r.server_load:>8.0f}%")
        f, b = latency["fxhost", n], latency["bare", n]
        print(f"{'  fxhost/bare':<18}{'':>8}{f.pct(50) / b.pct(50):>8.2f}{f.pct(99) / b.pct(99):>8.2f}")
    print()
    print(f"2. Most concurrent real-time clients with no late block ({args.ramp_seconds:g} s per N). "
          "Block k of a client is late if its processed")
    print(f"   block arrives after t_k + {1e3 * PERIOD:.3f} ms (one block period) + {j_ms:g} ms "
          "(fixed jitter allowance), t_k being the time the block was due")
    print("   to be sent by the audio clock (not when the generator got to send it: generator lag "
          "counts against the server); a block never answered is late.")
    print(f"{'server':<10}{'max N':>7}{'p50':>8}{'p99':>8}{'max':>8}{'first N late':>14}{'late blocks':>13}"
          f"{'its p99':>9}{'gen CPU':>9}{'srv CPU':>9}{'send late p99':>15}")
    best = {}
    for name, (good, r, runs) in ramps.items():
        best[name] = good
        failing = [x for x in runs if x.late_blocks(jitters[0])]
        first_bad = min(failing, key=lambda x: x.n) if failing else None
        bad_cols = (f"{first_bad.n:>14}{first_bad.late_blocks(jitters[0]):>13}{first_bad.pct(99):>9.2f}"
                    if first_bad else f"{'none':>14}{'':>13}{'':>9}")
        if r is None:
            print(f"{name:<10}{0:>7}{'':>24}{bad_cols}")
            continue
        print(f"{name:<10}{good:>7}{r.pct(50):>8.2f}{r.pct(99):>8.2f}{np.max(r.rtt_ms):>8.2f}{bad_cols}"
              f"{100 * r.gen_load:>8.0f}%{100 * r.server_load:>8.0f}%"
              f"{np.percentile(r.send_lateness_ms, 99):>15.2f}")
    if "bare" in best and best["bare"]:
        print(f"  fxhost/bare max N: {best['fxhost'] / best['bare']:.2f}")
    loose = {name: max((x.n for x in runs if x.late_blocks(jitters[1]) == 0), default=0)
             for name, (_, _, runs) in ramps.items()}
    print(f"  with a {1e3 * jitters[1]:.3f} ms allowance instead (two blocks of buffering), the largest "
          "N tried with no late block: " + ", ".join(f"{k} {v}" for k, v in loose.items()))
    print()
    print(f"3. Throughput, closed loop: {args.tp_clients} clients each send the next block as soon as "
          f"the previous reply arrives, {args.tp_seconds:g} s per run, order fxhost, bare, bare, fxhost.")
    print(f"{'server':<10}{'run':>5}{'blocks/s':>10}{'x real time':>12}{'mean rtt ms':>12}{'gen CPU':>9}"
          f"{'srv CPU':>9}")
    for i, r in enumerate(tp):
        print(f"{r.server:<10}{i + 1:>5}{r.rate:>10.0f}{r.rate * PERIOD:>12.1f}{r.rtt_ms:>12.3f}"
              f"{100 * r.gen_load:>8.0f}%{100 * r.server_load:>8.0f}%")
    rate = {name: sum(r.blocks for r in tp if r.server == name) / sum(r.seconds for r in tp if r.server == name)
            for name in ("fxhost", "bare")}
    print(f"{'fxhost':<10}{'all':>5}{rate['fxhost']:>10.0f}")
    print(f"{'bare':<10}{'all':>5}{rate['bare']:>10.0f}")
    ratio = rate["fxhost"] / rate["bare"]
    print(f"fxhost/bare throughput: {ratio:.3f}  (target >= 0.85: {'met' if ratio >= 0.85 else 'NOT met'})")
    cpu = {name: sum(r.server_load * r.seconds for r in tp if r.server == name) for name in rate}
    per_block = {name: 1e6 * cpu[name] / sum(r.blocks for r in tp if r.server == name) for name in rate}
    print(f"server CPU per block: fxhost {per_block['fxhost']:.1f} us, bare {per_block['bare']:.1f} us "
          f"(ratio {per_block['fxhost'] / per_block['bare']:.2f})")
    print("(bench/ring.py measures the ring buffer and wire conversions separately.)")


def _ws_version() -> str:
    import websockets

    return websockets.__version__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--rt-seconds", type=float, default=5.0, help="seconds per latency run")
    parser.add_argument("--ramp-seconds", type=float, default=3.0, help="seconds per ramp step")
    parser.add_argument("--jitter-ms", type=float, default=2.0, help="jitter allowance of the deadline")
    parser.add_argument("--max-clients", type=int, default=256)
    parser.add_argument("--no-bare-ramp", action="store_true", help="ramp fxhost only")
    parser.add_argument("--tp-clients", type=int, default=4)
    parser.add_argument("--tp-seconds", type=float, default=5.0)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return
    started = time.monotonic()
    asyncio.run(run(args))
    print(f"(whole run: {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
