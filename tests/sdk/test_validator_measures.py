"""The validator measures what an effect declares: latency, tail, stability, speed, and
watches for a reset that forgets, an input changed in place, parameter jumps, a short
output, warnings by the thousand; and it checks a plugin's hook wiring. Each broken
effect here fails (or is noted) for exactly its own fault, with a reproduction."""

from __future__ import annotations

import math
import re
import time
import types
import warnings
from typing import Annotated

import numpy as np
import pytest
import test_validator
from fxhost_sdk import Effect, Params, hookimpl, param
from fxhost_sdk.testing import (
    DEFAULT_SECONDS,
    ConformanceError,
    check_effect,
    check_plugin,
    make_test_signal,
    validate_effect,
    validate_plugin,
)
from reportkit import detail, names, reproduction, run_reproduction
from test_validator import Gain

FAST = {"seconds": 0.237}


class SmoothGain(Gain):
    """The same gain, ramped over 20 ms when it changes: no zipper noise."""

    name = "smooth_gain"

    def prepare(self):
        self.current = None

    def apply_params(self, params):
        self.target = 10 ** (params.gain_db / 20)
        if self.current is None:
            self.current = self.target

    def process(self, block):
        n = block.shape[1]
        step = (self.target - self.current) / max(1.0, 0.02 * self.sample_rate)
        ramp = self.current + step * np.arange(1, n + 1)
        ramp = np.minimum(ramp, self.target) if step >= 0 else np.maximum(ramp, self.target)
        if n:
            self.current = float(ramp[-1])
        return (block * ramp).astype(np.float32)


class Delay(test_validator.Delay):
    """A pure delay of 240 frames (5 ms), declared as latency unless told otherwise."""

    FRAMES = 240
    DECLARED: int | None = None  # None: the truth

    @property
    def latency(self):
        return self.FRAMES if self.DECLARED is None else self.DECLARED


def _every_failure_has_a_reproduction(report) -> None:
    for check in report.failures:
        assert "Reproduce:" in check.detail, check
        code = reproduction(check.detail)
        assert len(code.splitlines()) >= 3, check
        compile(code, check.name, "exec")


# -- latency ----------------------------------------------------------------------------


def test_an_honest_latency_is_measured_by_impulse_and_by_correlation():
    report = check_effect(Delay, **FAST)
    assert report.passed, str(report)
    assert report.measured["latency_impulse"] == 240
    assert report.measured["latency_correlation"] == 240
    assert "declared latency 240 frames" in detail(report, "latency_measured")


class OverstatedLatency(Delay):
    """Declares 1000 frames but delays by 240: a host would put its output early."""

    name = "overstated_latency"
    DECLARED = 1000


def test_a_latency_the_output_contradicts_fails():
    report = check_effect(OverstatedLatency, **FAST)
    assert names(report) == ["latency_measured"]
    text = detail(report, "latency_measured")
    assert "the declared latency is too high" in text
    assert "declared latency 1000 frames" in text and "peaks at frame 240" in text
    assert "about 240 frames" in text
    declared, peak = run_reproduction(text).split()
    assert (int(declared), int(peak)) == (1000, 240)


class FullyWetDelay(Delay):
    """A 5 ms slap-back whose delay is its sound, not latency: declared 0."""

    name = "slap_back"
    DECLARED = 0


def test_a_later_response_is_a_note_that_it_may_be_the_sound():
    report = check_effect(FullyWetDelay, **FAST)
    assert report.passed, str(report)
    text = detail(report, "latency_measured")
    assert "later than the declared latency (240 frames or more" in text
    assert "If that delay is the effect's sound" in text and "declare it as latency" in text


# -- tail and stability -------------------------------------------------------------------


class Echo(Effect):
    """y[n] = x[n] + feedback * y[n - D]: rings on after the input stops."""

    name = "echo"
    version = "1.0.0"
    summary = "Repeats the signal."
    DELAY_SECONDS = 0.05
    DECLARED_TAIL = 0.1

    class Params(Params):
        feedback: Annotated[float, param(description="Level of each repeat", ge=0, le=0.9)] = 0.7

    def prepare(self):
        self.delay = max(1, round(self.DELAY_SECONDS * self.sample_rate))
        self.past = np.zeros((self.channels, self.delay), np.float32)

    def gain(self):
        return np.float32(self.params.feedback)

    def process(self, block):
        out = np.empty_like(block)
        for start in range(0, block.shape[1], self.delay):
            chunk = block[:, start : start + self.delay]
            m = chunk.shape[1]
            y = chunk + self.gain() * self.past[:, :m]
            self.past = np.concatenate([self.past[:, m:], y], axis=1)
            out[:, start : start + m] = y
        return out

    @property
    def tail_seconds(self):
        return self.DECLARED_TAIL


def test_a_short_tail_is_reported_with_the_real_decay_time():
    report = check_effect(Echo, **FAST)
    assert names(report) == ["tail_decays"]
    text = detail(report, "tail_decays")
    # 0.7 per 50 ms: -60 dB after log(1e-3)/log(0.7) = 19.4 repeats, about 0.97 s
    measured = float(re.search(r"rings above -60 dBFS for ([0-9.]+) s", text).group(1))
    assert 0.85 < measured < 1.05, text
    assert measured == report.measured["tail_seconds"]
    assert "measured over" in text and "declare about" in text


class Growing(Echo):
    """Feedback of 1.05: finite for seconds, but louder with every repeat."""

    name = "growing"
    DECLARED_TAIL = 0.5

    def gain(self):
        return np.float32(1.05)


def test_output_that_grows_after_the_input_stops_is_instability_not_a_short_tail():
    report = check_effect(Growing, **FAST)
    assert names(report) == ["tail_decays"], str(report)
    text = detail(report, "tail_decays")
    assert text.startswith("UNSTABLE: the output grows after the input stops")
    assert "A longer tail_seconds will not fix it" in text
    assert "too short" not in text
    assert "Reproduce:" in text


# -- speed ------------------------------------------------------------------------------


class CostlyCall(Gain):
    """A fixed 3 ms per call of 33 to 64 frames (re-planning something each call):
    slower than real time in blocks of 64 frames (1.3 ms of audio), fine in larger ones."""

    name = "costly_call"

    def process(self, block):
        if 33 <= block.shape[1] <= 64:
            time.sleep(0.003)
        return super().process(block)


def test_the_real_time_factor_is_a_note_by_default_and_a_failure_below_min_realtime():
    short = {"seconds": 0.113}  # every 64-frame call sleeps: keep them few
    report = check_effect(CostlyCall, **short)
    assert report.passed, str(report)
    factors = report.measured["realtime"]
    assert set(factors) == {"64 frames", "256 frames", "1024 frames"}
    assert factors["64 frames"] < 1.0 < factors["1024 frames"]
    assert "note: slower than real time at 64 frames" in detail(report, "realtime")
    report = check_effect(CostlyCall, min_realtime=1.0, **short)
    assert names(report) == ["realtime"]
    text = detail(report, "realtime")
    assert "min_realtime=1 asks for at least 1x" in text and "64 frames gives" in text
    assert float(run_reproduction(text)) < 1.0  # the reproduction measures it too
    with pytest.raises(ValueError, match="min_realtime"):
        check_effect(Gain, min_realtime=0)


# -- reset ------------------------------------------------------------------------------


class Tremolo(Effect):
    """Amplitude modulation by an LFO whose reset() forgets to rewind the LFO."""

    name = "tremolo"
    version = "1.0.0"
    summary = "Wobbles the level."

    class Params(Params):
        rate_hz: Annotated[float, param(description="LFO rate", ge=0.1, le=10, unit="Hz")] = 1.0

    def prepare(self):
        self.phase = 0.0

    def reset(self):
        pass  # the bug: the LFO phase carries on

    def process(self, block):
        n = block.shape[1]
        phases = self.phase + 2 * np.pi * self.params.rate_hz * np.arange(n) / self.sample_rate
        self.phase = (self.phase + 2 * np.pi * self.params.rate_hz * n / self.sample_rate) % (2 * np.pi)
        return (block * (0.75 + 0.25 * np.sin(phases))).astype(np.float32)


def test_a_reset_that_forgets_a_round_rate_lfo_is_caught():
    # The test signal is no whole number of seconds: an LFO at 1 Hz is not back at its start.
    assert DEFAULT_SECONDS == 1.37
    assert make_test_signal(48000, 1).shape == (1, round(1.37 * 48000))
    report = check_effect(Tremolo, sample_rate=8000)
    assert names(report) == ["reset_determinism"]
    # even a caller's whole-second signal: the check runs an odd length before reset()
    assert names(check_effect(Tremolo, sample_rate=8000, seconds=1.0)) == ["reset_determinism"]


# -- the input, and parameter jumps ------------------------------------------------------


def test_a_jumping_parameter_is_noted_with_the_size_of_the_jump():
    report = check_effect(Gain, **FAST)
    assert report.passed, str(report)
    text = detail(report, "param_changes")
    jump = re.search(
        r"changing gain_db from -39.0 to 3.0 between two blocks makes the output jump by ([0-9.]+)", text
    )
    assert jump, text
    # 0.5 sine near its peak: 0.5 * (10**(3/20) - 10**(-39/20)) = 0.70
    assert float(jump.group(1)) == pytest.approx(0.70, abs=0.03)
    assert "LinearSmoother" in text
    smooth = check_effect(SmoothGain, **FAST)
    assert smooth.passed, str(smooth)
    assert "makes the output jump" not in detail(smooth, "param_changes")


# -- one root cause, said once ------------------------------------------------------------


class ShortOutput(Gain):
    """Works in frames of 64 and returns only the whole frames it has: a short output."""

    name = "short_output"

    def process(self, block):
        n = block.shape[1] - block.shape[1] % 64
        return (block[:, :n] * self.gain).astype(np.float32)


def test_a_short_output_is_one_failure_with_its_fix():
    report = check_effect(ShortOutput, **FAST)
    assert names(report) == ["shapes_and_dtypes"], str(report)
    text = detail(report, "shapes_and_dtypes")
    assert "process returned shape (2, 960) for a block of shape (2, 1000)" in text
    assert "pad: return zeros until it has output, and declare that delay as its latency" in text
    assert "testing.py" not in str(report)
    skipped = [c.name for c in report.checks if c.skipped]
    assert {"block_size_invariance", "finite_output", "tail_decays", "realtime"} <= set(skipped)
    for name in skipped:
        assert "shapes_and_dtypes says how to fix it" in detail(report, name)
    assert "skip  block_size_invariance" in str(report)
    assert run_reproduction(text).strip() == "(2, 960)"


# -- warnings -----------------------------------------------------------------------------


class LogDomain(Gain):
    """Multiplies in the log domain: log(0) on every silent sample warns (and is harmless)."""

    name = "log_domain"

    def process(self, block):
        return (np.sign(block) * np.exp(np.log(np.abs(block)) + np.log(self.gain))).astype(np.float32)


def test_numpy_warnings_are_counted_and_summarised_not_poured_out():
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        report = check_effect(LogDomain, **FAST)
    assert escaped == []
    assert report.passed, str(report)
    (line,) = report.warnings
    assert line.startswith("RuntimeWarning: divide by zero encountered in log — ")
    count = int(re.search(r"— ([0-9,]+) time", line).group(1).replace(",", ""))
    assert count > 100
    assert "test_validator_measures.py" in line  # where
    assert "warnings the effect raised while it was validated" in str(report)


# -- reproductions, and the report's one word ------------------------------------------


@pytest.mark.parametrize("cls", [OverstatedLatency, Echo, Growing, ShortOutput], ids=lambda c: c.name)
def test_every_failing_check_carries_a_reproduction(cls):
    report = check_effect(cls, **FAST)
    assert report.failures
    _every_failure_has_a_reproduction(report)


def test_checks_and_reports_agree_on_passed():
    report = check_effect(Gain, **FAST)
    assert report.passed and all(c.passed for c in report.checks)
    with pytest.deprecated_call():
        assert report.ok is True


# -- plugins ---------------------------------------------------------------------------------


def _plugin(name: str, hook=None, **extra) -> types.ModuleType:
    module = types.ModuleType(name)
    if hook is not None:
        module.fxhost_effects = hookimpl(hook)
    for key, value in extra.items():
        setattr(module, key, value)
    return module


def test_validate_plugin_checks_the_wiring_then_each_effect():
    report = validate_plugin(_plugin("good_fx", lambda: [Gain, Delay]), **FAST)
    assert [c.name for c in report.wiring] == ["hook_wiring", "effect_classes"]
    assert [r.effect.split()[0] for r in report.effects] == ["gain", "delay"]
    assert "Plugin good_fx: passed" in str(report)


class GainAgain(Gain):
    """Another class with the name ``gain``."""


@pytest.mark.parametrize(
    ("plugin", "check", "words"),
    [
        (_plugin("no_hook"), "hook_wiring", "no fxhost_effects hook"),
        (
            _plugin("instance_fx", lambda: [Gain(48000, 2)]),
            "hook_wiring",
            "the effect classes themselves (not instances)",
        ),
        (
            _plugin("dict_fx", lambda: {"gain": Gain}),
            "hook_wiring",
            "fxhost_effects returned dict, expected a list of effect classes",
        ),
        (_plugin("twice_fx", lambda: [Gain, GainAgain]), "effect_classes", "two effects are named 'gain'"),
        (
            _plugin("typo_fx", lambda: [Gain], fxhost_effect=hookimpl(lambda: [])),
            "hook_wiring",
            "unknown hook 'fxhost_effect'",
        ),
    ],
    ids=["no-hook", "instance", "dict", "duplicate-name", "misspelt-hook"],
)
def test_validate_plugin_refuses_wiring_the_registry_refuses(plugin, check, words):
    with pytest.raises(ConformanceError) as error:
        validate_plugin(plugin, **FAST)
    report = error.value.report
    failed = [c for c in report.wiring if not c.passed]
    assert [c.name for c in failed] == [check]
    assert words in failed[0].detail and "Reproduce:" in failed[0].detail


def test_check_plugin_imports_a_module_by_name():
    report = check_plugin("fxhost_feedback_delay", seconds=0.237)
    assert report.passed, str(report)
    assert [r.effect.split()[0] for r in report.effects] == ["feedback_delay"]


def test_validate_effect_still_raises_for_one_effect():
    with pytest.raises(ConformanceError, match="latency_measured"):
        validate_effect(OverstatedLatency, **FAST)
    assert math.isfinite(DEFAULT_SECONDS)
