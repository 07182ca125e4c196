"""Routes as data: each operation declared once, with its msgspec types.

A route module lists its operations::

    ROUTES = [
        Operation("GET", "/api/assets/{id}", get_asset, summary="One asset", responses={200: AssetSummary}),
        WebSocketOperation("/ws/process", ws_process, summary="Live audio", client_messages=[Start]),
    ]

and an :class:`Api` collects them (``Api("fxhost", "1.0", routes=[*assets.ROUTES, ...])``).
The same declarations give :meth:`Api.routes` (Starlette ``Route``/``WebSocketRoute``
objects), the OpenAPI 3.1 document (:mod:`fxhost.api.openapi.document`), the docs pages
(:mod:`fxhost.api.openapi.pages`), and what a handler decodes the query string and body
with (:mod:`fxhost.api.openapi.decode`). Every declaration is checked when it is made:
a type msgspec cannot describe, an unknown path convertor, a path and query parameter of
the same name, an operation id or method and path declared twice, a JSON body without
an example (or with one its type refuses), a :class:`Link` to an operation or parameter
that does not exist are refused at once.

A document that a client generator or a fuzzer can *use* needs more than types: a
request example for every JSON body (``example=``, what a client starts from), a
:class:`Link` from each create to the operations on what it created (``links=``), and
the names only the running server knows (installed effects, configured chains) as
components it fills in when it serves the document (:func:`component`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from fxhost.api.openapi.decode import multi_valued, type_name
from fxhost.api.openapi.problems import PROBLEM_JSON, Problem

Endpoint = Callable[[Request], Awaitable[Response]]
#: OpenAPI's security requirements: scheme name -> scopes.
Security = Sequence[Mapping[str, Sequence[str]]]

_PATH_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z_]+))?\}")
#: The schema of a path parameter, by its Starlette convertor.
CONVERTOR_SCHEMAS: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "path": {"type": "string"},
    "int": {"type": "integer", "minimum": 0},
    "float": {"type": "number", "minimum": 0},
    "uuid": {"type": "string", "format": "uuid"},
}
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Resp:
    """A documented response.

    ``type``: the body's msgspec type (JSON unless ``media_type`` says otherwise);
    ``media_type``: defaults to ``application/json`` (``application/problem+json`` for
    :class:`Problem`); ``binary``: the body is bytes of ``media_type`` (``audio/*``);
    for ``text/event-stream`` ``type`` is the JSON ``data`` of each event and
    ``events`` the event names the stream sends; a ``Resp`` with neither type, media
    type nor ``binary`` has no body (204...).
    ``headers``: response header name -> description.
    """

    type: Any = None
    media_type: str | None = None
    description: str = ""
    binary: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)
    events: Sequence[str] = ()

    @property
    def content_type(self) -> str | None:
        """The media type of the body, or None for no body."""
        if self.media_type is not None:
            return self.media_type
        if self.type is Problem:
            return PROBLEM_JSON
        if self.type is not None:
            return "application/json"
        if self.binary:
            return "application/octet-stream"
        return None


@dataclass(frozen=True)
class Link:
    """An OpenAPI link: where values of an operation's response go in a request to
    another operation, e.g. ``Link("get_asset", {"id": "$response.body#/id"})`` on the
    upload. Client generators follow links, and a stateful fuzzer chains requests by
    them (create, then read, change and delete what was created).

    ``parameters``: the target's path or query parameter name -> a runtime expression
    (``$response.body#/id``, ``$request.path.id``) or a constant; ``request_body``: a
    JSON value for the target's body, whose strings may be expressions (``{"asset":
    "$response.body#/id"}``; a fuzzer fills in the rest of the body); ``status``: the
    response it follows (default: the operation's first 2xx); ``name``: default the
    target's operation id.
    """

    operation_id: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    request_body: Any = None
    description: str = ""
    status: int | None = None
    name: str = ""


#: The schema key that :func:`component` marks a schema with.
COMPONENT_KEY = "x-component"


def component(tp: Any, name: str) -> Any:
    """``tp`` documented as the component ``name`` (by ``$ref``), so that the server can
    replace its schema with what only it knows when it serves the document (``schemas=``
    of :func:`~fxhost.api.openapi.document.openapi_document`): e.g. the effect names as
    an ``enum`` of the installed ones. Decoding is unchanged: it checks ``tp``."""
    return Annotated[tp, msgspec.Meta(extra_json_schema={COMPONENT_KEY: name})]


def problem_resp(description: str = "") -> Resp:
    """A :class:`Problem` response, e.g. ``responses={413: problem_resp("Upload too large")}``."""
    return Resp(Problem, PROBLEM_JSON, description)


def openapi_path(path: str) -> str:
    """A Starlette path as OpenAPI writes it: ``/a/{id:int}`` -> ``/a/{id}``."""
    return _PATH_PARAM.sub(r"{\1}", path)


def _path_params(path: str, where: str) -> tuple[tuple[str, str], ...]:
    """The parameters of a Starlette path: (name, convertor)."""
    if not path.startswith("/"):
        raise ValueError(f"{path!r}: a path starts with '/'")
    params = tuple((m[1], m[2] or "str") for m in _PATH_PARAM.finditer(path))
    for name, convertor in params:
        if convertor not in CONVERTOR_SCHEMAS:
            raise ValueError(f"{where}: unknown path convertor {convertor!r} for {{{name}}}")
    names = [name for name, _ in params]
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: a path parameter is repeated")
    return params


def _check_schemable(tp: Any, where: str) -> None:
    """Refuse, at declaration time, a type that msgspec cannot describe (nor decode)."""
    try:
        msgspec.json.schema(tp)
    except TypeError as error:
        raise TypeError(f"{where}: {type_name(tp)} is not a valid msgspec type: {error}") from None


def _check_query(query: type[msgspec.Struct] | None, params: tuple[tuple[str, str], ...], where: str) -> None:
    """A query type is a Struct that msgspec can describe, with no field named like a path parameter."""
    if query is None:
        return
    _check_schemable(query, where)
    multi_valued(query)  # refuses anything but a Struct
    clash = {name for name, _ in params} & {f.encode_name for f in msgspec.structs.fields(query)}
    if clash:
        raise ValueError(f"{where}: {sorted(clash)} are both path and query parameters")


def _set(obj: object, **values: Any) -> None:
    """Normalise fields of a frozen dataclass in its ``__post_init__``."""
    for name, value in values.items():
        object.__setattr__(obj, name, value)


@dataclass(frozen=True)
class Operation:
    """One HTTP operation.

    ``query``: a Struct whose fields are the query parameters; ``body``: the type of a
    JSON body; ``raw_body``: other body media types -> description (binary, or for
    ``multipart/form-data`` a form with a binary ``file``); ``responses``: status ->
    :class:`Resp`, a bare type (JSON of it) or ``None`` (no body); with no 2xx declared,
    ``200`` without a described body is assumed. ``errors``: the statuses documented as
    :class:`Problem` (default: the Api's ``error_statuses``), besides any declared in
    ``responses``. ``security``: this operation's requirements (``[]``: public; default:
    the Api's). ``operation_id`` defaults to the endpoint's name. ``path_types``: path
    parameter name -> a msgspec type (``Annotated[str, Meta(pattern=...)]``) whose schema
    documents it. ``example``: a request body a client could send (required with
    ``body``, and checked against it); ``links``: :class:`Link` from this operation's
    responses to the operations on what it returned.
    """

    method: str
    path: str  # as Starlette reads it: "/api/assets/{asset_id:int}"
    endpoint: Endpoint
    summary: str
    description: str = ""
    tags: Sequence[str] = ()
    query: type[msgspec.Struct] | None = None
    body: Any = None
    raw_body: Mapping[str, str] = field(default_factory=dict)
    responses: Mapping[int, Resp | type | None] = field(default_factory=dict)
    errors: Collection[int] | None = None
    security: Security | None = None
    path_types: Mapping[str, Any] = field(default_factory=dict)
    operation_id: str = ""
    example: Any = None
    links: Sequence[Link] = ()
    #: (name, convertor) of each path parameter, from ``path``.
    path_params: tuple[tuple[str, str], ...] = field(init=False)

    def __post_init__(self) -> None:
        method = self.method.upper()
        where = f"{method} {self.path}"
        if method not in _METHODS:
            raise ValueError(f"{self.path}: unknown HTTP method {self.method!r}")
        params = _path_params(self.path, where)
        for name, tp in self.path_types.items():
            if name not in {n for n, _ in params}:
                raise ValueError(f"{where}: path_types names {name!r}, not a path parameter")
            _check_schemable(tp, where)
        _check_query(self.query, params, where)
        if self.body is not None:
            _check_schemable(self.body, where)
            _check_example(self.body, self.example, where)
        elif self.example is not None:
            raise ValueError(f"{where}: an example, but no JSON body (body=) for it to be an example of")
        responses: dict[int, Resp] = {}
        for status, value in self.responses.items():
            if not 100 <= int(status) <= 599:
                raise ValueError(f"{where}: {status} is not an HTTP status")
            resp = value if isinstance(value, Resp) else Resp(value)
            if resp.type is not None:
                _check_schemable(resp.type, where)
            responses[int(status)] = resp
        links = tuple(_with_status(link, responses, where) for link in self.links)
        _set(
            self,
            method=method,
            tags=tuple(self.tags),
            raw_body=dict(self.raw_body),
            responses=responses,
            errors=None if self.errors is None else tuple(sorted(self.errors)),
            security=None if self.security is None else [dict(s) for s in self.security],
            path_types=dict(self.path_types),
            operation_id=self.operation_id or self.endpoint.__name__,
            path_params=params,
            links=links,
        )

    @property
    def openapi_path(self) -> str:
        return openapi_path(self.path)

    @property
    def parameter_names(self) -> set[str]:
        """Names of its path and query parameters."""
        names = {name for name, _ in self.path_params}
        if self.query is not None:
            names |= {f.encode_name for f in msgspec.structs.fields(self.query)}
        return names


def _check_example(body: Any, example: Any, where: str) -> None:
    """A JSON body comes with an example that its type accepts."""
    if example is None:
        raise ValueError(
            f"{where}: a JSON body needs an example (example=...): what a client, the docs "
            "and a fuzzer start from"
        )
    try:
        msgspec.convert(example, body)
    except msgspec.ValidationError as error:
        raise ValueError(f"{where}: the example is not a valid {type_name(body)}: {error}") from None


def _with_status(link: Link, responses: Mapping[int, Resp], where: str) -> Link:
    """``link`` with the status it follows filled in (the first 2xx) and checked."""
    status = link.status
    if status is None:
        ok = sorted(s for s in responses if 200 <= s < 300)
        if not ok:
            raise ValueError(f"{where}: a link needs a 2xx response to follow (declare one, or status=)")
        status = ok[0]
    elif status not in responses:
        raise ValueError(f"{where}: a link follows status {status}, which is not declared")
    return replace(link, status=status, name=link.name or link.operation_id, parameters=dict(link.parameters))


@dataclass(frozen=True)
class WebSocketOperation:
    """One WebSocket endpoint (``async def ws(websocket)``).

    OpenAPI has no WebSockets: these are listed under the document's ``x-websockets``
    extension (with the schemas of the JSON messages each side sends) and in a section
    of ``info.description``, which the docs pages render.
    """

    path: str
    endpoint: Callable[..., Awaitable[None]]
    summary: str
    description: str = ""
    tags: Sequence[str] = ()
    query: type[msgspec.Struct] | None = None
    client_messages: Sequence[Any] = ()
    server_messages: Sequence[Any] = ()
    operation_id: str = ""
    path_params: tuple[tuple[str, str], ...] = field(init=False)

    def __post_init__(self) -> None:
        where = f"WebSocket {self.path}"
        params = _path_params(self.path, where)
        _check_query(self.query, params, where)
        for tp in (*self.client_messages, *self.server_messages):
            _check_schemable(tp, where)
        _set(
            self,
            tags=tuple(self.tags),
            client_messages=tuple(self.client_messages),
            server_messages=tuple(self.server_messages),
            operation_id=self.operation_id or self.endpoint.__name__,
            path_params=params,
        )


class Api:
    """An HTTP API: its operations and WebSockets, and the Starlette routes made of them.

    ``routes``: the declarations, in the order the document lists them;
    ``error_statuses``: the statuses every operation documents as :class:`Problem` unless
    it says otherwise (``errors=`` on an operation); ``tags``: tag name -> description, in
    the order they are listed; ``security_schemes``/``security``: as in OpenAPI, the
    latter the default requirement of every operation (an operation's ``security=[]``
    makes it public). An Api does not change once made.
    """

    def __init__(
        self,
        title: str,
        version: str,
        description: str = "",
        *,
        routes: Sequence[Operation | WebSocketOperation] = (),
        tags: Mapping[str, str] | None = None,
        error_statuses: Collection[int] = (400, 404, 422, 500),
        security_schemes: Mapping[str, Mapping[str, Any]] | None = None,
        security: Security = (),
    ):
        self.title = title
        self.version = version
        self.description = description
        self.tags: dict[str, str] = dict(tags or {})
        self.error_statuses = tuple(sorted(error_statuses))
        self.security_schemes = dict(security_schemes or {})
        self.security = [dict(s) for s in security]
        self.operations = [route for route in routes if isinstance(route, Operation)]
        self.websockets = [route for route in routes if isinstance(route, WebSocketOperation)]
        ids: dict[str, str] = {}
        for route in routes:
            what = (
                f"{route.method} {route.path}" if isinstance(route, Operation) else f"WebSocket {route.path}"
            )
            if route.operation_id in ids:
                other = ids[route.operation_id]
                raise ValueError(f"{what}: operationId {route.operation_id!r} is already used by {other}")
            ids[route.operation_id] = what
        seen: set[tuple[str, str]] = set()
        for op in self.operations:
            if (op.method, op.openapi_path) in seen:
                raise ValueError(f"{op.method} {op.path} is declared twice")
            seen.add((op.method, op.openapi_path))
        if len({ws.path for ws in self.websockets}) != len(self.websockets):
            raise ValueError("a WebSocket path is declared twice")
        for op in self.operations:
            self._check_links(op)

    def _check_links(self, op: Operation) -> None:
        """Every link of ``op`` names an operation, and parameters and a body it has."""
        where = f"{op.method} {op.path}"
        names: set[tuple[int | None, str]] = set()
        for link in op.links:
            if (link.status, link.name) in names:
                raise ValueError(f"{where}: two links named {link.name!r} on status {link.status}")
            names.add((link.status, link.name))
            try:
                target = self.operation(link.operation_id)
            except KeyError:
                raise ValueError(f"{where}: a link to {link.operation_id!r}, which is no operation") from None
            unknown = set(link.parameters) - target.parameter_names
            if unknown:
                raise ValueError(
                    f"{where}: the link to {link.operation_id!r} sets {sorted(unknown)}, "
                    "which are not its parameters"
                )
            missing = {name for name, _ in target.path_params} - set(link.parameters)
            if missing:
                raise ValueError(
                    f"{where}: the link to {link.operation_id!r} leaves out the path's {sorted(missing)}"
                )
            if link.request_body is not None and target.body is None:
                raise ValueError(
                    f"{where}: the link to {link.operation_id!r} gives a body, which it takes none of"
                )

    def operation(self, operation_id: str) -> Operation:
        """The operation of that id (KeyError if none)."""
        for op in self.operations:
            if op.operation_id == operation_id:
                return op
        raise KeyError(operation_id)

    def errors_of(self, op: Operation) -> tuple[int, ...]:
        """The statuses ``op`` documents as :class:`Problem` by default."""
        return self.error_statuses if op.errors is None else tuple(op.errors)

    def routes(self) -> list[BaseRoute]:
        """Starlette routes of every endpoint, in declaration order: one route per path,
        so that a method the path lacks gets a 405 whose Allow header lists them all."""
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
