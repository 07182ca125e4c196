"""The console as the host serves it, over real HTTP: ``/`` and every view's path answer
the same page (deep links survive a reload), the files it loads are all there, and the
API's own paths keep their answers. The browser tests are in test_console_browser.py."""

from __future__ import annotations

import posixpath
import re

import pytest
from fxhost.api.console.pages import STATIC_DIR, VIEWS, console_routes
from restkit import start_server
from starlette.applications import Starlette
from starlette.testclient import TestClient

KEY = "console-pages-key"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("console-pages"), {"FXHOST_API_KEYS": KEY})
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    with server.client() as c:
        yield c


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/effects",
        "/effects/reverb",
        "/chains/hall",
        "/assets/kit/drums",
        "/renders/abc",
        "/live",
        "/operators",
        "/keys",
    ],
)
def test_every_console_path_serves_the_page_without_a_key(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<base href="/">' in response.text
    assert '<script type="module" src="console/app.js"></script>' in response.text


def test_the_views_the_host_routes_are_those_the_page_routes():
    """app.js draws the views; pages.py routes their paths to the page: one list each,
    kept equal here."""
    app_js = (STATIC_DIR / "app.js").read_text()
    routed = set(re.findall(r"^\s+(\w+): \(\) => import\(", app_js, re.M))
    assert routed == set(VIEWS)
    page = (STATIC_DIR / "index.html").read_text()
    nav = set(re.findall(r'<a href="(\w+)">', page[page.index("<nav") : page.index("</nav>")]))
    assert nav == set(VIEWS)


def test_the_api_docs_and_metrics_keep_their_answers(client):
    """The console routes only its own views' paths: an unknown /api path is still a
    problem+json 404, /api needs the key, and /docs, /openapi.json and /metrics are theirs."""
    unknown = client.get("/api/no-such-thing", headers={"Authorization": f"Bearer {KEY}"})
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert client.get("/api/effects").status_code == 401
    assert client.get("/nothing-here").status_code == 404
    assert "swagger-ui" in client.get("/docs").text
    assert client.get("/openapi.json").json()["openapi"].startswith("3.1")
    assert client.get("/metrics").status_code == 401
    metrics = client.get("/metrics", headers={"Authorization": f"Bearer {KEY}"})
    assert "fxhost_build_info" in metrics.text


def _imports(js: str) -> set[str]:
    return set(re.findall(r"""(?:from|import\()\s*["'](\.{1,2}/[^"']+)["']""", js))


def test_every_file_the_page_loads_is_served(client):
    """Every module reachable from app.js (static and dynamic imports), the stylesheet and
    the AudioWorklet are served with their media types: nothing the browser asks for 404s.
    The page loads nothing from another origin (it works offline)."""
    page = client.get("/").text
    assert not re.search(r"""(?:src|href)=["'](?:https?:)?//""", page)
    seen: set[str] = set()
    todo = ["app.js", "worklet.js"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        response = client.get(f"/console/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"].startswith("text/javascript"), name
        assert "http://" not in response.text and "https://" not in response.text, name
        folder = posixpath.dirname(name)
        todo += [posixpath.normpath(posixpath.join(folder, target)) for target in _imports(response.text)]
    assert {"views/effects.js", "views/live.js", "controls.js"} <= seen
    css = client.get("/console/console.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert client.get("/console/../pages.py").status_code == 404


def test_a_server_behind_a_path_prefix_serves_the_page_under_it():
    """<base href> carries the prefix (uvicorn --root-path), so every relative URL of the
    console (its files, /api, /ws) resolves under it."""
    app = Starlette(routes=console_routes())
    with TestClient(app, root_path="/fx") as c:
        assert '<base href="/fx/">' in c.get("/effects/reverb").text
