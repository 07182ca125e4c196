"""The docs pages: the OpenAPI document at ``/openapi.json``, Swagger UI at ``/docs`` and
Redoc at ``/redoc``, from files vendored in ``static/`` (with their licences), so that
the docs work with no internet access on either side.
"""

from __future__ import annotations

import html
import json
import posixpath
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from fxhost.api.openapi.declare import Api
from fxhost.api.openapi.document import openapi_document, openapi_json

STATIC_DIR = Path(__file__).parent / "static"


def docs_routes(
    api: Api,
    openapi_url: str = "/openapi.json",
    *,
    docs_url: str = "/docs",
    redoc_url: str = "/redoc",
    static_url: str = "/docs/static",
    secured: Callable[[Request], Awaitable[bool]] | None = None,
    schemas: Mapping[str, Any] | None = None,
) -> list[BaseRoute]:
    """The document of ``api`` at ``openapi_url``, Swagger UI at ``docs_url``, Redoc at
    ``redoc_url``, and their vendored assets under ``static_url``. ``secured(request)``
    says whether the document states the security requirements (default: always);
    ``schemas``: the components only this server knows (see
    :func:`~fxhost.api.openapi.document.openapi_document`).

    The pages refer to the document and the assets by relative URLs, so they work
    behind a path prefix and with no internet access.
    """

    async def openapi(request: Request) -> Response:
        root = request.scope.get("root_path", "")
        with_security = await secured(request) if secured is not None else True
        if root:
            document = openapi_document(api, with_security, schemas)
            body = msgspec.json.encode({**document, "servers": [{"url": root}]})
        else:
            body = openapi_json(api, with_security, schemas)
        return Response(body, media_type="application/json")

    swagger = _swagger_html(
        api.title, spec=_relative(docs_url, openapi_url), static=_relative(docs_url, static_url)
    )
    redoc = _redoc_html(
        api.title, spec=_relative(redoc_url, openapi_url), static=_relative(redoc_url, static_url)
    )

    async def swagger_ui(request: Request) -> Response:
        return HTMLResponse(swagger)

    async def redoc_ui(request: Request) -> Response:
        return HTMLResponse(redoc)

    return [
        Route(openapi_url, openapi, methods=["GET"], name="openapi", include_in_schema=False),
        Route(docs_url, swagger_ui, methods=["GET"], name="swagger_ui", include_in_schema=False),
        Route(redoc_url, redoc_ui, methods=["GET"], name="redoc", include_in_schema=False),
        Mount(static_url, app=StaticFiles(directory=STATIC_DIR), name="docs_static"),
    ]


def _relative(page: str, target: str) -> str:
    """The URL of ``target`` relative to the page at ``page`` (both absolute paths)."""
    if "://" in target:
        return target
    base = page.rsplit("/", 1)[0] or "/"
    return posixpath.relpath(target, base)


def _js(value: str) -> str:
    """A JavaScript string literal, safe inside <script>."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _page(title: str, head: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="icon" href="data:,">
{head}
</head>
<body>
{body}
</body>
</html>
"""


def _swagger_html(title: str, *, spec: str, static: str) -> str:
    # validatorUrl: null: Swagger UI would otherwise send the document to validator.swagger.io.
    return _page(
        f"{title} - Swagger UI",
        f'<link rel="stylesheet" href="{html.escape(static)}/swagger-ui/swagger-ui.css">\n'
        "<style>body{margin:0}</style>",
        f"""<div id="swagger-ui"></div>
<script src="{html.escape(static)}/swagger-ui/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: new URL({_js(spec)}, document.baseURI).href,
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  deepLinking: true,
  validatorUrl: null,
  displayRequestDuration: true,
  showExtensions: true,
  showCommonExtensions: true
}});
</script>""",
    )


_FONTS = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
_MONO = "ui-monospace, SFMono-Regular, Menlo, Consolas, 'Liberation Mono', monospace"


def _redoc_html(title: str, *, spec: str, static: str) -> str:
    # The Redoc bundle loads no fonts itself (redoc-cli's page template adds the Google
    # Fonts <link>; this page has none): the theme names locally installed fonts.
    options = {
        "theme": {
            "typography": {
                "fontFamily": _FONTS,
                "headings": {"fontFamily": _FONTS},
                "code": {"fontFamily": _MONO},
            }
        },
        "expandResponses": "200,201",
        "jsonSampleExpandLevel": 3,
    }
    return _page(
        f"{title} - Redoc",
        "<style>body{margin:0;padding:0}</style>",
        f"""<div id="redoc"></div>
<script src="{html.escape(static)}/redoc/redoc.standalone.js"></script>
<script>
Redoc.init(new URL({_js(spec)}, document.baseURI).href, {json.dumps(options)},
           document.getElementById("redoc"));
</script>""",
    )
