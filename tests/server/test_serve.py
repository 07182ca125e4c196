"""``fxhost serve`` as an operator starts it: a real process on a free port, real HTTP."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = free_port()
    env = {**os.environ, "FXHOST_PORT": str(port), "FXHOST_LOG_LEVEL": "warning"}
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "fxhost"), "serve"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"server did not start: {proc.stdout.read()}")
        time.sleep(0.1)
    yield base
    proc.terminate()
    proc.wait(timeout=10)


def test_health(server):
    body = httpx.get(f"{server}/health").json()
    assert body["status"] == "ok" and body["effects"] >= 2 and body["plugins_failed"] == []


def test_effects_listing_and_schema(server):
    effects = httpx.get(f"{server}/api/effects").json()
    assert {"reverb", "feedback_delay"} <= {e["name"] for e in effects}
    reverb = httpx.get(f"{server}/api/effects/reverb").json()
    room = reverb["params_schema"]["properties"]["room_size"]
    assert (room["minimum"], room["maximum"], room["default"]) == (0, 1, 0.5)
    assert room["description"]
    plugins = httpx.get(f"{server}/api/plugins").json()
    assert {"pedalboard", "feedback-delay"} <= {p["name"] for p in plugins}
    chains = httpx.get(f"{server}/api/chains").json()
    assert chains and chains[0]["steps"]


@pytest.mark.parametrize(
    "method, path, status",
    [
        ("GET", "/api/effects/no-such-effect", 404),
        ("GET", "/no/such/route", 404),
        ("POST", "/api/effects", 405),
    ],
)
def test_errors_are_problem_json(server, method, path, status):
    response = httpx.request(method, f"{server}{path}")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert "Traceback" not in response.text and str(REPO) not in response.text
