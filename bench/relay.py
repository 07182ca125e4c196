"""Benchmark: what relaying a stream's output through Redis adds, per block, against a
consumer on the owner; side by side in one run.

    FXHOST_BENCH_REDIS_URL=redis://127.0.0.1:6379/0 uv run python bench/relay.py [--seconds 20] [--rounds 2]

Two processes on one machine, both on uvloop: this one is the *owner* (a real
``StreamManager`` stream through the reverb, its ``Fanout`` publishing to Redis, a
real-time producer writing one 256-frame stereo block every 5.333 ms at 48 kHz against
the monotonic clock, and one consumer reading the output ring); the other (this file,
``--node``) is a *node*: its ``Fanout`` relays the Redis Stream into a mirror ring, and
one consumer reads the mirror. Both consumers wait on ``output_ready`` as
``WS /ws/streams/{id}/output`` does.

Per block, from the owner's output ring write (the processing task's ``write``, timed
by wrapping it) to the block's last frame read by (a) the owner's consumer and (b) the
mirror's consumer, ``time.monotonic_ns`` in both processes (one clock on Linux). The
first second is left out (warm-up). Printed: p50/p99/max of each, and of (b) - (a) per
block, the relay's own cost. Also the owner process's CPU per block with the publisher
and without it (runs of the same length with no fan-out, alternating with those with it,
``--rounds`` pairs), and the node's. About 90 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
import uuid

import numpy as np
import uvloop
from fxhost.catalog.chains import ResolvedStep
from fxhost.engine.streams import StreamManager
from fxhost.store.fanout import Fanout
from fxhost_pedalboard import Reverb

SR = 48_000
CHANNELS = 2
BLOCK = 256
PERIOD = BLOCK / SR  # 5.333 ms
WARMUP_BLOCKS = SR // BLOCK  # one second


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def arrivals(reader, times: dict[int, int]) -> None:
    """Read what there is; record ``now`` for every block whose last frame it brings."""
    start = reader.cursor
    block, lost = reader.read()
    n = block.shape[1]
    if not n:
        return
    now = time.monotonic_ns()
    start += lost
    # block p (p a multiple of BLOCK) ends at p + BLOCK - 1, in [start, start + n)
    first = max(0, -(-(start - BLOCK + 1) // BLOCK) * BLOCK)
    for pos in range(first, start + n - BLOCK + 1, BLOCK):
        times[pos] = now


async def consume(ring_owner, reader, times: dict[int, int], done: asyncio.Event) -> None:
    while not done.is_set():
        waiter = ring_owner.output_ready.wait()
        arrivals(reader, times)
        if ring_owner.closed:
            waiter.close()
            return
        await waiter


# -- the node process ------------------------------------------------------------------


async def node_main(url: str, prefix: str, stream_id: str) -> None:
    fanout = Fanout(url, prefix)
    await fanout.start()
    mirror = await fanout.mirror(stream_id, channels=CHANNELS, capacity=SR * 10, wait_seconds=10)
    reader = mirror.consumer()
    times: dict[int, int] = {}
    print("ready", flush=True)
    cpu0 = cpu_seconds()
    await consume(mirror, reader, times, asyncio.Event())
    cpu = cpu_seconds() - cpu0
    print(json.dumps({"times": times, "cpu": cpu, "gaps": mirror.gap_frames}), flush=True)
    await mirror.release(reader)
    await fanout.stop()


# -- the owner -------------------------------------------------------------------------


async def run_owner(args, url: str | None) -> dict:
    prefix = f"fxbench-{uuid.uuid4().hex[:8]}"
    fanout = None
    if url:
        fanout = Fanout(url, prefix)
        await fanout.start()
    streams = StreamManager(
        max_streams=4,
        idle_seconds=600,
        inline_frames=2048,
        max_tail_seconds=30,
        block_timeout=5,
        on_create=fanout.publish if fanout else None,
    )
    streams.start()
    steps = [ResolvedStep("reverb", Reverb, Reverb.check_params({}))]
    stream = streams.create(
        None,
        steps,
        sample_rate=SR,
        channels=CHANNELS,
        wire_format="f32le",
        capacity=SR * 10,
        overflow="reject",
        tenant="",
    )
    written: dict[int, int] = {}
    plain_write = stream.output.write

    def timed_write(block, **kw):
        pos = stream.output.write_pos
        n = plain_write(block, **kw)
        now = time.monotonic_ns()
        for p in range(pos, pos + n, BLOCK):
            written[p] = now
        return n

    stream.output.write = timed_write  # the processing task's writes, timed

    node = None
    if fanout:
        # the start entry is in Redis before the node looks for it
        while not await fanout.redis.exists(fanout.key(stream.id)):
            await asyncio.sleep(0.01)
        node = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--node",
            url,
            prefix,
            stream.id,
            stdout=subprocess.PIPE,
        )
        assert (await node.stdout.readline()).strip() == b"ready"

    owner_times: dict[int, int] = {}
    done = asyncio.Event()
    consumer = asyncio.create_task(consume(stream, stream.consumer(), owner_times, done))
    rng = np.random.default_rng(0)
    blocks = int(args.seconds / PERIOD)
    audio = (0.3 * rng.standard_normal((CHANNELS, BLOCK * 64))).astype(np.float32)
    late = 0
    cpu0 = cpu_seconds()
    t0 = time.monotonic()
    for i in range(blocks):
        due = t0 + i * PERIOD
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -PERIOD:
            late += 1
        j = (i % 64) * BLOCK
        stream.write(audio[:, j : j + BLOCK])
    end = blocks * BLOCK
    while stream.output.write_pos < end or (end - BLOCK) not in owner_times:
        await asyncio.sleep(0.01)
    cpu = cpu_seconds() - cpu0
    await streams.delete(stream.id)  # ends the node's mirror too
    done.set()
    await consumer
    result = {"written": written, "owner": owner_times, "cpu": cpu, "blocks": blocks, "late_sends": late}
    if node:
        out, _ = await node.communicate()
        result["node"] = json.loads(out.decode().strip().splitlines()[-1])
    await streams.stop()
    if fanout:
        await fanout.stop()
    return result


def percentiles(values_ns: list[int]) -> tuple[float, float, float]:
    a = np.array(values_ns) / 1e6
    return float(np.percentile(a, 50)), float(np.percentile(a, 99)), float(a.max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=2, help="pairs of runs, without and with fan-out")
    parser.add_argument("--node", nargs=3, metavar=("URL", "PREFIX", "STREAM"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.node:
        uvloop.run(node_main(*args.node))
        return
    url = os.environ.get("FXHOST_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

    bare_a, a, b, diff, missing, gaps, late = [], [], [], [], 0, 0, [0, 0]
    cpu = {"bare": [], "owner": [], "node": []}
    for _ in range(args.rounds):  # alternating, so that a change in the machine's load hits both
        bare = uvloop.run(run_owner(args, None))
        relayed = uvloop.run(run_owner(args, url))
        positions = range(WARMUP_BLOCKS * BLOCK, relayed["blocks"] * BLOCK, BLOCK)
        bare_a += [bare["owner"][p] - bare["written"][p] for p in positions if p in bare["owner"]]
        written, owner = relayed["written"], relayed["owner"]
        node = {int(k): v for k, v in relayed["node"]["times"].items()}
        both = [p for p in positions if p in owner and p in node and p in written]
        missing += len(positions) - len(both)
        gaps += relayed["node"]["gaps"]
        a += [owner[p] - written[p] for p in both]
        b += [node[p] - written[p] for p in both]
        diff += [node[p] - owner[p] for p in both]
        blocks = relayed["blocks"]
        cpu["bare"].append(bare["cpu"] / blocks * 1e6)
        cpu["owner"].append(relayed["cpu"] / blocks * 1e6)
        cpu["node"].append(relayed["node"]["cpu"] / blocks * 1e6)
        late[0] += bare["late_sends"]
        late[1] += relayed["late_sends"]

    print(f"relay latency per block: 48 kHz stereo, {BLOCK}-frame blocks, real-time producer, reverb;")
    print(
        f"{args.rounds} x ({args.seconds:g} s without fan-out, {args.seconds:g} s with), first second of "
        f"each left out; {len(a)} blocks (missing at the mirror: {missing}, gap frames: {gaps})"
    )
    print()
    print(f"  {'from the output ring write to':44} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, values in [
        ("(a) consumer on the owner, no fan-out", bare_a),
        ("(a) consumer on the owner, publishing", a),
        ("(b) consumer on a mirror, through Redis", b),
        ("(b) - (a) per block: what the relay adds", diff),
    ]:
        p50, p99, worst = percentiles(values)
        print(f"  {name:44} {p50:8.3f} {p99:8.3f} {worst:8.3f}")
    print()

    def runs(values: list[float]) -> str:
        return " / ".join(f"{v:.0f}" for v in values)

    print(f"  {'CPU per block, µs (each round)':44}")
    print(f"  {'owner process, no fan-out':44} {runs(cpu['bare'])}")
    ratios = " / ".join(f"{o / b:.2f}x" for o, b in zip(cpu["owner"], cpu["bare"], strict=True))
    print(f"  {'owner process, publishing':44} {runs(cpu['owner'])}   ({ratios})")
    print(f"  {'node process: relay and one consumer':44} {runs(cpu['node'])}")
    print(f"  (producer sends late by more than a block: {late[0]} without, {late[1]} with fan-out)")
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"  (load average at the end: {load}, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
