"""The output ceiling: a true-peak limiter that a render applies as its very last step
(after any resampling) when its output asks for ``ceiling_dbfs``.

The guarantee is stated against the meter fxhost reports with,
:func:`fxhost_sdk.meters.true_peak` (4x oversampled below 192 kHz through
:data:`~fxhost_sdk.meters.TRUE_PEAK_FILTERS`, the samples themselves from there, the
audio taken to start and end in silence): **the true peak of the limited output, so
measured, is at most the ceiling.** Two stages make it so:

1. *A look-ahead limiter.* Each frame's peak is detected on the same 4x interpolation
   the meter uses (the loudest channel sets the gain of all, so the stereo image stays).
   The gain needed to bring it under the ceiling (less :data:`MARGIN_DB`) is held over
   the interpolator's reach on either side and reached with a ramp of
   :data:`ATTACK_SECONDS` before it (a moving average of a sliding minimum, which never
   rises above the gain any frame it covers needs), then recovers exponentially
   (:data:`RELEASE_SECONDS`). No make-up gain: audio under the ceiling passes unchanged.
2. *A check of what leaves.* A gain that changes within the interpolator's 32 frames can
   still push a point between samples a hair over, so every interpolated point of the
   output is measured before its frames leave, and a point over the ceiling has the
   frames around it scaled down until none is (in practice the margin leaves this
   nothing to do: it is the guarantee, not the method).

Why not pedalboard's limiters: ``pedalboard.Limiter`` (JUCE's) adds make-up gain and
clips at 0 dBFS, and ``pedalboard.BrickwallLimiter`` says itself that with
``true_peak=True`` it "does not guarantee the reconstructed waveform stays below the
ceiling"; and the host does not depend on pedalboard (effects are plugins).

The limiter holds :attr:`CeilingLimiter.latency` frames back; :meth:`process` returns
only finished frames (fewer than it was given at first) and :meth:`flush` the rest, so
the output is exactly as long as the input and aligned with it.
"""

from __future__ import annotations

import math

import numpy as np
from fxhost_sdk.meters import TRUE_PEAK_FILTERS, TRUE_PEAK_HALF_TAPS, TRUE_PEAK_MAX_RATE

#: The look-ahead stage aims this far under the ceiling, so that the check rarely has
#: anything to correct.
MARGIN_DB = 0.1
#: Length of the gain's ramp down to a peak (the look-ahead).
ATTACK_SECONDS = 0.002
#: Time constant of the gain's recovery after a peak.
RELEASE_SECONDS = 0.05
#: Correction rounds of the check per block (each round fixes every point over).
CHECK_ROUNDS = 16

_TAPS = 2 * TRUE_PEAK_HALF_TAPS
_PHASES = [np.ascontiguousarray(column) for column in TRUE_PEAK_FILTERS.T]
#: Frames before a point's gap that its interpolation reads (it reads HALF_TAPS after).
_BEFORE = TRUE_PEAK_HALF_TAPS - 1
#: Frames the check keeps back beyond the last point it could measure, so that a later
#: correction (which reaches back one interpolator length) never needs a frame gone.
_CHECK_SLACK = 2 * _TAPS


class CeilingLimiter:
    """A true-peak limiter to ``ceiling_dbfs`` for ``channels`` of audio at
    ``sample_rate``: feed float ``(channels, frames)`` blocks of any size to
    :meth:`process`, then call :meth:`flush` once."""

    def __init__(self, ceiling_dbfs: float, sample_rate: int, channels: int):
        if not (math.isfinite(ceiling_dbfs) and ceiling_dbfs <= 0.0):
            raise ValueError(f"ceiling_dbfs: expected a finite level <= 0 dBFS, not {ceiling_dbfs!r}")
        self.channels = channels
        self.ceiling = 10.0 ** (ceiling_dbfs / 20.0)
        self._aim = self.ceiling * 10.0 ** (-MARGIN_DB / 20.0)
        #: Below 192 kHz peaks between samples count (the meter's rule).
        self._between = sample_rate < TRUE_PEAK_MAX_RATE
        self._attack = max(_TAPS, round(ATTACK_SECONDS * sample_rate))
        self._release = math.exp(-1.0 / max(1.0, RELEASE_SECONDS * sample_rate))
        # Detection: the frames kept for the next points' interpolation (silence before).
        self._detect = np.zeros((channels, _BEFORE))
        # Gain: the needed gains kept for the sliding minimum (unity before the start),
        # and the frames waiting for their gain.
        self._hold = _BEFORE + 1  # the minimum reaches this far back ...
        self._ahead = self._attack + _BEFORE + 1  # ... and this far ahead (the ramp, then the reach)
        # The ramp to a peak right at the start begins in silence before it: the stage
        # starts with attack - 1 silent frames of its own, dropped from its output.
        self._lead = self._attack - 1
        self._needed = np.ones(self._hold + self._lead)
        self._waiting = np.zeros((channels, self._lead))
        self._reduction = 0.0  # 1 - gain of the release's last frame
        self._recent = np.ones(self._attack - 1)  # the moving average's last gains
        # Check: the frames gone already that points still read, then those not yet gone.
        self._gone = np.zeros((channels, _BEFORE))
        self._pending = np.zeros((channels, 0))
        self._done = False
        #: Frames held back: process() returns this many fewer than it was given, at first.
        self.latency = TRUE_PEAK_HALF_TAPS + (self._ahead - 1) + _TAPS + _CHECK_SLACK
        #: Points the check found over the ceiling and corrected (0 when the margin sufficed).
        self.corrected = 0

    def process(self, block: np.ndarray) -> np.ndarray:
        """The finished frames (float32) that ``block`` lets out."""
        assert not self._done, "flush() was called"
        return self._run(np.asarray(block, dtype=np.float64), final=False)

    def flush(self) -> np.ndarray:
        """The frames still held back (float32), the input taken to end in silence."""
        self._done = True
        return self._run(np.zeros((self.channels, 0)), final=True)

    def _run(self, block: np.ndarray, *, final: bool) -> np.ndarray:
        frames, peaks = self._detect_peaks(block, final)
        frames, gains = self._gains(frames, peaks, final)
        return self._check(frames * gains, final).astype(np.float32)

    # -- 1. detection ------------------------------------------------------------------

    def _points(self, audio: np.ndarray) -> np.ndarray:
        """``|value|`` at the interpolated points: ``(channels, len - _TAPS + 1, 3)``, point
        ``j`` being those between frames ``j + _BEFORE`` and the next."""
        # The meter's filters as convolutions: np.convolve runs them directly, 10 times
        # faster than the meter's matrix product on 8192-frame blocks on a busy 2-core
        # machine (1.2 ms against 13 ms a channel; the results agree within 1e-15).
        return np.abs(
            np.stack(
                [
                    np.stack([np.convolve(channel, phase[::-1], "valid") for phase in _PHASES], axis=1)
                    for channel in audio
                ]
            )
        )

    def _detect_peaks(self, block: np.ndarray, final: bool) -> tuple[np.ndarray, np.ndarray]:
        """Frames whose peak is known, and that peak (the loudest channel's largest
        magnitude at the frame and between it and the next)."""
        audio = np.concatenate([self._detect, block], axis=1)
        if final:
            audio = np.concatenate([audio, np.zeros((self.channels, TRUE_PEAK_HALF_TAPS))], axis=1)
        count = audio.shape[1] - _TAPS + 1
        if count <= 0:
            self._detect = audio
            return np.zeros((self.channels, 0)), np.zeros(0)
        frames = audio[:, _BEFORE : _BEFORE + count]
        peaks = np.abs(frames)
        if self._between:
            peaks = np.maximum(peaks, self._points(audio).max(axis=2))
        self._detect = audio[:, count:]
        return frames, peaks.max(axis=0)

    # -- 2. gain -------------------------------------------------------------------------

    def _gains(self, frames: np.ndarray, peaks: np.ndarray, final: bool) -> tuple[np.ndarray, np.ndarray]:
        """Frames and the gain for each, once the peaks ``_ahead`` frames on are known."""
        with np.errstate(divide="ignore"):
            needed = np.minimum(1.0, self._aim / peaks)
        needed = np.concatenate([self._needed, needed])
        waiting = np.concatenate([self._waiting, frames], axis=1)
        if final:  # unity after the end
            needed = np.concatenate([needed, np.ones(self._ahead - 1)])
        width = self._hold + self._ahead
        count = needed.shape[0] - width + 1
        if count <= 0:
            self._needed, self._waiting = needed, waiting
            return np.zeros((self.channels, 0)), np.zeros(0)
        # The gain a frame may have: the least any frame within reach needs.
        floor = np.lib.stride_tricks.sliding_window_view(needed, width).min(axis=1)
        self._needed = needed[count:]
        frames, self._waiting = waiting[:, :count], waiting[:, count:]
        # Exponential recovery: reduction[j] = max(1 - floor[j], release * reduction[j - 1]),
        # solved for the block at once in the log domain (a running maximum).
        lag = math.log(self._release)
        steps = np.arange(count)
        with np.errstate(divide="ignore"):
            lifted = np.log(np.maximum(1.0 - floor, 0.0)) - steps * lag
        reduction = np.exp(np.maximum.accumulate(lifted) + steps * lag)
        reduction = np.maximum(reduction, self._reduction * np.exp((steps + 1) * lag))
        self._reduction = float(reduction[-1])
        # The ramp: a moving average over the attack, never above any gain it spans.
        gains = np.concatenate([self._recent, 1.0 - reduction])
        sums = np.cumsum(np.concatenate([[0.0], gains]))
        averaged = (sums[self._attack :] - sums[: -self._attack]) / self._attack
        self._recent = gains[gains.shape[0] - (self._attack - 1) :]
        if self._lead:
            drop = min(self._lead, count)
            self._lead -= drop
            frames, averaged = frames[:, drop:], averaged[drop:]
        return frames, averaged

    # -- 3. check --------------------------------------------------------------------------

    def _check(self, frames: np.ndarray, final: bool) -> np.ndarray:
        """Frames that leave: every point they take part in is at most the ceiling."""
        pending = np.concatenate([self._pending, frames], axis=1)
        kept = self._gone.shape[1]
        audio = np.concatenate([self._gone, pending], axis=1)
        if final:
            audio = np.concatenate([audio, np.zeros((self.channels, TRUE_PEAK_HALF_TAPS))], axis=1)
        limit = self.ceiling * (1.0 - 1e-6)
        if audio.shape[1] >= _TAPS:
            for _ in range(CHECK_ROUNDS):
                over = self._overs(audio, limit)
                if over is None:
                    break
                scale = np.ones(audio.shape[1])
                for start, stop, factor in over:  # the frames it reads that are not gone yet
                    start = max(start, kept)
                    scale[start:stop] = np.minimum(scale[start:stop], factor)
                audio *= scale
                self.corrected += len(over)
        else:
            over = np.abs(audio) > limit  # too few frames for points: samples only
            audio[over] *= limit / np.abs(audio[over])
        pending = audio[:, kept : kept + pending.shape[1]]
        leaving = pending.shape[1] if final else max(0, pending.shape[1] - (_TAPS + _CHECK_SLACK))
        out, self._pending = pending[:, :leaving], pending[:, leaving:]
        self._gone = np.concatenate([self._gone, out], axis=1)[:, -_BEFORE:]
        return out

    def _overs(self, audio: np.ndarray, limit: float) -> list[tuple[int, int, float]] | None:
        """``(start, stop, factor)`` for each sample or point over ``limit``: scaling the
        frames it reads (``start:stop``) by ``factor`` brings it to the limit."""
        found: list[tuple[int, int, float]] = []
        samples = np.abs(audio).max(axis=0)
        for i in np.flatnonzero(samples > limit):
            found.append((int(i), int(i) + 1, limit / float(samples[i])))
        if self._between:
            points = self._points(audio).max(axis=(0, 2))
            for j in np.flatnonzero(points > limit):
                found.append((int(j), int(j) + _TAPS, limit / float(points[j])))
        return found or None
