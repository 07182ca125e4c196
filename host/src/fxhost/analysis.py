"""Audio analysis: levels, loudness, true peak, and pictures (waveform, spectrogram).

Pure functions: float32 ``(channels, frames)`` numpy arrays in, numbers (msgspec
Structs) or PNG bytes out. No HTTP, no global state; everything is safe to run in
worker threads (the pictures use matplotlib's object API with the Agg canvas, never
pyplot).

Standards and conventions (the Struct field descriptions say the same to clients):

- **Levels**: peak and RMS relative to digital full scale, ``20 log10(x)``, with no
  +3 dB sine correction: a full-scale sine has a peak of 0 dBFS and an RMS of
  -3.01 dBFS. dB values are ``None`` where the linear value is 0 (silence).
- **Clipping**: a sample is *clipped* when ``|x| >= CLIP_THRESHOLD`` (0.999, about
  -0.009 dBFS); a *clip run* is a maximal run of consecutive clipped samples in one
  channel (one clipped sample alone is a run of length 1).
- **Integrated loudness** (ITU-R BS.1770-4): K-weighting (the two biquads of the
  standard, designed for any sample rate with the formulas of libebur128 and
  pyloudnorm's ``DeMan`` filters, which reproduce the 48 kHz coefficients of the
  standard), mean square over 400 ms blocks with 75 % overlap, channel weights, an
  absolute gate at -70 LUFS and a relative gate 10 LU below the absolutely gated
  loudness. Computed here in one vectorised pass shared with the loudness range (and
  for any number of channels); the tests check it against pyloudnorm's meter. Not
  measured below 8 kHz, where the 1.68 kHz shelf of the K-weighting nears Nyquist.
- **Loudness range** (EBU Tech 3342): short-term loudness (3 s rectangular windows,
  K-weighted as above) every 100 ms; values below -70 LUFS are dropped, then those
  more than 20 LU below the power mean of the rest; LRA is the 95th minus the 10th
  percentile (linear interpolation) of what remains. No silence is appended.
- **True peak** (ITU-R BS.1770-4 Annex 2): each channel oversampled 4x with the
  Annex's 48-tap interpolation filter (``scipy.signal.resample_poly``) below 192 kHz,
  where the samples themselves are dense enough; the peak of the absolute values,
  never below the sample peak; in dBTP. The audio is taken to start and end in
  silence, as for a meter that starts at rest. ``None`` when scipy is missing.
"""

from __future__ import annotations

import io
import math
from typing import Annotated, Any

import msgspec
import numpy as np

__all__ = [
    "CLIP_THRESHOLD",
    "Analysis",
    "Levels",
    "analyse",
    "channel_weights",
    "k_weighting_sos",
    "loudness",
    "spectrogram_png",
    "true_peak",
    "waveform_png",
]

#: A sample with ``|x| >= CLIP_THRESHOLD`` counts as clipped.
CLIP_THRESHOLD = 0.999
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0  # BS.1770 integrated loudness
LRA_RELATIVE_GATE_LU = -20.0  # EBU Tech 3342
LRA_PERCENTILES = (10.0, 95.0)
#: K-weighting is defined where its 1.68 kHz shelf is well below Nyquist: loudness is
#: not measured below this sample rate.
LOUDNESS_MIN_RATE = 8000
_SEGMENTS_PER_SECOND = 10  # blocks are built of 100 ms segments
_BLOCK_SEGMENTS = 4  # 400 ms gating blocks, 75 % overlap
_SHORT_TERM_SEGMENTS = 30  # 3 s short-term windows, 100 ms hop
_CHUNK_SEGMENTS = 100  # audio is processed 10 s at a time: memory stays bounded
_TRUE_PEAK_PAD = 32  # input samples of context around each chunk (the filter spans 12)


class Levels(msgspec.Struct, kw_only=True):
    """Sample levels of one channel, or of all channels together (`overall`)."""

    peak: Annotated[float, msgspec.Meta(ge=0, description="Largest |sample| (linear, 1.0 = full scale).")]
    peak_dbfs: Annotated[
        float | None, msgspec.Meta(description="`peak` in dBFS (20 log10); null for silence.")
    ]
    true_peak_dbtp: Annotated[
        float | None,
        msgspec.Meta(
            description="True peak in dBTP (ITU-R BS.1770-4 Annex 2: 4x oversampled with the Annex's "
            "48-tap filter below 192 kHz); never below `peak_dbfs`; null for silence or without scipy."
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


# --------------------------------------------------------------------------- helpers


def _db(value: float) -> float | None:
    return 20.0 * math.log10(value) if value > 0 else None


def _segment_bounds(frames: int, sample_rate: int) -> np.ndarray:
    """Frame index where each complete 100 ms segment starts, plus the end of the last."""
    count = frames * _SEGMENTS_PER_SECOND // sample_rate
    return np.arange(count + 1, dtype=np.int64) * sample_rate // _SEGMENTS_PER_SECOND


def k_weighting_sos(sample_rate: int) -> np.ndarray:
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
    """BS.1770 channel weights G_i. Up to five channels in the order L, R, C, Ls, Rs
    (pyloudnorm's): 1.0 for the front channels, 1.41 for the surrounds. Six channels
    are taken as 5.1 in WAV order (L, R, C, LFE, Ls, Rs), the LFE left out. Any other
    layout is unknown: every channel weighs 1.0."""
    if channels <= 5:
        return np.array([1.0, 1.0, 1.0, 1.41, 1.41][:channels])
    if channels == 6:
        return np.array([1.0, 1.0, 1.0, 0.0, 1.41, 1.41])
    return np.ones(channels)


def _loudness_of(power: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return -0.691 + 10.0 * np.log10(power)


def _window_power(segment_energy: np.ndarray, bounds: np.ndarray, length: int) -> np.ndarray:
    """Weighted mean square of every window of ``length`` consecutive segments (hop: one segment)."""
    count = len(segment_energy) - length + 1
    if count <= 0:
        return np.empty(0)
    cumulative = np.concatenate(([0.0], np.cumsum(segment_energy)))
    sums = cumulative[length:] - cumulative[:count]
    return sums / (bounds[length:] - bounds[:count])


def _integrated(block_power: np.ndarray) -> float | None:
    if block_power.size == 0:
        return None
    loud = _loudness_of(block_power)
    gated = block_power[loud > ABSOLUTE_GATE_LUFS]
    if gated.size == 0:
        return None
    threshold = _loudness_of(np.array(gated.mean()))[()] + RELATIVE_GATE_LU
    kept = block_power[(loud > ABSOLUTE_GATE_LUFS) & (loud > threshold)]
    value = float(_loudness_of(np.array(kept.mean()))[()]) if kept.size else math.nan
    return value if math.isfinite(value) else None


def _loudness_range(short_term_power: np.ndarray) -> float | None:
    if short_term_power.size == 0:
        return None
    loud = _loudness_of(short_term_power)
    gated = loud[loud > ABSOLUTE_GATE_LUFS]
    if gated.size == 0:
        return None
    threshold = 10.0 * np.log10(np.mean(10.0 ** (gated / 10.0))) + LRA_RELATIVE_GATE_LU
    kept = gated[gated >= threshold]
    low, high = np.percentile(kept, LRA_PERCENTILES)
    value = float(high - low)
    return value if math.isfinite(value) else None


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


def _resample_poly() -> Any:
    try:
        from scipy.signal import resample_poly
    except ImportError:  # pragma: no cover - scipy comes with pyloudnorm
        return None
    return resample_poly


#: The interpolation filter of ITU-R BS.1770-4 Annex 2 (4x oversampling, 48 taps),
#: as its four published phases of 12 taps; the filter is h[4k + p] = phase p, tap k.
ANNEX2_PHASES = np.array(
    [
        [0.0017089843750, 0.0109863281250, -0.0196533203125, 0.0332031250000, -0.0594482421875,
         0.1373291015625, 0.9721679687500, -0.1022949218750, 0.0476074218750, -0.0266113281250,
         0.0148925781250, -0.0083007812500],
        [-0.0291748046875, 0.0292968750000, -0.0517578125000, 0.0891113281250, -0.1665039062500,
         0.4650878906250, 0.7797851562500, -0.2003173828125, 0.1015625000000, -0.0582275390625,
         0.0330810546875, -0.0189208984375],
        [-0.0189208984375, 0.0330810546875, -0.0582275390625, 0.1015625000000, -0.2003173828125,
         0.7797851562500, 0.4650878906250, -0.1665039062500, 0.0891113281250, -0.0517578125000,
         0.0292968750000, -0.0291748046875],
        [-0.0083007812500, 0.0148925781250, -0.0266113281250, 0.0476074218750, -0.1022949218750,
         0.9721679687500, 0.1373291015625, -0.0594482421875, 0.0332031250000, -0.0196533203125,
         0.0109863281250, 0.0017089843750],
    ]
)  # fmt: skip
TRUE_PEAK_FACTOR = 4
#: From this rate on the samples are as dense as the Annex's 4 x 48 kHz: no oversampling.
TRUE_PEAK_MAX_RATE = 192000


def true_peak(audio: np.ndarray, sample_rate: int) -> list[float] | None:
    """Linear true peak of each channel (ITU-R BS.1770-4 Annex 2): 4x oversampled with
    the Annex's 48-tap interpolation filter through ``scipy.signal.resample_poly`` below
    192 kHz, the samples themselves from 192 kHz; never below the sample peak. ``None``
    without scipy."""
    resample_poly = _resample_poly()
    if resample_poly is None:
        return None
    audio = np.atleast_2d(audio)
    frames = audio.shape[1]
    oversample = sample_rate < TRUE_PEAK_MAX_RATE
    # resample_poly scales the filter by the factor itself; the Annex's phases each sum to ~1.
    fir = ANNEX2_PHASES.T.reshape(-1) / TRUE_PEAK_FACTOR
    chunk = max(1, _CHUNK_SEGMENTS * sample_rate // _SEGMENTS_PER_SECOND)
    peaks = []
    for channel in audio:
        peak = float(np.max(np.abs(channel))) if frames else 0.0
        if oversample:
            for start in range(0, frames, chunk):
                end = min(start + chunk, frames)
                lo, hi = max(0, start - _TRUE_PEAK_PAD), min(frames, end + _TRUE_PEAK_PAD)
                up = resample_poly(channel[lo:hi].astype(np.float64), TRUE_PEAK_FACTOR, 1, window=fir)
                inner = up[(start - lo) * TRUE_PEAK_FACTOR : (end - lo) * TRUE_PEAK_FACTOR]
                if inner.size:
                    peak = max(peak, float(np.max(np.abs(inner))))
        peaks.append(peak)
    return peaks


# --------------------------------------------------------------------------- analysis


def _sosfilt() -> Any:
    from scipy.signal import sosfilt

    return sosfilt


def loudness(audio: np.ndarray, sample_rate: int) -> tuple[float | None, float | None]:
    """(integrated loudness in LUFS, loudness range in LU) of float ``(channels, frames)``;
    ``(None, None)`` below :data:`LOUDNESS_MIN_RATE` or without scipy."""
    audio = np.atleast_2d(audio)
    if sample_rate < LOUDNESS_MIN_RATE or _resample_poly() is None:
        return None, None
    return _Meter(audio.shape[0], audio.shape[1], sample_rate).run(audio)


class _Meter:
    """Segment energies of the K-weighted signal: 100 ms segments, 10 s chunks at a time."""

    def __init__(self, channels: int, frames: int, sample_rate: int):
        self.sample_rate = sample_rate
        self.frames = frames
        self.bounds = _segment_bounds(frames, sample_rate)
        self.sos = k_weighting_sos(sample_rate)
        self.energy = np.zeros((channels, len(self.bounds) - 1))
        self.weights = channel_weights(channels)

    def chunks(self) -> list[tuple[int, int, int, int]]:
        """(first frame, end frame, first segment, end segment) of each chunk."""
        segments = len(self.bounds) - 1
        out = []
        for first in range(0, segments, _CHUNK_SEGMENTS):
            last = min(first + _CHUNK_SEGMENTS, segments)
            out.append((int(self.bounds[first]), int(self.bounds[last]), first, last))
        tail = int(self.bounds[-1])
        if tail < self.frames:
            out.append((tail, self.frames, segments, segments))
        return out

    def feed(self, channel: int, x: np.ndarray, zi: np.ndarray, first_frame: int, seg: tuple[int, int]):
        """Filter one chunk of one channel; returns the filter state to carry on with."""
        y, zi = _sosfilt()(self.sos, x, zi=zi)
        if seg[1] > seg[0]:
            local = self.bounds[seg[0] : seg[1] + 1] - first_frame
            squares = np.square(y[: local[-1]])
            self.energy[channel, seg[0] : seg[1]] = np.add.reduceat(squares, local[:-1])
        return zi

    def result(self) -> tuple[float | None, float | None]:
        weighted = self.weights @ self.energy
        blocks = _window_power(weighted, self.bounds, _BLOCK_SEGMENTS)
        short_term = _window_power(weighted, self.bounds, _SHORT_TERM_SEGMENTS)
        return _integrated(blocks), _loudness_range(short_term)

    def run(self, audio: np.ndarray) -> tuple[float | None, float | None]:
        for c in range(audio.shape[0]):
            zi = np.zeros((self.sos.shape[0], 2))
            for start, end, first, last in self.chunks():
                zi = self.feed(c, audio[c, start:end].astype(np.float64), zi, start, (first, last))
        return self.result()


def _levels(
    peak: float, sum_squares: float, total: float, count: int, clips: _ClipCounter, tp: float | None
) -> Levels:
    rms = math.sqrt(sum_squares / count) if count else 0.0
    return Levels(
        peak=peak,
        peak_dbfs=_db(peak),
        true_peak_dbtp=None if tp is None else _db(tp),
        rms=rms,
        rms_dbfs=_db(rms),
        dc_offset=total / count if count else 0.0,
        clipped_samples=clips.samples,
        clip_runs=clips.runs,
        longest_clip_run=clips.longest,
    )


def analyse(audio: np.ndarray, sample_rate: int) -> Analysis:
    """Levels per channel and overall, loudness, loudness range and true peak of float
    ``(channels, frames)`` audio. Memory stays bounded: 10 s are processed at a time."""
    audio = np.atleast_2d(audio)
    channels, frames = audio.shape
    meter = _Meter(channels, frames, sample_rate)
    have_scipy = _resample_poly() is not None
    measure_loudness = have_scipy and sample_rate >= LOUDNESS_MIN_RATE
    per_channel: list[Levels] = []
    all_clips = _ClipCounter()
    totals = [0.0, 0.0]  # sum of squares, sum
    tps = true_peak(audio, sample_rate) if have_scipy else None
    for c in range(channels):
        peak, sum_squares, total = 0.0, 0.0, 0.0
        clips = _ClipCounter()
        zi = np.zeros((meter.sos.shape[0], 2))
        for start, end, first, last in meter.chunks():
            x = audio[c, start:end].astype(np.float64)
            magnitude = np.abs(x)
            peak = max(peak, float(magnitude.max()))
            sum_squares += float(x @ x)
            total += float(x.sum())
            clips.feed(magnitude >= CLIP_THRESHOLD)
            if measure_loudness:
                zi = meter.feed(c, x, zi, start, (first, last))
        clips.finish()
        totals[0] += sum_squares
        totals[1] += total
        all_clips.samples += clips.samples
        all_clips.runs += clips.runs
        all_clips.longest = max(all_clips.longest, clips.longest)
        per_channel.append(_levels(peak, sum_squares, total, frames, clips, None if tps is None else tps[c]))
    overall_tp = max(tps, default=0.0) if tps is not None else None
    overall = _levels(
        max((lv.peak for lv in per_channel), default=0.0),
        totals[0],
        totals[1],
        channels * frames,
        all_clips,
        overall_tp,
    )
    integrated, lra = meter.result() if measure_loudness else (None, None)
    return Analysis(
        sample_rate=sample_rate,
        channels=channels,
        frames=frames,
        duration=frames / sample_rate if sample_rate else 0.0,
        clip_threshold=CLIP_THRESHOLD,
        overall=overall,
        per_channel=per_channel,
        integrated_lufs=integrated,
        loudness_range_lu=lra,
        true_peak_dbtp=overall.true_peak_dbtp,
    )


# --------------------------------------------------------------------------- pictures

_DPI = 100
_WAVE_FILL = "#9ec5e8"
_WAVE_RMS = "#2a6fb0"


class _Layout:
    """Margins in pixels and font sizes for a picture of ``width`` x ``height`` pixels."""

    def __init__(self, width: int, height: int, *, right: int = 14):
        scale = min(1.0, width / 900, height / 320)
        self.font = max(6.0, round(10.0 * scale**0.5, 1))
        self.small = max(5.5, self.font - 1.5)
        px = self.font * _DPI / 72  # font size in pixels
        self.width, self.height = width, height
        self.left = int(px * 4.6 + 10)
        self.right = right
        self.top = int(px * 2.0 + 4)
        self.bottom = int(px * 3.0 + 4)

    def figure(self) -> Any:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        # A hair more than the size: Agg truncates the figure's pixel size to int.
        fig = Figure(figsize=((self.width + 0.01) / _DPI, (self.height + 0.01) / _DPI), dpi=_DPI)
        FigureCanvasAgg(fig)
        fig.patch.set_facecolor("white")
        return fig

    def rect(self, top: float, bottom: float, right: float | None = None) -> list[float]:
        """[left, bottom, width, height] in figure fractions, from pixel offsets."""
        right = self.right if right is None else right
        w = max(1.0, self.width - self.left - right)
        h = max(1.0, self.height - top - bottom)
        return [self.left / self.width, bottom / self.height, w / self.width, h / self.height]

    @property
    def plot_width(self) -> int:
        return max(1, self.width - self.left - self.right)

    @property
    def plot_height(self) -> int:
        return max(1, self.height - self.top - self.bottom)


def _titles(ax: Any, lay: _Layout, title: str, info: str) -> None:
    """The asset's name at the left above the plot, ``info`` at the right if both fit
    (widths estimated from the font size); a name too long for the plot is shortened."""
    em = lay.font * _DPI / 72
    room = lay.plot_width
    title_px = len(title) * 0.68 * em
    info_px = len(info) * 0.6 * lay.small * _DPI / 72
    if title_px > room:
        keep = max(4, int(room / (0.68 * em)) - 1)
        title = title[: keep - 1] + "…"
    if title_px + info_px + em * 2 <= room:
        ax.set_title(info, loc="right", fontsize=lay.small, pad=4)
    ax.set_title(title, loc="left", fontsize=lay.font, fontweight="bold", pad=4)


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    # zlib level 3: half the time of the default 6 for noisy spectrograms, ~15 % larger.
    fig.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None}, pil_kwargs={"compress_level": 3})
    return buffer.getvalue()


def _channel_names(channels: int) -> list[str]:
    if channels == 1:
        return ["Mono"]
    if channels == 2:
        return ["Left", "Right"]
    return [f"Ch {c + 1}" for c in range(channels)]


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60.0)
    return f"{int(minutes)}:{rest:06.3f}"


def _rate_text(sample_rate: int) -> str:
    khz = sample_rate / 1000
    return f"{khz:g} kHz"


def _envelope(x: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(bin centres as frame positions, minimum, maximum, RMS) of ``bins`` near-equal bins."""
    starts = np.linspace(0, len(x), bins + 1).astype(np.int64)
    edges = starts[:-1]
    lengths = np.diff(starts)
    lo = np.minimum.reduceat(x, edges)
    hi = np.maximum.reduceat(x, edges)
    rms = np.sqrt(np.add.reduceat(np.square(x, dtype=np.float64), edges) / lengths)
    return (starts[:-1] + starts[1:]) / 2.0, lo, hi, rms


def waveform_png(audio: np.ndarray, sample_rate: int, *, width: int, height: int, title: str) -> bytes:
    """The waveform as a PNG of ``width`` x ``height`` pixels: one lane per channel,
    labelled; time in seconds below, amplitude (linear, 1.0 = full scale) at the left.
    Long audio is drawn as its min/max envelope with the RMS inside (one bin per pixel
    column), so a 10-minute file costs little more than a short one."""
    from matplotlib.ticker import FixedLocator, MaxNLocator

    audio = np.atleast_2d(audio)
    channels, frames = audio.shape
    duration = frames / sample_rate if sample_rate else 0.0
    lay = _Layout(width, height)
    fig = lay.figure()
    names = _channel_names(channels)
    gap = max(3, int(lay.font * _DPI / 72 * 0.8))  # room between one lane's -1 and the next one's 1
    lane = (lay.plot_height - gap * (channels - 1)) / channels
    peak = float(np.max(np.abs(audio))) if frames else 0.0
    limit = max(1.0, peak * 1.05)
    columns = lay.plot_width
    axes = []
    for c in range(channels):
        top = lay.top + c * (lane + gap)
        ax = fig.add_axes(lay.rect(top, lay.height - top - lane), sharex=axes[0] if axes else None)
        axes.append(ax)
        x = audio[c]
        if frames > 4 * columns:
            centres, lo, hi, rms = _envelope(x, columns)
            t = centres / sample_rate
            ax.fill_between(t, lo, hi, color=_WAVE_FILL, linewidth=0, label="min/max")
            ax.fill_between(t, -rms, rms, color=_WAVE_RMS, linewidth=0, label="RMS")
        elif frames:
            t = np.arange(frames) / sample_rate
            ax.plot(t, x, color=_WAVE_RMS, linewidth=0.8)
        ax.set_ylim(-limit, limit)
        ax.set_xlim(0.0, duration if duration > 0 else 1.0)
        # Neighbouring lanes must not put their -1 and 1 labels on top of each other.
        ticks = [-1.0, -0.5, 0.0, 0.5, 1.0] if lane >= 140 else [-0.5, 0.0, 0.5] if lane >= 45 else [0.0]
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.tick_params(labelsize=lay.small, length=3, pad=2)
        ax.grid(True, color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.axhline(0.0, color="#888888", linewidth=0.6)
        ax.text(
            0.005,
            0.96,
            names[c],
            transform=ax.transAxes,
            va="top",
            ha="left",
            fontsize=lay.small,
            fontweight="bold",
            bbox={"boxstyle": "square,pad=0.15", "facecolor": "white", "alpha": 0.8, "linewidth": 0},
        )
        if c < channels - 1:
            ax.tick_params(labelbottom=False)
    axes[-1].xaxis.set_major_locator(MaxNLocator(nbins="auto", steps=[1, 2, 2.5, 5, 10]))
    axes[-1].set_xlabel("Time (s)", fontsize=lay.font, labelpad=2)
    fig.text(
        0.004, 0.5 - (lay.top - lay.bottom) / 2 / height, "Amplitude", rotation=90,
        va="center", ha="left", fontsize=lay.font,
    )  # fmt: skip
    layout = "mono" if channels == 1 else "stereo" if channels == 2 else f"{channels} ch"
    _titles(axes[0], lay, title, f"{_rate_text(sample_rate)} · {layout} · {_clock(duration)}")
    return _png(fig)


def default_fft_size(sample_rate: int) -> int:
    """The power of two nearest to 43 ms (2048 at 44.1 and 48 kHz), within 256..8192."""
    size = 2 ** round(math.log2(max(1.0, 0.0427 * sample_rate)))
    return int(min(8192, max(256, size)))


def _frame_centres(frames: int, fft: int, columns: int, per_column: int) -> tuple[np.ndarray, int]:
    """Centre of every STFT frame (frames reach past both ends, where the audio is taken
    as silence), and how many frames are averaged into one image column. Short audio:
    a hop of fft/4 and one frame per column. Long audio: ``columns`` columns, each the
    mean power of up to ``per_column`` frames spread evenly over its span (never more
    frames than a hop of fft/4 gives)."""
    hop = fft // 4
    count = frames // hop + 1
    if count <= 2 * columns:
        return np.arange(count, dtype=np.int64) * hop, 1
    k = min(per_column, count // columns)
    n = columns * k
    return ((np.arange(n) + 0.5) * (frames / n)).astype(np.int64), k


def _power_spectra(audio: np.ndarray, centres: np.ndarray, fft: int) -> np.ndarray:
    """Hann-windowed power spectra of the frames at ``centres``, averaged over channels,
    scaled so that a sine of amplitude A peaks at A**2 (0 dBFS at full scale);
    shape (frames, fft/2 + 1)."""
    window = np.hanning(fft + 1)[:-1].astype(np.float32)  # periodic Hann
    scale = (2.0 / window.sum()) ** 2
    channels, frames = audio.shape
    out = np.zeros((len(centres), fft // 2 + 1))
    if frames == 0:
        return out
    batch = max(1, (1 << 22) // fft)  # about 16 MB of frames at a time
    offsets = np.arange(fft) - fft // 2
    for b in range(0, len(centres), batch):
        index = centres[b : b + batch, None] + offsets
        inside = None
        if index[0, 0] < 0 or index[-1, -1] >= frames:
            inside = (index >= 0) & (index < frames)
            index = np.clip(index, 0, frames - 1)
        for c in range(channels):
            values = audio[c][index]
            if inside is not None:
                values *= inside
            spectrum = np.fft.rfft(values * window, axis=1)
            out[b : b + batch] += np.square(spectrum.real) + np.square(spectrum.imag)
    return out * (scale / channels)


def _to_rows(spec_db: np.ndarray, bin_hz: float, edges_hz: np.ndarray) -> np.ndarray:
    """Resample (bins, columns) onto display rows between ``edges_hz``: the maximum of
    the bins inside a row, or linear interpolation where a row holds no bin."""
    bins = spec_db.shape[0]
    centres = (edges_hz[:-1] + edges_hz[1:]) / 2 / bin_hz
    position = np.clip(centres, 0, bins - 1)
    i0 = np.floor(position).astype(np.int64)
    i1 = np.minimum(i0 + 1, bins - 1)
    w = (position - i0)[:, None]
    rows = spec_db[i0] * (1 - w) + spec_db[i1] * w
    index = np.searchsorted(np.arange(bins) * bin_hz, edges_hz)
    has = index[1:] > index[:-1]
    if has.any():
        rows[has] = np.maximum.reduceat(spec_db[: index[-1]], index[:-1][has], axis=0)
    return rows


def _hz_label(hz: float) -> str:
    return f"{hz / 1000:g}k" if hz >= 1000 else f"{hz:g}"


def spectrogram_png(
    audio: np.ndarray,
    sample_rate: int,
    *,
    width: int,
    height: int,
    title: str,
    fft_size: int | None = None,
    scale: str = "log",
) -> bytes:
    """The spectrogram as a PNG of ``width`` x ``height`` pixels: Hann-windowed STFT
    (power averaged over channels, so opposite-phase channels do not cancel), level in
    dBFS (a full-scale sine peaks at 0) on a colour bar, time in seconds, frequency on
    a log axis in Hz (``scale="log"``) or a linear one in kHz. Long audio: each pixel
    column is the mean power of up to 8 frames spread over its span."""
    from matplotlib.ticker import FixedLocator, MaxNLocator

    audio = np.atleast_2d(audio).astype(np.float32, copy=False)
    channels, frames = audio.shape
    duration = frames / sample_rate if sample_rate else 0.0
    fft = fft_size or default_fft_size(sample_rate)
    bar_px = 12
    lay = _Layout(width, height)
    right = int(lay.font * _DPI / 72 * 5.2) + bar_px + 8
    lay.right = right
    centres, per_column = _frame_centres(frames, fft, lay.plot_width, 8)
    power = _power_spectra(audio, centres, fft)
    if per_column > 1:
        power = power.reshape(-1, per_column, power.shape[1]).mean(axis=1)
    spec_db = 10.0 * np.log10(power.T + 1e-20)  # (bins, columns)
    nyquist = sample_rate / 2
    bin_hz = sample_rate / fft
    rows = max(16, lay.plot_height)
    if scale == "log":
        low = max(20.0, bin_hz)
        edges = np.geomspace(low, nyquist, rows + 1)
        y_extent = (math.log10(low), math.log10(nyquist))
    else:
        edges = np.linspace(0.0, nyquist, rows + 1)
        y_extent = (0.0, nyquist / 1000)
    image = _to_rows(spec_db, bin_hz, edges)
    top_db = float(np.max(spec_db)) if spec_db.size else 0.0
    vmax = min(10.0, max(-40.0, math.ceil(top_db / 10.0) * 10.0))
    vmin = vmax - 100.0

    fig = lay.figure()
    ax = fig.add_axes(lay.rect(lay.top, lay.bottom))
    if per_column > 1:
        t0, t1 = 0.0, duration
    else:  # frame centres, half a hop either side
        half_hop = fft // 4 / 2
        t0, t1 = -half_hop / sample_rate, (centres[-1] + half_hop) / sample_rate
    im = ax.imshow(
        image,
        origin="lower",
        aspect="auto",
        extent=(t0, t1, *y_extent),
        cmap="magma",
        vmin=vmin,
        vmax=vmax,
        interpolation="nearest",
    )
    ax.set_facecolor("black")
    ax.set_xlim(0.0, duration if duration > 0 else 1.0)
    ax.set_ylim(*y_extent)
    ax.xaxis.set_major_locator(MaxNLocator(nbins="auto", steps=[1, 2, 2.5, 5, 10]))
    if scale == "log":
        candidates = [20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000]
        ticks = [f for f in candidates if y_extent[0] <= math.log10(f) <= y_extent[1] + 1e-9]
        if lay.plot_height < 150:
            ticks = [f for f in ticks if str(f)[0] == "1"] or ticks
        ax.yaxis.set_major_locator(FixedLocator([math.log10(f) for f in ticks]))
        ax.set_yticklabels([_hz_label(f) for f in ticks])
        ax.set_ylabel("Frequency (Hz)", fontsize=lay.font, labelpad=2)
    else:
        ax.yaxis.set_major_locator(MaxNLocator(nbins="auto"))
        ax.set_ylabel("Frequency (kHz)", fontsize=lay.font, labelpad=2)
    ax.tick_params(labelsize=lay.small, length=3, pad=2)
    ax.set_xlabel("Time (s)", fontsize=lay.font, labelpad=2)
    mix = "mono" if channels == 1 else f"power mean of {channels} ch"
    _titles(ax, lay, title, f"{_rate_text(sample_rate)} · FFT {fft} Hann · {mix}")
    bar_left = (width - right + 8) / width
    rect = lay.rect(lay.top, lay.bottom)
    cax = fig.add_axes([bar_left, rect[1], bar_px / width, rect[3]])
    bar = fig.colorbar(im, cax=cax)
    bar.set_label("Level (dBFS)", fontsize=lay.font, labelpad=2)
    bar.ax.tick_params(labelsize=lay.small, length=2, pad=2)
    return _png(fig)
