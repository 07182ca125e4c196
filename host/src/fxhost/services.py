"""The long-lived parts of a running server, built at start-up and closed at shutdown.
Nothing here is global: the app holds one :class:`Services`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from fxhost.engine.jobs import JobGate
from fxhost.engine.streams import StreamManager
from fxhost.runtime import Runtime, effect_origins
from fxhost.settings import Settings
from fxhost.store.assets import AssetStore
from fxhost.store.cache import LRUCache
from fxhost.store.chains import ChainStore
from fxhost.store.db import close_database, open_database
from fxhost.store.fanout import Fanout
from fxhost.store.keys import Authenticator
from fxhost.store.links import LinkSigner, link_secret
from fxhost.store.registry import InternalSigner, Registry, internal_secret
from fxhost.store.render_queue import QueuedRenderService, RenderNode, apply_queue_schema, plugin_set
from fxhost.store.renders import RenderService
from fxhost.store.storage.objects import Storage
from fxhost.store.storage.options import S3Options
from fxhost.store.storage.url import storage_from_url

log = logging.getLogger(__name__)

#: How often orphan files are swept and interrupted renders looked for.
HOUSEKEEPING_SECONDS = 60.0


@dataclass
class Services:
    settings: Settings
    runtime: Runtime
    cache: LRUCache
    store: AssetStore
    chains: ChainStore
    renders: RenderService
    streams: StreamManager
    auth: Authenticator
    #: Signs and checks links (``POST /api/links``).
    links: LinkSigner
    #: Whole-file jobs on assets: analysis, pictures, transcoding (analysis_concurrency).
    jobs: JobGate
    #: Which process owns each live stream, across workers and nodes.
    registry: Registry
    #: Signs and checks requests between processes (forwarded stream traffic).
    internal: InternalSigner
    #: Stream output through Redis to other processes (with the redis_url setting).
    fanout: Fanout | None = None
    #: Open WebSocket connections (limited by the max_connections setting).
    connections: int = 0
    started: float = field(default_factory=time.monotonic)
    _housekeeping: asyncio.Task | None = None
    _heartbeat: asyncio.Task | None = None

    @property
    def uptime(self) -> float:
        return time.monotonic() - self.started


async def start_services(settings: Settings, runtime: Runtime) -> Services:
    await open_database(settings.database_url)
    cache: LRUCache = LRUCache(settings.cache_bytes)
    store = AssetStore(storage_of(settings), cache, settings.max_upload_bytes)
    await store.start()
    log.info("assets and renders are kept in %s", store.storage.description)
    chains = ChainStore(
        runtime.chains,
        runtime.registry.classes,
        store,
        sample_rate=settings.default_sample_rate,
        origins=effect_origins(runtime.registry),
    )
    pool = {
        "workers": settings.render_workers,
        "max_tail_seconds": settings.max_tail_seconds,
        "time_limit": settings.render_timeout_seconds,
        "cache": settings.render_cache,
    }
    renders: RenderService
    if settings.render_queue == "postgres":
        await apply_queue_schema(settings.database_url)
        renders = QueuedRenderService(
            store, chains, database_url=settings.database_url, plugins=plugin_set(runtime.registry), **pool
        )
    else:
        renders = RenderService(store, chains, **pool)
    await renders.start()
    fanout = None
    if settings.redis_url:
        fanout = Fanout(settings.redis_url, settings.redis_prefix)
        await fanout.start()
    streams = StreamManager(
        max_streams=settings.max_streams,
        idle_seconds=settings.stream_idle_seconds,
        inline_frames=settings.inline_frames,
        max_tail_seconds=settings.max_tail_seconds,
        block_timeout=settings.block_timeout_seconds,
        # Each effect's time per block is kept only for the metrics.
        time_effects=settings.metrics,
        on_create=fanout.publish if fanout else None,
    )
    streams.start()
    auth = Authenticator(settings.api_keys)
    # Running open is worth a warning: anyone who can reach the port may use it.
    log.log(logging.INFO if await auth.required() else logging.WARNING, "%s", await auth.describe())
    links = LinkSigner(await link_secret(settings.link_secret))
    jobs = JobGate(settings.analysis_concurrency, settings.analysis_queue_seconds, name="fxhost-whole-file")
    registry = Registry(
        heartbeat_seconds=settings.cluster_heartbeat_seconds,
        dead_seconds=settings.cluster_dead_seconds,
        lost_seconds=settings.stream_idle_seconds,
    )
    internal = InternalSigner(await internal_secret())
    services = Services(
        settings,
        runtime,
        cache,
        store,
        chains,
        renders,
        streams,
        auth,
        links,
        jobs,
        registry,
        internal,
        fanout,
    )
    streams.on_deleted = functools.partial(_forget_stream, services)
    services._housekeeping = asyncio.create_task(_housekeeping(services))
    return services


def storage_of(settings: Settings) -> Storage:
    """The storage the settings name (StorageUnavailable naming the setting at fault)."""
    s3 = S3Options(
        bucket="",
        endpoint_url=settings.s3_endpoint_url or None,
        region=settings.s3_region or None,
        access_key_id=settings.s3_access_key_id or None,
        secret_access_key=settings.s3_secret_access_key or None,
        scratch_dir=Path(settings.scratch_dir),
        scratch_max_bytes=settings.scratch_max_bytes,
        presign_seconds=settings.s3_presign_seconds if settings.s3_presign_downloads else None,
        sweep_grace_seconds=settings.s3_sweep_grace_seconds,
    )
    return storage_from_url(
        settings.storage_url,
        uploads_dir=Path(settings.uploads_dir),
        renders_dir=Path(settings.renders_dir),
        s3=s3,
    )


async def join_cluster(services: Services, address: str) -> None:
    """Register this process, reachable by the others at ``address``, and keep its
    heartbeat (and the registry clean of dead processes) until it stops."""
    await services.registry.join(address)
    await services.registry.reap()  # what a crashed predecessor left, before anyone asks
    services._heartbeat = asyncio.create_task(_heartbeat(services))


async def leave_cluster(services: Services) -> None:
    """A clean stop: this process's streams leave the registry (their clients elsewhere
    are told 4404, as those here) before they close."""
    if services._heartbeat:
        services._heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await services._heartbeat
        try:
            await services.registry.leave()
        except Exception:  # the database is gone: the others' housekeeping will clean up
            log.exception("could not leave the cluster registry")


async def stop_services(services: Services) -> None:
    for task in (services._housekeeping, services._heartbeat):
        if task:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    await services.streams.stop()
    if services.fanout:  # after the streams: their publishers write the end
        await services.fanout.stop()
    await services.renders.stop()
    services.jobs.close()
    await close_database()


async def run_render_node(settings: Settings, runtime: Runtime) -> None:
    """``fxhost worker``: a render node of the postgres render queue, until SIGINT or
    SIGTERM. It shares the database and the storage with the servers: with an object
    store, inputs are fetched to its own scratch folder and results uploaded."""
    await open_database(settings.database_url)
    try:
        await apply_queue_schema(settings.database_url)
        cache: LRUCache = LRUCache(settings.cache_bytes)
        store = AssetStore(storage_of(settings), cache, settings.max_upload_bytes, lists=False)
        await store.start()
        node = RenderNode(
            store,
            ChainStore(
                runtime.chains, runtime.registry.classes, store, origins=effect_origins(runtime.registry)
            ),
            database_url=settings.database_url,
            plugins=plugin_set(runtime.registry),
            attempts=settings.render_attempts,
            heartbeat_seconds=settings.cluster_heartbeat_seconds,
            dead_seconds=settings.cluster_dead_seconds,
            workers=settings.render_workers,
            max_tail_seconds=settings.max_tail_seconds,
            time_limit=settings.render_timeout_seconds,
        )
        await node.serve()
    finally:
        await close_database()


async def _forget_stream(services: Services, stream_id: str) -> None:
    try:
        await services.registry.remove(stream_id)
    except Exception:  # it stays listed until this process leaves or is found dead
        log.exception("stream %s: could not remove it from the registry", stream_id)


async def _heartbeat(services: Services) -> None:
    while True:
        await asyncio.sleep(services.settings.cluster_heartbeat_seconds)
        try:
            if await services.registry.beat():
                for stream in list(services.streams.streams.values()):
                    info = msgspec.json.encode(stream.info()).decode()
                    await services.registry.restore(stream.id, stream.tenant, info)
            await services.registry.reap()
        except Exception:  # the database may be back on the next beat
            log.exception("cluster heartbeat failed")


async def _housekeeping(services: Services) -> None:
    while True:
        await asyncio.sleep(HOUSEKEEPING_SECONDS)
        try:
            swept = await services.store.sweep()
            if swept:
                log.info("swept %d orphaned file(s)", swept)
            await services.renders.fail_orphans()
        except Exception:  # keep housekeeping alive; the next round retries
            log.exception("housekeeping failed")
