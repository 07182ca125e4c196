"""Benchmark: what the Prometheus metrics cost per live block (target: under 2%).

    uv run python bench/metrics.py [--rounds 401] [--blocks 100] [--server-rounds 40] [--server-blocks 1000]

48 kHz stereo 256-frame blocks (5.33 ms of audio) through the reverb, as bench/streaming.py.

1. In process, the inline live path exactly (``LiveChain._process_now``: the deadline
   runner, the chain, the counters): with metrics off (FXHOST_METRICS=false: block
   counters only) against on (each effect timed into its histogram, plus the flush of
   every counter into prometheus_client in multiprocess mode, once a second as the server
   does, its cost spread over the blocks of one second of one real-time client: the
   worst case, more clients share it). Short rounds alternate off/on (ABBA): the median
   of the rounds' on/off ratios, and the ratio of the fastest rounds (the least
   disturbed by whatever else runs on the machine).
2. End to end: two ``fxhost serve``, FXHOST_METRICS=false and true, one closed-loop
   ``/ws/process`` client each (next block as soon as the reply is in), short runs
   alternating (ABBA); the CPU of the server's event-loop thread per block (/proc
   schedstat), the median of the runs' true/false ratios.

The machine is shared with whatever else runs: the second figure is the noisier one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import REPO, start_fxhost

SR = 48_000
CHANNELS = 2
BLOCK = 256


# -- 1. in process --------------------------------------------------------------------


class _Step:
    def __init__(self, cls):
        self.cls, self.params = cls, cls.check_params({})


def live_chain(time_effects: bool, effect: str = "reverb"):
    from fxhost.engine.streams import StreamManager

    manager = StreamManager(
        max_streams=1,
        idle_seconds=60,
        inline_frames=2048,
        max_tail_seconds=30,
        block_timeout=5,
        time_effects=time_effects,
    )
    return manager, manager.live_chain([step(effect)], SR, CHANNELS)


def step(effect: str) -> _Step:
    from fxhost.catalog.config import load_config
    from fxhost.catalog.registry import load_registry

    return _Step(load_registry(load_config(REPO / "plugins.toml")).classes[effect])


def blocks(count: int = 16) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(count * BLOCK) / SR
    x = (0.3 * np.sin(2 * np.pi * 330 * t) + 0.1 * rng.standard_normal((CHANNELS, t.size))).astype(np.float32)
    return [np.ascontiguousarray(x[:, i * BLOCK : (i + 1) * BLOCK]) for i in range(count)]


def per_block_us(live, inputs: list[np.ndarray], n: int) -> float:
    """CPU time of this thread per block (not wall time: the machine may be shared)."""
    process = live._process_now
    start = time.thread_time()
    for i in range(n):
        process(inputs[i & 15])
    return (time.thread_time() - start) / n * 1e6


def flush_us(manager, repeats: int = 200) -> float:
    """One flush of every counter into prometheus_client (multiprocess mode, as under
    ``fxhost serve``), after a second's worth of blocks has been counted."""
    from fxhost.api.metrics import Metrics
    from fxhost.engine.tally import FaultCounts, Histogram
    from fxhost.settings import Settings
    from fxhost.store.renders import RENDER_SECONDS_BOUNDS

    metrics = Metrics(Settings())
    renders = SimpleNamespace(
        faults=FaultCounts(),
        outcomes=Counter(),
        durations=Histogram(RENDER_SECONDS_BOUNDS),
        jobs={},
        pool=SimpleNamespace(restarts=0),
    )
    metrics._services = SimpleNamespace(streams=manager, renders=renders)  # what flush() reads
    live = manager.live_chain([step("reverb")], SR, CHANNELS)
    inputs = blocks()
    times = []
    for _ in range(repeats):
        per_block_us(live, inputs, 8)  # new counts: every counter has something to add
        start = time.perf_counter()
        metrics.flush()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def alternate(effect: str, rounds: int, n: int) -> tuple[float, float, list[float]]:
    """Median µs per block off and on, and the on/off ratio of each round."""
    _, off = live_chain(time_effects=False, effect=effect)
    _, on = live_chain(time_effects=True, effect=effect)
    inputs = blocks()
    per_block_us(off, inputs, 500)  # warm both
    per_block_us(on, inputs, 500)
    offs, ons = [], []
    for i in range(rounds):  # ABBA: neither goes first every time
        if i % 2:
            ons.append(per_block_us(on, inputs, n))
            offs.append(per_block_us(off, inputs, n))
        else:
            offs.append(per_block_us(off, inputs, n))
            ons.append(per_block_us(on, inputs, n))
    pairs = sorted(b / a for a, b in zip(offs, ons, strict=True))
    return min(offs), min(ons), pairs


def in_process(rounds: int, n: int) -> dict:
    off_us, on_us, pairs = alternate("reverb", rounds, n)
    # The cost of timing one step, on an effect that does almost nothing.
    invert_off, invert_on, _ = alternate("invert", rounds, n)
    on_manager, _ = live_chain(time_effects=True)
    flush = flush_us(on_manager)
    blocks_per_second = SR / BLOCK
    return {
        "off_us": off_us,
        "on_us": on_us,
        "step_us": invert_on - invert_off,
        "invert_off_us": invert_off,
        "flush_us": flush,
        "flush_per_block_us": flush / blocks_per_second,
        "ratio": statistics.median(pairs) + flush / blocks_per_second / off_us,
        "fastest_ratio": (on_us + flush / blocks_per_second) / off_us,
        "pairs": pairs,
    }


# -- 2. end to end --------------------------------------------------------------------


def server_cpu(pid: int) -> float:
    """CPU seconds of the server's main thread (its event loop: where blocks up to
    FXHOST_INLINE_FRAMES, WebSocket messages and the metrics' flush run), in nanoseconds
    from /proc schedstat rather than clock ticks of 10 ms."""
    with open(f"/proc/{pid}/task/{pid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e9


async def closed_loop(port: int, pid: int, n: int) -> float:
    """Server CPU seconds per block over ``n`` blocks of one closed-loop client."""
    from websockets.asyncio.client import connect

    payloads = [np.ascontiguousarray(b.T).astype("<f4").tobytes() for b in blocks()]
    start = {"type": "start", "steps": [{"effect": "reverb"}], "sample_rate": SR, "channels": CHANNELS}
    async with connect(f"ws://127.0.0.1:{port}/ws/process", max_size=None, compression=None) as ws:
        await ws.send(json.dumps(start))
        await ws.recv()
        for i in range(200):  # warm-up, not measured
            await ws.send(payloads[i & 15])
            await ws.recv()
        cpu = server_cpu(pid)
        for i in range(n):
            await ws.send(payloads[i & 15])
            await ws.recv()
        return (server_cpu(pid) - cpu) / n


def end_to_end(rounds: int, n: int) -> dict:
    runs: dict[str, list[float]] = {"off": [], "on": []}
    if not rounds:
        return {"pairs": []}
    with tempfile.TemporaryDirectory() as scratch:
        servers = {}
        for name, on in (("off", "false"), ("on", "true")):
            folder = Path(scratch) / name
            folder.mkdir()
            servers[name] = start_fxhost(folder, {"FXHOST_METRICS": on})[:2]
        try:
            for i in range(rounds):
                for name in ("off", "on") if i % 2 == 0 else ("on", "off"):
                    proc, port = servers[name]
                    runs[name].append(asyncio.run(closed_loop(port, proc.pid, n)) * 1e6)
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(timeout=20)
    off_us = statistics.median(runs["off"])
    pairs = sorted(b / a for a, b in zip(runs["off"], runs["on"], strict=True))
    return {"off_us": off_us, "ratio": statistics.median(pairs), "pairs": pairs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=401, help="alternating rounds in process")
    parser.add_argument("--blocks", type=int, default=100, help="blocks per round in process")
    parser.add_argument("--server-rounds", type=int, default=40, help="alternating runs per server")
    parser.add_argument("--server-blocks", type=int, default=1000, help="blocks per server run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        # As `fxhost serve` does: multiprocess mode, set before prometheus_client is imported.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        inproc = in_process(args.rounds, args.blocks)
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
    print("\n1. in process, LiveChain._process_now, reverb, 256 frames 48 kHz stereo")
    print("   (fastest round, µs per block)")
    print(f"   metrics off:                        {inproc['off_us']:8.2f}")
    print(f"   metrics on (effects timed):         {inproc['on_us']:8.2f}")
    print(
        f"   flush into prometheus, once a second: {inproc['flush_us']:.1f} µs "
        f"= {inproc['flush_per_block_us']:.3f} µs per block of one client"
    )
    print(
        f"   timing one step (invert: {inproc['invert_off_us']:.2f} µs per block off): "
        f"{inproc['step_us']:+.3f} µs per block"
    )
    pairs = inproc["pairs"]
    print(f"   on / off, flush included, fastest rounds: {inproc['fastest_ratio']:.4f}")
    print(f"   on / off, flush included, median of rounds: {inproc['ratio']:.4f}")
    quartiles = statistics.quantiles(pairs, n=4)
    print(f"   on / off by round: quartiles {' '.join(f'{q:.3f}' for q in quartiles)} ({len(pairs)} rounds)")
    e2e = end_to_end(args.server_rounds, args.server_blocks)
    print("\n2. end to end, /ws/process, one closed-loop client (server event-loop CPU per block)")
    if e2e["pairs"]:
        print(f"   FXHOST_METRICS=false, median:       {e2e['off_us']:8.1f} µs")
        print(f"   true / false, median of runs:       {e2e['ratio']:8.4f}")
        quartiles = statistics.quantiles(e2e["pairs"], n=4)
        print(f"   true / false by run: quartiles {' '.join(f'{q:.3f}' for q in quartiles)}")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
