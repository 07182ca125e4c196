"""The /openapi.json a real server serves describes that server: what it has installed and
configured, examples it accepts, and events as it sends them.

Checked against the server's own answers (GET /api/effects, GET /api/chains, real
requests), not against the code that builds the document.
"""

from __future__ import annotations

import json

import jsonschema
import pytest
from openapi_spec_validator import validate
from restkit import encode, start_server, tone

REF = "#/components/schemas/"


#: Not the default (7 days): the document states the server's own setting.
LINK_MAX = 86400


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("served-document"), {"FXHOST_LINK_MAX_SECONDS": str(LINK_MAX)})
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def doc(server) -> dict:
    with server.client() as client:
        return client.get("/openapi.json").json()


def schema(doc: dict, name: str) -> dict:
    return doc["components"]["schemas"][name]


def body_of(doc: dict, method: str, path: str) -> dict:
    return doc["paths"][path][method]["requestBody"]["content"]["application/json"]


def test_the_document_is_valid(doc) -> None:
    validate(doc)


def test_effects_are_those_installed_with_their_parameters_and_presets(server, doc) -> None:
    with server.client() as client:
        effects = {e["name"]: e for e in client.get("/api/effects").json()}
    assert schema(doc, "EffectName")["enum"] == sorted(effects)
    steps = [ref["$ref"].removeprefix(REF) for ref in schema(doc, "StepInput")["oneOf"]]
    assert steps == [f"Step.{name}" for name in sorted(effects)]
    live = [ref["$ref"].removeprefix(REF) for ref in schema(doc, "LiveStepInput")["oneOf"]]
    assert live == [f"Step.{name}" for name in sorted(effects) if not effects[name]["offline_only"]]
    assert len(live) < len(steps)  # the mastering pack's normalizers are offline-only
    for name, effect in effects.items():
        step = schema(doc, f"Step.{name}")
        assert step["properties"]["effect"] == {"const": name}
        assert step["additionalProperties"] is False
        params = schema(doc, step["properties"]["params"]["$ref"].removeprefix(REF))
        assert {k: v for k, v in params.items() if k != "title"} == {
            k: v for k, v in effect["params_schema"].items() if k != "title"
        }
        presets = step["properties"]["preset"].get("enum", [None])
        assert presets == [*effect["presets"], None]
    # The document's own requests name steps of installed effects.
    assert body_of(doc, "post", "/api/chains")["schema"] == {"$ref": f"{REF}ChainCreate"}
    assert schema(doc, "ChainCreate")["properties"]["steps"]["items"] == {"$ref": f"{REF}StepInput"}


def test_chain_names_are_the_configured_ones_or_any_a_chain_can_be_saved_under(server, doc) -> None:
    with server.client() as client:
        configured = sorted(c["name"] for c in client.get("/api/chains").json() if c["source"] == "config")
    assert configured  # plugins.toml's
    enum, saved = schema(doc, "ChainRef")["anyOf"]
    assert enum["enum"] == configured
    assert saved["pattern"] == "^[a-z0-9][a-z0-9_-]{0,63}$"
    render = schema(doc, "RenderCreate")["properties"]["chain"]["anyOf"]
    assert {"$ref": f"{REF}ChainRef"} in render


def test_every_request_example_is_accepted(server, doc) -> None:
    """The examples are what a client starts from: each works on this server as it stands
    (a render's example asset id is replaced by a real upload's)."""
    with server.client() as client:
        asset = client.post(
            "/api/assets", params={"name": "take1.wav"}, content=encode(tone(0.3), 44100, "WAV")
        )
        assert asset.status_code == 201
        for path, method, expect in [
            ("/api/chains", "post", 201),
            ("/api/chains/{name}", "put", 201),
            ("/api/streams", "post", 201),
            ("/api/renders", "post", 202),
            ("/api/links", "post", 201),
        ]:
            example = body_of(doc, method, path)["example"]
            if path in ("/api/renders", "/api/links"):
                example = {**example, "asset": asset.json()["id"]}
            url = path.replace("{name}", "my-chain")
            r = client.request(method.upper(), url, json=example)
            assert r.status_code == expect, (path, r.text)
            if path == "/api/streams":
                stream = r.json()
        patch = body_of(doc, "patch", "/api/streams/{id}/steps/{index}")["example"]
        r = client.patch(f"/api/streams/{stream['id']}/steps/0", json=patch)
        assert r.status_code == 200, r.text


def test_render_events_match_the_documented_event_schema(server, doc) -> None:
    """What schemathesis (ST108) and any schema-checking client validate each event
    against: one server-sent event, whose data is JSON of a RenderView."""
    media = doc["paths"]["/api/renders/{id}/events"]["get"]["responses"]["200"]["content"]
    event_schema = {**media["text/event-stream"]["schema"], "components": doc["components"]}
    with server.client() as client:
        asset = client.post("/api/assets", params={"name": "e.wav"}, content=encode(tone(0.3), 44100, "WAV"))
        render = client.post("/api/renders", json={"asset": asset.json()["id"], "chain": "hall"}).json()
        with client.stream("GET", f"/api/renders/{render['id']}/events") as response:
            text = response.read().decode()
    events = []
    for block in filter(None, text.split("\n\n")):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append(fields)
    assert events and events[-1]["event"] == "done"
    for event in events:
        jsonschema.validate(event, event_schema)  # structure: event name, data a string
        data_schema = {**event_schema["properties"]["data"]["contentSchema"], "components": doc["components"]}
        jsonschema.validate(json.loads(event["data"]), data_schema)  # the data, as JSON
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"event": "finished", "data": "{}"}, event_schema)


def test_a_nul_in_a_saved_chain_is_refused_naming_the_field(server) -> None:
    """PostgreSQL stores no NUL in text: a saved chain's description or asset parameter
    with one was a 500 there (found by schemathesis), and stored on SQLite."""
    convolution = {"effect": "convolution", "params": {"impulse_response": "a\x00b"}}
    with server.client() as client:
        r = client.put("/api/chains/nul", json={"steps": [{"effect": "gain"}], "description": "a\x00b"})
        assert r.status_code == 422 and r.json()["errors"][0]["path"] == "description", r.text
        r = client.put("/api/chains/nul", json={"steps": [convolution]})
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["path"] == "steps[0].params.impulse_response", r.text
        assert client.get("/api/chains/nul").status_code == 404


def test_a_links_longest_life_is_this_servers_setting(server, doc) -> None:
    assert schema(doc, "LinkExpiresIn")["maximum"] == LINK_MAX
    with server.client() as client:
        asset = client.post("/api/assets", params={"name": "a.wav"}, content=encode(tone(0.1), 44100, "WAV"))
        body = {"action": "download", "asset": asset.json()["id"]}
        assert client.post("/api/links", json={**body, "expires_in": LINK_MAX}).status_code == 201
        r = client.post("/api/links", json={**body, "expires_in": LINK_MAX + 1})
        assert r.status_code == 422 and r.json()["errors"][0]["path"] == "expires_in", r.text
