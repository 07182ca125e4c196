"""``POST /api/process``: audio in, processed audio out, in one request.

curl --data-binary @in.wav 'localhost:8000/api/process?chain=hall' -o out.wav
curl --data-binary @in.wav 'localhost:8000/api/process?effect=reverb&room_size=0.8' -o out.wav
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import msgspec
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from fxhost.api.auth import tenant_of
from fxhost.api.openapi.declare import Operation, Resp, problem_resp
from fxhost.api.openapi.decode import decode_query
from fxhost.api.openapi.problems import FieldProblem, ValidationProblem
from fxhost.api.responses import MappedFileResponse
from fxhost.api.routes.assets import AUDIO_BODY
from fxhost.api.state import services
from fxhost.api.uploads import receive_audio
from fxhost.api.vocabulary import ChainRef, EffectName, OutputFormatName, SubtypeName
from fxhost.audio.files import probe
from fxhost.audio.formats import (
    CeilingDbfs,
    RenderOutput,
    SampleRate,
    checked_output,
    format_name_of,
    output_format_named,
)
from fxhost.catalog.chains import ChainSpec, EffectRef


class ProcessQuery(msgspec.Struct, kw_only=True):
    """Which chain (or single effect) and the output; with ``effect``, the effect's
    parameters are further query fields (``&room_size=0.8``)."""

    chain: Annotated[ChainRef | None, msgspec.Meta(description="A chain by name (or effect=).")] = None
    effect: Annotated[
        EffectName | None, msgspec.Meta(description="A single effect instead of a chain (or chain=).")
    ] = None
    format: Annotated[
        OutputFormatName | None, msgspec.Meta(description="Output format; default: the input's.")
    ] = None
    sample_rate: Annotated[SampleRate, msgspec.Meta(description="Output rate.")] | None = None
    subtype: Annotated[
        SubtypeName | None,
        msgspec.Meta(
            description="Output sample type; default: the input's where the format has it, else "
            "PCM_24 for a float or 32-bit input where the format has that, else the format's own."
        ),
    ] = None
    tail: Annotated[bool, msgspec.Meta(description="Append the chain's tail.")] = True
    ceiling_dbfs: CeilingDbfs | None = None


async def process_audio(request: Request) -> Response:
    svc = services(request)
    query = decode_query(request, ProcessQuery)
    known = set(ProcessQuery.__struct_fields__)
    extra = {k: v for k, v in request.query_params.items() if k not in known}
    if (query.chain is None) == (query.effect is None):
        raise ValidationProblem([FieldProblem("chain", "give exactly one of chain=NAME or effect=NAME")])
    spec: ChainSpec
    if query.chain is not None:
        if extra:
            problem = FieldProblem(
                next(iter(extra)), "unknown query field; parameters go with effect=, not chain="
            )
            raise ValidationProblem([problem])
        spec = query.chain
    else:
        spec = EffectRef(query.effect or "", extra, query=True)
    resolved = await svc.chains.resolve(spec, "chain", tenant=tenant_of(request))

    store = svc.store
    received = await receive_audio(request, store, keep=False)
    target = store.temp_path("render")
    try:
        info = await asyncio.to_thread(probe, received.temp, display_name="body")
        fmt_name = (query.format or format_name_of(info.format, info.subtype) or "wav").lower()
        requested = RenderOutput(
            format=fmt_name,
            sample_rate=query.sample_rate,
            subtype=query.subtype,
            ceiling_dbfs=query.ceiling_dbfs,
        )
        output = checked_output(requested, info.sample_rate, info.channels, info.subtype, path="")
        # In a worker process, within the render time limit: a hung effect is killed.
        result = await svc.renders.render_now(received.temp, target, resolved, output, tail=query.tail)
    except BaseException:
        _remove(received.temp, target)
        raise
    written = output_format_named(output.format)
    return MappedFileResponse(
        target,
        media_type=written.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="processed{written.extension}"',
            **level_headers(result.peak_dbfs, result.clipped_samples),
        },
        # Once the output is sent, in a thread: freeing 10 MB of page cache takes a while.
        background=BackgroundTask(_remove, received.temp, target),
    )


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def level_headers(peak_dbfs: float | None, clipped_samples: int) -> dict[str, str]:
    """The output's levels as response headers (see :class:`~fxhost.engine.offline.OutputLevels`)."""
    peak = "-inf" if peak_dbfs is None else f"{peak_dbfs:.2f}"
    return {PEAK_HEADER: peak, CLIPPED_HEADER: str(clipped_samples)}


PEAK_HEADER = "X-Peak-Dbfs"
CLIPPED_HEADER = "X-Clipped-Samples"
LEVEL_HEADERS = {
    PEAK_HEADER: "The output's sample peak in dBFS, e.g. `-0.42` (`-inf` for digital silence), "
    "measured on the samples written, after resampling and any ceiling; above 0 means "
    "samples beyond full scale.",
    CLIPPED_HEADER: "Output samples (each channel's) at or beyond full scale, |x| >= 1.0: clipped "
    "in an integer format, over full scale in a float one. 0 with `ceiling_dbfs`.",
}


ROUTES = [
    Operation(
        "POST",
        "/api/process",
        process_audio,
        summary="Process audio through a chain or an effect and get the result back.",
        tags=["process"],
        query=ProcessQuery,
        raw_body=AUDIO_BODY,
        responses={
            200: Resp(
                media_type="audio/*",
                binary=True,
                description="The processed audio, with its levels in headers.",
                headers=LEVEL_HEADERS,
            ),
            413: problem_resp("The body is larger than the upload limit."),
            415: problem_resp("The body is not audio that can be decoded."),
            502: problem_resp("An effect failed (raised, or returned bad audio); the detail names it."),
            504: problem_resp("An effect ran past the render time limit; the detail names it."),
        },
    ),
]
