"""Responses the routes share: JSON encoded by msgspec, bytes with single-range support,
and pictures and audio named for the browser."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from fxhost.api.openapi.problems import ProblemException
from fxhost.store.assets import stem_of as stem_of  # routes name what they make of an asset

#: Response headers a browser's script may read across origins (CORS
#: ``Access-Control-Expose-Headers``): every header the API sends that a client needs
#: and that is not one of the few CORS lets through anyway. Every ``X-`` header the
#: server sends is here (tests/api/test_exposed_headers.py checks the source for them).
EXPOSED_HEADERS = (
    "Location",  # what POST made
    "Content-Disposition",  # the file name of audio and pictures
    "Content-Length",
    "Content-Range",  # 206 and 416
    "Accept-Ranges",
    "WWW-Authenticate",  # 401: which credentials
    "Retry-After",  # 429 and 503
    "X-Next-Cursor",  # GET /api/streams/{id}/output
    "X-Lost-Frames",
    "X-Frames",
    "X-Peak-Dbfs",  # POST /api/process: the output's peak and clipping
    "X-Clipped-Samples",
    "X-Accel-Buffering",  # server-sent events: tells proxies not to buffer
)


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return msgspec.json.encode(content)


def inline(name: str) -> dict[str, str]:
    """The Content-Disposition header that names a file shown in place (``inline``): the
    last segment of an asset's name (``kit/drums/kick.wav`` -> ``kick.wav``). A download
    is one file in one folder of the user's choosing; RFC 6266 has browsers strip any path
    from it anyway, and the full name is in the asset's JSON."""
    filename = name.rsplit("/", 1)[-1]
    return {"Content-Disposition": f"inline; filename*=UTF-8''{quote(filename, safe='')}"}


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
