"""The OpenAPI 3.1 document of an :class:`~fxhost.api.openapi.declare.Api`, built from its
declarations: every Struct schema under ``components/schemas``, every operation's
errors as ``application/problem+json``, request examples, links, WebSockets under
``x-websockets``.

A server passes ``schemas``: the components that only it knows, replacing those that
the declarations marked with :func:`~fxhost.api.openapi.declare.component` (the effects
it loaded, the chains it was configured with), so that the document describes the
server that serves it. Built once per Api, ``secured`` and ``schemas``, then served as is.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import msgspec

from fxhost.api.openapi.declare import (
    COMPONENT_KEY,
    CONVERTOR_SCHEMAS,
    Api,
    Link,
    Operation,
    Resp,
    WebSocketOperation,
    openapi_path,
    problem_resp,
)
from fxhost.api.openapi.decode import type_name
from fxhost.api.openapi.problems import Problem

REF_TEMPLATE = "#/components/schemas/{name}"

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


def openapi_document(
    api: Api, secured: bool = True, schemas: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The OpenAPI 3.1.0 document of ``api`` (built once). ``secured`` False leaves out the
    security requirements and their 401s, for a server that runs without credentials:
    the document says what the server does. ``schemas``: component name -> schema, added
    to the components or replacing one (a :func:`~fxhost.api.openapi.declare.component`).

    The dict is shared: do not modify it.
    """
    return _document(api, secured, _frozen(schemas))


def openapi_json(api: Api, secured: bool = True, schemas: Mapping[str, Any] | None = None) -> bytes:
    """:func:`openapi_document` encoded as JSON (built once)."""
    return _json(api, secured, _frozen(schemas))


def _frozen(schemas: Mapping[str, Any] | None) -> bytes:
    """``schemas`` as a cache key (a server's are made once; equal ones share a document)."""
    return msgspec.json.encode(dict(schemas or {}), order="sorted")


@functools.lru_cache(maxsize=16)
def _document(api: Api, secured: bool, schemas: bytes) -> dict[str, Any]:
    return _Builder(api, secured, msgspec.json.decode(schemas)).build()


@functools.lru_cache(maxsize=16)
def _json(api: Api, secured: bool, schemas: bytes) -> bytes:
    return msgspec.json.encode(_document(api, secured, schemas))


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


def _hoist(node: Any, components: dict[str, Any]) -> Any:
    """``node`` with each schema that :func:`~fxhost.api.openapi.declare.component`
    marked replaced by a ``$ref`` to its component (which keeps the schema; the place that
    uses it keeps its own description and default)."""
    if isinstance(node, list):
        return [_hoist(item, components) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _hoist(value, components) for key, value in node.items()}
    name = node.pop(COMPONENT_KEY, None)
    if name is None:
        return node
    local = {key: node.pop(key) for key in _LOCAL_KEYS if key in node}
    if components.setdefault(name, node) != node:
        raise ValueError(f"component {name!r} is declared with two different schemas")
    return {"$ref": REF_TEMPLATE.format(name=name), **local}


#: What stays beside a component's ``$ref``: about that use of it, not about the type.
_LOCAL_KEYS = ("title", "description", "default", "examples")


class _Builder:
    """Builds the OpenAPI document of an :class:`Api`."""

    def __init__(self, api: Api, secured: bool = True, schemas: Mapping[str, Any] | None = None):
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
        found, components = msgspec.json.schema_components(unique, ref_template=REF_TEMPLATE)
        for component in components.values():  # docstrings, as Markdown without their indent
            if isinstance(component.get("description"), str):
                component["description"] = inspect.cleandoc(component["description"])
        hoisted: dict[str, Any] = {}
        found = _hoist(found, hoisted)
        self.components = {**_hoist(components, hoisted), **hoisted, **(schemas or {})}
        self.schemas = list(zip(unique, found, strict=True))

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
                "schema": self.schema(types[name]) if name in types else dict(CONVERTOR_SCHEMAS[convertor]),
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
            content["application/json"] = {"schema": self.schema(op.body), "example": op.example}
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
                # The file part is of the media types the body takes raw ("audio/*"...).
                raw = [m for m in op.raw_body if m != media_type]
                if raw:
                    content[media_type]["encoding"] = {"file": {"contentType": ", ".join(raw)}}
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
        media_type = resp.content_type
        if media_type is None:
            return out
        media: dict[str, Any]
        if resp.binary:
            media = {"schema": {"type": "string", "format": "binary"}}
        elif media_type == "text/event-stream":
            media = {"schema": self.event_schema(resp)}
        elif resp.type is not None:
            media = {"schema": self.schema(resp.type)}
        elif media_type.endswith("json"):
            media = {"schema": {}}
        else:
            media = {"schema": {"type": "string"}}
        out["content"] = {media_type: media}
        return out

    def event_schema(self, resp: Resp) -> dict[str, Any]:
        """One server-sent event, as OpenAPI before 3.2 describes an event stream (3.2
        calls it ``itemSchema``): its ``event`` name and its ``data``, a string that holds
        JSON of ``resp.type``."""
        data: dict[str, Any] = {"type": "string"}
        if resp.type is not None:
            data["description"] = f"JSON: a {type_name(resp.type)}."
            data |= {"contentMediaType": "application/json", "contentSchema": self.schema(resp.type)}
        event: dict[str, Any] = {"type": "string"}
        if resp.events:
            event["enum"] = list(resp.events)
        return {
            "type": "object",
            "description": "One server-sent event (the body is a stream of them).",
            "properties": {"event": event, "data": data, "id": {"type": "string"}},
            "required": ["event", "data"],
        }

    def links(self, links: Sequence[Link]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for link in links:
            target = self.api.operation(link.operation_id)
            item: dict[str, Any] = {"operationId": link.operation_id}
            if link.parameters:
                item["parameters"] = dict(link.parameters)
            if link.request_body is not None:
                item["requestBody"] = link.request_body
            item["description"] = link.description or f"{target.summary}"
            out[link.name] = item
        return out

    def responses(self, op: Operation) -> dict[str, Any]:
        declared: dict[int, Resp] = dict(op.responses)  # type: ignore[arg-type] - normalised
        if not any(200 <= s < 400 for s in declared):
            declared[200] = Resp(description="OK")
        for status in self.api.errors_of(op):
            declared.setdefault(status, problem_resp(_ERROR_DESCRIPTIONS.get(status, "")))
        if self.secured and (op.security if op.security is not None else self.api.security):
            declared.setdefault(401, problem_resp(_ERROR_DESCRIPTIONS[401]))
        out = {str(s): self.response(s, declared[s]) for s in sorted(declared)}
        for status in sorted({link.status for link in op.links if link.status is not None}):
            out[str(status)]["links"] = self.links([link for link in op.links if link.status == status])
        return out

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
            "path": openapi_path(ws.path),
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
            path = openapi_path(ws.path)
            lines.append(f"### `{path}`: {ws.summary}")
            lines.append("")
            if ws.description:
                lines += [ws.description.strip(), ""]
            for label, types in (
                ("Client messages", ws.client_messages),
                ("Server messages", ws.server_messages),
            ):
                if types:
                    names = ", ".join(f"`{type_name(tp)}`" for tp in types)
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
        names = list(api.tags) + [t for t in used_tags if t not in api.tags]
        if names:
            doc["tags"] = [
                {"name": n, "description": api.tags[n]} if api.tags.get(n) else {"name": n} for n in names
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
                if name not in self.components:
                    raise KeyError(f"the document refers to the component {name!r}, which none defines")
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
