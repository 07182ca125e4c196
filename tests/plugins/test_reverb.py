"""fxhost-pedalboard: the reverb against pedalboard itself, and the block-size immunity."""

from __future__ import annotations

import math
from importlib.metadata import entry_points
from typing import Annotated

import fxhost_sdk
import msgspec
import numpy as np
import pedalboard
import pytest
from fxhost_pedalboard import PedalboardEffect, Reverb, fxhost_effects
from fxhost_pedalboard.reverb import freeverb_tail_seconds
from fxhost_sdk import FieldError, param
from fxhost_sdk.host import effect_class_problems
from fxhost_sdk.testing import process_blocks

FIELDS = ("room_size", "damping", "wet_level", "dry_level", "width", "freeze_mode")
OTHER = {
    "room_size": 0.83,
    "damping": 0.2,
    "wet_level": 0.6,
    "dry_level": 0.15,
    "width": 0.4,
    "freeze_mode": 0.0,
}
# Cycled block sizes. Each starts with a run of 1-frame blocks, and each has blocks
# larger than any before them, including blocks larger than 8192 frames.
PATTERNS = {
    "fixed 512": [512],
    "ones then ragged": [1] * 200 + [7, 300, 1, 4096, 33, 2, 9000, 5, 20000],
    "rising": [1, 2, 64, 1000, 5000, 30000],
}


def noise(channels: int, frames: int, seed: int = 0, peak: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-peak, peak, (channels, frames)).astype(np.float32)


def spans(sizes: list[int], total: int):
    start, i = 0, 0
    while start < total:
        stop = min(total, start + sizes[i % len(sizes)])
        yield start, stop
        start, i = stop, i + 1


def direct(x: np.ndarray, sample_rate: float, **params: float) -> np.ndarray:
    """pedalboard's own answer: the whole signal in one call."""
    return pedalboard.Reverb(**params).process(x, sample_rate)


# -- parameters ----------------------------------------------------------------------


def test_parameters_are_pedalboards_every_one_with_its_range_and_default():
    fresh = pedalboard.Reverb()
    defaults = Reverb.Params()
    assert Reverb.Params.__struct_fields__ == FIELDS
    info = {f.name: f.type for f in msgspec.inspect.type_info(Reverb.Params).fields}
    for field in FIELDS:
        # The default is pedalboard's (which stores float32: 0.33 reads 0.33000001...).
        assert getattr(defaults, field) == pytest.approx(getattr(fresh, field), abs=1e-7)
        meta = info[field]
        assert (meta.type.ge, meta.type.le) == (0.0, 1.0)
        assert meta.extra_json_schema["description"]
        # ... and the range is pedalboard's: both ends accepted, beyond refused.
        pedalboard.Reverb(**{field: 0.0})
        pedalboard.Reverb(**{field: 1.0})
        for outside in (-0.001, 1.001):
            with pytest.raises(ValueError):
                pedalboard.Reverb(**{field: outside})
    assert info["wet_level"].extra_json_schema["x-unit"] == "ratio"
    assert Reverb.name == "reverb"
    assert Reverb(48000, 2).latency == 0


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("value", [-0.01, 1.01, "big"])
def test_out_of_range_is_refused_with_the_field_named(field, value):
    with pytest.raises(FieldError) as error:
        Reverb(48000, 2, {field: value})
    assert error.value.path == f"params.{field}"
    effect = Reverb(48000, 2, OTHER)
    with pytest.raises(FieldError) as error:
        effect.set_params({**OTHER, field: value})
    assert error.value.path == f"params.{field}"
    assert msgspec.to_builtins(effect.params) == OTHER


def test_unknown_parameter_is_refused():
    with pytest.raises(FieldError) as error:
        Reverb(48000, 2, {"room": 0.5})
    assert error.value.path == "params.room"


# -- equality with pedalboard ----------------------------------------------------------


@pytest.mark.parametrize("sample_rate", [44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("params", [{}, OTHER], ids=["defaults", "other"])
def test_equals_pedalboard_in_one_call_and_block_by_block(sample_rate, channels, params):
    x = noise(channels, int(1.5 * sample_rate))
    x[:, int(0.9 * sample_rate) :] = 0.0  # the tail, too
    expected = direct(x, sample_rate, **params)
    whole = Reverb(sample_rate, channels, params).process(x)
    assert whole.dtype == np.float32 and whole.shape == x.shape
    np.testing.assert_allclose(whole, expected, rtol=0, atol=1e-6)
    for name, sizes in PATTERNS.items():
        out = process_blocks(Reverb(sample_rate, channels, params), x, sizes)
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6, err_msg=name)


def test_naive_streaming_of_pedalboard_is_not_immune():
    """What the base class protects against: the same blocks fed straight to pedalboard."""
    x = noise(2, 48000)
    plugin = pedalboard.Reverb()
    naive = np.concatenate(
        [plugin.process(x[:, a:b], 48000, reset=False) for a, b in spans([100, 3000, 7, 1], 48000)],
        1,
    )
    assert np.abs(naive - direct(x, 48000)).max() > 0.01


@pytest.mark.parametrize("channels", [3, 4])
def test_more_than_two_channels_run_as_stereo_pairs(channels):
    x = noise(channels, 30000)
    out = process_blocks(Reverb(48000, channels, OTHER), x, PATTERNS["ones then ragged"])
    for start in range(0, channels, 2):
        group = slice(start, min(channels, start + 2))
        np.testing.assert_allclose(out[group], direct(x[group], 48000, **OTHER), atol=1e-6)


def test_empty_blocks_and_wrong_shapes():
    effect = Reverb(48000, 2)
    assert effect.process(np.zeros((2, 0), np.float32)).shape == (2, 0)
    with pytest.raises(ValueError, match=r"channels|frames"):
        effect.process(np.zeros((1, 64), np.float32))


# -- live automation and reset ---------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"room_size": 0.95, "damping": 0.05, "wet_level": 0.8, "dry_level": 0.0, "width": 0.1},
        {"freeze_mode": 1.0},
    ],
    ids=["room", "freeze"],
)
def test_live_change_equals_pedalboard_changed_at_the_same_point(change):
    rate, at = 48000, 20000
    x = noise(2, 60000)
    # The reference is pedalboard used the natural way, with no priming: a first call of
    # at least 8192 frames prepares it for its largest buffer, the attributes change,
    # the second call carries on from the same state.
    plugin = pedalboard.Reverb(**OTHER)
    before = plugin.process(x[:, :at], rate, reset=False)
    for name, value in change.items():
        setattr(plugin, name, value)
    after = plugin.process(x[:, at:], rate, reset=False)
    expected = np.concatenate([before, after], 1)

    effect = Reverb(rate, 2, OTHER)
    first = process_blocks(effect, x[:, :at], [1] * 50 + [7, 513, 4096, 2])
    effect.set_params({**OTHER, **change})
    second = process_blocks(effect, x[:, at:], [3, 9000, 1, 33])
    np.testing.assert_allclose(np.concatenate([first, second], 1), expected, atol=1e-6)
    # The change was heard.
    assert np.abs(expected[:, at:] - direct(x, rate, **OTHER)[:, at:]).max() > 0.01


def test_reset_sounds_like_a_fresh_instance():
    x = noise(2, 30000, seed=3)
    effect = Reverb(44100, 2)
    process_blocks(effect, noise(2, 20000, seed=4), [5, 9000])
    effect.set_params(OTHER)
    process_blocks(effect, noise(2, 500, seed=5), [1])
    effect.reset()
    assert msgspec.to_builtins(effect.params) == OTHER
    again = process_blocks(effect, x, PATTERNS["ones then ragged"])
    np.testing.assert_array_equal(again, Reverb(44100, 2, OTHER).process(x))
    np.testing.assert_allclose(again, direct(x, 44100, **OTHER), atol=1e-6)


# -- the tail --------------------------------------------------------------------------

LOUDEST = {"damping": 0.0, "wet_level": 1.0, "dry_level": 0.0, "width": 1.0}


def rings(effect: Reverb, x: np.ndarray) -> np.ndarray:
    """The output after ``x`` stops: 1.2 x the declared tail of silence."""
    frames = x.shape[1]
    silence = np.zeros((x.shape[0], math.ceil(1.2 * effect.tail_seconds * 48000)), np.float32)
    return effect.process(np.concatenate([x, silence], 1))[:, frames:]


def level_after(y: np.ndarray, seconds: float) -> float:
    return float(np.abs(y[:, round(seconds * 48000) :]).max())


@pytest.mark.parametrize("room_size", [0.0, 0.5, 0.9, 1.0])
def test_tail_is_long_enough_and_not_absurdly_long(room_size):
    rate = 48000
    params = {**LOUDEST, "room_size": room_size}
    effect = Reverb(rate, 2, params)
    tail = effect.tail_seconds
    full_scale_noise = noise(2, rate, seed=7, peak=1.0)
    impulse = np.zeros((2, rate), np.float32)
    impulse[:, 0] = 1.0
    dc = np.ones((2, 3 * rate), np.float32)  # builds the combs up: the worst case
    for name, x in [("noise", full_scale_noise), ("impulse", impulse), ("dc", dc)]:
        effect.reset()
        y = rings(effect, x)
        assert level_after(y, tail) < 1e-3, f"{name}: still above -60 dBFS after the tail"
        if name == "noise":
            # Less than twice the real decay: half-way through it is still above -60 dBFS.
            assert level_after(y, 0.5 * tail) > 1e-3
        if name == "impulse" and room_size == 1.0:
            assert level_after(y, 0.5 * tail) > 1e-4  # -80 dBFS


def test_tail_figures():
    assert Reverb(48000, 2, {"freeze_mode": 0.5}).tail_seconds == math.inf
    assert Reverb(48000, 2, {"freeze_mode": 0.49}).tail_seconds < math.inf
    assert Reverb(48000, 2, {"wet_level": 0.0}).tail_seconds == 0.0
    # Damping and dry level do not change the bound; wet level and room size do.
    assert Reverb(48000, 2, {"damping": 1.0, "dry_level": 1.0}).tail_seconds == pytest.approx(
        Reverb(48000, 2).tail_seconds
    )
    tails = [freeverb_tail_seconds(48000, 2, r, 1.0, 1.0, 0.0) for r in (0.0, 0.5, 0.9, 1.0)]
    assert tails == sorted(tails)
    assert tails[0] == pytest.approx(1.03, abs=0.01)
    assert tails[-1] == pytest.approx(23.1, abs=0.1)
    # In seconds the tail barely depends on the sample rate (the delays scale with it).
    assert freeverb_tail_seconds(96000, 2, 1.0, 1.0, 1.0, 0.0) == pytest.approx(23.1, abs=0.1)


# -- the other strategy: fixed internal blocks, for effects that move under silence ----


class Chorus(PedalboardEffect):
    name = "test_chorus"
    version = "0"
    summary = "pedalboard.Chorus, fixed-size internal blocks (its LFO runs in silence)."
    plugin_class = pedalboard.Chorus
    silence_is_neutral = False

    class Params(fxhost_sdk.Params):
        rate_hz: Annotated[float, param(description="LFO rate", ge=0.0, le=100.0, unit="Hz")] = 1.0
        depth: Annotated[float, param(description="depth", ge=0.0, le=1.0)] = 0.25
        centre_delay_ms: Annotated[float, param(description="delay", ge=1.0, le=100.0, unit="ms")] = 7.0
        feedback: Annotated[float, param(description="feedback", ge=0.0, le=0.95)] = 0.0
        mix: Annotated[float, param(description="mix", ge=0.0, le=1.0)] = 0.5


class PrimedChorus(Chorus):
    silence_is_neutral = True  # wrong for a chorus: kept to show why


@pytest.mark.parametrize("channels", [1, 2])
def test_fixed_blocks_make_chorus_immune_with_latency(channels):
    x = noise(channels, 40000, seed=9)
    expected = pedalboard.Chorus(rate_hz=3.0).process(x, 48000)
    latency = Chorus(48000, channels).latency
    assert latency == Chorus.fixed_block_size == 256
    for sizes in [*PATTERNS.values(), [40000]]:
        effect = Chorus(48000, channels, {"rate_hz": 3.0})
        out = process_blocks(effect, x, sizes)
        # The whole-signal output, exactly `latency` frames later.
        np.testing.assert_array_equal(out[:, :latency], 0.0)
        np.testing.assert_allclose(out[:, latency:], expected[:, :-latency], atol=1e-6)
        effect.reset()
        np.testing.assert_array_equal(process_blocks(effect, x, [1000]), out)
    # Priming would advance the LFO: the output no longer matches pedalboard.
    primed = PrimedChorus(48000, channels, {"rate_hz": 3.0}).process(x)
    assert np.abs(primed - expected).max() > 0.01


def test_subclass_with_a_field_the_plugin_lacks_is_refused():
    with pytest.raises(TypeError, match="no attribute 'size'"):

        class Bad(PedalboardEffect):
            plugin_class = pedalboard.Reverb

            class Params(fxhost_sdk.Params):
                size: Annotated[float, param(description="x", ge=0, le=1)] = 0.5


# -- packaging -------------------------------------------------------------------------


def test_the_plugin_is_found_through_its_entry_point():
    (point,) = [p for p in entry_points(group="fxhost") if p.name == "pedalboard"]
    assert point.value == "fxhost_pedalboard"
    module = point.load()
    assert module.fxhost_effects() == fxhost_effects() and Reverb in fxhost_effects()
    assert effect_class_problems(Reverb) == []
