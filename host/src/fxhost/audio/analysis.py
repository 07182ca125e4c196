"""Analysis of audio: levels, clipping, loudness, loudness range and true peak.

Pure functions: float32 ``(channels, frames)`` numpy arrays in, msgspec Structs out. No
HTTP, no global state; safe to run in worker threads. Pictures are in
:mod:`fxhost.audio.pictures`.

- **Levels**: peak and RMS relative to digital full scale, ``20 log10(x)``, with no
  +3 dB sine correction: a full-scale sine has a peak of 0 dBFS and an RMS of
  -3.01 dBFS. dB values are ``None`` where the linear value is 0 (silence).
- **Clipping**: a sample is *clipped* when ``|x| >= CLIP_THRESHOLD`` (0.999, about
  -0.009 dBFS); a *clip run* is a maximal run of consecutive clipped samples in one
  channel (one clipped sample alone is a run of length 1).
- **Loudness, loudness range, true peak**: the SDK's meters
  (:mod:`fxhost_sdk.meters`: ITU-R BS.1770-4, EBU Tech 3342), the very code a plugin
  that sets a level measures with, so that the host reports what the effect set.
  Levels and loudness are measured in one pass over the audio, 10 s at a time: a file
  is analysed block by block as it decodes (:class:`Analyser`), never held whole.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Annotated

import msgspec
import numpy as np
from fxhost_sdk.meters import LOUDNESS_MIN_RATE, LoudnessMeter, TruePeakMeter

__all__ = ["CLIP_THRESHOLD", "Analyser", "Analysis", "Levels", "analyse", "analyse_blocks"]

#: A sample with ``|x| >= CLIP_THRESHOLD`` counts as clipped.
CLIP_THRESHOLD = 0.999


class Levels(msgspec.Struct, kw_only=True):
    """Sample levels of one channel, or of all channels together (`overall`)."""

    peak: Annotated[float, msgspec.Meta(ge=0, description="Largest |sample| (linear, 1.0 = full scale).")]
    peak_dbfs: Annotated[
        float | None, msgspec.Meta(description="`peak` in dBFS (20 log10); null for silence.")
    ]
    true_peak_dbtp: Annotated[
        float | None,
        msgspec.Meta(
            description="True peak in dBTP (ITU-R BS.1770-4 Annex 2's method: 4x oversampled below "
            "192 kHz, with a 32-tap windowed-sinc interpolator per phase); never below `peak_dbfs`; "
            "null for silence."
        ),
    ]
    rms: Annotated[float, msgspec.Meta(ge=0, description="Root mean square of the samples (linear).")]
    rms_dbfs: Annotated[
        float | None,
        msgspec.Meta(
            description="`rms` in dBFS (20 log10, no sine correction: a full-scale sine is -3.01); "
            "null for silence."
        ),
    ]
    dc_offset: Annotated[float, msgspec.Meta(description="Mean of the samples (linear).")]
    clipped_samples: Annotated[
        int, msgspec.Meta(ge=0, description="Samples with |x| >= 0.999 (`clip_threshold`).")
    ]
    clip_runs: Annotated[
        int,
        msgspec.Meta(
            ge=0,
            description="Runs of consecutive clipped samples in a channel (a lone clipped sample is a run).",
        ),
    ]
    longest_clip_run: Annotated[int, msgspec.Meta(ge=0, description="Length of the longest clip run.")]


class Analysis(msgspec.Struct, kw_only=True):
    """Levels, loudness and true peak of an asset's decoded audio."""

    sample_rate: Annotated[int, msgspec.Meta(description="Hz.")]
    channels: int
    frames: int
    duration: Annotated[float, msgspec.Meta(description="Seconds.")]
    clip_threshold: Annotated[
        float, msgspec.Meta(description="A sample is counted as clipped when |x| >= this (linear).")
    ]
    overall: Annotated[Levels, msgspec.Meta(description="All channels together (peak: the largest).")]
    per_channel: Annotated[list[Levels], msgspec.Meta(description="One entry per channel, in order.")]
    integrated_lufs: Annotated[
        float | None,
        msgspec.Meta(
            description="Integrated loudness, LUFS (ITU-R BS.1770-4, gated: -70 LUFS absolute, "
            "-10 LU relative); null when shorter than one 400 ms block, silent, or sampled below 8 kHz."
        ),
    ]
    loudness_range_lu: Annotated[
        float | None,
        msgspec.Meta(
            description="Loudness range LRA, LU (EBU Tech 3342: 3 s short-term loudness every 100 ms, "
            "gated at -70 LUFS and -20 LU, 95th minus 10th percentile); null when shorter than 3 s, "
            "silent or sampled below 8 kHz."
        ),
    ]
    true_peak_dbtp: Annotated[
        float | None, msgspec.Meta(description="The largest true peak of any channel, dBTP.")
    ]


class _ClipCounter:
    """Clipped samples and runs of them, fed a channel in chunks (runs may span chunks)."""

    def __init__(self) -> None:
        self.samples = 0
        self.runs = 0
        self.longest = 0
        self._open = 0  # length of the run still going at the end of the last chunk

    def feed(self, clipped: np.ndarray) -> None:
        if clipped.size == 0:
            return
        count = int(np.count_nonzero(clipped))
        if count == 0:
            self._close()
            return
        self.samples += count
        edges = np.diff(np.concatenate(([False], clipped, [False])).view(np.int8))
        starts = np.flatnonzero(edges == 1)
        lengths = np.flatnonzero(edges == -1) - starts
        self.runs += len(starts)
        if self._open:
            if clipped[0]:  # the run goes on: it was counted already
                self.runs -= 1
                lengths[0] += self._open
            else:
                self.longest = max(self.longest, self._open)
        if clipped[-1]:
            self._open = int(lengths[-1])
            lengths = lengths[:-1]
        else:
            self._open = 0
        if lengths.size:
            self.longest = max(self.longest, int(lengths.max()))

    def _close(self) -> None:
        self.longest = max(self.longest, self._open)
        self._open = 0

    def finish(self) -> _ClipCounter:
        self._close()
        return self


def _levels(
    peak: float, sum_squares: float, total: float, count: int, clips: _ClipCounter, tp: float
) -> Levels:
    rms = math.sqrt(sum_squares / count) if count else 0.0
    return Levels(
        peak=peak,
        peak_dbfs=_db(peak),
        true_peak_dbtp=_db(tp),
        rms=rms,
        rms_dbfs=_db(rms),
        dc_offset=total / count if count else 0.0,
        clipped_samples=clips.samples,
        clip_runs=clips.runs,
        longest_clip_run=clips.longest,
    )


class Analyser:
    """The :class:`Analysis` of ``channels`` x ``frames`` audio at ``sample_rate``, fed
    ``(channels, n)`` blocks of any size in order (:meth:`feed`), then :meth:`result`.
    Blocks are regrouped into the loudness meter's 10 s chunks, so memory stays bounded
    whatever the length: one chunk, a few filters' states and 100 ms loudness segments."""

    def __init__(self, channels: int, frames: int, sample_rate: int):
        self.channels, self.frames, self.sample_rate = channels, frames, sample_rate
        self.meter = (
            LoudnessMeter(channels, frames, sample_rate) if sample_rate >= LOUDNESS_MIN_RATE else None
        )
        self._chunks = self.meter.chunks() if self.meter is not None else _chunks(frames, sample_rate)
        self._states = [self.meter.initial_state() for _ in range(channels)] if self.meter else []
        self._true_peak = TruePeakMeter(channels, sample_rate)
        self._peak = np.zeros(channels)
        self._sums = np.zeros((channels, 2))  # sum of squares, sum
        self._clips = [_ClipCounter() for _ in range(channels)]
        self._pending: list[np.ndarray] = []
        self._have = 0  # frames in _pending
        self._next = 0  # index of the next chunk to measure
        self._fed = 0

    def feed(self, block: np.ndarray) -> None:
        """The next ``(channels, n)`` float block of the audio."""
        block = np.atleast_2d(block)
        if block.shape[0] != self.channels or self._fed + block.shape[1] > self.frames:
            raise ValueError(
                f"expected {self.channels} channel(s) and {self.frames - self._fed} more frame(s) at most, "
                f"not a block shaped {block.shape}"
            )
        self._fed += block.shape[1]
        self._true_peak.feed(block)
        if block.shape[1]:
            self._pending.append(block)
            self._have += block.shape[1]
        while self._next < len(self._chunks):
            chunk = self._chunks[self._next]
            size = chunk[1] - chunk[0]
            if self._have < size:
                break
            joined = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending, axis=1)
            self._measure(joined[:, :size], chunk)
            rest = joined[:, size:]
            self._pending, self._have = ([rest] if rest.shape[1] else []), rest.shape[1]
            self._next += 1

    def _measure(self, x: np.ndarray, chunk: tuple[int, int, int, int]) -> None:
        for c in range(self.channels):
            y = x[c].astype(np.float64)
            magnitude = np.abs(y)
            self._peak[c] = max(self._peak[c], float(magnitude.max(initial=0.0)))
            self._sums[c, 0] += float(y @ y)
            self._sums[c, 1] += float(y.sum())
            self._clips[c].feed(magnitude >= CLIP_THRESHOLD)
            if self.meter is not None:
                self._states[c] = self.meter.feed(c, y, self._states[c], chunk)

    def result(self) -> Analysis:
        """The analysis, once all ``frames`` have been fed."""
        if self._fed != self.frames:
            raise ValueError(f"fed {self._fed} of {self.frames} frames")
        channels, frames = self.channels, self.frames
        tps = self._true_peak.peaks()
        per_channel: list[Levels] = []
        all_clips = _ClipCounter()
        for c in range(channels):
            clips = self._clips[c].finish()
            all_clips.samples += clips.samples
            all_clips.runs += clips.runs
            all_clips.longest = max(all_clips.longest, clips.longest)
            sum_squares, total = float(self._sums[c, 0]), float(self._sums[c, 1])
            per_channel.append(_levels(float(self._peak[c]), sum_squares, total, frames, clips, tps[c]))
        overall = _levels(
            max((lv.peak for lv in per_channel), default=0.0),
            float(self._sums[:, 0].sum()),
            float(self._sums[:, 1].sum()),
            channels * frames,
            all_clips,
            max(tps, default=0.0),
        )
        meter = self.meter
        return Analysis(
            sample_rate=self.sample_rate,
            channels=channels,
            frames=frames,
            duration=frames / self.sample_rate if self.sample_rate else 0.0,
            clip_threshold=CLIP_THRESHOLD,
            overall=overall,
            per_channel=per_channel,
            integrated_lufs=meter.integrated() if meter is not None else None,
            loudness_range_lu=meter.range() if meter is not None else None,
            true_peak_dbtp=overall.true_peak_dbtp,
        )


def analyse(audio: np.ndarray, sample_rate: int) -> Analysis:
    """Levels per channel and overall, loudness, loudness range and true peak of float
    ``(channels, frames)`` audio (an :class:`Analyser` fed the whole array)."""
    audio = np.atleast_2d(audio)
    analyser = Analyser(audio.shape[0], audio.shape[1], sample_rate)
    analyser.feed(audio)
    return analyser.result()


def analyse_blocks(blocks: Iterable[np.ndarray], channels: int, frames: int, sample_rate: int) -> Analysis:
    """:func:`analyse` of the audio that ``blocks`` (``(channels, n)`` each, ``frames`` in
    all) make up, holding no more than a 10 s chunk of it at a time."""
    analyser = Analyser(channels, frames, sample_rate)
    for block in blocks:
        analyser.feed(block)
    return analyser.result()


def _chunks(frames: int, sample_rate: int) -> list[tuple[int, int, int, int]]:
    """10 s pieces of the audio, in the meter's form, where no loudness is measured."""
    step = max(1, 10 * sample_rate)
    return [(start, min(start + step, frames), 0, 0) for start in range(0, frames, step)]


def _db(value: float) -> float | None:
    return 20.0 * math.log10(value) if value > 0 else None
