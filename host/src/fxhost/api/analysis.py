"""Analysis of an asset: levels, loudness and true peak as JSON; waveform and spectrogram
as PNG pictures. The work (decoding through the LRU cache, measuring, drawing) runs in a
worker thread; nothing new is cached."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal
from urllib.parse import quote

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from fxhost.analysis import Analysis, analyse, spectrogram_png, waveform_png
from fxhost.api.assets import asset_or_404
from fxhost.api.http import JSONResponse, services
from fxhost.api.openapi import Resp, decode_query
from fxhost.api.spec import api
from fxhost.db.models import Asset

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


PNG = Resp(media_type="image/png", binary=True, description="A PNG picture of the requested size.")


def _png_response(data: bytes, row: Asset, kind: str) -> Response:
    stem = row.name.rsplit(".", 1)[0] or "audio"
    filename = quote(f"{stem}-{kind}.png")
    return Response(
        data,
        media_type="image/png",
        headers={"Content-Disposition": f"inline; filename*=UTF-8''{filename}"},
    )


@api.get(
    "/api/assets/{id}/analysis",
    summary="Levels, loudness (LUFS, LRA) and true peak of an asset.",
    description="Peak, RMS and DC offset per channel and overall; clipping (samples with "
    "|x| >= 0.999, and runs of them); integrated loudness (ITU-R BS.1770-4), loudness range "
    "(EBU Tech 3342) and true peak (BS.1770-4 Annex 2, 4x oversampled). Measured on the "
    "decoded audio at its own sample rate.",
    tags=["assets"],
    responses={200: Analysis},
)
async def asset_analysis(request: Request) -> Response:
    row = await asset_or_404(request)
    store = services(request).store

    def measure() -> Analysis:
        return analyse(store.decoded(row), row.sample_rate)

    return JSONResponse(await asyncio.to_thread(measure))


@api.get(
    "/api/assets/{id}/waveform.png",
    summary="The waveform of an asset, as a PNG.",
    description="One lane per channel, labelled; time in seconds, amplitude (1.0 = full scale). "
    "Long audio is drawn as its min/max envelope with the RMS inside, one bin per pixel column.",
    tags=["assets"],
    query=PictureQuery,
    responses={200: PNG},
)
async def asset_waveform(request: Request) -> Response:
    query = decode_query(request, PictureQuery)
    row = await asset_or_404(request)
    store = services(request).store

    def draw() -> bytes:
        audio = store.decoded(row)
        return waveform_png(audio, row.sample_rate, width=query.width, height=query.height, title=row.name)

    return _png_response(await asyncio.to_thread(draw), row, "waveform")


@api.get(
    "/api/assets/{id}/spectrogram.png",
    summary="The spectrogram of an asset, as a PNG.",
    description="Hann-windowed STFT, power averaged over the channels; level in dBFS on a colour "
    "bar (a full-scale sine peaks at 0), time in seconds, frequency on a log (Hz) or linear (kHz) axis.",
    tags=["assets"],
    query=SpectrogramQuery,
    responses={200: PNG},
)
async def asset_spectrogram(request: Request) -> Response:
    query = decode_query(request, SpectrogramQuery)
    row = await asset_or_404(request)
    store = services(request).store

    def draw() -> bytes:
        audio = store.decoded(row)
        return spectrogram_png(
            audio,
            row.sample_rate,
            width=query.width,
            height=query.height,
            title=row.name,
            fft_size=query.fft,
            scale=query.scale,
        )

    return _png_response(await asyncio.to_thread(draw), row, "spectrogram")
