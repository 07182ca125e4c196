"""Compiled chains: effect instances, in order, for one sample rate and channel count.

Effects are third-party code: every step's output is checked (an ndarray of float32,
the shape it was given, finite) and whatever goes wrong in a step is raised as one
:class:`EffectFault` that names the step and the effect.
"""

from __future__ import annotations

import math
import sys
from bisect import bisect_left
from collections.abc import Sequence
from time import perf_counter
from typing import Literal, Protocol

import numpy as np
from fxhost_sdk import Effect, FieldError, Params
from fxhost_sdk.host import AssetLoader

from fxhost.engine.tally import Histogram

#: Offline block size. Large enough to amortise per-call overhead, and equal to
#: pedalboard's internal chunk so a pedalboard effect is never re-prepared.
RENDER_BLOCK = 8192
_FLOAT32 = np.dtype(np.float32)


class Step(Protocol):
    """A validated chain step: an effect class and its validated parameters."""

    cls: type[Effect]
    params: Params


#: What went wrong in an effect (the ``kind`` label of the faults metric): it failed to
#: start, raised, returned bad audio, refused new parameters, ran past a time limit, or
#: took its worker process down.
FaultKind = Literal["start", "raised", "bad_output", "params", "timeout", "crashed"]


class EffectFault(Exception):
    """A step's effect failed: it raised, returned something other than float32 audio of
    the shape it was given, returned NaN/Inf, or ran past a time limit. ``str()`` is
    ``steps[1] (reverb): returned NaN/Inf``."""

    def __init__(self, index: int | None, effect: str | None, problem: str, kind: FaultKind = "raised"):
        self.index, self.effect, self.problem, self.kind = index, effect, problem, kind
        where = f"steps[{index}] ({effect}): " if index is not None else ""
        super().__init__(f"{where}{problem}")

    def __reduce__(self):  # crosses process boundaries (render workers)
        return type(self), (self.index, self.effect, self.problem, self.kind)


class EffectTimeout(EffectFault):
    """A step ran past a time limit (``index``/``effect`` None when the hung step is unknown)."""

    def __init__(self, index: int | None, effect: str | None, problem: str, kind: FaultKind = "timeout"):
        super().__init__(index, effect, problem, kind)


def _raised(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"raised {type(error).__name__}: {text}" if text else f"raised {type(error).__name__}"


def _bad_output(out: object, channels: int, frames: int | None) -> str | None:
    """What is wrong with an effect's output, or None. ``frames`` None: any length."""
    if type(out) is not np.ndarray:
        return f"returned {type(out).__name__}, not a numpy array"
    if out.dtype != np.float32:
        return f"returned {out.dtype} samples, not float32"
    if out.ndim != 2 or out.shape[0] != channels or (frames is not None and out.shape[1] != frames):
        wanted = f"({channels}, {frames if frames is not None else 'frames'})"
        return f"returned shape {out.shape}, not {wanted}"
    if not np.isfinite(out).all():
        return "returned NaN/Inf"
    return None


class CompiledChain:
    """Effect instances, in order, for one sample rate and channel count."""

    def __init__(
        self, steps: Sequence[Step], sample_rate: float, channels: int, *, assets: AssetLoader | None = None
    ):
        self.sample_rate = float(sample_rate)
        self.channels = channels
        self.effects: list[Effect] = []
        #: Per step, where live processing counts its time (None: not timed).
        self.timings: list[Histogram] | None = None
        for index, step in enumerate(steps):
            try:
                self.effects.append(step.cls(sample_rate, channels, step.params, assets=assets))
            except FieldError:
                raise  # a parameter's value (a missing asset): the client's to fix
            except Exception as error:
                raise EffectFault(
                    index, step.cls.name, f"failed to start: {_raised(error)}", "start"
                ) from error

    def fault(self, index: int, problem: str, kind: FaultKind = "raised") -> EffectFault:
        return EffectFault(index, self.effects[index].name, problem, kind)

    def _step(self, index: int, effect: Effect, block: np.ndarray) -> np.ndarray:
        try:
            out = effect.process(block)
        except EffectFault:
            raise  # a deadline raised into the effect (live blocks)
        except Exception as error:
            raise self.fault(index, _raised(error)) from error
        # The common case in one cheap test; the details only for a report. A sum of
        # squares is NaN/Inf if any sample is, at half the cost of isfinite().all(); only
        # absurdly loud (finite) audio overflows it, and gets the exact test.
        ok = type(out) is np.ndarray and out.dtype == _FLOAT32 and out.shape == block.shape
        if ok and (math.isfinite(np.vdot(out, out)) or np.isfinite(out).all()):
            return out
        problem = _bad_output(out, self.channels, block.shape[1]) or "returned bad audio"
        raise self.fault(index, problem, "bad_output")

    @property
    def offline(self) -> bool:
        """True if a step needs the whole signal: the chain then renders in memory."""
        return any(effect.offline_only for effect in self.effects)

    def process_whole(self, audio: np.ndarray, block_frames: int = RENDER_BLOCK) -> np.ndarray:
        """Process a whole signal, offline-only steps included. Each streaming step runs
        in blocks with its own latency removed, so every step sees the signal aligned."""
        for index, effect in enumerate(self.effects):
            if effect.offline_only:
                try:
                    whole = effect.process_offline(audio)
                except Exception as error:
                    raise self.fault(index, _raised(error)) from error
                if problem := _bad_output(whole, self.channels, None):
                    raise self.fault(index, problem, "bad_output")
                audio = np.ascontiguousarray(whole)
                continue
            latency = effect.latency
            padded = np.concatenate([audio, np.zeros((self.channels, latency), np.float32)], axis=1)
            out = [
                self._step(index, effect, padded[:, i : i + block_frames])
                for i in range(0, padded.shape[1], block_frames)
            ]
            joined = np.concatenate(out, axis=1) if out else padded[:, :0]
            audio = np.ascontiguousarray(joined[:, latency:])
        return audio

    def process(self, block: np.ndarray) -> np.ndarray:
        """``block`` through every step; with :attr:`timings`, each step's time counted
        into ``timings[index]`` (one clock read per step: each step's end is the next
        one's start; the histogram's observe() inlined: bench/metrics.py)."""
        # _step written out: this runs once per live block, where a call per step is a
        # cost of its own. ``index`` and ``self`` stay locals: running_step() reads them.
        timings = self.timings
        start = perf_counter() if timings is not None else 0.0
        shape = block.shape  # every step's output has it: checked
        for index, effect in enumerate(self.effects):
            try:
                out = effect.process(block)
            except EffectFault:
                raise
            except Exception as error:
                raise self.fault(index, _raised(error)) from error
            if not (
                type(out) is np.ndarray
                and out.dtype == _FLOAT32
                and out.shape == shape
                and (math.isfinite(np.vdot(out, out)) or np.isfinite(out).all())
            ):
                problem = _bad_output(out, self.channels, shape[1]) or "returned bad audio"
                raise self.fault(index, problem, "bad_output")
            block = out
            if timings is not None:
                end = perf_counter()
                elapsed = end - start
                times = timings[index]
                times.sum += elapsed
                times.counts[bisect_left(times.bounds, elapsed)] += 1
                start = end
        return block

    def reset(self) -> None:
        for effect in self.effects:
            effect.reset()

    def set_params(self, index: int, params: Params | dict) -> None:
        """New parameters for a step, between blocks; an effect that fails to take them
        is a fault like any other (its state is unknown afterwards)."""
        try:
            self.effects[index].set_params(params)
        except Exception as error:
            raise self.fault(index, f"failed to take new parameters: {_raised(error)}", "params") from error

    @property
    def latency(self) -> int:
        return sum(effect.latency for effect in self.effects)

    @property
    def tail_seconds(self) -> float:
        # Tails add up: each step rings on after the one before it has stopped.
        return sum(effect.tail_seconds for effect in self.effects)

    def tail_frames(self, max_tail_seconds: float) -> int:
        # round() first, so that 0.1 + 0.2 seconds is 300 frames at 1 kHz, not 301
        return math.ceil(round(min(self.tail_seconds, max_tail_seconds) * self.sample_rate, 6))


_STEP_CODES = (
    CompiledChain._step.__code__,
    CompiledChain.process.__code__,
    CompiledChain.process_whole.__code__,
)


def running_step(thread_id: int) -> tuple[int, str] | None:
    """(index, effect name) of the chain step that thread ``thread_id`` is inside now, read
    from its stack: only to name an effect that hangs, so the hot path pays nothing for it."""
    frame = sys._current_frames().get(thread_id)
    while frame is not None:
        if frame.f_code in _STEP_CODES:
            chain, index = frame.f_locals.get("self"), frame.f_locals.get("index")
            if isinstance(chain, CompiledChain) and isinstance(index, int) and index < len(chain.effects):
                return index, chain.effects[index].name
        frame = frame.f_back
    return None
