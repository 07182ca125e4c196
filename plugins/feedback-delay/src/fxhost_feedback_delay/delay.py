"""A feedback delay in pure numpy: the example effect of the plugin author's guide.

Signal flow, per channel, with ``D`` the delay in samples::

    delayed[n] = line[n - D]                          # read the delay line
    line[n]    = x[n] + feedback * delayed[n]         # write input plus feedback
    y[n]       = (1 - mix) * x[n] + mix * delayed[n]  # blend dry and wet

Every echo is ``feedback`` times the one before, ``D`` samples later.
"""

from __future__ import annotations

import math
from typing import Annotated

import fxhost_sdk
import numpy as np
from fxhost_sdk import param

# One constant for both the parameter's upper bound and the size of the delay line.
MAX_DELAY_SECONDS = 2.0
# A change of delay_seconds cross-fades from the old read position to the new one over
# this long, instead of jumping (which would click).
CROSSFADE_SECONDS = 0.01
# -60 dBFS: the level below which the tail counts as ended.
TAIL_THRESHOLD = 1e-3


class FeedbackDelay(fxhost_sdk.Effect):
    """Echoes that repeat and fade: a delay line whose output is fed back into it."""

    # The class attributes the host reads. `name` is what chains and URLs use: keep it
    # stable. Bump `version` whenever the sound changes.
    name = "feedback_delay"
    version = "1.0.0"
    summary = "Echoes that repeat and fade away (a delay line with feedback)."

    # The parameters: one msgspec struct, the single source of the JSON Schema, of the
    # validation of every request, and of the docs. Each field has a default and its
    # constraints; out-of-range values are refused before they reach the DSP.
    class Params(fxhost_sdk.Params):
        delay_seconds: Annotated[
            float,
            param(
                description="Time between echoes.",
                ge=0.001,
                le=MAX_DELAY_SECONDS,
                unit="s",
                scale="log",
            ),
        ] = 0.25
        feedback: Annotated[
            float,
            param(
                description="Level of each echo relative to the one before (linear gain).",
                ge=0.0,
                le=0.95,
                unit="ratio",
            ),
        ] = 0.4
        mix: Annotated[
            float,
            param(
                description="Balance of dry (0) and echoes (1).",
                ge=0.0,
                le=1.0,
                unit="ratio",
            ),
        ] = 0.35

    # -- state ------------------------------------------------------------------

    def prepare(self) -> None:
        # Called at construction and again by reset(): allocate everything here,
        # never in process(). The delay line is a circular buffer long enough for the
        # longest delay; state is float64 so that the feedback loop does not accumulate
        # float32 rounding.
        size = max(1, round(MAX_DELAY_SECONDS * self.sample_rate))
        self._line = np.zeros((self.channels, size))
        self._write = 0  # index where the next sample is written
        self._delay = 0  # delay in samples; set by apply_params, which runs next
        self._fading_from: int | None = None  # old delay while cross-fading
        self._faded = 0  # samples of the cross-fade done

    def apply_params(self, params: FeedbackDelay.Params) -> None:
        # Called with validated parameters at construction and on every live change
        # (between blocks). Precompute what process() needs.
        delay = min(max(1, round(params.delay_seconds * self.sample_rate)), self._line.shape[1])
        if self._delay and delay != self._delay:
            # Live change: fade from the old read position (a new change during a
            # fade restarts it from the current position).
            self._fading_from = self._delay
            self._faded = 0
        self._delay = delay
        self._feedback = params.feedback
        self._mix = params.mix

    # -- audio ------------------------------------------------------------------

    def process(self, block: np.ndarray) -> np.ndarray:
        x = np.asarray(block, dtype=np.float64)
        out = np.empty(x.shape, dtype=np.float32)
        done, frames = 0, x.shape[1]
        while done < frames:
            # The recursion only looks D samples back, so a chunk of at most D samples
            # reads nothing it has not written yet: it can be computed as whole arrays,
            # and the result is the same whatever the block size.
            length = min(frames - done, self._delay, self._fading_from or self._delay)
            out[:, done : done + length] = self._chunk(x[:, done : done + length])
            done += length
        return out

    def _read(self, delay: int, length: int) -> np.ndarray:
        # line[n - delay] for the next `length` samples; mode="wrap" makes the indices
        # circular.
        start = self._write - delay
        return np.take(self._line, range(start, start + length), axis=1, mode="wrap")

    def _chunk(self, x: np.ndarray) -> np.ndarray:
        length = x.shape[1]
        delayed = self._read(self._delay, length)
        if self._fading_from is not None:
            old = self._read(self._fading_from, length)
            fade_length = CROSSFADE_SECONDS * self.sample_rate
            ramp = np.minimum(1.0, (self._faded + np.arange(1, length + 1)) / fade_length)
            delayed = old + ramp * (delayed - old)
            self._faded += length
            if self._faded >= fade_length:
                self._fading_from = None
        where = np.arange(self._write, self._write + length) % self._line.shape[1]
        self._line[:, where] = x + self._feedback * delayed
        self._write = (self._write + length) % self._line.shape[1]
        return (1.0 - self._mix) * x + self._mix * delayed

    # -- what the host needs to know ----------------------------------------------
    # (reset() is inherited: it calls prepare() then apply_params(), which gives a
    # fresh state with the current parameters. latency is inherited too: 0 frames.)

    @property
    def tail_seconds(self) -> float:
        # After the input stops, echo k (k = 0, 1, ...) plays k delays later at most
        # mix * feedback**k / (1 - feedback): a full-scale input can build the line up
        # to 1 / (1 - feedback). The tail ends with the first echo below -60 dBFS, and
        # lasts at least one delay (the line still holds the last delay of input).
        if self._mix == 0.0:
            return 0.0
        peak = self._mix / (1.0 - self._feedback)
        echoes = 1
        if self._feedback > 0.0 and peak >= TAIL_THRESHOLD:
            echoes = max(1, math.ceil(math.log(TAIL_THRESHOLD / peak) / math.log(self._feedback)))
        return echoes * self._delay / self.sample_rate
