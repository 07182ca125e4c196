"""Errors as ``application/problem+json`` (RFC 9457): the :class:`Problem` body, the
exceptions that handlers raise to answer with one, and the response that carries it.

Every error names the failing fields by path in ``errors`` (``steps[1].params.room_size``);
no stack trace and no server path ever reaches a client.
"""

from __future__ import annotations

from http import HTTPStatus

import msgspec
from fxhost_sdk import FieldError
from starlette.responses import Response

PROBLEM_JSON = "application/problem+json"

#: RFC 9110's names where they differ from Python 3.11's ``HTTPStatus`` phrases (3.13
#: renamed them), so that a problem's ``title`` does not change with the Python version.
RFC_9110_TITLES = {
    413: "Content Too Large",
    414: "URI Too Long",
    416: "Range Not Satisfiable",
    422: "Unprocessable Content",
}


def status_title(status: int) -> str:
    """The ``title`` of a problem with no title of its own: the status's name (RFC 9110)."""
    return RFC_9110_TITLES.get(status) or HTTPStatus(status).phrase


class FieldProblem(msgspec.Struct):
    """One refused field: `path` as in `steps[1].params.room_size` ("" for the whole value)."""

    path: str
    message: str


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An error, as `application/problem+json` (RFC 9457); `errors` lists the fields that failed."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | None = None
    instance: str | None = None


class ProblemException(Exception):
    """An error that the request handling layer turns into a :class:`Problem` response."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        errors: list[FieldProblem] | None = None,
        type: str = "about:blank",
    ):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or status_title(status)
        self.errors = errors
        self.type = type

    def to_problem(self, instance: str | None = None) -> Problem:
        return Problem(
            type=self.type,
            title=self.title,
            status=self.status,
            detail=self.detail,
            errors=self.errors,
            instance=instance,
        )


class ValidationProblem(ProblemException):
    """A request refused by validation (422), naming the failing fields."""

    def __init__(self, errors: list[FieldProblem], detail: str | None = None):
        if detail is None:
            detail = "; ".join(f"{e.path}: {e.message}" if e.path else e.message for e in errors)
        super().__init__(422, detail, errors=errors)

    @classmethod
    def of(cls, error: FieldError, detail: str | None = None) -> ValidationProblem:
        """A 422 naming the field of a :class:`~fxhost_sdk.FieldError`."""
        return cls([FieldProblem(error.path, error.message)], detail)


def not_found(what: str) -> ProblemException:
    """A 404 saying what is not there."""
    return ProblemException(404, what)


def problem_response(problem: Problem) -> Response:
    return Response(msgspec.json.encode(problem), status_code=problem.status, media_type=PROBLEM_JSON)
