"""Named chains: read-only ones from ``plugins.toml`` beside ones saved through the API
in the database. Every write is validated exactly as the config file is."""

from __future__ import annotations

from typing import Any

from fxhost_sdk import FieldError
from tortoise.exceptions import IntegrityError

from fxhost.chains import Chain, ChainStep, ResolvedStep, build_chain, validate_chain
from fxhost.db.models import SavedChain
from fxhost.registry import Registry


class ChainConflict(Exception):
    """The name is taken (by a config chain, or by a saved one on create)."""


class ReadOnlyChain(Exception):
    """Chains from plugins.toml are changed in the file, not through the API."""


class ChainStore:
    def __init__(self, config_chains: dict[str, Chain], registry: Registry):
        self.config_chains = config_chains
        self.registry = registry

    @staticmethod
    def _from_row(row: SavedChain) -> Chain:
        steps = [ChainStep(effect=s["effect"], params=s.get("params", {})) for s in row.steps]
        return Chain(name=row.name, steps=steps, description=row.description, source="api")

    async def all(self) -> list[Chain]:
        saved = [self._from_row(row) for row in await SavedChain.all().order_by("name")]
        return sorted([*self.config_chains.values(), *saved], key=lambda c: c.name)

    async def get(self, name: str) -> Chain | None:
        if name in self.config_chains:
            return self.config_chains[name]
        row = await SavedChain.get_or_none(name=name)
        return self._from_row(row) if row else None

    async def resolve(
        self, spec: str | list[Any], path: str = "chain"
    ) -> tuple[str | None, list[ResolvedStep]]:
        """A chain given by name or as inline steps -> (name or None, validated steps).
        Raises FieldError at ``path`` (``chain: unknown chain 'x'``, ``chain[1].params...``)."""
        if isinstance(spec, str):
            chain = await self.get(spec)
            if chain is None:
                names = ", ".join(c.name for c in await self.all()) or "none are defined"
                raise FieldError(path, f"unknown chain {spec!r} (available: {names})")
            return spec, chain.resolve(self.registry, path)
        try:
            return None, validate_chain(spec, self.registry, "")
        except FieldError as error:
            # validate_chain names "steps[...]"; here the steps are the field itself.
            rest = error.path.removeprefix("steps")
            raise FieldError(f"{path}{rest}" if path else rest.lstrip("."), error.message) from None

    async def create(self, name: str, steps: Any, description: str) -> Chain:
        chain = build_chain(name, steps, self.registry, description=description, source="api")
        if name in self.config_chains:
            raise ChainConflict(f"chain {name!r} is defined in plugins.toml and cannot be replaced")
        try:
            await SavedChain.create(name=name, description=description, steps=_steps_json(chain))
        except IntegrityError:
            raise ChainConflict(f"chain {name!r} exists; PUT /api/chains/{name} replaces it") from None
        return chain

    async def put(self, name: str, steps: Any, description: str) -> tuple[Chain, bool]:
        """Create or replace; returns (chain, created)."""
        if name in self.config_chains:
            raise ReadOnlyChain(f"chain {name!r} comes from plugins.toml; change it there")
        chain = build_chain(name, steps, self.registry, description=description, source="api")
        _, created = await SavedChain.update_or_create(
            name=name, defaults={"description": description, "steps": _steps_json(chain)}
        )
        return chain, created

    async def delete(self, name: str) -> bool:
        if name in self.config_chains:
            raise ReadOnlyChain(f"chain {name!r} comes from plugins.toml; remove it there")
        return bool(await SavedChain.filter(name=name).delete())


def _steps_json(chain: Chain) -> list[dict[str, Any]]:
    return [{"effect": step.effect, "params": step.params} for step in chain.steps]
