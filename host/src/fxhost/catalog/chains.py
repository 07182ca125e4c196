"""Effect chains: what users write, and the validated steps the engine runs.

A chain passes through these types on its way to sound, each a step further:

- :class:`ChainStep`: one step as written: an effect name, maybe one of its presets,
  some of its parameters.
- :class:`Chain`: a named chain, from ``plugins.toml`` or saved through the API, with
  every parameter written out.
- :class:`~fxhost.catalog.config.ChainConfig`: one ``[chains.<name>]`` table of
  ``plugins.toml`` as read, before its effects are checked.
- :class:`EffectRef`: one effect with parameters, given instead of a chain
  (``?effect=reverb&room_size=0.8``, ``fxhost render --effect reverb --set ...``).
- :class:`ResolvedStep`: a validated step: the effect class and an instance of its Params.
- :class:`ResolvedChain`: a chain ready to compile: its name, its resolved steps and the
  loader its effects read their asset parameters through.
- :class:`~fxhost.engine.compiled.CompiledChain`: effect instances for one sample rate
  and channel count.
- :class:`~fxhost.engine.live.LiveChain`: a compiled chain driven block by block, with
  its counters.

:func:`resolve_chain` is the one way from "a chain name, its steps, or an effect with
parameters" to a :class:`ResolvedChain`; the CLI and every route use it. Validation
knows nothing of TOML or HTTP: it checks steps against a mapping of effect classes and
raises :class:`fxhost_sdk.FieldError` with the failing path, e.g.
``chains.vocal.steps[1].params.room_size: Expected float <= 1.0``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import msgspec
from fxhost_sdk import Effect, FieldError, Params
from fxhost_sdk.host import AssetLoader, asset_fields, convert

#: Chain names: lower-case letters, digits, ``-`` and ``_``, starting with a letter or digit.
#: Use ``fullmatch``: with ``match`` the ``$`` lets a trailing newline through.
CHAIN_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
#: The most steps a chain may have.
MAX_STEPS = 64

ChainSource = Literal["config", "api", "inline"]
#: Effect classes by name: what chains are checked against (a registry's ``classes``).
Effects = Mapping[str, type[Effect]]


class ChainStep(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """One step as written by a user: an effect name, optionally one of its presets,
    and (some of) its parameters.

    Parameters left out take the preset's values, then the effect's defaults."""

    effect: str
    params: dict[str, Any] = {}
    preset: str | None = None


# The rules above as the API documents them. Only documented (extra_json_schema), not
# checked on decoding: validate_chain_name and validate_steps check them, with messages
# that say how to fix the value.
ChainName = Annotated[str, msgspec.Meta(extra_json_schema={"pattern": CHAIN_NAME_PATTERN.pattern})]
ChainSteps = Annotated[
    list[ChainStep], msgspec.Meta(extra_json_schema={"minItems": 1, "maxItems": MAX_STEPS})
]


class Chain(msgspec.Struct, frozen=True, kw_only=True):
    """A named, validated chain. ``steps`` hold every parameter (defaults filled in)."""

    name: str
    steps: list[ChainStep]
    description: str = ""
    source: ChainSource = "config"


@dataclass(frozen=True)
class EffectRef:
    """One effect with parameters (and maybe a preset), given instead of a chain.

    ``query``: the parameters come from a query string: strings, parsed into their
    types, and named in errors as the query fields they are (``room_size``), beside
    ``effect``; a query names no preset. Otherwise they are typed values, named like a
    chain's step."""

    effect: str
    params: Mapping[str, Any] = field(default_factory=dict)
    preset: str | None = None
    query: bool = False


#: What :func:`resolve_chain` takes: a chain's name, its steps, or one effect.
ChainSpec = str | Sequence[ChainStep | Mapping[str, Any]] | EffectRef


@dataclass(frozen=True, slots=True)
class ResolvedStep:
    """A validated step: the effect class and a validated instance of its Params."""

    effect: str
    cls: type[Effect]
    params: Params
    preset: str | None = None
    #: Where its parameters were given, for errors found later (a missing asset).
    params_path: str = "params"

    def to_step(self) -> ChainStep:
        """Back to a serialisable step, with every parameter written out."""
        return ChainStep(effect=self.effect, params=msgspec.to_builtins(self.params), preset=self.preset)


@dataclass(frozen=True)
class ResolvedChain:
    """A chain ready to compile: its name (None if given inline), validated steps, and
    the loader its effects read their asset parameters through (None: no assets)."""

    name: str | None
    steps: list[ResolvedStep]
    assets: AssetLoader | None = None

    def asset_refs(self) -> Iterator[tuple[str, str]]:
        """``(value, path)`` of every asset parameter that names an asset, in step
        order, each value once: what the host must find before the chain can run."""
        seen: set[str] = set()
        for step in self.steps:
            for name in asset_fields(step.cls.Params):
                ref = getattr(step.params, name)
                if ref and ref not in seen:  # "" is "no asset"
                    seen.add(ref)
                    yield ref, _join(step.params_path, name)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def validate_chain_name(name: object, path: str = "name") -> str:
    """Check a chain name; raise FieldError at ``path`` if it is not one."""
    if not isinstance(name, str) or not CHAIN_NAME_PATTERN.fullmatch(name):
        raise FieldError(
            path,
            f"invalid chain name {name!r}: use 1 to 64 lower-case letters, digits, '-' and '_', "
            "starting with a letter or digit",
        )
    return name


def unknown_effect(name: str, available: Sequence[str]) -> str:
    """The one message for an effect name that names nothing."""
    if not available:
        return f"unknown effect {name!r}: no effects are loaded (see `fxhost plugins`)"
    available = sorted(available)
    message = f"unknown effect {name!r}"
    close = difflib.get_close_matches(name, available, n=1)
    if close:
        message += f" (did you mean {close[0]!r}?)"
    return f"{message}; available: {', '.join(available)}"


def unknown_chain(name: str, available: Sequence[str]) -> str:
    """The one message for a chain name that names nothing."""
    return f"unknown chain {name!r} (available: {', '.join(sorted(available)) or 'none are defined'})"


def validate_steps(
    steps_raw: Any, effects: Effects, path: str = "", *, live: bool = False
) -> list[ResolvedStep]:
    """Validate the steps of a chain against ``effects``.

    ``steps_raw`` is a list of ``{"effect": ..., "params": {...}}`` mappings (decoded
    JSON or TOML) or of :class:`ChainStep`. ``path`` is where the chain sits in the
    document (``"chains.vocal"``; ``""`` for a bare chain): errors are raised as
    FieldError at ``{path}.steps``, ``{path}.steps[i].effect`` or
    ``{path}.steps[i].params.<field>``. Checks the first failing thing only.
    ``live``: the chain will run in a stream, which refuses offline-only effects.
    """
    steps_path = _join(path, "steps")
    return _validate(steps_raw, effects, steps_path, live=live)


def _validate(steps_raw: Any, effects: Effects, steps_path: str, *, live: bool) -> list[ResolvedStep]:
    """Steps validated, their errors rooted at ``steps_path`` (``steps_path[i]...``)."""
    if isinstance(steps_raw, Sequence) and not isinstance(steps_raw, str | bytes):
        steps_raw = [msgspec.to_builtins(step) if isinstance(step, ChainStep) else step for step in steps_raw]
    steps = convert(steps_raw, list[ChainStep], steps_path)
    if not steps:
        raise FieldError(steps_path, "a chain needs at least one step")
    if len(steps) > MAX_STEPS:
        raise FieldError(steps_path, f"a chain has at most {MAX_STEPS} steps, got {len(steps)}")
    return [
        _resolve_step(step.effect, step.params, step.preset, effects, f"{steps_path}[{i}]", live=live)
        for i, step in enumerate(steps)
    ]


def _resolve_step(
    effect: str,
    params: Mapping[str, Any],
    preset: str | None,
    effects: Effects,
    path: str,
    *,
    live: bool,
    query: bool = False,
) -> ResolvedStep:
    """One step, its errors at ``{path}.effect``, ``{path}.preset`` and
    ``{path}.params.<field>`` (``query``: the fields themselves, strings to parse)."""
    cls = effects.get(effect)
    if cls is None:
        raise FieldError(_join(path, "effect"), unknown_effect(effect, list(effects)))
    if live and cls.offline_only:
        raise FieldError(
            _join(path, "effect"),
            f"{effect!r} is offline-only: it needs the whole signal, so it cannot run live; "
            "use it in a render",
        )
    params_path = path if query else _join(path, "params")
    try:
        if query:  # strings: let msgspec parse numbers and booleans
            checked = convert(dict(params), cls.Params, params_path, strict=False)
        elif preset is not None:
            checked = cls.preset(preset, params, path=params_path)
        else:
            checked = cls.check_params(params, path=params_path)
    except FieldError as error:
        if error.path == "preset":
            raise FieldError(_join(path, "preset"), error.message) from None
        raise _explain_params(error, params_path, effect, cls) from None
    return ResolvedStep(effect=effect, cls=cls, params=checked, preset=preset, params_path=params_path)


def resolve_chain(
    spec: ChainSpec,
    named: Mapping[str, Chain],
    effects: Effects,
    path: str = "chain",
    *,
    live: bool = False,
) -> ResolvedChain:
    """The one way from "a chain name, its steps, or an effect with parameters" to a
    :class:`ResolvedChain` (with no asset loader: its caller finds the assets it names,
    see :meth:`ResolvedChain.asset_refs`).

    ``named`` holds the chains a name may refer to; ``path`` is where ``spec`` was
    given. A name that is not in ``named`` is a FieldError at ``path``, listing them;
    a named chain's steps are checked again (the effects may have changed since it was
    saved) with errors at ``chains.<name>.steps[i]...``; inline steps fail at
    ``path[i]...``; an :class:`EffectRef` at ``path.effect`` and ``path.params.<field>``
    (a query's at ``effect`` and the field's own name). ``live`` refuses offline-only
    effects.
    """
    if isinstance(spec, EffectRef):
        if spec.query and spec.preset is not None:
            raise ValueError("a query's effect takes no preset")
        root = "" if spec.query else path
        step = _resolve_step(
            spec.effect, spec.params, spec.preset, effects, root, live=live, query=spec.query
        )
        return ResolvedChain(None, [step])
    if isinstance(spec, str):
        chain = named.get(spec)
        if chain is None:
            raise FieldError(path, unknown_chain(spec, list(named)))
        return ResolvedChain(spec, validate_steps(chain.steps, effects, f"chains.{spec}", live=live))
    return ResolvedChain(None, _validate(spec, effects, path, live=live))


def build_chain(
    name: str,
    steps_raw: Any,
    effects: Effects,
    *,
    description: str = "",
    source: ChainSource = "config",
    path: str = "",
) -> Chain:
    """Validate a name and its steps into a :class:`Chain` with every parameter filled in
    (what the API does with a chain it saves). FieldErrors are rooted at ``path``:
    ``{path}.name``, ``{path}.steps[i]...``."""
    validate_chain_name(name, _join(path, "name"))
    steps = validate_steps(steps_raw, effects, path)
    return Chain(name=name, steps=[step.to_step() for step in steps], description=description, source=source)


def _explain_params(error: FieldError, params_path: str, effect: str, cls: type[Effect]) -> FieldError:
    """Name the effect's parameters when an unknown one was given."""
    if error.message != "unknown field" or error.path.rpartition(".")[0] != params_path:
        return error
    names = ", ".join(field.encode_name for field in msgspec.structs.fields(cls.Params))
    return FieldError(error.path, f"unknown parameter of {effect!r} (it has: {names or 'none'})")
