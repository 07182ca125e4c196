"""The HTTP edge: a Starlette app over a :class:`~fxhost.runtime.Runtime`.

Bodies are msgspec Structs encoded as JSON; errors are ``application/problem+json``
(RFC 9457) and never carry a stack trace or a server path.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fxhost.runtime import Runtime

log = logging.getLogger(__name__)


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return msgspec.json.encode(content)


class ProblemResponse(JSONResponse):
    media_type = "application/problem+json"


def problem(status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> ProblemResponse:
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    return ProblemResponse({**body, **extra}, status_code=status, headers=headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return problem(exc.status_code, exc.detail or HTTPStatus(exc.status_code).phrase, exc.headers)


async def server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "The server failed to handle this request; the error is logged.")


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime


async def health(request: Request) -> Response:
    registry = runtime_of(request).registry
    return JSONResponse(
        {
            "status": "ok",
            "effects": len(registry),
            "plugins_loaded": sum(p.status == "loaded" for p in registry.plugins),
            "plugins_failed": [{"name": p.name, "error": p.error} for p in registry.failed],
        }
    )


async def list_plugins(request: Request) -> Response:
    return JSONResponse(runtime_of(request).registry.plugins)


async def list_effects(request: Request) -> Response:
    return JSONResponse([info.view() for info in runtime_of(request).registry])


async def get_effect(request: Request) -> Response:
    name = request.path_params["name"]
    info = runtime_of(request).registry.effects.get(name)
    if info is None:
        return problem(404, f"no effect named {name!r}; GET /api/effects lists them")
    return JSONResponse(info.view())


async def list_chains(request: Request) -> Response:
    return JSONResponse(list(runtime_of(request).chains.values()))


def create_app(runtime: Runtime) -> Starlette:
    app = Starlette(
        routes=[
            Route("/health", health),
            Route("/api/plugins", list_plugins),
            Route("/api/effects", list_effects),
            Route("/api/effects/{name}", get_effect),
            Route("/api/chains", list_chains),
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    app.state.runtime = runtime
    return app
