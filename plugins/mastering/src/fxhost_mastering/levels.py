"""Level measurements shared by the mastering effects: decibels, sample peak, and a
true-peak estimate by 4x oversampling, in numpy alone."""

from __future__ import annotations

import math

import numpy as np

#: True peak is estimated at this many times the sample rate (ITU-R BS.1770-4 Annex 2
#: asks for 4x at 48 kHz).
OVERSAMPLE = 4
#: Interpolation filter length on each side of the point, in input samples.
HALF_TAPS = 16
#: Kaiser window shape of the interpolation filter (about 80 dB stop band).
KAISER_BETA = 8.0
#: Frames interpolated at once (bounds the memory used, whatever the length).
CHUNK_FRAMES = 1 << 15


def db_to_gain(db: float) -> float:
    return 10.0 ** (db / 20.0)


def gain_to_db(gain: float) -> float:
    return 20.0 * math.log10(gain) if gain > 0 else -math.inf


def sample_peak(audio: np.ndarray) -> float:
    """The largest ``|x|`` over all channels and frames (0.0 for no frames)."""
    return float(np.max(np.abs(audio))) if audio.size else 0.0


def _phase_filters() -> np.ndarray:
    """``(2 * HALF_TAPS, OVERSAMPLE - 1)``: column ``p - 1`` interpolates the point
    ``p / OVERSAMPLE`` of the way from one sample to the next. A Kaiser-windowed sinc,
    each phase scaled to unity gain at DC."""
    k = np.arange(-HALF_TAPS + 1, HALF_TAPS + 1)  # offsets of the samples used, oldest first
    columns = []
    for p in range(1, OVERSAMPLE):
        t = k - p / OVERSAMPLE  # distance from the interpolated point to each sample
        window = np.i0(KAISER_BETA * np.sqrt(np.clip(1.0 - (t / HALF_TAPS) ** 2, 0.0, None)))
        h = np.sinc(t) * window / np.i0(KAISER_BETA)
        columns.append(h / h.sum())
    return np.stack(columns, axis=1)


_FILTERS = _phase_filters()


def true_peak(audio: np.ndarray) -> float:
    """An estimate of the true (inter-sample) peak of float ``(channels, frames)`` audio:
    the largest ``|x|`` of the signal oversampled 4x by windowed-sinc interpolation, the
    samples themselves included. The signal is taken as silent outside its ends. It can
    still read a fraction of a dB low for content very close to Nyquist."""
    peak = sample_peak(audio)
    if peak == 0.0 or audio.shape[1] < 2:
        return peak
    taps = 2 * HALF_TAPS
    for channel in np.asarray(audio, dtype=np.float64):
        # padded[i + HALF_TAPS - 1 + j] for j in 1 - HALF_TAPS .. HALF_TAPS covers the
        # samples around the gap between frame i and frame i + 1.
        padded = np.concatenate([np.zeros(HALF_TAPS - 1), channel, np.zeros(HALF_TAPS)])
        windows = np.lib.stride_tricks.sliding_window_view(padded, taps)
        for start in range(0, windows.shape[0], CHUNK_FRAMES):
            # a contiguous copy of the chunk lets the product run as one BLAS call
            between = np.ascontiguousarray(windows[start : start + CHUNK_FRAMES]) @ _FILTERS
            peak = max(peak, float(np.max(np.abs(between))))
    return peak
