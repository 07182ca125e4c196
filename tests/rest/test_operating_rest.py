"""Operating a server from plugins.toml, over real HTTP and WebSocket: chains report
their latency and are held to their budget; a live session states the latency to
expect; renders record the chain they ran, render it again from that record (refused
when a version no longer matches), and with FXHOST_RENDER_CACHE reuse an earlier
identical render's result."""

import numpy as np
import pedalboard
import pytest
from restkit import BACKENDS, decode, encode, fresh_postgres, start_server, tone
from waiting import wait_until
from wskit import Session

SR = 48000
#: pitch_shift holds 0.3 s back (Rubber Band's window): 14400 frames at 48 kHz.
PITCH_LATENCY = 14400
CONFIG = """
[plugins.require]
fxhost-pedalboard = ">=0.1"

[chains.room]
max_latency_ms = 5
steps = [{ effect = "reverb", params = { room_size = 0.4 } }]

[chains.shifted]
max_latency_ms = 400
[[chains.shifted.steps]]
effect = "gain"
params = { gain_db = -3 }
[[chains.shifted.steps]]
effect = "pitch_shift"
params = { semitones = 2 }
"""


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tmp_path_factory):
    """A real server with the config above and the render cache on."""
    root = tmp_path_factory.mktemp(f"ops-{request.param}")
    (root / "plugins.toml").write_text(CONFIG)
    env = {"FXHOST_PLUGINS_CONFIG": str(root / "plugins.toml"), "FXHOST_RENDER_CACHE": "true"}
    if request.param == "postgres":
        env["FXHOST_DATABASE_URL"] = fresh_postgres()
    srv = start_server(root, env)
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    with server.client() as c:
        yield c


def test_chains_report_their_latency_and_budget(client):
    chains = {c["name"]: c for c in client.get("/api/chains").json()}
    shifted = chains["shifted"]
    assert shifted["max_latency_ms"] == 400
    assert shifted["latency"] == {
        "frames": PITCH_LATENCY,
        "ms": 300.0,
        "sample_rate": SR,
        "steps": [0, PITCH_LATENCY],
    }
    assert chains["room"]["latency"]["frames"] == 0
    assert client.get("/api/chains/shifted").json()["latency"]["frames"] == PITCH_LATENCY


def test_a_chain_over_its_budget_is_refused_and_not_saved(client):
    steps = [{"effect": "pitch_shift", "params": {"semitones": 1}}]
    refused = client.post("/api/chains", json={"name": "too-slow", "steps": steps, "max_latency_ms": 100})
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert [e["path"] for e in problem["errors"]] == ["max_latency_ms"]
    assert (
        "300 ms" in problem["errors"][0]["message"]
        and "steps[0] pitch_shift 14400" in problem["errors"][0]["message"]
    )
    assert client.get("/api/chains/too-slow").status_code == 404

    made = client.post("/api/chains", json={"name": "slow-ok", "steps": steps, "max_latency_ms": 300})
    assert made.status_code == 201, made.text
    assert made.json()["latency"]["ms"] == 300.0 and made.json()["max_latency_ms"] == 300
    # Updating it to a tighter budget is refused too, and leaves it as it was.
    tighter = client.put("/api/chains/slow-ok", json={"steps": steps, "max_latency_ms": 50})
    assert tighter.status_code == 422 and tighter.json()["errors"][0]["path"] == "max_latency_ms"
    assert client.get("/api/chains/slow-ok").json()["max_latency_ms"] == 300
    assert client.delete("/api/chains/slow-ok").status_code == 204


def test_live_session_states_the_latency_to_expect(server, client):
    session = Session(server.base, chain="shifted", sample_rate=SR, channels=2, block=512)
    try:
        ready = session.ready
        assert ready["latency"] == PITCH_LATENCY and ready["latency_ms"] == 300.0
        assert ready["expected_latency"] == {
            "block_frames": 512,
            "buffer_frames": 0,
            "chain_frames": PITCH_LATENCY,
            "total_frames": 512 + PITCH_LATENCY,
            "total_ms": round((512 + PITCH_LATENCY) * 1000 / SR, 3),
        }
    finally:
        session.close()
    stream = client.post("/api/streams", json={"chain": "shifted", "sample_rate": SR})
    assert stream.status_code == 201, stream.text
    info = stream.json()
    assert info["latency"] == PITCH_LATENCY and info["latency_ms"] == 300.0
    assert client.delete(f"/api/streams/{info['id']}").status_code in (200, 204)


def upload(client, audio, name="src.wav"):
    content = audio if isinstance(audio, bytes) else encode(audio, SR, "WAV", "FLOAT")
    response = client.post("/api/assets", params={"name": name}, content=content)
    assert response.status_code == 201, response.text
    return response.json()


def render(client, body) -> dict:
    response = client.post("/api/renders", json=body)
    assert response.status_code == 202, response.text

    def finished():
        view = client.get(f"/api/renders/{response.json()['id']}").json()
        return view if view["status"] in ("done", "failed") else None

    done = wait_until(finished, 60, interval=0.05, what="a render finishing")
    assert done["status"] == "done", done
    return done


def audio_of(client, view) -> np.ndarray:
    return decode(client.get(f"/api/assets/{view['result']['id']}/audio").content)[0]


def test_render_records_its_chain_and_renders_it_again_from_the_record(client):
    audio = 0.5 * tone(1.0, SR)
    asset = upload(client, audio)
    chain = [{"effect": "reverb", "params": {"room_size": 0.6}}]
    first = render(
        client, {"asset": asset["id"], "chain": chain, "tail": False, "output": {"subtype": "FLOAT"}}
    )
    recorded = first["recorded"]
    [step] = recorded["steps"]
    assert (step["effect"], step["effect_version"], step["plugin"]) == ("reverb", "1.0.0", "pedalboard")
    assert step["plugin_version"] and first["cached_from"] is None
    # Every parameter is written out, the defaults too.
    assert step["params"] == {
        "room_size": 0.6,
        "damping": 0.5,
        "wet_level": 0.33,
        "dry_level": 0.4,
        "width": 1.0,
        "freeze_mode": 0.0,
    }
    expected = pedalboard.Reverb(room_size=0.6).process(audio, SR)
    np.testing.assert_allclose(audio_of(client, first), expected, atol=1e-6)

    # The record as the chain of a new render: the same sound (another input, so no cache).
    other = upload(client, 0.5 * tone(1.0, SR, seed=3), "other.wav")
    again = render(
        client, {"asset": other["id"], "chain": recorded, "tail": False, "output": {"subtype": "FLOAT"}}
    )
    assert again["recorded"]["steps"] == recorded["steps"] and again["cached_from"] is None
    np.testing.assert_allclose(
        audio_of(client, again),
        pedalboard.Reverb(room_size=0.6).process(0.5 * tone(1.0, SR, seed=3), SR),
        atol=1e-6,
    )


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("effect_version", "0.9.0", "'reverb' is version 1.0.0 here, the render recorded 0.9.0"),
        ("plugin_version", "0.0.1", "the render recorded 0.0.1: it would not sound the same"),
        ("plugin", "someone-else", "comes from plugin 'pedalboard' here, the render recorded 'someone-else'"),
    ],
)
def test_a_recorded_chain_whose_versions_changed_is_refused(client, field, value, says):
    asset = upload(client, 0.3 * tone(0.2, SR))
    recorded = render(client, {"asset": asset["id"], "chain": "room"})["recorded"]
    recorded["steps"][0][field] = value
    refused = client.post("/api/renders", json={"asset": asset["id"], "chain": recorded})
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["errors"]
    assert error["path"] == f"chain.steps[0].{field}" and says in error["message"]


def test_render_cache_reuses_an_identical_render(client):
    # The file's bytes, once: a float WAV's PEAK chunk holds the time it was written.
    audio = encode(0.4 * tone(1.5, SR, seed=7), SR, "WAV", "FLOAT")
    asset = upload(client, audio, "cached.wav")
    body = {"asset": asset["id"], "chain": "room", "output": {"format": "flac"}}
    first = render(client, body)
    assert first["cached_from"] is None
    rendered = audio_of(client, first)
    second = render(client, body)
    assert second["cached_from"] == first["id"] and second["result"]["id"] == first["result"]["id"]
    assert second["recorded"] == first["recorded"] and second["peak_dbfs"] == first["peak_dbfs"]

    # The same file uploaded again is the same input: content-addressed.
    copy = upload(client, audio, "copy.wav")
    third = render(client, {**body, "asset": copy["id"]})
    assert third["cached_from"] == first["id"]

    # Anything the output depends on makes another render: a parameter, the format, the tail.
    for changed in (
        {**body, "chain": [{"effect": "reverb", "params": {"room_size": 0.41}}]},
        {**body, "output": {"format": "wav"}},
        {**body, "tail": False},
    ):
        assert render(client, changed)["cached_from"] is None

    # A deleted result is not reused: the next render renders again.
    assert client.delete(f"/api/assets/{first['result']['id']}").status_code == 204
    fourth = render(client, body)
    assert fourth["cached_from"] is None and fourth["result"]["id"] != first["result"]["id"]
    np.testing.assert_array_equal(audio_of(client, fourth), rendered)


def test_render_cache_is_per_api_key(tmp_path):
    """Another key's identical render is rendered, not reused: a cache hit would hand it
    the first key's result (and tell it that this audio was rendered before)."""
    keys = ["key-a-0123456789abcdef", "key-b-0123456789abcdef"]
    srv = start_server(tmp_path, {"FXHOST_RENDER_CACHE": "true", "FXHOST_API_KEYS": ",".join(keys)})
    try:
        audio = 0.4 * tone(0.5, SR, seed=9)
        views = {}
        for key in keys:
            with srv.client(headers={"Authorization": f"Bearer {key}"}) as client:
                asset = upload(client, audio)
                body = {"asset": asset["id"], "chain": "hall"}
                views[key] = (render(client, body), render(client, body))
        (a1, a2), (b1, b2) = views[keys[0]], views[keys[1]]
        assert a1["cached_from"] is None and a2["cached_from"] == a1["id"]
        assert b1["cached_from"] is None and b2["cached_from"] == b1["id"]
        assert b1["result"]["id"] != a1["result"]["id"]
    finally:
        srv.stop()
