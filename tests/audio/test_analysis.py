"""fxhost.audio.analysis, and the SDK meters it measures with, against signals whose
answers are known: levels of a full-scale sine, DC offsets, clipping counts (also across
the 10 s chunks the analysis works in), loudness against pyloudnorm and the BS.1770
reference values, loudness range, true peak of an inter-sample peak, and pictures of
the requested size, fast enough."""

import io
import math
import warnings

import numpy as np
import pyloudnorm as pyln
import pytest
from fxhost.audio import analysis as an
from fxhost.audio import pictures as pics
from fxhost_sdk import meters
from PIL import Image

SR = 48000

# numpy's divide-by-zero, overflow and empty-mean warnings would mean an unguarded path.
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


def sine(freq: float, seconds: float, sr: int = SR, amplitude: float = 1.0, phase: float = 0.0):
    t = np.arange(int(seconds * sr)) / sr
    return amplitude * np.sin(2 * np.pi * freq * t + phase)


def noise(seconds: float, channels: int = 2, sr: int = SR, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 0.1 * rng.standard_normal((channels, int(seconds * sr)))


def db(x: float) -> float:
    return 20 * math.log10(x)


# --------------------------------------------------------------------------- levels


def test_full_scale_sine_levels():
    x = sine(997, 2.0)[None].astype(np.float32)
    a = an.analyse(x, SR)
    assert (a.sample_rate, a.channels, a.frames, a.duration) == (SR, 1, 2 * SR, 2.0)
    level = a.overall
    assert level.peak_dbfs == pytest.approx(0.0, abs=0.001)
    assert level.rms == pytest.approx(1 / math.sqrt(2), rel=1e-5)
    assert level.rms_dbfs == pytest.approx(-3.0103, abs=0.001)
    assert level.dc_offset == pytest.approx(0.0, abs=1e-6)
    assert a.per_channel == [level]
    # BS.1770: a 0 dBFS 997 Hz sine in one front channel reads -3.01 LKFS.
    assert a.integrated_lufs == pytest.approx(-3.01, abs=0.01)
    assert a.true_peak_dbtp == pytest.approx(0.0, abs=0.1) and a.true_peak_dbtp >= level.peak_dbfs


def test_dc_offset_per_channel_and_overall():
    x = np.stack([0.25 + sine(440, 1.0, amplitude=0.5), -0.1 + sine(440, 1.0, amplitude=0.2)])
    a = an.analyse(x.astype(np.float32), SR)
    assert a.per_channel[0].dc_offset == pytest.approx(0.25, abs=1e-5)
    assert a.per_channel[1].dc_offset == pytest.approx(-0.1, abs=1e-5)
    assert a.overall.dc_offset == pytest.approx(0.075, abs=1e-5)
    assert a.per_channel[0].peak == pytest.approx(0.75, abs=1e-4)
    assert a.overall.peak == a.per_channel[0].peak
    rms0 = math.sqrt(0.25**2 + 0.5**2 / 2)
    assert a.per_channel[0].rms == pytest.approx(rms0, rel=1e-4)
    assert a.overall.rms == pytest.approx(math.sqrt((rms0**2 + 0.1**2 + 0.2**2 / 2) / 2), rel=1e-4)


def test_clipping_counts_samples_and_runs():
    x = np.zeros((2, SR), np.float32)
    x[0, 100] = 1.0  # a run of 1
    x[0, 200:203] = -1.0  # a run of 3, negative
    x[0, 300:305] = 0.9995  # a run of 5, just above the threshold
    x[0, 400:410] = 0.998  # below the threshold: not clipped
    x[1, 1000:1002] = 1.0
    a = an.analyse(x, SR)
    c0, c1 = a.per_channel
    assert (c0.clipped_samples, c0.clip_runs, c0.longest_clip_run) == (9, 3, 5)
    assert (c1.clipped_samples, c1.clip_runs, c1.longest_clip_run) == (2, 1, 2)
    overall = a.overall
    assert (overall.clipped_samples, overall.clip_runs, overall.longest_clip_run) == (11, 4, 5)
    assert a.clip_threshold == an.CLIP_THRESHOLD == 0.999


def test_clip_runs_across_chunk_boundaries():
    """The analysis works 10 s at a time: runs that span chunks are counted once."""
    sr = 1000  # 10 s chunks of 10000 frames
    x = np.zeros((1, 35000), np.float32)
    x[0, 9998:10003] = 1.0  # across the first seam: one run of 5
    x[0, 19990:20000] = 1.0  # ends exactly at the second seam
    x[0, 20000] = 0.5
    x[0, 29995:30000] = 1.0  # ends at the third seam...
    x[0, 30000:30010] = -1.0  # ... and goes on: one run of 15
    x[0, -3:] = 1.0  # open at the very end
    a = an.analyse(x, sr)
    level = a.overall
    assert level.clipped_samples == 5 + 10 + 15 + 3
    assert level.clip_runs == 4
    assert level.longest_clip_run == 15
    assert a.integrated_lufs is None  # no K-weighting at 1 kHz


def test_a_hard_clipped_sine_matches_a_direct_count():
    x = np.clip(sine(100, 25.0, amplitude=1.6), -1, 1)[None].astype(np.float32)
    clipped = np.abs(x[0]) >= 0.999
    runs = int(np.count_nonzero(clipped[1:] & ~clipped[:-1]) + clipped[0])
    a = an.analyse(x, SR)
    assert a.overall.clipped_samples == int(clipped.sum())
    assert a.overall.clip_runs == runs == 2 * 100 * 25  # one flat top per half period
    assert a.overall.longest_clip_run > 50


def test_silence_and_empty_audio_have_no_decibels():
    for x in (np.zeros((2, SR), np.float32), np.zeros((2, 0), np.float32)):
        a = an.analyse(x, SR)
        assert a.overall.peak == 0 and a.overall.rms == 0
        assert a.overall.peak_dbfs is None and a.overall.rms_dbfs is None
        assert a.integrated_lufs is None and a.loudness_range_lu is None
        assert a.true_peak_dbtp is None


# --------------------------------------------------------------------------- loudness


def test_k_weighting_is_the_bs1770_filter_at_48k():
    sos = meters.k_weighting_sos(48000)
    assert sos[0] == pytest.approx(
        [1.53512485958697, -2.69169618940638, 1.19839281085285, 1.0, -1.69065929318241, 0.73248077421585],
        abs=1e-12,
    )
    assert sos[1] == pytest.approx([1.0, -2.0, 1.0, 1.0, -1.99004745483398, 0.99007225036621], abs=1e-12)


def test_minus_23_lufs_noise_reads_minus_23():
    x = noise(20.0)
    meter = pyln.Meter(SR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyloudnorm warns about clipping it does not do here
        y = pyln.normalize.loudness(x.T, meter.integrated_loudness(x.T), -23.0).T
    a = an.analyse(y.astype(np.float32), SR)
    assert a.integrated_lufs == pytest.approx(-23.0, abs=0.1)


@pytest.mark.parametrize(
    ("sr", "channels", "seconds"), [(48000, 2, 12.0), (44100, 1, 25.0), (32000, 5, 7.3), (96000, 2, 4.0)]
)
def test_integrated_loudness_agrees_with_pyloudnorm(sr, channels, seconds):
    """pyloudnorm's meter with the standard's filters (`DeMan`) gives the same number to
    a hundredth of a LU, over several chunks, rates and channel counts."""
    rng = np.random.default_rng(channels)
    x = noise(seconds, channels, sr) * np.linspace(0.2, 2.0, int(seconds * sr))  # a crescendo
    x[:, : sr // 2] *= rng.uniform(0.001, 0.01)  # a quiet start, gated away
    ours = an.analyse(x.astype(np.float32), sr).integrated_lufs
    theirs = pyln.Meter(sr, filter_class="DeMan").integrated_loudness(x.astype(np.float32).T)
    assert ours == pytest.approx(theirs, abs=0.01)
    # and pyloudnorm's default (cookbook) K-weighting within a few hundredths
    assert ours == pytest.approx(pyln.Meter(sr).integrated_loudness(x.T), abs=0.1)


def test_loudness_too_short_or_silent_is_none():
    integrated, lra = meters.loudness(noise(0.39), SR)
    assert integrated is None and lra is None
    integrated, lra = meters.loudness(noise(2.9), SR)
    assert integrated is not None and lra is None  # no complete 3 s short-term window
    integrated, lra = meters.loudness(noise(3.0), SR)
    assert integrated is not None and lra == pytest.approx(0.0, abs=0.5)
    assert meters.loudness(noise(10.0) * 1e-6, SR) == (None, None)  # below the -70 LUFS gate


def test_loudness_range_of_a_quiet_and_a_loud_half():
    steady = noise(20.0)
    two_level = noise(20.0, seed=1)
    two_level[:, : 10 * SR] *= 10 ** (-20 / 20)  # the first half 20 dB down
    _, lra_steady = meters.loudness(steady, SR)
    _, lra_two = meters.loudness(two_level, SR)
    assert lra_steady < 1.0
    assert lra_two > lra_steady + 15
    assert lra_two == pytest.approx(20.0, abs=1.0)
    # pyloudnorm's Tech 3342 implementation (0.09 s hop, 1.5 s of silence appended) agrees
    theirs = pyln.Meter(SR, filter_class="DeMan").loudness_range(two_level.T)
    assert lra_two == pytest.approx(theirs, abs=0.5)


def test_six_channels_are_5_1_without_the_lfe():
    assert list(meters.channel_weights(2)) == [1.0, 1.0]
    assert list(meters.channel_weights(5)) == [1.0, 1.0, 1.0, 1.41, 1.41]
    assert list(meters.channel_weights(6)) == [1.0, 1.0, 1.0, 0.0, 1.41, 1.41]
    x = np.zeros((6, 5 * SR))
    x[3] = noise(5.0, 1)[0]  # only the LFE: nothing to measure
    assert meters.loudness(x, SR)[0] is None
    x[0] = x[3]
    assert meters.loudness(x, SR)[0] == pytest.approx(meters.loudness(x[:1], SR)[0], abs=1e-9)


# --------------------------------------------------------------------------- true peak


def test_true_peak_of_an_inter_sample_peak():
    """fs/4 at 45 degrees: every sample is at A/sqrt(2), the waveform reaches A between them."""
    x = sine(SR / 4, 1.0, amplitude=0.5, phase=math.pi / 4)[None]
    a = an.analyse(x.astype(np.float32), SR)
    assert a.overall.peak_dbfs == pytest.approx(db(0.5 / math.sqrt(2)), abs=0.01)  # -9.03
    assert a.true_peak_dbtp == pytest.approx(db(0.5), abs=0.2)  # -6.02
    assert a.true_peak_dbtp > a.overall.peak_dbfs + 2.5


def test_true_peak_chunks_agree_with_one_pass(monkeypatch):
    x = noise(25.0, 1)  # many chunks of the meter
    seam = meters.TRUE_PEAK_CHUNK
    x[0, seam - 1 : seam + 1] = [0.9, -0.9]  # a sharp edge on a seam
    chunked = meters.true_peak(x, SR)[0]
    monkeypatch.setattr(meters, "TRUE_PEAK_CHUNK", 10**9)
    assert meters.true_peak(x, SR)[0] == pytest.approx(chunked, rel=1e-12)
    # the same as each phase's filter run over the whole signal, silence around it
    half = meters.TRUE_PEAK_HALF_TAPS
    padded = np.concatenate([np.zeros(half - 1), x[0], np.zeros(half)])
    between = max(np.abs(np.correlate(padded, h, mode="valid")).max() for h in meters.TRUE_PEAK_FILTERS.T)
    assert chunked == pytest.approx(max(between, np.abs(x).max()), rel=1e-12)


def test_no_oversampling_from_192k():
    x = sine(192000 / 4, 0.5, sr=192000, phase=math.pi / 4)[None]
    assert meters.true_peak(x, 192000)[0] == pytest.approx(np.max(np.abs(x)))


# --------------------------------------------------------------------------- pictures


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.size


@pytest.mark.parametrize(("width", "height"), [(1200, 400), (1234, 567), (200, 100), (333, 2000)])
def test_pictures_have_the_requested_size(width, height):
    x = noise(3.0).astype(np.float32)
    assert png_size(pics.waveform_png(x, SR, width=width, height=height, title="t.wav")) == (width, height)
    for scale in ("log", "linear"):
        png = pics.spectrogram_png(x, SR, width=width, height=height, title="t.wav", scale=scale)
        assert png_size(png) == (width, height)


@pytest.mark.parametrize(
    "audio",
    [
        np.zeros((1, 0), np.float32),  # empty
        np.zeros((2, 1000), np.float32),  # short silence
        np.float32(0.5) * np.ones((1, 100), np.float32),  # shorter than an FFT
        noise(1.0, 6).astype(np.float32),  # 6 lanes
        (noise(1.0, 2) * 30).astype(np.float32),  # far over full scale (float files)
    ],
    ids=["empty", "silence", "tiny", "six-channels", "hot"],
)
def test_pictures_of_awkward_audio(audio):
    for fft in (None, 256, 8192):
        png = pics.spectrogram_png(audio, SR, width=400, height=200, title="x", fft_size=fft)
        assert png_size(png) == (400, 200)
    assert png_size(pics.waveform_png(audio, SR, width=400, height=200, title="x")) == (400, 200)


def test_default_fft_size():
    assert pics.default_fft_size(48000) == pics.default_fft_size(44100) == 2048
    assert pics.default_fft_size(8000) == 256 and pics.default_fft_size(384000) == 8192


def test_sixty_seconds_of_stereo():
    """Long audio takes the envelope and averaging paths of the pictures."""
    x = noise(60.0).astype(np.float32)
    for draw in (pics.waveform_png, pics.spectrogram_png):
        assert png_size(draw(x, SR, width=1200, height=400, title="sixty.wav")) == (1200, 400)
    assert an.analyse(x, SR).frames == x.shape[1]
