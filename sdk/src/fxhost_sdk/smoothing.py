"""Parameter smoothing: a value that glides to its new target instead of jumping.

A gain that jumps from one block to the next puts a step in the waveform, heard as a
click; a parameter automated block by block makes a staircase of them ("zipper noise").
A :class:`LinearSmoother` turns each change into a straight ramp over a fixed time, one
value per frame::

    def prepare(self):
        self.depth = LinearSmoother(self.sample_rate, seconds=0.02)

    def apply_params(self, params):
        self.depth.set_target(params.depth)   # the first target is taken at once

    def process(self, block):
        depth = self.depth.next(block.shape[1])   # float64, one value per frame
        ...

The ramp is counted in frames, so the values are the same whatever the block sizes: an
effect that uses it stays block-size invariant. Numpy only.
"""

from __future__ import annotations

import math

import numpy as np


class LinearSmoother:
    """One parameter's value, ramping linearly to each new target over ``seconds``.

    Until the first :meth:`set_target` it has no value; that first target is taken at
    once (an effect starts at its parameters, not ramping up to them). Each later target
    starts a ramp from wherever the value is, reaching the target after
    ``round(seconds * sample_rate)`` frames (at least 1).
    """

    def __init__(self, sample_rate: float, seconds: float = 0.02):
        if not (math.isfinite(sample_rate) and sample_rate > 0):
            raise ValueError(f"sample_rate must be a positive number, got {sample_rate!r}")
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"seconds must be a non-negative number, got {seconds!r}")
        self.ramp_frames = max(1, round(seconds * sample_rate))
        self._start = self._target = math.nan
        self._done = self.ramp_frames  # frames of the current ramp already produced

    @property
    def value(self) -> float:
        """The value of the last frame produced (the target once the ramp is over)."""
        if self._done >= self.ramp_frames:
            return self._target
        return self._start + (self._target - self._start) * self._done / self.ramp_frames

    @property
    def target(self) -> float:
        return self._target

    @property
    def ramping(self) -> bool:
        """True while the value is still on its way to the target."""
        return self._done < self.ramp_frames

    def set_target(self, target: float) -> None:
        """Ramp to ``target`` from the current value (at once, the first time)."""
        target = float(target)
        if math.isnan(self._target):
            self.jump(target)
        elif target != self._target:
            self._start, self._target, self._done = self.value, target, 0

    def jump(self, value: float) -> None:
        """Take ``value`` at once, with no ramp (for :meth:`Effect.reset`, say)."""
        self._start = self._target = float(value)
        self._done = self.ramp_frames

    def next(self, frames: int) -> np.ndarray:
        """The values of the next ``frames`` frames (float64), advancing the ramp."""
        if math.isnan(self._target):
            raise RuntimeError("LinearSmoother has no value yet: call set_target() first")
        if self._done >= self.ramp_frames:
            return np.full(frames, self._target)
        steps = np.arange(self._done + 1, self._done + frames + 1)
        self._done = min(self.ramp_frames, self._done + frames)
        share = np.minimum(steps, self.ramp_frames) / self.ramp_frames
        return self._start + (self._target - self._start) * share
