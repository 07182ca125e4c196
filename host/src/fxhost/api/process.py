"""``POST /api/process``: audio in, processed audio out, in one request.

curl --data-binary @in.wav 'localhost:8000/api/process?chain=hall' -o out.wav
curl --data-binary @in.wav 'localhost:8000/api/process?effect=reverb&room_size=0.8' -o out.wav
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import msgspec
from fxhost_sdk import FieldError, convert
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from fxhost import audiofile
from fxhost.api.assets import AUDIO_BODY
from fxhost.api.auth import tenant_of
from fxhost.api.http import services
from fxhost.api.openapi import FieldProblem, Resp, ValidationProblem, decode_query, problem_resp
from fxhost.api.spec import api
from fxhost.api.uploads import receive_audio
from fxhost.renders import RenderOutput, keeping_source_subtype, render_to_file


class ProcessQuery(msgspec.Struct, kw_only=True):
    """Which chain (or single effect) and the output; with ``effect``, the effect's
    parameters are further query fields (``&room_size=0.8``)."""

    chain: Annotated[str | None, msgspec.Meta(description="A chain by name.")] = None
    effect: Annotated[str | None, msgspec.Meta(description="A single effect instead of a chain.")] = None
    format: Annotated[str | None, msgspec.Meta(description="Output format; default: the input's.")] = None
    sample_rate: Annotated[int, msgspec.Meta(ge=1000, le=768000, description="Output rate.")] | None = None
    subtype: Annotated[str | None, msgspec.Meta(description="Output sample type; default: the input's.")] = (
        None
    )
    tail: Annotated[bool, msgspec.Meta(description="Append the chain's tail.")] = True


@api.post(
    "/api/process",
    summary="Process audio through a chain or an effect and get the result back.",
    tags=["process"],
    query=ProcessQuery,
    raw_body=AUDIO_BODY,
    responses={
        200: Resp(media_type="audio/*", binary=True, description="The processed audio."),
        413: problem_resp("The body is larger than the upload limit."),
        415: problem_resp("The body is not audio that can be decoded."),
        502: problem_resp("An effect failed (raised, or returned bad audio); the detail names it."),
        504: problem_resp("An effect ran past the render time limit; the detail names it."),
    },
)
async def process_audio(request: Request) -> Response:
    svc = services(request)
    query = decode_query(request, ProcessQuery)
    known = set(ProcessQuery.__struct_fields__)
    extra = {k: v for k, v in request.query_params.items() if k not in known}
    if (query.chain is None) == (query.effect is None):
        raise ValidationProblem([FieldProblem("chain", "give exactly one of chain=NAME or effect=NAME")])
    if query.chain is not None:
        if extra:
            raise ValidationProblem(
                [
                    FieldProblem(
                        next(iter(extra)), "unknown query field; parameters go with effect=, not chain="
                    )
                ]
            )
        resolved = await svc.chains.resolve(query.chain, "chain", tenant=tenant_of(request))
    else:
        info = svc.runtime.registry.effects.get(query.effect or "")
        if info is None:
            names = ", ".join(sorted(svc.runtime.registry.effects))
            raise ValidationProblem(
                [FieldProblem("effect", f"unknown effect {query.effect!r}; available: {names}")]
            )
        try:
            params = convert(extra, info.cls.Params, strict=False)
        except FieldError as error:
            raise ValidationProblem([FieldProblem(error.path, error.message)]) from None
        resolved = await svc.chains.resolve(
            [{"effect": info.name, "params": msgspec.to_builtins(params)}], "", tenant=tenant_of(request)
        )

    store = svc.store
    received = await receive_audio(request, store, keep=False)
    target = store.temp_path("render")
    try:
        info = await asyncio.to_thread(audiofile.probe, received.temp, display_name="body")
        fmt_name = (query.format or audiofile.format_name_of(info.format, info.subtype) or "wav").lower()
        requested = RenderOutput(format=fmt_name, sample_rate=query.sample_rate, subtype=query.subtype)
        output = keeping_source_subtype(requested, info.subtype, info.sample_rate, info.channels)
        # In a worker process, within the render time limit: a hung effect is killed.
        await svc.renders.pool.run(
            render_to_file,
            received.temp,
            "body",
            resolved.steps,
            target,
            output,
            tail=query.tail,
            max_tail_seconds=svc.settings.max_tail_seconds,
            assets=resolved.assets,
        )
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    finally:
        received.temp.unlink(missing_ok=True)
    spec = audiofile.output_format_named(output.format)
    return FileResponse(
        target,
        media_type=spec.media_type,
        filename=f"processed{spec.extension}",
        background=BackgroundTask(target.unlink, missing_ok=True),
    )
