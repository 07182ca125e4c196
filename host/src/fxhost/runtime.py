"""What a running fxhost knows: settings, the config file, the plugins it loaded, and
the config's chains checked against them.

Built once by the CLI or the server at start-up; nothing here is global. Checking
``plugins.toml``'s chains belongs here, with the wiring that loads both the file and
the plugins: the config knows no effects, the registry no chains.
"""

from __future__ import annotations

from dataclasses import dataclass

from fxhost.catalog.chains import Chain, ChainSpec, EffectOrigin, ResolvedChain, resolve_chain
from fxhost.catalog.config import DEFAULT_CONFIG_PATH, Config, ConfigError, load_config
from fxhost.catalog.lint import check_chains, check_requirements
from fxhost.catalog.registry import Registry, load_registry
from fxhost.settings import Settings

__all__ = [
    "Runtime",
    "check_chains",
    "check_requirements",
    "effect_origins",
    "load_chains",
    "load_config_of",
    "load_runtime",
]


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


def effect_origins(registry: Registry) -> dict[str, EffectOrigin]:
    """Each effect's plugin and plugin version (what a render records)."""
    versions = {info.name: info.version for info in registry.plugins}
    return {
        name: EffectOrigin(plugin=info.plugin, plugin_version=versions.get(info.plugin))
        for name, info in registry.effects.items()
    }


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
