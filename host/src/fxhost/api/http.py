"""Small HTTP helpers shared by the route modules: JSON and problem responses, the
services of a request, audio request bodies with the size limit enforced as they stream."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from fxhost.api.openapi import PROBLEM_JSON, Problem, ProblemException
from fxhost.assets import UploadTooLarge
from fxhost.services import Services


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return msgspec.json.encode(content)


def problem_response(problem: Problem) -> Response:
    return Response(msgspec.json.encode(problem), status_code=problem.status, media_type=PROBLEM_JSON)


def services(request: Request) -> Services:
    return request.app.state.services


def not_found(what: str) -> ProblemException:
    return ProblemException(404, what)


def check_declared_length(request: Request, limit: int) -> None:
    """413 before reading anything when Content-Length already says too much."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ProblemException(400, "Content-Length is not a number") from None
        if size > limit:
            raise UploadTooLarge(limit)
