"""Assets: upload, list (from the AVL index, with cursor pages), fetch, transcode, delete."""

from __future__ import annotations

import os
from typing import Annotated, BinaryIO

import msgspec
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response

from fxhost.api.auth import tenant_of
from fxhost.api.links import LINK_REFUSED, LINK_SECURITY
from fxhost.api.openapi.declare import Link, Operation, Resp, problem_resp
from fxhost.api.openapi.decode import decode_query
from fxhost.api.openapi.problems import FieldProblem, ValidationProblem, not_found
from fxhost.api.responses import JSONResponse, file_response, inline, object_response, stem_of
from fxhost.api.state import services
from fxhost.api.uploads import receive_audio
from fxhost.api.vocabulary import AssetId, OutputFormatName, SubtypeName
from fxhost.audio.files import AudioWriter
from fxhost.audio.formats import (
    RenderOutput,
    SampleRate,
    checked_output,
    format_name_of,
    media_type_of,
    output_format_named,
)
from fxhost.audio.resample import Resampler
from fxhost.store.assets import (
    NAME_MAX,
    NAME_PATTERN,
    AssetPage,
    AssetStore,
    AssetSummary,
    clean_name,
    file_name_of,
    summary_of,
)
from fxhost.store.db.models import Asset
from fxhost.store.storage.objects import Storage

TAGS = ["assets"]

AUDIO_BODY = {
    "audio/*": "The audio file as the body (any format libsndfile or PyAV reads; recognised by content).",
    "application/octet-stream": "The same, without a media type.",
    "multipart/form-data": "A form with the audio in a 'file' part (and optionally a 'name' field).",
}


#: An asset name as the API documents it: a key whose segments are separated by "/"
#: (``kit/drums/kick.wav``). Only the length is checked on decoding; clean_name checks
#: the pattern, with a message that says what is wrong.
AssetName = Annotated[
    str,
    msgspec.Meta(
        description=(
            "The asset's name, a key: folders are separated by '/' (kit/drums/kick.wav). Refused: a "
            "leading '/', empty, '.' or '..' segments, '\\' and control characters."
        ),
        max_length=NAME_MAX,
        extra_json_schema={"pattern": NAME_PATTERN.pattern},
    ),
]


#: Groups names into folders in a listing (S3's ``delimiter``); any string, usually "/".
Delimiter = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=16,
        description=(
            "Group names as S3's ListObjectsV2 does (usually '/'): the page lists the assets directly "
            "under the prefix in items, and each distinct prefix + segment + delimiter below it once "
            "in prefixes; limit counts both."
        ),
    ),
]


class UploadQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: The asset's name (default: the multipart file name).
    name: AssetName | None = None


class ListQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    prefix: Annotated[str, msgspec.Meta(description="Only names starting with this.", max_length=255)] = ""
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000, description="Page size.")] = 50
    cursor: Annotated[
        str | None,
        msgspec.Meta(
            description="next_cursor of the previous page (opaque: only one this server gave out is valid).",
            extra_json_schema={"pattern": "^[A-Za-z0-9_-]*$"},
        ),
    ] = None
    delimiter: Delimiter | None = None


class AudioQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    format: Annotated[
        OutputFormatName | None,
        msgspec.Meta(description="Output format (wav, flac, ogg, opus, mp3, aiff, ...); default: as stored."),
    ] = None
    sample_rate: Annotated[SampleRate, msgspec.Meta(description="Resample to this rate (soxr).")] | None = (
        None
    )
    subtype: Annotated[
        SubtypeName | None, msgspec.Meta(description="Sample type, e.g. PCM_16, PCM_24, FLOAT.")
    ] = None


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


async def list_assets(request: Request) -> Response:
    query = decode_query(request, ListQuery)
    page = await services(request).store.page(
        tenant_of(request), query.prefix, query.limit, query.cursor, query.delimiter
    )
    return JSONResponse(page)


async def asset_or_404(request: Request) -> Asset:
    """The caller's asset named by the path's ``{id}``, or a 404 problem."""
    asset_id = request.path_params["id"]
    row = await services(request).store.get(asset_id, tenant_of(request))
    if row is None:
        raise not_found(f"no asset with id {asset_id!r}")
    return row


async def get_asset(request: Request) -> Response:
    return JSONResponse(summary_of(await asset_or_404(request)))


async def get_asset_audio(request: Request) -> Response:
    query = decode_query(request, AudioQuery)
    svc = services(request)
    row = await asset_or_404(request)
    if query.format is None and query.sample_rate is None and query.subtype is None:
        return await stored_response(request, svc.store.storage, svc.store.key_of(row), row)
    fmt = (query.format or format_name_of(row.format, row.subtype) or "wav").lower()
    requested = RenderOutput(format=fmt, sample_rate=query.sample_rate, subtype=query.subtype)
    output = checked_output(requested, row.sample_rate, row.channels, row.subtype, path="")
    rate = output.sample_rate or row.sample_rate

    def transcode() -> tuple[BinaryIO, int]:
        return transcoded(svc.store, row, rate, output.format, output.subtype)

    file, size = await svc.jobs.run(transcode)
    spec = output_format_named(output.format)
    return file_response(request, file, size, spec.media_type, f"{stem_of(row.name)}{spec.extension}")


def transcoded(
    store: AssetStore, row: Asset, rate: int, fmt: str, subtype: str | None
) -> tuple[BinaryIO, int]:
    """The asset at ``rate`` in ``fmt``/``subtype``, written block by block (resampled as
    it goes) to a temporary file that is unlinked at once: an open file and its size,
    whatever the asset's length, never the audio whole in memory. Blocking."""
    temp = store.temp_path()
    try:
        resampler = Resampler(row.channels, row.sample_rate, rate) if rate != row.sample_rate else None
        with AudioWriter(temp, rate, row.channels, fmt, subtype) as writer:
            for block in store.blocks(row):
                writer.write(block if resampler is None else resampler.process(block))
            if resampler is not None:
                writer.write(resampler.flush())
        file = open(temp, "rb")  # noqa: SIM115 - the response closes it
    finally:
        temp.unlink(missing_ok=True)
    return file, os.fstat(file.fileno()).st_size


async def stored_response(request: Request, storage: Storage, key: str, row: Asset) -> Response:
    """The asset's bytes as stored: a local file served in place, a redirect to a
    presigned URL when the object store is set to give them out, else streamed from the
    object store; Range requests answered either way (the store reads just the range)."""
    media_type = media_type_of(row.format, row.subtype)
    if (path := storage.local_path(key)) is not None:
        return FileResponse(path, media_type=media_type, headers=inline(row.name))
    filename = row.name.rsplit("/", 1)[-1]
    if (url := storage.presigned_url(key, filename=filename, media_type=media_type)) is not None:
        return RedirectResponse(url, status_code=307)
    return await object_response(request, storage, key, row.size, media_type, inline(row.name))


async def delete_asset(request: Request) -> Response:
    asset_id = request.path_params["id"]
    if not await services(request).store.delete(asset_id, tenant_of(request)):
        raise not_found(f"no asset with id {asset_id!r}")
    return Response(status_code=204)


ROUTES = [
    Operation(
        "POST",
        "/api/assets",
        upload_asset,
        summary="Upload audio, stored exactly as received.",
        tags=TAGS,
        query=UploadQuery,
        raw_body=AUDIO_BODY,
        responses={
            201: AssetSummary,
            413: problem_resp("The body is larger than the upload limit (refused as it streams in)."),
            415: problem_resp("The body is not audio that can be decoded."),
        },
        links=[
            *(
                Link(op, {"id": "$response.body#/id"})
                for op in ("get_asset", "get_asset_audio", "asset_analysis", "asset_waveform")
            ),
            Link("asset_spectrogram", {"id": "$response.body#/id"}),
            Link("create_render", request_body={"asset": "$response.body#/id"}, description="Render it."),
            Link("delete_asset", {"id": "$response.body#/id"}),
        ],
    ),
    Operation(
        "GET",
        "/api/assets",
        list_assets,
        summary="Assets ordered by name, in cursor pages, from the in-memory AVL index; "
        "with a delimiter, folders as common prefixes.",
        tags=TAGS,
        query=ListQuery,
        responses={200: AssetPage},
    ),
    Operation(
        "GET",
        "/api/assets/{id}",
        get_asset,
        summary="One asset's description.",
        tags=TAGS,
        responses={200: AssetSummary},
        path_types={"id": AssetId},
    ),
    Operation(
        "GET",
        "/api/assets/{id}/audio",
        get_asset_audio,
        summary="The audio: as stored, or transcoded and resampled on the fly. Supports Range.",
        tags=TAGS,
        security=LINK_SECURITY,
        query=AudioQuery,
        responses={
            403: LINK_REFUSED,
            200: Resp(media_type="audio/*", binary=True, description="The audio."),
            206: Resp(media_type="audio/*", binary=True, description="A byte range of it."),
            307: Resp(
                description="With FXHOST_S3_PRESIGN_DOWNLOADS, for the audio as stored: the object "
                "store's presigned URL of it (valid FXHOST_S3_PRESIGN_SECONDS), which supports Range too.",
                headers={"Location": "The presigned URL."},
            ),
            416: problem_resp("The range is outside the file."),
        },
        path_types={"id": AssetId},
    ),
    Operation(
        "DELETE",
        "/api/assets/{id}",
        delete_asset,
        summary="Delete an asset: its row and its file.",
        tags=TAGS,
        responses={204: None},
        path_types={"id": AssetId},
    ),
]
