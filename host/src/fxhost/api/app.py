"""The HTTP edge: a Starlette app over the services.

Every route is declared once, as data, in its resource's module under
:mod:`fxhost.api.routes`; :data:`API` collects them, and the same declarations give the
Starlette routes and the OpenAPI document served at ``/openapi.json``, ``/docs`` and
``/redoc``. Errors are ``application/problem+json`` (:mod:`fxhost.api.errors`).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator
from importlib.metadata import version

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.routing import BaseRoute

from fxhost.api.auth import RequireApiKey
from fxhost.api.cluster import Forwarder, InternalListener, RequireInternal
from fxhost.api.console.pages import console_routes
from fxhost.api.errors import HANDLERS, CrashGuard
from fxhost.api.metrics import HttpMetrics, Metrics
from fxhost.api.openapi.declare import Api
from fxhost.api.openapi.pages import docs_routes
from fxhost.api.responses import EXPOSED_HEADERS
from fxhost.api.routes import (
    analysis,
    assets,
    chains,
    links,
    meta,
    metrics,
    process,
    renders,
    streams,
    ws_process,
)
from fxhost.api.vocabulary import served_schemas
from fxhost.runtime import Runtime, load_runtime
from fxhost.services import Services, join_cluster, leave_cluster, start_services, stop_services
from fxhost.settings import Settings, load_settings

API = Api(
    title="fxhost",
    version=version("fxhost"),
    description="An audio effects host: upload audio, render it through effect chains, "
    "stream it live. Errors are application/problem+json (RFC 9457).",
    routes=[
        *assets.ROUTES,
        *analysis.ROUTES,
        *chains.ROUTES,
        *ws_process.ROUTES,
        *streams.ROUTES,
        *meta.ROUTES,
        *process.ROUTES,
        *renders.ROUTES,
        *links.ROUTES,
        *metrics.ROUTES,
    ],
    tags={
        "meta": "Health, statistics and what is loaded.",
        "effects": "Installed plugins and their effects, with parameter schemas.",
        "chains": "Named effect chains: from plugins.toml (read-only) and saved through the API.",
        "assets": "Uploaded and rendered audio.",
        "process": "Audio in, processed audio out, in one request.",
        "renders": "Offline renders of assets through chains, with progress.",
        "live": "Live audio: one client over /ws/process, or shared streams with producers and consumers.",
        "links": "Signed, expiring URLs for what a browser cannot set a header on.",
    },
    security_schemes={
        "apiKey": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key (`fxhost keys create`, or the FXHOST_API_KEYS setting), needed by "
            "every /api and /ws route when the server has any. WebSockets may instead send "
            '`{"type": "auth", "token": KEY}` as their first message. With no keys the server runs open.',
        },
        "signedLink": {
            "type": "apiKey",
            "in": "query",
            "name": "sig",
            "description": "A link from `POST /api/links`: its `exp` and `sig` query parameters, as given, "
            "open one resource on this route without a key until `exp`.",
        },
    },
    security=[{"apiKey": []}],
)


async def _keys_required(request: Request) -> bool:
    """Whether /openapi.json declares the API-key requirement: only when keys exist."""
    return await request.app.state.services.auth.required()


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Starlette:
    """The app. With no arguments (uvicorn's factory in each worker process) settings
    come from the environment and plugins from the config they name."""
    settings = settings or load_settings()
    runtime = runtime or load_runtime(settings)

    collected = Metrics(settings) if settings.metrics else None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = await start_services(settings, runtime)
        app.state.services = services
        app.state.forwarder = Forwarder(services.internal)
        listener = InternalListener(internal_app(services), settings)
        app.state.metrics = collected
        if collected is not None:
            await collected.start(services)
        try:
            await join_cluster(services, await listener.start())
            # What start-up made lives as long as the process: take it out of the
            # collector's reach, so that a full collection scans only what was made
            # since (it scanned everything: 60 ms and more, a late block for every live
            # session).
            gc.freeze()
            yield
        finally:
            await leave_cluster(services)
            await listener.stop()
            await app.state.forwarder.close()
            if collected is not None:
                await collected.stop()
            await stop_services(services)

    # CORS outermost, so that preflight requests (which carry no key) are answered; the
    # metrics' timing next, so that refusals are counted too.
    guarded = () if settings.metrics_open else ("/metrics",)
    middleware = [
        Middleware(CrashGuard),
        Middleware(HttpMetrics, metrics=collected),
        Middleware(GZipMiddleware, minimum_size=1024),
        Middleware(RequireApiKey, also=guarded),
    ]
    if settings.cors_origins:
        middleware.insert(
            0,
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["*"],
                allow_headers=["*"],
                expose_headers=list(EXPOSED_HEADERS),
            ),
        )
    return Starlette(
        routes=[
            *API.routes(),
            *docs_routes(API, secured=_keys_required, schemas=served_schemas(runtime)),
            *console_routes(),
        ],
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers=HANDLERS,
    )


def _stream_routes() -> list[BaseRoute]:
    return [r for r in API.routes() if getattr(r, "path", "").startswith(("/api/streams", "/ws/streams"))]


def internal_app(services: Services) -> Starlette:
    """What the other processes of the cluster reach: the stream routes, for requests
    signed with the internal secret (:mod:`fxhost.api.cluster`), on the same services."""
    app = Starlette(
        routes=_stream_routes(),
        middleware=[Middleware(RequireInternal, signer=services.internal)],
        exception_handlers=HANDLERS,
    )
    app.state.services = services
    return app
