"""The two effects pedalboard cannot stream, GSM and pitch shift: why, and how far their
segmented output is from one whole-signal pedalboard call.

test_pack.py checks that they output exactly what they are defined to (crossfaded whole
pedalboard calls on segments); here they are compared with one call on the whole signal.
The yardstick is pedalboard itself: how much its whole-signal output changes when the
same signal merely starts a few milliseconds later. The figures (a voice-like signal,
48 kHz; STFT magnitudes, 2048-point Hann windows, relative distance per window):

================================  =============  ======================================
                                   effect vs      whole call vs whole call on the
                                   whole call     signal started later
================================  =============  ======================================
gsm_full_rate_compressor, mean     0.10           0.11 (5 ms later)
pitch_shift +5 semitones, mean     0.25           0.20 (0.1 s later)
pitch_shift -7 semitones, mean     0.25           0.21 (0.1 s later)
================================  =============  ======================================

(The effect itself changes the spectrum by 0.51 for GSM, 1.1 for the pitch shifts.)
"""

from __future__ import annotations

import numpy as np
import pytest
from fxhost_pedalboard import GSMFullRateCompressor, PitchShift
from fxhost_sdk.testing import process_blocks

RATE = 48000


def voice(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """A voice-like stereo signal: a gliding harmonic tone, amplitude-modulated, with
    bursts of breath noise."""
    rng = np.random.default_rng(seed)
    frames = round(seconds * RATE)
    t = np.arange(frames) / RATE
    phase = 2 * np.pi * np.cumsum(140 + 20 * np.sin(2 * np.pi * 3 * t)) / RATE
    x = sum(0.3 / k * np.sin(k * phase) for k in range(1, 12)) * (0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * t))
    x += 0.05 * rng.standard_normal(frames) * (np.sin(2 * np.pi * 2 * t) > 0.7)
    return np.stack([x, np.roll(x, 100)]).astype(np.float32)


def spectral_distance(a: np.ndarray, b: np.ndarray, n: int = 2048, hop: int = 512) -> float:
    """Mean over windows of ||(|A| - |B|)|| / ||B||, STFT magnitudes: blind to phase."""
    window = np.hanning(n)

    def stft(x: np.ndarray) -> np.ndarray:
        return np.array([np.abs(np.fft.rfft(x[i : i + n] * window)) for i in range(0, x.size - n, hop)])

    sa, sb = stft(a), stft(b)
    return float(np.mean(np.linalg.norm(sa - sb, axis=1) / np.linalg.norm(sb, axis=1)))


def effect_output(cls, params, x) -> np.ndarray:
    """The effect's output, realigned with its input (its latency removed)."""
    effect = cls(RATE, x.shape[0], params)
    padded = np.concatenate([x, np.zeros((x.shape[0], effect.latency), np.float32)], axis=1)
    return process_blocks(effect, padded, 1000)[:, effect.latency :]


@pytest.mark.parametrize(
    ("cls", "params", "later", "bound"),
    [
        (GSMFullRateCompressor, {}, 240, 0.15),  # 5 ms: not a whole 20 ms codec frame
        (PitchShift, {"semitones": 5.0}, 4800, 0.35),
        (PitchShift, {"semitones": -7.0}, 4800, 0.35),
    ],
    ids=["gsm", "pitch+5", "pitch-7"],
)
def test_as_close_to_one_whole_call_as_pedalboard_is_to_itself(cls, params, later, bound):
    x = voice()
    whole = cls.plugin_class(**params).process(x, RATE)
    ours = effect_output(cls, params, x)
    shifted = np.concatenate([np.zeros((2, later), np.float32), x], axis=1)
    itself = cls.plugin_class(**params).process(shifted, RATE)[:, later:]
    ours_distance = spectral_distance(ours[0], whole[0])
    yardstick = spectral_distance(itself[0], whole[0])
    effect_size = spectral_distance(whole[0], x[0])
    assert ours_distance < bound
    assert ours_distance < 1.4 * yardstick
    assert ours_distance < effect_size / 3
    # ... and it is really not the same output: this is an approximation, not a bug hidden
    # by a loose tolerance.
    assert np.abs(ours - whole).max() > 1e-2


def test_pitch_shift_by_zero_passes_the_signal_through():
    x = voice(1.0)
    np.testing.assert_allclose(effect_output(PitchShift, {}, x), x, atol=1e-5)


@pytest.mark.parametrize("cls", [GSMFullRateCompressor, PitchShift], ids=lambda c: c.name)
def test_pedalboard_itself_cannot_stream_them(cls):
    """Why they are segmented: streamed through pedalboard (reset=False, blocks of 0.1 s)
    they lose audio at every call (a priming delay line is cleared each time)."""
    x = voice(1.5)
    whole = cls.plugin_class().process(x, RATE)
    plugin = cls.plugin_class()
    streamed = [plugin.process(x[:, a : a + 4800], RATE, reset=False) for a in range(0, x.shape[1], 4800)]
    joined = np.concatenate(streamed, axis=1)
    if cls is PitchShift:
        # A second of audio disappears with every call: most of the output never comes.
        assert joined.shape[1] < 0.6 * x.shape[1]
    else:
        # 20 ms is lost with every call, and the codec never finds its way back.
        held = x.shape[1] - joined.shape[1]
        late = joined[:, RATE // 2 :]
        assert np.abs(late - whole[:, RATE // 2 : RATE // 2 + late.shape[1]]).max() > 0.05
        assert held < 4800
