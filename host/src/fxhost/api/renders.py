"""Renders: ``POST /api/renders`` answers 202 at once; the render runs in the worker
pool; its status, progress and result are polled or streamed as server-sent events."""

from __future__ import annotations

from typing import Annotated

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from fxhost.api.auth import tenant_of
from fxhost.api.http import JSONResponse, not_found, services
from fxhost.api.openapi import Resp, decode_json_body
from fxhost.api.spec import api
from fxhost.chains import ChainName, ChainSteps
from fxhost.renders import RenderOutput, RenderView


class RenderCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: The id of the asset to render.
    asset: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    #: A chain's name, or the steps themselves.
    chain: ChainName | ChainSteps
    output: RenderOutput = msgspec.field(default_factory=RenderOutput)
    #: Append the chain's tail (the reverb ringing out).
    tail: bool = True


@api.post(
    "/api/renders",
    summary="Start rendering an asset through a chain.",
    tags=["renders"],
    body=RenderCreate,
    responses={202: RenderView},
)
async def create_render(request: Request) -> Response:
    body = decode_json_body(await request.body(), RenderCreate)
    svc = services(request)
    chain = body.chain if isinstance(body.chain, str) else [msgspec.to_builtins(s) for s in body.chain]
    tenant = tenant_of(request)
    row = await svc.renders.submit(body.asset, chain, body.output, body.tail, tenant=tenant)
    view = await svc.renders.view(row.id, tenant)
    return JSONResponse(view, status_code=202, headers={"Location": f"/api/renders/{row.id}"})


@api.get(
    "/api/renders/{id}",
    summary="A render's status, progress (0..1) and result asset or error.",
    tags=["renders"],
    responses={200: RenderView},
)
async def get_render(request: Request) -> Response:
    render_id = request.path_params["id"]
    view = await services(request).renders.view(render_id, tenant_of(request))
    if view is None:
        raise not_found(f"no render with id {render_id!r}")
    return JSONResponse(view)


@api.get(
    "/api/renders/{id}/events",
    summary="The render's progress as server-sent events, until it is done or failed.",
    tags=["renders"],
    responses={
        200: Resp(
            type=RenderView,
            media_type="text/event-stream",
            description="`progress` events, "
            "then one `done` or `failed` event; each `data` is the RenderView as JSON.",
        )
    },
)
async def render_events(request: Request) -> Response:
    render_id = request.path_params["id"]
    svc = services(request)
    tenant = tenant_of(request)
    if await svc.renders.view(render_id, tenant) is None:
        raise not_found(f"no render with id {render_id!r}")

    async def events():
        async for view in svc.renders.watch(render_id, tenant):
            kind = view.status if view.status in ("done", "failed") else "progress"
            yield f"event: {kind}\ndata: {msgspec.json.encode(view).decode()}\n\n"

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
