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

Beside them: :class:`ChainLatency`, what a chain's effects hold back (measured by
:func:`chain_latency`, held to a chain's ``max_latency_ms``), and
:class:`RecordedChain`, a resolved chain pinned to its effect and plugin versions, what a
render records so that it can be made again (:func:`record_chain`, :func:`replay_steps`).

:func:`resolve_chain` is the one way from "a chain name, its steps, or an effect with
parameters" to a :class:`ResolvedChain`; the CLI and every route use it. Validation
knows nothing of TOML or HTTP: it checks steps against a mapping of effect classes and
raises :class:`fxhost_sdk.FieldError` with the failing path, e.g.
``chains.vocal.steps[1].params.room_size: Expected float <= 1.0``.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
from fxhost_sdk import Effect, FieldError, LoadedAudio, Params
from fxhost_sdk.host import AssetLoader, asset_fields, convert

from fxhost.engine.compiled import CompiledChain, EffectFault

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


#: A chain's latency budget, in milliseconds.
MaxLatency = Annotated[
    float,
    msgspec.Meta(
        gt=0,
        le=60_000,
        description="The most latency (ms) the chain's effects may add up to, at the server's default "
        "sample rate; a chain over it is refused.",
    ),
]
#: The channel count latencies are measured at (an effect's latency rarely depends on it).
LATENCY_CHANNELS = 2


class ChainLatency(msgspec.Struct, frozen=True, kw_only=True):
    """How late a chain's output is: the sum of its effects' latencies, measured on
    instances made for ``sample_rate`` (stereo) with the chain's parameters."""

    frames: Annotated[int, msgspec.Meta(ge=0, description="The chain's latency in frames.")]
    ms: Annotated[float, msgspec.Meta(ge=0, description="The same in milliseconds, at `sample_rate`.")]
    sample_rate: Annotated[int, msgspec.Meta(description="The sample rate it was measured at.")]
    steps: Annotated[list[int], msgspec.Meta(description="Each step's latency in frames, in order.")]


class Chain(msgspec.Struct, frozen=True, kw_only=True):
    """A named, validated chain. ``steps`` hold every parameter (defaults filled in)."""

    name: str
    steps: list[ChainStep]
    description: str = ""
    source: ChainSource = "config"
    max_latency_ms: MaxLatency | None = None
    #: Measured at the server's default sample rate (None: not measured).
    latency: ChainLatency | None = None


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
    max_latency_ms: float | None = None,
    sample_rate: int | None = None,
) -> Chain:
    """Validate a name and its steps into a :class:`Chain` with every parameter filled in
    (what the API does with a chain it saves). FieldErrors are rooted at ``path``:
    ``{path}.name``, ``{path}.steps[i]...``, ``{path}.max_latency_ms`` for a chain over
    its latency budget. With ``sample_rate`` its latency is measured at that rate."""
    validate_chain_name(name, _join(path, "name"))
    steps = validate_steps(steps_raw, effects, path)
    latency = None
    if sample_rate is not None:
        latency = chain_latency(steps, sample_rate, path)
        check_latency_budget(latency, max_latency_ms, steps, path)
    return Chain(
        name=name,
        steps=[step.to_step() for step in steps],
        description=description,
        source=source,
        max_latency_ms=max_latency_ms,
        latency=latency,
    )


def stand_in_asset(ref: str, path: str) -> LoadedAudio:
    """A one-frame impulse for an asset parameter while a latency is measured with no
    store at hand (``plugins.toml``, ``fxhost check``): an effect's latency depends on
    its settings, not on the content of an impulse response."""
    return LoadedAudio(np.ones((1, 1), np.float32), 48000.0)


@functools.lru_cache(maxsize=1024)
def _step_latency(cls: type[Effect], params: Params, sample_rate: int) -> int:
    # Params structs are frozen and hashable; a pedalboard effect probes its plugin when
    # made (milliseconds), so a listing that measures the same steps again is a cache hit.
    compiled = CompiledChain([_Measured(cls, params)], sample_rate, LATENCY_CHANNELS, assets=stand_in_asset)
    return compiled.latency


@dataclass(frozen=True, slots=True)
class _Measured:
    cls: type[Effect]
    params: Params


def chain_latency(steps: Sequence[ResolvedStep], sample_rate: int, path: str = "") -> ChainLatency:
    """The latency of validated ``steps`` at ``sample_rate``: each effect made once (with
    a stand-in for any asset parameter) and its ``latency`` read. An effect that fails to
    start is a FieldError at ``{path}.steps[i].effect``."""
    frames: list[int] = []
    for i, step in enumerate(steps):
        try:
            try:
                frames.append(_step_latency(step.cls, step.params, sample_rate))
            except TypeError:  # unhashable params (a list field): measured without the cache
                frames.append(_step_latency.__wrapped__(step.cls, step.params, sample_rate))
        except EffectFault as fault:
            raise FieldError(_join(path, f"steps[{i}].effect"), f"{step.effect}: {fault.problem}") from None
    total = sum(frames)
    return ChainLatency(
        frames=total, ms=round(total * 1000 / sample_rate, 3), sample_rate=sample_rate, steps=frames
    )


def check_latency_budget(
    latency: ChainLatency, max_latency_ms: float | None, steps: Sequence[ResolvedStep], path: str = ""
) -> None:
    """FieldError at ``{path}.max_latency_ms`` when ``latency`` is over the budget, naming
    the steps that make it up."""
    if max_latency_ms is None or latency.ms <= max_latency_ms:
        return
    parts = ", ".join(
        f"steps[{i}] {step.effect} {frames}"
        for i, (step, frames) in enumerate(zip(steps, latency.steps, strict=True))
        if frames
    )
    raise FieldError(
        _join(path, "max_latency_ms"),
        f"the chain's latency is {latency.ms:g} ms ({latency.frames} frames at {latency.sample_rate} Hz: "
        f"{parts}), over its budget of {max_latency_ms:g} ms",
    )


def _explain_params(error: FieldError, params_path: str, effect: str, cls: type[Effect]) -> FieldError:
    """Name the effect's parameters when an unknown one was given."""
    if error.message != "unknown field" or error.path.rpartition(".")[0] != params_path:
        return error
    names = ", ".join(field.encode_name for field in msgspec.structs.fields(cls.Params))
    return FieldError(error.path, f"unknown parameter of {effect!r} (it has: {names or 'none'})")


# -- recorded chains: what a render ran, to reproduce it ------------------------------


class EffectOrigin(msgspec.Struct, frozen=True, kw_only=True):
    """Where an effect comes from: its plugin and the plugin's version (None for a
    module plugin that is not an installed distribution)."""

    plugin: str
    plugin_version: str | None = None


class RecordedStep(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One step as a render ran it: enough to run it again and to know when it would
    no longer sound the same."""

    effect: str
    effect_version: str
    plugin: str
    plugin_version: str | None
    #: Every parameter, defaults included.
    params: dict[str, Any]


class RecordedChain(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The resolved chain a render used (its ``recorded`` field). ``POST /api/renders``
    takes it back as ``chain`` to render the same again; it is refused when an effect's
    or a plugin's version is no longer the one recorded."""

    #: The chain's name when it was given by name (a note: the steps are what runs).
    name: str | None = None
    steps: Annotated[list[RecordedStep], msgspec.Meta(min_length=1, max_length=MAX_STEPS)]


def record_chain(chain: ResolvedChain, origins: Mapping[str, EffectOrigin]) -> RecordedChain:
    """What ``chain`` is, pinned: each step's effect and version, plugin and version, and
    every parameter. ``origins``: effect name -> where it comes from (the registry's)."""
    steps = []
    for step in chain.steps:
        origin = origins.get(step.effect) or EffectOrigin(plugin="?")
        steps.append(
            RecordedStep(
                effect=step.effect,
                effect_version=step.cls.version,
                plugin=origin.plugin,
                plugin_version=origin.plugin_version,
                params=msgspec.to_builtins(step.params),
            )
        )
    return RecordedChain(name=chain.name, steps=steps)


def replay_steps(
    recorded: RecordedChain, effects: Effects, origins: Mapping[str, EffectOrigin], path: str = "chain"
) -> list[ChainStep]:
    """The steps of a recorded chain, once every effect and plugin is found at the
    version recorded: FieldError at ``{path}.steps[i].<field>`` naming both versions
    otherwise (the render would not sound the same)."""
    for i, step in enumerate(recorded.steps):
        where = f"{path}.steps[{i}]"
        cls = effects.get(step.effect)
        if cls is None:
            raise FieldError(f"{where}.effect", unknown_effect(step.effect, list(effects)))
        if cls.version != step.effect_version:
            raise FieldError(
                f"{where}.effect_version",
                f"{step.effect!r} is version {cls.version} here, the render recorded {step.effect_version}: "
                "it would not sound the same",
            )
        origin = origins.get(step.effect) or EffectOrigin(plugin="?")
        if origin.plugin != step.plugin:
            raise FieldError(
                f"{where}.plugin",
                f"{step.effect!r} comes from plugin {origin.plugin!r} here, "
                f"the render recorded {step.plugin!r}",
            )
        if origin.plugin_version != step.plugin_version:
            raise FieldError(
                f"{where}.plugin_version",
                f"plugin {step.plugin!r} is version {origin.plugin_version} here, the render recorded "
                f"{step.plugin_version}: it would not sound the same",
            )
    return [ChainStep(effect=step.effect, params=step.params) for step in recorded.steps]
