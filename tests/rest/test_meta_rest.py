"""Health, statistics, listings, the OpenAPI document and the docs pages, and errors
for routes that do not exist: over real HTTP to a real server."""

import re

import pytest
from openapi_spec_validator import validate
from restkit import REPO


def test_health(client):
    assert client.get("/health").json() == {"status": "ok"}


def test_audio_health(client):
    body = client.get("/api/audio/health").json()
    assert body["status"] == "ok", body
    assert {"pedalboard", "feedback-delay"} <= set(body["plugins"]["loaded"])
    assert body["plugins"]["failed"] == [] and body["plugins"]["effects"] >= 2
    assert set(body["plugins"]["load_seconds"]) == set(body["plugins"]["loaded"])
    for slow in body["plugins"]["slow"]:  # none on an idle machine; the shape if any
        assert slow["load_seconds"] > 0.1 and "lazily" in slow["advice"]
    assert body["database"]["ok"] and body["storage"]["ok"] and body["storage"]["free_bytes"] > 0
    assert {"hits", "misses", "bytes", "max_bytes"} <= set(body["cache"])


def test_statistics_and_buffers(client):
    stats = client.get("/api/audio/statistics").json()
    assert set(stats["renders"]) == {"queued", "running", "done", "failed", "cancelled"}
    assert stats["assets"]["count"] >= 0 and stats["uptime_seconds"] > 0
    assert client.get("/api/audio/buffers").json() == []


def test_effects_and_plugins(client):
    effects = {e["name"]: e for e in client.get("/api/effects").json()}
    assert {"reverb", "feedback_delay"} <= set(effects)
    room = client.get("/api/effects/reverb").json()["params_schema"]["properties"]["room_size"]
    assert (room["minimum"], room["maximum"], room["default"]) == (0, 1, 0.5) and room["description"]
    plugins = {p["name"]: p for p in client.get("/api/plugins").json()}
    assert plugins["pedalboard"]["status"] == "loaded" and "reverb" in plugins["pedalboard"]["effects"]
    assert {"loudness_normalize", "trim_silence"} <= set(plugins["mastering"]["effects"])


def test_openapi_is_valid_31_and_lists_every_route(client):
    doc = client.get("/openapi.json").json()
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    for path in [
        "/api/assets",
        "/api/assets/{id}/audio",
        "/api/process",
        "/api/renders/{id}/events",
        "/api/chains/{name}",
        "/api/audio/statistics",
    ]:
        assert path in doc["paths"], path
    assert "AssetSummary" in doc["components"]["schemas"]
    upload = doc["paths"]["/api/assets"]["post"]
    assert {"201", "413", "415", "422"} <= set(upload["responses"])


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_work_offline(client, page):
    html = client.get(page)
    assert html.status_code == 200 and "text/html" in html.headers["content-type"]
    assert not re.search(r"https?://", html.text), "the page must not reach the internet"
    for asset in re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html.text):
        url = asset if asset.startswith("/") else f"/{asset.lstrip('./')}"
        response = client.get(url)
        assert response.status_code == 200 and len(response.content) > 10_000, url


@pytest.mark.parametrize(
    "method, path, status",
    [
        ("GET", "/api/effects/no-such-effect", 404),
        ("GET", "/no/such/route", 404),
        ("GET", "/api/assets/../../etc/passwd", 404),
        ("POST", "/api/effects", 405),
        ("DELETE", "/health", 405),
    ],
)
def test_errors_are_problem_json_without_internals(client, method, path, status):
    response = client.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert "Traceback" not in response.text and str(REPO) not in response.text


@pytest.mark.parametrize(
    "method, path, status",
    [
        ("GET", "/api/assets/" + "0" * 63, 404),
        ("GET", "/api/assets/%60%F2%AB%84%9EK%C2%8F%7F50%C2%B1/analysis", 404),
        ("GET", "/api/assets/" + "x" * 300 + "/waveform.png", 404),
        ("DELETE", "/api/assets/" + "A" * 32, 404),
        ("GET", "/api/renders/" + "0" * 63, 404),
        ("GET", "/api/renders/" + "0" * 63 + "/events", 404),
        ("GET", "/api/chains/" + "n" * 200, 404),
        ("DELETE", "/api/chains/" + "n" * 200, 404),
    ],
)
def test_ids_no_row_can_have_are_404_not_500(client, method, path, status):
    """Found by schemathesis: ids longer than the column made the database refuse the query."""
    response = client.request(method, path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_render_of_an_impossible_asset_id_is_422(client):
    response = client.post("/api/renders", json={"asset": "0" * 63, "chain": ""})
    assert response.status_code == 422 and response.json()["errors"][0]["path"] == "asset"


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("PATCH", "/api/chains", {"GET", "POST"}),
        ("POST", "/api/chains/hall", {"GET", "PUT", "DELETE"}),
        ("PUT", "/api/assets", {"GET", "POST"}),
    ],
)
def test_405_lists_every_method_of_the_path(client, method, path, allowed):
    response = client.request(method, path)
    assert response.status_code == 405
    assert allowed <= {m.strip() for m in response.headers["allow"].split(",")}
