"""Broken effects in renders, ``/api/process`` and ``fxhost render``: the job fails with a
report naming the step and the effect, a hung one is stopped by the time limit, and
bystanders doing normal work at the same time get their correct results.

That a hung task holds no one up is shown on a server whose limit is never reached
(``patient_server``), so that it does not depend on how fast the machine runs the
bystanders; that the limit stops it, on one with a 2 s limit."""

from __future__ import annotations

import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from clitools import run_fxhost
from faultkit import DELAY, FAULTS, HANGS, PLUGINS_TOML, RENDER_LIMIT, delayed, hangs
from restkit import decode, descendants, encode, kill_tree, tone
from waiting import wait_until

RATE = 44100
AUDIO = tone(0.5, RATE, 2, seed=3)
WAV = encode(AUDIO, RATE, "WAV", "FLOAT")


@pytest.fixture(scope="module")
def asset(server):
    with server.client() as c:
        r = c.post("/api/assets", params={"name": "tone.wav"}, content=WAV)
        assert r.status_code == 201, r.text
        return r.json()["id"]


def finished(client, render_id: str, seconds: float = 60) -> dict:
    def view() -> dict | None:
        body = client.get(f"/api/renders/{render_id}").json()
        return body if body["status"] in ("done", "failed") else None

    return wait_until(view, seconds, interval=0.05, what=f"render {render_id} finishing")


def render(client, asset: str, steps: list) -> str:
    r = client.post("/api/renders", json={"asset": asset, "chain": steps, "output": {"subtype": "FLOAT"}})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def check_bystander_render(client, render_id: str) -> None:
    view = finished(client, render_id)
    assert view["status"] == "done", view
    audio, _ = decode(client.get(f"/api/assets/{view['result']['id']}/audio").content)
    np.testing.assert_allclose(audio, delayed(AUDIO, RATE, tail=True), atol=1e-6)


def asset_count(client) -> int:
    return len(client.get("/api/assets", params={"limit": 1000}).json()["items"])


@pytest.mark.parametrize("effect", sorted(FAULTS))
def test_broken_render_fails_naming_the_effect(server, client, asset, effect):
    assets_before = asset_count(client)
    broken = render(client, asset, [DELAY, {"effect": effect}])
    bystander = render(client, asset, [DELAY])
    view = finished(client, broken)
    assert view["status"] == "failed" and view["result"] is None
    assert view["error"].startswith(f"steps[1] ({effect}): "), view["error"]
    assert FAULTS[effect] in view["error"]
    check_bystander_render(client, bystander)
    assert asset_count(client) == assets_before + 1  # the bystander's result, nothing of the broken one
    assert client.get("/health").status_code == 200


def test_hung_render_and_process_hold_up_no_one(patient_server):
    """While a render hangs holding the GIL and an /api/process request hangs in C, each
    in a worker, renders and process requests sent after them complete on the third
    worker, equal to the engine's output sample for sample, and the hung ones still run:
    their limit is an hour away, whatever the machine's speed."""
    server = patient_server
    with server.client() as client, server.client() as stuck_client, ThreadPoolExecutor(1) as pool:
        r = client.post("/api/assets", params={"name": "tone.wav"}, content=WAV)
        assert r.status_code == 201, r.text
        asset = r.json()["id"]
        hung = render(client, asset, [{"effect": "broken_spin"}])
        wait_until(lambda: hangs(server, "broken_spin") == 1, what="the render hanging")
        stuck = pool.submit(process, stuck_client, "broken_sleep")
        wait_until(lambda: hangs(server, "broken_sleep") == 1, what="the process request hanging")
        for bystander in [render(client, asset, [DELAY]) for _ in range(2)]:
            check_bystander_render(client, bystander)
        check_bystander_process(client)
        assert client.get(f"/api/renders/{hung}").json()["status"] == "running"
        assert not stuck.done()
        kill_tree(server)  # what ends a task an hour from its limit
        with pytest.raises(httpx.TransportError):
            stuck.result()


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting for init to reap it has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(sys.platform != "linux", reason="reads the process tree from /proc")
def test_a_killed_server_leaves_no_worker_behind(patient_server):
    """SIGKILL to the server alone, while a worker is stuck in an effect: the forkserver
    and every worker go too. (Each worker used to inherit the write end of the
    forkserver's liveness pipe, so the stuck worker kept the forkserver alive, and the
    forkserver the worker.)"""
    server = patient_server
    with server.client() as client:
        r = client.post("/api/assets", params={"name": "tone.wav"}, content=WAV)
        assert r.status_code == 201, r.text
        render(client, r.json()["id"], [{"effect": "broken_spin"}])
        wait_until(lambda: hangs(server, "broken_spin") == 1, what="the render hanging")
    tree = descendants(server.proc.pid)
    assert len(tree) >= 4, tree  # the forkserver and its three workers, at least
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    wait_until(lambda: not any(alive(pid) for pid in tree), what="the server's processes ending")


@pytest.mark.parametrize("effect", HANGS)
def test_hung_render_is_stopped_by_the_time_limit(server, client, asset, effect):
    before = hangs(server, effect)
    hung = render(client, asset, [{"effect": effect}])
    wait_until(lambda: hangs(server, effect) > before, what=f"{effect} hanging")
    # Renders sent while it hangs complete correctly (before it is stopped or after: that
    # they do not wait for it is test_hung_render_and_process_hold_up_no_one's to show).
    bystanders = [render(client, asset, [DELAY]) for _ in range(2)]
    for bystander in bystanders:
        check_bystander_render(client, bystander)
    view = finished(client, hung)
    assert view["status"] == "failed"
    assert view["error"] == f"steps[0] ({effect}): exceeded the time limit of {RENDER_LIMIT} s"
    # The events stream ends with the same report.
    events = client.get(f"/api/renders/{hung}/events").text
    assert "event: failed" in events and f"({effect}): exceeded the time limit" in events
    # The killed worker was replaced: both workers render again.
    again = [render(client, asset, [DELAY]) for _ in range(2)]
    for bystander in again:
        check_bystander_render(client, bystander)


def process(client, effect: str, **params):
    return client.post("/api/process", params={"effect": effect, **params}, content=WAV)


def check_bystander_process(client) -> None:
    r = process(client, "feedback_delay", **DELAY["params"])
    assert r.status_code == 200, r.text
    audio, _ = decode(r.content)
    np.testing.assert_allclose(audio, delayed(AUDIO, RATE, tail=True), atol=1e-6)


def problem(r, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    return r.json()


@pytest.mark.parametrize("effect", sorted(FAULTS))
def test_process_answers_502_naming_the_effect(server, client, effect):
    temp_before = sorted(p.name for p in (server.root / "renders").iterdir())
    with ThreadPoolExecutor(2) as pool:
        bystander = pool.submit(check_bystander_process, client)
        body = problem(process(client, effect), 502)
        bystander.result()
    assert body["type"] == "urn:fxhost:problem:effect-fault"
    assert body["detail"].startswith(f"steps[0] ({effect}): ") and FAULTS[effect] in body["detail"]
    # No file left: a process response's temporary output is removed just after it is
    # sent (a background task), so wait for that rather than racing it.
    wait_until(
        lambda: sorted(p.name for p in (server.root / "renders").iterdir()) == temp_before,
        what="the temporary output removed",
    )


@pytest.mark.parametrize("effect", HANGS)
def test_hung_process_answers_504_naming_the_effect(server, client, effect):
    before = hangs(server, effect)
    with ThreadPoolExecutor(2) as pool:
        hung = pool.submit(process, client, effect)
        wait_until(lambda: hangs(server, effect) > before, what=f"{effect} hanging")
        check_bystander_process(client)  # sent while it hangs: correct, whenever it ends
        body = problem(hung.result(), 504)
    assert body["type"] == "urn:fxhost:problem:effect-timeout"
    assert body["detail"] == f"steps[0] ({effect}): exceeded the time limit of {RENDER_LIMIT} s"
    check_bystander_process(client)
    assert client.get("/health").status_code == 200


@pytest.mark.parametrize("effect", ["broken_nan", "broken_init"])
def test_cli_render_prints_one_line_naming_the_effect(tmp_path, effect):
    (tmp_path / "plugins.toml").write_text(PLUGINS_TOML)
    (tmp_path / "in.wav").write_bytes(WAV)
    result = run_fxhost(
        "--config",
        str(tmp_path / "plugins.toml"),
        "render",
        "in.wav",
        "out.wav",
        "--effect",
        effect,
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"fxhost: steps[0] ({effect}): "), result.stderr
    assert FAULTS[effect] in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "plugins.toml"]  # no output, no temp


def test_problem_types_are_documented(client):
    responses = client.get("/openapi.json").json()["paths"]["/api/process"]["post"]["responses"]
    assert {"502", "504"} <= set(responses)
