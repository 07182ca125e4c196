"""Health, statistics, buffers, and the plugin and effect listings."""

from __future__ import annotations

import os
import shutil
from typing import Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from tortoise import connections

from fxhost.api.auth import tenant_of
from fxhost.api.http import JSONResponse, not_found, services
from fxhost.api.spec import api
from fxhost.cache import CacheStats
from fxhost.live import StreamBuffers
from fxhost.registry import EffectView, PluginInfo


class Health(msgspec.Struct, kw_only=True):
    status: Literal["ok"] = "ok"


class PluginProblem(msgspec.Struct, kw_only=True):
    name: str
    error: str | None


class PluginsHealth(msgspec.Struct, kw_only=True):
    loaded: list[str]
    failed: list[PluginProblem]
    effects: int


class CheckResult(msgspec.Struct, kw_only=True):
    ok: bool
    detail: str


class StorageHealth(msgspec.Struct, kw_only=True):
    ok: bool
    detail: str
    free_bytes: int


class AudioHealth(msgspec.Struct, kw_only=True):
    status: Literal["ok", "degraded"]
    plugins: PluginsHealth
    database: CheckResult
    storage: StorageHealth
    cache: CacheStats


class AssetStatistics(msgspec.Struct, kw_only=True):
    count: int
    bytes: int


class Statistics(msgspec.Struct, kw_only=True):
    assets: AssetStatistics
    renders: dict[str, int]
    cache: CacheStats
    uptime_seconds: float


@api.get(
    "/health",
    summary="Liveness: the process answers. Needs no API key.",
    tags=["meta"],
    responses={200: Health},
    security=[],
)
async def health(request: Request) -> Response:
    return JSONResponse(Health())


@api.get(
    "/api/audio/health",
    summary="Readiness: plugins, database, storage and cache.",
    tags=["meta"],
    responses={200: AudioHealth, 503: AudioHealth},
)
async def audio_health(request: Request) -> Response:
    svc = services(request)
    registry = svc.runtime.registry
    plugins = PluginsHealth(
        loaded=[p.name for p in registry.plugins if p.status == "loaded"],
        failed=[PluginProblem(name=p.name, error=p.error) for p in registry.failed],
        effects=len(registry),
    )
    try:
        await connections.get("default").execute_query("SELECT 1")
        database = CheckResult(ok=True, detail="reachable")
    except Exception as error:  # report, never raise: this is the health check
        database = CheckResult(ok=False, detail=type(error).__name__)
    storage = _storage_health(svc.store.folders.values())
    ok = database.ok and storage.ok
    body = AudioHealth(
        status="ok" if ok else "degraded",
        plugins=plugins,
        database=database,
        storage=storage,
        cache=svc.cache.stats,
    )
    return JSONResponse(body, status_code=200 if ok else 503)


def _storage_health(folders) -> StorageHealth:
    problems = [f.name for f in folders if not (f.is_dir() and os.access(f, os.W_OK))]
    free = min(shutil.disk_usage(f).free for f in folders if f.is_dir()) if not problems else 0
    detail = "writable" if not problems else f"not writable: {', '.join(problems)}"
    return StorageHealth(ok=not problems, detail=detail, free_bytes=free)


@api.get(
    "/api/audio/statistics",
    summary="Assets and bytes, renders by status, cache hits and misses, uptime.",
    tags=["meta"],
    responses={200: Statistics},
)
async def statistics(request: Request) -> Response:
    svc = services(request)
    tenant = tenant_of(request)
    count, size = await svc.store.counts(tenant)
    return JSONResponse(
        Statistics(
            assets=AssetStatistics(count=count, bytes=size),
            renders=await svc.renders.counts(tenant),
            cache=svc.cache.stats,
            uptime_seconds=round(svc.uptime, 3),
        )
    )


@api.get(
    "/api/audio/buffers",
    summary="The live streams' ring buffers.",
    tags=["meta"],
    responses={200: list[StreamBuffers]},
)
async def buffers(request: Request) -> Response:
    streams = services(request).streams.of(tenant_of(request))
    return JSONResponse([stream.buffers() for stream in streams])


@api.get(
    "/api/plugins",
    summary="Installed plugins, and why any failed.",
    tags=["effects"],
    responses={200: list[PluginInfo]},
)
async def list_plugins(request: Request) -> Response:
    return JSONResponse(services(request).runtime.registry.plugins)


@api.get(
    "/api/effects",
    summary="Every effect with its parameters' JSON Schema.",
    tags=["effects"],
    responses={200: list[EffectView]},
)
async def list_effects(request: Request) -> Response:
    return JSONResponse([info.view() for info in services(request).runtime.registry])


@api.get(
    "/api/effects/{name}",
    summary="One effect: parameters with ranges, defaults, units.",
    tags=["effects"],
    responses={200: EffectView},
)
async def get_effect(request: Request) -> Response:
    name = request.path_params["name"]
    info = services(request).runtime.registry.effects.get(name)
    if info is None:
        raise not_found(f"no effect named {name!r}; GET /api/effects lists them")
    return JSONResponse(info.view())
