"""The conformance validator: does an effect class keep the fxhost effect contract, and
does it do what it declares? It measures rather than trusts.

Think of pluginval for VST/AU plugins. One call from a plugin author's test::

    from fxhost_sdk.testing import validate_effect, validate_plugin

    def test_conformance():
        validate_effect(MyReverb)            # raises ConformanceError, with a report
        validate_plugin(my_plugin)           # the hook wiring, then every effect

or, to look at the report without raising::

    report = check_effect(MyReverb, params={"room_size": 0.9})
    print(report, report.measured)

The checks, by name (``well_formed`` first; if it fails the others are skipped):

``well_formed``            the class is usable (what the host's registry checks).
``defaults_validate``      ``Params()`` passes ``check_params``, survives JSON and pickle, builds an instance.
``params_described``       every field has a description; numeric ones have both bounds.
``bad_params_refused``     values beyond each bound, of the wrong type, and unknown names
                           raise FieldError naming the field; a refused ``set_params``
                           leaves the effect as it was.
``shapes_and_dtypes``      mono and stereo blocks of 0, 1, 2, 3, 64 frames come back float32,
                           C-contiguous, shaped ``(channels, frames)``.
``input_untouched``        the one rule about the input (:data:`INPUT_RULE`), the same for
                           ``process`` and ``process_offline``: the array given is not modified.
``block_size_invariance``  the test signal in one block equals blocks of 1, 7, 64, 256, 4096
                           frames and a ragged rising-and-falling sequence (within 1e-5).
``finite_output``          no NaN/Inf on silence, after the signal stops, on full-scale noise.
``reset_determinism``      ``reset()`` (after an odd number of frames more) then the same
                           signal gives the first pass's output, as a fresh instance does.
``instances_independent``  two instances running interleaved do not affect each other.
``latency_and_tail``       ``latency`` is a non-negative int, ``tail_seconds`` a non-negative
                           float (``math.inf`` allowed).
``latency_measured``       the delay is measured, by an impulse (where its response peaks)
                           and by correlating a noise burst with the output; a declared
                           latency the output responds before fails (too high); a response
                           later than declared is a note (the effect's sound, or undeclared
                           latency: the note says which to do for each).
``tail_decays``            after the input stops the output is measured over a window twice
                           latency + tail (1 s at least): the real decay time to -60 dBFS is
                           reported, and fails if it is longer than declared; an output that
                           grows (or turns NaN/Inf) is reported as instability, not as a short tail.
``param_changes``          ``set_params`` between blocks (defaults, each numeric parameter
                           half-way, each bool flipped, each choice) keeps the output finite;
                           a change that makes the output jump (zipper noise) is noted with
                           the size of the jump.
``realtime``               the real-time factor at :data:`REALTIME_BLOCK_SIZES` frames; a note
                           below 1, a failure below ``min_realtime`` when it is given.

The test signal (:func:`make_test_signal`) lasts 1.37 s by default, with sines at 217.3 Hz
and above: no whole number of seconds or of a common period, so periodic state does not
come back to its start and a ``reset()`` that forgets it shows.

Offline-only effects (``cls.offline_only``, e.g. :class:`fxhost_sdk.OfflineEffect`) need the
whole signal, so the checks that stream through ``process`` (``shapes_and_dtypes``,
``block_size_invariance``, ``finite_output``, ``reset_determinism``,
``instances_independent``, ``latency_measured``, ``tail_decays``, ``param_changes``) do
not apply to them: each is still listed, passed, with a detail that starts ``not
applicable: offline-only effect —`` and says why. ``input_untouched`` and ``realtime``
run on ``process_offline``, and these run too:

``offline_refuses_process``    ``process()`` raises, with a message that says offline-only.
``offline_shapes_and_dtypes``  ``process_offline`` returns float32, C-contiguous,
                               ``(channels, frames)`` (any frame count: trimming is allowed)
                               for mono and stereo inputs of 0, 1 and many frames.
``offline_finite_output``      no NaN/Inf on silence, the test signal and full-scale noise.
``offline_deterministic``      two calls on one instance, and a second instance, agree.

And, for any effect that has them:

``presets_valid``          each of ``cls.presets`` converts, and an instance built from it
                           processes the test signal with finite output.
``bad_asset_refused``      for each asset parameter (:func:`fxhost_sdk.asset`): an asset the
                           loader refuses (FieldError) makes construction and ``set_params``
                           raise FieldError naming ``params.<field>`` (and a refused
                           ``set_params`` leaves the effect as it was); with no loader at
                           all, construction raises FieldError or succeeds, nothing else.

Effects with asset parameters are built with the ``assets`` loader given to
:func:`check_effect`; without one, with :func:`make_test_asset_loader` (a short decaying
stereo noise burst, like an impulse response, at the validator's sample rate), and the
report says so.

**One cause, one failure.** Every check runs (one failure never hides another), except
where one root cause would fail many: a ``process`` that returns the wrong number of
frames (a short output) fails ``shapes_and_dtypes`` once, with its fix (pad, and declare
the latency), and the checks that stream are *skipped* (``Check.skipped``, shown as
``skip``, naming the cause); an unstable effect fails ``tail_decays`` and the checks its
NaN/Inf would fail are skipped. An exception raised by the effect inside a check is that
check's failure. Every failure says what is wrong and ends with a few lines of Python
that reproduce it (with :func:`make_test_signal` and :func:`process_blocks`, or
:func:`check_effect` itself). Warnings the effect raises (numpy's divide by zero...) are
counted and listed once per kind at the end of the report, never printed one by one.

A report's word for success is ``passed``, on :class:`Check` and :class:`ConformanceReport`
alike (``ConformanceReport.ok`` is a deprecated alias). ``report.measured`` keeps the
figures: the latency by impulse and by correlation (frames), the decay time (seconds),
the real-time factor per block size.

:func:`validate_plugin` (or :func:`check_plugin`) takes the plugin module, the one the
entry point names, and checks it as the host's registry loads it: pluggy accepts it, it
implements ``fxhost_effects`` and no unknown hook, the hook returns a list of effect
classes with unique, valid names; then each effect is validated.

This module imports only the SDK's own dependencies (msgspec, numpy, pluggy) and the
standard library, so it runs from plain Python as well as from pytest, and the host's
``fxhost validate EFFECT`` prints the same report.

One module for one concept, the validator, though it is long: the checks share one
context (the effect, its parameters, the test signal, how to build and run an instance)
and one way of reporting (a failure that says what and gives a repro); they are kept
side by side so that each reads like the others. Plugin authors import it by this
one name.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import itertools
import math
import pickle
import re
import time
import traceback
import types
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from fxhost_sdk.effect import AssetLoader, Effect, LoadedAudio, effect_class_problems
from fxhost_sdk.params import FieldError, Params, asset_fields
from fxhost_sdk.wiring import error_reason, hook_effect_classes

__all__ = [
    "DEFAULT_SECONDS",
    "FIXED_BLOCK_SIZES",
    "INPUT_RULE",
    "RAGGED_BLOCK_SIZES",
    "REALTIME_BLOCK_SIZES",
    "TOLERANCE",
    "Check",
    "ConformanceError",
    "ConformanceReport",
    "PluginReport",
    "check_effect",
    "check_plugin",
    "make_test_asset_loader",
    "make_test_signal",
    "process_blocks",
    "validate_effect",
    "validate_plugin",
]

#: Largest difference (absolute, full scale 1.0) allowed between the whole-signal
#: output and the output of the same signal cut into blocks.
TOLERANCE = 1e-5
#: Largest difference allowed between two runs that must be identical (reset, fresh
#: instances, instances running side by side).
RESET_TOLERANCE = 1e-6
#: Fixed block sizes compared with the whole signal processed in one block.
FIXED_BLOCK_SIZES = (1, 7, 64, 256, 4096)
#: A ragged sequence of block sizes (cycled) that rises and falls: 4096 and then 8192
#: each arrive after smaller blocks and are larger than any before them, which is
#: when a host wrapper that re-prepares its DSP for a larger block loses its state.
RAGGED_BLOCK_SIZES = (1, 3, 64, 17, 512, 2, 1000, 7, 4096, 5, 8192, 33, 128, 1, 2048, 11)
#: Blocks of one frame are slow for any Python effect: they run on this prefix only.
ONE_FRAME_PREFIX_SECONDS = 0.1
#: Block sizes whose output shape and dtype are checked one by one.
SHAPE_BLOCK_SIZES = (0, 1, 2, 3, 64)
#: -60 dBFS: the level under which an effect's tail counts as ended.
TAIL_THRESHOLD = 1e-3
#: Tails longer than this are not measured (it would take too long).
MAX_MEASURED_TAIL_SECONDS = 60.0

#: Length of the test signal (seconds): not a whole number of seconds nor of any common
#: period, so that periodic state (an LFO at 1 Hz, a 0.5 s delay line) does not come back
#: to where it started by the end of it.
DEFAULT_SECONDS = 1.37
#: Pitch of the test signal's sine on its first channel (Hz): no round number either.
SIGNAL_HZ = 217.3
#: Block sizes the real-time factor is measured at.
REALTIME_BLOCK_SIZES = (64, 256, 1024)
#: Longest time spent timing one block size (seconds of processing).
REALTIME_BUDGET_SECONDS = 0.4
#: A step in the output larger than this (-40 dBFS) beyond the signal's own steps, where a
#: parameter changed between two blocks, is noted as zipper noise.
ZIPPER_THRESHOLD = 0.01
#: The one rule about the array an effect is given, for process and process_offline alike.
INPUT_RULE = (
    "An effect must not modify the array it is given (process's block, process_offline's "
    "audio): the caller still owns it (a host may keep the dry signal, meter it, or process "
    "it again). Compute into a new array (block * gain, not block *= gain) or a buffer of "
    "the effect's own."
)

#: Length of the audio the built-in test asset loader returns.
TEST_ASSET_SECONDS = 0.2

_STREAM_BLOCK = 512  # the block size of checks that are not about block sizes
_ODD_FRAMES = 1237  # processed between the reset check's two passes: no common period
_LAYOUTS = (("stereo", 2), ("mono", 1))


# -- the report ---------------------------------------------------------------------


class ConformanceError(AssertionError):
    """An effect (or a plugin) failed the conformance checks; ``str()`` is the full
    plain-words report, ``report`` the :class:`ConformanceReport` or :class:`PluginReport`."""

    def __init__(self, report: ConformanceReport | PluginReport):
        super().__init__(str(report))
        self.report = report


@dataclass
class Check:
    """One named check. ``detail`` says, for a failure, what is wrong and how to reproduce it;
    for a pass, what was checked (and any note worth reading).

    ``skipped``: the check did not run because another check's failure is its cause too
    (``detail`` names that check); it is not a failure of its own, and ``passed`` is False.
    """

    name: str
    passed: bool
    detail: str = ""
    skipped: bool = False


def _check_lines(check: Check) -> list[str]:
    mark = "skip" if check.skipped else "ok  " if check.passed else "FAIL"
    return [f"  {mark}  {check.name}", *(f"          {line}".rstrip() for line in check.detail.splitlines())]


@dataclass
class ConformanceReport:
    """The result of :func:`check_effect`: every check, passed, failed or skipped.

    ``measured`` holds what the validator measured (``latency_impulse``,
    ``latency_correlation`` in frames, ``tail_seconds`` after the input stops,
    ``realtime`` block size -> real-time factor); ``warnings`` the numpy (and other)
    warnings the effect raised while it was validated, counted, one line per kind.
    """

    effect: str
    checks: list[Check] = field(default_factory=list)
    measured: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True if no check failed (the word :class:`Check` uses too)."""
        return not self.failures

    @property
    def ok(self) -> bool:
        """Deprecated alias of :attr:`passed`."""
        warnings.warn("ConformanceReport.ok is deprecated: use .passed", DeprecationWarning, stacklevel=2)
        return self.passed

    @property
    def failures(self) -> list[Check]:
        """The checks that failed (not those skipped because of one of them)."""
        return [check for check in self.checks if not check.passed and not check.skipped]

    def check(self, name: str) -> Check:
        """The check called ``name`` (KeyError if it did not run)."""
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)

    def __str__(self) -> str:
        failed = len(self.failures)
        verdict = "passed" if self.passed else f"FAILED ({failed} of {len(self.checks)} checks)"
        lines = [f"Conformance of {self.effect}: {verdict}"]
        for check in self.checks:
            lines.extend(_check_lines(check))
        if self.warnings:
            lines.append("  warnings the effect raised while it was validated (counted, each kind once):")
            lines.extend(f"          {line}" for line in self.warnings)
        return "\n".join(lines)


@dataclass
class PluginReport:
    """The result of :func:`check_plugin`: the plugin's hook wiring, then each effect's report."""

    plugin: str
    wiring: list[Check] = field(default_factory=list)
    effects: list[ConformanceReport] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.wiring) and all(r.passed for r in self.effects)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.wiring if not c.passed] + [c for r in self.effects for c in r.failures]

    def __str__(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        lines = [f"Plugin {self.plugin}: {verdict}"]
        for check in self.wiring:
            lines.extend(_check_lines(check))
        text = "\n".join(lines)
        return "\n\n".join([text, *(str(report) for report in self.effects)])


# -- helpers a plugin author can use to reproduce a failure -------------------------


def make_test_signal(
    sample_rate: float, channels: int, seconds: float = DEFAULT_SECONDS, seed: int = 0
) -> np.ndarray:
    """The validator's deterministic test signal: float32 ``(channels, frames)``.

    Seeded white noise plus a sine (a different pitch on each channel: 217.3 Hz, then
    1.5x more each), 0.5 peak at most, with silence from 40% to 55% of its length. Its
    default length (1.37 s) and pitches are whole numbers of nothing common, so an LFO at
    a round rate does not end where it began and a reset() that forgets it shows.
    """
    frames = max(1, round(seconds * sample_rate))
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / float(sample_rate)
    freqs = SIGNAL_HZ * (1.0 + 0.5 * np.arange(channels))[:, None]
    signal = rng.uniform(-0.25, 0.25, size=(channels, frames))
    signal += 0.25 * np.sin(2.0 * np.pi * freqs * t)
    signal[:, int(0.40 * frames) : int(0.55 * frames)] = 0.0
    return np.ascontiguousarray(signal, dtype=np.float32)


def make_test_asset_loader(
    sample_rate: float, seconds: float = TEST_ASSET_SECONDS, channels: int = 2
) -> AssetLoader:
    """The validator's asset loader, for effects with asset parameters when no loader is
    given: any value gives a short impulse response, float32 ``(channels, frames)`` at
    ``sample_rate``: white noise seeded by the value (the same value, the same audio)
    under an exponential decay that reaches -60 dB at its end, 0.5 peak at most."""
    frames = max(1, round(seconds * sample_rate))
    envelope = np.exp(-math.log(1000.0) * np.arange(frames) / frames)

    def load(value: str, path: str) -> LoadedAudio:
        rng = np.random.default_rng(zlib.crc32(str(value).encode()))
        noise = rng.uniform(-0.5, 0.5, size=(channels, frames)) * envelope
        return LoadedAudio(np.ascontiguousarray(noise, dtype=np.float32), float(sample_rate))

    return load


def process_blocks(effect: Effect, signal: np.ndarray, sizes: int | Sequence[int]) -> np.ndarray:
    """Stream ``signal`` through ``effect.process`` in blocks and return the joined output.

    ``sizes`` is one block size, or a sequence of sizes used in turn (cycled) until the
    signal ends; the last block may be shorter. Each block is a fresh C-contiguous
    float32 copy, each output is copied, so neither side can corrupt the other.
    Raises ``ValueError``/``TypeError`` if ``process`` returns something that is not an
    array shaped ``(channels, frames)``.
    """
    signal = np.asarray(signal, dtype=np.float32)
    channels, total = signal.shape
    outputs = []
    for start, stop in _spans(sizes, total):
        block = np.array(signal[:, start:stop], dtype=np.float32, order="C", copy=True)
        out = _checked_output(effect.process(block), channels, stop - start)
        outputs.append(np.array(out, copy=True))
    if not outputs:
        return np.zeros((channels, 0), dtype=np.float32)
    return np.concatenate(outputs, axis=1)


def _spans(sizes: int | Sequence[int], total: int) -> Iterator[tuple[int, int]]:
    cycle = itertools.cycle([sizes] if isinstance(sizes, int | np.integer) else list(sizes))
    start = 0
    while start < total:
        size = int(next(cycle))
        if size < 1:
            raise ValueError(f"block sizes must be positive, got {size}")
        stop = min(total, start + size)
        yield start, stop
        start = stop


def _checked_output(out: Any, channels: int, frames: int) -> np.ndarray:
    if not isinstance(out, np.ndarray):
        raise _WrongOutput(
            f"process returned {type(out).__name__} for a block of shape {(channels, frames)}; "
            "it must return a numpy array"
        )
    if out.shape != (channels, frames):
        raise _WrongOutput(
            f"process returned shape {out.shape} for a block of shape {(channels, frames)}; "
            "it must return (channels, frames), the shape it was given"
        )
    return out


# -- the entry points ---------------------------------------------------------------


def check_effect(
    effect_cls: Any,
    *,
    sample_rate: float = 48000,
    params: Params | Mapping[str, Any] | None = None,
    seconds: float = DEFAULT_SECONDS,
    seed: int = 0,
    assets: AssetLoader | None = None,
    min_realtime: float | None = None,
) -> ConformanceReport:
    """Run every conformance check on ``effect_cls`` and return the report.

    ``params`` (a mapping or a Params instance; the defaults if None) are used for the
    processing checks. ``seconds`` is the length of the test signal, ``seed`` seeds it.
    ``assets`` is the loader effects are built with (``Effect(..., assets=...)``); an
    effect with asset parameters gets :func:`make_test_asset_loader` if it is None.
    ``min_realtime``: the ``realtime`` check fails if the effect processes slower than
    this many times real time at any of :data:`REALTIME_BLOCK_SIZES` (by default the
    real-time factor is only reported).
    Raises :class:`~fxhost_sdk.FieldError` if ``params`` themselves are invalid, and
    ``ValueError`` for a bad ``sample_rate``, ``seconds`` or ``min_realtime``: those are
    the caller's mistakes, not the effect's.
    """
    if not (isinstance(sample_rate, int | float) and math.isfinite(sample_rate) and sample_rate > 0):
        raise ValueError(f"sample_rate must be a positive number, got {sample_rate!r}")
    if not (isinstance(seconds, int | float) and math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"seconds must be a positive number, got {seconds!r}")
    if min_realtime is not None and not (
        isinstance(min_realtime, int | float) and math.isfinite(min_realtime) and min_realtime > 0
    ):
        raise ValueError(f"min_realtime must be a positive number, got {min_realtime!r}")
    report = ConformanceReport(effect=_describe_class(effect_cls))
    options = {"sample_rate": sample_rate, "seconds": seconds, "seed": seed, "params": params}
    problems = effect_class_problems(effect_cls)
    report.checks.append(
        Check(
            "well_formed",
            not problems,
            "\n".join(problems)
            + "\n(the other checks were skipped)\n"
            + _generic_repro(effect_cls, "well_formed", options, assets)
            if problems
            else "name, version, summary, Params and process are all in order",
        )
    )
    if problems:
        return report
    fields = asset_fields(effect_cls.Params)
    builtin_assets = assets is None and bool(fields)
    ctx = _Context(
        effect_cls,
        float(sample_rate),
        effect_cls.check_params(effect_cls.Params() if params is None else params),
        float(seconds),
        int(seed),
        assets=make_test_asset_loader(float(sample_rate)) if builtin_assets else assets,
        builtin_assets=builtin_assets,
        asset_fields=fields,
        min_realtime=min_realtime,
        report=report,
        options=options,
        given_assets=assets,
    )
    with _counted_warnings() as counted:
        ctx.probe()
        for name, run in _CHECKS:
            if ctx.offline and name in _NOT_APPLICABLE_OFFLINE:
                why = _NOT_APPLICABLE_OFFLINE[name]
                report.checks.append(Check(name, True, f"not applicable: offline-only effect — {why}"))
            else:
                report.checks.append(_run_check(name, run, ctx))
        extra = list(_OFFLINE_CHECKS) if ctx.offline else []
        if effect_cls.presets:
            extra.append(("presets_valid", _check_presets))
        if fields:
            extra.append(("bad_asset_refused", _check_bad_asset))
        for name, run in extra:
            report.checks.append(_run_check(name, run, ctx))
    report.warnings = counted.summary()
    return report


# check_effect's options, once: its signature is validate_effect's too (help(), IDEs).
@functools.wraps(check_effect, assigned=())
def validate_effect(effect_cls: Any, **options: Any) -> ConformanceReport:
    """:func:`check_effect` with the same options (``sample_rate``, ``params``,
    ``seconds``, ``seed``, ``assets``, ``min_realtime``), raising
    :class:`ConformanceError` (an AssertionError whose message is the report) if any
    check fails. Returns the report otherwise."""
    report = check_effect(effect_cls, **options)
    if not report.passed:
        raise ConformanceError(report)
    return report


def check_plugin(plugin: Any, **options: Any) -> PluginReport:
    """Check a plugin the way the host's registry loads it, then each of its effects.

    ``plugin`` is the plugin module (or its importable name): what the ``fxhost`` entry
    point names. ``hook_wiring``: pluggy accepts it for the project ``fxhost``, it
    implements ``fxhost_effects`` (marked with ``fxhost_sdk.hookimpl``) and no unknown
    hook, and the hook returns a list of classes. ``effect_classes``: each is a usable
    effect class and their names are unique. Then :func:`check_effect` runs on each
    class, with ``options`` (the same as :func:`check_effect`'s; ``params`` apply to
    every effect, so give them per effect with check_effect instead).
    """
    import pluggy

    from fxhost_sdk import hookspecs
    from fxhost_sdk.markers import PROJECT

    if isinstance(plugin, str):
        plugin = importlib.import_module(plugin)
    label = getattr(plugin, "__name__", repr(plugin))
    report = PluginReport(plugin=label)
    repro = "\n".join(
        [
            "Reproduce:",
            f"    import {label}" if isinstance(plugin, types.ModuleType) else "    plugin = ...",
            "    from fxhost_sdk.testing import check_plugin",
            f"    print(check_plugin({label if isinstance(plugin, types.ModuleType) else 'plugin'}))",
        ]
    )

    def wiring(problem: str | None, ok: str) -> bool:
        report.wiring.append(
            Check("hook_wiring", problem is None, ok if problem is None else f"{problem}\n{repro}")
        )
        return problem is None

    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    try:
        pm.register(plugin, name=label)
    except Exception as error:
        wiring(f"the host's registry refuses this plugin: {error_reason('invalid plugin', error)}", "")
        return report
    # The registry's own call (fxhost_sdk.wiring): what fails here fails there, in the same words.
    classes, reason = hook_effect_classes(pm, plugin, label)
    if reason is not None:
        advice = ""
        if "no fxhost_effects hook" in reason:
            advice = (
                "; define `@fxhost_sdk.hookimpl def fxhost_effects(): return [MyEffect]` in the module "
                "the entry point names"
            )
        elif "containing" in reason:
            advice = "; it must hold the effect classes themselves (not instances)"
        wiring(f"the host's registry refuses this plugin: {reason}{advice}", "")
        return report
    wiring(None, f"fxhost_effects returns {len(classes)} effect class(es)")
    problems: list[str] = []
    first: dict[str, Any] = {}
    for cls in classes:
        found = effect_class_problems(cls)
        problems.extend(found)
        name = getattr(cls, "name", None)
        if found or not isinstance(name, str):
            continue
        if name in first and first[name] is not cls:
            problems.append(
                f"two effects are named {name!r}: {_describe_class(first[name])} and {_describe_class(cls)}; "
                "the registry keeps the first and rejects the second"
            )
        first.setdefault(name, cls)
    if not classes:
        problems.append("fxhost_effects returns no effect classes (the host lists the plugin with a warning)")
    names_ok = f"{len(first)} effect class(es), each well formed, names unique: {', '.join(first)}"
    report.wiring.append(
        Check("effect_classes", not problems, "\n".join([*problems, repro]) if problems else names_ok)
    )
    seen: set[type] = set()
    for cls in classes:
        if cls not in seen and not effect_class_problems(cls):
            seen.add(cls)
            report.effects.append(check_effect(cls, **options))
    return report


@functools.wraps(check_plugin, assigned=())
def validate_plugin(plugin: Any, **options: Any) -> PluginReport:
    """:func:`check_plugin`, raising :class:`ConformanceError` if its wiring or any of its
    effects fails. Returns the report otherwise. In a plugin's tests::

        import my_plugin
        from fxhost_sdk.testing import validate_plugin

        def test_plugin():
            validate_plugin(my_plugin)
    """
    report = check_plugin(plugin, **options)
    if not report.passed:
        raise ConformanceError(report)
    return report


# -- machinery ----------------------------------------------------------------------


#: "The params the validator was given", as opposed to None (the defaults).
_GIVEN: Any = object()


@dataclass
class _Context:
    cls: type[Effect]
    sample_rate: float
    params: Params
    seconds: float
    seed: int
    assets: AssetLoader | None = None
    builtin_assets: bool = False  # assets is make_test_asset_loader, not the caller's
    asset_fields: list[str] = field(default_factory=list)
    min_realtime: float | None = None
    report: ConformanceReport | None = None
    options: dict[str, Any] = field(default_factory=dict)  # check_effect's, for reproductions
    given_assets: AssetLoader | None = None
    #: Set by :meth:`probe`: what is wrong with ``process``'s output shape (None: nothing),
    #: the one cause of every streaming check's failure, reported by shapes_and_dtypes.
    stream_problem: str | None = None
    stream_frames: int = 0  # the block size it showed at
    #: Set by :meth:`probe`: what happens after the input stops (see _measure_tail).
    tail: _Tail | None = None
    _signals: dict[int, np.ndarray] = field(default_factory=dict)

    def probe(self) -> None:
        """Find the root causes that would make many checks fail at once: a ``process``
        that returns the wrong shape, an output that grows after the input stops."""
        if self.offline:
            return
        try:
            instance = self.new(2)
        except Exception:
            return  # each check reports it
        for frames in (_STREAM_BLOCK, 64, 1000):
            block = np.array(self.signal(2)[:, :frames], dtype=np.float32, order="C")
            try:
                out = instance.process(block)
            except Exception:
                return
            if not isinstance(out, np.ndarray):
                self.stream_problem = f"process returned {type(out).__name__}, not a numpy array"
                self.stream_frames = frames
                return
            if out.shape != block.shape:
                self.stream_problem = f"process returned shape {out.shape} for a block of shape {block.shape}"
                self.stream_frames = frames
                return
        with contextlib.suppress(Exception):
            self.tail = _measure_tail(self)

    def require_stream(self) -> None:
        """Raise :class:`_Skipped` if the output shape is wrong (shapes_and_dtypes says so)."""
        if self.stream_problem:
            raise _Skipped(
                f"skipped: {self.stream_problem}, so nothing that streams can be checked; "
                "shapes_and_dtypes says how to fix it"
            )

    def require_stable(self) -> None:
        """Raise :class:`_Skipped` if the output grows after the input stops (tail_decays)."""
        if self.tail is not None and self.tail.unstable:
            raise _Skipped(
                "skipped: the effect is unstable (its output grows after the input stops), which "
                "makes this check fail too; tail_decays says how to fix it"
            )

    def measure(self, key: str, value: Any) -> None:
        if self.report is not None:
            self.report.measured[key] = value

    @property
    def offline(self) -> bool:
        return bool(getattr(self.cls, "offline_only", False))

    def signal(self, channels: int) -> np.ndarray:
        if channels not in self._signals:
            self._signals[channels] = make_test_signal(self.sample_rate, channels, self.seconds, self.seed)
        return self._signals[channels]

    def new(self, channels: int, params: Params | Mapping[str, Any] | None = _GIVEN) -> Effect:
        """An instance with the params the validator was given (or ``params``; None for the
        defaults), built with the asset loader if there is one."""
        chosen = self.params if params is _GIVEN else params
        if self.assets is not None:
            return self.cls(self.sample_rate, channels, chosen, assets=self.assets)
        return self.cls(self.sample_rate, channels, chosen)

    def ctor(self, channels: int) -> str:
        """The Python that builds the instance :meth:`new` builds, for reproductions."""
        extra = ", assets=assets" if self.assets is not None else ""
        return f"{self.cls.__name__}({self.sample_rate!r}, {channels}, params{extra})"

    def run(self, instance: Effect, x: np.ndarray) -> np.ndarray:
        """The whole of ``x`` through ``instance``: in blocks for a streaming effect, in
        one ``process_offline`` call for an offline-only one."""
        if self.offline:
            return _offline_output(instance, x)
        return process_blocks(instance, x, _STREAM_BLOCK)

    @property
    def assets_note(self) -> str | None:
        if not self.asset_fields or self.assets is None:
            return None
        names = ", ".join(self.asset_fields)
        if self.builtin_assets:
            return (
                f"note: no asset loader was given, so the asset parameter(s) {names} load through "
                f"the validator's built-in test loader (make_test_asset_loader: {TEST_ASSET_SECONDS:g} s "
                f"of decaying stereo noise at {self.sample_rate:g} Hz, whatever the value)"
            )
        return f"note: the asset parameter(s) {names} load through the loader given to check_effect"

    @property
    def frames(self) -> int:
        return self.signal(1).shape[1]

    def _repro_assets(self) -> list[str]:
        if self.assets is None:
            return []
        if self.builtin_assets:
            return [
                "from fxhost_sdk.testing import make_test_asset_loader",
                f"assets = make_test_asset_loader({self.sample_rate!r})",
            ]
        return ["assets = ...  # the asset loader given to check_effect"]

    def repro(self, channels: int, *lines: str, prefix: int | None = None) -> str:
        """Python lines that rebuild the test signal and the effect, then ``lines``."""
        cls = self.cls
        where = f"from {cls.__module__} import {cls.__name__}"
        if "<locals>" in cls.__qualname__:
            where += f"  # {cls.__qualname__} is defined inside a function"
        cut = f"[:, :{prefix}]" if prefix is not None else ""
        head = [
            "import numpy as np",
            "from fxhost_sdk.testing import make_test_signal, process_blocks",
            where,
            f"params = {msgspec.to_builtins(self.params)!r}",
            *self._repro_assets(),
            f"x = make_test_signal({self.sample_rate!r}, {channels}, "
            f"seconds={self.seconds!r}, seed={self.seed!r}){cut}",
        ]
        return "Reproduce:\n" + "\n".join("    " + line for line in (*head, *lines))


#: What :meth:`_Problems.attempt` returns when the call raised (and was recorded).
_FAILED: Any = object()


class _Problems:
    """Collects what went wrong in one check, so one sub-case never hides another."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.notes: list[str] = []

    def add(self, text: str) -> None:
        self.items.append(text)

    def attempt(self, label: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as error:
            self.add(f"{label}: raised {_describe_error(error)}")
            return _FAILED

    def result(self, ok_detail: str) -> tuple[bool, str]:
        if self.items:
            return False, "\n".join(self.items + self.notes)
        return True, "\n".join([ok_detail, *self.notes])


class _Skipped(Exception):
    """Raised by a check whose failure would only repeat another check's (the message says which)."""


class _WrongOutput(ValueError, TypeError):
    """``process`` returned something that is not ``(channels, frames)`` float audio."""


#: Checks that stream through ``process`` and cannot run while it returns the wrong shape.
_STREAMING = {
    "input_untouched",
    "block_size_invariance",
    "finite_output",
    "reset_determinism",
    "instances_independent",
    "latency_measured",
    "tail_decays",
    "param_changes",
    "realtime",
}


def _run_check(name: str, run: Callable[[_Context], tuple[bool, str]], ctx: _Context) -> Check:
    try:
        if name in _STREAMING and not ctx.offline:
            ctx.require_stream()
        passed, detail = run(ctx)
    except _Skipped as skipped:
        return Check(name, False, str(skipped), skipped=True)
    except Exception as error:
        passed, detail = False, f"the check could not finish: raised {_describe_error(error)}"
    if not passed and "Reproduce:" not in detail:
        detail += "\n" + _generic_repro(ctx.cls, name, ctx.options, ctx.given_assets)
    return Check(name, passed, detail)


def _generic_repro(cls: Any, name: str, options: Mapping[str, Any], assets: AssetLoader | None) -> str:
    """Python that runs the validator on this one effect and prints check ``name``."""
    where = f"from {getattr(cls, '__module__', '?')} import {getattr(cls, '__name__', cls)}"
    if "<locals>" in getattr(cls, "__qualname__", ""):
        where += f"  # {cls.__qualname__} is defined inside a function"
    args = [getattr(cls, "__name__", "cls")]
    for key in ("sample_rate", "seconds", "seed"):
        args.append(f"{key}={options.get(key)!r}")
    params = options.get("params")
    if params is not None:
        args.append(f"params={msgspec.to_builtins(params)!r}")
    lines = ["from fxhost_sdk.testing import check_effect", where]
    if assets is not None:
        lines.append("assets = ...  # the asset loader given to check_effect")
        args.append("assets=assets")
    lines.append(f"print(check_effect({', '.join(args)}).check({name!r}))")
    return "Reproduce:\n" + "\n".join("    " + line for line in lines)


class _WarningCounter:
    """Warnings raised while the checks run, counted by kind and place instead of shown."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, str]] = Counter()

    def show(self, message: Any, category: type, filename: str, lineno: int, *args: Any, **kw: Any) -> None:
        text = " ".join(str(message).split())
        self.counts[(category.__name__, text, f"{filename}:{lineno}")] += 1

    def summary(self) -> list[str]:
        return [
            f"{kind}: {text} — {count:,} time(s), at {where}"
            for (kind, text, where), count in self.counts.most_common()
        ]


@contextlib.contextmanager
def _counted_warnings() -> Iterator[_WarningCounter]:
    counter = _WarningCounter()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = counter.show
        yield counter


def _describe_error(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    if isinstance(error, _WrongOutput):
        return text  # the validator's own words about the output: where it was raised says nothing
    frames = traceback.extract_tb(error.__traceback__)
    if frames:
        last = frames[-1]
        text += f" (at {last.filename}:{last.lineno}, in {last.name})"
    return text


def _describe_class(cls: Any) -> str:
    if isinstance(cls, type):
        name = getattr(cls, "name", None)
        where = f"{cls.__module__}.{cls.__qualname__}"
        return f"{name} ({where})" if isinstance(name, str) else where
    return repr(cls)


def _difference(reference: np.ndarray, other: np.ndarray, tolerance: float) -> tuple[float, int | None]:
    """Largest absolute difference and the first frame where it exceeds ``tolerance``
    (None if nowhere). NaN/Inf in the same place on both sides count as equal."""
    a = reference.astype(np.float64)
    b = other.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(a - b)
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        bad = ~(same | (diff <= tolerance))
    if not bad.any():
        finite = np.where(same, 0.0, diff)
        return (float(finite.max()) if finite.size else 0.0), None
    worst = diff[bad]
    largest = math.inf if not np.isfinite(worst).all() else float(worst.max())
    return largest, int(np.flatnonzero(bad.any(axis=0))[0])


def _block_at(sizes: int | Sequence[int], total: int, frame: int) -> str:
    largest = 0
    for index, (start, stop) in enumerate(_spans(sizes, total)):
        if start <= frame < stop:
            where = "the start" if frame == start else f"frame {frame - start}"
            text = f"{where} of block #{index} (frames {start}..{stop - 1}, {stop - start} long"
            if stop - start > largest and index > 0:
                text += ", larger than any block before it"
            return text + ")"
        largest = max(largest, stop - start)
    return "the end"


def _peak(x: np.ndarray) -> float:
    return float(np.max(np.abs(x))) if x.size else 0.0


def _dbfs(level: float) -> str:
    return "-inf dBFS" if level <= 0 else f"{20 * math.log10(level):.1f} dBFS"


def _nonfinite(x: np.ndarray) -> str | None:
    bad = ~np.isfinite(x)
    if not bad.any():
        return None
    kinds = " and ".join(k for k, m in (("NaN", np.isnan(x)), ("Inf", np.isinf(x))) if m.any())
    frame = int(np.flatnonzero(bad.any(axis=0))[0])
    return f"{kinds} from frame {frame} ({int(bad.sum())} samples)"


# -- parameter introspection --------------------------------------------------------


@dataclass
class _Field:
    name: str  # attribute name
    key: str  # name on the wire (what a mapping uses, what the FieldError path ends with)
    kind: str  # "int", "float", "bool", "str", "literal" or "other"
    description: str | None
    lower: tuple[str, float] | None  # ("ge", 0.0) or ("gt", 0.0)
    upper: tuple[str, float] | None
    multiple_of: float | None
    choices: tuple[Any, ...]

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "float")

    def outside(self) -> list[tuple[str, Any]]:
        """(which bound, a value just beyond it) for each bound."""
        values: list[tuple[str, Any]] = []
        if self.lower is not None:
            op, bound = self.lower
            values.append((f"{op}={bound!r}", self._beyond(op, bound, -1)))
        if self.upper is not None:
            op, bound = self.upper
            values.append((f"{op}={bound!r}", self._beyond(op, bound, 1)))
        return values

    def _beyond(self, op: str, bound: float, sign: int) -> Any:
        if op in ("gt", "lt"):
            return int(bound) if self.kind == "int" else float(bound)
        if self.kind == "int":
            return int(bound) + sign
        return float(bound) + sign * max(1.0, abs(float(bound)))

    def middle(self) -> Any:
        """A valid value half-way between the bounds (None if unbounded)."""
        if self.lower is None or self.upper is None:
            return None
        (lo_op, lo), (hi_op, hi) = self.lower, self.upper
        if self.kind == "int":
            lo_i = int(lo) + (1 if lo_op == "gt" else 0)
            hi_i = int(hi) - (1 if hi_op == "lt" else 0)
            value: Any = (lo_i + hi_i) // 2
            if self.multiple_of:
                step = int(self.multiple_of)
                value = max(lo_i, min(hi_i, round(value / step) * step))
            return value
        value = (float(lo) + float(hi)) / 2.0
        if self.multiple_of:
            value = round(value / self.multiple_of) * self.multiple_of
        return float(value)

    def wrong_type(self) -> Any:
        """A value of the wrong type for this field (None if there is no clear one)."""
        return {
            "int": "not a number",
            "float": "not a number",
            "bool": "yes",
            "str": 123,
            "literal": "__not_one_of_the_choices__",
        }.get(self.kind)


def _param_fields(params_cls: type[Params]) -> list[_Field]:
    info = msgspec.inspect.type_info(params_cls)
    fields = []
    for f in info.fields:
        t, description = f.type, None
        while True:
            if isinstance(t, msgspec.inspect.Metadata):
                text = (t.extra_json_schema or {}).get("description")
                if description is None and isinstance(text, str):
                    description = text
                t = t.type
            elif isinstance(t, msgspec.inspect.UnionType):
                others = [x for x in t.types if not isinstance(x, msgspec.inspect.NoneType)]
                if len(others) != 1:
                    break
                t = others[0]
            else:
                break
        kind, lower, upper, multiple_of, choices = "other", None, None, None, ()
        if isinstance(t, msgspec.inspect.IntType | msgspec.inspect.FloatType):
            kind = "int" if isinstance(t, msgspec.inspect.IntType) else "float"
            lower = ("ge", t.ge) if t.ge is not None else ("gt", t.gt) if t.gt is not None else None
            upper = ("le", t.le) if t.le is not None else ("lt", t.lt) if t.lt is not None else None
            multiple_of = t.multiple_of
        elif isinstance(t, msgspec.inspect.BoolType):
            kind = "bool"
        elif isinstance(t, msgspec.inspect.StrType):
            kind = "str"
        elif isinstance(t, msgspec.inspect.LiteralType):
            kind, choices = "literal", tuple(t.values)
        fields.append(_Field(f.name, f.encode_name, kind, description, lower, upper, multiple_of, choices))
    return fields


def _refusal(cls: type[Effect], value: Mapping[str, Any], key: str) -> str | None:
    """None if ``cls.check_params(value)`` raises FieldError with a path ending in ``key``;
    otherwise what happened instead."""
    call = f"{cls.__name__}.check_params({dict(value)!r})"
    try:
        cls.check_params(value)
    except FieldError as error:
        if error.path == key or error.path.endswith("." + key):
            return None
        return f"{call} raised FieldError with path {error.path!r}, which does not name {key!r}"
    except Exception as error:
        return f"{call} raised {_describe_error(error)}, not fxhost_sdk.FieldError"
    return f"{call} was accepted"


# -- the checks ---------------------------------------------------------------------


def _check_defaults(ctx: _Context) -> tuple[bool, str]:
    p = _Problems()
    cls = ctx.cls
    defaults = p.attempt(f"{cls.__name__}.Params()", cls.Params)
    if defaults is not _FAILED:
        checked = p.attempt(
            f"{cls.__name__}.check_params({cls.__name__}.Params())",
            lambda: cls.check_params(defaults),
        )
        if checked is not _FAILED and checked != defaults:
            p.add(f"check_params(Params()) returned {checked!r}, not the defaults {defaults!r}")

        def round_trip() -> None:
            decoded = msgspec.json.decode(msgspec.json.encode(defaults), type=cls.Params)
            if decoded != defaults:
                p.add(f"the defaults do not survive JSON: {defaults!r} came back as {decoded!r}")

        p.attempt("the defaults through JSON (encode, then decode into Params)", round_trip)

        def pickled() -> None:
            # A host may run the effect in another process (fxhost's renders do), and
            # sends it the parameters pickled: a Params class pickle cannot find by its
            # qualified name (one defined inside a function) fails there, not here.
            if pickle.loads(pickle.dumps(defaults)) != defaults:
                p.add(f"the defaults do not survive pickle: {defaults!r}")

        p.attempt("the defaults through pickle (as a host sends them to a worker process)", pickled)

        def construct() -> None:
            instance = ctx.new(2, None)
            if instance.params != defaults:
                p.add(
                    f"{cls.__name__}({ctx.sample_rate!r}, 2).params is {instance.params!r}, "
                    f"not the defaults {defaults!r}"
                )

        p.attempt(f"{cls.__name__}({ctx.sample_rate!r}, 2) with default parameters", construct)
    if ctx.assets_note:
        p.notes.append(ctx.assets_note)
    return p.result(
        f"defaults validate and survive JSON: {msgspec.to_builtins(defaults)!r}"
        if defaults is not _FAILED
        else ""
    )


def _check_described(ctx: _Context) -> tuple[bool, str]:
    p = _Problems()
    fields = _param_fields(ctx.cls.Params)
    for f in fields:
        if not (f.description and f.description.strip()):
            p.add(
                f"parameter {f.key!r} has no description: declare it as "
                f"Annotated[..., fxhost_sdk.param(description=...)]"
            )
        if f.numeric:
            missing = [side for side, b in (("lower", f.lower), ("upper", f.upper)) if b is None]
            if missing:
                p.add(
                    f"parameter {f.key!r} has no {' and no '.join(missing)} bound: give it "
                    f"{' and '.join('ge' if s == 'lower' else 'le' for s in missing)} "
                    f"(or {' and '.join('gt' if s == 'lower' else 'lt' for s in missing)})"
                )
    p.attempt(
        "msgspec.json.schema(Params), the schema served to clients",
        lambda: msgspec.json.schema(ctx.cls.Params),
    )
    if not fields:
        p.notes.append("note: this effect has no parameters")
    return p.result(f"{len(fields)} parameter(s), each described, numeric ones bounded")


def _check_refused(ctx: _Context) -> tuple[bool, str]:
    p = _Problems()
    cls = ctx.cls
    fields = _param_fields(cls.Params)
    base = msgspec.to_builtins(ctx.params)
    tried = 0
    bad_example: dict[str, Any] | None = None
    for f in fields:
        cases: list[tuple[str, Any]] = []
        if f.numeric:
            cases += [(f"beyond {label}", value) for label, value in f.outside()]
        wrong = f.wrong_type()
        if wrong is not None:
            cases.append(("of the wrong type", wrong))
        for label, value in cases:
            tried += 1
            problem = _refusal(cls, {**base, f.key: value}, f.key)
            if problem:
                p.add(f"{f.key!r} {label}: {problem}; it must raise FieldError naming {f.key!r}")
            if bad_example is None:
                bad_example = {**base, f.key: value}
    unknown = "no_such_param__"
    tried += 1
    problem = _refusal(cls, {**base, unknown: 1}, unknown)
    if problem:
        p.add(
            f"unknown parameter: {problem}; Params must forbid unknown fields (subclass "
            "fxhost_sdk.Params and leave forbid_unknown_fields=True)"
        )
    if bad_example is None:
        bad_example = {**base, unknown: 1}

    def set_bad() -> None:
        instance = ctx.new(2)
        before = instance.params
        try:
            instance.set_params(bad_example)
        except FieldError:
            pass
        except Exception as error:
            p.add(f"set_params({bad_example!r}) raised {_describe_error(error)}, not FieldError")
        else:
            p.add(f"set_params({bad_example!r}) was accepted; it must raise FieldError")
        if instance.params != before:
            p.add(
                f"a refused set_params({bad_example!r}) changed instance.params from "
                f"{before!r} to {instance.params!r}; it must leave the effect unchanged"
            )
        if ctx.stream_problem:
            return  # said once, by shapes_and_dtypes
        x = ctx.signal(2) if ctx.offline else ctx.signal(2)[:, : _prefix(ctx)]
        after = ctx.run(instance, x)
        fresh = ctx.run(ctx.new(2), x)
        largest, frame = _difference(fresh, after, RESET_TOLERANCE)
        if frame is not None:
            p.add(
                f"after a refused set_params({bad_example!r}) the output differs from a fresh "
                f"instance's by up to {largest:.3g} (from frame {frame}): the refused values "
                "reached the DSP; validate before applying"
            )

    p.attempt("set_params with an invalid value", set_bad)
    return p.result(
        f"{tried} invalid value(s) refused with FieldError naming the field; a refused "
        "set_params leaves the effect unchanged"
    )


def _prefix(ctx: _Context) -> int:
    return max(1, min(ctx.frames, round(ONE_FRAME_PREFIX_SECONDS * ctx.sample_rate)))


def _check_shapes(ctx: _Context) -> tuple[bool, str]:
    p = _Problems()
    for layout, channels in _LAYOUTS:
        instance = p.attempt(f"{layout}: {ctx.cls.__name__}(...)", lambda c=channels: ctx.new(c))
        if instance is _FAILED:
            continue
        signal = ctx.signal(channels)
        start = 0
        kept: tuple[np.ndarray, np.ndarray] | None = None
        for frames in SHAPE_BLOCK_SIZES:
            block = np.array(signal[:, start : start + frames], dtype=np.float32, order="C")
            start += frames
            label = f"{layout}, block of {frames} frame(s)"
            out = p.attempt(label, lambda b=block, i=instance: i.process(b))
            if out is _FAILED:
                continue
            if not isinstance(out, np.ndarray):
                p.add(f"{label}: process returned {type(out).__name__}, not a numpy array")
                continue
            wrong = []
            if out.dtype != np.float32:
                wrong.append(f"dtype {out.dtype} (must be float32: return out.astype(np.float32))")
            if out.shape != (channels, frames):
                wrong.append(f"shape {out.shape} (must be (channels, frames) = {(channels, frames)})")
            if not out.flags.c_contiguous:
                wrong.append("an array that is not C-contiguous (use np.ascontiguousarray)")
            if wrong:
                p.add(f"{label}: process returned " + "; ".join(wrong))
            elif kept is None and frames > 0:
                kept = (out, out.copy())
        if kept is not None and not np.array_equal(kept[0], kept[1], equal_nan=True):
            p.notes.append(
                f"note ({layout}): an array returned by process changed during a later call "
                "(process reuses its output buffer); a caller that keeps blocks must copy them"
            )
    if ctx.stream_problem:
        # One cause, said once, with its fix: the streaming checks are skipped because of it.
        n = ctx.stream_frames
        p.items[:0] = [
            f"stereo: {ctx.stream_problem}.",
            "process must return exactly as many frames as it was given, every call, shaped "
            "(channels, frames). An effect that needs more input before it can output (a look-ahead, "
            "an FFT frame) must pad: return zeros until it has output, and declare that delay as "
            "its latency (the `latency` property, in frames), so that hosts line its output up. "
            "The checks that stream are skipped until this is fixed.",
        ]
        p.items.append(
            ctx.repro(
                2,
                f"fx = {ctx.ctor(2)}",
                f"out = fx.process(x[:, :{n}].copy())",
                f"print(getattr(out, 'shape', type(out)))  # must be (2, {n})",
            )
        )
    sizes = ", ".join(map(str, SHAPE_BLOCK_SIZES))
    return p.result(f"mono and stereo blocks of {sizes} frames: float32, C-contiguous, (channels, frames)")


def _check_input(ctx: _Context) -> tuple[bool, str]:
    p = _Problems()
    name = "process_offline" if ctx.offline else "process"
    for layout, channels in _LAYOUTS:
        x = ctx.signal(channels)
        instance = p.attempt(f"{layout}: {ctx.cls.__name__}(...)", lambda c=channels: ctx.new(c))
        if instance is _FAILED:
            continue
        if ctx.offline:
            blocks = [np.array(x, dtype=np.float32, order="C", copy=True)]
            call = instance.process_offline
        else:
            blocks = [
                np.array(x[:, a:b], dtype=np.float32, order="C") for a, b in _spans(_STREAM_BLOCK, x.shape[1])
            ]
            call = instance.process
        for index, block in enumerate(blocks):
            kept = block.copy()
            out = p.attempt(f"{layout}: {name}", lambda b=block, call=call: call(b))
            if out is _FAILED:
                break
            if not np.array_equal(block, kept, equal_nan=True):
                frame = int(np.flatnonzero((block != kept).any(axis=0))[0])
                where = "its input" if ctx.offline else f"block #{index} ({block.shape[1]} frames)"
                given = "x.copy()" if ctx.offline else f"x[:, :{block.shape[1]}].copy()"
                p.add(
                    f"{layout}: {name} modified {where} in place (first change at its frame {frame}). "
                    + INPUT_RULE
                    + "\n"
                    + ctx.repro(
                        channels,
                        f"fx = {ctx.ctor(channels)}",
                        f"block = {given}",
                        "kept = block.copy()",
                        f"fx.{name}(block)",
                        "print(np.array_equal(block, kept))  # must be True",
                    )
                )
                break
            if isinstance(out, np.ndarray) and np.shares_memory(out, block):
                note = (
                    f"note ({layout}): {name} returned its input (or a view of it): a caller that "
                    "modifies the output changes its input too; returning a new array is safer"
                )
                if note not in p.notes:
                    p.notes.append(note)
    return p.result(f"{name} leaves the array it is given as it was (mono and stereo). Rule: {INPUT_RULE}")


def _check_invariance(ctx: _Context) -> tuple[bool, str]:
    p = _Problems()
    latencies = []
    first_failure: str | None = None
    ragged = list(RAGGED_BLOCK_SIZES)
    for layout, channels in _LAYOUTS:
        x = ctx.signal(channels)
        total = x.shape[1]
        label = f"{layout}, one whole block of {total} frames"
        reference = p.attempt(label, lambda x=x, c=channels: process_blocks(ctx.new(c), x, x.shape[1]))
        if reference is _FAILED:
            continue
        latency = p.attempt(f"{layout}: latency", lambda c=channels: ctx.new(c).latency)
        if latency is not _FAILED:
            latencies.append(f"{layout} {latency!r}")
        patterns: list[tuple[str, int | list[int], int]] = []
        for size in FIXED_BLOCK_SIZES:
            if size == 1:
                prefix = _prefix(ctx)
                patterns.append((f"blocks of 1 frame (first {prefix} frames)", 1, prefix))
            else:
                patterns.append((f"blocks of {size} frames", size, total))
        patterns.append((f"ragged blocks (cycling {ragged})", ragged, total))
        for name, sizes, frames in patterns:
            label = f"{layout}, {name}"
            out = p.attempt(
                label,
                lambda c=channels, s=sizes, n=frames, x=x: process_blocks(ctx.new(c), x[:, :n], s),
            )
            if out is _FAILED:
                continue
            largest, frame = _difference(reference[:, :frames], out, TOLERANCE)
            if frame is None:
                continue
            p.add(
                f"{label}: max difference {largest:.3g} from the whole block; first above "
                f"{TOLERANCE:g} at frame {frame}, at {_block_at(sizes, frames, frame)}"
            )
            if first_failure is None:
                first_failure = ctx.repro(
                    channels,
                    f"whole = process_blocks({ctx.ctor(channels)}, x, x.shape[1])",
                    f"parts = process_blocks({ctx.ctor(channels)}, x, {sizes!r})",
                    "diff = np.abs(whole.astype(np.float64) - parts).max(axis=0)",
                    f"print(diff.max(), np.flatnonzero(diff > {TOLERANCE:g})[:1])",
                    prefix=None if frames == total else frames,
                )
    latency_note = (
        f"latency (frames): {', '.join(latencies)}; both sides stream through "
        "process, so it is the same on both"
    )
    if first_failure:
        p.add(latency_note)
        p.add(
            "The output must not depend on how the stream is cut into blocks: keep all state "
            "(filter memories, delay lines, envelopes) across calls and never re-initialise it "
            "when a block is larger than before."
        )
        p.add(first_failure)
    else:
        p.notes.append(latency_note)
    return p.result(
        f"stereo and mono: the whole signal in one block equals blocks of "
        f"{', '.join(map(str, FIXED_BLOCK_SIZES))} and ragged blocks within {TOLERANCE:g}"
    )


def _check_finite(ctx: _Context) -> tuple[bool, str]:
    p = _Problems()
    rate = ctx.sample_rate
    silence_frames = max(1, round(3 * ctx.seconds * rate))
    unstable = False
    for layout, channels in _LAYOUTS:
        silence = np.zeros((channels, silence_frames), dtype=np.float32)
        rng = np.random.default_rng(ctx.seed + 1)
        noise = rng.uniform(-1.0, 1.0, size=(channels, ctx.frames)).astype(np.float32)
        cases = [
            (f"{silence_frames / rate:g} s of silence", lambda s=silence: (s,)),
            (
                f"the test signal, then {silence_frames / rate:g} s of silence",
                lambda c=channels, s=silence: (ctx.signal(c), s),
            ),
            ("full-scale white noise (uniform -1..1)", lambda n=noise: (n,)),
        ]
        for name, parts in cases:
            label = f"{layout}, {name}"

            def run(c: int = channels, parts: Callable[[], tuple[np.ndarray, ...]] = parts) -> list:
                instance = ctx.new(c)
                return [process_blocks(instance, part, 4096) for part in parts()]

            outs = p.attempt(label, run)
            if outs is _FAILED:
                continue
            problem = _nonfinite(np.concatenate(outs, axis=1))
            if problem:
                p.add(f"{label}: the output has {problem}")
                unstable = True
            elif name.endswith("of silence") and len(outs) == 1 and _peak(outs[0]) > 0:
                p.notes.append(f"note ({layout}): silence in gives output up to {_dbfs(_peak(outs[0]))}")
            elif name.startswith("full-scale") and _peak(outs[0]) > 4.0:
                p.notes.append(
                    f"note ({layout}): full-scale noise in gives output up to "
                    f"{_peak(outs[0]):.3g} ({_dbfs(_peak(outs[0]))})"
                )
    if unstable:
        silence_alone = re.compile(r"(stereo|mono), [0-9.e+-]+ s of silence:")
        if ctx.tail is not None and ctx.tail.unstable and not any(silence_alone.match(i) for i in p.items):
            ctx.require_stable()  # the same cause: said once, by tail_decays
        p.add(
            "Guard divisions and logs (e.g. divide by max(level, 1e-12)), and make sure "
            "feedback paths stay stable."
        )
        p.add(
            ctx.repro(
                2,
                f"fx = {ctx.ctor(2)}",
                "out = process_blocks(fx, x, 4096)",
                "print(np.isfinite(out).all())  # must be True",
            )
        )
    return p.result("no NaN or Inf on silence, after the signal stops, or on full-scale noise")


def _check_reset(ctx: _Context) -> tuple[bool, str]:
    p = _Problems()
    for layout, channels in _LAYOUTS:
        x = ctx.signal(channels)

        def run(c: int = channels, x: np.ndarray = x, layout: str = layout) -> None:
            instance = ctx.new(c)
            first = process_blocks(instance, x, _STREAM_BLOCK)
            # A little more, of an odd length, so that periodic state (an LFO) is never back
            # at its start when reset() comes, whatever the signal's length.
            process_blocks(instance, x[:, :_ODD_FRAMES], _STREAM_BLOCK)
            instance.reset()
            again = process_blocks(instance, x, _STREAM_BLOCK)
            fresh = process_blocks(ctx.new(c), x, _STREAM_BLOCK)
            largest, frame = _difference(first, again, RESET_TOLERANCE)
            if frame is not None:
                p.add(
                    f"{layout}: after reset() the same signal gives output that differs from the "
                    f"first pass by up to {largest:.3g}, from frame {frame}: reset() must clear "
                    "all state (delay lines, filter memories, envelopes, LFO phases)\n"
                    + ctx.repro(
                        c,
                        f"fx = {ctx.ctor(c)}",
                        f"first = process_blocks(fx, x, {_STREAM_BLOCK})",
                        f"process_blocks(fx, x[:, :{_ODD_FRAMES}], {_STREAM_BLOCK})",
                        "fx.reset()",
                        f"again = process_blocks(fx, x, {_STREAM_BLOCK})",
                        "print(np.abs(first - again).max())",
                    )
                )
            largest, frame = _difference(first, fresh, RESET_TOLERANCE)
            if frame is not None:
                p.add(
                    f"{layout}: two fresh instances give different output for the same signal "
                    f"(up to {largest:.3g}, from frame {frame}): the effect is not deterministic "
                    "(unseeded randomness?) or instances share state"
                )

        p.attempt(layout, run)
    return p.result(
        f"after reset() the output equals the first pass and a fresh instance's within {RESET_TOLERANCE:g}"
    )


def _check_independent(ctx: _Context) -> tuple[bool, str]:
    p = _Problems()
    x = ctx.signal(2)
    other = np.random.default_rng(ctx.seed + 2).uniform(-1, 1, size=x.shape).astype(np.float32)

    def run() -> None:
        alone = process_blocks(ctx.new(2), x, _STREAM_BLOCK)
        a, b = ctx.new(2), ctx.new(2)
        outs = []
        for start, stop in _spans(_STREAM_BLOCK, x.shape[1]):
            outs.append(np.array(a.process(np.array(x[:, start:stop], order="C")), copy=True))
            b.process(np.array(other[:, start:stop], order="C"))
        together = np.concatenate(outs, axis=1)
        largest, frame = _difference(alone, together, RESET_TOLERANCE)
        if frame is not None:
            p.add(
                f"an instance's output changes (by up to {largest:.3g}, from frame {frame}) when "
                "another instance processes other audio at the same time: instances share state "
                "(a class attribute or module global holding buffers?) or the effect is not "
                "deterministic"
            )

    p.attempt("two instances processing block by block, interleaved", run)
    return p.result("two instances running side by side do not affect each other")


def _check_latency_tail(ctx: _Context) -> tuple[bool, str]:
    p = _Problems()
    seen = []
    for layout, channels in _LAYOUTS:
        instance = p.attempt(f"{layout}: {ctx.cls.__name__}(...)", lambda c=channels: ctx.new(c))
        if instance is _FAILED:
            continue
        latency = p.attempt(f"{layout}: latency", lambda i=instance: i.latency)
        tail = p.attempt(f"{layout}: tail_seconds", lambda i=instance: i.tail_seconds)
        if latency is _FAILED or tail is _FAILED:
            continue
        if not (type(latency) is int and latency >= 0):
            p.add(
                f"{layout}: latency is {latency!r} ({type(latency).__name__}); it must be a "
                "non-negative Python int (frames), e.g. return int(n)"
            )
        if not (type(tail) in (int, float) and not math.isnan(tail) and tail >= 0):
            p.add(
                f"{layout}: tail_seconds is {tail!r} ({type(tail).__name__}); it must be a "
                "non-negative Python float (seconds; math.inf if it never stops)"
            )
        elif tail == math.inf:
            p.notes.append(f"note ({layout}): tail_seconds is math.inf (the output never stops)")
        shown = f"{tail:g}" if type(tail) in (int, float) else repr(tail)
        seen.append(f"{layout}: latency {latency!r} frames, tail {shown} s")
    return p.result("; ".join(seen))


#: The envelope of the output after the input stops is read in windows of this length (s).
_ENVELOPE_SECONDS = 0.01
#: The output after the input stops is measured for at least this long (seconds) ...
MIN_TAIL_WINDOW_SECONDS = 1.0
#: ... and for an effect that declares an endless tail, this long (to see it is stable).
ENDLESS_TAIL_WINDOW_SECONDS = 2.0


@dataclass
class _Tail:
    """What the output does after the input stops (stereo, the test signal, then silence)."""

    latency: int
    declared: float  # tail_seconds
    window: float  # seconds of silence processed after the input
    input_peak: float  # the output's peak while the input played
    envelope: np.ndarray  # peak per _ENVELOPE_SECONDS after the input stops
    nonfinite_at: float | None  # seconds after the input stops where NaN/Inf first appear
    ends: float | None  # seconds after the input stops when it falls below -60 dBFS for good
    unstable: bool

    @property
    def last_peak(self) -> float:
        quarter = max(1, len(self.envelope) // 4)
        return float(self.envelope[-quarter:].max()) if len(self.envelope) else 0.0

    @property
    def first_peak(self) -> float:
        quarter = max(1, len(self.envelope) // 4)
        return float(self.envelope[:quarter].max()) if len(self.envelope) else 0.0


def _measure_tail(ctx: _Context) -> _Tail | None:
    """The test signal, then silence, through a stereo instance: how the output ends.

    The window is long enough to see the declared tail end with room to spare: twice
    latency + tail_seconds, and at least :data:`MIN_TAIL_WINDOW_SECONDS`; capped at
    :data:`MAX_MEASURED_TAIL_SECONDS`. An output whose last quarter is louder than its
    first (and than the input) by more than 6 dB, or that becomes NaN/Inf, is unstable.
    """
    instance = ctx.new(2)
    latency, tail = instance.latency, instance.tail_seconds
    if not (isinstance(latency, int) and latency >= 0 and isinstance(tail, int | float) and tail >= 0):
        return None
    rate = ctx.sample_rate
    if tail == math.inf:
        window = ENDLESS_TAIL_WINDOW_SECONDS
    else:
        window = min(
            MAX_MEASURED_TAIL_SECONDS, max(MIN_TAIL_WINDOW_SECONDS, 2 * (latency / rate + tail) + 0.25)
        )
    played = process_blocks(instance, ctx.signal(2), 4096)
    with np.errstate(all="ignore"):
        input_peak = float(np.nanmax(np.abs(played))) if played.size else 0.0
    step = max(1, round(_ENVELOPE_SECONDS * rate))
    total = round(window * rate)
    total -= total % step
    peaks: list[np.ndarray] = []
    nonfinite_at = None
    done = 0
    while done < total:
        n = min(step * 400, total - done)
        out = process_blocks(instance, np.zeros((2, n), np.float32), 4096)
        bad = ~np.isfinite(out)
        if bad.any():
            nonfinite_at = (done + int(np.flatnonzero(bad.any(axis=0))[0])) / rate
            out = np.where(bad, np.float32(np.finfo(np.float32).max), out)
        peaks.append(np.abs(out).max(axis=0).reshape(-1, step).max(axis=1) if n else np.zeros(0))
        done += n
        if nonfinite_at is not None:
            break
    envelope = np.concatenate(peaks) if peaks else np.zeros(0)
    loud = np.flatnonzero(envelope > TAIL_THRESHOLD)
    ends = 0.0 if loud.size == 0 else (int(loud[-1]) + 1) * step / rate
    measured = _Tail(latency, float(tail), done / rate, input_peak, envelope, nonfinite_at, None, False)
    growing = (
        measured.last_peak > 2.0 * max(measured.first_peak, input_peak)
        and measured.last_peak > TAIL_THRESHOLD
    )
    measured.unstable = nonfinite_at is not None or growing
    if loud.size == 0 or int(loud[-1]) < len(envelope) - 1:
        measured.ends = ends
    return measured


def _check_tail(ctx: _Context) -> tuple[bool, str]:
    p = _Problems()
    instance = ctx.new(2)
    latency, tail = instance.latency, instance.tail_seconds
    if not (isinstance(latency, int) and latency >= 0 and isinstance(tail, int | float) and tail >= 0):
        raise _Skipped(
            "skipped: latency or tail_seconds is invalid (latency_and_tail says why); not measured"
        )
    measured = ctx.tail if ctx.tail is not None else _measure_tail(ctx)
    assert measured is not None
    rate = ctx.sample_rate
    if measured.ends is not None:
        ctx.measure("tail_seconds", round(measured.ends, 3))
    repro = ctx.repro(
        2,
        f"fx = {ctx.ctor(2)}",
        "process_blocks(fx, x, 4096)",
        f"after = process_blocks(fx, np.zeros((2, {round(measured.window * rate)}), np.float32), 4096)",
        f"peaks = np.abs(after).max(axis=0).reshape(-1, {max(1, round(_ENVELOPE_SECONDS * rate))})"
        ".max(axis=1)",
        f"print(fx.latency, fx.tail_seconds, peaks[::{max(1, round(0.1 / _ENVELOPE_SECONDS))}])"
        "  # the peak every 0.1 s after the input stops",
    )
    if measured.unstable:
        if measured.nonfinite_at is not None:
            how = f"becomes NaN/Inf {measured.nonfinite_at:.3f} s after the input stops"
        else:
            how = (
                f"grows after the input stops: from {_dbfs(measured.first_peak)} in its first "
                f"{measured.window / 4:.2g} s to {_dbfs(measured.last_peak)} in the last, "
                f"over {measured.window:.3g} s "
                f"(while the input played it peaked at {_dbfs(measured.input_peak)})"
            )
        p.add(
            f"UNSTABLE: the output {how}. A feedback path has a gain of 1 or more. A longer "
            "tail_seconds will not fix it: keep every feedback gain below 1 (clamp it, and "
            "mind filters or saturation inside the loop that add gain)."
        )
        p.add(repro)
        return p.result("")
    margin = 0.1 + 0.1 * (tail if tail != math.inf else 0.0)
    if tail == math.inf:
        held = (
            f"falls below -60 dBFS {measured.ends:.3f} s after the input stops"
            if measured.ends is not None
            else f"holds at {_dbfs(measured.last_peak)} at the end"
        )
        return True, (
            "tail_seconds is math.inf (the output never stops; hosts cap it); "
            f"over {measured.window:.3g} s the "
            f"output {held} and does not grow"
        )
    declared = latency / rate + tail
    if measured.ends is None:
        decays = measured.last_peak < 0.5 * measured.first_peak
        p.add(
            f"the output is still above -60 dBFS ({_dbfs(measured.last_peak)}) at the end of the "
            f"{measured.window:.3g} s measured after the input stops, but latency ({latency} frames) + "
            f"tail_seconds ({tail:g} s) = {declared:.3f} s: "
            + (
                f"it rings at least {measured.window:.3g} s; declare a tail_seconds that long or longer"
                if decays
                else "it does not decay; if it never stops (a frozen reverb, a drone), declare "
                "tail_seconds = math.inf"
            )
            + ", or renders cut it off"
        )
        p.add(repro)
        return p.result("")
    if measured.ends > declared + margin:
        p.add(
            f"tail_seconds is too short: the output rings above -60 dBFS for {measured.ends:.3f} s after "
            f"the input stops (measured over {measured.window:.3g} s), but latency ({latency} frames) + "
            f"tail_seconds ({tail:g} s) = {declared:.3f} s (+ {margin:.2g} s of margin); declare about "
            f"{max(0.0, measured.ends - latency / rate):.2f} s, or renders cut the tail off"
        )
        p.add(repro)
    elif tail > 2.0 * measured.ends + 1.0:
        p.notes.append(
            f"note: tail_seconds ({tail:g} s) is much longer than the measured decay "
            f"({measured.ends:.3f} s): renders end with the difference as near-silence"
        )
    return p.result(
        f"after the input stops the output falls below -60 dBFS in {measured.ends:.3f} s (measured over "
        f"{measured.window:.3g} s); latency ({latency} frames) + tail_seconds ({tail:g} s) = {declared:.3f} s"
    )


def _check_latency_measured(ctx: _Context) -> tuple[bool, str]:
    """Measure when the output responds to the input: by an impulse, and by correlation."""
    ctx.require_stable()
    p = _Problems()
    declared = ctx.new(2).latency
    if not (isinstance(declared, int) and declared >= 0):
        raise _Skipped("skipped: latency is invalid (latency_and_tail says why)")
    rate = ctx.sample_rate
    pre = round(0.0137 * rate) + 1
    look = declared + round(0.25 * rate)

    def response(x: np.ndarray) -> np.ndarray:
        out = process_blocks(ctx.new(2), x, _STREAM_BLOCK)
        idle = process_blocks(ctx.new(2), np.zeros_like(x), _STREAM_BLOCK)
        return (out.astype(np.float64) - idle)[:, pre:]  # what the input caused

    impulse = np.zeros((2, pre + look), np.float32)
    impulse[:, pre] = 0.5
    h = np.abs(response(impulse)).max(axis=0)
    peak = float(h.max()) if h.size else 0.0
    found: list[str] = []
    lags: list[int] = []
    onset: int | None = None
    if peak > 1e-5:
        peak_at = int(np.argmax(h))
        onset = int(np.flatnonzero(h >= peak * 0.01)[0])
        lags.append(peak_at)
        ctx.measure("latency_impulse", peak_at)
        found.append(
            f"an impulse's response starts at frame {onset} (-40 dB of its peak) and peaks at frame {peak_at}"
        )
    else:
        found.append("an impulse gets no response (under -100 dBFS)")
    burst = max(16, round(0.0731 * rate))
    noise = np.zeros((2, pre + burst + look), np.float32)
    noise[:, pre : pre + burst] = np.random.default_rng(ctx.seed + 5).uniform(-0.5, 0.5, size=(2, burst))
    y = response(noise)
    src = noise[:, pre:].astype(np.float64)
    size = 1 << math.ceil(math.log2(2 * src.shape[1]))
    corr = np.fft.irfft(np.conj(np.fft.rfft(src, size)) * np.fft.rfft(y, size), size).sum(axis=0)[: look + 1]
    energy = math.sqrt(float((src**2).sum()) * float((y**2).sum()))
    strength = float(np.abs(corr).max()) / energy if energy > 0 else 0.0
    if strength >= 0.1:
        lag = int(np.argmax(np.abs(corr)))
        lags.append(lag)
        ctx.measure("latency_correlation", lag)
        found.append(f"a noise burst correlates best with the output at lag {lag} (strength {strength:.2f})")
    else:
        found.append(f"a noise burst hardly correlates with the output (strength {strength:.2f}): not used")
    measured = f"declared latency {declared} frames; " + "; ".join(found)
    # A strong correlation pins the delay to the frame; an impulse alone is smeared by some
    # effects (a phase vocoder spreads it over its window), so it is given 10 % of room.
    tolerance = max(2, round((0.01 if len(lags) == 2 else 0.1) * declared))
    if len(lags) == 2:
        lags = lags[1:]  # the correlation's lag: the impulse's peak is only reported
    if lags and declared > 0 and all(lag < declared - tolerance for lag in lags):
        p.add(
            f"the declared latency is too high: {measured}. "
            f"The output responds {declared - max(lags)} frames "
            "or more before the latency it declares, so a host that shifts it back by the declared latency "
            "cuts off its start and puts it early. Declare the delay the effect really adds "
            f"(here about {max(lags)} frames)."
        )
        p.add(
            ctx.repro(
                2,
                f"fx = {ctx.ctor(2)}",
                f"impulse = np.zeros((2, {pre + look}), np.float32); impulse[:, {pre}] = 0.5",
                f"h = np.abs(process_blocks(fx, impulse, {_STREAM_BLOCK})).max(axis=0)[{pre}:]",
                "print(fx.latency, int(np.argmax(h)))  # declared, and where the response peaks",
            )
        )
        return p.result("")
    # A response that starts on time and peaks later is the effect's own phase (a resonant
    # filter's group delay), not a delay: only a late start is worth a note.
    starts_late = onset is None or onset > declared + tolerance
    if lags and starts_late and all(lag > declared + tolerance for lag in lags):
        p.notes.append(
            "note: the output responds later than the declared latency "
            f"({min(lags)} frames or more after the "
            f"input, {declared} declared). If that delay is the effect's sound "
            "(a pre-delay, an echo, a fully "
            "wet delay) this is right; if it is processing delay (a look-ahead, an FFT frame), declare it as "
            "latency so hosts line the output up"
        )
    return p.result(measured)


def _check_realtime(ctx: _Context) -> tuple[bool, str]:
    """The real-time factor (seconds of audio per second of processing) at common block sizes."""
    rate = ctx.sample_rate
    x = ctx.signal(2)
    factors: dict[str, float] = {}
    if ctx.offline:
        instance = ctx.new(2)
        _offline_output(instance, x[:, : max(1, round(0.1 * rate))])  # one-off costs (imports) first
        start = time.perf_counter()
        _offline_output(instance, x)
        elapsed = time.perf_counter() - start
        factors["whole signal"] = x.shape[1] / rate / max(elapsed, 1e-9)
    else:
        for size in REALTIME_BLOCK_SIZES:
            instance = ctx.new(2)
            spent, frames = 0.0, 0
            for a, b in _spans(size, x.shape[1]):
                block = np.array(x[:, a:b], dtype=np.float32, order="C")
                start = time.perf_counter()
                instance.process(block)
                spent += time.perf_counter() - start
                frames += b - a
                if spent > REALTIME_BUDGET_SECONDS:
                    break
            factors[f"{size} frames"] = frames / rate / max(spent, 1e-9)
    ctx.measure("realtime", {k: round(v, 1) for k, v in factors.items()})
    shown = ", ".join(f"{k} {v:,.1f}x" for k, v in factors.items())
    summary = (
        f"real-time factor (seconds of stereo audio at {rate:g} Hz processed per second), by block: {shown}"
    )
    slowest_at, slowest = min(factors.items(), key=lambda item: item[1])
    notes = []
    if slowest < 1.0:
        notes.append(
            f"note: slower than real time at {slowest_at} ({slowest:.2f}x): a live stream would drop out "
            "(renders only take longer)"
        )
    if ctx.min_realtime is not None and slowest < ctx.min_realtime:
        size = slowest_at.split()[0]
        return False, "\n".join(
            [
                f"{summary}; min_realtime={ctx.min_realtime:g} asks for at least "
                f"{ctx.min_realtime:g}x at every "
                f"block size, and {slowest_at} gives {slowest:.2f}x. "
                "Vectorise the per-frame work (numpy over "
                "the whole block), or move it to compiled code",
                *notes,
                ctx.repro(
                    2,
                    "import time",
                    f"fx = {ctx.ctor(2)}",
                    "start = time.perf_counter()",
                    f"process_blocks(fx, x, {size})" if size.isdigit() else "fx.process_offline(x.copy())",
                    f"print(x.shape[1] / {rate!r} / (time.perf_counter() - start))  # the real-time factor",
                ),
            ]
        )
    return True, "\n".join([summary, *notes])


def _zipper(ctx: _Context, f: _Field) -> str | None:
    """A note if changing ``f`` between two blocks makes the output jump (zipper noise)."""
    if f.lower is None or f.upper is None:
        return None
    (_, lo), (_, hi) = f.lower, f.upper
    values = []
    for share in (0.25, 0.75):
        value: Any = float(lo) + share * (float(hi) - float(lo))
        if f.multiple_of:
            value = round(value / f.multiple_of) * f.multiple_of
        values.append(round(value) if f.kind == "int" else float(value))
    if values[0] == values[1]:
        return None
    try:
        before = ctx.cls.check_params(msgspec.structs.replace(ctx.params, **{f.name: values[0]}))
        after = ctx.cls.check_params(msgspec.structs.replace(ctx.params, **{f.name: values[1]}))
    except (FieldError, TypeError, ValueError):
        return None
    rate = ctx.sample_rate
    # A low sine moves little from one frame to the next, so a step shows; the change comes
    # near one of its peaks, where a change of gain moves the output most.
    period = rate / 113.7
    at = round((math.ceil(0.05 * rate / period) + 0.25) * period)
    instance = ctx.new(2, before)
    latency = instance.latency if isinstance(instance.latency, int) else 0
    frames = at + latency + round(0.03 * rate)  # the change, then 15 ms settled after it
    t = np.arange(frames) / rate
    x = np.ascontiguousarray(
        np.stack([np.sin(2 * np.pi * 113.7 * t), np.sin(2 * np.pi * 113.7 * t + 0.3)]) * 0.5, dtype=np.float32
    )
    head = process_blocks(instance, x[:, :at], 256)
    instance.set_params(after)
    switched = np.concatenate([head, process_blocks(instance, x[:, at:], 256)], axis=1).astype(np.float64)
    # The output's own largest step from frame to frame, just before the change and once
    # it has settled after it; the change itself may add to that only what a ramp would.
    steps = np.abs(np.diff(switched, axis=1)).max(axis=0)
    settled = at + latency + round(0.015 * rate)
    natural = max(float(steps[at - round(0.005 * rate) : at - 1].max()), float(steps[settled:].max()))
    jump = float(steps[at - 1 : settled].max())
    if not (math.isfinite(jump) and math.isfinite(natural)):
        return None
    excess = jump - natural
    if excess <= ZIPPER_THRESHOLD:
        return None
    return (
        f"note: changing {f.key} from {values[0]!r} to {values[1]!r} between two blocks "
        "makes the output jump "
        f"by {excess:.3g} ({_dbfs(excess)}) from one frame to the next, beyond the signal's own steps "
        f"(at most {natural:.3g} there): zipper noise, clicks, when it is automated. Ramp the "
        "change over 10-20 ms (fxhost_sdk.LinearSmoother gives one value per frame)"
    )


def _check_param_changes(ctx: _Context) -> tuple[bool, str]:
    ctx.require_stable()
    p = _Problems()
    cls = ctx.cls
    base = ctx.params
    defaults = cls.Params()
    changes: list[tuple[str, Params]] = [("the defaults", defaults), ("the given params", base)]
    middles: dict[str, Any] = {}
    for f in _param_fields(cls.Params):
        values: list[Any] = []
        if f.numeric and f.middle() is not None:
            values.append(f.middle())
            middles[f.name] = f.middle()
        elif f.kind == "bool":
            values.append(not getattr(base, f.name))
        elif f.kind == "literal":
            values.extend(f.choices)
        for value in values:
            try:
                changed = cls.check_params(msgspec.structs.replace(base, **{f.name: value}))
            except (FieldError, TypeError, ValueError):
                continue
            changes.append((f"{f.key}={value!r}", changed))
            changes.append(("the given params", base))
    if middles:
        with contextlib.suppress(FieldError, TypeError, ValueError):
            every = cls.check_params(msgspec.structs.replace(base, **middles))
            changes.append(("every numeric parameter half-way", every))
    x = ctx.signal(2)
    instance = p.attempt(f"{cls.__name__}(...)", lambda: ctx.new(2))
    if instance is _FAILED:
        return p.result("")
    steps = list(_spans(256, x.shape[1]))
    pending = list(changes)
    current = "nothing"
    while True:
        for index, (start, stop) in enumerate(steps):
            if pending and index % 2 == 0:
                current, value = pending.pop(0)
                done = p.attempt(
                    f"set_params({current}) between blocks", lambda v=value: instance.set_params(v)
                )
                if done is not _FAILED and instance.params != value:
                    p.add(f"after set_params({current}) instance.params is {instance.params!r}")
            block = np.array(x[:, start:stop], dtype=np.float32, order="C")
            label = f"after set_params({current}), block at frames {start}..{stop - 1}"
            out = p.attempt(f"process {label}", lambda b=block: instance.process(b))
            if out is _FAILED:
                pass
            elif not isinstance(out, np.ndarray) or out.shape != block.shape:
                shape = getattr(out, "shape", type(out).__name__)
                p.add(f"{label}: process returned {shape} for a block of shape {block.shape}")
            elif problem := _nonfinite(out):
                p.add(f"{label}: the output has {problem.replace('from frame', 'from its frame')}")
            if len(p.items) >= 5:
                p.add("(further problems not listed)")
                return p.result("")
        if not pending:
            break
    if not p.items:
        for f in _param_fields(cls.Params):
            if f.numeric and (
                note := p.attempt(f"zipper measurement of {f.key}", lambda f=f: _zipper(ctx, f))
            ):
                p.notes.append(note)
    if p.items and "Reproduce:" not in "\n".join(p.items):
        p.add(
            ctx.repro(
                2,
                f"fx = {ctx.ctor(2)}",
                "process_blocks(fx, x[:, :256], 256)",
                "fx.set_params({...})  # the change named above",
                "print(np.isfinite(process_blocks(fx, x[:, 256:512], 256)).all())",
            )
        )
    return p.result(
        f"{len(changes)} parameter change(s) between blocks of 256 frames: output finite and shaped right; "
        "each numeric parameter changed from a quarter to three quarters of its range, to hear for jumps"
    )


_CHECKS: list[tuple[str, Callable[[_Context], tuple[bool, str]]]] = [
    ("defaults_validate", _check_defaults),
    ("params_described", _check_described),
    ("bad_params_refused", _check_refused),
    ("shapes_and_dtypes", _check_shapes),
    ("input_untouched", _check_input),
    ("block_size_invariance", _check_invariance),
    ("finite_output", _check_finite),
    ("reset_determinism", _check_reset),
    ("instances_independent", _check_independent),
    ("latency_and_tail", _check_latency_tail),
    ("latency_measured", _check_latency_measured),
    ("tail_decays", _check_tail),
    ("param_changes", _check_param_changes),
    ("realtime", _check_realtime),
]


# -- offline-only effects -------------------------------------------------------------

#: The checks that stream through ``process``, and why each does not apply to an effect
#: that needs the whole signal. They are reported as passed with this reason, never dropped.
_NOT_APPLICABLE_OFFLINE: dict[str, str] = {
    "shapes_and_dtypes": (
        "it needs the whole signal, so it never gets blocks (process() refuses them); "
        "offline_shapes_and_dtypes checks what process_offline returns instead"
    ),
    "block_size_invariance": (
        "it needs the whole signal before it can process any of it (e.g. a loudness measured over "
        "all of it, or silence found at both ends), so there are no blocks whose output could differ"
    ),
    "finite_output": (
        "this check streams through process(), which an effect that needs the whole signal "
        "refuses; offline_finite_output checks process_offline on the same inputs"
    ),
    "reset_determinism": (
        "it needs the whole signal and gets it in one process_offline call, so no streaming state "
        "carries from one block to the next for reset() to clear; offline_deterministic checks "
        "that repeated calls and fresh instances agree"
    ),
    "instances_independent": (
        "it needs the whole signal and gets it in one call, so there are no blocks for two "
        "instances to interleave; offline_deterministic compares two instances"
    ),
    "tail_decays": (
        "it needs the whole signal and returns all of its output from one call, so there is "
        "no 'after the input stops' for a tail to ring in"
    ),
    "latency_measured": (
        "it returns all of its output from one call on the whole signal, so there is no delay "
        "for a host to line up"
    ),
    "param_changes": (
        "it needs the whole signal and processes it in one call, so parameters cannot change "
        "between blocks; every parameter is still checked by params_described and "
        "bad_params_refused"
    ),
}

#: Frame counts of the inputs whose output type is checked (and the test signal: many).
OFFLINE_FRAME_COUNTS = (0, 1)


def _offline_output(effect: Effect, audio: np.ndarray) -> np.ndarray:
    """``effect.process_offline`` on a fresh C-contiguous float32 copy of ``audio``; the
    output, copied. Raises TypeError/ValueError if it is not an array shaped
    ``(channels, frames)`` with the input's channel count."""
    channels = audio.shape[0]
    given = np.array(audio, dtype=np.float32, order="C", copy=True)
    out = effect.process_offline(given)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"process_offline returned {type(out).__name__}; it must return a numpy array")
    if out.ndim != 2 or out.shape[0] != channels:
        raise ValueError(
            f"process_offline returned shape {out.shape} for a signal of shape {audio.shape}; "
            f"it must return ({channels}, frames)"
        )
    return np.array(out, copy=True)


def _compare(first: np.ndarray, second: np.ndarray, tolerance: float) -> str | None:
    """None if the two outputs agree within ``tolerance``, else how they differ."""
    if first.shape != second.shape:
        return f"shapes {first.shape} and {second.shape}"
    largest, frame = _difference(first, second, tolerance)
    return None if frame is None else f"up to {largest:.3g}, from frame {frame}"


def _check_offline_refuses(ctx: _Context) -> tuple[bool, str]:
    p = _Problems()
    said = ""
    for layout, channels in _LAYOUTS:
        instance = p.attempt(f"{layout}: {ctx.cls.__name__}(...)", lambda c=channels: ctx.new(c))
        if instance is _FAILED:
            continue
        block = np.array(ctx.signal(channels)[:, :64], dtype=np.float32, order="C")
        try:
            out = instance.process(block)
        except Exception as error:
            text = str(error)
            if "offline" not in text.lower():
                p.add(
                    f"{layout}: process() raised {type(error).__name__}: {text!r}, which does not say "
                    "why; say that the effect is offline-only and needs the whole signal "
                    "(OfflineEffect.process does)"
                )
            else:
                said = f"{type(error).__name__}: {text}"
            continue
        shown = getattr(out, "shape", type(out).__name__)
        p.add(
            f"{layout}: process() returned {shown} for a block of shape {block.shape} instead of refusing: "
            "an offline-only effect needs the whole signal, so it must raise in process() (keep "
            "OfflineEffect.process, which raises RuntimeError) and do its work in process_offline"
        )
    return p.result(f"process() refuses a block: {said}")


def _check_offline_shapes(ctx: _Context) -> tuple[bool, str]:
    p = _Problems()
    lengths: list[str] = []
    for layout, channels in _LAYOUTS:
        signal = ctx.signal(channels)
        inputs = [(f"{n} frame(s)", signal[:, :n]) for n in OFFLINE_FRAME_COUNTS]
        inputs.append((f"the test signal ({signal.shape[1]} frames)", signal))
        for name, audio in inputs:
            label = f"{layout}, {name}"
            instance = p.attempt(f"{label}: {ctx.cls.__name__}(...)", lambda c=channels: ctx.new(c))
            if instance is _FAILED:
                continue
            block = np.array(audio, dtype=np.float32, order="C")
            out = p.attempt(f"{label}: process_offline", lambda b=block, i=instance: i.process_offline(b))
            if out is _FAILED:
                continue
            if not isinstance(out, np.ndarray):
                p.add(f"{label}: process_offline returned {type(out).__name__}, not a numpy array")
                continue
            wrong = []
            if out.dtype != np.float32:
                wrong.append(f"dtype {out.dtype} (must be float32: return out.astype(np.float32))")
            if out.ndim != 2 or out.shape[0] != channels:
                wrong.append(
                    f"shape {out.shape} (must be (channels, frames) with the input's {channels} channel(s))"
                )
            elif not out.flags.c_contiguous:
                wrong.append("an array that is not C-contiguous (use np.ascontiguousarray)")
            if wrong:
                p.add(f"{label}: process_offline returned " + "; ".join(wrong))
            elif out.shape[1] != audio.shape[1]:
                lengths.append(f"{layout}: {audio.shape[1]} frames in, {out.shape[1]} out")
    if lengths:
        p.notes.append("note: process_offline changes the length (" + "; ".join(lengths) + ")")
    counts = ", ".join(map(str, OFFLINE_FRAME_COUNTS))
    return p.result(
        f"mono and stereo signals of {counts} and {ctx.frames} frames: process_offline returns float32, "
        "C-contiguous, (channels, frames)"
    )


def _check_offline_finite(ctx: _Context) -> tuple[bool, str]:
    p = _Problems()
    for layout, channels in _LAYOUTS:
        rng = np.random.default_rng(ctx.seed + 1)
        cases = [
            (f"{ctx.frames} frames of silence", np.zeros((channels, ctx.frames), np.float32)),
            ("the test signal", ctx.signal(channels)),
            (
                "full-scale white noise (uniform -1..1)",
                rng.uniform(-1.0, 1.0, size=(channels, ctx.frames)).astype(np.float32),
            ),
        ]
        for name, audio in cases:
            label = f"{layout}, {name}"
            out = p.attempt(label, lambda c=channels, a=audio: _offline_output(ctx.new(c), a))
            if out is _FAILED:
                continue
            if problem := _nonfinite(out):
                p.add(
                    f"{label}: the output has {problem}; guard divisions and logs (a silent "
                    "signal has no level: divide by max(level, 1e-12), or return it unchanged)"
                )
            elif name.startswith("full-scale") and _peak(out) > 4.0:
                p.notes.append(
                    f"note ({layout}): full-scale noise in gives output up to {_peak(out):.3g} "
                    f"({_dbfs(_peak(out))})"
                )
    return p.result("process_offline: no NaN or Inf on silence, the test signal or full-scale noise")


def _check_offline_deterministic(ctx: _Context) -> tuple[bool, str]:
    p = _Problems()
    for layout, channels in _LAYOUTS:
        x = ctx.signal(channels)

        def run(c: int = channels, x: np.ndarray = x, layout: str = layout) -> None:
            instance = ctx.new(c)
            first = _offline_output(instance, x)
            again = _offline_output(instance, x)
            fresh = _offline_output(ctx.new(c), x)
            if problem := _compare(first, again, RESET_TOLERANCE):
                p.add(
                    f"{layout}: a second process_offline call on the same instance with the same "
                    f"signal gives different output ({problem}): it gets the whole signal every time, "
                    "so it must keep no state from one call to the next\n"
                    + ctx.repro(
                        c,
                        f"fx = {ctx.ctor(c)}",
                        "first = fx.process_offline(x.copy())",
                        "again = fx.process_offline(x.copy())",
                        "print(first.shape, again.shape, np.abs(first - again).max())",
                    )
                )
            if problem := _compare(first, fresh, RESET_TOLERANCE):
                p.add(
                    f"{layout}: two instances give different output for the same signal ({problem}): "
                    "the effect is not deterministic (unseeded randomness?) or instances share state"
                )

        p.attempt(layout, run)
    return p.result(
        f"two process_offline calls on one instance, and a second instance, agree within {RESET_TOLERANCE:g}"
    )


_OFFLINE_CHECKS: list[tuple[str, Callable[[_Context], tuple[bool, str]]]] = [
    ("offline_refuses_process", _check_offline_refuses),
    ("offline_shapes_and_dtypes", _check_offline_shapes),
    ("offline_finite_output", _check_offline_finite),
    ("offline_deterministic", _check_offline_deterministic),
]


# -- presets and assets ---------------------------------------------------------------


def _check_presets(ctx: _Context) -> tuple[bool, str]:
    p = _Problems()
    cls = ctx.cls
    names = sorted(cls.presets)
    x = ctx.signal(2)
    for name in names:
        params = p.attempt(f"preset {name!r}: {cls.__name__}.preset({name!r})", lambda n=name: cls.preset(n))
        if params is _FAILED or ctx.stream_problem:
            continue
        out = p.attempt(
            f"preset {name!r}: an instance built from it processing the test signal",
            lambda v=params: ctx.run(ctx.new(2, v), x),
        )
        if out is _FAILED:
            continue
        if problem := _nonfinite(out):
            p.add(f"preset {name!r}: the output has {problem}")
    return p.result(
        f"{len(names)} preset(s) ({', '.join(map(repr, names))}): each converts, and an instance built "
        "from it processes the test signal with finite output"
    )


#: The asset value the bad_asset_refused check's loader refuses.
MISSING_ASSET = "__fxhost_validator_missing_asset__"


def _check_bad_asset(ctx: _Context) -> tuple[bool, str]:
    p = _Problems()
    cls = ctx.cls
    base = ctx.assets
    assert base is not None  # an effect with asset fields always has a loader here
    keys = {f.name: f.key for f in _param_fields(cls.Params)}
    given = msgspec.to_builtins(ctx.params)
    x = ctx.signal(2) if ctx.offline else ctx.signal(2)[:, : _prefix(ctx)]
    seen: list[str] = []

    def refusing(value: str, path: str) -> LoadedAudio:
        if value == MISSING_ASSET:
            raise FieldError(path, f"no audio asset {value!r} (the validator's loader refuses it)")
        return base(value, path)

    def new(params: Mapping[str, Any] | Params, loader: AssetLoader | None) -> Effect:
        if loader is None:
            return cls(ctx.sample_rate, 2, params)
        return cls(ctx.sample_rate, 2, params, assets=loader)

    def names_field(error: FieldError, key: str) -> bool:
        return error.path == f"params.{key}" or error.path.endswith("." + key)

    for attr in ctx.asset_fields:
        key = keys.get(attr, attr)
        bad = {**given, key: MISSING_ASSET}
        call = f"{cls.__name__}({ctx.sample_rate!r}, 2, {{..., {key!r}: {MISSING_ASSET!r}}}, assets=loader)"
        try:
            new(bad, refusing)
        except FieldError as error:
            if not names_field(error, key):
                p.add(f"{call} raised FieldError with path {error.path!r}, which does not name params.{key}")
        except Exception as error:
            p.add(
                f"{call}, with a loader that raises FieldError for that value, raised "
                f"{_describe_error(error)}: let the loader's FieldError through"
            )
        else:
            p.add(
                f"{call} was accepted although the loader refuses that asset: load it in apply_params "
                f"(self.load_asset({attr!r})) so that a missing asset is refused when the parameters are set"
            )

        def set_bad(key: str = key, bad: dict[str, Any] = bad) -> None:
            instance = new(ctx.params, refusing)
            before = instance.params
            try:
                instance.set_params(bad)
            except FieldError as error:
                if not names_field(error, key):
                    p.add(
                        f"set_params({{..., {key!r}: {MISSING_ASSET!r}}}) raised FieldError with path "
                        f"{error.path!r}, which does not name params.{key}"
                    )
            except Exception as error:
                p.add(
                    f"set_params({{..., {key!r}: {MISSING_ASSET!r}}}) raised {_describe_error(error)}, "
                    "not FieldError"
                )
            else:
                p.add(
                    f"set_params({{..., {key!r}: {MISSING_ASSET!r}}}) was accepted although the loader "
                    "refuses that asset; it must raise FieldError"
                )
                return
            if instance.params != before:
                p.add(
                    f"a refused set_params({{..., {key!r}: {MISSING_ASSET!r}}}) changed instance.params "
                    f"from {before!r} to {instance.params!r}; it must leave the effect unchanged"
                )
            if ctx.stream_problem:
                return  # said once, by shapes_and_dtypes
            after = ctx.run(instance, x)
            fresh = ctx.run(new(ctx.params, refusing), x)
            if problem := _compare(fresh, after, RESET_TOLERANCE):
                p.add(
                    f"after a refused set_params({{..., {key!r}: {MISSING_ASSET!r}}}) the output differs "
                    f"from a fresh instance's ({problem}): load the asset before changing any state"
                )

        p.attempt(f"set_params with an asset the loader refuses ({key})", set_bad)
        seen.append(key)

    try:
        new(ctx.params, None)
    except FieldError as error:
        if not any(names_field(error, keys.get(a, a)) for a in ctx.asset_fields):
            p.add(
                f"with no asset loader, {cls.__name__}(...) raised FieldError with path {error.path!r}, "
                "which names no asset parameter"
            )
        else:
            p.notes.append(f"with no asset loader, construction is refused: FieldError {error}")
    except Exception as error:
        p.add(
            f"with no asset loader (a host that cannot load audio), {cls.__name__}(...) raised "
            f"{_describe_error(error)}; it must raise FieldError naming the asset parameter "
            "(Effect.load_asset does) or work without the asset"
        )
    else:
        p.notes.append("with no asset loader, the effect builds (it does not need the asset to start)")
    if ctx.assets_note:
        p.notes.insert(0, ctx.assets_note)
    return p.result(
        f"asset parameter(s) {', '.join(seen)}: an asset the loader refuses is refused with FieldError "
        "naming the field, at construction and by set_params"
    )
