"""Benchmark: the ring buffer's cost per audio block against the bare memory copies it
wraps, side by side in one process; and the cost of the WebSocket wire conversions.

    uv run python bench/ring.py [--rounds 400] [--batch 200]

At 48 kHz stereo in 256-frame blocks (5.33 ms of audio each):

- ring: ``RingBuffer.write`` of a block plus ``RingReader.read(256)`` by its one reader
  (lock, bookkeeping, wrap-around, and a fresh output array per read), against
- baseline: two ``numpy.copyto`` calls of the same ``(2, 256)`` float32 shapes into
  preallocated arrays (the memcpy's alone);
- ``to_interleaved`` / ``from_interleaved`` of one block, ``f32le`` and ``s16le``.

Every measurement is a batch of ``--batch`` operations timed together (divided by the
batch size); the batches of the different operations alternate, ``--rounds`` times,
and the median per operation is printed.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable

import numpy as np
from fxhost.audio.pcm import from_interleaved, to_interleaved
from fxhost.engine.ring import RingBuffer

SR = 48_000
CHANNELS = 2
BLOCK = 256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    block = (0.5 * rng.standard_normal((CHANNELS, BLOCK))).clip(-1, 1).astype(np.float32)

    ring = RingBuffer(CHANNELS, SR)  # one second; 48000 / 256 is not whole: writes wrap at times
    reader = ring.reader(name="bench")

    def ring_op() -> None:
        ring.write(block)
        reader.read(BLOCK)

    store = np.zeros((CHANNELS, BLOCK), np.float32)
    out = np.zeros((CHANNELS, BLOCK), np.float32)

    def copy_op() -> None:
        np.copyto(store, block)
        np.copyto(out, store)

    wire = {fmt: to_interleaved(block, fmt) for fmt in ("f32le", "s16le")}
    ops: dict[str, Callable[[], object]] = {
        "ring write+read": ring_op,
        "2x numpy.copyto": copy_op,
        "to_interleaved f32le": lambda: to_interleaved(block, "f32le"),
        "from_interleaved f32le": lambda: from_interleaved(wire["f32le"], CHANNELS, "f32le"),
        "to_interleaved s16le": lambda: to_interleaved(block, "s16le"),
        "from_interleaved s16le": lambda: from_interleaved(wire["s16le"], CHANNELS, "s16le"),
    }
    times: dict[str, list[float]] = {name: [] for name in ops}
    batch = range(args.batch)
    for op in ops.values():  # warm up
        for _ in batch:
            op()
    gc.collect()
    gc.disable()
    try:
        for _ in range(args.rounds):
            for name, op in ops.items():
                start = time.perf_counter_ns()
                for _ in batch:
                    op()
                times[name].append((time.perf_counter_ns() - start) / args.batch)
    finally:
        gc.enable()

    med = {name: statistics.median(t) for name, t in times.items()}
    budget_ns = BLOCK / SR * 1e9
    s = ring.stats
    assert s.frames_lost == 0 and s.frames_read == s.frames_written

    print(
        f"fxhost ring buffer: {SR} Hz, {CHANNELS} channels, {BLOCK}-frame blocks "
        f"({budget_ns / 1e6:.2f} ms of audio each); median of {args.rounds} batches of {args.batch}"
    )
    print(f"  {'per block':<26}{'ns':>10}  {'of the block time':>18}")
    for name, ns in med.items():
        print(f"  {name:<26}{ns:10.0f}  {100 * ns / budget_ns:17.3f}%")
    ratio = med["ring write+read"] / med["2x numpy.copyto"]
    print(
        f"  ring write+read / 2x numpy.copyto: {ratio:.2f}x "
        f"(+{med['ring write+read'] - med['2x numpy.copyto']:.0f} ns per block)"
    )


if __name__ == "__main__":
    main()
