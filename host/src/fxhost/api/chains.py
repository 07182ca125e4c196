"""Named chains: plugins.toml's (read-only) and those saved through the API."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from fxhost.api.auth import tenant_of
from fxhost.api.http import JSONResponse, not_found, services
from fxhost.api.openapi import ProblemException, decode_json_body, problem_resp
from fxhost.api.spec import api
from fxhost.chains import Chain, ChainName, ChainStep, ChainSteps
from fxhost.chainstore import ChainConflict, ReadOnlyChain


class ChainCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A chain to save: a name and its steps (parameters left out take defaults)."""

    name: ChainName
    steps: ChainSteps
    description: str = ""


class ChainUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    steps: ChainSteps
    description: str = ""


def _steps(steps: list[ChainStep]) -> list[dict[str, Any]]:
    return [msgspec.to_builtins(step) for step in steps]


@api.get(
    "/api/chains",
    summary="Every chain, from plugins.toml and saved.",
    tags=["chains"],
    responses={200: list[Chain]},
)
async def list_chains(request: Request) -> Response:
    return JSONResponse(await services(request).chains.all(tenant_of(request)))


@api.post(
    "/api/chains",
    summary="Save a new chain; every step is validated as plugins.toml is.",
    tags=["chains"],
    body=ChainCreate,
    responses={201: Chain, 409: problem_resp("A chain of that name exists.")},
)
async def create_chain(request: Request) -> Response:
    body = decode_json_body(await request.body(), ChainCreate)
    try:
        chain = await services(request).chains.create(
            body.name, _steps(body.steps), body.description, tenant_of(request)
        )
    except ChainConflict as error:
        raise ProblemException(409, str(error)) from None
    return JSONResponse(chain, status_code=201, headers={"Location": f"/api/chains/{chain.name}"})


@api.get(
    "/api/chains/{name}",
    summary="One chain.",
    tags=["chains"],
    responses={200: Chain},
    path_types={"name": ChainName},
)
async def get_chain(request: Request) -> Response:
    name = request.path_params["name"]
    chain = await services(request).chains.get(name, tenant_of(request))
    if chain is None:
        raise not_found(f"no chain named {name!r}")
    return JSONResponse(chain)


@api.put(
    "/api/chains/{name}",
    summary="Create or replace a saved chain.",
    tags=["chains"],
    body=ChainUpdate,
    responses={200: Chain, 201: Chain, 409: problem_resp("The chain comes from plugins.toml.")},
    path_types={"name": ChainName},
)
async def put_chain(request: Request) -> Response:
    body = decode_json_body(await request.body(), ChainUpdate)
    try:
        chain, created = await services(request).chains.put(
            request.path_params["name"], _steps(body.steps), body.description, tenant_of(request)
        )
    except ReadOnlyChain as error:
        raise ProblemException(409, str(error)) from None
    return JSONResponse(chain, status_code=201 if created else 200)


@api.delete(
    "/api/chains/{name}",
    summary="Delete a saved chain.",
    tags=["chains"],
    responses={204: None, 409: problem_resp("The chain comes from plugins.toml.")},
    path_types={"name": ChainName},
)
async def delete_chain(request: Request) -> Response:
    name = request.path_params["name"]
    try:
        deleted = await services(request).chains.delete(name, tenant_of(request))
    except ReadOnlyChain as error:
        raise ProblemException(409, str(error)) from None
    if not deleted:
        raise not_found(f"no chain named {name!r}")
    return Response(status_code=204)
