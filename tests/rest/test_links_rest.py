"""What a browser needs, against a real server with API keys and CORS on: signed links
(``POST /api/links``) that open one route for one resource without the Authorization
header until they expire -- never another resource, tenant, action or route, nor after
tampering, expiry or revocation; a secret that survives restarts and is shared by servers
on one database; and every header a client reads exposed over CORS."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import numpy as np
import pytest
from clitools import run_fxhost
from restkit import BACKENDS, decode, encode, fresh_postgres, start_server, tone
from test_auth_rest import as_, cli_env, make_key
from wskit import interleave

STATIC_KEY = "static-key-for-links-0123456789"
ORIGIN = "http://app.example"
RATE = 44100
#: The headers issue 11 asks to expose, besides every X- header the server sends.
MUST_EXPOSE = {"x-next-cursor", "x-lost-frames", "x-frames", "retry-after", "www-authenticate"}
MUST_EXPOSE |= {"content-range", "location"}


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tmp_path_factory):
    env = {"FXHOST_API_KEYS": STATIC_KEY, "FXHOST_CORS_ORIGINS": ORIGIN}
    if request.param == "postgres":
        env["FXHOST_DATABASE_URL"] = fresh_postgres()
    srv = start_server(tmp_path_factory.mktemp(f"links-{request.param}"), env)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def keys(server):
    """Two tenants: the static key (A) and a key made with ``fxhost keys create`` (B)."""
    return {"A": STATIC_KEY, "B": make_key(server, "tenant b")}


@pytest.fixture
def a(server, keys):
    with as_(server, keys["A"]) as client:
        yield client


@pytest.fixture
def b(server, keys):
    with as_(server, keys["B"]) as client:
        yield client


@pytest.fixture
def anyone(server):
    """A browser: no Authorization header."""
    with server.client() as client:
        yield client


def upload(client: httpx.Client, name: str, seed: int = 0) -> tuple[dict, bytes]:
    data = encode(tone(0.3, RATE, seed=seed), RATE, "WAV")
    r = client.post("/api/assets", params={"name": name}, content=data)
    assert r.status_code == 201, r.text
    return r.json(), data


def link(client: httpx.Client, **body) -> dict:
    r = client.post("/api/links", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def problem(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")
    return r.json()


def refused(r: httpx.Response, field: str) -> dict:
    """A link refused with 403, naming ``field`` (sig or exp)."""
    body = problem(r, 403)
    assert [e["path"] for e in body["errors"]] == [field], body
    return body


def params_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def with_params(path: str, **params) -> str:
    return path + "?" + urlencode(params)


def seconds_left(made: dict) -> float:
    return datetime.fromisoformat(made["expires"]).timestamp() - time.time()


# -- each action works without a key ----------------------------------------------------


def test_download_link_opens_the_audio_without_a_key(a, anyone):
    asset, data = upload(a, "link-download.wav")
    made = link(a, action="download", asset=asset["id"])
    url = made["url"]
    assert url.startswith(f"/api/assets/{asset['id']}/audio?") and set(params_of(url)) == {"exp", "sig"}
    assert 3595 < seconds_left(made) <= 3602  # the default: an hour
    assert problem(anyone.get(f"/api/assets/{asset['id']}/audio"), 401)  # without the link: a key
    r = anyone.get(url)
    assert r.status_code == 200 and r.content == data
    assert "link-download.wav" in r.headers["content-disposition"]
    assert anyone.head(url).status_code == 200
    # The route's own query parameters go with the link: transcode to FLAC, a byte range.
    flac = anyone.get(url + "&format=flac")
    assert flac.status_code == 200 and flac.headers["content-type"] == "audio/flac"
    assert np.array_equal(decode(flac.content)[0], decode(data)[0])
    part = anyone.get(url + "&format=flac", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == flac.content[:100]
    problem(anyone.get(url + "&format=nope"), 422)  # validated as with a key


def test_events_link_follows_a_render_without_a_key(a, anyone):
    asset, _ = upload(a, "link-render-src.wav")
    r = a.post("/api/renders", json={"asset": asset["id"], "chain": "hall", "tail": False})
    assert r.status_code == 202, r.text
    render = r.json()["id"]
    made = link(a, action="events", render=render, expires_in=120)
    assert made["url"].startswith(f"/api/renders/{render}/events?")
    assert 115 < seconds_left(made) <= 122
    with anyone.stream("GET", made["url"]) as events:
        assert events.status_code == 200
        assert events.headers["content-type"].startswith("text/event-stream")
        lines = list(events.iter_lines())
    final = json.loads([line for line in lines if line.startswith("data:")][-1].removeprefix("data:"))
    assert final["status"] == "done" and final["id"] == render
    assert "event: done" in lines


def test_stream_output_link_reads_a_stream_without_a_key(a, anyone):
    r = a.post("/api/streams", json={"chain": "hall", "sample_rate": RATE, "channels": 2})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    try:
        made = link(a, action="stream_output", stream=sid)
        assert made["url"].startswith(f"/api/streams/{sid}/output?")
        assert a.post(f"/api/streams/{sid}/input", content=interleave(tone(0.1, RATE))).status_code == 200
        deadline, frames = time.monotonic() + 10, 0
        while not frames and time.monotonic() < deadline:  # until the stream's task has run
            out = anyone.get(made["url"] + "&cursor=0", headers={"Origin": ORIGIN})
            assert out.status_code == 200, out.text
            frames = int(out.headers["x-frames"])
        assert frames > 0 and len(out.content) == frames * 2 * 4
        assert int(out.headers["x-next-cursor"]) == frames and out.headers["x-lost-frames"] == "0"
        # A browser's script reads these only if CORS exposes them.
        exposed = {h.strip().lower() for h in out.headers["access-control-expose-headers"].split(",")}
        assert {h for h in out.headers if h.startswith("x-")} <= exposed
        # Writing into the stream is not reading its output: the link does not open it.
        sent = anyone.post(with_params(f"/api/streams/{sid}/input", **params_of(made["url"])), content=b"")
        refused(sent, "sig")
    finally:
        a.delete(f"/api/streams/{sid}")


# -- never more than it was made for ----------------------------------------------------


def test_a_link_expires(a, anyone):
    asset, _ = upload(a, "link-expiring.wav")
    made = link(a, action="download", asset=asset["id"], expires_in=1)
    assert 0 < seconds_left(made) <= 2
    assert anyone.get(made["url"]).status_code == 200
    time.sleep(seconds_left(made) + 0.2)
    body = refused(anyone.get(made["url"]), "exp")
    assert "expired" in body["detail"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda p: {**p, "exp": str(int(p["exp"]) + 1)}, "sig"),  # longer life: the signature says no
        (lambda p: {**p, "exp": str(int(p["exp"]) - 1)}, "sig"),
        (lambda p: {**p, "exp": "soon"}, "exp"),
        (lambda p: {"sig": p["sig"]}, "exp"),
        (lambda p: {**p, "sig": ("B" if p["sig"][0] != "B" else "C") + p["sig"][1:]}, "sig"),
        (lambda p: {**p, "sig": p["sig"][:-1]}, "sig"),
        (lambda p: {"exp": p["exp"]}, "sig"),
    ],
    ids=[
        "exp-later",
        "exp-earlier",
        "exp-not-a-number",
        "exp-missing",
        "sig-changed",
        "sig-cut",
        "sig-missing",
    ],
)
def test_a_tampered_link_is_refused(a, anyone, change, field):
    asset, _ = upload(a, "link-tampered.wav")
    made = link(a, action="download", asset=asset["id"])
    path = urlsplit(made["url"]).path
    assert anyone.get(made["url"]).status_code == 200
    refused(anyone.get(with_params(path, **change(params_of(made["url"])))), field)


def test_a_link_opens_only_its_resource(a, anyone):
    asset, _ = upload(a, "link-mine.wav")
    other, _ = upload(a, "link-my-other.wav", seed=1)
    params = params_of(link(a, action="download", asset=asset["id"])["url"])
    refused(anyone.get(with_params(f"/api/assets/{other['id']}/audio", **params)), "sig")
    problem(anyone.get(with_params(f"/api/assets/{'0' * 32}/audio", **params)), 404)


def test_a_link_opens_only_its_route_and_action(a, anyone):
    asset, _ = upload(a, "link-route.wav")
    params = params_of(link(a, action="download", asset=asset["id"])["url"])
    for method, path in [
        ("GET", f"/api/assets/{asset['id']}"),
        ("DELETE", f"/api/assets/{asset['id']}"),
        ("POST", f"/api/assets/{asset['id']}/audio"),
        ("GET", "/api/assets"),
        ("POST", "/api/links"),
        ("GET", f"/api/assets/{asset['id']}/waveform.png"),
    ]:
        body = refused(anyone.request(method, with_params(path, **params)), "sig")
        assert "a link opens only" in body["detail"], (method, path)
    assert a.get(f"/api/assets/{asset['id']}").status_code == 200  # the DELETE did nothing
    # Another action on the same id: the render's events link is no download link.
    r = a.post("/api/renders", json={"asset": asset["id"], "chain": "hall", "tail": False})
    render = r.json()["id"]
    events = params_of(link(a, action="events", render=render)["url"])
    refused(anyone.get(with_params(f"/api/renders/{render}", **events)), "sig")
    assert anyone.get(with_params(f"/api/assets/{asset['id']}/audio", **events)).status_code == 403


def test_links_never_cross_tenants(a, b, anyone):
    theirs, _ = upload(a, "link-tenant-a.wav")
    mine, _ = upload(b, "link-tenant-b.wav", seed=2)
    # B's link for B's asset, on A's asset: refused.
    params = params_of(link(b, action="download", asset=mine["id"])["url"])
    assert anyone.get(with_params(f"/api/assets/{mine['id']}/audio", **params)).status_code == 200
    refused(anyone.get(with_params(f"/api/assets/{theirs['id']}/audio", **params)), "sig")
    # B cannot make a link for anything of A's: as absent as what never was.
    r = a.post("/api/renders", json={"asset": theirs["id"], "chain": "hall", "tail": False})
    stream = a.post("/api/streams", json={"chain": "hall", "sample_rate": RATE, "channels": 2}).json()["id"]
    try:
        for body in (
            {"action": "download", "asset": theirs["id"]},
            {"action": "events", "render": r.json()["id"]},
            {"action": "stream_output", "stream": stream},
        ):
            assert problem(b.post("/api/links", json=body), 404)["detail"].startswith("no "), body
            assert a.post("/api/links", json=body).status_code == 201
    finally:
        a.delete(f"/api/streams/{stream}")


def test_revoking_the_key_voids_its_links(server, anyone):
    key = make_key(server, "link-revoked")
    with as_(server, key) as c:
        asset, _ = upload(c, "link-revoked.wav")
        made = link(c, action="download", asset=asset["id"])
    assert anyone.get(made["url"]).status_code == 200
    done = run_fxhost("keys", "revoke", "link-revoked", cwd=server.root, env=cli_env(server))
    assert done.returncode == 0, done.stderr
    assert "revoked" in refused(anyone.get(made["url"]), "sig")["detail"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"action": "download", "asset": "ASSET", "expires_in": 0}, 422, "expires_in"),
        ({"action": "download", "asset": "ASSET", "expires_in": 7 * 24 * 3600 + 1}, 422, "expires_in"),
        ({"action": "download", "asset": "ASSET", "expires_in": 1.5}, 422, "expires_in"),
        ({"action": "upload", "asset": "ASSET"}, 422, "action"),
        ({"asset": "ASSET"}, 422, ""),
        ({"action": "download"}, 422, ""),
        ({"action": "download", "render": "ASSET"}, 422, ""),
        ({"action": "download", "asset": "../etc"}, 422, "asset"),
        ({"action": "download", "asset": "f" * 32}, 404, None),
        ({"action": "events", "render": "ASSET"}, 404, None),  # an asset's id names no render
    ],
)
def test_a_bad_link_request_names_the_field(a, body, status, field):
    asset, _ = upload(a, "link-bad-request.wav")
    body = {k: asset["id"] if v == "ASSET" else v for k, v in body.items()}
    got = problem(a.post("/api/links", json=body), status)
    if field:
        assert [e["path"] for e in got["errors"]] == [field], got
    elif field == "":
        assert got["errors"], got  # msgspec names the missing or unknown field in the message


def test_making_a_link_needs_a_key(anyone):
    problem(anyone.post("/api/links", json={"action": "download", "asset": "f" * 32}), 401)


# -- CORS and OpenAPI -------------------------------------------------------------------


def test_cors_exposes_every_header_a_client_reads(a, anyone):
    preflight = anyone.options(
        "/api/links",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    assert "POST" in preflight.headers["access-control-allow-methods"]

    def exposed(r: httpx.Response) -> set[str]:
        assert r.headers["access-control-allow-origin"] == ORIGIN
        return {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}

    denied = anyone.get("/api/assets", headers={"Origin": ORIGIN})  # a 401 says which credentials
    assert denied.status_code == 401 and "www-authenticate" in exposed(denied)
    assert exposed(denied) >= MUST_EXPOSE
    made = a.post(
        "/api/assets",
        params={"name": "cors.wav"},
        content=encode(tone(0.2, RATE), RATE, "WAV"),
        headers={"Origin": ORIGIN},
    )
    assert made.status_code == 201 and "location" in exposed(made)
    ranged = a.get(f"{made.headers['location']}/audio", headers={"Origin": ORIGIN, "Range": "bytes=0-9"})
    assert ranged.status_code == 206 and {"content-range", "content-disposition"} <= exposed(ranged)
    link_made = a.post("/api/links", json={"action": "download", "asset": made.json()["id"]})
    through_link = anyone.get(link_made.json()["url"], headers={"Origin": ORIGIN})
    assert through_link.status_code == 200 and exposed(through_link) >= MUST_EXPOSE
    # Every header a response here carried that CORS does not let through by itself.
    safelisted = {"cache-control", "content-language", "content-length", "content-type", "expires"}
    safelisted |= {"last-modified", "pragma", "date", "server", "etag", "vary", "connection"}
    for r in (denied, made, ranged, through_link):
        sent = {h for h in r.headers if not h.startswith("access-control-")} - safelisted
        assert sent <= exposed(r), sent - exposed(r)


def test_openapi_declares_links(anyone):
    from fxhost.api.links import TARGETS

    spec = anyone.get("/openapi.json").json()
    op = spec["paths"]["/api/links"]["post"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    assert {e["action"] for e in schema["examples"]} == set(TARGETS)
    assert schema["discriminator"]["propertyName"] == "action"
    assert op["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith("/Link")
    scheme = spec["components"]["securitySchemes"]["signedLink"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "query", "sig")
    linked = {
        path
        for path, item in spec["paths"].items()
        for method, o in item.items()
        if {"signedLink": []} in o.get("security", []) and method == "get"
    }
    assert linked == {t.path for t in TARGETS.values()}


# -- the secret -------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_secret_is_shared_by_servers_and_kept_across_restarts(backend, tmp_path):
    """Two servers started at once on a new database make the secret at the same time:
    both end up with one, each accepts the other's links, and a restart keeps them; a
    secret set in the environment wins over the database's."""
    url = fresh_postgres() if backend == "postgres" else f"sqlite://{tmp_path / 'shared.db'}"
    env = {
        "FXHOST_API_KEYS": STATIC_KEY,
        "FXHOST_DATABASE_URL": url,
        "FXHOST_UPLOADS_DIR": str(tmp_path / "uploads"),
        "FXHOST_RENDERS_DIR": str(tmp_path / "renders"),
    }
    # A new database is migrated once, as an operator would before starting servers on it.
    done = run_fxhost("keys", "list", cwd=tmp_path, env={"FXHOST_DATABASE_URL": url})
    assert done.returncode == 0, done.stderr
    with ThreadPoolExecutor(2) as pool:
        one, two = pool.map(lambda name: start_server(tmp_path / name, env), ["one", "two"])
    try:
        with as_(one, STATIC_KEY) as c1, as_(two, STATIC_KEY) as c2:
            asset, data = upload(c1, "shared.wav")
            from_one = link(c1, action="download", asset=asset["id"])["url"]
            from_two = link(c2, action="download", asset=asset["id"])["url"]
        for srv in (one, two):
            with srv.client() as browser:
                assert browser.get(from_one).content == data
                assert browser.get(from_two).content == data
        two.stop()
        one = one.restart()
        with one.client() as browser:
            assert browser.get(from_one).content == data and browser.get(from_two).content == data
        one.stop()
        one = start_server(tmp_path / "one", {**env, "FXHOST_LINK_SECRET": "s" * 32}, fresh=False)
        with one.client() as browser, as_(one, STATIC_KEY) as c1:
            refused(browser.get(from_one), "sig")  # signed with the database's secret
            assert browser.get(link(c1, action="download", asset=asset["id"])["url"]).content == data
    finally:
        one.stop()
        two.stop()
