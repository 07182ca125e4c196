"""/ws/process over a real socket: output equals the offline render whatever the block
sizes, live parameter changes, flush of the tail, stats, and protocol abuse answered
with an error message and the right close code while the server carries on."""

import json

import numpy as np
import pedalboard
import pytest
from fxhost.catalog.chains import ResolvedStep
from fxhost.engine.compiled import CompiledChain
from fxhost_pedalboard import Reverb
from restkit import start_server
from websockets.exceptions import ConnectionClosed
from wskit import Session, open_ws

SR = 48000
HALL = {"room_size": 0.9, "damping": 0.6, "wet_level": 0.35, "dry_level": 0.6, "width": 1.0}


def signal(seconds=1.0, channels=2, seed=0):
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    x = 0.4 * np.sin(2 * np.pi * 440 * t) + 0.2 * rng.standard_normal(n)
    return np.stack([x * (1 - 0.2 * c) for c in range(channels)]).astype(np.float32)


def ragged(total):
    sizes = [1, 7, 256, 4096, 3, 512, 64, 1000, 2, 8000, 31]
    start, i = 0, 0
    while start < total:
        stop = min(total, start + sizes[i % len(sizes)])
        yield start, stop
        start, i = stop, i + 1


@pytest.mark.parametrize("blocks", ["fixed-256", "ragged"])
def test_output_equals_offline_render(server, blocks):
    x = signal()
    session = Session(server.base, chain="hall", sample_rate=SR, channels=2, format="f32le", block=256)
    ready = session.ready
    assert ready["type"] == "ready" and ready["latency"] == 0 and ready["sample_rate"] == SR
    spans = (
        [(i, min(i + 256, x.shape[1])) for i in range(0, x.shape[1], 256)]
        if blocks == "fixed-256"
        else list(ragged(x.shape[1]))
    )
    out = np.concatenate([session.process(x[:, a:b]) for a, b in spans], axis=1)
    tail, flushed = session.flush()
    session.close()
    assert flushed == {"type": "flushed", "frames": tail.shape[1]} and tail.shape[1] == ready["tail_frames"]
    padded = np.concatenate([x, np.zeros((2, tail.shape[1]), np.float32)], axis=1)
    expected = pedalboard.Reverb(**HALL).process(padded, SR)
    np.testing.assert_allclose(np.concatenate([out, tail], axis=1), expected, atol=1e-5)


def test_s16le_and_inline_steps(server):
    x = signal(0.5, channels=1)
    session = Session(
        server.base,
        steps=[{"effect": "reverb", "params": {"room_size": 0.3}}],
        sample_rate=SR,
        channels=1,
        format="s16le",
    )
    out = np.concatenate([session.process(x[:, a:b]) for a, b in ragged(x.shape[1])], axis=1)
    session.close()
    quantised = np.round(np.clip(x, -1, 32767 / 32768) * 32768) / 32768
    expected = pedalboard.Reverb(room_size=0.3).process(quantised, SR)
    np.testing.assert_allclose(out, expected, atol=2 / 32768)


def test_live_parameter_change_and_stats(server):
    x = signal()
    session = Session(server.base, chain="hall", sample_rate=SR, channels=2)
    first = session.process(x[:, :10000])
    session.send_json({"type": "set", "step": 0, "params": {"room_size": 0.2, "wet_level": 0.8}})
    updated = session.recv_json()
    assert updated["type"] == "updated" and updated["params"]["room_size"] == 0.2
    assert updated["params"]["damping"] == 0.6  # the rest kept
    session.send_json({"type": "set", "step": 0, "params": {"room_size": 7}})
    error = session.recv_json()
    assert error["type"] == "error" and error["path"] == "params.room_size"
    session.send_json({"type": "set", "step": 3, "params": {}})
    assert session.recv_json()["path"] == "step"
    second = np.concatenate([session.process(x[:, i : i + 8000]) for i in range(10000, x.shape[1], 8000)], 1)
    session.send_json({"type": "stats"})
    stats = session.recv_json()
    session.close()
    assert stats["type"] == "stats" and stats["frames_in"] == x.shape[1] == stats["frames_out"]
    # the same change at the same frame, offline
    effect = Reverb(SR, 2, Reverb.check_params(HALL))
    chain = CompiledChain([ResolvedStep("reverb", Reverb, effect.params)], SR, 2)
    a = chain.process(x[:, :10000])
    chain.set_params(0, {**HALL, "room_size": 0.2, "wet_level": 0.8})
    b = chain.process(x[:, 10000:])
    np.testing.assert_allclose(np.concatenate([first, second], 1), np.concatenate([a, b], 1), atol=1e-5)


def closed_with(ws):
    """The error message the server sent (if any) and the close code."""
    messages = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            message = ws.recv(timeout=10)
            if isinstance(message, str):
                messages.append(json.loads(message))
    return messages, closed.value.rcvd.code if closed.value.rcvd else None


START = json.dumps({"type": "start", "chain": "hall", "sample_rate": SR, "channels": 2})


@pytest.mark.parametrize(
    "first, then, code, error_code",
    [
        (b"\x00" * 32, None, 1003, "expected_start"),
        (json.dumps({"type": "stats"}), None, 1008, "expected_start"),
        (json.dumps({"type": "start", "chain": "no-such-chain"}), None, 1008, "unknown_chain"),
        (json.dumps({"type": "start", "chain": "hall", "channels": 0}), None, 1008, "invalid_start"),
        (
            json.dumps({"type": "start", "steps": [{"effect": "reverb", "params": {"room_size": 9}}]}),
            None,
            1008,
            "invalid_start",
        ),
        (json.dumps({"type": "nope"}), None, 1008, "invalid_start"),
        ("{not json", None, 1008, "invalid_start"),
        (START, b"\x00" * 7, 1007, "invalid_audio"),
        (START, np.full(64, np.nan, np.float32).tobytes(), 1007, "invalid_audio"),
        (START, b"\x00" * 400_000, 1009, "too_big"),
    ],
)
def test_protocol_abuse_gets_an_error_and_a_close_code(server, first, then, code, error_code):
    bystander = Session(server.base, chain="hall", sample_rate=SR, channels=2)
    ws = open_ws(server.base, "/ws/process")
    ws.send(first)
    if then is not None:
        assert json.loads(ws.recv(timeout=10))["type"] == "ready"
        ws.send(then)
    messages, close_code = closed_with(ws)
    assert close_code == code
    assert messages and messages[-1]["type"] == "error" and messages[-1]["code"] == error_code, messages
    # the server and the other session carry on
    block = signal(0.01)
    assert bystander.process(block).shape == block.shape
    bystander.close()


def test_text_garbage_mid_session_is_an_error_not_a_close(server):
    session = Session(server.base, chain="hall", sample_rate=SR, channels=2)
    session.send_json({"type": "bogus"})
    assert session.recv_json()["type"] == "error"
    session.ws.send("not json at all")
    assert session.recv_json()["code"] == "invalid_message"
    session.send_json({"type": "start", "chain": "hall"})
    assert session.recv_json()["code"] == "already_started"
    x = signal(0.01)
    assert session.process(x).shape == x.shape
    session.close()


def test_connection_limit(tmp_path):
    server = start_server(tmp_path, {"FXHOST_MAX_CONNECTIONS": "2"})
    try:
        a = Session(server.base, chain="hall")
        b = Session(server.base, chain="hall")
        ws = open_ws(server.base, "/ws/process")
        messages, code = closed_with(ws)
        assert code == 1013 and messages[0]["code"] == "busy"
        a.close()
        b.close()
    finally:
        server.stop()
