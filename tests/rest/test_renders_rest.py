"""Renders over REST: 202 at once, progress by polling and by server-sent events, the
result an asset that matches pedalboard called directly."""

import json

import numpy as np
import pedalboard
import pytest
from restkit import STORAGE_BACKENDS, assert_resampled, decode, encode, serve_backend, tone
from test_process_rest import VOCAL_PLATE, reverb_tail, with_tail
from waiting import wait_until


@pytest.fixture(scope="module", params=STORAGE_BACKENDS)
def server(request, tmp_path_factory):
    """A real server on SQLite, on PostgreSQL, and with its audio in an S3 bucket (moto)."""
    yield from serve_backend(request, tmp_path_factory)


SR = 44100


def upload(client, audio, name="src.wav", sample_rate=SR):
    response = client.post(
        "/api/assets", params={"name": name}, content=encode(audio, sample_rate, "WAV", "FLOAT")
    )
    assert response.status_code == 201, response.text
    return response.json()


def wait(client, render_id, timeout=60):
    def finished() -> dict | None:
        body = client.get(f"/api/renders/{render_id}").json()
        return body if body["status"] in ("done", "failed") else None

    return wait_until(finished, timeout, interval=0.05, what=f"render {render_id} finishing")


def test_render_inline_chain_matches_pedalboard(client):
    audio = tone(2.0)
    asset = upload(client, audio)
    response = client.post(
        "/api/renders",
        json={
            "asset": asset["id"],
            "chain": [{"effect": "reverb", "params": {"room_size": 0.7}}],
            "output": {"format": "wav", "subtype": "FLOAT"},
        },
    )
    assert response.status_code == 202, response.text
    started = response.json()
    assert started["status"] in ("queued", "running", "done") and response.headers["location"].endswith(
        started["id"]
    )
    done = wait(client, started["id"])
    assert done["status"] == "done" and done["progress"] == 1.0 and done["error"] is None
    result = done["result"]
    assert result["kind"] == "render" and result["name"] == "src-render.wav"
    out, _rate = decode(client.get(f"/api/assets/{result['id']}/audio").content)
    tail = reverb_tail(SR, 2, room_size=0.7)
    expected = pedalboard.Reverb(room_size=0.7).process(with_tail(audio, tail), SR)
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_render_named_chain_resampled_to_flac(client):
    audio = 0.4 * tone(1.0)  # quiet enough not to clip, in or out
    asset = upload(client, audio, "voice.wav")
    response = client.post(
        "/api/renders",
        json={
            "asset": asset["id"],
            "chain": "vocal-plate",
            "tail": False,
            "output": {"format": "flac", "sample_rate": 48000},
        },
    )
    done = wait(client, response.json()["id"])
    assert done["status"] == "done", done
    assert done["result"]["name"] == "voice-vocal-plate.flac"
    assert (done["result"]["sample_rate"], done["result"]["format"]) == (48000, "FLAC")
    assert abs(done["result"]["frames"] - 48000) <= 1
    assert done["chain"]["name"] == "vocal-plate" and done["chain"]["steps"][0]["effect"] == "reverb"
    # The samples: the chain at 44.1 kHz, then resampled (see assert_resampled).
    out, rate = decode(client.get(f"/api/assets/{done['result']['id']}/audio").content)
    assert rate == 48000
    assert_resampled(out, pedalboard.Reverb(**VOCAL_PLATE).process(audio, SR), SR, 48000)


def test_progress_as_server_sent_events(client):
    asset = upload(client, tone(20.0), "long.wav")
    render = client.post("/api/renders", json={"asset": asset["id"], "chain": "ambient"}).json()
    events = []
    with client.stream("GET", f"/api/renders/{render['id']}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((kind, json.loads(line.removeprefix("data: "))))
    assert events[-1][0] == "done" and events[-1][1]["status"] == "done"
    progress = [data["progress"] for _, data in events]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert len(events) >= 2


@pytest.mark.parametrize(
    "body, path",
    [
        ({"asset": "nope", "chain": "hall"}, "asset"),
        ({"asset": "ASSET", "chain": "nope"}, "chain"),
        (
            {"asset": "ASSET", "chain": [{"effect": "reverb", "params": {"room_size": 3}}]},
            "chain[0].params.room_size",
        ),
        ({"asset": "ASSET", "chain": []}, "chain"),
        ({"asset": "ASSET", "chain": "hall", "output": {"format": "xyz"}}, "output.format"),
        (
            {"asset": "ASSET", "chain": "hall", "output": {"format": "flac", "subtype": "FLOAT"}},
            "output.subtype",
        ),
        ({"asset": "ASSET", "chain": "hall", "output": {"format": "opus"}}, "output.sample_rate"),
        ({"asset": "ASSET", "chain": "hall", "bogus": 1}, "bogus"),
        ({"chain": "hall"}, "asset"),
    ],
)
def test_bad_render_requests_name_the_field(client, body, path):
    asset = upload(client, tone(0.1), "bad.wav")
    before = client.get("/api/audio/statistics").json()["renders"]
    body = json.loads(json.dumps(body).replace("ASSET", asset["id"]))
    response = client.post("/api/renders", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["path"] == path
    assert client.get("/api/audio/statistics").json()["renders"] == before  # nothing created


def test_unknown_render_is_404(client):
    assert client.get("/api/renders/nope").status_code == 404
    assert client.get("/api/renders/nope/events").status_code == 404
