"""Named chains: read-only ones from ``plugins.toml`` beside ones saved through the API
in the database. Every write is validated exactly as the config file is, and every
chain a request names is resolved by :func:`~fxhost.catalog.chains.resolve_chain`."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fxhost_sdk import FieldError, LoadedAudio
from tortoise.exceptions import IntegrityError

from fxhost.audio.files import load_audio
from fxhost.catalog.chains import (
    CHAIN_NAME_PATTERN,
    Chain,
    ChainSpec,
    ChainStep,
    EffectOrigin,
    Effects,
    RecordedChain,
    ResolvedChain,
    build_chain,
    chain_latency,
    record_chain,
    replay_steps,
    resolve_chain,
    validate_steps,
)
from fxhost.store.db.models import SavedChain
from fxhost.store.storage.objects import Storage

if TYPE_CHECKING:
    from fxhost.store.assets import AssetStore


class StoredAssets:
    """Loads a chain's asset parameters from the store, through its cache. Pickled (for a
    render worker process, which has no asset store) it becomes :class:`AssetFiles`."""

    def __init__(self, rows: dict[str, Any], store: AssetStore | None):
        self.rows, self.store = rows, store

    def __call__(self, ref: str, path: str) -> LoadedAudio:
        row = self.rows.get(ref)
        if row is None or self.store is None:
            raise FieldError(path, f"no asset with id {ref!r}")
        return LoadedAudio(self.store.decoded(row), row.sample_rate)

    def __reduce__(self):
        store = self.store
        if store is None:
            return AssetFiles, (None, {})
        return AssetFiles, (
            store.storage,
            {ref: (store.key_of(row), row.name) for ref, row in self.rows.items()},
        )


@dataclass(frozen=True)
class AssetFiles:
    """Loads a chain's asset parameters by decoding their stored objects, fetched from
    the storage (which pickles as its settings): ref -> (key, name)."""

    storage: Storage | None
    files: dict[str, tuple[str, str]]

    def __call__(self, ref: str, path: str) -> LoadedAudio:
        if ref not in self.files or self.storage is None:
            raise FieldError(path, f"no asset with id {ref!r}")
        key, name = self.files[ref]
        with self.storage.fetch_blocking(key) as file:
            return load_audio(file, display_name=name)


class ChainConflict(Exception):
    """The name is taken (by a config chain, or by a saved one on create)."""


class ReadOnlyChain(Exception):
    """Chains from plugins.toml are changed in the file, not through the API."""


class ChainStore:
    """Config chains are shared by every tenant; a saved chain belongs to the tenant
    that saved it, and its name is unique within that tenant."""

    def __init__(
        self,
        config_chains: dict[str, Chain],
        effects: Effects,
        store: AssetStore | None = None,
        *,
        sample_rate: int | None = None,
        origins: dict[str, EffectOrigin] | None = None,
    ):
        self.config_chains = config_chains
        self.effects = effects
        self.store = store
        #: The rate chains' latencies are measured at (the default sample rate).
        self.sample_rate = sample_rate
        #: Effect name -> its plugin and plugin version, for recorded chains.
        self.origins = origins or {}

    def record(self, chain: ResolvedChain) -> RecordedChain:
        """``chain`` pinned to the effect and plugin versions it runs with now."""
        return record_chain(chain, self.origins)

    def _from_row(self, row: SavedChain) -> Chain:
        steps = [ChainStep(effect=s["effect"], params=s.get("params", {})) for s in row.steps]
        latency = None
        if self.sample_rate is not None:
            # Measured now, not saved: the plugins (and their latencies) may have changed.
            with contextlib.suppress(FieldError):  # a step the plugins no longer take
                latency = chain_latency(validate_steps(steps, self.effects), self.sample_rate)
        return Chain(
            name=row.name,
            steps=steps,
            description=row.description,
            source="api",
            max_latency_ms=row.max_latency_ms,
            latency=latency,
        )

    async def all(self, tenant: str) -> list[Chain]:
        saved = [self._from_row(row) for row in await SavedChain.filter(tenant=tenant).order_by("name")]
        return sorted([*self.config_chains.values(), *saved], key=lambda c: c.name)

    async def get(self, name: str, tenant: str) -> Chain | None:
        if name in self.config_chains:
            return self.config_chains[name]
        if not CHAIN_NAME_PATTERN.fullmatch(name):
            return None  # not a name any chain can have (and too long for the column)
        row = await SavedChain.get_or_none(tenant=tenant, name=name)
        return self._from_row(row) if row else None

    async def resolve(
        self, spec: ChainSpec | RecordedChain, path: str = "chain", *, tenant: str, live: bool = False
    ) -> ResolvedChain:
        """A chain given by name, as inline steps or as one effect, validated, with its
        asset parameters found among the tenant's assets and their audio decoded into the
        cache (so that an effect's load_asset later is a cache hit, even on the event loop).

        FieldError at ``path`` (``chain: unknown chain 'x'``, ``chain[1].params...``);
        ``live`` refuses offline-only effects. A :class:`RecordedChain` (a render's) is
        refused at ``path.steps[i]...`` when an effect's or plugin's version changed."""
        name: str | None = None
        if isinstance(spec, RecordedChain):
            name = spec.name
            spec = replay_steps(spec, self.effects, self.origins, path)
            path = f"{path}.steps"
        named: dict[str, Chain] = {}
        if isinstance(spec, str):
            chain = await self.get(spec, tenant)
            # Every name only when it names nothing: the error lists them.
            named = {spec: chain} if chain is not None else {c.name: c for c in await self.all(tenant)}
        resolved = resolve_chain(spec, named, self.effects, path, live=live)
        rows: dict[str, Any] = {}
        for ref, where in resolved.asset_refs():
            try:
                row = await self.store.find(ref, tenant) if self.store is not None else None
            except ValueError as error:
                raise FieldError(where, str(error)) from None
            if row is None:
                raise FieldError(where, f"no asset with id or name {ref!r}")
            await asyncio.to_thread(self.store.decoded, row)
            rows[ref] = row
        return dataclasses.replace(
            resolved, name=resolved.name or name, assets=StoredAssets(rows, self.store)
        )

    def _build(self, name: str, steps: Any, description: str, max_latency_ms: float | None) -> Chain:
        return build_chain(
            name,
            steps,
            self.effects,
            description=description,
            source="api",
            max_latency_ms=max_latency_ms,
            sample_rate=self.sample_rate,
        )

    async def create(
        self, name: str, steps: Any, description: str, tenant: str, max_latency_ms: float | None = None
    ) -> Chain:
        chain = self._build(name, steps, description, max_latency_ms)
        if name in self.config_chains:
            raise ChainConflict(f"chain {name!r} is defined in plugins.toml and cannot be replaced")
        try:
            await SavedChain.create(
                tenant=tenant,
                name=name,
                description=description,
                steps=_steps_json(chain),
                max_latency_ms=max_latency_ms,
            )
        except IntegrityError:
            raise ChainConflict(f"chain {name!r} exists; PUT /api/chains/{name} replaces it") from None
        return chain

    async def put(
        self, name: str, steps: Any, description: str, tenant: str, max_latency_ms: float | None = None
    ) -> tuple[Chain, bool]:
        """Create or replace; returns (chain, created)."""
        if name in self.config_chains:
            raise ReadOnlyChain(f"chain {name!r} comes from plugins.toml; change it there")
        chain = self._build(name, steps, description, max_latency_ms)
        _, created = await SavedChain.update_or_create(
            tenant=tenant,
            name=name,
            defaults={
                "description": description,
                "steps": _steps_json(chain),
                "max_latency_ms": max_latency_ms,
            },
        )
        return chain, created

    async def delete(self, name: str, tenant: str) -> bool:
        if name in self.config_chains:
            raise ReadOnlyChain(f"chain {name!r} comes from plugins.toml; remove it there")
        if not CHAIN_NAME_PATTERN.fullmatch(name):
            return False
        return bool(await SavedChain.filter(tenant=tenant, name=name).delete())


def _steps_json(chain: Chain) -> list[dict[str, Any]]:
    return [{"effect": step.effect, "params": step.params} for step in chain.steps]
