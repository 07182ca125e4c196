"""Every ``X-`` header the API can send is in the one list CORS exposes
(:data:`fxhost.api.responses.EXPOSED_HEADERS`): a header added to a route without it
would be invisible to a browser's script on another origin."""

import re
from pathlib import Path

import fxhost.api
from fxhost.api.responses import EXPOSED_HEADERS

API_DIR = Path(fxhost.api.__file__).parent
#: A header name in a string literal: "X-Next-Cursor".
X_HEADER = re.compile(r"""["'](X-[A-Za-z0-9-]+)["']""")


def sources() -> list[Path]:
    return [p for p in API_DIR.rglob("*.py") if "static" not in p.relative_to(API_DIR).parts]


def test_every_x_header_in_the_api_is_exposed():
    named = {m[1] for path in sources() for m in X_HEADER.finditer(path.read_text())}
    assert {"X-Next-Cursor", "X-Lost-Frames", "X-Frames"} <= named  # the scan finds them
    missing = {h for h in named if h.lower() not in {e.lower() for e in EXPOSED_HEADERS}}
    assert not missing, f"add {sorted(missing)} to EXPOSED_HEADERS in fxhost/api/responses.py"


def test_the_headers_clients_need_are_exposed():
    exposed = {h.lower() for h in EXPOSED_HEADERS}
    needed = {"retry-after", "www-authenticate", "content-range", "location", "content-disposition"}
    assert needed <= exposed
    assert len(exposed) == len(EXPOSED_HEADERS)  # named once
