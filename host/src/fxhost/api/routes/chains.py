"""Named chains: plugins.toml's (read-only) and those saved through the API."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from fxhost.api.auth import tenant_of
from fxhost.api.openapi.declare import Link, Operation, problem_resp
from fxhost.api.openapi.decode import decode_json_body
from fxhost.api.openapi.problems import ProblemException, not_found
from fxhost.api.responses import JSONResponse
from fxhost.api.state import services
from fxhost.api.vocabulary import InputChainSteps
from fxhost.catalog.chains import Chain, ChainName, ChainStep, MaxLatency
from fxhost.store.chains import ChainConflict, ReadOnlyChain

TAGS = ["chains"]
#: A chain's description: any text but NUL, which PostgreSQL cannot store.
Description = Annotated[str, msgspec.Meta(pattern=r"^[^\x00]*$", max_length=10_000)]


class ChainCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A chain to save: a name and its steps (parameters left out take defaults)."""

    name: ChainName
    steps: InputChainSteps
    description: Description = ""
    max_latency_ms: MaxLatency | None = None


class ChainUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    steps: InputChainSteps
    description: Description = ""
    max_latency_ms: MaxLatency | None = None


CREATE_EXAMPLE = {
    "name": "big-hall",
    "steps": [{"effect": "reverb", "preset": "hall", "params": {"wet_level": 0.4}}],
    "description": "The hall preset, wetter.",
    "max_latency_ms": 20,
}
UPDATE_EXAMPLE = {
    "steps": [
        {"effect": "feedback_delay", "params": {"delay_seconds": 0.3, "feedback": 0.4, "mix": 0.3}},
        {"effect": "reverb", "params": {"room_size": 0.6}},
    ],
    "description": "Echoes into a room.",
}
#: What a saved chain's name leads to.
NAME_LINKS = [Link(op, {"name": "$response.body#/name"}) for op in ("get_chain", "put_chain", "delete_chain")]


def _steps(steps: list[ChainStep]) -> list[dict[str, Any]]:
    return [msgspec.to_builtins(step) for step in steps]


async def list_chains(request: Request) -> Response:
    return JSONResponse(await services(request).chains.all(tenant_of(request)))


async def create_chain(request: Request) -> Response:
    body = decode_json_body(await request.body(), ChainCreate)
    try:
        chain = await services(request).chains.create(
            body.name, _steps(body.steps), body.description, tenant_of(request), body.max_latency_ms
        )
    except ChainConflict as error:
        raise ProblemException(409, str(error)) from None
    return JSONResponse(chain, status_code=201, headers={"Location": f"/api/chains/{chain.name}"})


async def get_chain(request: Request) -> Response:
    name = request.path_params["name"]
    chain = await services(request).chains.get(name, tenant_of(request))
    if chain is None:
        raise not_found(f"no chain named {name!r}")
    return JSONResponse(chain)


async def put_chain(request: Request) -> Response:
    body = decode_json_body(await request.body(), ChainUpdate)
    try:
        chain, created = await services(request).chains.put(
            request.path_params["name"],
            _steps(body.steps),
            body.description,
            tenant_of(request),
            body.max_latency_ms,
        )
    except ReadOnlyChain as error:
        raise ProblemException(409, str(error)) from None
    return JSONResponse(chain, status_code=201 if created else 200)


async def delete_chain(request: Request) -> Response:
    name = request.path_params["name"]
    try:
        deleted = await services(request).chains.delete(name, tenant_of(request))
    except ReadOnlyChain as error:
        raise ProblemException(409, str(error)) from None
    if not deleted:
        raise not_found(f"no chain named {name!r}")
    return Response(status_code=204)


ROUTES = [
    Operation(
        "GET",
        "/api/chains",
        list_chains,
        summary="Every chain, from plugins.toml and saved, each with its latency at the default sample rate.",
        tags=TAGS,
        responses={200: list[Chain]},
    ),
    Operation(
        "POST",
        "/api/chains",
        create_chain,
        summary="Save a new chain; every step is validated as plugins.toml is, and a chain over its "
        "`max_latency_ms` is refused (422 at `max_latency_ms`).",
        tags=TAGS,
        body=ChainCreate,
        example=CREATE_EXAMPLE,
        responses={201: Chain, 409: problem_resp("A chain of that name exists.")},
        links=NAME_LINKS,
    ),
    Operation(
        "GET",
        "/api/chains/{name}",
        get_chain,
        summary="One chain.",
        tags=TAGS,
        responses={200: Chain},
        path_types={"name": ChainName},
    ),
    Operation(
        "PUT",
        "/api/chains/{name}",
        put_chain,
        summary="Create or replace a saved chain.",
        tags=TAGS,
        body=ChainUpdate,
        example=UPDATE_EXAMPLE,
        responses={200: Chain, 201: Chain, 409: problem_resp("The chain comes from plugins.toml.")},
        path_types={"name": ChainName},
        links=[
            Link(op, {"name": "$request.path.name"}, status=status)
            for status in (200, 201)
            for op in ("get_chain", "delete_chain")
        ],
    ),
    Operation(
        "DELETE",
        "/api/chains/{name}",
        delete_chain,
        summary="Delete a saved chain.",
        tags=TAGS,
        responses={204: None, 409: problem_resp("The chain comes from plugins.toml.")},
        path_types={"name": ChainName},
    ),
]
