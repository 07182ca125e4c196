"""What each kind of failure answers over HTTP: exception handlers that turn the
errors of the layers below into ``application/problem+json`` responses with a status
that fits. No stack trace and no server path ever reaches a client."""

from __future__ import annotations

import logging
from http import HTTPStatus

from fxhost_sdk import FieldError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fxhost.api.openapi.problems import FieldProblem, ProblemException, problem_response, status_title
from fxhost.audio.formats import AudioFormatError
from fxhost.engine.compiled import EffectFault, EffectTimeout
from fxhost.engine.jobs import Busy
from fxhost.store.assets import InvalidCursor, UploadTooLarge
from fxhost.store.storage.objects import StorageError

log = logging.getLogger(__name__)

#: Problem types of a request that an effect failed.
EFFECT_FAULT = "urn:fxhost:problem:effect-fault"
EFFECT_TIMEOUT = "urn:fxhost:problem:effect-timeout"


def _answer(request: Request, error: ProblemException) -> Response:
    return problem_response(error.to_problem(instance=request.url.path))


async def on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemException)
    return _answer(request, exc)


async def on_field_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FieldError)
    return _answer(request, ProblemException(422, str(exc), errors=[FieldProblem(exc.path, exc.message)]))


async def on_audio_error(request: Request, exc: Exception) -> Response:
    return _answer(request, ProblemException(415, str(exc)))


async def on_too_large(request: Request, exc: Exception) -> Response:
    response = _answer(request, ProblemException(413, str(exc)))
    response.headers["Connection"] = "close"  # the rest of the body is not read
    return response


async def on_busy(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Busy)
    response = _answer(request, ProblemException(503, str(exc)))
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


async def on_cursor(request: Request, exc: Exception) -> Response:
    return _answer(
        request, ProblemException(400, f"cursor: {exc}", errors=[FieldProblem("cursor", str(exc))])
    )


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
    return _answer(request, error)


async def on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    phrase = HTTPStatus(exc.status_code).phrase
    detail = exc.detail if exc.detail and exc.detail != phrase else _default_detail(request, exc.status_code)
    response = _answer(request, ProblemException(exc.status_code, detail))
    for key, value in (exc.headers or {}).items():
        response.headers[key] = value
    return response


async def on_storage(request: Request, exc: Exception) -> Response:
    # The object store is down or refused: the detail (endpoint, key) goes to the log only.
    log.error("%s %s: %s", request.method, request.url.path, exc)
    detail = "The audio storage is unavailable or refused the operation; try again later."
    response = _answer(request, ProblemException(503, detail))
    response.headers["Retry-After"] = "5"
    return response


async def on_crash(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    detail = "The server failed to handle this request; the error is logged."
    return _answer(request, ProblemException(500, detail))


class CrashGuard:
    """Pure ASGI middleware around the app's others (CORS aside): an exception no handler took
    becomes one logged traceback and a 500 problem, and the request ends there. Starlette's
    outermost layer would also answer it, but then re-raise it to the server, which logs
    it a second time and drops the connection, so that a client could get a reset in
    place of the 500. One whose response had started is the server's to end: re-raised."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            if started:
                raise
            response = await on_crash(Request(scope), exc)
            await response(scope, receive, send)


def _default_detail(request: Request, status: int) -> str:
    if status == 404:
        return f"There is nothing at {request.url.path}; /docs lists the API."
    if status == 405:
        return f"{request.method} is not allowed on {request.url.path}."
    return status_title(status)


#: Exception class -> handler, for ``Starlette(exception_handlers=...)``.
HANDLERS = {
    ProblemException: on_problem,
    FieldError: on_field_error,
    AudioFormatError: on_audio_error,
    UploadTooLarge: on_too_large,
    InvalidCursor: on_cursor,
    Busy: on_busy,
    EffectFault: on_effect_fault,
    StorageError: on_storage,
    HTTPException: on_http,
    Exception: on_crash,
}
