"""Routes declared once, with their msgspec types; Starlette routes and OpenAPI 3.1 from them.

An :class:`Api` collects declarations made with its decorators::

    api = Api("fxhost", "0.1.0")

    @api.get("/api/assets/{asset_id}", summary="One asset", responses={200: Asset})
    async def get_asset(request: Request) -> Response: ...

The same declarations give :meth:`Api.routes` (Starlette ``Route``/``WebSocketRoute``
objects), :meth:`Api.document` (the OpenAPI 3.1 document, with every Struct schema under
``components/schemas``) and :attr:`Api.operations` (what the request handling layer needs
to decode the query string and body with the declared types, e.g. with
:func:`decode_query` and :func:`decode_json_body`). :meth:`Api.docs_routes` serves the
document with Swagger UI at ``/docs`` and Redoc at ``/redoc`` from vendored files, so the
docs work with no internet access on either side.

Every operation documents its errors as ``application/problem+json`` (RFC 9457) with the
shared :class:`Problem` schema.
"""

from __future__ import annotations

import html
import inspect
import json
import posixpath
import re
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from http import HTTPStatus
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes

import msgspec
from fxhost_sdk.params import FieldError, convert, field_error
from starlette.datastructures import QueryParams
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

__all__ = [
    "PROBLEM_JSON",
    "STATIC_DIR",
    "Api",
    "FieldProblem",
    "Operation",
    "Problem",
    "ProblemException",
    "Resp",
    "ValidationProblem",
    "WebSocketOperation",
    "decode_json_body",
    "decode_query",
    "problem_resp",
]

PROBLEM_JSON = "application/problem+json"
STATIC_DIR = Path(__file__).parent / "static"
REF_TEMPLATE = "#/components/schemas/{name}"

T = TypeVar("T")
E = TypeVar("E", bound=Callable[..., Any])
Endpoint = Callable[[Request], Awaitable[Response]]


# --------------------------------------------------------------------------- errors


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
        self.title = title or HTTPStatus(status).phrase
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


def _validation_problem(error: FieldError, where: str) -> ValidationProblem:
    return ValidationProblem([FieldProblem(error.path, error.message)], f"{where} is invalid: {error}")


@cache
def _multi_valued(query_type: type) -> frozenset[str]:
    """Encoded names of the fields of ``query_type`` that take repeated parameters (lists...)."""
    info = msgspec.inspect.type_info(query_type)
    if not isinstance(info, msgspec.inspect.StructType):
        raise TypeError(f"a query type must be a msgspec.Struct, not {query_type!r}")
    multi = set()
    for f in info.fields:
        kind = f.type.type if isinstance(f.type, msgspec.inspect.Metadata) else f.type
        if isinstance(kind, msgspec.inspect.UnionType):
            kinds = [k.type if isinstance(k, msgspec.inspect.Metadata) else k for k in kind.types]
        else:
            kinds = [kind]
        seq = (msgspec.inspect.ListType, msgspec.inspect.SetType, msgspec.inspect.FrozenSetType)
        seq += (msgspec.inspect.VarTupleType,)
        if any(isinstance(k, seq) for k in kinds):
            multi.add(f.encode_name)
    return frozenset(multi)


def decode_query(source: HTTPConnection | QueryParams | Mapping[str, str], query_type: type[T]) -> T:
    """The query string of a request (or WebSocket) validated into ``query_type``.

    Strings are converted to the declared types (``?limit=5`` gives ``limit=5``); a
    repeated parameter fills a list field (``?tag=a&tag=b``), for other fields the last
    one wins. Raises :class:`ValidationProblem` naming the parameter (``limit: Expected
    int, got str``).
    """
    if isinstance(source, HTTPConnection):
        _check_utf8_query(source.scope.get("query_string", b""))
    params = source.query_params if isinstance(source, HTTPConnection) else source
    items = params.multi_items() if isinstance(params, QueryParams) else list(params.items())
    multi = _multi_valued(query_type)
    data: dict[str, Any] = {}
    for key, value in items:
        if key in multi:
            data.setdefault(key, []).append(value)
        else:
            data[key] = value
    try:
        return convert(data, query_type, strict=False)
    except FieldError as error:
        raise _validation_problem(error, "The query string") from None


def _check_utf8_query(raw: bytes) -> None:
    """400 naming the parameter whose (percent-decoded) value is not UTF-8: Starlette
    would quietly turn it into U+FFFD, and a name would be stored with them."""
    for pair in raw.split(b"&"):
        key, _, value = pair.partition(b"=")
        for part in (key, value):
            try:
                unquote_to_bytes(part.replace(b"+", b" ")).decode("utf-8")
            except UnicodeDecodeError:
                name = unquote_to_bytes(key).decode("utf-8", "replace") if part is value else "query"
                raise ProblemException(
                    400,
                    f"The query string is not valid UTF-8 in {name!r}.",
                    errors=[FieldProblem(name, "not valid UTF-8")],
                ) from None


_BYTE = re.compile(r"\(byte (\d+)\)")


def _where(raw: bytes, position: int) -> str:
    line = raw.count(b"\n", 0, position) + 1
    column = position - (raw.rfind(b"\n", 0, position) + 1) + 1
    return f"line {line}, column {column} (byte {position})"


def decode_json_body(raw: bytes, body_type: type[T]) -> T:
    """A JSON request body decoded and validated into ``body_type``.

    Raises :class:`ProblemException` (400) when the body is empty or not JSON, saying
    where it breaks, and :class:`ValidationProblem` (422) naming the failing field
    (``steps[0].params.room_size: Expected float <= 1.0``).
    """
    if not raw.strip():
        raise ProblemException(400, f"The request body is empty; expected JSON ({_type_name(body_type)}).")
    try:
        return msgspec.json.decode(raw, type=body_type)
    except msgspec.ValidationError as error:
        raise _validation_problem(field_error(error), "The request body") from None
    except UnicodeDecodeError:  # msgspec checks UTF-8 string by string, and says where in the string
        where = _where(raw, _bad_utf8_at(raw))
        raise ProblemException(400, f"The request body is not valid UTF-8 at {where}.") from None
    except RecursionError:
        raise ProblemException(400, "The request body is not valid JSON: it is nested too deeply.") from None
    except msgspec.DecodeError as error:
        message = str(error)
        if message == "Input data was truncated":
            detail = "The request body is not valid JSON: it ends before the JSON value is complete."
        else:
            match = _BYTE.search(message)
            if match:
                reason = message[: match.start()].removeprefix("JSON is malformed:").strip()
                detail = f"The request body is not valid JSON: {reason} at {_where(raw, int(match[1]))}."
            else:
                detail = f"The request body is not valid JSON: {message}."
        raise ProblemException(400, detail) from None


def _bad_utf8_at(raw: bytes) -> int:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start
    return 0


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or repr(tp)


# --------------------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Resp:
    """A documented response.

    ``type``: the body's msgspec type (JSON unless ``media_type`` says otherwise);
    ``media_type``: defaults to ``application/json`` (``application/problem+json`` for
    :class:`Problem`); ``binary``: the body is bytes of ``media_type`` (``audio/*``);
    for ``text/event-stream`` ``type`` is the JSON ``data`` of each event; a ``Resp``
    with neither type, media type nor ``binary`` has no body (204...).
    ``headers``: response header name -> description.
    """

    type: Any = None
    media_type: str | None = None
    description: str = ""
    binary: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)


def problem_resp(description: str = "") -> Resp:
    """A :class:`Problem` response, e.g. ``responses={413: problem_resp("Upload too large")}``."""
    return Resp(Problem, PROBLEM_JSON, description)


_ERROR_DESCRIPTIONS = {
    400: "Malformed request (e.g. a body that is not valid JSON).",
    401: "Missing or invalid credentials.",
    403: "Not allowed.",
    404: "Not found.",
    405: "Method not allowed.",
    409: "Conflict with the current state of the resource.",
    413: "Request body too large.",
    415: "Unsupported media type.",
    422: "Validation failed; `errors` lists the failing fields by path.",
    429: "Too many requests.",
    500: "Internal server error; the error is logged, no details are given.",
    503: "Service unavailable.",
}

_PATH_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z_]+))?\}")
_CONVERTOR_SCHEMAS: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "path": {"type": "string"},
    "int": {"type": "integer", "minimum": 0},
    "float": {"type": "number", "minimum": 0},
    "uuid": {"type": "string", "format": "uuid"},
}
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


def _path_params(path: str) -> tuple[str, list[tuple[str, str]]]:
    """The OpenAPI form of a Starlette path and its parameters (name, convertor)."""
    params = [(m[1], m[2] or "str") for m in _PATH_PARAM.finditer(path)]
    for name, convertor in params:
        if convertor not in _CONVERTOR_SCHEMAS:
            raise ValueError(f"{path}: unknown path convertor {convertor!r} for {{{name}}}")
    names = [name for name, _ in params]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: a path parameter is repeated")
    return _PATH_PARAM.sub(r"{\1}", path), params


@dataclass(frozen=True)
class Operation:
    """One declared HTTP operation; :attr:`Api.operations` lists them in declaration order."""

    method: str
    path: str  # as Starlette reads it: "/api/assets/{asset_id:int}"
    endpoint: Endpoint
    operation_id: str
    summary: str
    description: str
    tags: tuple[str, ...]
    query: type[msgspec.Struct] | None
    body: Any
    raw_body: Mapping[str, str]
    responses: Mapping[int, Resp]  # declared ones, normalized; default errors not included
    errors: tuple[int, ...]  # statuses documented as Problem by default
    security: Sequence[Mapping[str, Sequence[str]]] | None
    path_params: tuple[tuple[str, str], ...]  # (name, convertor)
    #: name -> msgspec type whose schema documents that path parameter (default: its convertor's)
    path_types: Mapping[str, Any] = field(default_factory=dict)

    @property
    def openapi_path(self) -> str:
        return _PATH_PARAM.sub(r"{\1}", self.path)


@dataclass(frozen=True)
class WebSocketOperation:
    """One declared WebSocket endpoint (documented under ``x-websockets``)."""

    path: str
    endpoint: Callable[..., Awaitable[None]]
    operation_id: str
    summary: str
    description: str
    tags: tuple[str, ...]
    query: type[msgspec.Struct] | None
    client_messages: tuple[Any, ...]
    server_messages: tuple[Any, ...]
    path_params: tuple[tuple[str, str], ...]


def _normalize_response(value: Resp | type | None) -> Resp:
    if value is None:
        return Resp()
    if isinstance(value, Resp):
        return value
    return Resp(value)


def _media_type(resp: Resp) -> str | None:
    if resp.media_type is not None:
        return resp.media_type
    if resp.type is Problem:
        return PROBLEM_JSON
    if resp.type is not None:
        return "application/json"
    if resp.binary:
        return "application/octet-stream"
    return None


# --------------------------------------------------------------------------- the Api


class Api:
    """Declarations of an HTTP API, and the Starlette routes and OpenAPI document made of them.

    ``error_statuses``: the statuses every operation documents as :class:`Problem` unless
    it says otherwise (``errors=`` on a declaration); ``tags``: tag name -> description;
    ``security_schemes``/``security``: as in OpenAPI, the latter the default requirement
    of every operation (a declaration's ``security=[]`` makes it public).
    """

    def __init__(
        self,
        title: str,
        version: str,
        description: str = "",
        *,
        tags: Mapping[str, str] | None = None,
        error_statuses: Collection[int] = (400, 404, 422, 500),
        security_schemes: Mapping[str, Mapping[str, Any]] | None = None,
        security: Sequence[Mapping[str, Sequence[str]]] = (),
    ):
        self.title = title
        self.version = version
        self.description = description
        self.error_statuses = tuple(sorted(error_statuses))
        self.security_schemes = dict(security_schemes or {})
        self.security = [dict(s) for s in security]
        self.operations: list[Operation] = []
        self.websockets: list[WebSocketOperation] = []
        self._tags: dict[str, str] = dict(tags or {})
        self._ids: set[str] = set()
        # By "secured": with or without the security requirements (see document()).
        self._document: dict[bool, dict[str, Any]] = {}
        self._encoded: dict[bool, bytes] = {}

    # ---- declaring

    def tag(self, name: str, description: str) -> None:
        """Describe a tag (tags are listed in the order described, then in order of use)."""
        self._tags[name] = description
        self._invalidate()

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tags: Sequence[str] = (),
        query: type[msgspec.Struct] | None = None,
        body: Any = None,
        raw_body: Mapping[str, str] | None = None,
        responses: Mapping[int, Resp | type | None] | None = None,
        operation_id: str | None = None,
        description: str = "",
        errors: Collection[int] | None = None,
        security: Sequence[Mapping[str, Sequence[str]]] | None = None,
        path_types: Mapping[str, Any] | None = None,
    ) -> Callable[[E], E]:
        """Declare an operation; decorates its Starlette endpoint (returned unchanged).

        ``query``: a Struct whose fields are the query parameters; ``body``: the type of
        a JSON body; ``raw_body``: other body media types -> description (binary, or
        for ``multipart/form-data`` a form with a binary ``file``); ``responses``:
        status -> :class:`Resp`, a bare type (JSON of it) or ``None`` (no body); with no
        2xx declared, ``200`` without a described body is assumed. ``errors``: the
        statuses documented as :class:`Problem` (default: the Api's ``error_statuses``),
        besides any declared in ``responses``. ``operation_id`` defaults to the
        endpoint's name and must be unique. ``path_types``: path parameter name -> a msgspec
        type (``Annotated[str, Meta(pattern=...)]``) whose schema documents it.
        """
        method = method.upper()
        if method not in _METHODS:
            raise ValueError(f"{path}: unknown HTTP method {method!r}")
        if not path.startswith("/"):
            raise ValueError(f"{path!r}: a path starts with '/'")
        _, params = _path_params(path)
        for name, tp in (path_types or {}).items():
            if name not in {n for n, _ in params}:
                raise ValueError(f"{method} {path}: path_types names {name!r}, not a path parameter")
            _check_schemable(tp, f"{method} {path}")
        if query is not None:
            _check_schemable(query, f"{method} {path}")
            _multi_valued(query)  # refuses anything but a Struct
            clash = {name for name, _ in params} & {f.encode_name for f in msgspec.structs.fields(query)}
            if clash:
                raise ValueError(f"{method} {path}: {sorted(clash)} are both path and query parameters")
        if body is not None:
            _check_schemable(body, f"{method} {path}")
        normalized: dict[int, Resp] = {}
        for status, value in (responses or {}).items():
            if not 100 <= int(status) <= 599:
                raise ValueError(f"{method} {path}: {status} is not an HTTP status")
            resp = _normalize_response(value)
            if resp.type is not None:
                _check_schemable(resp.type, f"{method} {path}")
            normalized[int(status)] = resp
        openapi_path = _PATH_PARAM.sub(r"{\1}", path)
        for op in self.operations:
            if op.method == method and op.openapi_path == openapi_path:
                raise ValueError(f"{method} {path} is declared twice")

        def decorate(endpoint: E) -> E:
            op_id = operation_id or endpoint.__name__
            self._claim(op_id, f"{method} {path}")
            self.operations.append(
                Operation(
                    method=method,
                    path=path,
                    endpoint=endpoint,
                    operation_id=op_id,
                    summary=summary,
                    description=description,
                    tags=tuple(tags),
                    query=query,
                    body=body,
                    raw_body=dict(raw_body or {}),
                    responses=normalized,
                    errors=tuple(sorted(self.error_statuses if errors is None else errors)),
                    security=None if security is None else [dict(s) for s in security],
                    path_params=tuple(params),
                    path_types=dict(path_types or {}),
                )
            )
            self._invalidate()
            return endpoint

        return decorate

    def get(self, path: str, **kwargs: Any) -> Callable[[E], E]:
        return self.route("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Callable[[E], E]:
        return self.route("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Callable[[E], E]:
        return self.route("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Callable[[E], E]:
        return self.route("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Callable[[E], E]:
        return self.route("DELETE", path, **kwargs)

    def websocket(
        self,
        path: str,
        *,
        summary: str,
        description: str = "",
        tags: Sequence[str] = (),
        query: type[msgspec.Struct] | None = None,
        client_messages: Sequence[Any] = (),
        server_messages: Sequence[Any] = (),
        operation_id: str | None = None,
    ) -> Callable[[E], E]:
        """Declare a WebSocket endpoint (``async def ws(websocket)``).

        OpenAPI has no WebSockets: these are listed under the document's ``x-websockets``
        extension (with the schemas of the JSON messages each side sends) and in a
        section of ``info.description``, which the docs pages render.
        """
        _, params = _path_params(path)
        if query is not None:
            _check_schemable(query, f"WebSocket {path}")
            _multi_valued(query)
        for tp in (*client_messages, *server_messages):
            _check_schemable(tp, f"WebSocket {path}")
        if any(ws.path == path for ws in self.websockets):
            raise ValueError(f"WebSocket {path} is declared twice")

        def decorate(endpoint: E) -> E:
            op_id = operation_id or endpoint.__name__
            self._claim(op_id, f"WebSocket {path}")
            self.websockets.append(
                WebSocketOperation(
                    path=path,
                    endpoint=endpoint,
                    operation_id=op_id,
                    summary=summary,
                    description=description,
                    tags=tuple(tags),
                    query=query,
                    client_messages=tuple(client_messages),
                    server_messages=tuple(server_messages),
                    path_params=tuple(params),
                )
            )
            self._invalidate()
            return endpoint

        return decorate

    def _claim(self, operation_id: str, what: str) -> None:
        if operation_id in self._ids:
            raise ValueError(f"{what}: operationId {operation_id!r} is already used by another endpoint")
        self._ids.add(operation_id)

    def _invalidate(self) -> None:
        self._document.clear()
        self._encoded.clear()

    def operation(self, operation_id: str) -> Operation:
        """The declared operation of that id (KeyError if none)."""
        for op in self.operations:
            if op.operation_id == operation_id:
                return op
        raise KeyError(operation_id)

    # ---- Starlette

    def routes(self) -> list[BaseRoute]:
        """Starlette routes of every declared endpoint, in declaration order: one route per
        path, so that a method the path lacks gets a 405 whose Allow header lists them all."""
        by_path: dict[str, list[Operation]] = {}
        for op in self.operations:
            by_path.setdefault(op.path, []).append(op)
        routes: list[BaseRoute] = []
        for path, ops in by_path.items():
            if len(ops) == 1:
                routes.append(Route(path, ops[0].endpoint, methods=[ops[0].method], name=ops[0].operation_id))
                continue
            endpoints = {op.method: op.endpoint for op in ops}
            if "GET" in endpoints:
                endpoints.setdefault("HEAD", endpoints["GET"])

            async def dispatch(request: Request, endpoints: dict[str, Endpoint] = endpoints) -> Response:
                return await endpoints[request.method](request)

            name = "+".join(op.operation_id for op in ops)
            routes.append(Route(path, dispatch, methods=list(endpoints), name=name))
        routes += [WebSocketRoute(ws.path, ws.endpoint, name=ws.operation_id) for ws in self.websockets]
        return routes

    # ---- OpenAPI

    def document(self, secured: bool = True) -> dict[str, Any]:
        """The OpenAPI 3.1.0 document (built once, rebuilt after a new declaration).
        ``secured`` False leaves out the security requirements and their 401s, for a
        server that runs without credentials: the document says what the server does.

        The dict is shared: do not modify it.
        """
        if secured not in self._document:
            self._document[secured] = _Builder(self, secured).build()
        return self._document[secured]

    def document_json(self, secured: bool = True) -> bytes:
        """:meth:`document` encoded as JSON (cached)."""
        if secured not in self._encoded:
            self._encoded[secured] = msgspec.json.encode(self.document(secured))
        return self._encoded[secured]

    def docs_routes(
        self,
        openapi_url: str = "/openapi.json",
        *,
        docs_url: str = "/docs",
        redoc_url: str = "/redoc",
        static_url: str = "/docs/static",
        secured: Callable[[Request], Awaitable[bool]] | None = None,
    ) -> list[BaseRoute]:
        """The document at ``openapi_url``, Swagger UI at ``docs_url``, Redoc at ``redoc_url``,
        and their vendored assets under ``static_url``.

        The pages refer to the document and the assets by relative URLs, so they work
        behind a path prefix and with no internet access.
        """
        api = self

        async def openapi_document(request: Request) -> Response:
            root = request.scope.get("root_path", "")
            with_security = await secured(request) if secured is not None else True
            if root:
                body = msgspec.json.encode({**api.document(with_security), "servers": [{"url": root}]})
            else:
                body = api.document_json(with_security)
            return Response(body, media_type="application/json")

        swagger = _swagger_html(
            self.title,
            spec=_relative(docs_url, openapi_url),
            static=_relative(docs_url, static_url),
        )
        redoc = _redoc_html(
            self.title,
            spec=_relative(redoc_url, openapi_url),
            static=_relative(redoc_url, static_url),
        )

        async def swagger_ui(request: Request) -> Response:
            return HTMLResponse(swagger)

        async def redoc_ui(request: Request) -> Response:
            return HTMLResponse(redoc)

        return [
            Route(openapi_url, openapi_document, methods=["GET"], name="openapi", include_in_schema=False),
            Route(docs_url, swagger_ui, methods=["GET"], name="swagger_ui", include_in_schema=False),
            Route(redoc_url, redoc_ui, methods=["GET"], name="redoc", include_in_schema=False),
            Mount(static_url, app=StaticFiles(directory=STATIC_DIR), name="docs_static"),
        ]


def _check_schemable(tp: Any, where: str) -> None:
    """Refuse, at declaration time, a type that msgspec cannot describe (nor decode)."""
    try:
        msgspec.json.schema(tp)
    except TypeError as error:
        raise TypeError(f"{where}: {_type_name(tp)} is not a valid msgspec type: {error}") from None


def _ref_names(node: Any) -> set[str]:
    """Names of the components that ``node`` refers to."""
    found: set[str] = set()
    prefix = REF_TEMPLATE.format(name="")

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            ref = value.get("$ref")
            if isinstance(ref, str) and ref.startswith(prefix):
                found.add(ref.removeprefix(prefix))
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(node)
    return found


class _Builder:
    """Builds the OpenAPI document of an :class:`Api`."""

    def __init__(self, api: Api, secured: bool = True):
        self.api = api
        self.secured = secured
        types: list[Any] = [Problem]
        for op in api.operations:
            types += [op.query, op.body, *op.path_types.values()] + [r.type for r in op.responses.values()]
        for ws in api.websockets:
            types += [ws.query, *ws.client_messages, *ws.server_messages]
        unique: list[Any] = []
        for tp in types:
            if tp is not None and tp not in unique:
                unique.append(tp)
        schemas, self.components = msgspec.json.schema_components(unique, ref_template=REF_TEMPLATE)
        for component in self.components.values():  # docstrings, as Markdown without their indent
            if isinstance(component.get("description"), str):
                component["description"] = inspect.cleandoc(component["description"])
        self.schemas = list(zip(unique, schemas, strict=True))

    def schema(self, tp: Any) -> dict[str, Any]:
        for known, schema in self.schemas:
            if known is tp or known == tp:
                return schema
        raise KeyError(tp)

    def component(self, tp: Any) -> dict[str, Any]:
        """The full schema of a Struct, following its ``$ref``."""
        schema = self.schema(tp)
        ref = schema.get("$ref")
        return self.components[ref.removeprefix(REF_TEMPLATE.format(name=""))] if ref else schema

    # ---- parts

    def path_parameters(
        self, params: Sequence[tuple[str, str]], types: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        types = types or {}
        return [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": self.schema(types[name]) if name in types else dict(_CONVERTOR_SCHEMAS[convertor]),
            }
            for name, convertor in params
        ]

    def query_parameters(self, query: Any) -> list[dict[str, Any]]:
        if query is None:
            return []
        struct = self.component(query)
        required = set(struct.get("required", ()))
        params = []
        for name, prop in struct.get("properties", {}).items():
            schema = dict(prop)
            param: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
            if "description" in schema:
                param["description"] = schema.pop("description")
            if schema.get("type") == "array":
                param["style"], param["explode"] = "form", True
            param["schema"] = schema
            params.append(param)
        return params

    def request_body(self, op: Operation) -> dict[str, Any] | None:
        content: dict[str, Any] = {}
        if op.body is not None:
            content["application/json"] = {"schema": self.schema(op.body)}
        for media_type, description in op.raw_body.items():
            binary = {"type": "string", "format": "binary"}
            if media_type == "multipart/form-data":
                content[media_type] = {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {**binary, "description": description}},
                        "required": ["file"],
                    }
                }
            else:
                content[media_type] = {"schema": {**binary, "description": description}}
        if not content:
            return None
        body: dict[str, Any] = {"required": True, "content": content}
        if len(op.raw_body) == 1 and op.body is None:
            body["description"] = next(iter(op.raw_body.values()))
        return body

    def response(self, status: int, resp: Resp) -> dict[str, Any]:
        out: dict[str, Any] = {"description": resp.description or _status_description(status)}
        if resp.headers:
            out["headers"] = {
                name: {"description": text, "schema": {"type": "string"}}
                for name, text in resp.headers.items()
            }
        media_type = _media_type(resp)
        if media_type is None:
            return out
        media: dict[str, Any]
        if resp.binary:
            media = {"schema": {"type": "string", "format": "binary"}}
        elif media_type == "text/event-stream":
            text = "A stream of server-sent events."
            media = {"schema": {"type": "string", "description": text}}
            if resp.type is not None:
                name = _type_name(resp.type)
                media["schema"]["description"] = f"{text} The `data` of each event is JSON ({name})."
                media["x-event-data"] = self.schema(resp.type)
        elif resp.type is not None:
            media = {"schema": self.schema(resp.type)}
        elif media_type.endswith("json"):
            media = {"schema": {}}
        else:
            media = {"schema": {"type": "string"}}
        out["content"] = {media_type: media}
        return out

    def responses(self, op: Operation) -> dict[str, Any]:
        declared = dict(op.responses)
        if not any(200 <= s < 400 for s in declared):
            declared[200] = Resp(description="OK")
        for status in op.errors:
            declared.setdefault(status, problem_resp(_ERROR_DESCRIPTIONS.get(status, "")))
        if self.secured and (op.security if op.security is not None else self.api.security):
            declared.setdefault(401, problem_resp(_ERROR_DESCRIPTIONS[401]))
        return {str(s): self.response(s, declared[s]) for s in sorted(declared)}

    def operation(self, op: Operation) -> dict[str, Any]:
        out: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary}
        if op.description:
            out["description"] = op.description
        if op.tags:
            out["tags"] = list(op.tags)
        params = self.path_parameters(op.path_params, op.path_types) + self.query_parameters(op.query)
        if params:
            out["parameters"] = params
        body = self.request_body(op)
        if body is not None:
            out["requestBody"] = body
        out["responses"] = self.responses(op)
        if op.security is not None and self.secured:
            out["security"] = op.security
        return out

    def websocket(self, ws: WebSocketOperation) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": _PATH_PARAM.sub(r"{\1}", ws.path),
            "operationId": ws.operation_id,
            "summary": ws.summary,
        }
        if ws.description:
            out["description"] = ws.description
        if ws.tags:
            out["tags"] = list(ws.tags)
        params = self.path_parameters(ws.path_params) + self.query_parameters(ws.query)
        if params:
            out["parameters"] = params
        if ws.client_messages:
            out["clientMessages"] = [self.schema(tp) for tp in ws.client_messages]
        if ws.server_messages:
            out["serverMessages"] = [self.schema(tp) for tp in ws.server_messages]
        return out

    def websocket_section(self) -> str:
        lines = ["## WebSocket endpoints", ""]
        for ws in self.api.websockets:
            path = _PATH_PARAM.sub(r"{\1}", ws.path)
            lines.append(f"### `{path}`: {ws.summary}")
            lines.append("")
            if ws.description:
                lines += [ws.description.strip(), ""]
            for label, types in (
                ("Client messages", ws.client_messages),
                ("Server messages", ws.server_messages),
            ):
                if types:
                    names = ", ".join(f"`{_type_name(tp)}`" for tp in types)
                    lines += [f"{label} (JSON text frames): {names}.", ""]
        lines.append("These are also listed, with message schemas, under `x-websockets` in the document.")
        return "\n".join(lines)

    # ---- the document

    def build(self) -> dict[str, Any]:
        api = self.api
        paths: dict[str, dict[str, Any]] = {}
        used_tags: list[str] = []
        for op in api.operations:
            paths.setdefault(op.openapi_path, {})[op.method.lower()] = self.operation(op)
            used_tags += [t for t in op.tags if t not in used_tags]
        websockets = [self.websocket(ws) for ws in api.websockets]
        for ws in api.websockets:
            used_tags += [t for t in ws.tags if t not in used_tags]

        description = api.description
        if websockets:
            description = f"{description}\n\n{self.websocket_section()}".strip()
        info: dict[str, Any] = {"title": api.title, "version": api.version}
        if description:
            info["description"] = description

        doc: dict[str, Any] = {"openapi": "3.1.0", "info": info}
        names = list(api._tags) + [t for t in used_tags if t not in api._tags]
        if names:
            doc["tags"] = [
                {"name": n, "description": api._tags[n]} if api._tags.get(n) else {"name": n} for n in names
            ]
        doc["paths"] = paths
        if websockets:
            doc["x-websockets"] = websockets
        if api.security and self.secured:
            doc["security"] = api.security

        # Only the components reachable from the operations: query Structs are inlined
        # as parameters and are not components unless something else refers to them.
        reachable: set[str] = set()
        todo = _ref_names([paths, websockets]) | {"Problem"}
        while todo:
            name = todo.pop()
            if name not in reachable:
                reachable.add(name)
                todo |= _ref_names(self.components[name])
        components: dict[str, Any] = {"schemas": {n: s for n, s in self.components.items() if n in reachable}}
        if api.security_schemes and self.secured:
            components["securitySchemes"] = api.security_schemes
        doc["components"] = components
        return doc


def _status_description(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"Status {status}"


# --------------------------------------------------------------------------- docs pages


def _relative(page: str, target: str) -> str:
    """The URL of ``target`` relative to the page at ``page`` (both absolute paths)."""
    if "://" in target:
        return target
    base = page.rsplit("/", 1)[0] or "/"
    return posixpath.relpath(target, base)


def _js(value: str) -> str:
    """A JavaScript string literal, safe inside <script>."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _page(title: str, head: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="icon" href="data:,">
{head}
</head>
<body>
{body}
</body>
</html>
"""


def _swagger_html(title: str, *, spec: str, static: str) -> str:
    # validatorUrl: null: Swagger UI would otherwise send the document to validator.swagger.io.
    return _page(
        f"{title} - Swagger UI",
        f'<link rel="stylesheet" href="{html.escape(static)}/swagger-ui/swagger-ui.css">\n'
        "<style>body{margin:0}</style>",
        f"""<div id="swagger-ui"></div>
<script src="{html.escape(static)}/swagger-ui/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: new URL({_js(spec)}, document.baseURI).href,
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  deepLinking: true,
  validatorUrl: null,
  displayRequestDuration: true,
  showExtensions: true,
  showCommonExtensions: true
}});
</script>""",
    )


_FONTS = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
_MONO = "ui-monospace, SFMono-Regular, Menlo, Consolas, 'Liberation Mono', monospace"


def _redoc_html(title: str, *, spec: str, static: str) -> str:
    # The Redoc bundle loads no fonts itself (redoc-cli's page template adds the Google
    # Fonts <link>; this page has none): the theme names locally installed fonts.
    options = {
        "theme": {
            "typography": {
                "fontFamily": _FONTS,
                "headings": {"fontFamily": _FONTS},
                "code": {"fontFamily": _MONO},
            }
        },
        "expandResponses": "200,201",
        "jsonSampleExpandLevel": 3,
    }
    return _page(
        f"{title} - Redoc",
        "<style>body{margin:0;padding:0}</style>",
        f"""<div id="redoc"></div>
<script src="{html.escape(static)}/redoc/redoc.standalone.js"></script>
<script>
Redoc.init(new URL({_js(spec)}, document.baseURI).href, {json.dumps(options)},
           document.getElementById("redoc"));
</script>""",
    )
