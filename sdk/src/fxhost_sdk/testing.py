"""The conformance validator: does an effect class keep the fxhost effect contract?

Think of pluginval for VST/AU plugins. One call from a plugin author's test::

    from fxhost_sdk.testing import validate_effect

    def test_conformance():
        validate_effect(MyReverb)            # raises ConformanceError, with a report

or, to look at the report without raising::

    report = check_effect(MyReverb, params={"room_size": 0.9})
    print(report)

The checks, by name (``well_formed`` first; if it fails the others are skipped):

``well_formed``            :func:`fxhost_sdk.effect_class_problems` finds nothing.
``defaults_validate``      ``Params()`` passes ``check_params``, survives JSON, builds an instance.
``params_described``       every field has a description; numeric ones have both bounds.
``bad_params_refused``     values beyond each bound, of the wrong type, and unknown names
                           raise FieldError naming the field; a refused ``set_params``
                           leaves the effect as it was.
``shapes_and_dtypes``      mono and stereo blocks of 0, 1, 2, 3, 64 frames come back float32,
                           C-contiguous, shaped ``(channels, frames)``.
``block_size_invariance``  the test signal in one block equals blocks of 1, 7, 64, 256, 4096
                           frames and a ragged rising-and-falling sequence (within 1e-5).
``finite_output``          no NaN/Inf on silence, after the signal stops, on full-scale noise.
``reset_determinism``      ``reset()`` then the same signal gives the first pass's output,
                           and a fresh instance gives it too (within 1e-6).
``instances_independent``  two instances running interleaved do not affect each other.
``latency_and_tail``       ``latency`` is a non-negative int, ``tail_seconds`` a non-negative
                           float (``math.inf`` allowed).
``tail_decays``            the output falls below -60 dBFS within latency + tail_seconds
                           (+ a margin) after the input stops.
``param_changes``          ``set_params`` between blocks (defaults, each numeric parameter
                           half-way, each bool flipped, each choice) keeps the output finite.

Offline-only effects (``cls.offline_only``, e.g. :class:`fxhost_sdk.OfflineEffect`) need the
whole signal, so the checks that stream through ``process`` (``shapes_and_dtypes``,
``block_size_invariance``, ``finite_output``, ``reset_determinism``,
``instances_independent``, ``tail_decays``, ``param_changes``) do not apply to them: each
is still listed, passed, with a detail that starts ``not applicable: offline-only effect —``
and says why. These run instead:

``offline_refuses_process``    ``process()`` raises, with a message that says offline-only.
``offline_shapes_and_dtypes``  ``process_offline`` returns float32, C-contiguous,
                               ``(channels, frames)`` (any frame count: trimming is allowed)
                               for mono and stereo inputs of 0, 1 and many frames.
``offline_finite_output``      no NaN/Inf on silence, the test signal and full-scale noise.
``offline_deterministic``      two calls on one instance, and a second instance, agree.
``offline_input_untouched``    ``process_offline`` does not modify its input array.

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

Every check runs (one failure never hides another); an exception raised by the
effect inside a check is reported as that check's failure. A failure says what is
wrong and, where it helps, gives a few lines of Python that reproduce it with
:func:`make_test_signal` and :func:`process_blocks`.

This module imports only the SDK's own dependencies (msgspec, numpy) and the standard
library, so it runs from plain Python as well as from pytest, and the host's
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
import itertools
import math
import pickle
import traceback
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from fxhost_sdk.effect import AssetLoader, Effect, LoadedAudio, effect_class_problems
from fxhost_sdk.params import FieldError, Params, asset_fields

__all__ = [
    "FIXED_BLOCK_SIZES",
    "RAGGED_BLOCK_SIZES",
    "TOLERANCE",
    "Check",
    "ConformanceError",
    "ConformanceReport",
    "check_effect",
    "make_test_asset_loader",
    "make_test_signal",
    "process_blocks",
    "validate_effect",
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

#: Length of the audio the built-in test asset loader returns.
TEST_ASSET_SECONDS = 0.2

_STREAM_BLOCK = 512  # the block size of checks that are not about block sizes
_LAYOUTS = (("stereo", 2), ("mono", 1))


# -- the report ---------------------------------------------------------------------


class ConformanceError(AssertionError):
    """An effect failed the conformance checks; ``str()`` is the full plain-words report."""

    def __init__(self, report: ConformanceReport):
        super().__init__(str(report))
        self.report = report


@dataclass
class Check:
    """One named check. ``detail`` says, for a failure, what is wrong and how to reproduce it;
    for a pass, what was checked (and any note worth reading)."""

    name: str
    passed: bool
    detail: str = ""


@dataclass
class ConformanceReport:
    """The result of :func:`check_effect`: every check, passed or failed."""

    effect: str
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True if no check failed (the word :class:`Check` uses too)."""
        return all(check.passed for check in self.checks)

    @property
    def ok(self) -> bool:
        """Deprecated alias of :attr:`passed`."""
        warnings.warn("ConformanceReport.ok is deprecated: use .passed", DeprecationWarning, stacklevel=2)
        return self.passed

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]

    def __str__(self) -> str:
        failed = len(self.failures)
        verdict = "passed" if self.passed else f"FAILED ({failed} of {len(self.checks)} checks)"
        lines = [f"Conformance of {self.effect}: {verdict}"]
        for check in self.checks:
            lines.append(f"  {'ok  ' if check.passed else 'FAIL'}  {check.name}")
            lines.extend(f"          {line}".rstrip() for line in check.detail.splitlines())
        return "\n".join(lines)


# -- helpers a plugin author can use to reproduce a failure -------------------------


def make_test_signal(sample_rate: float, channels: int, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """The validator's deterministic test signal: float32 ``(channels, frames)``.

    Seeded white noise plus a sine (a different pitch on each channel), 0.5 peak at
    most, with silence from 40% to 55% of its length.
    """
    frames = max(1, round(seconds * sample_rate))
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / float(sample_rate)
    freqs = 220.0 * (1.0 + 0.5 * np.arange(channels))[:, None]
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
        raise TypeError(
            f"process returned {type(out).__name__} for a block of shape {(channels, frames)}; "
            "it must return a numpy array"
        )
    if out.shape != (channels, frames):
        raise ValueError(
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
    seconds: float = 1.0,
    seed: int = 0,
    assets: AssetLoader | None = None,
) -> ConformanceReport:
    """Run every conformance check on ``effect_cls`` and return the report.

    ``params`` (a mapping or a Params instance; the defaults if None) are used for the
    processing checks. ``seconds`` is the length of the test signal, ``seed`` seeds it.
    ``assets`` is the loader effects are built with (``Effect(..., assets=...)``); an
    effect with asset parameters gets :func:`make_test_asset_loader` if it is None.
    Raises :class:`~fxhost_sdk.FieldError` if ``params`` themselves are invalid, and
    ``ValueError`` for a bad ``sample_rate`` or ``seconds``: those are the caller's
    mistakes, not the effect's.
    """
    if not (isinstance(sample_rate, int | float) and math.isfinite(sample_rate) and sample_rate > 0):
        raise ValueError(f"sample_rate must be a positive number, got {sample_rate!r}")
    if not (isinstance(seconds, int | float) and math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"seconds must be a positive number, got {seconds!r}")
    report = ConformanceReport(effect=_describe_class(effect_cls))
    problems = effect_class_problems(effect_cls)
    report.checks.append(
        Check(
            "well_formed",
            not problems,
            "\n".join(problems) + "\n(the other checks were skipped)"
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
    )
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
    return report


# check_effect's options, once: its signature is validate_effect's too (help(), IDEs).
@functools.wraps(check_effect, assigned=())
def validate_effect(effect_cls: Any, **options: Any) -> ConformanceReport:
    """:func:`check_effect` with the same options (``sample_rate``, ``params``,
    ``seconds``, ``seed``, ``assets``), raising :class:`ConformanceError` (an
    AssertionError whose message is the report) if any check fails. Returns the report
    otherwise."""
    report = check_effect(effect_cls, **options)
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
    _signals: dict[int, np.ndarray] = field(default_factory=dict)

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


def _run_check(name: str, run: Callable[[_Context], tuple[bool, str]], ctx: _Context) -> Check:
    try:
        passed, detail = run(ctx)
    except Exception as error:
        return Check(name, False, f"the check could not finish: raised {_describe_error(error)}")
    return Check(name, passed, detail)


def _describe_error(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
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
            given = block.copy()
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
            note = f"note ({layout}): process modifies its input block in place"
            if not np.array_equal(block, given, equal_nan=True) and note not in p.notes:
                p.notes.append(note)
        if kept is not None and not np.array_equal(kept[0], kept[1], equal_nan=True):
            p.notes.append(
                f"note ({layout}): an array returned by process changed during a later call "
                "(process reuses its output buffer); a caller that keeps blocks must copy them"
            )
    sizes = ", ".join(map(str, SHAPE_BLOCK_SIZES))
    return p.result(f"mono and stereo blocks of {sizes} frames: float32, C-contiguous, (channels, frames)")


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
        p.add(
            "Guard divisions and logs (e.g. divide by max(level, 1e-12)), and make sure "
            "feedback paths stay stable."
        )
    return p.result("no NaN or Inf on silence, after the signal stops, or on full-scale noise")


def _check_reset(ctx: _Context) -> tuple[bool, str]:
    p = _Problems()
    for layout, channels in _LAYOUTS:
        x = ctx.signal(channels)

        def run(c: int = channels, x: np.ndarray = x, layout: str = layout) -> None:
            instance = ctx.new(c)
            first = process_blocks(instance, x, _STREAM_BLOCK)
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


def _check_tail(ctx: _Context) -> tuple[bool, str]:
    p = _Problems()
    instance = ctx.new(2)
    latency, tail = instance.latency, instance.tail_seconds
    if not (type(latency) is int and latency >= 0 and isinstance(tail, int | float) and tail >= 0):
        return False, "latency or tail_seconds is invalid (see latency_and_tail); not measured"
    if tail == math.inf:
        return True, "tail_seconds is math.inf: the tail is not measured"
    if tail > MAX_MEASURED_TAIL_SECONDS:
        return True, (
            f"tail_seconds is {tail:g} s, longer than {MAX_MEASURED_TAIL_SECONDS:g} s: not measured"
        )
    rate = ctx.sample_rate
    margin = 0.1 + 0.1 * tail
    window = max(1, round(0.1 * rate))
    ends = latency + round((tail + margin) * rate)
    x = ctx.signal(2)
    process_blocks(instance, x, 4096)
    after = process_blocks(instance, np.zeros((2, ends + window), np.float32), 4096)
    if not np.isfinite(after).all():
        return False, "the output after the input stops is not finite (see finite_output)"
    late = after[:, ends:]
    level = _peak(late)
    if level > TAIL_THRESHOLD:
        loud = np.flatnonzero(np.abs(after).max(axis=0) > TAIL_THRESHOLD)
        p.add(
            f"the output is still at {_dbfs(level)} (peak {level:.3g}) between "
            f"{ends / rate:.3f} s and {(ends + window) / rate:.3f} s after the input stops, "
            f"beyond latency ({latency} frames) + tail_seconds ({tail:g} s) + {margin:.2g} s "
            f"of margin; it is above -60 dBFS until at least {(loud[-1] + 1) / rate:.3f} s. "
            "tail_seconds is too short, so renders will cut the tail off"
        )
        p.add(
            ctx.repro(
                2,
                f"fx = {ctx.ctor(2)}",
                "process_blocks(fx, x, 4096)",
                f"after = process_blocks(fx, np.zeros((2, {ends + window}), np.float32), 4096)",
                f"print(fx.latency, fx.tail_seconds, np.abs(after[:, {ends}:]).max())",
            )
        )
    return p.result(
        f"after the input stops the output falls below -60 dBFS within latency ({latency} "
        f"frames) + tail_seconds ({tail:g} s) + {margin:.2g} s"
    )


def _check_param_changes(ctx: _Context) -> tuple[bool, str]:
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
    return p.result(
        f"{len(changes)} parameter change(s) between blocks of 256 frames: output finite and shaped right"
    )


_CHECKS: list[tuple[str, Callable[[_Context], tuple[bool, str]]]] = [
    ("defaults_validate", _check_defaults),
    ("params_described", _check_described),
    ("bad_params_refused", _check_refused),
    ("shapes_and_dtypes", _check_shapes),
    ("block_size_invariance", _check_invariance),
    ("finite_output", _check_finite),
    ("reset_determinism", _check_reset),
    ("instances_independent", _check_independent),
    ("latency_and_tail", _check_latency_tail),
    ("tail_decays", _check_tail),
    ("param_changes", _check_param_changes),
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


def _check_offline_input(ctx: _Context) -> tuple[bool, str]:
    p = _Problems()
    for layout, channels in _LAYOUTS:
        x = np.array(ctx.signal(channels), dtype=np.float32, order="C", copy=True)
        kept = x.copy()
        out = p.attempt(f"{layout}: process_offline", lambda c=channels, x=x: ctx.new(c).process_offline(x))
        if out is _FAILED:
            continue
        if not np.array_equal(x, kept, equal_nan=True):
            frame = int(np.flatnonzero((x != kept).any(axis=0))[0])
            p.add(
                f"{layout}: process_offline modified its input array in place (first change at frame "
                f"{frame}): the caller still owns it (the dry signal, a retry, the next step's "
                "comparison); compute into a new array (audio * gain, not audio *= gain)\n"
                + ctx.repro(
                    channels,
                    f"fx = {ctx.ctor(channels)}",
                    "kept = x.copy()",
                    "fx.process_offline(x)",
                    "print(np.array_equal(x, kept))",
                )
            )
        elif isinstance(out, np.ndarray) and np.shares_memory(out, x):
            p.notes.append(
                f"note ({layout}): process_offline returned its input (or a view of it): a caller that "
                "modifies the output changes its input too; returning a copy is safer"
            )
    return p.result("process_offline leaves its input array as it was (mono and stereo)")


_OFFLINE_CHECKS: list[tuple[str, Callable[[_Context], tuple[bool, str]]]] = [
    ("offline_refuses_process", _check_offline_refuses),
    ("offline_shapes_and_dtypes", _check_offline_shapes),
    ("offline_finite_output", _check_offline_finite),
    ("offline_deterministic", _check_offline_deterministic),
    ("offline_input_untouched", _check_offline_input),
]


# -- presets and assets ---------------------------------------------------------------


def _check_presets(ctx: _Context) -> tuple[bool, str]:
    p = _Problems()
    cls = ctx.cls
    names = sorted(cls.presets)
    x = ctx.signal(2)
    for name in names:
        params = p.attempt(f"preset {name!r}: {cls.__name__}.preset({name!r})", lambda n=name: cls.preset(n))
        if params is _FAILED:
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
