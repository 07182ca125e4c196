"""The effect contract.

An instance is made for one sample rate and channel count and is stateful:
``process`` takes and returns float32 arrays shaped ``(channels, frames)`` for any
number of frames, keeping state between calls, so a stream cut into blocks of any
size sounds the same as the whole signal processed at once.

The lifecycle of an instance, as every host drives it::

    Effect(sample_rate, channels, params)     validate params (FieldError names the field)
      ├─ prepare()                            allocate state for the rate and channels
      └─ apply_params(params)                 push the parameters into the DSP
    process(block) *                          any number of blocks, any size, 0 frames too
      set_params(params)                      between blocks: validate, then apply_params;
                                              if apply_params raises, the old parameters
                                              stay (rollback) and the error propagates
      reset()                                 = prepare() + apply_params(current params):
                                              a fresh state, the same parameters
      latency, tail_seconds                   read at any time between blocks

An :class:`OfflineEffect` has the same construction, then one ``process_offline(audio)``
with the whole signal instead of ``process`` blocks.
"""

from __future__ import annotations

import functools
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple

import msgspec
import numpy as np

from fxhost_sdk.params import FieldError, Params, convert

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class LoadedAudio(NamedTuple):
    """Audio an effect asked for by reference (an impulse response, say)."""

    #: float32 ``(channels, frames)``
    audio: np.ndarray
    sample_rate: float


#: How a host hands an effect the audio behind an asset parameter: called with the
#: parameter's value and the field's path (for errors), it returns the decoded audio or
#: raises :class:`FieldError` naming the field (unknown asset, not audio).
AssetLoader = Callable[[str, str], LoadedAudio]


class Effect(ABC):
    """Base class of every fxhost effect.

    Subclasses set the class attributes and implement :meth:`process`; most also
    override :meth:`prepare` (allocate state) and :meth:`apply_params` (push new
    parameter values into the DSP between blocks).
    """

    #: Stable identifier used in chains and URLs: lower case, digits and ``_``.
    name: ClassVar[str]
    #: The effect's own version; bump it when its sound changes.
    version: ClassVar[str]
    #: One line saying what it does.
    summary: ClassVar[str]
    #: The parameter struct: a :class:`Params` subclass with a default for every field.
    #: An effect without parameters leaves it out (the empty base struct).
    Params: ClassVar[type[Params]] = Params
    #: Named parameter sets: preset name -> some of the Params fields. A chain step may
    #: name one and override fields of it.
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    #: True for processing that needs the whole signal first (see :class:`OfflineEffect`).
    offline_only: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # latency and tail_seconds are often computed with numpy (np.int64, np.float32);
        # hosts put them in JSON and in plain arithmetic, so they are handed on as Python
        # numbers. Only numpy scalars change: anything else reaches the validator as is.
        for attr in ("latency", "tail_seconds"):
            value = cls.__dict__.get(attr)
            if isinstance(value, property) and value.fget is not None:
                setattr(cls, attr, property(_plain_result(value.fget), doc=value.__doc__))
            elif isinstance(value, np.generic):
                setattr(cls, attr, value.item())

    def __init__(
        self,
        sample_rate: float,
        channels: int,
        params: Params | Mapping[str, Any] | None = None,
        *,
        assets: AssetLoader | None = None,
    ):
        # bool is an int in Python; True as a sample rate or channel count is a mistake.
        if isinstance(sample_rate, bool) or not (
            isinstance(sample_rate, int | float) and math.isfinite(sample_rate) and sample_rate > 0
        ):
            raise FieldError("sample_rate", f"must be a positive number, got {sample_rate!r}")
        if isinstance(channels, bool) or not (isinstance(channels, int) and channels >= 1):
            raise FieldError("channels", f"must be a positive integer, got {channels!r}")
        self.sample_rate = float(sample_rate)
        self.channels = channels
        self.assets = assets
        self._params = self.check_params(self.Params() if params is None else params)
        self.prepare()
        self.apply_params(self._params)

    # -- parameters ---------------------------------------------------------------

    @classmethod
    def check_params(cls, params: Params | Mapping[str, Any], path: str = "params") -> Params:
        """Validate ``params`` (a Params instance or a mapping) against ``cls.Params``.

        Raises :class:`FieldError` naming the field, e.g. ``params.room_size``.
        """
        if isinstance(params, msgspec.Struct) and not isinstance(params, cls.Params):
            raise FieldError(path, f"expected {cls.Params.__name__}, got {type(params).__name__}")
        return convert(params, cls.Params, path)

    @property
    def params(self) -> Params:
        return self._params

    def set_params(self, params: Params | Mapping[str, Any]) -> None:
        """Change parameters between blocks (live automation). Invalid values are refused
        with :class:`FieldError` and leave the effect unchanged."""
        checked = self.check_params(params)
        previous, self._params = self._params, checked  # apply_params may load_asset the new ones
        try:
            self.apply_params(checked)
        except BaseException:
            self._params = previous
            raise

    @classmethod
    def preset(cls, name: str, overrides: Mapping[str, Any] | None = None, path: str = "params") -> Params:
        """The parameters of preset ``name`` with ``overrides`` on top, validated.
        FieldError at ``preset`` for an unknown preset, at ``params.<field>`` for a bad value."""
        if name not in cls.presets:
            known = ", ".join(sorted(cls.presets)) or "none"
            raise FieldError("preset", f"{cls.name} has no preset {name!r} (presets: {known})")
        return cls.check_params({**cls.presets[name], **(overrides or {})}, path)

    def load_asset(self, field: str) -> LoadedAudio:
        """The audio behind asset parameter ``field`` (see :func:`fxhost_sdk.asset`), from
        the loader the host gave. Call it in :meth:`apply_params`."""
        path = f"params.{field}"
        if self.assets is None:
            raise FieldError(path, "this host gave the effect no way to load audio assets")
        return self.assets(getattr(self._params, field), path)

    def apply_params(self, params: Params) -> None:  # noqa: B027 - optional hook
        """Push validated parameters into the DSP. Called at construction and on every
        :meth:`set_params`; the default does nothing (``process`` reads ``self.params``)."""

    # -- processing ---------------------------------------------------------------

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """Allocate state for ``self.sample_rate`` and ``self.channels``. Called at
        construction (before :meth:`apply_params`) and by the default :meth:`reset`."""

    @abstractmethod
    def process(self, block: np.ndarray) -> np.ndarray:
        """Process one block: float32 ``(channels, frames)`` in, the same shape out.

        ``frames`` may be anything from 0 up; state carries over to the next call.
        Do not keep a reference to ``block``: the caller may reuse its memory.
        """

    def reset(self) -> None:
        """Clear all state (delay lines, envelopes, LFO phases), keeping parameters, so
        the next ``process`` sounds as on a fresh instance."""
        self.prepare()
        self.apply_params(self._params)

    @property
    def latency(self) -> int:
        """Frames by which the output lags the input (0 for most effects)."""
        return 0

    @property
    def tail_seconds(self) -> float:
        """How long the output rings after the input stops, with the current parameters,
        until it falls below -60 dBFS. ``math.inf`` means it never stops (a frozen
        reverb); hosts then cap the tail with a setting."""
        return 0.0


def _plain_result(getter: Callable[[Any], Any]) -> Callable[[Any], Any]:
    @functools.wraps(getter)
    def plain(self: Any) -> Any:
        value = getter(self)
        return value.item() if isinstance(value, np.generic) else value

    return plain


class OfflineEffect(Effect):
    """An effect that needs the whole signal first: loudness normalisation, trimming
    silence. Hosts call :meth:`process_offline` once with everything (renders and
    ``fxhost render``) and refuse the effect in live streams, which never have the
    whole signal. It cannot meet the streaming rules (block-size invariance), and says
    so by being offline-only rather than by breaking them."""

    offline_only: ClassVar[bool] = True

    @abstractmethod
    def process_offline(self, audio: np.ndarray) -> np.ndarray:
        """The whole signal, float32 ``(channels, frames)``, in; the processed signal out
        (its length may differ: trimming)."""

    def process(self, block: np.ndarray) -> np.ndarray:
        raise RuntimeError(f"{self.name} is offline-only: it needs the whole signal (process_offline)")


def effect_class_problems(cls: object) -> list[str]:
    """What makes ``cls`` unusable as an effect class, in plain words (empty if fine)."""
    if not (isinstance(cls, type) and issubclass(cls, Effect)):
        return [f"{cls!r} is not a subclass of fxhost_sdk.Effect"]
    problems = []
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        problems.append(
            f"{cls.__qualname__}.name must be a string of lower-case letters, digits and '_' "
            f"starting with a letter, got {name!r}"
        )
    for attr in ("version", "summary"):
        value = getattr(cls, attr, None)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{cls.__qualname__}.{attr} must be a non-empty string, got {value!r}")
    summary = getattr(cls, "summary", "")
    if isinstance(summary, str) and "\n" in summary.strip():
        problems.append(f"{cls.__qualname__}.summary must be one line")
    params = getattr(cls, "Params", None)
    if not (isinstance(params, type) and issubclass(params, Params)):
        problems.append(f"{cls.__qualname__}.Params must be a subclass of fxhost_sdk.Params, got {params!r}")
    else:
        try:
            convert({}, params, "params")  # a field with no default
            # msgspec never checks defaults against their own constraints; a round
            # trip through builtins does.
            convert(params(), params, "params")
        except FieldError as error:
            problems.append(f"{cls.__qualname__}.Params needs a valid default for every field ({error})")
        except Exception as error:  # an annotation that cannot be evaluated, say
            problems.append(f"{cls.__qualname__}.Params cannot be used: {type(error).__name__}: {error}")
            return problems
        presets = getattr(cls, "presets", {})
        if not isinstance(presets, Mapping):
            problems.append(f"{cls.__qualname__}.presets must be a mapping of name -> parameters")
        else:
            for preset, values in presets.items():
                try:
                    if not isinstance(values, Mapping):
                        raise FieldError("", "expected a mapping of parameter values")
                    convert({**values}, params, "params")
                except FieldError as error:
                    problems.append(f"{cls.__qualname__}.presets[{preset!r}] is invalid ({error})")
    if getattr(cls, "__abstractmethods__", None):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        problems.append(f"{cls.__qualname__} does not implement {missing}")
    return problems
