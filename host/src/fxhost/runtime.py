"""What a running fxhost knows: settings, the config file, the plugins it loaded, and
the config's chains checked against them.

Built once by the CLI or the server at start-up; nothing here is global. Checking
``plugins.toml``'s chains belongs here, with the wiring that loads both the file and
the plugins: the config knows no effects, the registry no chains.
"""

from __future__ import annotations

from dataclasses import dataclass

from fxhost_sdk import FieldError
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from fxhost.catalog.chains import Chain, ChainSpec, ResolvedChain, build_chain, resolve_chain
from fxhost.catalog.config import DEFAULT_CONFIG_PATH, Config, ConfigError, load_config
from fxhost.catalog.registry import PluginInfo, Registry, load_registry
from fxhost.settings import Settings


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    config: Config
    registry: Registry
    chains: dict[str, Chain]

    def resolve(self, spec: ChainSpec, path: str = "chain") -> ResolvedChain:
        """A chain of ``plugins.toml`` by name, inline steps or one effect, validated
        (:func:`~fxhost.catalog.chains.resolve_chain`)."""
        return resolve_chain(spec, self.chains, self.registry.classes, path)


def _plugin_for(name: str, registry: Registry) -> PluginInfo | None:
    """The plugin a ``[plugins.require]`` key names: its entry-point or module name, or
    its distribution's (compared as PEP 503 normalises them: ``fxhost_Pedalboard`` is
    ``fxhost-pedalboard``)."""
    wanted = canonicalize_name(name)
    for info in registry.plugins:
        names = {info.name, info.module, *([info.distribution] if info.distribution else [])}
        if name in names or wanted in {canonicalize_name(n) for n in names}:
            return info
    return None


def check_requirements(config: Config, registry: Registry) -> list[FieldError]:
    """The ``[plugins.require]`` entries the loaded plugins do not meet, one FieldError
    each at ``plugins.require.<name>``, naming the plugin, its installed version and the
    required one."""
    errors: list[FieldError] = []
    for name, specifier in config.plugins.require.items():
        path = f"plugins.require.{name}"
        info = _plugin_for(name, registry)
        if info is None:
            errors.append(FieldError(path, f"plugin {name!r} {specifier} is required, but it is not installed"))
            continue
        which = f"plugin {info.name!r}" + (f" ({info.distribution})" if info.distribution else "")
        if info.status != "loaded":
            why = info.error if info.status == "failed" else "it is disabled in [plugins] disable"
            errors.append(FieldError(path, f"{which} {specifier} is required, but it did not load: {why}"))
            continue
        if info.version is None:
            errors.append(
                FieldError(path, f"{which} has no installed version (not an installed distribution); {specifier} is required")
            )
            continue
        try:
            met = SpecifierSet(specifier).contains(Version(info.version), prereleases=True)
        except InvalidVersion:
            met = False
        if not met:
            errors.append(FieldError(path, f"{which} {info.version} is installed; {specifier} is required"))
    return errors


def check_chains(
    config: Config, registry: Registry, sample_rate: int | None = None
) -> tuple[dict[str, Chain], list[FieldError]]:
    """Validate every chain of ``config`` against ``registry``: the valid chains (every
    parameter filled in) and one FieldError per invalid chain (its first problem). With
    ``sample_rate`` each chain's latency is measured at that rate and held to its
    ``max_latency_ms``."""
    chains: dict[str, Chain] = {}
    errors: list[FieldError] = []
    for name, chain in config.chains.items():
        try:
            chains[name] = build_chain(
                name,
                chain.steps,
                registry.classes,
                description=chain.description,
                path=f"chains.{name}",
                max_latency_ms=chain.max_latency_ms,
                sample_rate=sample_rate,
            )
        except FieldError as error:
            errors.append(error)
    return chains, errors


def load_chains(config: Config, registry: Registry, sample_rate: int | None = None) -> dict[str, Chain]:
    """The chains of ``config``, validated against ``registry``, and its plugin version
    requirements checked.

    All are checked; if any is unmet or invalid, one :class:`ConfigError` reports them
    all, one line each (``plugins.toml: chains.x.steps[0].effect: ...``), and
    ``error.errors`` holds the FieldErrors. Use :func:`check_chains` to keep the valid
    ones instead.
    """
    chains, errors = check_chains(config, registry, sample_rate)
    errors = check_requirements(config, registry) + errors
    if errors:
        raise ConfigError(config.display_name, errors[0].message, path=errors[0].path, errors=errors)
    return chains


def load_config_of(settings: Settings) -> Config:
    """The config file the settings name. A missing ``plugins.toml`` is fine when it is
    the default path (an empty config); a path set explicitly must exist."""
    path = settings.plugins_config
    return load_config(path, required=path != DEFAULT_CONFIG_PATH)


def load_runtime(settings: Settings) -> Runtime:
    """Read the config, load the plugins, validate the chains.

    Raises ``ConfigError`` for a bad config file or chain; a bad plugin is only
    reported in the registry.
    """
    config = load_config_of(settings)
    registry = load_registry(config)
    return Runtime(settings, config, registry, load_chains(config, registry, settings.default_sample_rate))
