"""Responses the routes share: JSON encoded by msgspec, bytes with single-range support,
files read in large chunks, and pictures and audio named for the browser."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import msgspec
from starlette import responses
from starlette.requests import Request
from starlette.responses import Response

from fxhost.api.openapi.problems import ProblemException


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return msgspec.json.encode(content)


class FileResponse(responses.FileResponse):
    """Starlette's FileResponse, reading 1 MiB at a time instead of 64 KiB: each read is
    a hop to a thread, and sending a 10.6 MB WAV took 17 ms in 162 of them against 7 ms
    in 11 (over loopback to httpx; uvicorn offers no sendfile)."""

    chunk_size = 1 << 20


def inline(filename: str) -> dict[str, str]:
    """The Content-Disposition header that names a file shown in place (``inline``)."""
    return {"Content-Disposition": f"inline; filename*=UTF-8''{quote(filename)}"}


def stem_of(name: str, default: str = "audio") -> str:
    """An asset's name without its extension, to name what is made of it."""
    return name.rsplit(".", 1)[0] or default


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def bytes_response(request: Request, data: bytes, media_type: str, filename: str) -> Response:
    """``data`` with single-range support (RFC 9110): 206 for ``bytes=a-b``, ``bytes=a-``
    and ``bytes=-n``; 416 when unsatisfiable; the whole body for anything else."""
    headers = {"Accept-Ranges": "bytes", **inline(filename)}
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
