"""The output ceiling's limiter (engine/ceiling.py) on signals made to defeat it: its
output's true peak, by fxhost_sdk's meter (the limiter's own definition) and by scipy's
resample_poly (an independent 4x interpolator, within 0.1 dB), stays under the ceiling;
audio under the ceiling passes unchanged; length, alignment and the result do not depend
on the block sizes it is fed."""

import numpy as np
import pytest
from fxhost.engine.ceiling import CeilingLimiter
from fxhost_sdk.meters import true_peak
from scipy.signal import resample_poly

SR = 44100


def signals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    t = np.arange(SR) / SR
    square = np.sign(np.sin(2 * np.pi * 1000 * t))
    impulses = np.zeros((2, SR))
    impulses[:, ::4000] = 5.0
    impulses[:, 0] = 5.0  # a peak on the very first frame
    return {
        # sample peaks 3 dB under the true peak: only interpolation sees it
        "quarter-rate sine": np.stack([2 * np.sin(2 * np.pi * SR / 4 * t + np.pi / 4)] * 2),
        "noise +20 dB": 10 * rng.standard_normal((2, SR)),
        "square, louder left": np.stack([3 * square, square]),
        "impulses": impulses,
        "bursts": 4 * rng.standard_normal((2, SR)) * (np.sin(2 * np.pi * 3 * t) > 0),
        "sweep": 3 * np.stack([np.sin(2 * np.pi * (20 * t + 20000 / 2 * t**2))] * 2),
    }


def limit(audio: np.ndarray, ceiling: float, block: int = 8192, sample_rate: int = SR) -> np.ndarray:
    limiter = CeilingLimiter(ceiling, sample_rate, audio.shape[0])
    out = [limiter.process(audio[:, i : i + block]) for i in range(0, audio.shape[1], block)]
    return np.concatenate([*out, limiter.flush()], axis=1)


def db(x: float) -> float:
    return 20 * np.log10(x)


@pytest.mark.parametrize("name", list(signals()))
@pytest.mark.parametrize("ceiling", [-1.0, -0.1, -12.0])
def test_true_peak_stays_under_the_ceiling(name, ceiling):
    audio = signals()[name]
    out = limit(audio, ceiling)
    assert out.shape == audio.shape and out.dtype == np.float32
    assert db(max(true_peak(out, SR))) <= ceiling + 1e-4
    oversampled = np.abs(resample_poly(out.astype(np.float64), 4, 1, axis=1)).max()
    assert db(max(oversampled, np.abs(out).max())) <= ceiling + 0.1
    assert db(max(true_peak(out, SR))) > ceiling - 0.5  # limited, not crushed


def test_audio_under_the_ceiling_passes_unchanged():
    rng = np.random.default_rng(1)
    audio = (0.1 * rng.standard_normal((2, 30000))).astype(np.float32)
    assert db(max(true_peak(audio, SR))) < -3
    np.testing.assert_array_equal(limit(audio, -1.0), audio)


@pytest.mark.parametrize("block", [1, 31, 500, 4096])
def test_block_sizes_do_not_change_the_output(block):
    audio = signals()["bursts"][:, :20000]
    np.testing.assert_allclose(limit(audio, -1.0, block), limit(audio, -1.0, 1 << 20), atol=1e-6)


def test_latency_is_held_back_then_flushed():
    limiter = CeilingLimiter(-1.0, SR, 1)
    first = limiter.process(np.ones((1, limiter.latency + 100)))
    assert first.shape == (1, 100)
    assert limiter.flush().shape == (1, limiter.latency)


def test_shorter_than_the_filter():
    audio = np.array([[3.0, -3.0, 0.5]])
    out = limit(audio, -6.0)
    assert out.shape == (1, 3) and db(max(true_peak(out, SR))) <= -6.0 + 1e-4


def test_from_192_khz_the_samples_are_the_peak():
    """The meter's rule: at 192 kHz and above the samples are dense enough."""
    rate = 192000
    audio = signals()["noise +20 dB"]
    out = limit(audio, -1.0, sample_rate=rate)
    assert db(np.abs(out).max()) <= -1.0 + 1e-4 and db(max(true_peak(out, rate))) <= -1.0 + 1e-4


@pytest.mark.parametrize("ceiling", [0.5, float("nan"), float("inf")])
def test_a_ceiling_over_full_scale_is_refused(ceiling):
    with pytest.raises(ValueError, match="ceiling_dbfs"):
        CeilingLimiter(ceiling, SR, 2)
