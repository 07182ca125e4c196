"""fxhost-pedalboard: every effect pedalboard ships, against pedalboard itself.

Each effect is fed ragged blocks (a run of 1-frame blocks, then blocks larger than any
before, past 8192) and compared with one whole-signal pedalboard call with the same
parameters, delayed by the latency the effect declares, within 1e-6. The two effects
pedalboard cannot stream (GSM and pitch shift) are compared with what they are defined
to be: crossfaded whole pedalboard calls on segments (see test_pack_segments.py for how
far that is from one whole-signal call).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

import fxhost_pedalboard
import msgspec
import numpy as np
import pedalboard
import pytest
from fxhost_pedalboard import (
    EFFECTS,
    BrickwallLimiter,
    Chorus,
    Compressor,
    Convolution,
    Delay,
    GSMFullRateCompressor,
    LadderFilter,
    MP3Compressor,
    PedalboardEffect,
    PitchShift,
    Resample,
    Reverb,
)
from fxhost_sdk import FieldError, LoadedAudio
from fxhost_sdk.host import asset_fields, effect_class_problems
from fxhost_sdk.testing import process_blocks

# -- what is compared ----------------------------------------------------------------

#: A non-default parameter set per effect (every field changed where it can be).
OTHER: dict[str, dict[str, Any]] = {
    "reverb": {"room_size": 0.83, "damping": 0.2, "wet_level": 0.6, "dry_level": 0.15, "width": 0.4},
    "bitcrush": {"bit_depth": 5.5},
    "brickwall_limiter": {"ceiling_db": -9.0, "release_ms": 40.0, "lookahead_ms": 2.5, "true_peak": True},
    "chorus": {"rate_hz": 3.0, "depth": 0.7, "centre_delay_ms": 3.0, "feedback": -0.4, "mix": 0.8},
    "clipping": {"threshold_db": -12.0},
    "compressor": {"threshold_db": -20.0, "ratio": 6.0, "attack_ms": 3.0, "release_ms": 60.0},
    "convolution": {"impulse_response": "room.wav", "mix": 0.7},
    "delay": {"delay_seconds": 0.05, "feedback": 0.6, "mix": 0.4},
    "distortion": {"drive_db": 12.0},
    "gain": {"gain_db": -7.5},
    "gsm_full_rate_compressor": {"quality": "Linear"},
    "high_shelf_filter": {"cutoff_frequency_hz": 3000.0, "gain_db": 9.0, "q": 1.4},
    "highpass_filter": {"cutoff_frequency_hz": 400.0},
    "invert": {},
    "ladder_filter": {"mode": "BPF24", "cutoff_hz": 1200.0, "resonance": 0.6, "drive": 4.0},
    "limiter": {"threshold_db": -18.0, "release_ms": 30.0},
    "low_shelf_filter": {"cutoff_frequency_hz": 150.0, "gain_db": -8.0, "q": 0.5},
    "lowpass_filter": {"cutoff_frequency_hz": 2500.0},
    "mp3_compressor": {"vbr_quality": 7.5},
    "noise_gate": {"threshold_db": -25.0, "ratio": 4.0, "attack_ms": 2.0, "release_ms": 50.0},
    "peak_filter": {"cutoff_frequency_hz": 1000.0, "gain_db": -15.0, "q": 8.0},
    "phaser": {"rate_hz": 2.5, "depth": 0.9, "centre_frequency_hz": 700.0, "feedback": 0.5, "mix": 0.7},
    "pitch_shift": {"semitones": 5.0},
    "resample": {"target_sample_rate": 11025.0, "quality": "Lagrange"},
}
SEGMENTED = (GSMFullRateCompressor, PitchShift)
#: Cycled block sizes: 1-frame blocks first, then each block larger than any before it
#: (including past 8192, where a naive wrapper re-prepares the plugin).
RAGGED = [1] * 40 + [7, 300, 1, 4096, 33, 2, 9000, 5, 20000]


def noise(channels: int, frames: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (channels, frames)).astype(np.float32)


def material(channels: int, rate: float, seconds: float = 0.6, seed: int = 0) -> np.ndarray:
    """Noise and a tone per channel, a loud burst and a silent gap: something for the
    dynamics to react to, and a tail to hear."""
    frames = round(seconds * rate)
    t = np.arange(frames) / rate
    x = noise(channels, frames, seed) * 0.6
    x += 0.3 * np.sin(2 * np.pi * 220.0 * (1.0 + 0.5 * np.arange(channels))[:, None] * t)
    x[:, frames // 5 : frames // 4] *= 2.5
    x[:, int(0.6 * frames) : int(0.7 * frames)] = 0.0
    return np.ascontiguousarray(x, dtype=np.float32)


def impulse_response(channels: int = 2, frames: int = 3000, seed: int = 5) -> np.ndarray:
    decay = np.exp(-np.arange(frames) / (frames / 7))
    return (noise(channels, frames, seed) * decay).astype(np.float32)


#: The assets the tests' loader knows: name -> (audio, sample rate).
ASSETS = {
    "room.wav": (impulse_response(2), 48000.0),
    "mono-cab.wav": (impulse_response(1, 700, seed=6), 44100.0),
}


def load_asset(ref: str, path: str) -> LoadedAudio:
    if ref not in ASSETS:
        raise FieldError(path, f"no asset {ref!r}")
    audio, rate = ASSETS[ref]
    return LoadedAudio(audio.copy(), rate)


def pedalboard_plugin(cls: type[PedalboardEffect], params: Mapping[str, Any]) -> pedalboard.Plugin:
    """pedalboard's own plugin for ``params`` (the fxhost names and values translated by
    hand, not through the effect)."""
    kwargs = dict(params)
    if cls is Convolution:
        audio, rate = ASSETS[kwargs.pop("impulse_response")]
        return pedalboard.Convolution(audio, sample_rate=rate, **kwargs)
    if "mode" in kwargs:
        kwargs["mode"] = getattr(pedalboard.LadderFilter.Mode, kwargs["mode"])
    if "quality" in kwargs:
        kwargs["quality"] = getattr(pedalboard.Resample.Quality, kwargs["quality"])
    return cls.plugin_class(**kwargs)


def delayed(y: np.ndarray, frames: int, latency: int) -> np.ndarray:
    """``y`` delayed by ``latency`` frames (silence before), cut to ``frames``."""
    lead = np.zeros((y.shape[0], latency), dtype=np.float32)
    return np.concatenate([lead, y], axis=1)[:, :frames]


def segments_reference(
    cls: type[PedalboardEffect], params: Mapping[str, Any], x: np.ndarray, rate: float
) -> np.ndarray:
    """What a segmented effect is defined to output, built from fresh pedalboard
    instances: segments of ``size`` frames, each processed with the ``fade`` frames before
    it in one whole call, crossfaded with sin^2 fades, delayed by ``size + fade``."""
    size = round(cls.segment_seconds * rate)
    fade = round(cls.crossfade_seconds * rate)
    channels, frames = x.shape
    padded = np.concatenate([np.zeros((channels, fade)), x, np.zeros((channels, size + fade))], axis=1)
    ramp = np.sin(0.5 * np.pi * (np.arange(fade) + 0.5) / fade) ** 2
    pieces, tail = [], np.zeros((channels, fade))
    for start in range(0, frames + fade, size):
        y = pedalboard_plugin(cls, params).process(
            padded[:, start : start + size + fade].astype(np.float32), rate
        )
        y = y.astype(np.float64)
        y[:, :fade] = tail * (1 - ramp) + y[:, :fade] * ramp
        pieces.append(y[:, :size])
        tail = y[:, size:]
    joined = np.concatenate(pieces, axis=1)[:, fade:]  # joined[:, t] is for input frame t
    return delayed(joined.astype(np.float32), frames, size + fade)


def expected_output(cls, params, x, rate) -> np.ndarray:
    if cls is Convolution and not params.get("impulse_response"):
        return x.copy()  # no impulse response: pass-through
    if cls in SEGMENTED:
        return segments_reference(cls, params, x, rate)
    whole = pedalboard_plugin(cls, params).process(x, rate)
    return delayed(whole, x.shape[1], cls(rate, x.shape[0], params, assets=load_asset).latency)


def seconds_for(cls) -> float:
    return 1.0 if cls is Delay else 0.6  # the default delay is 0.5 s: hear an echo


# -- the plugin ------------------------------------------------------------------------


def test_every_pedalboard_effect_is_there():
    names = {cls.plugin_class.__name__ for cls in EFFECTS}
    shipped = {
        name
        for name in dir(pedalboard)
        if isinstance(getattr(pedalboard, name), type)
        and issubclass(getattr(pedalboard, name), pedalboard.Plugin)
        and not name.startswith("_")
    }
    not_effects = {
        "Plugin",
        "PluginContainer",
        "Chain",
        "Mix",
        "Pedalboard",
        "ExternalPlugin",
        "VST3Plugin",
        "AudioUnitPlugin",
        "IIRFilter",
    }
    assert shipped - not_effects == names
    assert sorted(OTHER) == sorted(cls.name for cls in EFFECTS)
    assert len({cls.name for cls in EFFECTS}) == len(EFFECTS)


def test_the_hook_returns_every_effect_and_the_entry_point_finds_it():
    (point,) = [p for p in entry_points(group="fxhost") if p.name == "pedalboard"]
    module = point.load()
    assert module.fxhost_effects() == list(EFFECTS) == fxhost_pedalboard.fxhost_effects()
    assert EFFECTS[0] is Reverb


@pytest.mark.parametrize("cls", EFFECTS, ids=lambda c: c.name)
def test_well_formed_with_valid_presets(cls):
    assert effect_class_problems(cls) == []
    for name in cls.presets:
        effect = cls(48000, 2, cls.preset(name), assets=load_asset)
        out = process_blocks(effect, material(2, 48000, 0.3), 4096)
        assert np.isfinite(out).all(), name


def test_the_presets_producers_expect():
    assert set(Reverb.presets) >= {"small-room", "plate", "hall", "cathedral"}
    assert set(Compressor.presets) >= {"gentle", "vocal", "limiter-ish"}
    assert set(Delay.presets) >= {"slapback", "eighth"}
    assert LadderFilter.presets
    assert Delay.preset("eighth", {"mix": 0.5}).mix == 0.5
    assert Delay.preset("eighth").delay_seconds == 0.25
    tails = [
        Reverb(48000, 2, Reverb.preset(name)).tail_seconds for name in ("small-room", "hall", "cathedral")
    ]
    assert tails == sorted(tails)


# -- equality with pedalboard ------------------------------------------------------------


@pytest.mark.parametrize("rate", [44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("which", ["defaults", "other"])
@pytest.mark.parametrize("cls", EFFECTS, ids=lambda c: c.name)
def test_equals_pedalboard(cls, which, channels, rate):
    params = OTHER[cls.name] if which == "other" else {}
    x = material(channels, rate, seconds_for(cls))
    effect = cls(rate, channels, params, assets=load_asset)
    out = process_blocks(effect, x, RAGGED)
    assert out.dtype == np.float32 and out.shape == x.shape
    expected = expected_output(cls, params, x, rate)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
    # The comparison is not vacuous: with the other parameters the effect changes the
    # sound, and something audible comes out after its latency.
    if which == "other":
        assert np.abs(expected - delayed(x, x.shape[1], effect.latency)).max() > 1e-3
    assert np.abs(out[:, effect.latency :]).max() > 1e-3


@pytest.mark.parametrize(
    "cls", [Reverb, Chorus, BrickwallLimiter, Resample, GSMFullRateCompressor], ids=lambda c: c.name
)
def test_more_than_two_channels_run_as_stereo_pairs(cls):
    x = material(3, 48000, 0.4)
    params = OTHER[cls.name]
    out = process_blocks(cls(48000, 3, params), x, RAGGED)
    np.testing.assert_allclose(out[:2], expected_output(cls, params, x[:2], 48000), atol=1e-6)
    np.testing.assert_allclose(out[2:], expected_output(cls, params, x[2:], 48000), atol=1e-6)


def test_defaults_are_pedalboards():
    """Every default is a fresh pedalboard instance's attribute value (which pedalboard
    stores in float32: 0.33 reads 0.33000001...)."""
    for cls in EFFECTS:
        fresh = pedalboard_plugin(cls, {"impulse_response": "room.wav"} if cls is Convolution else {})
        defaults = cls.Params()
        for field in cls.Params.__struct_fields__:
            if field == "impulse_response":
                assert defaults.impulse_response == ""
                continue
            value = getattr(fresh, field)
            ours = getattr(defaults, field)
            if isinstance(ours, bool):
                assert ours is value, (cls.name, field)
            elif isinstance(ours, str):
                assert value.name == ours, (cls.name, field)
            else:
                assert ours == pytest.approx(value, abs=1e-7), (cls.name, field)


#: (effect, field, lowest, highest) where pedalboard itself refuses values beyond: an
#: exclusive lower bound is given as None (pedalboard refuses 0 itself), a bound that
#: pedalboard does not have (ours is a choice) as "ours".
ENFORCED = [
    (fxhost_pedalboard.Bitcrush, "bit_depth", 0.0, 32.0),
    (BrickwallLimiter, "lookahead_ms", None, 100.0),
    (Chorus, "rate_hz", 0.0, 100.0),
    (Chorus, "mix", 0.0, 1.0),
    (Delay, "delay_seconds", 0.0, 30.0),
    (Delay, "feedback", 0.0, 1.0),
    (Delay, "mix", 0.0, 1.0),
    (LadderFilter, "resonance", 0.0, 1.0),
    (PitchShift, "semitones", -72.0, 72.0),
    (fxhost_pedalboard.HighShelfFilter, "cutoff_frequency_hz", None, "ours"),
    (Compressor, "ratio", 1.0, "ours"),
    (LadderFilter, "drive", 1.0, "ours"),
    (BrickwallLimiter, "release_ms", None, "ours"),
    (MP3Compressor, "vbr_quality", 0.0, "ours"),  # 10 in pedalboard, 9.999 in LAME: below
]


@pytest.mark.parametrize(
    ("cls", "field", "lowest", "highest"), ENFORCED, ids=lambda v: str(getattr(v, "name", v))
)
def test_ranges_are_pedalboards_where_pedalboard_has_one(cls, field, lowest, highest):
    info = {f.name: f.type for f in msgspec.inspect.type_info(cls.Params).fields}[field].type
    if lowest is None:
        # Above 0, as float32 sees it: a double like 1e-300 would reach pedalboard as 0.
        assert info.ge == float(np.nextafter(np.float32(0), np.float32(1))) and info.gt is None
        with pytest.raises((ValueError, RuntimeError)):
            cls.plugin_class(**{field: 0.0})
    else:
        assert info.ge == lowest
        cls.plugin_class(**{field: lowest})
        with pytest.raises((ValueError, RuntimeError)):
            cls.plugin_class(**{field: lowest - 0.01})
    if highest != "ours":
        assert info.le == highest
        cls.plugin_class(**{field: highest})
        with pytest.raises((ValueError, RuntimeError)):
            cls.plugin_class(**{field: highest + 0.01})


def test_mp3_quality_stops_where_lame_does():
    # pedalboard's setter accepts 10, but LAME refuses anything above 9.999 when the
    # encoder starts: 9.999 is the real worst quality.
    x = noise(2, 4096)
    pedalboard.MP3Compressor(vbr_quality=9.999).process(x, 48000)
    with pytest.raises(ValueError, match="variable bit rate quality"):
        pedalboard.MP3Compressor(vbr_quality=10.0).process(x, 48000)
    with pytest.raises(FieldError) as error:
        MP3Compressor(48000, 2, {"vbr_quality": 10.0})
    assert error.value.path == "params.vbr_quality"
    with pytest.raises(FieldError) as error:
        MP3Compressor(96000, 2)
    assert error.value.path == "sample_rate"


# -- refusals --------------------------------------------------------------------------


def bad_values(cls) -> list[tuple[str, Any]]:
    cases = []
    for f in msgspec.inspect.type_info(cls.Params).fields:
        meta = f.type
        t = meta.type if isinstance(meta, msgspec.inspect.Metadata) else meta
        if isinstance(t, msgspec.inspect.FloatType):
            if t.ge is not None:
                cases.append((f.name, t.ge - max(1.0, abs(t.ge)) * 0.01))
            if t.gt is not None:
                cases.append((f.name, t.gt))
            cases.append((f.name, t.le + max(1.0, abs(t.le)) * 0.01))
            cases.append((f.name, "loud"))
        elif isinstance(t, msgspec.inspect.LiteralType):
            cases.append((f.name, "lpf12" if cls is LadderFilter else "best"))
        elif isinstance(t, msgspec.inspect.BoolType):
            cases.append((f.name, "yes"))
        elif isinstance(t, msgspec.inspect.StrType):
            cases.append((f.name, 7))
    return cases


@pytest.mark.parametrize("cls", EFFECTS, ids=lambda c: c.name)
def test_out_of_range_is_refused_with_the_field_named(cls):
    cases = [*bad_values(cls), ("volume", 1.0)]
    for field, value in cases:
        with pytest.raises(FieldError) as error:
            cls(48000, 2, {field: value}, assets=load_asset)
        assert error.value.path == f"params.{field}", (field, value, str(error.value))
        effect = cls(48000, 2, OTHER[cls.name], assets=load_asset)
        with pytest.raises(FieldError) as error:
            effect.set_params({**OTHER[cls.name], field: value})
        assert error.value.path == f"params.{field}"
        assert msgspec.to_builtins(effect.params) == {**msgspec.to_builtins(cls.Params()), **OTHER[cls.name]}


def test_every_numeric_parameter_is_bounded_described_and_has_a_unit_or_is_a_ratio():
    for cls in EFFECTS:
        schema = msgspec.json.schema(cls.Params)
        props = (
            next(iter(schema["$defs"].values()))["properties"] if "$defs" in schema else schema["properties"]
        )
        for name, prop in props.items():
            assert prop.get("description"), (cls.name, name)
            if prop.get("type") == "number":
                assert "minimum" in prop or "exclusiveMinimum" in prop, (cls.name, name)
                assert "maximum" in prop, (cls.name, name)
            if name.endswith("_hz"):
                assert (prop["x-unit"], prop["x-scale"]) == ("Hz", "log"), (cls.name, name)
            if name.endswith("_ms"):
                assert (prop["x-unit"], prop["x-scale"]) == ("ms", "log"), (cls.name, name)
            if name.endswith("_db"):
                assert prop["x-unit"] == "dB", (cls.name, name)


# -- live changes, restarts, reset ---------------------------------------------------------


def test_a_live_change_equals_pedalboard_changed_at_the_same_point():
    rate, at = 48000, 12000
    x = material(2, rate, 0.6)
    before, after = (
        OTHER["compressor"],
        {"threshold_db": -30.0, "ratio": 12.0, "attack_ms": 0.5, "release_ms": 20.0},
    )
    plugin = pedalboard.Compressor(**before)
    first = plugin.process(x[:, :at], rate, reset=False)
    for name, value in after.items():
        setattr(plugin, name, value)
    expected = np.concatenate([first, plugin.process(x[:, at:], rate, reset=False)], axis=1)
    effect = Compressor(rate, 2, before)
    one = process_blocks(effect, x[:, :at], [1] * 30 + [7, 513, 4096, 2])
    effect.set_params(after)
    two = process_blocks(effect, x[:, at:], [3, 9000, 1, 33])
    np.testing.assert_allclose(np.concatenate([one, two], axis=1), expected, atol=1e-6)


def test_a_live_change_of_a_fixed_block_effect_applies_from_its_next_internal_block():
    rate, at = 48000, 40 * 256
    x = material(2, rate, 0.6)
    before, after = OTHER["chorus"], {"rate_hz": 0.5, "depth": 0.2, "mix": 0.3}
    plugin = pedalboard.Chorus(**before)
    first = plugin.process(x[:, :at], rate, reset=False)
    for name, value in after.items():
        setattr(plugin, name, value)
    whole = np.concatenate([first, plugin.process(x[:, at:], rate, reset=False)], axis=1)
    effect = Chorus(rate, 2, before)
    one = process_blocks(effect, x[:, :at], [1] * 30 + [7, 513, 2])
    effect.set_params({**before, **after})
    two = process_blocks(effect, x[:, at:], [3, 9000, 1, 33])
    out = np.concatenate([one, two], axis=1)
    np.testing.assert_allclose(out, delayed(whole, x.shape[1], 256), atol=1e-6)


def test_a_restart_field_restarts_the_effect_with_its_new_latency():
    rate, at = 48000, 15000
    x = material(2, rate, 0.6)
    effect = BrickwallLimiter(rate, 2, OTHER["brickwall_limiter"])
    old = effect.latency
    process_blocks(effect, x[:, :at], [100, 7])
    changed = {**OTHER["brickwall_limiter"], "lookahead_ms": 10.0}
    effect.set_params(changed)
    assert effect.latency != old and effect.latency == BrickwallLimiter(rate, 2, changed).latency
    # From the change on, it sounds as a new instance would on the rest of the signal.
    rest = process_blocks(effect, x[:, at:], RAGGED)
    np.testing.assert_array_equal(rest, BrickwallLimiter(rate, 2, changed).process(x[:, at:]))
    np.testing.assert_allclose(rest, expected_output(BrickwallLimiter, changed, x[:, at:], rate), atol=1e-6)


@pytest.mark.parametrize(
    "cls", [Reverb, Chorus, BrickwallLimiter, MP3Compressor, Resample, PitchShift], ids=lambda c: c.name
)
def test_reset_sounds_like_a_fresh_instance(cls):
    x = material(2, 44100, 0.4)
    effect = cls(44100, 2, OTHER[cls.name])
    process_blocks(effect, noise(2, 9000, seed=3), [5, 4000])
    effect.reset()
    again = process_blocks(effect, x, RAGGED)
    np.testing.assert_array_equal(again, cls(44100, 2, OTHER[cls.name]).process(x))


def test_setting_the_same_values_again_changes_nothing():
    # pedalboard's resampler, codec and quality setters reset the plugin even when the
    # value is unchanged; the effect only sets what changed.
    x = material(2, 48000, 0.4)
    for cls in (Resample, MP3Compressor, GSMFullRateCompressor):
        effect = cls(48000, 2, OTHER[cls.name])
        out = []
        for start in range(0, x.shape[1], 700):
            effect.set_params(OTHER[cls.name])
            out.append(effect.process(x[:, start : start + 700]))
        np.testing.assert_array_equal(np.concatenate(out, axis=1), cls(48000, 2, OTHER[cls.name]).process(x))


# -- convolution --------------------------------------------------------------------------


@pytest.mark.parametrize("ref", ["room.wav", "mono-cab.wav"])
@pytest.mark.parametrize("channels", [1, 2])
def test_convolution_equals_pedalboard_with_the_same_array(ref, channels):
    rate = 48000  # the mono IR is at 44.1 kHz: pedalboard resamples it
    x = material(channels, rate, 0.5)
    params = {"impulse_response": ref, "mix": 0.8}
    out = process_blocks(Convolution(rate, channels, params, assets=load_asset), x, RAGGED)
    np.testing.assert_allclose(out, expected_output(Convolution, params, x, rate), atol=1e-6)
    effect = Convolution(rate, channels, params, assets=load_asset)
    audio, ir_rate = ASSETS[ref]
    assert effect.tail_seconds == pytest.approx(audio.shape[1] / ir_rate)


def test_convolution_without_an_impulse_response_passes_the_input_through():
    x = material(2, 48000, 0.3)
    effect = Convolution(48000, 2)  # no asset loader needed
    assert effect.params.impulse_response == "" and effect.latency == 0 and effect.tail_seconds == 0
    np.testing.assert_array_equal(process_blocks(effect, x, RAGGED), x)
    schema = msgspec.json.schema(Convolution.Params)
    props = next(iter(schema["$defs"].values()))["properties"]
    assert props["impulse_response"]["x-asset"] is True
    assert asset_fields(Convolution.Params) == ["impulse_response"]


def test_convolution_refuses_an_unknown_asset_and_stays_as_it_was():
    with pytest.raises(FieldError) as error:
        Convolution(48000, 2, {"impulse_response": "missing.wav"}, assets=load_asset)
    assert error.value.path == "params.impulse_response"
    with pytest.raises(FieldError) as error:
        Convolution(48000, 2, {"impulse_response": "room.wav"})  # no loader
    assert error.value.path == "params.impulse_response"
    effect = Convolution(48000, 2, {"impulse_response": "room.wav"}, assets=load_asset)
    x = material(2, 48000, 0.3)
    with pytest.raises(FieldError):
        effect.set_params({"impulse_response": "missing.wav"})
    assert effect.params.impulse_response == "room.wav"
    np.testing.assert_allclose(
        process_blocks(effect, x, 512),
        expected_output(Convolution, {"impulse_response": "room.wav"}, x, 48000),
        atol=1e-6,
    )


def test_convolution_changing_the_impulse_response_starts_a_new_convolution():
    rate, at = 48000, 9000
    x = material(2, rate, 0.5)
    effect = Convolution(rate, 2, {"impulse_response": "room.wav"}, assets=load_asset)
    process_blocks(effect, x[:, :at], [64, 1000])
    effect.set_params({"impulse_response": "mono-cab.wav", "mix": 0.5})
    rest = process_blocks(effect, x[:, at:], RAGGED)
    expected = expected_output(Convolution, {"impulse_response": "mono-cab.wav", "mix": 0.5}, x[:, at:], rate)
    np.testing.assert_allclose(rest, expected, atol=1e-6)


# -- latency and tails ------------------------------------------------------------------


def test_latencies():
    assert {
        cls.name: cls(48000, 2, assets=load_asset).latency for cls in EFFECTS if cls(48000, 2).latency
    } == {
        "brickwall_limiter": 240 + 2,  # 5 ms lookahead, and up to 2 frames gathered
        "chorus": 256,
        "phaser": 256,
        "mp3_compressor": 256 + 3481,
        "resample": 256 + 452 + 16,  # 16 frames of margin for the resamplers' rounding
        "gsm_full_rate_compressor": 4800 + 960,
        "pitch_shift": 12000 + 2400,
    }
    assert BrickwallLimiter(44100, 2, {"lookahead_ms": 100.0}).latency == 4410 + 2


@pytest.mark.parametrize(
    ("rate", "params"),
    [
        (44100, {"target_sample_rate": 8000.0}),
        (48000, {"target_sample_rate": 7919.0, "quality": "WindowedSinc"}),
        (22050, {"target_sample_rate": 16000.0, "quality": "Linear"}),
    ],
)
def test_resample_keeps_up_on_long_streams_at_odd_ratios(rate, params):
    """The latency covers what the resamplers hold back however long the stream runs
    (the output FIFO would raise otherwise), with blocks of every size."""
    effect = Resample(rate, 2, params)
    x = noise(2, 4096, seed=8)
    sizes = [1, 3, 64, 255, 256, 257, 1000, 4096]
    for i in range(round(12 * rate / 4096)):
        process_blocks(effect, x, sizes[i % len(sizes)])


def test_tails_follow_the_parameters():
    assert Delay(48000, 2, {"delay_seconds": 0.25, "feedback": 0.0}).tail_seconds == pytest.approx(
        0.25, abs=1e-4
    )
    assert Delay(48000, 2, {"delay_seconds": 0.25, "feedback": 1.0}).tail_seconds == math.inf
    assert Delay(48000, 2, {"delay_seconds": 0.25, "mix": 0.0}).tail_seconds == 0.0
    assert Delay(48000, 2, {"delay_seconds": 0.0}).tail_seconds == 0.0
    assert Chorus(48000, 2, {"feedback": -1.0}).tail_seconds == math.inf
    # A first-order low-pass at 1 Hz decays by e every 1/(2 pi) s: ln(1000) / (2 pi) s.
    low = fxhost_pedalboard.LowpassFilter(48000, 2, {"cutoff_frequency_hz": 1.0}).tail_seconds
    assert low == pytest.approx(math.log(1000) / (2 * math.pi), rel=0.02)
    narrow = fxhost_pedalboard.PeakFilter(
        48000, 2, {"cutoff_frequency_hz": 100.0, "gain_db": 12.0, "q": 30.0}
    )
    wide = fxhost_pedalboard.PeakFilter(48000, 2, {"cutoff_frequency_hz": 100.0, "gain_db": 12.0, "q": 0.5})
    assert narrow.tail_seconds > 5 * wide.tail_seconds > 0
    assert LadderFilter(48000, 2, {"resonance": 0.95}).tail_seconds > LadderFilter(48000, 2).tail_seconds


@pytest.mark.parametrize(
    ("cls", "params"),
    [
        (Delay, {"delay_seconds": 0.02, "feedback": 0.9, "mix": 1.0}),
        (Chorus, {"centre_delay_ms": 40.0, "depth": 1.0, "feedback": 0.9, "mix": 1.0}),
        (fxhost_pedalboard.Phaser, {"centre_frequency_hz": 20.0, "depth": 0.0, "feedback": 0.95, "mix": 1.0}),
        (fxhost_pedalboard.PeakFilter, {"cutoff_frequency_hz": 60.0, "gain_db": 24.0, "q": 20.0}),
        (LadderFilter, {"mode": "LPF24", "cutoff_hz": 80.0, "resonance": 0.9}),
        (fxhost_pedalboard.HighpassFilter, {"cutoff_frequency_hz": 5.0}),
    ],
    ids=lambda v: getattr(v, "name", ""),
)
def test_the_tail_covers_the_worst_case_input(cls, params):
    """Full-scale DC then an impulse, then silence: below -60 dBFS once latency + tail
    have passed."""
    rate = 48000
    effect = cls(rate, 1, params)
    tail = effect.tail_seconds
    assert 0 < tail < 30
    x = np.ones((1, rate), np.float32)
    x[0, -1] = -1.0
    silence = np.zeros((1, effect.latency + round((tail + 0.05) * rate)), np.float32)
    after = process_blocks(effect, np.concatenate([x, silence], axis=1), 4096)[:, rate:]
    assert np.abs(after[:, effect.latency + round(tail * rate) :]).max() < 1e-3
