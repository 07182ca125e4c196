"""The HTTP edge: a Starlette app over the services. Every route is declared once in
:data:`fxhost.api.spec.api` with its msgspec types; the same declarations give the
OpenAPI document served at ``/openapi.json``, ``/docs`` and ``/redoc``.

Errors are ``application/problem+json`` (RFC 9457); no stack trace and no server path
ever reaches a client.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from http import HTTPStatus

from fxhost_sdk import FieldError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response

from fxhost.api import analysis, assets, chains, live, meta, process, renders  # noqa: F401 - they declare routes
from fxhost.api.auth import RequireApiKey
from fxhost.api.http import problem_response
from fxhost.api.openapi import FieldProblem, ProblemException
from fxhost.api.spec import api
from fxhost.assets import InvalidCursor, UploadTooLarge
from fxhost.audiofile import AudioFormatError
from fxhost.engine import EffectFault, EffectTimeout
from fxhost.runtime import Runtime, load_runtime
from fxhost.services import start_services, stop_services
from fxhost.settings import Settings, load_settings

log = logging.getLogger(__name__)

#: Problem types of a request that an effect failed.
EFFECT_FAULT = "urn:fxhost:problem:effect-fault"
EFFECT_TIMEOUT = "urn:fxhost:problem:effect-timeout"


async def on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemException)
    return problem_response(exc.to_problem(instance=request.url.path))


async def on_field_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FieldError)
    error = ProblemException(422, str(exc), errors=[FieldProblem(exc.path, exc.message)])
    return problem_response(error.to_problem(instance=request.url.path))


async def on_audio_error(request: Request, exc: Exception) -> Response:
    return problem_response(ProblemException(415, str(exc)).to_problem(instance=request.url.path))


async def on_too_large(request: Request, exc: Exception) -> Response:
    response = problem_response(ProblemException(413, str(exc)).to_problem(instance=request.url.path))
    response.headers["Connection"] = "close"  # the rest of the body is not read
    return response


async def on_cursor(request: Request, exc: Exception) -> Response:
    error = ProblemException(400, f"cursor: {exc}", errors=[FieldProblem("cursor", str(exc))])
    return problem_response(error.to_problem(instance=request.url.path))


async def on_effect_fault(request: Request, exc: Exception) -> Response:
    # The request was valid; a plugin the server relies on failed it, as an upstream
    # server fails a gateway: 502 for bad output or an exception, 504 past the time limit.
    assert isinstance(exc, EffectFault)
    timeout = isinstance(exc, EffectTimeout)
    error = ProblemException(
        504 if timeout else 502,
        str(exc),
        title="Effect timed out" if timeout else "Effect failed",
        type=EFFECT_TIMEOUT if timeout else EFFECT_FAULT,
    )
    return problem_response(error.to_problem(instance=request.url.path))


async def on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    phrase = HTTPStatus(exc.status_code).phrase
    detail = exc.detail if exc.detail and exc.detail != phrase else _default_detail(request, exc.status_code)
    response = problem_response(
        ProblemException(exc.status_code, detail).to_problem(instance=request.url.path)
    )
    for key, value in (exc.headers or {}).items():
        response.headers[key] = value
    return response


async def on_crash(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    detail = "The server failed to handle this request; the error is logged."
    return problem_response(ProblemException(500, detail).to_problem(instance=request.url.path))


async def _keys_required(request: Request) -> bool:
    """Whether /openapi.json declares the API-key requirement: only when keys exist."""
    return await request.app.state.services.auth.required()


def _default_detail(request: Request, status: int) -> str:
    if status == 404:
        return f"There is nothing at {request.url.path}; /docs lists the API."
    if status == 405:
        return f"{request.method} is not allowed on {request.url.path}."
    return HTTPStatus(status).phrase


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Starlette:
    """The app. With no arguments (uvicorn's factory in each worker process) settings
    come from the environment and plugins from the config they name."""
    settings = settings or load_settings()
    runtime = runtime or load_runtime(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = await start_services(settings, runtime)
        app.state.services = services
        try:
            yield
        finally:
            await stop_services(services)

    # CORS outermost, so that preflight requests (which carry no key) are answered.
    middleware = [Middleware(GZipMiddleware, minimum_size=1024), Middleware(RequireApiKey)]
    if settings.cors_origins:
        middleware.insert(
            0,
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["*"],
                allow_headers=["*"],
                expose_headers=["Content-Length", "Content-Range", "Accept-Ranges", "Location"],
            ),
        )
    return Starlette(
        routes=[*api.routes(), *api.docs_routes(secured=_keys_required)],
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            ProblemException: on_problem,
            FieldError: on_field_error,
            AudioFormatError: on_audio_error,
            UploadTooLarge: on_too_large,
            InvalidCursor: on_cursor,
            EffectFault: on_effect_fault,
            HTTPException: on_http,
            Exception: on_crash,
        },
    )
