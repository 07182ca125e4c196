"""The conformance validator (fxhost_sdk.testing) on small effects written inline:
correct ones that must pass, and broken ones that must each fail the right check with
a message that names the problem."""

from __future__ import annotations

import contextlib
import math
import re
from typing import Annotated, Literal

import msgspec
import numpy as np
import pytest
from fxhost_sdk import Effect, FieldError, Params, param
from fxhost_sdk.testing import (
    INPUT_RULE,
    Check,
    ConformanceError,
    ConformanceReport,
    check_effect,
    make_test_signal,
    process_blocks,
    validate_effect,
)
from reportkit import detail, names, run_reproduction

# Short signals keep the suite fast (and of no round length: 0.237 s); the validator's
# defaults are exercised separately.
FAST = {"seconds": 0.237}


# -- correct effects ----------------------------------------------------------------


class Gain(Effect):
    name = "gain"
    version = "1.0.0"
    summary = "Changes the level."

    class Params(Params):
        gain_db: Annotated[float, param(description="Gain", ge=-60, le=24, unit="dB")] = 0.0

    def apply_params(self, params):
        self.gain = np.float32(10 ** (params.gain_db / 20))

    def process(self, block):
        return block * self.gain


class MovingAverage(Effect):
    """A FIR filter whose history is carried across blocks: vectorised numpy."""

    name = "moving_average"
    version = "1.0.0"
    summary = "Averages the last few frames."
    HISTORY = 64

    class Params(Params):
        taps: Annotated[int, param(description="Frames averaged", ge=1, le=64)] = 8
        mix: Annotated[float, param(description="Share of the filtered signal", ge=0, le=1)] = 1.0

    def prepare(self):
        self.history = np.zeros((self.channels, self.HISTORY), np.float32)

    def process(self, block):
        frames, h = block.shape[1], self.HISTORY
        ext = np.concatenate([self.history, block], axis=1)
        acc = np.zeros_like(block)
        for k in range(self.params.taps):
            acc += ext[:, h - k : h - k + frames]
        self.history = ext[:, -h:].copy()
        mix = np.float32(self.params.mix)
        return ((acc / np.float32(self.params.taps)) * mix + block * (1 - mix)).astype(np.float32)


class OnePole(Effect):
    """A one-pole lowpass: recursive state carried across blocks, one frame at a time."""

    name = "one_pole"
    version = "1.0.0"
    summary = "Gentle lowpass."

    class Params(Params):
        cutoff_hz: Annotated[float, param(description="Cutoff", ge=20, le=3000, unit="Hz", scale="log")] = (
            1000.0
        )

    def prepare(self):
        self.state = np.zeros(self.channels, np.float32)

    def apply_params(self, params):
        self.a = np.float32(1 - math.exp(-2 * math.pi * params.cutoff_hz / self.sample_rate))

    def process(self, block):
        out = np.empty_like(block)
        state = self.state.copy()
        for i in range(block.shape[1]):
            state += self.a * (block[:, i] - state)
            out[:, i] = state
        self.state = state
        return out


class Delay(Effect):
    """A pure delay that reports it as latency."""

    name = "delay"
    version = "1.0.0"
    summary = "Delays the signal by a fixed number of frames."
    FRAMES = 32

    class Params(Params):
        level: Annotated[float, param(description="Output level", ge=0, le=1)] = 1.0

    def prepare(self):
        self.line = np.zeros((self.channels, self.FRAMES), np.float32)

    def process(self, block):
        ext = np.concatenate([self.line, block], axis=1)
        self.line = ext[:, ext.shape[1] - self.FRAMES :].copy()
        return np.ascontiguousarray(ext[:, : block.shape[1]] * np.float32(self.params.level))

    @property
    def latency(self):
        return self.FRAMES


class Echo(Effect):
    """Feedback echo with an honest tail: y[n] = x[n] + feedback * y[n - D]."""

    name = "echo"
    version = "1.0.0"
    summary = "Repeats the signal, each repeat quieter."
    DELAY_SECONDS = 0.05

    class Params(Params):
        feedback: Annotated[float, param(description="Level of each repeat", ge=0, le=0.9)] = 0.5

    def prepare(self):
        self.delay = max(1, round(self.DELAY_SECONDS * self.sample_rate))
        self.past = np.zeros((self.channels, self.delay), np.float32)

    def process(self, block):
        out = np.empty_like(block)
        fb = np.float32(self.params.feedback)
        for start in range(0, block.shape[1], self.delay):
            chunk = block[:, start : start + self.delay]
            m = chunk.shape[1]
            y = chunk + fb * self.past[:, :m]
            self.past = np.concatenate([self.past[:, m:], y], axis=1)
            out[:, start : start + m] = y
        return out

    @property
    def tail_seconds(self):
        fb = self.params.feedback
        if fb == 0:
            return 0.0
        return self.delay / self.sample_rate * math.log(1e-3) / math.log(fb)


class KitchenSink(Effect):
    """Every kind of parameter the validator understands."""

    name = "kitchen_sink"
    version = "1.0.0"
    summary = "Gain with many kinds of parameters."

    class Params(Params):
        gain: Annotated[float, param(description="Linear gain", ge=0, le=2)] = 1.0
        steps: Annotated[int, msgspec.Meta(gt=0, lt=10, description="Quantiser steps")] = 4
        trim: Annotated[float, msgspec.Meta(gt=-1.0, lt=1.0, description="Optional trim")] | None = None
        invert: Annotated[bool, param(description="Flip the polarity")] = False
        mode: Annotated[Literal["clean", "warm"], param(description="Flavour")] = "clean"
        label: Annotated[str, param(description="A name for the UI")] = "sink"

    def process(self, block):
        p = self.params
        gain = p.gain * (-1 if p.invert else 1) * (1 + (p.trim or 0.0))
        out = block * np.float32(gain)
        return np.tanh(out) if p.mode == "warm" else out


CORRECT = [Gain, MovingAverage, OnePole, Delay, Echo, KitchenSink]


@pytest.mark.parametrize("cls", CORRECT, ids=lambda c: c.name)
def test_correct_effects_pass(cls):
    kwargs = {"sample_rate": 8000, "seconds": 0.237} if cls is OnePole else FAST
    report = check_effect(cls, **kwargs)
    assert report.passed, str(report)
    assert [c.name for c in report.checks] == [
        "well_formed",
        "defaults_validate",
        "params_described",
        "bad_params_refused",
        "shapes_and_dtypes",
        "input_untouched",
        "block_size_invariance",
        "finite_output",
        "reset_determinism",
        "instances_independent",
        "latency_and_tail",
        "latency_measured",
        "tail_decays",
        "param_changes",
        "realtime",
    ]


def test_validate_effect_returns_the_report_when_all_is_well():
    report = validate_effect(Gain, **FAST)
    assert isinstance(report, ConformanceReport)
    assert report.passed and report.failures == []
    text = str(report)
    assert text.startswith("Conformance of gain (")
    assert "passed" in text and "FAIL" not in text


def test_latency_is_mentioned_in_the_invariance_detail():
    report = check_effect(Delay, **FAST)
    assert "latency (frames): stereo 32, mono 32" in detail(report, "block_size_invariance")
    assert "latency 32 frames" in detail(report, "latency_and_tail")


def test_default_run_passes_correct_effects():
    """seconds=1.0 at 48 kHz (the defaults) on simple numpy effects."""
    for cls in (Gain, MovingAverage):
        report = check_effect(cls)
        assert report.passed, str(report)


def test_params_argument_is_used_and_validated():
    report = check_effect(MovingAverage, params={"taps": 3, "mix": 0.5}, **FAST)
    assert report.passed, str(report)
    assert check_effect(MovingAverage, params=MovingAverage.Params(taps=64), **FAST).passed
    with pytest.raises(FieldError) as error:
        check_effect(MovingAverage, params={"taps": 0}, **FAST)
    assert error.value.path == "params.taps"
    with pytest.raises(ValueError, match="sample_rate"):
        check_effect(Gain, sample_rate=0)
    with pytest.raises(ValueError, match="seconds"):
        check_effect(Gain, seconds=-1)


def test_params_given_reach_the_processing_checks():
    """A value that only breaks the effect when chosen must make it fail."""

    class ExplodesLoud(Gain):
        name = "explodes_loud"

        def process(self, block):
            if self.params.gain_db > 20:
                return np.full_like(block, np.inf)
            return super().process(block)

    assert check_effect(ExplodesLoud, **FAST).passed
    report = check_effect(ExplodesLoud, params={"gain_db": 24}, **FAST)
    assert "finite_output" in names(report)


# -- broken effects -----------------------------------------------------------------


class Forgetful(MovingAverage):
    """Loses its history at every block."""

    name = "forgetful"

    def process(self, block):
        self.prepare()
        return super().process(block)


class Reprepares(MovingAverage):
    """Mimics a wrapper (pedalboard) that re-prepares, losing state, whenever a block is
    larger than any before it."""

    name = "reprepares"

    def prepare(self):
        super().prepare()
        self.largest = getattr(self, "largest", 0)

    def process(self, block):
        if block.shape[1] > self.largest:
            self.largest = block.shape[1]
            self.prepare()
        return super().process(block)


def test_state_lost_between_blocks_fails_block_size_invariance():
    report = check_effect(Forgetful, **FAST)
    assert names(report) == ["block_size_invariance"]
    text = detail(report, "block_size_invariance")
    assert "stereo, blocks of 7 frames: max difference" in text
    assert "mono, blocks of 64 frames" in text
    assert "first above 1e-05 at frame 7, at the start of block #1" in text
    assert "Reproduce:" in text
    assert "from test_validator import Forgetful" in text


def test_re_preparing_on_a_larger_block_fails_only_the_ragged_pattern():
    report = check_effect(Reprepares, **FAST)
    assert names(report) == ["block_size_invariance"]
    text = detail(report, "block_size_invariance")
    assert "ragged blocks" in text
    assert "larger than any block before it" in text
    for size in (1, 7, 64, 256, 4096):
        assert f"blocks of {size} frame" not in text, text


@pytest.mark.parametrize("cls", [Forgetful, Reprepares])
def test_the_reproduction_runs_and_shows_the_difference(cls, capsys):
    report = check_effect(cls, **FAST)
    printed = run_reproduction(detail(report, "block_size_invariance"))
    biggest, first = printed.split(maxsplit=1)
    assert float(biggest) > 1e-5
    assert re.fullmatch(r"\[\d+\]\s*", first)


def test_validate_effect_raises_with_the_report_and_the_reproduction():
    with pytest.raises(ConformanceError) as error:
        validate_effect(Reprepares, **FAST)
    assert isinstance(error.value, AssertionError)
    message = str(error.value)
    assert message == str(error.value.report)
    assert "FAIL  block_size_invariance" in message
    assert "Reproduce:" in message
    assert "parts = process_blocks(Reprepares(" in message
    assert "make_test_signal(" in message


class Float64Out(Gain):
    name = "float64_out"

    def process(self, block):
        return block.astype(np.float64) * float(self.gain)


class Transposed(Gain):
    name = "transposed"

    def process(self, block):
        return np.ascontiguousarray((block * self.gain).T)


class FortranOut(Gain):
    name = "fortran_out"

    def process(self, block):
        return np.asfortranarray(block * self.gain)


class ReturnsList(Gain):
    name = "returns_list"

    def process(self, block):
        return (block * self.gain).tolist()


@pytest.mark.parametrize(
    ("cls", "words"),
    [
        (Float64Out, ["dtype float64", "must be float32", "block of 0 frame(s)"]),
        (Transposed, ["shape (64, 2)", "(channels, frames)", "stereo, block of 64 frame(s)"]),
        (FortranOut, ["not C-contiguous", "stereo, block of 2 frame(s)"]),
        (ReturnsList, ["process returned list, not a numpy array"]),
    ],
    ids=["float64", "transposed", "fortran", "list"],
)
def test_wrong_dtype_or_shape_fails_shapes_and_dtypes(cls, words):
    report = check_effect(cls, **FAST)
    assert "shapes_and_dtypes" in names(report)
    text = detail(report, "shapes_and_dtypes")
    for word in words:
        assert word in text, text
    if cls in (Float64Out, FortranOut):  # same numbers: nothing else is wrong
        assert names(report) == ["shapes_and_dtypes"]


class InPlace(Gain):
    name = "in_place"

    def process(self, block):
        block *= self.gain
        return block


def test_in_place_processing_fails_input_untouched_with_the_rule():
    report = check_effect(InPlace, params={"gain_db": -6.0}, **FAST)
    assert names(report) == ["input_untouched"]
    text = detail(report, "input_untouched")
    assert "stereo: process modified block #0 (512 frames) in place" in text
    assert INPUT_RULE in text  # the same rule, in the same words, as for offline effects
    assert "fx.process(block)" in text  # the reproduction


class NaNOnSilence(Gain):
    """x / |x| * |x|: the same as x, except 0/0 = NaN wherever the input is exactly zero."""

    name = "nan_on_silence"

    def process(self, block):
        with np.errstate(invalid="ignore", divide="ignore"):
            return (block / np.abs(block) * np.abs(block) * self.gain).astype(np.float32)


def test_nan_on_silence_fails_finite_output():
    report = check_effect(NaNOnSilence, **FAST)
    assert "finite_output" in names(report)
    text = detail(report, "finite_output")
    assert "stereo, 0.711 s of silence: the output has NaN from frame 0" in text
    assert "mono" in text
    # NaN in the same places on both sides is not a block-size problem
    assert "block_size_invariance" not in names(report)


class Unstable(Echo):
    """Feedback above 1: the output grows without bound after the input stops."""

    name = "unstable"

    def process(self, block):
        out = np.empty_like(block)
        for start in range(0, block.shape[1], self.delay):
            chunk = block[:, start : start + self.delay]
            m = chunk.shape[1]
            y = chunk + np.float32(1e6) * self.past[:, :m]
            self.past = np.concatenate([self.past[:, m:], y], axis=1)
            out[:, start : start + m] = y
        return out

    @property
    def tail_seconds(self):
        return math.inf


def test_unstable_feedback_is_reported_once_as_instability():
    with np.errstate(over="ignore", invalid="ignore"):
        report = check_effect(Unstable, **FAST)
    assert names(report) == ["tail_decays"], str(report)
    text = detail(report, "tail_decays")
    assert "UNSTABLE" in text and "feedback" in text and "A longer tail_seconds will not fix it" in text
    assert "Reproduce:" in text
    for name in ("finite_output", "param_changes"):
        check = report.check(name)
        assert check.skipped and "tail_decays" in check.detail


class ResetKeepsState(MovingAverage):
    name = "reset_keeps_state"

    def reset(self):
        pass


def test_reset_that_keeps_state_fails_reset_determinism():
    report = check_effect(ResetKeepsState, **FAST)
    assert names(report) == ["reset_determinism"]
    text = detail(report, "reset_determinism")
    assert "after reset() the same signal gives output that differs" in text
    assert "reset() must clear all state" in text
    assert "fx.reset()" in text  # the reproduction


class Dithered(Gain):
    name = "dithered"

    def process(self, block):
        noise = np.random.default_rng().uniform(-1e-3, 1e-3, block.shape)
        return (block * self.gain + noise).astype(np.float32)


def test_unseeded_randomness_fails_reset_determinism():
    report = check_effect(Dithered, **FAST)
    assert {"reset_determinism", "block_size_invariance"} <= set(names(report))
    assert "not deterministic" in detail(report, "reset_determinism")


class SharedHistory(MovingAverage):
    """Keeps its history on the class: every instance shares one buffer."""

    name = "shared_history"

    def prepare(self):
        type(self).shared = np.zeros((self.channels, self.HISTORY), np.float32)

    @property
    def history(self):
        return type(self).shared

    @history.setter
    def history(self, value):
        type(self).shared = value


def test_state_shared_between_instances_fails_instances_independent():
    report = check_effect(SharedHistory, **FAST)
    assert names(report) == ["instances_independent"]
    assert "instances share state" in detail(report, "instances_independent")


class Undocumented(Gain):
    name = "undocumented"

    class Params(Params):
        gain_db: Annotated[float, msgspec.Meta(ge=-60, le=24)] = 0.0
        bright: bool = False


class Unbounded(Gain):
    name = "unbounded"

    class Params(Params):
        gain_db: Annotated[float, param(description="Gain")] = 0.0
        drive: Annotated[float, param(description="Drive", ge=0)] = 0.0
        ceiling: Annotated[int, msgspec.Meta(lt=10, description="Ceiling")] = 0


def test_undocumented_parameter_fails_params_described():
    report = check_effect(Undocumented, **FAST)
    assert names(report) == ["params_described"]
    text = detail(report, "params_described")
    assert "parameter 'gain_db' has no description" in text
    assert "parameter 'bright' has no description" in text
    assert "fxhost_sdk.param(description=...)" in text


def test_parameter_without_bounds_fails_params_described():
    report = check_effect(Unbounded, **FAST)
    assert names(report) == ["params_described"]
    text = detail(report, "params_described")
    assert "parameter 'gain_db' has no lower and no upper bound" in text
    assert "parameter 'drive' has no upper bound: give it le (or lt)" in text
    assert "parameter 'ceiling' has no lower bound: give it ge (or gt)" in text


class LooseParams(Gain):
    name = "loose_params"

    class Params(Params, forbid_unknown_fields=False):
        gain_db: Annotated[float, param(description="Gain", ge=-60, le=24)] = 0.0


def test_params_accepting_unknown_fields_fail_bad_params_refused():
    report = check_effect(LooseParams, **FAST)
    assert names(report) == ["bad_params_refused"]
    text = detail(report, "bad_params_refused")
    assert "unknown parameter" in text
    assert "'no_such_param__': 1" in text and "was accepted" in text
    assert "forbid_unknown_fields" in text


class AppliesBeforeValidating(Gain):
    name = "applies_before_validating"

    def set_params(self, params):
        value = params["gain_db"] if isinstance(params, dict) else params.gain_db
        self.gain = np.float32(10 ** (value / 20))
        super().set_params(params)


def test_set_params_that_applies_refused_values_fails_bad_params_refused():
    report = check_effect(AppliesBeforeValidating, **FAST)
    assert names(report) == ["bad_params_refused"]
    text = detail(report, "bad_params_refused")
    assert "the refused values reached the DSP" in text


class SwallowsErrors(Gain):
    name = "swallows_errors"

    def set_params(self, params):
        with contextlib.suppress(FieldError):
            super().set_params(params)


class WrongPath(Gain):
    name = "wrong_path"

    @classmethod
    def check_params(cls, params, path="params"):
        try:
            return super().check_params(params, path)
        except FieldError as error:
            raise FieldError("params", error.message) from None


def test_set_params_must_raise_and_errors_must_name_the_field():
    report = check_effect(SwallowsErrors, **FAST)
    assert names(report) == ["bad_params_refused"]
    assert "set_params({'gain_db': -120.0}) was accepted" in detail(report, "bad_params_refused")

    report = check_effect(WrongPath, **FAST)
    assert names(report) == ["bad_params_refused"]
    text = detail(report, "bad_params_refused")
    assert "'gain_db' beyond ge=-60: WrongPath.check_params({'gain_db': -120.0})" in text
    assert "path 'params', which does not name 'gain_db'" in text
    assert "'gain_db' of the wrong type" in text


class ShortTail(Echo):
    name = "short_tail"

    @property
    def tail_seconds(self):
        return 0.0


def test_tail_shorter_than_the_ringing_fails_tail_decays():
    report = check_effect(ShortTail, **FAST)
    assert names(report) == ["tail_decays"]
    text = detail(report, "tail_decays")
    assert "tail_seconds is too short" in text
    # the real decay (an echo of 0.5 feedback every 50 ms: about 0.45 s), not a window's edge
    decay = float(re.search(r"rings above -60 dBFS for ([0-9.]+) s", text).group(1))
    assert 0.35 < decay < 0.55, text
    assert "fx.tail_seconds" in text


class BadLatency(Gain):
    name = "bad_latency"

    @property
    def latency(self):
        return -1

    @property
    def tail_seconds(self):
        return "0"


class NumpyLatency(Gain):
    name = "numpy_latency"

    @property
    def latency(self):
        return np.int64(0)


def test_latency_and_tail_must_be_plain_non_negative_numbers():
    report = check_effect(BadLatency, **FAST)
    assert "latency_and_tail" in names(report)
    text = detail(report, "latency_and_tail")
    assert "stereo: latency is -1 (int); it must be a non-negative Python int" in text
    assert "tail_seconds is '0' (str)" in text
    # numpy scalars are fine: fxhost_sdk.Effect hands them on as Python numbers
    assert "latency_and_tail" not in names(check_effect(NumpyLatency, **FAST))


class RaisingLatency(Gain):
    name = "raising_latency"

    @property
    def latency(self):
        raise RuntimeError("latency not known yet")


def test_an_exception_inside_a_check_is_a_failure_not_a_crash():
    report = check_effect(RaisingLatency, **FAST)
    assert {"latency_and_tail", "tail_decays", "block_size_invariance"} <= set(names(report))
    for name in ("latency_and_tail", "tail_decays"):
        assert "RuntimeError: latency not known yet" in detail(report, name)
    assert "test_validator.py" in detail(report, "tail_decays")  # where it was raised


class RaisesOnEmpty(Gain):
    name = "raises_on_empty"

    def process(self, block):
        if block.shape[1] == 0:
            raise ValueError("cannot process an empty block")
        return super().process(block)


def test_process_raising_is_reported_with_type_and_message():
    report = check_effect(RaisesOnEmpty, **FAST)
    assert names(report) == ["shapes_and_dtypes"]
    text = detail(report, "shapes_and_dtypes")
    assert "stereo, block of 0 frame(s): raised ValueError: cannot process an empty block" in text
    assert "mono, block of 0 frame(s)" in text


class StereoOnly(Gain):
    name = "stereo_only"

    def prepare(self):
        if self.channels != 2:
            raise ValueError("stereo only")


def test_an_effect_that_refuses_mono_fails_but_every_check_runs():
    report = check_effect(StereoOnly, **FAST)
    assert len(report.checks) == 15
    assert {"shapes_and_dtypes", "block_size_invariance", "finite_output"} <= set(names(report))
    assert "mono" in detail(report, "shapes_and_dtypes")
    assert "ValueError: stereo only" in detail(report, "block_size_invariance")


class MidRangeCrash(Gain):
    name = "mid_range_crash"

    class Params(Params):
        gain_db: Annotated[float, param(description="Gain", ge=-60, le=24, unit="dB")] = 0.0
        tone: Annotated[float, param(description="Tone", ge=0, le=10)] = 1.0

    def apply_params(self, params):
        super().apply_params(params)
        self.tilt = 1 / (params.tone - 5)


def test_parameter_change_that_breaks_fails_param_changes():
    report = check_effect(MidRangeCrash, **FAST)
    assert names(report) == ["param_changes"]
    text = detail(report, "param_changes")
    assert "set_params(tone=5.0) between blocks: raised ZeroDivisionError" in text


class NaNAfterChange(Gain):
    name = "nan_after_change"

    def apply_params(self, params):
        super().apply_params(params)
        if params.gain_db == -18.0:
            self.gain = np.float32(np.nan)


def test_non_finite_output_after_a_parameter_change_fails_param_changes():
    report = check_effect(NaNAfterChange, **FAST)
    assert names(report) == ["param_changes"]
    assert "after set_params(gain_db=-18.0)" in detail(report, "param_changes")
    assert "NaN" in detail(report, "param_changes")


class BadName(Gain):
    name = "Bad Name"


def test_malformed_class_reports_only_well_formed():
    report = check_effect(BadName)
    assert [c.name for c in report.checks] == ["well_formed"]
    assert names(report) == ["well_formed"]
    assert "BadName.name must be a string of lower-case letters" in report.checks[0].detail
    assert "skipped" in report.checks[0].detail
    with pytest.raises(ConformanceError, match="well_formed"):
        validate_effect(BadName)
    report = check_effect(object)
    assert "is not a subclass of fxhost_sdk.Effect" in report.checks[0].detail


# -- the report and the helpers -----------------------------------------------------


def test_report_text_lists_every_check_and_indents_details():
    report = ConformanceReport(
        effect="demo (x.Demo)",
        checks=[Check("one", True, "fine"), Check("two", False, "broken\nReproduce:\n    x = 1")],
    )
    assert not report.passed
    assert report.failures == [report.checks[1]]
    assert str(report).splitlines() == [
        "Conformance of demo (x.Demo): FAILED (1 of 2 checks)",
        "  ok    one",
        "          fine",
        "  FAIL  two",
        "          broken",
        "          Reproduce:",
        "              x = 1",
    ]
    assert str(ConformanceError(report)) == str(report)


def test_make_test_signal_is_deterministic_moderate_and_has_silence():
    x = make_test_signal(48000, 2, seconds=1.0, seed=3)
    assert x.dtype == np.float32 and x.shape == (2, 48000) and x.flags.c_contiguous
    assert np.array_equal(x, make_test_signal(48000, 2, seconds=1.0, seed=3))
    assert not np.array_equal(x, make_test_signal(48000, 2, seconds=1.0, seed=4))
    assert 0.3 < np.abs(x).max() <= 0.5
    assert not x[:, 20000:26000].any()
    assert x[:, :19000].all(axis=0).mean() > 0.99


def test_process_blocks_cycles_sizes_and_checks_shapes():
    seen = []

    class Recorder(Gain):
        name = "recorder"

        def process(self, block):
            seen.append(block.shape[1])
            assert block.flags.c_contiguous and block.dtype == np.float32
            return super().process(block)

    x = make_test_signal(8000, 2, seconds=0.01)
    out = process_blocks(Recorder(8000, 2), x, [3, 30])
    assert seen == [3, 30] * 2 + [3, 11]
    assert np.array_equal(out, x)
    with pytest.raises(ValueError, match="positive"):
        process_blocks(Recorder(8000, 2), x, [0])
    with pytest.raises(ValueError, match=r"returned shape \(64, 2\)"):
        process_blocks(Transposed(8000, 2), x, 64)


def _params_made_in_a_function() -> type[Params]:
    class Params_(Params):
        gain_db: Annotated[float, param(description="Gain", ge=-60, le=24, unit="dB")] = 0.0

    return Params_


class GainWithLocalParams(Gain):
    """Params built by a factory function, as a plugin pack might share one shape between
    effects: pickle cannot find the class, so a host's worker process cannot receive it."""

    name = "gain_local_params"
    Params = _params_made_in_a_function()


def test_params_that_pickle_cannot_find_fail_the_defaults_check():
    report = check_effect(GainWithLocalParams, **FAST)
    assert names(report) == ["defaults_validate"]
    assert "through pickle" in detail(report, "defaults_validate")
    assert "<locals>" in detail(report, "defaults_validate")
