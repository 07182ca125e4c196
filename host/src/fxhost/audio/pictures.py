"""Pictures of audio: a waveform and a spectrogram, as PNG bytes.

Pure functions of float32 ``(channels, frames)`` numpy arrays, safe to run in worker
threads: matplotlib's object API with the Agg canvas, never pyplot (imported when a
picture is first drawn: it is slow to import).
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

__all__ = ["default_fft_size", "spectrogram_png", "waveform_png"]

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
