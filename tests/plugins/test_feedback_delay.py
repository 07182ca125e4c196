"""fxhost-feedback-delay: the template plugin against a per-sample reference."""

from __future__ import annotations

import math
from importlib.metadata import entry_points

import msgspec
import numpy as np
import pytest
from fxhost_feedback_delay import FeedbackDelay, fxhost_effects
from fxhost_sdk import FieldError
from fxhost_sdk.host import effect_class_problems
from fxhost_sdk.testing import process_blocks

PATTERNS = {
    "fixed 64": [64],
    "ones then ragged": [1] * 100 + [7, 300, 1, 4096, 33, 2, 9000],
    "rising": [1, 2, 64, 1000, 5000, 30000],
}


def noise(channels: int, frames: int, seed: int = 0, peak: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-peak, peak, (channels, frames)).astype(np.float32)


def reference(x: np.ndarray, sample_rate: float, delay_seconds=0.25, feedback=0.4, mix=0.35):
    """The textbook feedback delay, one sample at a time, in plain Python floats."""
    delay = max(1, round(delay_seconds * sample_rate))
    out = np.zeros(x.shape)
    for c, channel in enumerate(x.tolist()):
        line = [0.0] * delay  # line[n - delay], ..., line[n - 1]
        for n, sample in enumerate(channel):
            delayed = line.pop(0)
            line.append(sample + feedback * delayed)
            out[c, n] = (1 - mix) * sample + mix * delayed
    return out.astype(np.float32)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"delay_seconds": 0.001, "feedback": 0.95, "mix": 1.0},  # 8 samples at 8 kHz
        {"delay_seconds": 0.0173, "feedback": 0.7, "mix": 0.5},
        {"delay_seconds": 0.05, "feedback": 0.0, "mix": 0.2},
    ],
)
@pytest.mark.parametrize("channels", [1, 2])
def test_equals_the_per_sample_reference(params, channels):
    rate = 8000
    x = noise(channels, 3000, seed=1)
    x[:, 2000:] = 0.0
    expected = reference(x, rate, **params)
    np.testing.assert_allclose(FeedbackDelay(rate, channels, params).process(x), expected, atol=1e-6)
    for name, sizes in PATTERNS.items():
        out = process_blocks(FeedbackDelay(rate, channels, params), x, sizes)
        np.testing.assert_allclose(out, expected, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("params", [{}, {"delay_seconds": 0.0021, "feedback": 0.9, "mix": 1.0}])
def test_block_size_invariance(params):
    x = noise(2, 48000, seed=2)
    whole = FeedbackDelay(48000, 2, params).process(x)
    assert whole.dtype == np.float32 and whole.shape == x.shape and whole.flags.c_contiguous
    for name, sizes in PATTERNS.items():
        out = process_blocks(FeedbackDelay(48000, 2, params), x, sizes)
        np.testing.assert_array_equal(out, whole, err_msg=name)


def test_reset_sounds_like_a_fresh_instance():
    params = {"delay_seconds": 0.01, "feedback": 0.8, "mix": 0.5}
    x = noise(2, 5000, seed=3)
    effect = FeedbackDelay(48000, 2)
    effect.process(noise(2, 20000, seed=4))
    effect.set_params(params)
    effect.process(noise(2, 100, seed=5))  # mid-crossfade
    effect.reset()
    np.testing.assert_array_equal(effect.process(x), FeedbackDelay(48000, 2, params).process(x))


def test_changing_the_delay_live_does_not_click():
    rate = 48000
    t = np.arange(rate) / rate
    x = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)[None, :]
    params = {"delay_seconds": 0.1, "feedback": 0.0, "mix": 1.0}
    effect = FeedbackDelay(rate, 1, params)
    first = effect.process(x[:, : rate // 2])
    # Half a period of 220 Hz later: jumping there would step the output by up to 1.0.
    effect.set_params({**params, "delay_seconds": 0.1 + 0.5 / 220})
    second = effect.process(x[:, rate // 2 :])
    y = np.concatenate([first, second], 1)[0, round(0.2 * rate) :]
    steepest_sine = 0.5 * 2 * np.pi * 220 / rate  # the largest step of the sine itself
    assert np.abs(np.diff(y)).max() < 1.5 * steepest_sine
    # After the cross-fade the new delay is in force exactly.
    end = rate - 1
    shift = round((0.1 + 0.5 / 220) * rate)
    assert second[0, -1] == pytest.approx(x[0, end - shift], abs=1e-6)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("delay_seconds", 0.0),
        ("delay_seconds", 2.5),
        ("feedback", 0.96),
        ("feedback", -0.1),
        ("mix", 1.1),
        ("mix", "half"),
    ],
)
def test_out_of_range_is_refused_with_the_field_named(field, value):
    with pytest.raises(FieldError) as error:
        FeedbackDelay(48000, 2, {field: value})
    assert error.value.path == f"params.{field}"
    effect = FeedbackDelay(48000, 2)
    with pytest.raises(FieldError):
        effect.set_params({field: value})
    assert effect.params == FeedbackDelay.Params()


def test_parameters():
    info = {f.name: f.type for f in msgspec.inspect.type_info(FeedbackDelay.Params).fields}
    assert {name: (t.type.ge, t.type.le) for name, t in info.items()} == {
        "delay_seconds": (0.001, 2.0),
        "feedback": (0.0, 0.95),
        "mix": (0.0, 1.0),
    }
    assert msgspec.to_builtins(FeedbackDelay.Params()) == {
        "delay_seconds": 0.25,
        "feedback": 0.4,
        "mix": 0.35,
    }
    assert info["delay_seconds"].extra_json_schema["x-unit"] == "s"
    assert FeedbackDelay.name == "feedback_delay"
    assert FeedbackDelay(48000, 2).latency == 0


@pytest.mark.parametrize(
    "params",
    [
        {"delay_seconds": 0.01, "feedback": 0.9, "mix": 1.0},
        {"delay_seconds": 0.02, "feedback": 0.5, "mix": 0.35},
        {"delay_seconds": 0.03, "feedback": 0.0, "mix": 1.0},
    ],
)
def test_tail(params):
    rate = 48000
    effect = FeedbackDelay(rate, 1, params)
    tail, delay = effect.tail_seconds, params["delay_seconds"]
    assert tail >= delay
    # A long full-scale DC input fills the line to 1 / (1 - feedback): the worst case.
    x = np.ones((1, 2 * rate), np.float32)
    y = effect.process(np.concatenate([x, np.zeros((1, round((tail + 1) * rate)), np.float32)], 1))
    after = np.abs(y[0, x.shape[1] :])
    end = round(tail * rate)
    assert after[end:].max() < 1e-3
    # ... and no longer than needed: the last echo before the end is still audible.
    assert after[end - round(delay * rate) : end].max() > 0.9e-3


def test_tail_figures():
    assert FeedbackDelay(48000, 2).tail_seconds == pytest.approx(1.75)  # 7 echoes of 0.25 s
    assert FeedbackDelay(48000, 2, {"mix": 0.0}).tail_seconds == 0.0
    high = FeedbackDelay(48000, 2, {"feedback": 0.95, "mix": 1.0, "delay_seconds": 2.0})
    assert high.tail_seconds == 2.0 * math.ceil(math.log(1e-3 / 20) / math.log(0.95))


def test_the_plugin_is_found_through_its_entry_point():
    (point,) = [p for p in entry_points(group="fxhost") if p.name == "feedback-delay"]
    assert point.value == "fxhost_feedback_delay"
    assert point.load().fxhost_effects() == [FeedbackDelay] == fxhost_effects()
    assert effect_class_problems(FeedbackDelay) == []
