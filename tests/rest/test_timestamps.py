"""Every timestamp the API sends is ISO-8601 in UTC, whatever the resource: assets,
renders and streams alike, and the OpenAPI document says so (``format: date-time``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from restkit import encode, tone
from test_renders_rest import wait

SR = 44100
#: Field names that hold a point in time, in any resource.
TIMESTAMPS = {"created", "updated", "started", "finished", "revoked", "expires"}


def timestamps(value, path=""):
    """(path, value) of every timestamp-named field, at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in TIMESTAMPS or key.endswith(("_at", "_time")):
                yield f"{path}.{key}", item
            yield from timestamps(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from timestamps(item, f"{path}[{i}]")


def assert_iso_utc(body, before: datetime) -> int:
    found = 0
    for path, value in timestamps(body):
        if value is None:  # a render not started or not finished yet
            continue
        assert isinstance(value, str), f"{path} = {value!r} is not an ISO-8601 string"
        moment = datetime.fromisoformat(value)
        assert moment.utcoffset() == timedelta(0), f"{path} = {value!r} is not UTC"
        assert before - timedelta(seconds=5) <= moment <= datetime.now(moment.tzinfo) + timedelta(seconds=5)
        found += 1
    return found


def test_every_resource_sends_iso_8601_utc_timestamps(client):
    before = datetime.now().astimezone()
    r = client.post("/api/assets", params={"name": "ts.wav"}, content=encode(tone(0.2, SR), SR, "WAV"))
    assert r.status_code == 201, r.text
    asset = r.json()
    r = client.post("/api/renders", json={"asset": asset["id"], "chain": "hall", "tail": False})
    assert r.status_code == 202, r.text
    render = wait(client, r.json()["id"])
    r = client.post("/api/streams", json={"chain": "hall", "sample_rate": SR})
    assert r.status_code == 201, r.text
    stream = r.json()

    bodies = {
        "asset": asset,
        "assets": client.get("/api/assets").json(),
        "render": render,
        "stream": stream,
        "stream by id": client.get(f"/api/streams/{stream['id']}").json(),
        "streams": client.get("/api/streams").json(),
    }
    counts = {name: assert_iso_utc(body, before) for name, body in bodies.items()}
    assert all(counts.values()), counts  # every resource has at least its "created"
    assert counts["render"] >= 4  # created, started, finished; its result asset's created
    client.delete(f"/api/streams/{stream['id']}")


def test_the_openapi_document_declares_every_timestamp_a_date_time(client):
    doc = client.get("/openapi.json").json()
    declared = []
    for name, schema in doc["components"]["schemas"].items():
        for field, prop in schema.get("properties", {}).items():
            if field in TIMESTAMPS or field.endswith(("_at", "_time")):
                options = prop.get("anyOf", [prop])
                formats = {o.get("format") for o in options if o.get("type") != "null"}
                assert formats == {"date-time"}, f"{name}.{field}: {prop}"
                declared.append(f"{name}.{field}")
    # An asset's, a render's and a stream's, at least.
    assert sum(field.endswith(".created") for field in declared) >= 3, declared
