"""fxhost-mastering: loudness and peak normalisation, silence trimming (offline-only)."""

from __future__ import annotations

import importlib.metadata

import fxhost_mastering
import numpy as np
import pyloudnorm
import pytest
from fxhost_mastering import LoudnessNormalize, PeakNormalize, TrimSilence
from fxhost_sdk import FieldError, meters
from fxhost_sdk.testing import validate_effect
from scipy.signal import resample_poly

EFFECTS = [LoudnessNormalize, PeakNormalize, TrimSilence]


def db(x: float) -> float:
    return 20 * np.log10(x)


def lufs(audio: np.ndarray, rate: float) -> float:
    """An independent meter: pyloudnorm with the K-weighting filters of BS.1770 itself
    (``DeMan``; its default is a cookbook approximation a few hundredths of a LU away)."""
    return pyloudnorm.Meter(rate, filter_class="DeMan").integrated_loudness(audio.T.astype(np.float64))


def true_peak(audio: np.ndarray, rate: float = 48000) -> float:
    """The SDK's true-peak meter (the one the effect and the host use), over all channels."""
    return max(meters.true_peak(audio, rate))


def reference_true_peak(audio: np.ndarray) -> float:
    """An independent true-peak estimate: scipy's polyphase resampler at 8x."""
    return max(np.abs(resample_poly(channel.astype(np.float64), 8, 1)).max() for channel in audio)


def material(kind: str, rate: int, channels: int, seconds: float = 3.0, level: float = 0.1) -> np.ndarray:
    frames = round(seconds * rate)
    rng = np.random.default_rng(7)
    if kind == "noise":
        x = rng.normal(0.0, level, size=(channels, frames))
    else:
        t = np.arange(frames) / rate
        x = np.stack([level * np.sin(2 * np.pi * 440.0 * (1 + 0.5 * c) * t) for c in range(channels)])
    return np.ascontiguousarray(x, dtype=np.float32)


# -- the plugin ---------------------------------------------------------------------


def test_the_hook_and_the_entry_point():
    assert fxhost_mastering.fxhost_effects() == EFFECTS
    points = importlib.metadata.entry_points(group="fxhost")
    assert any(ep.name == "mastering" and ep.value == "fxhost_mastering" for ep in points)
    for cls in EFFECTS:
        assert cls.offline_only


@pytest.mark.parametrize("cls", EFFECTS, ids=lambda c: c.name)
def test_conformance(cls):
    report = validate_effect(cls)
    assert "not applicable: offline-only effect" in str(report)


@pytest.mark.parametrize(
    ("cls", "params"),
    [
        (LoudnessNormalize, {"target_lufs": -5.0, "max_true_peak_db": -20.0}),
        (LoudnessNormalize, {"target_lufs": -70.0, "limit_true_peak": False}),
        (PeakNormalize, {"target_db": -60.0}),
        (TrimSilence, {"threshold_db": -6.0, "pad_ms": 0.0}),
        (TrimSilence, {"threshold_db": -120.0, "pad_ms": 1000.0}),
    ],
    ids=lambda v: getattr(v, "name", None) or ",".join(f"{k}={x}" for k, x in v.items()),
)
def test_conformance_at_the_extremes(cls, params):
    validate_effect(cls, params=params, sample_rate=44100)


@pytest.mark.parametrize("cls", EFFECTS, ids=lambda c: c.name)
def test_streaming_is_refused(cls):
    with pytest.raises(RuntimeError, match="offline-only"):
        cls(48000, 2).process(np.zeros((2, 64), np.float32))


# -- loudness_normalize -------------------------------------------------------------


@pytest.mark.parametrize("rate", [44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("kind", ["noise", "sine"])
@pytest.mark.parametrize("target", [-23.0, -14.0, -30.0])
def test_loudness_reaches_the_target(rate, channels, kind, target):
    x = material(kind, rate, channels)
    y = LoudnessNormalize(rate, channels, {"target_lufs": target}).process_offline(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert abs(lufs(y, rate) - target) < 0.1
    # one gain for the whole signal and every channel
    gain = y[0, 100] / x[0, 100]
    np.testing.assert_allclose(y, x * gain, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    ("preset", "target"), [("ebu_r128", -23.0), ("streaming", -14.0), ("podcast", -16.0)]
)
def test_presets(preset, target):
    params = LoudnessNormalize.preset(preset)
    assert params.target_lufs == target and params.max_true_peak_db == -1.0
    x = material("noise", 48000, 2)
    y = LoudnessNormalize(48000, 2, params).process_offline(x)
    assert abs(lufs(y, 48000) - target) < 0.1


def test_loudness_with_quiet_passages_that_cross_the_absolute_gate():
    """A gain of +42 dB lifts the quiet half over the -70 LUFS gate: measured again and corrected."""
    rate = 48000
    rng = np.random.default_rng(3)
    loud = rng.normal(0, 1, (2, 3 * rate))
    quiet = rng.normal(0, 1, (2, 3 * rate))
    loud *= 10 ** ((-65 - lufs(loud, rate)) / 20)
    quiet *= 10 ** ((-73 - lufs(quiet, rate)) / 20)
    x = np.concatenate([loud, quiet], axis=1).astype(np.float32)
    assert abs(lufs(x, rate) - -65) < 0.5
    y = LoudnessNormalize(rate, 2).process_offline(x)
    assert abs(lufs(y, rate) - -23) < 0.01
    assert abs(db(y.std() / x.std()) - 42) > 1  # not the naive gain


def test_the_true_peak_ceiling_holds():
    rate = 48000
    x = material("noise", rate, 2, level=0.2)  # about -11 LUFS, peaks near -2 dBFS
    y = LoudnessNormalize(rate, 2, {"target_lufs": -5.0, "max_true_peak_db": -1.0}).process_offline(x)
    assert db(true_peak(y)) <= -1.0 + 1e-4
    assert db(np.abs(y).max()) <= -1.0
    assert db(reference_true_peak(y)) <= -1.0 + 0.05
    assert db(true_peak(y)) > -1.01  # limited exactly to the ceiling, no further
    assert lufs(y, rate) < -5.5  # so the target is not reached
    free = LoudnessNormalize(rate, 2, {"target_lufs": -5.0, "limit_true_peak": False}).process_offline(x)
    assert abs(lufs(free, rate) - -5.0) < 0.1
    assert np.abs(free).max() > 1.0  # float audio over full scale: the caller asked for it


def test_the_ceiling_is_on_the_true_peak_not_the_sample_peak():
    """A sine at a quarter of the sample rate, sampled 45 degrees off its crests: every
    sample is at 0.707 of the true peak (-3 dB)."""
    rate = 48000
    n = np.arange(2 * rate)
    fade = np.minimum(1.0, np.minimum(n, n[::-1]) / (0.1 * rate))  # no clicks at the ends
    fade = 0.5 - 0.5 * np.cos(np.pi * fade)
    x = np.ascontiguousarray((0.5 * fade * np.sin(np.pi / 2 * n + np.pi / 4))[None, :], dtype=np.float32)
    assert abs(db(reference_true_peak(x) / np.abs(x).max()) - 3.01) < 0.05
    y = LoudnessNormalize(rate, 1, {"target_lufs": -5.0, "max_true_peak_db": -10.0}).process_offline(x)
    assert lufs(y, rate) < -9  # the ceiling binds: -5 LUFS is not reached
    assert abs(db(np.abs(y).max()) - -13.01) < 0.05  # the samples stay 3 dB under the ceiling
    assert abs(db(reference_true_peak(y)) - -10.0) < 0.05


def test_a_ceiling_that_does_not_bind_changes_nothing():
    x = material("sine", 48000, 2)
    limited = LoudnessNormalize(48000, 2, {"target_lufs": -30.0}).process_offline(x)
    free = LoudnessNormalize(48000, 2, {"target_lufs": -30.0, "limit_true_peak": False}).process_offline(x)
    assert np.array_equal(limited, free)


@pytest.mark.parametrize("frames", [0, 1, 100, round(0.4 * 48000) - 1])
def test_loudness_leaves_audio_shorter_than_a_gating_block_unchanged(frames):
    x = material("noise", 48000, 2)[:, :frames]
    y = LoudnessNormalize(48000, 2).process_offline(x)
    assert np.array_equal(y, x) and y.dtype == np.float32
    assert y is not x


def test_loudness_measures_from_one_gating_block():
    x = material("noise", 48000, 2)[:, : round(0.4 * 48000)]
    y = LoudnessNormalize(48000, 2).process_offline(x)
    assert abs(lufs(y, 48000) - -23) < 0.1


def test_loudness_leaves_silence_unchanged():
    for x in (np.zeros((2, 48000), np.float32), np.full((2, 48000), 1e-6, np.float32)):  # -inf LUFS
        assert np.isinf(lufs(x, 48000))
        y = LoudnessNormalize(48000, 2).process_offline(x)
        assert np.array_equal(y, x)


def test_loudness_refuses_what_it_cannot_measure():
    with pytest.raises(FieldError) as error:
        LoudnessNormalize(4000, 2)
    assert error.value.path == "sample_rate"
    with pytest.raises(FieldError) as error:
        LoudnessNormalize(48000, 6)
    assert error.value.path == "channels"
    LoudnessNormalize(8000, 5)
    with pytest.raises(FieldError) as error:
        LoudnessNormalize(48000, 2, {"target_lufs": -4.0})
    assert error.value.path == "params.target_lufs"


# -- peak_normalize -----------------------------------------------------------------


@pytest.mark.parametrize("target", [-1.0, -6.0, 0.0, -60.0])
@pytest.mark.parametrize("channels", [1, 2])
def test_peak_normalize_is_exact(target, channels):
    x = material("noise", 44100, channels, seconds=0.5)
    x[-1] *= 0.5  # the channels' peaks differ: one gain for both
    y = PeakNormalize(44100, channels, {"target_db": target}).process_offline(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert abs(db(np.abs(y).max()) - target) < 1e-5
    gain = 10 ** (target / 20) / np.abs(x).max()
    np.testing.assert_allclose(y, x * gain, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("frames", [0, 1000])
def test_peak_normalize_leaves_silence_unchanged(frames):
    x = np.zeros((2, frames), np.float32)
    y = PeakNormalize(48000, 2).process_offline(x)
    assert np.array_equal(y, x) and y is not x


def test_peak_normalize_one_frame():
    y = PeakNormalize(48000, 2, {"target_db": -6.0}).process_offline(np.array([[0.1], [-0.2]], np.float32))
    np.testing.assert_allclose(y, [[10 ** (-6 / 20) / 2], [-(10 ** (-6 / 20))]], rtol=1e-6)


# -- trim_silence -------------------------------------------------------------------

RATE = 48000
LEAD, TONE, TAIL = 24000, 12000, 36000  # 0.5 s, 0.25 s, 0.75 s


def constructed(channels: int = 2, floor: float = 0.0) -> np.ndarray:
    """Silence, a tone whose first and last frames are loud, silence; a noise floor at
    ``floor`` under the tone's level, if given."""
    x = np.zeros((channels, LEAD + TONE + TAIL))
    n = np.arange(TONE)
    x[0, LEAD : LEAD + TONE] = 0.5 * np.cos(2 * np.pi * 1000 * n / RATE)  # first frame 0.5, last 0.496
    if floor:
        x += np.random.default_rng(1).uniform(-floor, floor, x.shape)
    return np.ascontiguousarray(x, dtype=np.float32)


@pytest.mark.parametrize("pad_ms", [0.0, 10.0, 125.0])
@pytest.mark.parametrize("channels", [1, 2])
def test_trim_is_exact_with_its_pad(pad_ms, channels):
    x = constructed(channels, floor=1e-4)  # -80 dBFS of noise: under the -60 dBFS default
    pad = round(pad_ms * RATE / 1000)
    y = TrimSilence(RATE, channels, {"pad_ms": pad_ms}).process_offline(x)
    assert y.dtype == np.float32 and y.flags.c_contiguous
    assert np.array_equal(y, x[:, LEAD - pad : LEAD + TONE + pad])


def test_trim_uses_the_loudest_channel_and_keeps_the_middle():
    x = constructed(2)
    x[1, 5000] = 0.01  # -40 dBFS on the other channel only: sound
    x[0, LEAD + 100 : LEAD + 9000] = 0.0  # silence inside is kept
    y = TrimSilence(RATE, 2, {"pad_ms": 0.0}).process_offline(x)
    assert np.array_equal(y, x[:, 5000 : LEAD + TONE])


def test_trim_threshold():
    x = constructed(1)
    x[0, 1000] = 10 ** (-50 / 20)
    assert TrimSilence(RATE, 1, {"pad_ms": 0.0}).process_offline(x).shape == (1, LEAD + TONE - 1000)
    quiet = TrimSilence(RATE, 1, {"pad_ms": 0.0, "threshold_db": -40.0}).process_offline(x)
    assert quiet.shape == (1, TONE)
    assert TrimSilence(RATE, 1, {"threshold_db": -3.0}).process_offline(x).shape == (1, 0)  # tone at -6


def test_trim_pad_stops_at_the_ends():
    x = np.zeros((2, 1000), np.float32)
    x[:, 10] = x[:, 990] = 0.5
    y = TrimSilence(RATE, 2, {"pad_ms": 1000.0}).process_offline(x)
    assert np.array_equal(y, x)


@pytest.mark.parametrize("channels", [1, 2])
def test_trim_edge_cases(channels):
    fx = TrimSilence(RATE, channels)
    for x in (np.zeros((channels, 0), np.float32), np.zeros((channels, RATE), np.float32)):
        y = fx.process_offline(x)
        assert y.shape == (channels, 0) and y.dtype == np.float32
    one = np.full((channels, 1), 0.5, np.float32)
    assert np.array_equal(fx.process_offline(one), one)
    short = constructed(channels)[:, LEAD - 10 : LEAD + 10]  # shorter than the pad on both sides
    assert np.array_equal(fx.process_offline(short), short)  # the pad keeps the 10 silent frames


def test_input_is_never_modified():
    x = constructed(2, floor=1e-4)
    kept = x.copy()
    for fx in (LoudnessNormalize(RATE, 2), PeakNormalize(RATE, 2), TrimSilence(RATE, 2)):
        y = fx.process_offline(x)
        assert not np.shares_memory(x, y)
    assert np.array_equal(x, kept)


# -- the host reports what the effect set ------------------------------------------------


@pytest.mark.parametrize(("rate", "channels"), [(44100, 2), (48000, 1), (96000, 2)])
@pytest.mark.parametrize(
    ("params", "reaches"),
    [
        ({"target_lufs": -23.0}, "loudness"),
        ({"target_lufs": -5.0, "max_true_peak_db": -12.0}, "ceiling"),  # the ceiling binds first
    ],
    ids=["target", "ceiling"],
)
def test_the_hosts_analysis_reads_what_the_normaliser_set(rate, channels, params, reaches):
    """The host's analysis (GET /api/assets/{id}/analysis) and loudness_normalize measure
    with one meter: analysed, the output reads the target loudness, or the true-peak
    ceiling where that binds, within 0.05 dB; on the input both read the same."""
    from fxhost.audio.analysis import analyse

    x = material("noise", rate, channels, level=0.05)
    t = np.arange(x.shape[1]) / rate
    x += (0.3 * np.sin(2 * np.pi * 0.45 * rate * t + np.pi / 4)).astype(np.float32)  # peaks between samples
    effect = LoudnessNormalize(rate, channels, params)
    before = analyse(x, rate)
    assert effect.measure(x).integrated() == pytest.approx(before.integrated_lufs, abs=0.05)
    assert db(true_peak(x, rate)) == pytest.approx(before.true_peak_dbtp, abs=0.05)
    after = analyse(effect.process_offline(x), rate)
    if reaches == "loudness":
        assert after.integrated_lufs == pytest.approx(params["target_lufs"], abs=0.05)
        assert after.true_peak_dbtp < -1.0
    else:
        assert after.true_peak_dbtp == pytest.approx(params["max_true_peak_db"], abs=0.05)
        assert after.integrated_lufs < params["target_lufs"] - 0.5
