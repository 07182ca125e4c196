"""What a running fxhost knows: settings, the config file, the registry, the chains.

Built once by the CLI or the server at start-up; nothing here is global.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fxhost_sdk import FieldError

from fxhost.chains import AssetChecker, Chain, ResolvedStep, validate_chain
from fxhost.config import DEFAULT_CONFIG_PATH, Config, load_config
from fxhost.registry import Registry, load_chains, load_registry
from fxhost.settings import Settings


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    config: Config
    registry: Registry
    chains: dict[str, Chain]

    def chain_steps(self, name: str, assets: AssetChecker | None = None) -> list[ResolvedStep]:
        """The resolved steps of a named chain; FieldError at ``chain`` if unknown."""
        chain = self.chains.get(name)
        if chain is None:
            known = ", ".join(sorted(self.chains)) or "none are defined"
            raise FieldError("chain", f"unknown chain {name!r} (available: {known})")
        return chain.resolve(self.registry, f"chains.{name}", assets=assets)

    def effect_steps(
        self,
        effect: str,
        params: Mapping[str, Any],
        preset: str | None = None,
        assets: AssetChecker | None = None,
    ) -> list[ResolvedStep]:
        """A one-step chain of ``effect`` (from ``preset``, if given) with ``params``, validated."""
        step = {"effect": effect, "params": dict(params)} | ({"preset": preset} if preset else {})
        return validate_chain([step], self.registry, assets=assets)


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
    return Runtime(settings, config, registry, load_chains(config, registry))
