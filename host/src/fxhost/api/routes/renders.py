"""Renders: ``POST /api/renders`` answers 202 at once; the render runs in the worker
pool (or on a render node, with the postgres render queue); its status, progress and
result are polled or streamed as server-sent events; ``POST /api/renders/{id}/cancel``
stops it."""

from __future__ import annotations

from typing import Annotated

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from fxhost.api.auth import tenant_of
from fxhost.api.links import LINK_REFUSED, LINK_SECURITY
from fxhost.api.openapi.declare import Link, Operation, Resp, problem_resp
from fxhost.api.openapi.decode import decode_json_body
from fxhost.api.openapi.problems import ProblemException, not_found
from fxhost.api.responses import JSONResponse
from fxhost.api.state import services
from fxhost.api.vocabulary import ChainRef, InputChainSteps, RenderId
from fxhost.audio.formats import RenderOutput
from fxhost.catalog.chains import RecordedChain
from fxhost.store.renders import FINISHED, NoSuchRender, RenderFinished, RenderView

TAGS = ["renders"]


class RenderCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: The id of the asset to render.
    asset: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    #: A chain's name, the steps themselves, or a render's `recorded` chain (refused if an
    #: effect's or plugin's version is no longer the one recorded).
    chain: ChainRef | InputChainSteps | RecordedChain
    output: RenderOutput = msgspec.field(default_factory=RenderOutput)
    #: Append the chain's tail (the reverb ringing out).
    tail: bool = True


async def create_render(request: Request) -> Response:
    body = decode_json_body(await request.body(), RenderCreate)
    svc = services(request)
    tenant = tenant_of(request)
    row = await svc.renders.submit(body.asset, body.chain, body.output, body.tail, tenant=tenant)
    view = await svc.renders.view(row.id, tenant)
    return JSONResponse(view, status_code=202, headers={"Location": f"/api/renders/{row.id}"})


async def get_render(request: Request) -> Response:
    render_id = request.path_params["id"]
    view = await services(request).renders.view(render_id, tenant_of(request))
    if view is None:
        raise not_found(f"no render with id {render_id!r}")
    return JSONResponse(view)


async def render_events(request: Request) -> Response:
    render_id = request.path_params["id"]
    svc = services(request)
    tenant = tenant_of(request)
    if await svc.renders.view(render_id, tenant) is None:
        raise not_found(f"no render with id {render_id!r}")

    async def events():
        async for view in svc.renders.watch(render_id, tenant):
            kind = view.status if view.status in FINISHED else "progress"
            yield f"event: {kind}\ndata: {msgspec.json.encode(view).decode()}\n\n"

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def cancel_render(request: Request) -> Response:
    render_id = request.path_params["id"]
    try:
        view = await services(request).renders.cancel(render_id, tenant_of(request))
    except NoSuchRender:
        raise not_found(f"no render with id {render_id!r}") from None
    except RenderFinished as error:
        raise ProblemException(409, str(error)) from None
    return JSONResponse(view)


ROUTES = [
    Operation(
        "POST",
        "/api/renders",
        create_render,
        summary="Start rendering an asset through a chain (by name, as steps, or a render's `recorded` "
        "chain to render the same again); with FXHOST_RENDER_CACHE an earlier render's result may be reused "
        "(`cached_from`).",
        tags=TAGS,
        body=RenderCreate,
        example={
            "asset": "5f2b1c0e9a7d4e3f8b6a2c1d0e9f8a7b",
            "chain": "hall",
            "output": {"format": "flac", "subtype": "PCM_24"},
        },
        responses={202: RenderView},
        links=[
            Link(op, {"id": "$response.body#/id"}) for op in ("get_render", "render_events", "cancel_render")
        ],
    ),
    Operation(
        "GET",
        "/api/renders/{id}",
        get_render,
        summary="A render's status, progress (0..1) and result asset or error.",
        tags=TAGS,
        responses={200: RenderView},
        path_types={"id": RenderId},
    ),
    Operation(
        "GET",
        "/api/renders/{id}/events",
        render_events,
        summary="The render's progress as server-sent events, until it is done, failed or cancelled.",
        tags=TAGS,
        security=LINK_SECURITY,
        path_types={"id": RenderId},
        responses={
            403: LINK_REFUSED,
            200: Resp(
                type=RenderView,
                media_type="text/event-stream",
                events=("progress", *FINISHED),
                description="`progress` events, then one `done`, `failed` or `cancelled` event; "
                "each `data` is the RenderView as JSON.",
            ),
        },
    ),
    Operation(
        "POST",
        "/api/renders/{id}/cancel",
        cancel_render,
        summary="Cancel a queued or running render: it is `cancelled` at once, and stopped wherever it "
        "runs (its worker process is killed) within a second. Nothing of it is kept.",
        tags=TAGS,
        path_types={"id": RenderId},
        responses={
            200: RenderView,
            409: problem_resp("The render has ended already (done, failed or cancelled)."),
        },
    ),
]
