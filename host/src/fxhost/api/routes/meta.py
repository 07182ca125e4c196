"""Health, statistics, buffers, and the plugin and effect listings."""

from __future__ import annotations

import os
from typing import Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from tortoise import connections

from fxhost.api.auth import tenant_of
from fxhost.api.openapi.declare import Operation
from fxhost.api.openapi.problems import not_found
from fxhost.api.responses import JSONResponse
from fxhost.api.state import services
from fxhost.api.vocabulary import EffectName
from fxhost.catalog.chains import unknown_effect
from fxhost.catalog.registry import EffectView, PluginInfo
from fxhost.engine.streams import StreamBuffers
from fxhost.runtime import ConfigStatus
from fxhost.store.cache import CacheStats


class Health(msgspec.Struct, kw_only=True):
    status: Literal["ok"] = "ok"


class PluginProblem(msgspec.Struct, kw_only=True):
    name: str
    error: str | None


class SlowPlugin(msgspec.Struct, kw_only=True):
    name: str
    load_seconds: float
    advice: str


class PluginsHealth(msgspec.Struct, kw_only=True):
    loaded: list[str]
    failed: list[PluginProblem]
    effects: int
    #: Seconds each plugin tried took to import and register.
    load_seconds: dict[str, float] = {}
    #: Plugins slower to load than the registry's SLOW_PLUGIN_SECONDS, with what to do.
    slow: list[SlowPlugin] = []


class CheckResult(msgspec.Struct, kw_only=True):
    ok: bool
    detail: str


class StorageHealth(msgspec.Struct, kw_only=True):
    ok: bool
    detail: str
    free_bytes: int


class AudioHealth(msgspec.Struct, kw_only=True):
    status: Literal["ok", "degraded"]
    #: The process that answered (each worker runs, and reloads, its own config).
    process: int
    plugins: PluginsHealth
    #: The config in force (its hash: the same on every process that runs it) and the
    #: last reload; a refused reload leaves the status ok: the old config runs on.
    config: ConfigStatus
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


async def health(request: Request) -> Response:
    return JSONResponse(Health())


async def audio_health(request: Request) -> Response:
    svc = services(request)
    registry = svc.runtime.registry
    plugins = PluginsHealth(
        loaded=[p.name for p in registry.plugins if p.status == "loaded"],
        failed=[PluginProblem(name=p.name, error=p.error) for p in registry.failed],
        effects=len(registry),
        load_seconds={p.name: p.load_seconds for p in registry.plugins if p.load_seconds is not None},
        slow=[
            SlowPlugin(name=p.name, load_seconds=p.load_seconds, advice=p.advice)
            for p in registry.plugins
            if p.advice is not None and p.load_seconds is not None
        ],
    )
    try:
        await connections.get("default").execute_query("SELECT 1")
        database = CheckResult(ok=True, detail="reachable")
    except Exception as error:  # report, never raise: this is the health check
        database = CheckResult(ok=False, detail=type(error).__name__)
    check = await svc.store.storage.check()
    storage = StorageHealth(ok=check.ok, detail=check.detail, free_bytes=check.free_bytes)
    ok = database.ok and storage.ok
    assert svc.config is not None
    body = AudioHealth(
        status="ok" if ok else "degraded",
        process=os.getpid(),
        plugins=plugins,
        config=svc.config,
        database=database,
        storage=storage,
        cache=svc.cache.stats,
    )
    return JSONResponse(body, status_code=200 if ok else 503)


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


async def buffers(request: Request) -> Response:
    streams = services(request).streams.of(tenant_of(request))
    return JSONResponse([stream.buffers() for stream in streams])


async def list_plugins(request: Request) -> Response:
    return JSONResponse(services(request).runtime.registry.plugins)


async def list_effects(request: Request) -> Response:
    return JSONResponse([info.view() for info in services(request).runtime.registry])


async def get_effect(request: Request) -> Response:
    name = request.path_params["name"]
    registry = services(request).runtime.registry
    info = registry.effects.get(name)
    if info is None:
        raise not_found(unknown_effect(name, list(registry.effects)))
    return JSONResponse(info.view())


ROUTES = [
    Operation(
        "GET",
        "/health",
        health,
        summary="Liveness: the process answers. Needs no API key.",
        tags=["meta"],
        responses={200: Health},
        security=[],
    ),
    Operation(
        "GET",
        "/api/audio/health",
        audio_health,
        summary="Readiness: plugins, database, storage and cache; the config in force and its last reload.",
        tags=["meta"],
        responses={200: AudioHealth, 503: AudioHealth},
    ),
    Operation(
        "GET",
        "/api/audio/statistics",
        statistics,
        summary="Assets and bytes, renders by status, cache hits and misses, uptime.",
        tags=["meta"],
        responses={200: Statistics},
    ),
    Operation(
        "GET",
        "/api/audio/buffers",
        buffers,
        summary="The live streams' ring buffers.",
        tags=["meta"],
        responses={200: list[StreamBuffers]},
    ),
    Operation(
        "GET",
        "/api/plugins",
        list_plugins,
        summary="Installed plugins, and why any failed.",
        tags=["effects"],
        responses={200: list[PluginInfo]},
    ),
    Operation(
        "GET",
        "/api/effects",
        list_effects,
        summary="Every effect with its parameters' JSON Schema.",
        tags=["effects"],
        responses={200: list[EffectView]},
    ),
    Operation(
        "GET",
        "/api/effects/{name}",
        get_effect,
        summary="One effect: parameters with ranges, defaults, units.",
        tags=["effects"],
        responses={200: EffectView},
        path_types={"name": EffectName},
    ),
]
