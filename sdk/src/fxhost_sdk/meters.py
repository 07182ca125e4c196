"""Loudness and true-peak meters: ITU-R BS.1770-4 and EBU Tech 3342.

The host reports these figures for every asset (``/api/assets/{id}/analysis``); an effect
that sets a level (a loudness normaliser, a limiter with a ceiling) measures with the
same code, so that what it sets is what the host reports.

Figures are for float ``(channels, frames)`` audio:

- **Integrated loudness** (ITU-R BS.1770-4): K-weighting (the two biquads of the
  standard, designed for any sample rate with libebur128's formulas, which give the
  standard's 48 kHz coefficients exactly), mean square over 400 ms blocks with 75 %
  overlap, channel weights, an absolute gate at -70 LUFS and a relative gate 10 LU
  below the absolutely gated loudness. Not measured below 8 kHz, where the 1.68 kHz
  shelf of the K-weighting nears Nyquist.
- **Loudness range** (EBU Tech 3342): short-term loudness (3 s rectangular windows,
  K-weighted as above) every 100 ms; values below -70 LUFS are dropped, then those more
  than 20 LU below the power mean of the rest; LRA is the 95th minus the 10th
  percentile (linear interpolation) of what remains. No silence is appended.
- **True peak** (the method of ITU-R BS.1770-4 Annex 2): each channel oversampled 4x
  below 192 kHz, where the samples themselves are dense enough; the peak of the
  absolute values, never below the sample peak. The interpolator is a Kaiser-windowed
  sinc of 32 taps per phase (the Annex's 48-tap filter is one example of a suitable
  one). Like any 4x meter it can read a full-band signal a fraction of a dB under its
  continuous peak (measured on white noise: within 0.2 dB of 16x oversampling; the
  Annex's filter alike), which is why ceilings are set at -1 dBTP. The audio is taken
  to start and end in silence.

The true peak needs numpy alone. Loudness filters with scipy (``scipy.signal.sosfilt``),
imported when first measured: install ``fxhost-sdk[meters]`` to use it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "ABSOLUTE_GATE_LUFS",
    "LOUDNESS_MIN_RATE",
    "LoudnessMeter",
    "TruePeakMeter",
    "channel_weights",
    "db_to_gain",
    "gain_to_db",
    "k_weighting_sos",
    "loudness",
    "true_peak",
]

ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0  # BS.1770 integrated loudness
LRA_RELATIVE_GATE_LU = -20.0  # EBU Tech 3342
LRA_PERCENTILES = (10.0, 95.0)
#: K-weighting is defined where its 1.68 kHz shelf is well below Nyquist: loudness is
#: not measured below this sample rate.
LOUDNESS_MIN_RATE = 8000
SEGMENTS_PER_SECOND = 10  # blocks are built of 100 ms segments
BLOCK_SEGMENTS = 4  # 400 ms gating blocks, 75 % overlap
SHORT_TERM_SEGMENTS = 30  # 3 s short-term windows, 100 ms hop
#: Audio is filtered 10 s at a time, so that a meter's memory does not grow with the input.
CHUNK_SEGMENTS = 100


def db_to_gain(db: float) -> float:
    return 10.0 ** (db / 20.0)


def gain_to_db(gain: float) -> float:
    """``20 log10(gain)``; ``-inf`` for 0."""
    return 20.0 * math.log10(gain) if gain > 0 else -math.inf


# -- loudness --------------------------------------------------------------------------


def k_weighting_sos(sample_rate: float) -> np.ndarray:
    """The K-weighting filter of ITU-R BS.1770-4 for ``sample_rate``, as second-order
    sections: the high-shelf "pre-filter" then the RLB high-pass. The design formulas
    (libebur128's, also pyloudnorm's ``DeMan`` filters) give the standard's
    coefficients exactly at 48 kHz and the same response at other rates."""
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / sample_rate)
    vh = 10.0 ** (gain_db / 20.0)
    vb = vh**0.4996667741545416
    a0 = 1.0 + k / q + k * k
    shelf = [
        (vh + vb * k / q + k * k) / a0,
        2.0 * (k * k - vh) / a0,
        (vh - vb * k / q + k * k) / a0,
        1.0,
        2.0 * (k * k - 1.0) / a0,
        (1.0 - k / q + k * k) / a0,
    ]
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / sample_rate)
    a0 = 1.0 + k / q + k * k
    highpass = [1.0, -2.0, 1.0, 1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    return np.array([shelf, highpass])


def channel_weights(channels: int) -> np.ndarray:
    """BS.1770 channel weights G_i. Up to five channels in the order L, R, C, Ls, Rs:
    1.0 for the front channels, 1.41 for the surrounds. Six channels are taken as 5.1 in
    WAV order (L, R, C, LFE, Ls, Rs), the LFE left out. Any other layout is unknown:
    every channel weighs 1.0."""
    if channels <= 5:
        return np.array([1.0, 1.0, 1.0, 1.41, 1.41][:channels])
    if channels == 6:
        return np.array([1.0, 1.0, 1.0, 0.0, 1.41, 1.41])
    return np.ones(channels)


def _loudness_of(power: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return -0.691 + 10.0 * np.log10(power)


def _segment_bounds(frames: int, sample_rate: int) -> np.ndarray:
    """Frame index where each complete 100 ms segment starts, plus the end of the last."""
    count = frames * SEGMENTS_PER_SECOND // sample_rate
    return np.arange(count + 1, dtype=np.int64) * sample_rate // SEGMENTS_PER_SECOND


def _window_power(segment_energy: np.ndarray, bounds: np.ndarray, length: int) -> np.ndarray:
    """Weighted mean square of every window of ``length`` consecutive segments (hop: one segment)."""
    count = len(segment_energy) - length + 1
    if count <= 0:
        return np.empty(0)
    cumulative = np.concatenate(([0.0], np.cumsum(segment_energy)))
    sums = cumulative[length:] - cumulative[:count]
    return sums / (bounds[length:] - bounds[:count])


def _sosfilt() -> Any:
    try:
        from scipy.signal import sosfilt
    except ImportError:
        raise ImportError(
            "loudness is measured with scipy's filters: install fxhost-sdk[meters] (or scipy)"
        ) from None
    return sosfilt


class LoudnessMeter:
    """BS.1770 loudness of one signal of ``channels`` x ``frames`` at ``sample_rate``.

    Feed it the signal channel by channel in the chunks :meth:`chunks` names (so that a
    caller measuring other things in the same pass reads the audio once), or call
    :meth:`run` with the whole signal; then read :meth:`integrated`, :meth:`range` and
    :meth:`blocks`. Memory stays bounded: one chunk is 10 s of one channel.
    """

    def __init__(self, channels: int, frames: int, sample_rate: int):
        if sample_rate < LOUDNESS_MIN_RATE:
            raise ValueError(f"loudness is measured at {LOUDNESS_MIN_RATE} Hz or more, not {sample_rate}")
        self.sample_rate = int(sample_rate)
        self.frames = frames
        self.bounds = _segment_bounds(frames, self.sample_rate)
        self.sos = k_weighting_sos(self.sample_rate)
        self.energy = np.zeros((channels, len(self.bounds) - 1))
        self.weights = channel_weights(channels)
        self._filter = _sosfilt()

    def chunks(self) -> list[tuple[int, int, int, int]]:
        """``(first frame, end frame, first segment, end segment)`` of each chunk."""
        segments = len(self.bounds) - 1
        out = []
        for first in range(0, segments, CHUNK_SEGMENTS):
            last = min(first + CHUNK_SEGMENTS, segments)
            out.append((int(self.bounds[first]), int(self.bounds[last]), first, last))
        tail = int(self.bounds[-1])
        if tail < self.frames:
            out.append((tail, self.frames, segments, segments))
        return out

    def initial_state(self) -> np.ndarray:
        """The filter state a channel starts from (at rest)."""
        return np.zeros((self.sos.shape[0], 2))

    def feed(
        self, channel: int, x: np.ndarray, state: np.ndarray, chunk: tuple[int, int, int, int]
    ) -> np.ndarray:
        """Filter one chunk (float64) of one channel; returns the state to go on with."""
        first_frame, _, first, last = chunk
        y, state = self._filter(self.sos, x, zi=state)
        if last > first:
            local = self.bounds[first : last + 1] - first_frame
            squares = np.square(y[: local[-1]])
            self.energy[channel, first:last] = np.add.reduceat(squares, local[:-1])
        return state

    def run(self, audio: np.ndarray) -> LoudnessMeter:
        """Measure all of ``audio`` (``(channels, frames)``); returns the meter."""
        audio = np.atleast_2d(audio)
        for channel in range(audio.shape[0]):
            state = self.initial_state()
            for chunk in self.chunks():
                start, end = chunk[0], chunk[1]
                state = self.feed(channel, audio[channel, start:end].astype(np.float64), state, chunk)
        return self

    def _power(self, segments: int) -> np.ndarray:
        return _window_power(self.weights @ self.energy, self.bounds, segments)

    def blocks(self) -> np.ndarray:
        """The loudness (LUFS) of every 400 ms gating block, before any gate."""
        return _loudness_of(self._power(BLOCK_SEGMENTS))

    def integrated(self) -> float | None:
        """Integrated loudness, LUFS; None when shorter than one block, or silent."""
        power = self._power(BLOCK_SEGMENTS)
        if power.size == 0:
            return None
        loud = _loudness_of(power)
        gated = power[loud > ABSOLUTE_GATE_LUFS]
        if gated.size == 0:
            return None
        threshold = _loudness_of(np.array(gated.mean()))[()] + RELATIVE_GATE_LU
        kept = power[(loud > ABSOLUTE_GATE_LUFS) & (loud > threshold)]
        value = float(_loudness_of(np.array(kept.mean()))[()]) if kept.size else math.nan
        return value if math.isfinite(value) else None

    def range(self) -> float | None:
        """Loudness range LRA, LU; None when shorter than 3 s, or silent."""
        power = self._power(SHORT_TERM_SEGMENTS)
        if power.size == 0:
            return None
        loud = _loudness_of(power)
        gated = loud[loud > ABSOLUTE_GATE_LUFS]
        if gated.size == 0:
            return None
        threshold = 10.0 * np.log10(np.mean(10.0 ** (gated / 10.0))) + LRA_RELATIVE_GATE_LU
        kept = gated[gated >= threshold]
        low, high = np.percentile(kept, LRA_PERCENTILES)
        value = float(high - low)
        return value if math.isfinite(value) else None


def loudness(audio: np.ndarray, sample_rate: int) -> tuple[float | None, float | None]:
    """``(integrated loudness in LUFS, loudness range in LU)`` of float
    ``(channels, frames)`` audio; ``(None, None)`` below :data:`LOUDNESS_MIN_RATE`."""
    audio = np.atleast_2d(audio)
    if sample_rate < LOUDNESS_MIN_RATE:
        return None, None
    meter = LoudnessMeter(audio.shape[0], audio.shape[1], sample_rate).run(audio)
    return meter.integrated(), meter.range()


# -- true peak -------------------------------------------------------------------------

#: The signal is oversampled this many times (BS.1770-4 Annex 2 asks for 4x at 48 kHz).
TRUE_PEAK_OVERSAMPLING = 4
#: Interpolation filter length on each side of the point, in input samples.
TRUE_PEAK_HALF_TAPS = 16
#: Kaiser window shape of the interpolation filter (about 80 dB stop band).
TRUE_PEAK_KAISER_BETA = 8.0
#: From this rate on the samples are as dense as 4 x 48 kHz: no oversampling.
TRUE_PEAK_MAX_RATE = 192000
#: Input frames interpolated at once: bounds the memory, whatever the length.
TRUE_PEAK_CHUNK = 1 << 15


def _interpolation_filters() -> np.ndarray:
    """``(2 * HALF_TAPS, OVERSAMPLING - 1)``: column ``p - 1`` interpolates the point
    ``p / OVERSAMPLING`` of the way from one sample to the next, from the ``2 * HALF_TAPS``
    samples around it, oldest first. A Kaiser-windowed sinc, each phase scaled to unity
    gain at DC."""
    k = np.arange(-TRUE_PEAK_HALF_TAPS + 1, TRUE_PEAK_HALF_TAPS + 1)  # offsets of the samples used
    columns = []
    for p in range(1, TRUE_PEAK_OVERSAMPLING):
        t = k - p / TRUE_PEAK_OVERSAMPLING  # distance from the interpolated point to each sample
        window = np.i0(
            TRUE_PEAK_KAISER_BETA * np.sqrt(np.clip(1.0 - (t / TRUE_PEAK_HALF_TAPS) ** 2, 0.0, None))
        )
        h = np.sinc(t) * window / np.i0(TRUE_PEAK_KAISER_BETA)
        columns.append(h / h.sum())
    return np.stack(columns, axis=1)


#: The interpolation filters of :func:`true_peak`, one column per phase.
TRUE_PEAK_FILTERS = _interpolation_filters()


class TruePeakMeter:
    """The true peak of :func:`true_peak`, fed ``(channels, frames)`` blocks of any size in
    turn (the last ``2 * HALF_TAPS - 1`` frames of each channel are kept to interpolate
    across the seam); :meth:`peaks` after the last block. Memory stays bounded: blocks are
    interpolated :data:`TRUE_PEAK_CHUNK` frames at a time."""

    def __init__(self, channels: int, sample_rate: float):
        self.oversample = sample_rate < TRUE_PEAK_MAX_RATE
        self._peaks = np.zeros(channels)
        # The signal is read as HALF_TAPS - 1 zeros, the audio, then HALF_TAPS zeros: the
        # window of 2 * HALF_TAPS samples starting at i holds the samples around the gap
        # between frame i - HALF_TAPS and the next. Each channel keeps the samples its next
        # window starts with (fewer than 2 * HALF_TAPS).
        self._history = [np.zeros(TRUE_PEAK_HALF_TAPS - 1) for _ in range(channels)]
        self._loud = np.zeros(channels, dtype=bool)

    def feed(self, block: np.ndarray) -> None:
        """Measure the next block (float, ``(channels, frames)``)."""
        block = np.atleast_2d(block)
        if block.shape[1] == 0:
            return
        for c, channel in enumerate(block):
            peak = float(np.max(np.abs(channel)))
            self._peaks[c] = max(self._peaks[c], peak)
            if self.oversample:
                self._loud[c] |= peak > 0.0
                self._interpolate(c, channel.astype(np.float64))

    def _interpolate(self, c: int, x: np.ndarray) -> None:
        taps = 2 * TRUE_PEAK_HALF_TAPS
        padded = np.concatenate([self._history[c], x])
        self._history[c] = padded[max(0, len(padded) - taps + 1) :]
        if not self._loud[c] or len(padded) < taps:  # silence so far has silence between samples
            return
        windows = np.lib.stride_tricks.sliding_window_view(padded, taps)
        for start in range(0, windows.shape[0], TRUE_PEAK_CHUNK):
            # a contiguous copy of the chunk makes the product one BLAS call
            between = np.ascontiguousarray(windows[start : start + TRUE_PEAK_CHUNK]) @ TRUE_PEAK_FILTERS
            self._peaks[c] = max(self._peaks[c], float(np.max(np.abs(between))))

    def peaks(self) -> list[float]:
        """Linear true peak of each channel, the audio taken to end in silence."""
        if self.oversample:
            for c in range(len(self._peaks)):
                if self._loud[c]:
                    self._interpolate(c, np.zeros(TRUE_PEAK_HALF_TAPS))
                    self._loud[c] = False  # what follows the end is silence
        return [float(p) for p in self._peaks]


def true_peak(audio: np.ndarray, sample_rate: float) -> list[float]:
    """Linear true peak of each channel of float ``(channels, frames)`` audio, by the
    method of ITU-R BS.1770-4 Annex 2: oversampled 4x (through
    :data:`TRUE_PEAK_FILTERS`) below 192 kHz, the samples themselves from there; the
    peak of the absolute values, never below the sample peak. The audio is taken to
    start and end in silence, as for a meter that starts at rest.
    :class:`TruePeakMeter` measures the same block by block."""
    audio = np.atleast_2d(audio)
    meter = TruePeakMeter(audio.shape[0], sample_rate)
    meter.feed(audio)
    return meter.peaks()
