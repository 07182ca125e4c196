"""Assets: upload, list (from the AVL index, with cursor pages), fetch, transcode, delete."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated
from urllib.parse import quote

import msgspec
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from fxhost import audiofile
from fxhost.api.auth import tenant_of
from fxhost.api.http import JSONResponse, not_found, services
from fxhost.api.openapi import (
    FieldProblem,
    ProblemException,
    Resp,
    ValidationProblem,
    decode_query,
    problem_resp,
)
from fxhost.api.spec import api
from fxhost.api.uploads import receive_audio
from fxhost.assets import AssetPage, AssetSummary, clean_name, file_name_of, summary_of
from fxhost.db.models import Asset
from fxhost.renders import RenderOutput, keeping_source_subtype

AUDIO_BODY = {
    "audio/*": "The audio file as the body (any format libsndfile or PyAV reads; recognised by content).",
    "application/octet-stream": "The same, without a media type.",
    "multipart/form-data": "A form with the audio in a 'file' part (and optionally a 'name' field).",
}


class UploadQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: The asset's name (default: the multipart file name).
    name: Annotated[str, msgspec.Meta(description="The asset's name.", max_length=255)] | None = None


class ListQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    prefix: Annotated[str, msgspec.Meta(description="Only names starting with this.", max_length=255)] = ""
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000, description="Page size.")] = 50
    cursor: Annotated[str | None, msgspec.Meta(description="next_cursor of the previous page.")] = None


class AudioQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    format: Annotated[
        str | None,
        msgspec.Meta(description="Output format (wav, flac, ogg, opus, mp3, aiff, ...); default: as stored."),
    ] = None
    sample_rate: (
        Annotated[int, msgspec.Meta(ge=1000, le=768000, description="Resample to this rate (soxr).")] | None
    ) = None
    subtype: Annotated[str | None, msgspec.Meta(description="Sample type, e.g. PCM_16, PCM_24, FLOAT.")] = (
        None
    )


@api.post(
    "/api/assets",
    summary="Upload audio, stored exactly as received.",
    tags=["assets"],
    query=UploadQuery,
    raw_body=AUDIO_BODY,
    responses={
        201: AssetSummary,
        413: problem_resp("The body is larger than the upload limit (refused as it streams in)."),
        415: problem_resp("The body is not audio that can be decoded."),
    },
)
async def upload_asset(request: Request) -> Response:
    query = decode_query(request, UploadQuery)
    store = services(request).store
    received = await receive_audio(request, store)
    name = query.name or received.fields.get("name") or file_name_of(received.filename or "")
    try:
        if not name:
            raise ValidationProblem([FieldProblem("name", "give the asset a name: ?name=take1.wav")])
        try:
            name = clean_name(name)
        except ValueError as error:
            raise ValidationProblem([FieldProblem("name", str(error))]) from None
    except BaseException:
        received.temp.unlink(missing_ok=True)
        raise
    summary = await store.add(
        received.temp, name, tenant=tenant_of(request), size=received.size, sha256=received.sha256
    )
    return JSONResponse(summary, status_code=201, headers={"Location": f"/api/assets/{summary.id}"})


@api.get(
    "/api/assets",
    summary="Assets ordered by name, in cursor pages, from the in-memory AVL index.",
    tags=["assets"],
    query=ListQuery,
    responses={200: AssetPage},
)
async def list_assets(request: Request) -> Response:
    query = decode_query(request, ListQuery)
    page = await services(request).store.page(tenant_of(request), query.prefix, query.limit, query.cursor)
    return JSONResponse(page)


async def asset_or_404(request: Request) -> Asset:
    """The caller's asset named by the path's ``{id}``, or a 404 problem."""
    asset_id = request.path_params["id"]
    row = await services(request).store.get(asset_id, tenant_of(request))
    if row is None:
        raise not_found(f"no asset with id {asset_id!r}")
    return row


@api.get(
    "/api/assets/{id}", summary="One asset's description.", tags=["assets"], responses={200: AssetSummary}
)
async def get_asset(request: Request) -> Response:
    return JSONResponse(summary_of(await asset_or_404(request)))


@api.get(
    "/api/assets/{id}/audio",
    summary="The audio: as stored, or transcoded and resampled on the fly. Supports Range.",
    tags=["assets"],
    query=AudioQuery,
    responses={
        200: Resp(media_type="audio/*", binary=True, description="The audio."),
        206: Resp(media_type="audio/*", binary=True, description="A byte range of it."),
        416: problem_resp("The range is outside the file."),
    },
)
async def get_asset_audio(request: Request) -> Response:
    query = decode_query(request, AudioQuery)
    svc = services(request)
    row = await asset_or_404(request)
    stem = row.name.rsplit(".", 1)[0] or "audio"
    if query.format is None and query.sample_rate is None and query.subtype is None:
        media_type = audiofile.media_type_of(row.format, row.subtype)
        return FileResponse(
            svc.store.path_of(row),
            media_type=media_type,
            headers=_disposition(row.name),
        )
    fmt = (query.format or audiofile.format_name_of(row.format, row.subtype) or "wav").lower()
    rate = query.sample_rate or row.sample_rate
    requested = RenderOutput(format=fmt, sample_rate=query.sample_rate, subtype=query.subtype)
    output = keeping_source_subtype(requested, row.subtype, row.sample_rate, row.channels)
    spec = audiofile.output_format_named(output.format)

    def transcode() -> bytes:
        audio = svc.store.decoded(row)
        if rate != row.sample_rate:
            audio = audiofile.resample(audio, row.sample_rate, rate)
        return audiofile.encode(audio, rate, spec.name, output.subtype)

    data = await asyncio.to_thread(transcode)
    return bytes_response(request, data, spec.media_type, f"{stem}{spec.extension}")


def _disposition(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f"inline; filename*=UTF-8''{quote(filename)}"}


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def bytes_response(request: Request, data: bytes, media_type: str, filename: str) -> Response:
    """``data`` with single-range support (RFC 9110): 206 for ``bytes=a-b``, ``bytes=a-``
    and ``bytes=-n``; 416 when unsatisfiable; the whole body for anything else."""
    headers = {"Accept-Ranges": "bytes", **_disposition(filename)}
    size = len(data)
    match = _RANGE.match(request.headers.get("range", "").strip())
    if not match or (not match[1] and not match[2]):
        return Response(data, media_type=media_type, headers=headers)
    if match[1]:
        start = int(match[1])
        end = min(int(match[2]), size - 1) if match[2] else size - 1
    else:
        start, end = max(0, size - int(match[2])), size - 1
    if start >= size or start > end:
        headers["Content-Range"] = f"bytes */{size}"
        raise ProblemException(416, f"the range {request.headers['range']!r} is outside the {size} bytes")
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return Response(data[start : end + 1], status_code=206, media_type=media_type, headers=headers)


@api.delete(
    "/api/assets/{id}",
    summary="Delete an asset: its row and its file.",
    tags=["assets"],
    responses={204: None},
)
async def delete_asset(request: Request) -> Response:
    asset_id = request.path_params["id"]
    if not await services(request).store.delete(asset_id, tenant_of(request)):
        raise not_found(f"no asset with id {asset_id!r}")
    return Response(status_code=204)
