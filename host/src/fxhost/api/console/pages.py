"""The console's pages: ``GET /`` and every console view's path answer the same
``index.html`` (the views are drawn in the browser, so a deep link such as
``/effects/reverb`` survives a reload), and the files it loads are served under
``/console/``. Only the views' own prefixes are routed here, so ``/api``, ``/ws``,
``/metrics`` and ``/docs`` keep their 404s and their routes.
"""

from __future__ import annotations

import html
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
#: The first path segment of every view (static/app.js: VIEWS).
VIEWS = ("effects", "chains", "assets", "renders", "live", "operators", "keys")
STATIC_URL = "/console"


def console_routes() -> list[BaseRoute]:
    """``/``, each view's paths, and the console's files under ``/console/``."""
    # Read once: the page is the same for every view; only <base href> depends on the
    # request (a server mounted behind a path prefix serves it under that prefix).
    template = (STATIC_DIR / "index.html").read_text(encoding="utf-8")

    async def index(request: Request) -> Response:
        root = request.scope.get("root_path", "").rstrip("/")
        page = template.replace('<base href="/">', f'<base href="{html.escape(root)}/">', 1)
        # The views are routed in the browser: the page itself never goes stale in a cache.
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    routes: list[BaseRoute] = [Route("/", index, methods=["GET"], name="console", include_in_schema=False)]
    for view in VIEWS:
        routes.append(Route(f"/{view}", index, methods=["GET"], include_in_schema=False))
        routes.append(Route(f"/{view}/{{rest:path}}", index, methods=["GET"], include_in_schema=False))
    routes.append(Mount(STATIC_URL, app=StaticFiles(directory=STATIC_DIR), name="console_static"))
    return routes
