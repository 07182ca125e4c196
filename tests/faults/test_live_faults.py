"""Broken effects in live audio: a ``/ws/process`` session or a shared stream whose effect
fails or hangs ends with an error message naming the effect and close code 1011, while
another session (or stream) carries on with correct output, and the server stays up."""

from __future__ import annotations

import json
import threading

import httpx
import numpy as np
import pytest
from faultkit import BLOCK_LIMIT, DELAY, FAULTS, HANGS, delay_chain
from restkit import tone
from websockets.exceptions import ConnectionClosed
from wskit import Session, deinterleave, interleave, open_ws

RATE = 48000
AUDIO = tone(2.0, RATE, 2, seed=5)
SMALL = 256  # processed on the event loop
LARGE = 8192  # larger than FXHOST_INLINE_FRAMES: processed in a worker thread


class Bystander(threading.Thread):
    """A /ws/process session through DELAY, sending blocks until told to stop; its output
    must equal the engine's, block for block."""

    def __init__(self, base: str):
        super().__init__(daemon=True)
        self.session = Session(base, steps=[DELAY], sample_rate=RATE, channels=2)
        self.stop = threading.Event()
        self.blocks = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        expected = delay_chain(RATE, 2)
        try:
            position = 0
            while not self.stop.is_set() or self.blocks < 20:
                block = AUDIO[:, position : position + SMALL]
                np.testing.assert_allclose(self.session.process(block), expected.process(block), atol=1e-6)
                position = (position + SMALL) % (AUDIO.shape[1] - SMALL)
                self.blocks += 1
        except BaseException as error:  # reported by finish()
            self.error = error
        finally:
            self.session.close()

    def finish(self) -> None:
        self.stop.set()
        self.join(timeout=30)
        assert not self.is_alive() and self.error is None, self.error
        assert self.blocks >= 20


def closed_with_error(ws, code: str, effect: str) -> str:
    """The session's last words: an error message naming the effect, then close 1011."""
    while True:
        message = ws.recv(timeout=30)
        if isinstance(message, str):
            break
    error = json.loads(message)
    assert error["type"] == "error" and error["code"] == code, error
    assert error["message"].startswith(f"steps[0] ({effect}): "), error
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=10)
    assert ws.close_code == 1011
    return error["message"]


def start(base: str, effect: str):
    ws = open_ws(base, "/ws/process")
    ws.send(json.dumps({"type": "start", "steps": [{"effect": effect}], "sample_rate": RATE}))
    return ws


@pytest.mark.parametrize("effect", sorted(FAULTS))
def test_ws_process_fault_ends_the_session_naming_the_effect(server, effect):
    bystander = Bystander(server.base)
    bystander.start()
    ws = start(server.base, effect)
    if effect != "broken_init":  # that one fails at start, before "ready"
        assert '"ready"' in ws.recv(timeout=10)
        ws.send(interleave(AUDIO[:, :SMALL]))
    message = closed_with_error(ws, "effect_failed", effect)
    assert FAULTS[effect] in message
    bystander.finish()
    assert httpx.get(f"{server.base}/health").status_code == 200


@pytest.mark.parametrize("frames", [SMALL, LARGE], ids=["on-the-loop", "in-a-thread"])
@pytest.mark.parametrize("effect", HANGS)
def test_ws_process_hung_block_ends_the_session_after_the_deadline(server, effect, frames):
    bystander = Bystander(server.base)
    bystander.start()
    ws = start(server.base, effect)
    assert '"ready"' in ws.recv(timeout=10)
    ws.send(interleave(AUDIO[:, :frames]))
    message = closed_with_error(ws, "effect_timeout", effect)
    assert message == f"steps[0] ({effect}): took longer than {BLOCK_LIMIT} s on one block"
    bystander.finish()
    # The server is responsive, and the next sessions run (the stuck thread's pool was replaced).
    assert httpx.get(f"{server.base}/health").status_code == 200
    for _ in range(3):
        again = Bystander(server.base)
        again.start()
        again.finish()


def create_stream(client, steps) -> dict:
    r = client.post("/api/streams", json={"chain": steps, "sample_rate": RATE, "channels": 2})
    assert r.status_code == 201, r.text
    return r.json()


def test_stream_fault_closes_its_consumers_and_producers_naming_the_effect(server, client):
    healthy, broken = create_stream(client, [DELAY]), create_stream(client, [{"effect": "broken_nan"}])
    listeners = {
        name: open_ws(server.base, f"/ws/streams/{s['id']}/output")
        for name, s in (("healthy", healthy), ("broken", broken))
    }
    producers = {
        name: open_ws(server.base, f"/ws/streams/{s['id']}/input")
        for name, s in (("healthy", healthy), ("broken", broken))
    }
    producers["broken"].send(interleave(AUDIO[:, :SMALL]))
    closed_with_error(listeners["broken"], "effect_failed", "broken_nan")
    # The producer learns of it with its next block; REST clients get a 502 naming it.
    producers["broken"].send(interleave(AUDIO[:, SMALL : 2 * SMALL]))
    closed_with_error(producers["broken"], "effect_failed", "broken_nan")
    r = client.get(f"/api/streams/{broken['id']}/output")
    assert r.status_code == 502 and r.json()["detail"] == "steps[0] (broken_nan): returned NaN/Inf"

    # The healthy stream carries on: its listener hears exactly what the engine makes.
    expected = delay_chain(RATE, 2)
    for i in range(0, 4 * SMALL, SMALL):
        producers["healthy"].send(interleave(AUDIO[:, i : i + SMALL]))
    heard = []
    while sum(block.shape[1] for block in heard) < 4 * SMALL:
        heard.append(deinterleave(listeners["healthy"].recv(timeout=10), 2))
    np.testing.assert_allclose(
        np.concatenate(heard, axis=1), expected.process(AUDIO[:, : 4 * SMALL]), atol=1e-6
    )
    for ws in (*listeners.values(), *producers.values()):
        ws.close()
    assert client.delete(f"/api/streams/{healthy['id']}").status_code == 204


@pytest.mark.parametrize("effect", HANGS)
def test_hung_stream_closes_after_the_deadline(server, client, effect):
    bystander = Bystander(server.base)
    bystander.start()
    stream = create_stream(client, [{"effect": effect}])
    listener = open_ws(server.base, f"/ws/streams/{stream['id']}/output")
    r = client.post(f"/api/streams/{stream['id']}/input", content=interleave(AUDIO[:, :SMALL]))
    assert r.status_code == 200, r.text
    message = closed_with_error(listener, "effect_timeout", effect)
    assert message == f"steps[0] ({effect}): took longer than {BLOCK_LIMIT} s on one block"
    bystander.finish()
    assert client.get("/health").status_code == 200


def test_stream_with_an_effect_that_fails_to_start_is_refused(client):
    r = client.post("/api/streams", json={"chain": [{"effect": "broken_init"}], "sample_rate": RATE})
    assert r.status_code == 502, r.text
    assert r.json()["detail"].startswith("steps[0] (broken_init): failed to start: raised MemoryError")
    assert client.get("/api/streams").json() == []


PARAMS_FAULT = "steps[0] (broken_params): failed to take new parameters: raised ValueError"


def test_ws_process_effect_refusing_a_live_change_ends_the_session_naming_it(server):
    bystander = Bystander(server.base)
    bystander.start()
    ws = start(server.base, "broken_params")
    assert json.loads(ws.recv(timeout=10))["type"] == "ready"
    ws.send(interleave(AUDIO[:, :SMALL]))
    assert isinstance(ws.recv(timeout=10), bytes)
    ws.send(json.dumps({"type": "set", "step": 0, "params": {"amount": 0.9}}))
    assert closed_with_error(ws, "effect_failed", "broken_params").startswith(PARAMS_FAULT)
    bystander.finish()


def test_stream_effect_refusing_a_live_change_stops_the_stream_naming_it(server, client):
    stream = create_stream(client, [{"effect": "broken_params"}])
    listener = open_ws(server.base, f"/ws/streams/{stream['id']}/output")
    r = client.patch(f"/api/streams/{stream['id']}/steps/0", json={"amount": 0.9})
    assert r.status_code == 502 and r.json()["detail"].startswith(PARAMS_FAULT), r.text
    closed_with_error(listener, "effect_failed", "broken_params")
    r = client.get(f"/api/streams/{stream['id']}")
    assert r.status_code == 502 and r.json()["detail"].startswith(PARAMS_FAULT)
    assert client.get("/health").status_code == 200
