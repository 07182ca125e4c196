"""The SDK's surface: what authors import, what only a host does, param() bounds and
choices, effects without parameters, numpy numbers for latency and tail, and the one
drawing of the lifecycle."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import fxhost_sdk
import msgspec
import numpy as np
import pytest
from fxhost_sdk import Effect, FieldError, Params, param
from fxhost_sdk import effect as effect_module
from fxhost_sdk.host import effect_class_problems

ROOT = Path(__file__).resolve().parents[2]
HOST_ONLY = {"AssetLoader", "asset_fields", "convert", "effect_class_problems", "hookspec", "field_error"}


def test_the_top_level_holds_what_authors_use_and_nothing_of_the_host():
    assert set(fxhost_sdk.__all__) == {
        "Effect",
        "OfflineEffect",
        "Params",
        "param",
        "asset",
        "FieldError",
        "LoadedAudio",
        "LinearSmoother",
        "hookimpl",
    }
    assert not HOST_ONLY & set(dir(fxhost_sdk))
    for name in fxhost_sdk.__all__:
        assert getattr(fxhost_sdk, name) is not None


def test_the_host_helpers_live_in_fxhost_sdk_host():
    import fxhost_sdk.host as host

    assert set(host.__all__) >= HOST_ONLY
    assert all(getattr(host, name) is not None for name in host.__all__)


def test_the_host_imports_its_helpers_from_fxhost_sdk_host():
    """No module of the host (or a plugin) reaches for a host helper at the top level."""
    names = "|".join(HOST_ONLY)
    pattern = re.compile(rf"from fxhost_sdk(?:\.params|\.effect|\.markers)? import [^\n]*\b({names})\b")
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("host/src", "plugins")
        for path in (ROOT / folder).rglob("*.py")
        if "openapi/static" not in str(path) and pattern.search(path.read_text())
    ]
    assert offenders == []


# -- param(): bounds ------------------------------------------------------------------


class Bounded(Params):
    cutoff_hz: Annotated[float, param(description="Cutoff.", gt=0, lt=20000, unit="Hz", scale="log")] = 1000.0
    steps: Annotated[int, param(description="Steps.", ge=1, le=64, multiple_of=4)] = 8
    level: Annotated[float, param(description="Level.", ge=-1, le=1)] = 0.0


def test_param_puts_exclusive_bounds_and_steps_into_the_schema():
    props = msgspec.json.schema(Bounded)["$defs"]["Bounded"]["properties"]
    assert props["cutoff_hz"] == {
        "description": "Cutoff.",
        "x-scale": "log",
        "x-unit": "Hz",
        "type": "number",
        "exclusiveMinimum": 0,
        "exclusiveMaximum": 20000,
        "default": 1000.0,
    }
    assert props["steps"]["multipleOf"] == 4 and props["steps"]["x-scale"] == "linear"


@pytest.mark.parametrize(
    ("values", "path", "message"),
    [
        ({"cutoff_hz": 0}, "params.cutoff_hz", "Expected float > 0"),
        ({"cutoff_hz": 20000}, "params.cutoff_hz", "Expected float < 20000"),
        ({"steps": 6}, "params.steps", "Expected int that's a multiple of 4"),
        ({"level": 1.5}, "params.level", "Expected float <= 1"),
    ],
)
def test_exclusive_bounds_and_steps_are_enforced_with_the_field_named(values, path, message):
    class Fx(Effect):
        name = "bounded"
        version = "1"
        summary = "Bounds."
        Params = Bounded

        def process(self, block):
            return block

    assert Fx(48000, 1, {"cutoff_hz": 1e-9, "steps": 64}).params.steps == 64
    with pytest.raises(FieldError) as error:
        Fx(48000, 1, values)
    assert error.value.path == path
    assert error.value.message.startswith(message)


def test_a_choice_is_a_literal_with_no_scale():
    class Choice(Params):
        mode: Annotated[Literal["soft", "hard"], param(description="Clipping curve.")] = "soft"
        bypass: Annotated[bool, param(description="Pass the input through.")] = False

    props = msgspec.json.schema(Choice)["$defs"]["Choice"]["properties"]
    assert props["mode"] == {"description": "Clipping curve.", "enum": ["hard", "soft"], "default": "soft"}
    assert props["bypass"] == {"description": "Pass the input through.", "type": "boolean", "default": False}
    with pytest.raises(FieldError) as error:
        fxhost_sdk.host.convert({"mode": "loud"}, Choice, "params")
    assert error.value.path == "params.mode"


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"scale": "log"}, "scale is a hint for a numeric range"),
        ({"ge": 0, "gt": 0}, "ge or gt, not both"),
        ({"le": 1, "lt": 1}, "le or lt, not both"),
    ],
)
def test_param_refuses_meaningless_combinations(kwargs, says):
    with pytest.raises(TypeError, match=says):
        param(description="x", **kwargs)


# -- effects without parameters -------------------------------------------------------


class Invert(Effect):
    name = "invert_test"
    version = "1"
    summary = "Flips the polarity."

    def process(self, block):
        return -block


def test_an_effect_without_parameters_needs_no_params_class():
    assert effect_class_problems(Invert) == []
    fx = Invert(48000, 2)
    assert msgspec.to_builtins(fx.params) == {}
    fx.set_params({})
    with pytest.raises(FieldError) as error:
        fx.set_params({"gain_db": 1})
    assert error.value.path == "params.gain_db"
    assert error.value.message == "unknown field"
    block = np.ones((2, 3), np.float32)
    assert np.array_equal(fx.process(block), -block)


# -- latency and tail as numpy numbers ------------------------------------------------


class NumpyNumbers(Effect):
    name = "numpy_numbers"
    version = "1"
    summary = "Declares its latency and tail with numpy scalars."

    def prepare(self):
        self.line = np.zeros((self.channels, 4), np.float32)

    def process(self, block):
        joined = np.concatenate([self.line, block], axis=1)
        self.line = joined[:, joined.shape[1] - 4 :]
        return joined[:, : block.shape[1]].copy()

    @property
    def latency(self):
        """Four frames, counted by numpy."""
        return np.int64(self.line.shape[1])

    @property
    def tail_seconds(self):
        return np.float32(4) / np.float32(self.sample_rate)


class ClassAttributes(Invert):
    name = "class_attributes"
    latency = np.int32(2)
    tail_seconds = np.float64(0.5)


def test_latency_and_tail_may_be_numpy_scalars_and_reach_the_host_as_python_numbers():
    fx = NumpyNumbers(48000, 2)
    assert fx.latency == 4 and type(fx.latency) is int
    assert fx.tail_seconds == pytest.approx(4 / 48000) and type(fx.tail_seconds) is float
    assert NumpyNumbers.latency.__doc__ == "Four frames, counted by numpy."
    assert msgspec.json.decode(msgspec.json.encode({"latency": fx.latency})) == {"latency": 4}
    plain = ClassAttributes(48000, 1)
    assert (type(plain.latency), type(plain.tail_seconds)) == (int, float)
    assert (plain.latency, plain.tail_seconds) == (2, 0.5)


def test_a_wrong_latency_still_reaches_the_validator_as_it_is():
    class Fractional(NumpyNumbers):
        name = "fractional"

        @property
        def latency(self):
            return 1.5

    assert Fractional(48000, 1).latency == 1.5  # not rounded into something valid


# -- the lifecycle, drawn once ----------------------------------------------------------


def _drawing(text: str) -> str:
    start = text.index("Effect(sample_rate, channels, params)")
    end = text.index("latency, tail_seconds", start)
    return "\n".join(line.strip() for line in text[start:end].splitlines())


def test_the_guide_draws_the_same_lifecycle_as_effect_py():
    guide = (ROOT / "sdk" / "README.md").read_text()
    assert _drawing(guide) == _drawing(effect_module.__doc__)
    for step in ("prepare()", "apply_params(params)", "process(block) *", "set_params(params)", "reset()"):
        assert step in _drawing(effect_module.__doc__)
