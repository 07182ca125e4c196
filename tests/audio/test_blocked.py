"""Whole-file results computed block by block equal the whole-array computation.

The server reads an asset in blocks and never holds it whole; these tests feed the
blocked code (:class:`Analyser`, :class:`TruePeakMeter`, the pictures' ``*_blocks``)
audio in blocks whose size divides neither the length nor the meters' 10 s chunks, and
compare with straightforward computations on the whole array: numpy for levels and
clipping, pyloudnorm for loudness, a correlation over the whole signal for the true
peak, per-column numpy reductions for the waveform and a direct windowed FFT per frame
for the spectrogram. Tolerances (also in the README):

- peak, clipped samples, clip runs, longest run, waveform min/max: exact;
- RMS and DC offset: 1e-9 relative (float64 sums in another order);
- true peak: 1e-12 relative;
- integrated loudness: 0.01 LU from pyloudnorm (its BS.1770 "DeMan" filters) on the
  whole 100 ms segments (the meter leaves out a last, incomplete one); loudness
  range: 1e-9 LU from the SDK meter run on the whole array;
- spectrogram power: 1e-4 relative where it is above -100 dB of the peak (float32 FFT);
- the PNGs drawn from blocks are pixel for pixel those drawn from the whole array.
"""

import io

import msgspec
import numpy as np
import pyloudnorm as pyln
import pytest
from fxhost.audio import analysis as an
from fxhost.audio import pictures as pics
from fxhost_sdk import meters
from PIL import Image

CASES = [  # (sample rate, channels, frames): lengths that no block size divides
    (44100, 1, 44100 * 23 + 17),
    (48000, 2, 48000 * 12 + 4097),
    (32000, 5, 32000 * 11 + 1),
    (96000, 6, 96000 * 4 + 333),
    (22050, 2, 22050 * 3 + 7),
]
BLOCKS = [1000, 4093, 65536]


def signal(sr: int, channels: int, frames: int, seed: int = 0) -> np.ndarray:
    """Noise in a crescendo, a quiet start, a sine per channel, and clipped runs in
    channel 0 across where blocks and chunks meet."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / sr
    x = 0.1 * rng.standard_normal((channels, frames)) * np.linspace(0.2, 2.0, frames)
    x += 0.2 * np.sin(2 * np.pi * np.outer(np.arange(1, channels + 1) * 220.0, t))
    x[:, : sr // 2] *= 0.005
    for start in (999, 4090, 10 * sr - 3, frames - 5):
        x[0, start : start + 5] = 1.0
    x[-1, 2 * sr : 2 * sr + 3] = -1.0
    return x.astype(np.float32)


def in_blocks(x: np.ndarray, size: int):
    return (x[:, i : i + size] for i in range(0, x.shape[1], size))


def runs_of(clipped: np.ndarray) -> tuple[int, int]:
    """(runs, longest run) of True in a 1-D array, counted directly."""
    runs = longest = current = 0
    for value in clipped:
        current = current + 1 if value else 0
        runs += value and current == 1
        longest = max(longest, current)
    return int(runs), longest


def oracle_true_peak(channel: np.ndarray) -> float:
    half = meters.TRUE_PEAK_HALF_TAPS
    padded = np.concatenate([np.zeros(half - 1), channel.astype(np.float64), np.zeros(half)])
    between = max(np.abs(np.correlate(padded, h, mode="valid")).max() for h in meters.TRUE_PEAK_FILTERS.T)
    return max(float(between), float(np.abs(channel).max()))


@pytest.mark.parametrize(("sr", "channels", "frames"), CASES)
def test_blocked_analysis_equals_the_whole_array(sr, channels, frames):
    x = signal(sr, channels, frames)
    whole = an.analyse(x, sr)
    wide = x.astype(np.float64)
    for size in BLOCKS:
        a = an.analyse_blocks(in_blocks(x, size), channels, frames, sr)
        assert (a.channels, a.frames, a.sample_rate) == (channels, frames, sr)
        for c, level in enumerate(a.per_channel):
            assert level.peak == float(np.abs(x[c]).max())
            assert level.rms == pytest.approx(np.sqrt(np.mean(wide[c] ** 2)), rel=1e-9)
            assert level.dc_offset == pytest.approx(np.mean(wide[c]), rel=1e-9, abs=1e-15)
            clipped = np.abs(x[c]) >= an.CLIP_THRESHOLD
            assert level.clipped_samples == int(clipped.sum())
            assert (level.clip_runs, level.longest_clip_run) == runs_of(clipped)
            assert 10 ** (level.true_peak_dbtp / 20) == pytest.approx(oracle_true_peak(x[c]), rel=1e-12)
        assert a.overall.rms == pytest.approx(np.sqrt(np.mean(wide**2)), rel=1e-9)
        assert a.overall.clipped_samples == int((np.abs(x) >= an.CLIP_THRESHOLD).sum())
        # the meter measures whole 100 ms segments; pyloudnorm takes 5 channels at most
        # (6 are 5.1: the LFE weighs nothing)
        cut = x[:, : frames * 10 // sr * sr // 10]
        cut = cut[[0, 1, 2, 4, 5]] if channels == 6 else cut
        lufs = pyln.Meter(sr, filter_class="DeMan").integrated_loudness(cut.T)
        assert a.integrated_lufs == pytest.approx(lufs, abs=0.01)
        assert a.loudness_range_lu == pytest.approx(meters.loudness(x, sr)[1], abs=1e-9)
        # and the whole array through the same code: the same numbers, but for the true
        # peak, a BLAS matrix product whose last bit depends on how many rows it is given
        # (the kernels are the CPU's: equal on one machine, 2e-15 apart on another)
        assert_same_analysis(a, whole)


def true_peaks(a: an.Analysis) -> list[float | None]:
    return [a.true_peak_dbtp, a.overall.true_peak_dbtp, *(level.true_peak_dbtp for level in a.per_channel)]


def without_true_peaks(a: an.Analysis) -> an.Analysis:
    def clear(levels: an.Levels) -> an.Levels:
        return msgspec.structs.replace(levels, true_peak_dbtp=None)

    return msgspec.structs.replace(
        a, true_peak_dbtp=None, overall=clear(a.overall), per_channel=[clear(x) for x in a.per_channel]
    )


def assert_same_analysis(a: an.Analysis, b: an.Analysis) -> None:
    """Equal, but the true peaks: to 1e-12 relative (linear)."""
    assert without_true_peaks(a) == without_true_peaks(b)
    for x, y in zip(true_peaks(a), true_peaks(b), strict=True):
        assert (x is None) == (y is None)
        if x is not None:
            assert 10 ** (x / 20) == pytest.approx(10 ** (y / 20), rel=1e-12)


def test_blocks_must_add_up_to_the_length():
    analyser = an.Analyser(2, 100, 48000)
    analyser.feed(np.zeros((2, 60), np.float32))
    with pytest.raises(ValueError, match="frames"):
        analyser.result()  # 40 frames short
    with pytest.raises(ValueError, match="40 more"):
        analyser.feed(np.zeros((2, 41), np.float32))
    with pytest.raises(ValueError, match="channel"):
        analyser.feed(np.zeros((1, 10), np.float32))


@pytest.mark.parametrize("sizes", [[1], [7, 1, 31, 32, 33], [40000], [meters.TRUE_PEAK_CHUNK + 5]])
def test_true_peak_meter_in_blocks_of_any_size(sizes):
    rng = np.random.default_rng(2)
    x = 0.3 * rng.standard_normal((2, 50001))
    x[1, :20000] = 0.0  # silent first: interpolation starts late, across a seam
    x[1, 20000] = 0.9
    meter = meters.TruePeakMeter(2, 48000)
    done, k = 0, 0
    while done < x.shape[1]:
        size = sizes[k % len(sizes)]
        meter.feed(x[:, done : done + size])
        done, k = done + size, k + 1
    peaks = meter.peaks()
    for c in range(2):
        assert peaks[c] == pytest.approx(oracle_true_peak(x[c]), rel=1e-12)
    assert peaks == pytest.approx(meters.true_peak(x, 48000), rel=1e-12)


def pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"))


@pytest.mark.parametrize(("sr", "channels", "frames"), [*CASES, (48000, 2, 3000), (48000, 1, 0)])
def test_waveform_from_blocks(sr, channels, frames):
    x = signal(sr, channels, frames) if frames > sr else np.zeros((channels, frames), np.float32)
    columns = 1000
    envelope = pics._Envelope(channels, frames, columns)
    for block in in_blocks(x, 4093):
        envelope.feed(block)
    if not envelope.raw:
        # the oracle: numpy over each column's frames of the whole array
        edges = np.linspace(0, frames, columns + 1).astype(np.int64)
        _, lo, hi, rms = envelope.bins()
        for k in range(0, columns, 97):
            part = x[:, edges[k] : edges[k + 1]]
            assert np.array_equal(lo[:, k], part.min(axis=1)) and np.array_equal(hi[:, k], part.max(axis=1))
            want = np.sqrt(np.mean(part.astype(np.float64) ** 2, axis=1))
            np.testing.assert_allclose(rms[:, k], want, rtol=1e-9)
    whole = pics.waveform_png(x, sr, width=900, height=300, title="w")
    blocked = pics.waveform_png_blocks(
        in_blocks(x, 4093), channels, frames, sr, width=900, height=300, title="w"
    )
    assert np.array_equal(pixels(whole), pixels(blocked))


@pytest.mark.parametrize(("sr", "channels", "frames"), [*CASES[:3], (48000, 2, 30000)])
@pytest.mark.parametrize("fft", [256, 2048, 8192])
def test_spectrogram_from_blocks(sr, channels, frames, fft):
    x = signal(sr, channels, frames)
    centres, per_column = pics._frame_centres(frames, fft, 700, 8)
    spectra = pics._Spectra(channels, fft, centres, per_column)
    for block in in_blocks(x, 4093):
        spectra.feed(block)
    power = spectra.finish()
    # the oracle: each frame's windowed FFT from the zero-padded whole array, in float64
    window = np.hanning(fft + 1)[:-1]
    padded = np.concatenate([np.zeros((channels, fft)), x.astype(np.float64), np.zeros((channels, fft))], 1)
    for column in range(0, len(power), max(1, len(power) // 25)):
        want = np.zeros(fft // 2 + 1)
        for centre in centres[column * per_column : (column + 1) * per_column]:
            frame = padded[:, centre + fft - fft // 2 : centre + fft + fft // 2] * window
            want += (np.abs(np.fft.rfft(frame, axis=1)) ** 2).sum(axis=0)
        want *= (2 / window.sum()) ** 2 / (channels * per_column)
        loud = want > want.max() * 1e-10
        np.testing.assert_allclose(power[column][loud], want[loud], rtol=1e-4)
    whole = pics.spectrogram_png(x, sr, width=700 + 200, height=300, title="s", fft_size=fft)
    blocked = pics.spectrogram_png_blocks(
        in_blocks(x, 4093), channels, frames, sr, width=900, height=300, title="s", fft_size=fft
    )
    assert np.array_equal(pixels(whole), pixels(blocked))
