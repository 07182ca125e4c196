"""Pictures of audio: a waveform and a spectrogram, as PNG bytes.

Pure functions of float32 ``(channels, frames)`` numpy arrays, safe to run in worker
threads: matplotlib's object API with the Agg canvas, never pyplot (imported when a
picture is first drawn: it is slow to import).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = [
    "default_fft_size",
    "spectrogram_png",
    "spectrogram_png_blocks",
    "waveform_png",
    "waveform_png_blocks",
]

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


class _Envelope:
    """Per pixel column of ``columns`` near-equal bins of the audio: minimum, maximum and
    sum of squares per channel, accumulated block by block (blocks of any size, in
    order), so that a file of any length costs ``channels x columns`` numbers. Audio of
    up to ``4 x columns`` frames is kept whole instead, to be drawn sample by sample."""

    def __init__(self, channels: int, frames: int, columns: int):
        self.frames = frames
        self.raw = frames <= 4 * columns
        self.starts = np.linspace(0, frames, columns + 1).astype(np.int64)
        shape = (channels, 0 if self.raw else columns)
        self.lo = np.full(shape, np.inf, np.float32)
        self.hi = np.full(shape, -np.inf, np.float32)
        self.squares = np.zeros(shape)
        self.samples: list[np.ndarray] = []
        self.done = 0

    def feed(self, block: np.ndarray) -> None:
        n = block.shape[1]
        if n == 0:
            return
        b0, b1 = self.done, self.done + n
        self.done = b1
        if self.raw:
            self.samples.append(np.array(block, np.float32))
            return
        # the bins this block touches, and where each starts inside the block
        first = int(np.searchsorted(self.starts, b0, side="right")) - 1
        last = int(np.searchsorted(self.starts, b1 - 1, side="right")) - 1
        local = np.clip(self.starts[first : last + 1], b0, b1) - b0
        span = slice(first, last + 1)
        np.minimum(self.lo[:, span], np.minimum.reduceat(block, local, axis=1), out=self.lo[:, span])
        np.maximum(self.hi[:, span], np.maximum.reduceat(block, local, axis=1), out=self.hi[:, span])
        self.squares[:, span] += np.add.reduceat(np.square(block, dtype=np.float64), local, axis=1)

    def peak(self) -> float:
        if self.raw:
            return max((float(np.max(np.abs(x))) for x in self.samples if x.size), default=0.0)
        return float(max(self.hi.max(initial=0.0), -self.lo.min(initial=0.0)))

    def audio(self) -> np.ndarray:
        """The samples, for audio short enough to be kept."""
        return np.concatenate(self.samples, axis=1) if self.samples else np.zeros((self.lo.shape[0], 0))

    def bins(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(bin centres as frame positions, minimum, maximum, RMS), per channel."""
        starts = self.starts
        rms = np.sqrt(self.squares / np.diff(starts))
        return (starts[:-1] + starts[1:]) / 2.0, self.lo, self.hi, rms


def waveform_png(audio: np.ndarray, sample_rate: int, *, width: int, height: int, title: str) -> bytes:
    """:func:`waveform_png_blocks` of a whole ``(channels, frames)`` array."""
    audio = np.atleast_2d(audio)
    return waveform_png_blocks(
        [audio], audio.shape[0], audio.shape[1], sample_rate, width=width, height=height, title=title
    )


def waveform_png_blocks(
    blocks: Iterable[np.ndarray],
    channels: int,
    frames: int,
    sample_rate: int,
    *,
    width: int,
    height: int,
    title: str,
) -> bytes:
    """The waveform as a PNG of ``width`` x ``height`` pixels: one lane per channel,
    labelled; time in seconds below, amplitude (linear, 1.0 = full scale) at the left.
    Long audio is drawn as its min/max envelope with the RMS inside (one bin per pixel
    column), accumulated from ``blocks`` (float ``(channels, n)`` arrays, ``frames`` in
    all) as they come: memory depends on the picture's size, not on the audio's length."""
    from matplotlib.ticker import FixedLocator, MaxNLocator

    duration = frames / sample_rate if sample_rate else 0.0
    lay = _Layout(width, height)
    columns = lay.plot_width
    envelope = _Envelope(channels, frames, columns)
    for block in blocks:
        envelope.feed(np.atleast_2d(block))
    fig = lay.figure()
    names = _channel_names(channels)
    gap = max(3, int(lay.font * _DPI / 72 * 0.8))  # room between one lane's -1 and the next one's 1
    lane = (lay.plot_height - gap * (channels - 1)) / channels
    limit = max(1.0, envelope.peak() * 1.05)
    raw = envelope.audio() if envelope.raw else None
    if raw is None:
        centres, lows, highs, rmses = envelope.bins()
        t = centres / sample_rate
    axes = []
    for c in range(channels):
        top = lay.top + c * (lane + gap)
        ax = fig.add_axes(lay.rect(top, lay.height - top - lane), sharex=axes[0] if axes else None)
        axes.append(ax)
        if raw is None:
            ax.fill_between(t, lows[c], highs[c], color=_WAVE_FILL, linewidth=0, label="min/max")
            ax.fill_between(t, -rmses[c], rmses[c], color=_WAVE_RMS, linewidth=0, label="RMS")
        elif frames:
            ax.plot(np.arange(frames) / sample_rate, raw[c], color=_WAVE_RMS, linewidth=0.8)
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


class _Spectra:
    """Hann-windowed power spectra of the STFT frames centred at ``centres`` (sorted),
    averaged over channels and over each run of ``per_column`` frames (one image column),
    scaled so that a sine of amplitude A peaks at A**2 (0 dBFS at full scale). Fed the
    audio block by block (blocks of any size, in order): it keeps only the samples the
    frames still to come need (a block and one FFT), and one spectrum per column. The
    audio is taken as silence before its start and after its end."""

    def __init__(self, channels: int, fft: int, centres: np.ndarray, per_column: int):
        self.fft, self.centres, self.per_column, self.channels = fft, centres, per_column, channels
        self.window = np.hanning(fft + 1)[:-1].astype(np.float32)  # periodic Hann
        self.scale = (2.0 / self.window.sum()) ** 2
        self.power = np.zeros((len(centres) // per_column, fft // 2 + 1))
        self.begin = -(fft // 2)  # the frame (position in the audio) buffer[:, 0] holds
        self.buffer = np.zeros((channels, fft // 2), np.float32)  # the silence before the start
        self.next = 0  # the first frame not yet measured
        self.batch = max(1, (1 << 22) // fft)  # about 16 MB of frames at a time

    def feed(self, block: np.ndarray) -> None:
        if block.shape[1]:
            self.buffer = np.concatenate([self.buffer, block.astype(np.float32, copy=False)], axis=1)
            self._measure()

    def finish(self) -> np.ndarray:
        """``(columns, bins)`` power, once all the audio has been fed."""
        self.feed(np.zeros((self.channels, self.fft), np.float32))  # the silence after the end
        return self.power * (self.scale / (self.channels * self.per_column))

    def _measure(self) -> None:
        fft, half = self.fft, self.fft // 2
        end = self.begin + self.buffer.shape[1]
        # frames whose window [centre - fft/2, centre + fft/2) is all in the buffer
        ready = int(np.searchsorted(self.centres, end - fft + half, side="right"))
        offsets = np.arange(fft) - half - self.begin
        for b in range(self.next, ready, self.batch):
            stop = min(b + self.batch, ready)
            index = self.centres[b:stop, None] + offsets
            power = np.zeros((stop - b, self.power.shape[1]))
            for c in range(self.channels):
                spectrum = np.fft.rfft(self.buffer[c][index] * self.window, axis=1)
                power += np.square(spectrum.real) + np.square(spectrum.imag)
            # frames b..stop-1 into their columns (consecutive frames share a column)
            column = np.arange(b, stop) // self.per_column
            starts = np.flatnonzero(np.diff(column, prepend=-1))
            self.power[column[starts]] += np.add.reduceat(power, starts, axis=0)
        self.next = max(self.next, ready)
        keep = int(self.centres[self.next]) - half if self.next < len(self.centres) else end
        cut = min(max(0, keep - self.begin), self.buffer.shape[1])
        if cut:
            self.buffer = self.buffer[:, cut:]
            self.begin += cut


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
    """:func:`spectrogram_png_blocks` of a whole ``(channels, frames)`` array."""
    audio = np.atleast_2d(audio)
    step = 1 << 16
    return spectrogram_png_blocks(
        (audio[:, i : i + step] for i in range(0, audio.shape[1], step)),
        audio.shape[0],
        audio.shape[1],
        sample_rate,
        width=width,
        height=height,
        title=title,
        fft_size=fft_size,
        scale=scale,
    )


def spectrogram_png_blocks(
    blocks: Iterable[np.ndarray],
    channels: int,
    frames: int,
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
    column is the mean power of up to 8 frames spread over its span. The STFT is
    computed from ``blocks`` (float ``(channels, n)`` arrays, ``frames`` in all) as they
    come: memory depends on the picture's size and FFT, not on the audio's length."""
    from matplotlib.ticker import FixedLocator, MaxNLocator

    duration = frames / sample_rate if sample_rate else 0.0
    fft = fft_size or default_fft_size(sample_rate)
    bar_px = 12
    lay = _Layout(width, height)
    right = int(lay.font * _DPI / 72 * 5.2) + bar_px + 8
    lay.right = right
    centres, per_column = _frame_centres(frames, fft, lay.plot_width, 8)
    spectra = _Spectra(channels, fft, centres, per_column)
    if frames:
        for block in blocks:
            spectra.feed(np.atleast_2d(block))
    power = spectra.finish()
    power += 1e-20
    np.log10(power, out=power)
    power *= 10.0
    spec_db = power.T  # (bins, columns)
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
