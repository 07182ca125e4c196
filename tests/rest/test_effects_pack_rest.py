"""Issue 5 end to end: a convolution reverb whose impulse response is an uploaded asset
(over REST, WebSocket and plugins.toml), offline-only effects in renders and refused in
streams, presets in chain steps, and the effect listing."""

import json

import numpy as np
import pedalboard
import pyloudnorm
import pytest
from restkit import decode, encode, start_server, tone
from waiting import wait_until
from wskit import Session, open_ws

SR = 48000


def impulse_response(seconds=0.3, channels=2, seed=5):
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    decay = np.exp(-np.arange(n) / (0.05 * SR))
    ir = (rng.standard_normal((channels, n)) * decay * 0.3).astype(np.float32)
    ir[:, 0] = 1.0
    return ir


def upload(client, audio, name):
    response = client.post("/api/assets", params={"name": name}, content=encode(audio, SR, "WAV", "FLOAT"))
    assert response.status_code == 201, response.text
    return response.json()


def wait(client, render_id):
    def finished() -> dict | None:
        body = client.get(f"/api/renders/{render_id}").json()
        return body if body["status"] in ("done", "failed") else None

    return wait_until(finished, 60, interval=0.05, what=f"render {render_id} finishing")


def expected_convolution(audio, ir, tail_frames, mix=1.0):
    padded = np.concatenate([audio, np.zeros((audio.shape[0], tail_frames), np.float32)], axis=1)
    return pedalboard.Convolution(ir, mix=mix, sample_rate=SR).process(padded, SR)


def test_convolution_with_an_uploaded_impulse_response_over_rest(client):
    ir = impulse_response()
    ir_asset = upload(client, ir, "church-ir.wav")
    audio = tone(1.0, sample_rate=SR)
    source = upload(client, audio, "dry.wav")
    render = client.post(
        "/api/renders",
        json={
            "asset": source["id"],
            "output": {"format": "wav", "subtype": "FLOAT"},
            "chain": [{"effect": "convolution", "params": {"impulse_response": ir_asset["id"], "mix": 0.7}}],
        },
    )
    assert render.status_code == 202, render.text
    done = wait(client, render.json()["id"])
    assert done["status"] == "done", done
    out, _ = decode(client.get(f"/api/assets/{done['result']['id']}/audio").content)
    expected = expected_convolution(audio, ir, out.shape[1] - audio.shape[1], mix=0.7)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_convolution_over_websocket(client, server):
    ir_asset = upload(client, impulse_response(seed=6), "room-ir.wav")
    audio = tone(0.5, sample_rate=SR)
    session = Session(
        server.base,
        steps=[{"effect": "convolution", "params": {"impulse_response": ir_asset["id"]}}],
        sample_rate=SR,
        channels=2,
    )
    assert session.ready["type"] == "ready", session.ready
    out = np.concatenate([session.process(audio[:, i : i + 480]) for i in range(0, audio.shape[1], 480)], 1)
    session.close()
    expected = expected_convolution(audio, impulse_response(seed=6), 0)
    latency = session.ready["latency"]
    np.testing.assert_allclose(out[:, latency:], expected[:, : out.shape[1] - latency], atol=1e-5)


@pytest.mark.parametrize("where", ["render", "ws"])
def test_missing_impulse_response_is_named(client, server, where):
    steps = [{"effect": "convolution", "params": {"impulse_response": "no-such-asset"}}]
    if where == "render":
        source = upload(client, tone(0.1, sample_rate=SR), "x.wav")
        response = client.post("/api/renders", json={"asset": source["id"], "chain": steps})
        assert response.status_code == 422
        assert response.json()["errors"][0]["path"] == "chain[0].params.impulse_response"
    else:
        ws = open_ws(server.base, "/ws/process")
        ws.send(json.dumps({"type": "start", "steps": steps}))
        message = json.loads(ws.recv(timeout=10))
        assert message["type"] == "error" and message["path"] == "steps[0].params.impulse_response"


def test_convolution_chain_from_plugins_toml(tmp_path):
    config = tmp_path / "fx.toml"
    config.write_text(
        '[chains.church]\nsteps = [{ effect = "convolution", '
        'params = { impulse_response = "church-ir.wav" } }]\n'
    )
    server = start_server(tmp_path, {"FXHOST_PLUGINS_CONFIG": str(config)})
    try:
        with server.client() as client:
            missing = client.post(
                "/api/process", params={"chain": "church"}, content=encode(tone(0.1), SR, "WAV")
            )
            assert missing.status_code == 422
            assert missing.json()["errors"][0]["path"] == "chains.church.steps[0].params.impulse_response"
            ir = impulse_response(seed=7)
            upload(client, ir, "church-ir.wav")
            audio = tone(0.5, sample_rate=SR)
            response = client.post(
                "/api/process",
                params={"chain": "church", "tail": "false"},
                content=encode(audio, SR, "WAV", "FLOAT"),
            )
            assert response.status_code == 200, response.text
            out, _ = decode(response.content)
            np.testing.assert_allclose(
                out, expected_convolution(audio, ir, 0)[:, : audio.shape[1]], atol=1e-5
            )
    finally:
        server.stop()


def test_offline_only_effects_render_and_are_refused_live(client, server):
    audio = tone(3.0, sample_rate=SR) * 0.2
    source = upload(client, audio, "quiet.wav")
    render = client.post(
        "/api/renders",
        json={
            "asset": source["id"],
            "tail": False,
            "output": {"format": "wav", "subtype": "FLOAT"},
            "chain": [
                {"effect": "reverb", "preset": "hall"},
                {"effect": "loudness_normalize", "params": {"target_lufs": -16}},
            ],
        },
    )
    done = wait(client, render.json()["id"])
    assert done["status"] == "done", done
    out, _ = decode(client.get(f"/api/assets/{done['result']['id']}/audio").content)
    assert pyloudnorm.Meter(SR).integrated_loudness(out.T) == pytest.approx(-16, abs=0.1)
    bad = client.post("/api/streams", json={"chain": [{"effect": "loudness_normalize"}]})
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "chain[0].effect"
    assert "offline-only" in bad.json()["errors"][0]["message"]
    ws = open_ws(server.base, "/ws/process")
    ws.send(json.dumps({"type": "start", "steps": [{"effect": "trim_silence"}]}))
    message = json.loads(ws.recv(timeout=10))
    assert message["type"] == "error" and "offline-only" in message["message"]


def test_presets_listed_and_used(client):
    reverb = client.get("/api/effects/reverb").json()
    assert reverb["presets"] and reverb["offline_only"] is False
    name, values = next(iter(reverb["presets"].items()))
    saved = client.post(
        "/api/chains",
        json={
            "name": "preset-test",
            "steps": [{"effect": "reverb", "preset": name, "params": {"wet_level": 0.05}}],
        },
    )
    assert saved.status_code == 201, saved.text
    params = saved.json()["steps"][0]["params"]
    assert params["wet_level"] == 0.05
    for key, value in values.items():
        if key != "wet_level":
            assert params[key] == pytest.approx(value)
    unknown = client.post(
        "/api/chains", json={"name": "p2", "steps": [{"effect": "reverb", "preset": "nope"}]}
    )
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["path"] == "steps[0].preset"
    client.delete("/api/chains/preset-test")


def test_every_effect_is_listed_with_a_schema(client):
    effects = {e["name"]: e for e in client.get("/api/effects").json()}
    for name in [
        "reverb",
        "delay",
        "chorus",
        "compressor",
        "limiter",
        "gain",
        "convolution",
        "pitch_shift",
        "loudness_normalize",
        "peak_normalize",
        "trim_silence",
    ]:
        assert name in effects, name
        assert effects[name]["params_schema"]["type"] == "object"
    assert effects["convolution"]["params_schema"]["properties"]["impulse_response"]["x-asset"] is True
    assert effects["loudness_normalize"]["offline_only"] is True
