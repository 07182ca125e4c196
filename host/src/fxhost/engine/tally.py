"""Plain counters of what the engine ran, for the wiring to read as metrics.

The engine knows no metrics library: live chains, streams and worker pools add to these
objects with attribute increments (O(1), no lock, no I/O, nothing allocated), and the
metrics module reads them every second or so and adds the differences to its own
counters. Each is owned by the part that counts into it (one :class:`LiveTotals` per
stream manager), never global.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from typing import Protocol

#: Upper bounds (seconds) of the buckets for one effect's time on one live block: a
#: 256-frame block at 48 kHz lasts 5.3 ms, and a cheap effect takes a few microseconds.
EFFECT_SECONDS_BOUNDS = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
    float("inf"),
)


class Histogram:
    """Observations counted into fixed buckets, with their sum. ``counts[i]`` counts the
    values ``v`` with ``bounds[i-1] < v <= bounds[i]`` (not cumulative); the last bound
    is infinity."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]):
        if bounds[-1] != float("inf"):
            bounds = (*bounds, float("inf"))
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.sum += value
        self.counts[bisect_left(self.bounds, value)] += 1

    @property
    def count(self) -> int:
        return sum(self.counts)


class LiveCounts:
    """Live blocks processed at one sample rate, summed over every live chain."""

    __slots__ = ("blocks", "deadline_misses", "frames", "process_seconds", "sample_rate")

    def __init__(self, sample_rate: int):
        self.sample_rate = sample_rate
        self.blocks = 0
        self.frames = 0
        self.process_seconds = 0.0
        #: Blocks that took longer to process than they last (frames / sample rate):
        #: slower than real time, so a client waiting for them falls behind.
        self.deadline_misses = 0

    @property
    def audio_seconds(self) -> float:
        return self.frames / self.sample_rate


class Fault(Protocol):
    """What :class:`FaultCounts` reads of an :class:`~fxhost.engine.compiled.EffectFault`."""

    effect: str | None
    kind: str


class FaultCounts(Counter):
    """Effect faults by ``(effect, kind)`` (``EffectFault.kind``); ``"unknown"`` when the
    effect could not be told (a worker process that died)."""

    def add(self, fault: Fault) -> None:
        self[(fault.effect or "unknown", fault.kind)] += 1


class LiveTotals:
    """What every live chain of a stream manager ran: blocks by sample rate (so that
    seconds of audio are exact sums of frames), each effect's time per block, faults.

    ``time_effects`` False: chains do not time their effects (metrics are off).

    Everything is counted on the event loop, but for the effect timings of blocks larger
    than ``inline_frames``, counted in the worker thread that ran them: two such threads
    timing the same effect at once may lose an increment (a metric, not an account)."""

    def __init__(self, *, time_effects: bool = True):
        self.time_effects = time_effects
        self.rates: dict[int, LiveCounts] = {}
        self.effects: dict[str, Histogram] = {}
        self.faults = FaultCounts()

    def at_rate(self, sample_rate: int) -> LiveCounts:
        counts = self.rates.get(sample_rate)
        if counts is None:
            counts = self.rates[sample_rate] = LiveCounts(sample_rate)
        return counts

    def effect(self, name: str) -> Histogram:
        times = self.effects.get(name)
        if times is None:
            times = self.effects[name] = Histogram(EFFECT_SECONDS_BOUNDS)
        return times
