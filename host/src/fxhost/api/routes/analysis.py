"""Analysis of an asset: levels, loudness and true peak as JSON; waveform and spectrogram
as PNG pictures. The work reads the asset block by block (from the LRU cache if it is
there, else from its file; never whole, nothing new cached) and runs through the
whole-file job gate: at most ``analysis_concurrency`` at once, each in a thread."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Literal, TypeVar

import msgspec
import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from fxhost.api.openapi.declare import Operation, Resp, problem_resp
from fxhost.api.openapi.decode import decode_query
from fxhost.api.responses import JSONResponse, inline, stem_of
from fxhost.api.routes.assets import asset_or_404
from fxhost.api.state import services
from fxhost.api.vocabulary import AssetId
from fxhost.audio.analysis import Analysis, analyse_blocks
from fxhost.audio.pictures import spectrogram_png_blocks, waveform_png_blocks
from fxhost.store.db.models import Asset

TAGS = ["assets"]
FFTSize = Literal[256, 512, 1024, 2048, 4096, 8192]


class PictureQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    width: Annotated[int, msgspec.Meta(ge=200, le=4000, description="Picture width, pixels.")] = 1200
    height: Annotated[int, msgspec.Meta(ge=100, le=2000, description="Picture height, pixels.")] = 400


class SpectrogramQuery(PictureQuery, kw_only=True, forbid_unknown_fields=True):
    fft: Annotated[
        FFTSize | None,
        msgspec.Meta(
            description="FFT size (a power of two, 256..8192); default: about 43 ms "
            "(2048 at 44.1 and 48 kHz). Larger: finer in frequency, coarser in time."
        ),
    ] = None
    scale: Annotated[
        Literal["log", "linear"],
        msgspec.Meta(description="Frequency axis: logarithmic (Hz) or linear (kHz)."),
    ] = "log"


Q = TypeVar("Q", bound=msgspec.Struct)
PNG = Resp(media_type="image/png", binary=True, description="A PNG picture of the requested size.")


#: What a whole-file endpoint answers when the server is busy.
BUSY = problem_resp(
    "Every whole-file job slot (analysis_concurrency) stayed taken for analysis_queue_seconds; "
    "Retry-After says when to try again."
)


async def asset_analysis(request: Request) -> Response:
    row = await asset_or_404(request)
    store = services(request).store

    def measure() -> Analysis:
        return analyse_blocks(store.blocks(row), row.channels, row.frames, row.sample_rate)

    return JSONResponse(await services(request).jobs.run(measure))


async def asset_waveform(request: Request) -> Response:
    def draw(blocks: Iterator[np.ndarray], row: Asset, query: PictureQuery) -> bytes:
        return waveform_png_blocks(
            blocks,
            row.channels,
            row.frames,
            row.sample_rate,
            width=query.width,
            height=query.height,
            title=row.name,
        )

    return await _picture(request, PictureQuery, "waveform", draw)


async def asset_spectrogram(request: Request) -> Response:
    def draw(blocks: Iterator[np.ndarray], row: Asset, query: SpectrogramQuery) -> bytes:
        return spectrogram_png_blocks(
            blocks,
            row.channels,
            row.frames,
            row.sample_rate,
            width=query.width,
            height=query.height,
            title=row.name,
            fft_size=query.fft,
            scale=query.scale,
        )

    return await _picture(request, SpectrogramQuery, "spectrogram", draw)


async def _picture(request: Request, query_type: type[Q], kind: str, draw: Callable[..., bytes]) -> Response:
    """A picture of the asset the path names, drawn through the job gate as ``query_type`` asks."""
    query = decode_query(request, query_type)
    row = await asset_or_404(request)
    store = services(request).store

    def work() -> bytes:
        return draw(store.blocks(row), row, query)

    data = await services(request).jobs.run(work)
    return Response(data, media_type="image/png", headers=inline(f"{stem_of(row.name)}-{kind}.png"))


ROUTES = [
    Operation(
        "GET",
        "/api/assets/{id}/analysis",
        asset_analysis,
        summary="Levels, loudness (LUFS, LRA) and true peak of an asset.",
        description="Peak, RMS and DC offset per channel and overall; clipping (samples with "
        "|x| >= 0.999, and runs of them); integrated loudness (ITU-R BS.1770-4), loudness range "
        "(EBU Tech 3342) and true peak (BS.1770-4 Annex 2's method, 4x oversampled). Measured on the "
        "decoded audio at its own sample rate, block by block.",
        tags=TAGS,
        responses={200: Analysis, 503: BUSY},
        path_types={"id": AssetId},
    ),
    Operation(
        "GET",
        "/api/assets/{id}/waveform.png",
        asset_waveform,
        summary="The waveform of an asset, as a PNG.",
        description="One lane per channel, labelled; time in seconds, amplitude (1.0 = full scale). "
        "Long audio is drawn as its min/max envelope with the RMS inside, one bin per pixel column.",
        tags=TAGS,
        query=PictureQuery,
        responses={200: PNG, 503: BUSY},
        path_types={"id": AssetId},
    ),
    Operation(
        "GET",
        "/api/assets/{id}/spectrogram.png",
        asset_spectrogram,
        summary="The spectrogram of an asset, as a PNG.",
        description="Hann-windowed STFT, power averaged over the channels; level in dBFS on a colour "
        "bar (a full-scale sine peaks at 0), time in seconds, frequency on a log (Hz) or linear (kHz) axis.",
        tags=TAGS,
        query=SpectrogramQuery,
        responses={200: PNG, 503: BUSY},
        path_types={"id": AssetId},
    ),
]
