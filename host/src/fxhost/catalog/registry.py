"""The plugin registry: which plugins loaded, which effects they provide, what failed.

:func:`load_registry` finds plugins in two places, in this fixed order:

1. installed entry points of the ``fxhost`` group, sorted by entry-point name (then
   by distribution name, for two distributions using the same name);
2. the modules named in ``plugins.toml`` (``[plugins] modules``), in listed order.

Each plugin is registered with a pluggy ``PluginManager("fxhost")`` and its
``fxhost_effects`` hook is called on its own, so that whatever goes wrong is
attributed to that plugin: a plugin that fails to import, fails pluggy's validation,
raises in its hook or returns something other than a list of effect classes is
reported with status ``"failed"`` and the reason, and skipped; the host still starts.
An effect class with problems is rejected with its reasons; the plugin's other
effects still load.

**Name clashes.** The first registration of an effect name wins, in the order above;
a later effect with the same name is rejected, and the reason names both plugins.
Likewise the first plugin of a given name wins (two distributions declaring the same
entry-point name): the later one fails. To choose the other one, disable the winner in
``plugins.toml`` (``[plugins] disable``).

**Load time.** Every fxhost command loads every plugin, so a plugin's import is paid by
each ``fxhost render`` and each worker start. The time from importing a plugin to
registering its effects is kept (``PluginInfo.load_seconds``); a plugin slower than
:data:`SLOW_PLUGIN_SECONDS` gets ``advice`` that says to import heavy libraries lazily, shown
by ``fxhost plugins`` and ``/api/audio/health`` (logged at INFO only: a busy machine can
slow any plugin, and every command would warn). A library two plugins import is counted
in the first one's time.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
import pluggy
from fxhost_sdk import Effect
from fxhost_sdk.host import PROJECT, effect_class_problems, error_reason, hook_effect_classes, hookspecs

from fxhost.catalog.chains import unknown_effect
from fxhost.catalog.config import Config

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "fxhost"
#: A plugin whose import and registration take longer than this (seconds) is flagged.
SLOW_PLUGIN_SECONDS = 0.1

PluginSource = Literal["entry-point", "module"]
PluginStatus = Literal["loaded", "failed", "disabled"]


class RejectedEffect(msgspec.Struct, frozen=True, kw_only=True):
    """An effect class a plugin offered and the registry refused."""

    #: The class's ``name`` attribute, or its class name if it has no usable name.
    name: str
    #: ``module.QualifiedName`` of the class.
    cls: str
    reasons: list[str]


class PluginInfo(msgspec.Struct, kw_only=True):
    """One plugin as the registry saw it (serialisable: ``fxhost plugins --json``)."""

    #: Entry-point name, or module name for a module named in ``plugins.toml``.
    name: str
    source: PluginSource
    module: str
    distribution: str | None = None
    version: str | None = None
    status: PluginStatus = "loaded"
    #: Why it failed: ``"<stage>: <ExceptionType>: <message>"`` (never a traceback).
    error: str | None = None
    #: Names of the effects it provides (registered).
    effects: list[str] = []
    rejected: list[RejectedEffect] = []
    #: Seconds from the start of its import to its effects checked and registered (or to
    #: its failure); null when it was not tried (disabled, or its name already taken).
    load_seconds: float | None = None
    #: For a plugin slower to load than SLOW_PLUGIN_SECONDS: what to do about it.
    advice: str | None = None

    @property
    def slow(self) -> bool:
        """Slower to load than :data:`SLOW_PLUGIN_SECONDS`."""
        return self.load_seconds is not None and self.load_seconds > SLOW_PLUGIN_SECONDS


def slow_plugin_advice(info: PluginInfo) -> str:
    """The advice for a plugin slower to load than :data:`SLOW_PLUGIN_SECONDS`."""
    return (
        f"plugin {info.name!r} took {1000 * (info.load_seconds or 0.0):.0f} ms to import and register "
        f"(over {1000 * SLOW_PLUGIN_SECONDS:.0f} ms), and every fxhost command pays it: import heavy "
        "libraries lazily, inside the effect that needs them (in prepare(), not at module level)"
    )


class EffectView(msgspec.Struct, frozen=True, kw_only=True):
    """What clients see of an effect: identity and the JSON Schema of its parameters."""

    name: str
    version: str
    summary: str
    plugin: str
    params_schema: dict[str, Any]
    #: Named parameter sets: a chain step may name one (``"preset"``) and override fields.
    presets: dict[str, dict[str, Any]] = {}
    #: Needs the whole signal: runs in renders, refused in live streams.
    offline_only: bool = False


class EffectInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A registered effect, with its class (use :meth:`view` to serialise)."""

    name: str
    cls: type[Effect]
    plugin: str
    version: str
    summary: str
    #: ``msgspec.json.schema(cls.Params)`` with ``$defs`` inlined: one flat object schema.
    params_schema: dict[str, Any]

    def view(self) -> EffectView:
        return EffectView(
            name=self.name,
            version=self.version,
            summary=self.summary,
            plugin=self.plugin,
            params_schema=self.params_schema,
            presets={name: dict(values) for name, values in self.cls.presets.items()},
            offline_only=self.cls.offline_only,
        )


class RegistryView(msgspec.Struct, frozen=True, kw_only=True):
    """The whole registry as data: effects sorted by name, plugins in load order."""

    effects: list[EffectView]
    plugins: list[PluginInfo]
    warnings: list[str]


class UnknownEffectError(KeyError):
    """No effect of that name is registered."""

    def __init__(self, name: str, available: list[str]):
        self.name = name
        self.available = available
        super().__init__(unknown_effect(name, available))

    def __str__(self) -> str:  # KeyError would show the repr of the message
        return str(self.args[0])


class Registry:
    """Effects by name, plugins in load order, and registry-wide warnings."""

    def __init__(
        self,
        effects: Mapping[str, EffectInfo],
        plugins: list[PluginInfo],
        warnings: list[str] | None = None,
        plugin_manager: pluggy.PluginManager | None = None,
    ):
        self.effects: dict[str, EffectInfo] = dict(sorted(effects.items()))
        self.plugins = plugins
        self.warnings = warnings or []
        self.plugin_manager = plugin_manager

    def get(self, name: str) -> EffectInfo:
        """The effect called ``name``; :class:`UnknownEffectError` (a KeyError) if none."""
        try:
            return self.effects[name]
        except KeyError:
            raise UnknownEffectError(name, sorted(self.effects)) from None

    def __contains__(self, name: object) -> bool:
        return name in self.effects

    @functools.cached_property
    def classes(self) -> dict[str, type[Effect]]:
        """Effect classes by name: what chains are checked against."""
        return {name: info.cls for name, info in self.effects.items()}

    def __iter__(self) -> Iterator[EffectInfo]:
        return iter(self.effects.values())

    def __len__(self) -> int:
        return len(self.effects)

    def plugin(self, name: str) -> PluginInfo:
        for info in self.plugins:
            if info.name == name:
                return info
        raise KeyError(name)

    @property
    def failed(self) -> list[PluginInfo]:
        """Plugins that failed to load (for health checks)."""
        return [info for info in self.plugins if info.status == "failed"]

    def view(self) -> RegistryView:
        return RegistryView(
            effects=[info.view() for info in self.effects.values()],
            plugins=list(self.plugins),
            warnings=list(self.warnings),
        )

    def to_builtins(self) -> dict[str, Any]:
        """JSON-ready dicts and lists: ``{"effects": [...], "plugins": [...], "warnings": [...]}``."""
        return msgspec.to_builtins(self.view())

    def __repr__(self) -> str:
        return f"<Registry effects={list(self.effects)} plugins={[p.name for p in self.plugins]}>"


# -- loading ----------------------------------------------------------------------


@dataclass
class _Candidate:
    name: str
    source: PluginSource
    module: str
    load: Callable[[], object]
    distribution: str | None = None
    version: str | None = None
    aliases: set[str] = field(default_factory=set)

    def describe(self) -> str:
        if self.source == "entry-point":
            dist = f", from {self.distribution} {self.version}" if self.distribution else ""
            return f"entry point {self.name!r} ({self.module}{dist})"
        return f"module {self.module!r}"


def _entry_point_candidates() -> list[_Candidate]:
    candidates = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist
        candidates.append(
            _Candidate(
                name=ep.name,
                source="entry-point",
                module=ep.module,
                load=ep.load,
                distribution=dist.name if dist is not None else None,
                version=dist.version if dist is not None else None,
                aliases={ep.name, ep.module},
            )
        )
    candidates.sort(key=lambda c: (c.name, c.distribution or "", c.module))
    return candidates


def _module_candidates(modules: list[str]) -> list[_Candidate]:
    if not modules:
        return []
    try:
        owners = importlib.metadata.packages_distributions()
    except Exception:  # pragma: no cover - broken metadata somewhere on sys.path
        owners = {}
    candidates = []
    for module in modules:
        dists = owners.get(module.partition(".")[0], [])
        distribution = version = None
        if len(dists) == 1:
            distribution = dists[0]
            try:
                version = importlib.metadata.version(distribution)
            except importlib.metadata.PackageNotFoundError:  # pragma: no cover
                distribution = None
        candidates.append(
            _Candidate(
                name=module,
                source="module",
                module=module,
                load=lambda module=module: importlib.import_module(module),
                distribution=distribution,
                version=version,
                aliases={module},
            )
        )
    return candidates


def _prepend_paths(paths: list[str]) -> None:
    added = False
    for folder in reversed(paths):
        if folder not in sys.path:
            sys.path.insert(0, folder)
            added = True
    if added:
        importlib.invalidate_caches()


def params_schema(params: type) -> dict[str, Any]:
    """The JSON Schema of a Params struct as one flat object (``$defs`` inlined)."""
    schema = msgspec.json.schema(params)
    defs = schema.pop("$defs", {})

    def inline(node: Any, stack: frozenset[str]) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                key = ref.removeprefix("#/$defs/")
                if key in stack:
                    raise ValueError(f"recursive parameter type {key!r} cannot be inlined")
                target = inline(defs[key], stack | {key})
                rest = {k: inline(v, stack) for k, v in node.items() if k != "$ref"}
                return {**target, **rest}
            return {k: inline(v, stack) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v, stack) for v in node]
        return node

    return inline(schema, frozenset())


def _class_label(cls: object) -> tuple[str, str]:
    """(display name, module.qualname) of something offered as an effect class."""
    path = f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', repr(cls))}"
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        name = getattr(cls, "__qualname__", repr(cls))
    return name, path


def _check_effect(cls: type) -> tuple[list[str], dict[str, Any] | None]:
    """Problems of an effect class, and its params schema when it has none."""
    try:
        problems = effect_class_problems(cls)
    except Exception as error:  # e.g. a Params annotation that cannot be evaluated
        return [error_reason(f"{getattr(cls, '__qualname__', cls)!r} could not be inspected", error)], None
    if problems:
        return problems, None
    qualname = cls.__qualname__
    try:
        schema = params_schema(cls.Params)
    except Exception as error:
        return [error_reason(f"{qualname}.Params has no JSON Schema", error)], None
    return [], schema


def load_registry(config: Config | None = None, *, entry_points: bool = True) -> Registry:
    """Load the plugins: the ``fxhost`` entry points (unless ``entry_points=False``) and
    the modules ``config`` names, minus the disabled ones. Never raises for a bad
    plugin: failures are in ``registry.plugins`` (status ``"failed"``, ``error``).

    ``config.plugins.paths`` are prepended to ``sys.path`` (and stay there: plugins may
    import lazily) before anything is looked up.
    """
    config = config if config is not None else Config()
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    _prepend_paths(config.plugins.paths)

    candidates = _entry_point_candidates() if entry_points else []
    candidates += _module_candidates(config.plugins.modules)
    disabled = set(config.plugins.disable)
    disable_used: set[str] = set()

    effects: dict[str, EffectInfo] = {}
    plugins: list[PluginInfo] = []
    warnings: list[str] = []
    by_name: dict[str, _Candidate] = {}

    for candidate in candidates:
        info = PluginInfo(
            name=candidate.name,
            source=candidate.source,
            module=candidate.module,
            distribution=candidate.distribution,
            version=candidate.version,
        )
        plugins.append(info)

        def fail(reason: str, info: PluginInfo = info) -> None:
            info.status = "failed"
            info.error = reason
            log.warning("plugin %r failed: %s", info.name, reason)

        matched = candidate.aliases & disabled
        if matched:
            disable_used |= matched
            info.status = "disabled"
            continue
        first = by_name.get(candidate.name)
        if first is not None:
            fail(
                f"plugin name {candidate.name!r} is already used by {first.describe()}, "
                f"loaded first; this one is {candidate.describe()}"
            )
            continue
        by_name[candidate.name] = candidate

        started = time.perf_counter()
        try:
            try:
                plugin = candidate.load()
            except (Exception, SystemExit) as error:
                fail(error_reason("import failed", error))
                continue
            owner = pm.get_name(plugin)
            if owner is not None:
                fail(f"{candidate.describe()} is the same object as plugin {owner!r}, already loaded")
                continue
            try:
                pm.register(plugin, name=candidate.name)
            except Exception as error:
                fail(error_reason("invalid plugin", error))
                continue

            classes, reason = hook_effect_classes(pm, plugin, candidate.name)
            if reason is not None:
                pm.unregister(plugin, name=candidate.name)
                fail(reason)
                continue
            _add_effects(info, classes, effects)
            if not classes:
                warnings.append(f"plugin {candidate.name!r} provides no effects")
        finally:
            info.load_seconds = round(time.perf_counter() - started, 4)
            if info.slow:
                info.advice = slow_plugin_advice(info)
                log.info("%s", info.advice)

    for folder in config.plugins.paths:
        if not os.path.isdir(folder):
            warnings.append(f"plugins.paths: {folder!r} is not a folder")
    for name in sorted(disabled - disable_used):
        warnings.append(f"plugins.disable: {name!r} matches no plugin (entry-point or module name)")
    for warning in warnings:
        log.warning("%s", warning)
    return Registry(effects, plugins, warnings, pm)


def _add_effects(
    info: PluginInfo,
    classes: list[type],
    effects: dict[str, EffectInfo],
) -> None:
    for cls in classes:
        name, path = _class_label(cls)
        problems, schema = _check_effect(cls)
        if problems or schema is None:
            info.rejected.append(RejectedEffect(name=name, cls=path, reasons=problems))
            continue
        existing = effects.get(name)
        if existing is not None:
            if existing.cls is cls and existing.plugin == info.name:
                continue  # the same class listed twice by one plugin
            _, existing_path = _class_label(existing.cls)
            reason = (
                f"effect name {name!r} is already registered by plugin {existing.plugin!r} "
                f"({existing_path}), which loaded first; plugin {info.name!r} ({path}) loses"
            )
            info.rejected.append(RejectedEffect(name=name, cls=path, reasons=[reason]))
            log.warning("%s", reason)
            continue
        effects[name] = EffectInfo(
            name=name,
            cls=cls,
            plugin=info.name,
            version=cls.version,
            summary=cls.summary.strip(),
            params_schema=schema,
        )
        info.effects.append(name)
