"""The conformance validator on offline-only effects, presets and asset parameters:
correct effects that must pass, broken ones that must fail the right check with words
that name the problem."""

from __future__ import annotations

from typing import Annotated, ClassVar

import numpy as np
import pytest
from fxhost_sdk import Effect, FieldError, LoadedAudio, OfflineEffect, Params, asset, param
from fxhost_sdk.testing import (
    INPUT_RULE,
    TEST_ASSET_SECONDS,
    ConformanceError,
    check_effect,
    make_test_asset_loader,
    validate_effect,
)
from reportkit import detail, names

FAST = {"seconds": 0.237}

STREAMING_ONLY = [
    "shapes_and_dtypes",
    "block_size_invariance",
    "finite_output",
    "reset_determinism",
    "instances_independent",
    "latency_measured",
    "tail_decays",
    "param_changes",
]
OFFLINE_CHECKS = [
    "offline_refuses_process",
    "offline_shapes_and_dtypes",
    "offline_finite_output",
    "offline_deterministic",
]


# -- offline-only effects -------------------------------------------------------------


class Reverse(OfflineEffect):
    """Plays the signal backwards, with a gain: it needs the whole signal."""

    name = "reverse"
    version = "1.0.0"
    summary = "Plays the signal backwards."

    class Params(Params):
        gain_db: Annotated[float, param(description="Gain", ge=-60, le=12, unit="dB")] = 0.0

    def process_offline(self, audio):
        gain = 10 ** (self.params.gain_db / 20)
        return np.ascontiguousarray(audio[:, ::-1] * np.float32(gain), dtype=np.float32)


class Trim(OfflineEffect):
    """Keeps the loud middle: its output is shorter than its input."""

    name = "trim"
    version = "1.0.0"
    summary = "Drops quiet frames at both ends."

    class Params(Params):
        threshold: Annotated[float, param(description="Level", ge=0, le=1)] = 0.01

    def process_offline(self, audio):
        loud = np.flatnonzero(np.abs(audio).max(axis=0) >= self.params.threshold)
        if loud.size == 0:
            return np.zeros((audio.shape[0], 0), np.float32)
        return np.array(audio[:, loud[0] : loud[-1] + 1], dtype=np.float32, order="C")


@pytest.mark.parametrize("cls", [Reverse, Trim], ids=lambda c: c.name)
def test_correct_offline_effects_pass(cls):
    report = validate_effect(cls, **FAST)
    assert report.passed, str(report)
    assert (
        [c.name for c in report.checks]
        == [
            "well_formed",
            "defaults_validate",
            "params_described",
            "bad_params_refused",
            "shapes_and_dtypes",
            "input_untouched",  # the one input rule, for offline effects too
            *STREAMING_ONLY[1:5],
            "latency_and_tail",
            *STREAMING_ONLY[5:],
            "realtime",
            *OFFLINE_CHECKS,
        ]
    )


def test_streaming_checks_are_reported_not_applicable_with_the_reason():
    report = check_effect(Reverse, **FAST)
    for name in STREAMING_ONLY:
        check = next(c for c in report.checks if c.name == name)
        assert check.passed
        assert check.detail.startswith("not applicable: offline-only effect — "), check.detail
        assert "whole signal" in check.detail
    text = str(report)
    assert text.count("not applicable: offline-only effect") == len(STREAMING_ONLY)
    # The checks that apply to any effect really ran.
    assert "refused with FieldError naming the field" in detail(report, "bad_params_refused")
    assert "latency 0 frames" in detail(report, "latency_and_tail")
    assert "RuntimeError" in detail(report, "offline_refuses_process")


def test_a_length_change_is_a_note_not_a_failure():
    x = np.zeros((2, 100), np.float32)
    x[:, 40:60] = 0.5
    assert Trim(48000, 2).process_offline(x).shape == (2, 20)
    report = check_effect(Trim, params={"threshold": 0.3}, **FAST)
    assert report.passed, str(report)
    assert "changes the length" in detail(report, "offline_shapes_and_dtypes")


class Float64Out(Reverse):
    name = "float64_out"

    def process_offline(self, audio):
        return audio[:, ::-1].astype(np.float64)


class Downmix(Reverse):
    name = "downmix"

    def process_offline(self, audio):
        return np.ascontiguousarray(audio.mean(axis=0, keepdims=True).repeat(1, axis=0))


class NotContiguous(Reverse):
    name = "not_contiguous"

    def process_offline(self, audio):
        return audio.copy()[:, ::-1]  # a view with a negative stride


class InPlace(Reverse):
    name = "in_place"

    def process_offline(self, audio):
        audio *= np.float32(0.5)
        return audio.copy()


class Noisy(Reverse):
    name = "noisy"

    def process_offline(self, audio):
        dither = np.random.default_rng().uniform(-1e-3, 1e-3, audio.shape)
        return (audio + dither).astype(np.float32)


class Counting(Reverse):
    """Deterministic across instances, but each call is louder than the one before."""

    name = "counting"

    def prepare(self):
        self.calls = 0

    def process_offline(self, audio):
        self.calls += 1
        return (audio * np.float32(self.calls)).astype(np.float32)


class Streams(Reverse):
    name = "streams"

    def process(self, block):
        return block.copy()


class VagueRefusal(Reverse):
    name = "vague_refusal"

    def process(self, block):
        raise RuntimeError("nope")


class NaNOnSilence(Reverse):
    name = "nan_on_silence"

    def process_offline(self, audio):
        peak = np.abs(audio).max() if audio.size else 1.0
        with np.errstate(invalid="ignore", divide="ignore"):
            return (audio / peak).astype(np.float32)


def test_float64_output_fails_offline_shapes():
    report = check_effect(Float64Out, **FAST)
    assert names(report) == ["offline_shapes_and_dtypes"]
    text = detail(report, "offline_shapes_and_dtypes")
    assert "dtype float64 (must be float32" in text
    assert "mono, 0 frame(s)" in text and "stereo, the test signal" in text


def test_changing_the_channel_count_fails():
    report = check_effect(Downmix, **FAST)
    assert "offline_shapes_and_dtypes" in names(report)
    assert "with the input's 2 channel(s)" in detail(report, "offline_shapes_and_dtypes")
    # the other offline checks cannot use the output either, and say why
    assert "offline_deterministic" in names(report)
    assert "it must return (2, frames)" in detail(report, "offline_deterministic")
    assert "mono" not in detail(report, "offline_deterministic")  # a mono downmix is fine


def test_non_contiguous_output_fails_offline_shapes():
    report = check_effect(NotContiguous, **FAST)
    assert names(report) == ["offline_shapes_and_dtypes"]
    assert "not C-contiguous" in detail(report, "offline_shapes_and_dtypes")


def test_modifying_the_input_in_place_fails_input_untouched_like_a_streaming_effect():
    report = check_effect(InPlace, **FAST)
    assert names(report) == ["input_untouched"]
    text = detail(report, "input_untouched")
    assert "process_offline modified its input in place" in text
    assert INPUT_RULE in text  # the same rule as for process (test_validator.py)
    assert "stereo" in text and "mono" in text
    assert "Reproduce:" in text and "fx.process_offline(block)" in text


def test_non_deterministic_output_fails_offline_deterministic():
    report = check_effect(Noisy, **FAST)
    # bad_params_refused compares a fresh instance with one after a refused set_params
    assert names(report) == ["bad_params_refused", "offline_deterministic"]
    text = detail(report, "offline_deterministic")
    assert "two instances give different output" in text
    assert "not deterministic" in text


def test_state_kept_between_calls_fails_offline_deterministic():
    report = check_effect(Counting, **FAST)
    assert names(report) == ["offline_deterministic"]
    text = detail(report, "offline_deterministic")
    assert "second process_offline call on the same instance" in text
    assert "keep no state" in text
    assert "two instances" not in text


def test_process_that_does_not_refuse_fails_offline_refuses_process():
    report = check_effect(Streams, **FAST)
    assert names(report) == ["offline_refuses_process"]
    text = detail(report, "offline_refuses_process")
    assert "instead of refusing" in text and "must raise in process()" in text


def test_a_refusal_that_does_not_say_why_fails():
    report = check_effect(VagueRefusal, **FAST)
    assert names(report) == ["offline_refuses_process"]
    assert "RuntimeError: 'nope', which does not say why" in detail(report, "offline_refuses_process")


def test_non_finite_output_on_silence_fails_offline_finite_output():
    report = check_effect(NaNOnSilence, **FAST)
    assert names(report) == ["offline_finite_output"]
    text = detail(report, "offline_finite_output")
    assert "frames of silence: the output has NaN" in text


def test_validate_effect_raises_for_a_broken_offline_effect():
    with pytest.raises(ConformanceError, match="input_untouched"):
        validate_effect(InPlace, **FAST)


def test_offline_effects_never_stream_in_the_validator():
    calls = []

    class Recorder(Reverse):
        name = "recorder"

        def process(self, block):
            calls.append(block.shape)
            return super().process(block)

    report = check_effect(Recorder, **FAST)
    assert report.passed, str(report)
    assert calls == [(2, 64), (1, 64)]  # offline_refuses_process only


# -- presets --------------------------------------------------------------------------


class Gain(Effect):
    name = "gain"
    version = "1.0.0"
    summary = "Changes the level."
    presets: ClassVar[dict[str, dict[str, float]]] = {"quiet": {"gain_db": -20.0}, "loud": {"gain_db": 6.0}}

    class Params(Params):
        gain_db: Annotated[float, param(description="Gain", ge=-60, le=24, unit="dB")] = 0.0

    def apply_params(self, params):
        self.gain = np.float32(10 ** (params.gain_db / 20))

    def process(self, block):
        with np.errstate(invalid="ignore", over="ignore"):
            return block * self.gain


def test_effects_with_presets_get_presets_valid():
    report = validate_effect(Gain, **FAST)
    assert report.checks[-1].name == "presets_valid"
    assert "2 preset(s) ('loud', 'quiet')" in report.checks[-1].detail
    offline = validate_effect(type("ReversePresets", (Reverse,), {"presets": {"soft": {"gain_db": -6.0}}}))
    assert [c.name for c in offline.checks[-2:]] == ["offline_deterministic", "presets_valid"]


class BrokenPreset(Gain):
    name = "broken_preset"
    presets: ClassVar[dict[str, dict[str, float]]] = {"fine": {"gain_db": 0.0}, "broken": {"gain_db": 24.0}}

    def apply_params(self, params):
        super().apply_params(params)
        if params.gain_db == 24.0:
            self.gain = np.float32(np.inf)


class CrashingPreset(Gain):
    name = "crashing_preset"
    presets: ClassVar[dict[str, dict[str, float]]] = {"crash": {"gain_db": -60.0}}

    def apply_params(self, params):
        if params.gain_db == -60.0:
            raise ValueError("cannot go that low")
        super().apply_params(params)


def test_a_preset_with_non_finite_output_fails_presets_valid():
    report = check_effect(BrokenPreset, **FAST)
    assert "presets_valid" in names(report)
    text = detail(report, "presets_valid")
    assert "preset 'broken': the output has NaN and Inf" in text
    assert "'fine'" not in text


def test_a_preset_that_cannot_build_an_instance_fails_presets_valid():
    report = check_effect(CrashingPreset, **FAST)
    assert names(report) == ["presets_valid"]
    assert "preset 'crash'" in detail(report, "presets_valid")
    assert "ValueError: cannot go that low" in detail(report, "presets_valid")


def test_an_invalid_preset_is_caught_by_well_formed():
    class OutOfRange(Gain):
        name = "out_of_range"
        presets: ClassVar[dict[str, dict[str, float]]] = {"too_loud": {"gain_db": 100.0}}

    report = check_effect(OutOfRange, **FAST)
    assert names(report) == ["well_formed"]
    assert "presets['too_loud'] is invalid" in report.checks[0].detail


# -- asset parameters -----------------------------------------------------------------


def load_ir(effect: Effect, params: Params) -> LoadedAudio:
    """What ``effect.load_asset("ir")`` returns inside ``apply_params(params)``, spelled
    out so that the broken test effects can load the wrong value on purpose."""
    if effect.assets is None:
        raise FieldError("params.ir", "this host gave the effect no way to load audio assets")
    return effect.assets(params.ir, "params.ir")


class IRGain(Effect):
    """A streaming effect whose gain is the peak of an impulse response asset."""

    name = "ir_gain"
    version = "1.0.0"
    summary = "Scales by an impulse response's peak."

    class Params(Params):
        ir: Annotated[str, asset(description="Impulse response")] = "default-ir"
        mix: Annotated[float, param(description="Mix", ge=0, le=1)] = 1.0

    def apply_params(self, params):
        loaded = load_ir(self, params)
        self.gain = np.float32(np.abs(loaded.audio).max() * params.mix)

    def process(self, block):
        return (block * self.gain).astype(np.float32)


class Convolver(OfflineEffect):
    """An offline convolution with an impulse response asset, cut to the input's length."""

    name = "convolver"
    version = "1.0.0"
    summary = "Convolves with an impulse response."

    class Params(Params):
        ir: Annotated[str, asset(description="Impulse response")] = "default-ir"

    def apply_params(self, params):
        self.ir = load_ir(self, params).audio

    def process_offline(self, audio):
        out = np.zeros_like(audio)
        if audio.shape[1] == 0:  # np.convolve refuses empty arrays (the validator found this)
            return out
        for c in range(audio.shape[0]):
            kernel = self.ir[c % self.ir.shape[0]]
            out[c] = np.convolve(audio[c], kernel)[: audio.shape[1]]
        return out


def recording_loader(calls: list):
    builtin = make_test_asset_loader(48000)

    def load(value: str, path: str) -> LoadedAudio:
        calls.append((value, path))
        return builtin(value, path)

    return load


@pytest.mark.parametrize("cls", [IRGain, Convolver], ids=lambda c: c.name)
def test_the_given_loader_is_used(cls):
    calls: list = []
    report = validate_effect(cls, assets=recording_loader(calls), **FAST)
    assert report.checks[-1].name == "bad_asset_refused"
    assert calls and {path for _, path in calls} == {"params.ir"}
    assert {value for value, _ in calls} == {"default-ir"}  # the refused value never reaches it
    assert "loader given to check_effect" in detail(report, "bad_asset_refused")
    assert "built-in" not in str(report)


@pytest.mark.parametrize("cls", [IRGain, Convolver], ids=lambda c: c.name)
def test_without_a_loader_the_builtin_test_loader_is_used_and_reported(cls):
    report = validate_effect(cls, params={"ir": "room.wav"}, **FAST)
    for name in ("defaults_validate", "bad_asset_refused"):
        text = detail(report, name)
        assert "no asset loader was given" in text and "built-in test loader" in text, text
        assert "make_test_asset_loader" in text and "48000 Hz" in text
    assert "with no asset loader, construction is refused: FieldError params.ir" in detail(
        report, "bad_asset_refused"
    )


def test_effects_without_assets_have_no_asset_check_or_note():
    report = validate_effect(Reverse, **FAST)
    assert "bad_asset_refused" not in [c.name for c in report.checks]
    assert "asset" not in str(report)


def test_the_builtin_loader_is_a_deterministic_decaying_stereo_burst():
    load = make_test_asset_loader(44100)
    first = load("hall", "params.ir")
    assert first.sample_rate == 44100.0
    audio = first.audio
    assert audio.dtype == np.float32 and audio.flags.c_contiguous
    assert audio.shape == (2, round(TEST_ASSET_SECONDS * 44100))
    assert np.array_equal(audio, load("hall", "params.other").audio)
    assert not np.array_equal(audio, load("plate", "params.ir").audio)
    assert 0.3 < np.abs(audio[:, :100]).max() <= 0.5
    assert np.abs(audio[:, -100:]).max() < 2e-3  # about -60 dB at its end


class SwallowsErrors(IRGain):
    """Falls back to silence when the loader refuses: hides a missing asset."""

    name = "swallows_errors"

    def apply_params(self, params):
        try:
            super().apply_params(params)
        except FieldError:
            self.gain = np.float32(0.0)


class LoadsLazily(IRGain):
    """Loads its asset in process(), too late to refuse it when the params are set."""

    name = "loads_lazily"

    def apply_params(self, params):
        self.gain = None

    def process(self, block):
        if self.gain is None:
            self.gain = np.float32(np.abs(load_ir(self, self.params).audio).max())
        return (block * self.gain).astype(np.float32)


class WrongPath(IRGain):
    name = "wrong_path"

    def apply_params(self, params):
        try:
            super().apply_params(params)
        except FieldError as error:
            raise FieldError("ir", error.message) from None


class CallsLoaderDirectly(IRGain):
    """Calls self.assets itself: a TypeError when the host gives no loader."""

    name = "calls_loader_directly"

    def apply_params(self, params):
        self.gain = np.float32(np.abs(self.assets(params.ir, "params.ir").audio).max())


def test_a_refused_asset_that_is_swallowed_fails_bad_asset_refused():
    report = check_effect(SwallowsErrors, **FAST)
    assert names(report) == ["bad_asset_refused"]
    text = detail(report, "bad_asset_refused")
    assert "was accepted although the loader refuses that asset" in text
    assert "set_params({..., 'ir': '__fxhost_validator_missing_asset__'}) was accepted" in text


def test_an_asset_loaded_too_late_fails_bad_asset_refused():
    report = check_effect(LoadsLazily, **FAST)
    assert names(report) == ["bad_asset_refused"]
    assert "load it in apply_params (self.load_asset('ir'))" in detail(report, "bad_asset_refused")


def test_a_refusal_that_does_not_name_the_field_fails_bad_asset_refused():
    report = check_effect(WrongPath, **FAST)
    assert names(report) == ["bad_asset_refused"]
    assert "raised FieldError with path 'ir', which does not name params.ir" in detail(
        report, "bad_asset_refused"
    )


def test_no_loader_must_give_a_field_error_not_a_crash():
    report = check_effect(CallsLoaderDirectly, **FAST)
    assert names(report) == ["bad_asset_refused"]
    text = detail(report, "bad_asset_refused")
    assert "with no asset loader (a host that cannot load audio)" in text
    assert "raised TypeError" in text and "must raise FieldError naming the asset parameter" in text


def test_a_refused_asset_surfaces_as_field_error_from_the_sdk():
    def refusing(value, path):
        raise FieldError(path, f"no asset {value!r}")

    with pytest.raises(FieldError) as error:
        IRGain(48000, 2, {"ir": "gone"}, assets=refusing)
    assert error.value.path == "params.ir"


class DocumentedIRGain(IRGain):
    """Loads its asset exactly as the SDK documents: ``self.load_asset`` in apply_params."""

    name = "documented_ir_gain"

    def apply_params(self, params):
        self.gain = np.float32(np.abs(self.load_asset("ir").audio).max() * params.mix)


def test_load_asset_in_apply_params_during_set_params():
    values: list = []
    fx = DocumentedIRGain(48000, 2, {"ir": "a"}, assets=recording_loader(values))
    fx.set_params({"ir": "b"})
    assert [value for value, _ in values] == ["a", "b"]
    validate_effect(DocumentedIRGain, **FAST)


def test_the_validator_reports_an_asset_change_that_loads_the_old_asset():
    """Whatever the SDK does, an effect that keeps the old asset on a change is caught."""

    class KeepsOld(IRGain):
        name = "keeps_old"

        def apply_params(self, params):
            if not hasattr(self, "gain"):  # loads its asset once and ignores later changes
                self.gain = np.float32(np.abs(load_ir(self, params).audio).max())

    report = check_effect(KeepsOld, **FAST)
    assert names(report) == ["bad_asset_refused"]
    assert "set_params({..., 'ir': '__fxhost_validator_missing_asset__'}) was accepted" in detail(
        report, "bad_asset_refused"
    )
