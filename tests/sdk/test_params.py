"""The SDK's parameter contract: convert/FieldError paths, param() schema hints,
Effect construction and set_params, and effect_class_problems."""

from __future__ import annotations

import math
from typing import Annotated

import msgspec
import numpy as np
import pluggy
import pytest
from fxhost_sdk import Effect, FieldError, Params, hookimpl, param
from fxhost_sdk.host import convert, effect_class_problems
from fxhost_sdk.host import hookspecs as hookspecs_module


class ReverbParams(Params):
    room_size: Annotated[float, param(description="Room size", ge=0, le=1)] = 0.5
    damping: Annotated[float, param(description="Damping", ge=0, le=1)] = 0.5


class Step(msgspec.Struct, forbid_unknown_fields=True):
    effect: str
    params: ReverbParams = msgspec.field(default_factory=ReverbParams)


class Chain(msgspec.Struct, forbid_unknown_fields=True):
    steps: list[Step]


def chain(second_params: dict) -> dict:
    return {"steps": [{"effect": "gain"}, {"effect": "reverb", "params": second_params}]}


def refused(value, target, path="") -> FieldError:
    with pytest.raises(FieldError) as error:
        convert(value, target, path)
    return error.value


# -- convert and FieldError ---------------------------------------------------------


def test_out_of_range_value_names_the_nested_path():
    error = refused(chain({"room_size": 2}), Chain, "chains.vocal")
    assert error.path == "chains.vocal.steps[1].params.room_size"
    assert error.message == "Expected float <= 1.0"
    assert str(error) == "chains.vocal.steps[1].params.room_size: Expected float <= 1.0"
    assert isinstance(error, ValueError)


def test_nested_path_without_prefix_has_no_leading_dot():
    assert refused(chain({"room_size": 2}), Chain).path == "steps[1].params.room_size"
    assert refused(chain({"size": 2}), Chain).path == "steps[1].params.size"
    assert refused({"steps": [{}]}, Chain).path == "steps[0].effect"


def test_unknown_field_is_named_with_its_path():
    error = refused(chain({"room_sise": 0.3}), Chain, "chains.vocal")
    assert error.path == "chains.vocal.steps[1].params.room_sise"
    assert error.message == "unknown field"
    assert refused({"bogus": 1}, ReverbParams).path == "bogus"
    assert refused({"bogus": 1}, ReverbParams, "params").path == "params.bogus"


def test_missing_required_field_is_named():
    error = refused({"steps": [{"params": {}}]}, Chain, "chain")
    assert error.path == "chain.steps[0].effect"
    assert error.message == "required field missing"
    error = refused({}, Chain, "body")
    assert (error.path, error.message) == ("body.steps", "required field missing")


def test_wrong_type_is_named_and_backticks_are_dropped():
    error = refused(chain({"damping": "high"}), Chain, "chain")
    assert error.path == "chain.steps[1].params.damping"
    assert error.message == "Expected float, got str"
    error = refused({"room_size": True}, ReverbParams, "params")
    assert (error.path, error.message) == ("params.room_size", "Expected float, got bool")
    error = refused("loud", ReverbParams, "params")
    assert (error.path, error.message) == ("params", "Expected object, got str")


def test_strictness_and_struct_input():
    with pytest.raises(FieldError):
        convert({"room_size": "0.25"}, ReverbParams)
    assert convert({"room_size": "0.25"}, ReverbParams, strict=False).room_size == 0.25
    assert convert({"room_size": 1}, ReverbParams).room_size == 1.0  # int for float is fine
    given = ReverbParams(room_size=0.9)
    assert convert(given, ReverbParams) == given
    assert convert(given, ReverbParams) is not given


def test_params_are_frozen_and_refuse_unknown_fields():
    p = ReverbParams()
    with pytest.raises(AttributeError):
        p.room_size = 1.0  # type: ignore[misc]
    assert msgspec.inspect.type_info(ReverbParams).forbid_unknown_fields


# -- param() ------------------------------------------------------------------------


def test_param_puts_unit_scale_and_bounds_into_the_json_schema():
    class P(Params):
        cutoff: Annotated[
            float, param(description="Cutoff frequency", ge=20, le=20000, unit="Hz", scale="log")
        ] = 1000.0
        mix: Annotated[float, param(description="Wet share", ge=0, le=1)] = 1.0

    props = msgspec.json.schema(P)["$defs"]["P"]["properties"]
    assert props["cutoff"] == {
        "description": "Cutoff frequency",
        "x-unit": "Hz",
        "x-scale": "log",
        "type": "number",
        "minimum": 20,
        "maximum": 20000,
        "default": 1000.0,
    }
    assert props["mix"]["x-scale"] == "linear"
    assert "x-unit" not in props["mix"]
    schema = msgspec.json.schema(P)["$defs"]["P"]
    assert schema["additionalProperties"] is False
    (cutoff, _) = msgspec.inspect.type_info(P).fields
    assert cutoff.type.extra == {"scale": "log", "unit": "Hz"}


def test_param_bounds_are_enforced():
    class P(Params):
        gain: Annotated[float, param(description="Gain", ge=-60, le=24)] = 0.0

    assert convert({"gain": -60}, P).gain == -60
    assert convert({"gain": 24}, P).gain == 24
    assert refused({"gain": 24.5}, P, "params").message == "Expected float <= 24.0"
    assert refused({"gain": -61}, P, "params").message == "Expected float >= -60.0"


# -- Effect construction and set_params --------------------------------------------


class Gain(Effect):
    name = "gain"
    version = "1.0.0"
    summary = "Changes the level."

    class Params(Params):
        gain_db: Annotated[float, param(description="Gain", ge=-60, le=24, unit="dB")] = 0.0

    def prepare(self):
        self.prepared = getattr(self, "prepared", 0) + 1

    def apply_params(self, params):
        self.applied = [*getattr(self, "applied", []), params]
        self.gain = np.float32(10 ** (params.gain_db / 20))

    def process(self, block):
        return block * self.gain


@pytest.mark.parametrize("rate", [0, -1, -0.5, math.nan, math.inf, "48000", None])
def test_init_refuses_a_bad_sample_rate(rate):
    with pytest.raises(FieldError) as error:
        Gain(rate, 2)
    assert error.value.path == "sample_rate"
    assert "positive number" in error.value.message


@pytest.mark.parametrize("channels", [0, -1, 1.5, 2.0, "2", None])
def test_init_refuses_bad_channels(channels):
    with pytest.raises(FieldError) as error:
        Gain(48000, channels)
    assert error.value.path == "channels"
    assert "positive integer" in error.value.message


@pytest.mark.parametrize(("rate", "channels", "path"), [(True, 2, "sample_rate"), (48000, True, "channels")])
def test_init_refuses_bools(rate, channels, path):
    with pytest.raises(FieldError) as error:
        Gain(rate, channels)
    assert error.value.path == path


def test_init_validates_params_and_prepares_then_applies():
    fx = Gain(44100, 1)
    assert fx.sample_rate == 44100.0 and isinstance(fx.sample_rate, float)
    assert fx.channels == 1
    assert fx.params == Gain.Params()
    assert fx.prepared == 1 and fx.applied == [Gain.Params()]
    assert Gain(48000, 2, {"gain_db": -6}).params == Gain.Params(gain_db=-6.0)
    assert Gain(48000, 2, Gain.Params(gain_db=3)).params.gain_db == 3
    with pytest.raises(FieldError) as error:
        Gain(48000, 2, {"gain_db": 99})
    assert error.value.path == "params.gain_db"
    with pytest.raises(FieldError) as error:
        Gain(48000, 2, ReverbParams())
    assert error.value.path == "params"
    assert error.value.message == "expected Params, got ReverbParams"


def test_set_params_applies_valid_values():
    fx = Gain(48000, 2)
    fx.set_params({"gain_db": -20})
    assert fx.params == Gain.Params(gain_db=-20.0)
    assert fx.applied[-1] == fx.params
    assert np.allclose(fx.process(np.ones((2, 4), np.float32)), 0.1)


@pytest.mark.parametrize(
    ("bad", "path"),
    [
        ({"gain_db": 25}, "params.gain_db"),
        ({"gain_db": "loud"}, "params.gain_db"),
        ({"gian_db": 1}, "params.gian_db"),
        (ReverbParams(), "params"),
    ],
)
def test_set_params_refuses_and_leaves_the_effect_unchanged(bad, path):
    fx = Gain(48000, 2, {"gain_db": -6})
    before, applied, gain = fx.params, list(fx.applied), fx.gain
    with pytest.raises(FieldError) as error:
        fx.set_params(bad)
    assert error.value.path == path
    assert fx.params is before
    assert fx.applied == applied and fx.gain == gain


def test_reset_prepares_again_and_keeps_parameters():
    fx = Gain(48000, 2)
    fx.set_params({"gain_db": 6})
    fx.reset()
    assert fx.prepared == 2
    assert fx.params.gain_db == 6 and fx.applied[-1].gain_db == 6


def test_latency_and_tail_default_to_zero():
    fx = Gain(48000, 2)
    assert fx.latency == 0 and type(fx.latency) is int
    assert fx.tail_seconds == 0.0 and type(fx.tail_seconds) is float


# -- effect_class_problems ----------------------------------------------------------


def make(base=Gain, **attrs) -> type:
    return type("Made", (base,), attrs)


def test_a_well_formed_class_has_no_problems():
    assert effect_class_problems(Gain) == []


@pytest.mark.parametrize("thing", [42, "gain", Gain(48000, 2), int, ReverbParams])
def test_not_an_effect_class(thing):
    (problem,) = effect_class_problems(thing)
    assert problem.endswith("is not a subclass of fxhost_sdk.Effect")


@pytest.mark.parametrize("name", [None, "", "Gain", "1gain", "my-gain", "my gain", "a" * 65, 3])
def test_bad_name(name):
    cls = make(name=name)
    (problem,) = effect_class_problems(cls)
    assert problem.startswith("Made.name must be a string of lower-case letters")
    assert repr(name) in problem


def test_name_limits():
    assert effect_class_problems(make(name="a" * 64)) == []
    assert effect_class_problems(make(name="a1_b")) == []


@pytest.mark.parametrize("attr", ["version", "summary"])
@pytest.mark.parametrize("value", [None, "", "   ", 1])
def test_bad_version_or_summary(attr, value):
    (problem,) = effect_class_problems(make(**{attr: value}))
    assert problem == f"Made.{attr} must be a non-empty string, got {value!r}"


def test_multi_line_summary():
    (problem,) = effect_class_problems(make(summary="Changes the level.\nAnd more."))
    assert problem == "Made.summary must be one line"
    assert effect_class_problems(make(summary="One line.\n")) == []


class Plain(msgspec.Struct):
    gain_db: float = 0.0


@pytest.mark.parametrize("value", [None, Plain, Plain(), dict])
def test_params_must_be_a_params_subclass(value):
    (problem,) = effect_class_problems(make(Params=value))
    assert problem.startswith("Made.Params must be a subclass of fxhost_sdk.Params")


def test_params_need_a_valid_default_for_every_field():
    class Required(Params):
        gain_db: float

    class OutOfRange(Params):
        gain_db: Annotated[float, param(description="Gain", ge=0, le=1)] = 5.0

    (problem,) = effect_class_problems(make(Params=Required))
    assert problem.startswith("Made.Params needs a valid default for every field")
    assert "params.gain_db: required field missing" in problem
    (problem,) = effect_class_problems(make(Params=OutOfRange))
    assert "params.gain_db: Expected float <= 1" in problem


def test_process_must_be_implemented():
    class NoProcess(Effect):
        name = "no_process"
        version = "1"
        summary = "Nothing."
        Params = ReverbParams

    (problem,) = effect_class_problems(NoProcess)
    assert problem.endswith(".NoProcess does not implement process")


def test_every_problem_is_listed_at_once():
    class Bare(Effect):
        pass

    problems = effect_class_problems(Bare)
    # (no Params is not a problem: an effect without parameters inherits the empty one)
    assert [p.split(" ", 1)[0].split("<locals>.")[1] for p in problems] == [
        "Bare.name",
        "Bare.version",
        "Bare.summary",
        "Bare",
    ]


# -- the hook -----------------------------------------------------------------------


def test_a_plugin_hands_its_effect_classes_through_the_hook():
    class Plugin:
        @hookimpl
        def fxhost_effects(self):
            return [Gain]

    pm = pluggy.PluginManager("fxhost")
    pm.add_hookspecs(hookspecs_module)
    pm.register(Plugin())
    assert pm.hook.fxhost_effects() == [[Gain]]
