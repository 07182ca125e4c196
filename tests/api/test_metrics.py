"""Prometheus metrics at /metrics, scraped from real servers as Prometheus would: the key
rule and the settings that open or move the endpoint; HTTP requests labelled by route
template, never by a raw path or an id; live audio, effect time and faults, stream
overruns and refusals, renders; and, with two workers, every scrape summing both."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
from pathlib import Path

import httpx
import numpy as np
import pytest
from clitools import run_fxhost
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families
from restkit import PG_URL, REPO, encode, free_port, fresh_postgres, start_server, tone
from waiting import wait_until
from websockets.exceptions import ConnectionClosed
from wskit import Session, interleave, open_ws

KEY = "metrics-test-key-" + secrets.token_hex(8)
AUTH = {"Authorization": f"Bearer {KEY}"}
SR = 48000
BLOCK = 256
REVERB = {"effect": "reverb", "params": {"room_size": 0.5}}
GAIN = {"effect": "gain", "params": {"gain_db": -3.0}}
#: The deliberately broken effects (tests/support/broken_effects.py), loaded beside the
#: installed ones as an operator loads a third party's module.
PLUGINS_TOML = f"""
[plugins]
paths = ["{REPO / "tests" / "support"}"]
modules = ["broken_effects"]
"""
#: Render time limit of the module's server: a hung render ends in seconds.
RENDER_LIMIT = 5


class Scrape:
    """One scrape, parsed: sample values by name and labels."""

    def __init__(self, text: str):
        self.text = text
        self.samples: dict[tuple[str, frozenset], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called ``name`` whose labels include ``labels`` (0 if none)."""
        wanted = set(labels.items())
        return sum(v for (n, have), v in self.samples.items() if n == name and wanted <= have)

    def label_values(self, name: str, label: str) -> set[str]:
        return {dict(have)[label] for (n, have) in self.samples if n == name and label in dict(have)}


def scrape(base: str, headers: dict[str, str] | None = None, path: str = "/metrics") -> Scrape:
    # A fresh connection each time: with several workers, any one may answer.
    response = httpx.get(base + path, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One worker with an API key, the broken effects loaded beside the installed ones."""
    root = tmp_path_factory.mktemp("metrics")
    (root / "plugins.toml").write_text(PLUGINS_TOML)
    env = {
        "FXHOST_API_KEYS": KEY,
        "FXHOST_PLUGINS_CONFIG": str(root / "plugins.toml"),
        "FXHOST_RENDER_TIMEOUT_SECONDS": str(RENDER_LIMIT),
    }
    srv = start_server(root, env)
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    with server.client(headers=AUTH) as c:
        yield c


def upload(client: httpx.Client, seconds: float = 0.5) -> dict:
    response = client.post(
        "/api/assets", params={"name": "a.wav"}, content=encode(tone(seconds, SR), SR, "WAV", "FLOAT")
    )
    assert response.status_code == 201, response.text
    return response.json()


def render(client: httpx.Client, asset: dict, steps: list[dict]) -> dict:
    response = client.post("/api/renders", json={"asset": asset["id"], "chain": steps})
    assert response.status_code == 202, response.text
    render_id = response.json()["id"]

    def finished() -> dict | None:
        body = client.get(f"/api/renders/{render_id}").json()
        return body if body["status"] in ("done", "failed") else None

    return wait_until(finished, what=f"render {render_id} finishing")


# -- the endpoint and its key --------------------------------------------------------


def test_metrics_need_the_api_key_like_api(server):
    anonymous = httpx.get(server.base + "/metrics")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert "API key" in anonymous.json()["detail"]
    wrong = httpx.get(server.base + "/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    metrics = scrape(server.base, AUTH)
    assert metrics.label_values("fxhost_build_info", "version")
    assert metrics.value("fxhost_build_info") == 1
    assert metrics.value("fxhost_streams") == 0


def test_metrics_open_with_the_setting_and_api_still_closed(tmp_path):
    srv = start_server(tmp_path, {"FXHOST_API_KEYS": KEY, "FXHOST_METRICS_OPEN": "true"})
    try:
        assert scrape(srv.base).value("fxhost_build_info") == 1
        assert httpx.get(srv.base + "/api/assets").status_code == 401
    finally:
        srv.stop()


def test_metrics_on_their_own_port_need_no_key(tmp_path):
    port = free_port()
    srv = start_server(tmp_path, {"FXHOST_API_KEYS": KEY, "FXHOST_METRICS_PORT": str(port)})
    try:
        own = f"http://127.0.0.1:{port}"
        httpx.get(srv.base + "/api/effects", headers=AUTH)
        metrics = scrape(own)
        assert metrics.value("fxhost_build_info") == 1
        assert metrics.value("http_server_request_duration_seconds_count", http_route="/api/effects") == 1
        assert httpx.get(own + "/elsewhere").status_code == 404
        assert httpx.post(own + "/metrics").status_code == 405
        moved = httpx.get(srv.base + "/metrics", headers=AUTH)
        assert moved.status_code == 404 and str(port) in moved.json()["detail"]
    finally:
        srv.stop()


def test_a_metrics_port_that_is_taken_stops_serve_in_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_fxhost(
            "serve",
            cwd=tmp_path,
            env={"FXHOST_METRICS_PORT": str(port), "FXHOST_PORT": str(free_port())},
        )
    assert done.returncode != 0
    assert f"FXHOST_METRICS_PORT: cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_metrics_off(tmp_path):
    srv = start_server(tmp_path, {"FXHOST_METRICS": "false"})
    try:
        off = httpx.get(srv.base + "/metrics")
        assert off.status_code == 404 and "FXHOST_METRICS" in off.json()["detail"]
        session = Session(srv.base, steps=[REVERB], sample_rate=SR)  # live audio still runs
        assert session.process(np.zeros((2, BLOCK), np.float32)).shape == (2, BLOCK)
        session.close()
    finally:
        srv.stop()


# -- HTTP requests ---------------------------------------------------------------------


def test_requests_are_labelled_by_route_template_never_by_path(server, client):
    before = scrape(server.base, AUTH)
    asset = upload(client)
    for _ in range(3):
        assert client.get(f"/api/assets/{asset['id']}").status_code == 200
    assert client.get(f"/api/assets/{'f' * 32}").status_code == 404
    assert client.get(f"/api/streams/{'e' * 24}/buffers").status_code == 404
    assert client.get("/no/such/place-" + asset["id"]).status_code == 404
    assert client.request("PROPFIND", "/api/assets").status_code == 405
    after = scrape(server.base, AUTH)

    def gained(**labels: str) -> float:
        name = "http_server_request_duration_seconds_count"
        return after.value(name, **labels) - before.value(name, **labels)

    assert (
        gained(http_route="/api/assets/{id}", http_request_method="GET", http_response_status_code="200") == 3
    )
    assert gained(http_route="/api/assets/{id}", http_response_status_code="404") == 1
    assert gained(http_route="/api/streams/{id}/buffers", http_response_status_code="404") == 1
    assert gained(http_route="/api/assets", http_request_method="POST", http_response_status_code="201") == 1
    assert gained(http_route="unmatched", http_response_status_code="404") == 1
    assert gained(http_route="/api/assets", http_request_method="_OTHER") == 1
    assert gained(http_route="/metrics", http_response_status_code="200") >= 1
    assert asset["id"] not in after.text and "no/such" not in after.text and "f" * 32 not in after.text
    routes = after.label_values("http_server_request_duration_seconds_count", "http_route")
    assert all(route == "unmatched" or route.startswith("/") for route in routes)
    assert not any(re.search(r"[0-9a-f]{16}", route) for route in routes), routes


def test_refused_requests_are_counted_too(server):
    before = scrape(server.base, AUTH)
    assert httpx.get(server.base + "/api/chains").status_code == 401
    after = scrape(server.base, AUTH)
    name = "http_server_request_duration_seconds_count"
    labels = {"http_route": "/api/chains", "http_response_status_code": "401"}
    assert after.value(name, **labels) - before.value(name, **labels) == 1


# -- live audio ------------------------------------------------------------------------


def test_a_live_session_counts_its_audio_blocks_and_each_effects_time(server):
    before = scrape(server.base, AUTH)
    session = Session(server.base, headers=AUTH, steps=[REVERB, GAIN], sample_rate=SR)
    audio = tone(1.0, SR)
    blocks = [audio[:, i : i + BLOCK] for i in range(0, audio.shape[1], BLOCK)]
    for block in blocks:
        session.process(block)
    stats = session.send_json({"type": "stats"}) or session.recv_json()
    session.close()
    after = scrape(server.base, AUTH)

    def gained(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    frames = audio.shape[1]
    assert gained("fxhost_live_audio_seconds_total") == pytest.approx(frames / SR, rel=1e-12)
    assert gained("fxhost_live_blocks_total") == len(blocks) == stats["blocks"]
    processing = gained("fxhost_live_processing_seconds_total")
    assert processing == pytest.approx(stats["process_seconds"], abs=1e-5)
    for effect in ("reverb", "gain"):
        assert gained("fxhost_effect_processing_seconds_count", effect=effect) == len(blocks)
        assert 0 < gained("fxhost_effect_processing_seconds_sum", effect=effect) < processing
        assert gained("fxhost_effect_processing_seconds_bucket", effect=effect, le="+Inf") == len(blocks)
    # What the effects took is part of what the blocks took.
    effects = sum(gained("fxhost_effect_processing_seconds_sum", effect=e) for e in ("reverb", "gain"))
    assert effects <= processing
    misses = gained("fxhost_live_block_deadline_misses_total")
    assert 0 <= misses <= len(blocks)
    assert gained("fxhost_websocket_sessions_total", http_route="/ws/process") == 1


@pytest.mark.parametrize(
    ("effect", "kind"), [("broken_raise", "raised"), ("broken_nan", "bad_output"), ("broken_init", "start")]
)
def test_a_failing_effect_is_counted_by_effect_and_kind(server, effect, kind):
    before = scrape(server.base, AUTH)
    ws = open_ws(server.base, "/ws/process", AUTH)
    ws.send(json.dumps({"type": "start", "steps": [GAIN, {"effect": effect}], "sample_rate": SR}))
    try:
        if kind != "start":
            assert json.loads(ws.recv(timeout=10))["type"] == "ready"
            ws.send(interleave(tone(0.01, SR)))
        while True:
            ws.recv(timeout=10)
    except ConnectionClosed as closed:
        assert closed.rcvd is not None and closed.rcvd.code in (1008, 1011)
    after = scrape(server.base, AUTH)
    name = "fxhost_effect_faults_total"
    assert after.value(name, effect=effect, kind=kind) - before.value(name, effect=effect, kind=kind) == 1
    assert after.value(name, effect="gain") == before.value(name, effect="gain")


def create_stream(client: httpx.Client, **body) -> dict:
    response = client.post("/api/streams", json={"chain": [GAIN], "sample_rate": SR, **body})
    assert response.status_code == 201, response.text
    return response.json()


def test_streams_count_lost_and_rejected_frames_and_are_a_gauge(server, client):
    before = scrape(server.base, AUTH)
    loose = create_stream(client, capacity=2048, overflow="drop_oldest")
    strict = create_stream(client, capacity=1024, overflow="reject")
    assert scrape(server.base, AUTH).value("fxhost_streams") == 2
    for i in range(1, 7):
        client.post(f"/api/streams/{loose['id']}/input", content=interleave(np.zeros((2, 1000), np.float32)))
        wait_until(
            lambda i=i: (
                client.get(f"/api/streams/{loose['id']}/buffers").json()["output"]["frames_written"]
                == 1000 * i
            )
        )
    page = client.get(f"/api/streams/{loose['id']}/output", params={"cursor": 0})
    assert int(page.headers["x-lost-frames"]) == 6000 - 2048
    producer = open_ws(server.base, f"/ws/streams/{strict['id']}/input", AUTH)
    producer.send(interleave(np.zeros((2, 2048), np.float32)))  # more than the ring holds
    assert json.loads(producer.recv(timeout=10)) == {"type": "rejected", "frames": 2048, "free": 1024}
    producer.close()
    producer = open_ws(server.base, f"/ws/streams/{loose['id']}/input", AUTH)
    producer.send(interleave(np.zeros((2, 4096), np.float32)))  # the oldest half is dropped
    producer.close()
    wait_until(
        # the dropped half comes out as silence, unprocessed: 6000 + 4096 frames out
        lambda: client.get(f"/api/streams/{loose['id']}/buffers").json()["output"]["frames_written"] == 10096
    )
    middle = scrape(server.base, AUTH)
    for stream in (loose, strict):
        assert client.delete(f"/api/streams/{stream['id']}").status_code == 204
    after = scrape(server.base, AUTH)

    def gained(name: str) -> float:
        return after.value(name) - before.value(name)

    assert gained("fxhost_stream_overruns_total") == 1
    assert gained("fxhost_stream_lost_frames_total") == 6000 - 2048
    assert gained("fxhost_stream_rejected_frames_total") == 2048
    assert gained("fxhost_stream_dropped_frames_total") == 2048
    # Deleted streams' counters are kept; the gauge falls.
    assert middle.value("fxhost_stream_lost_frames_total") == after.value("fxhost_stream_lost_frames_total")
    assert after.value("fxhost_streams") == 0
    assert gained("fxhost_live_audio_seconds_total") == pytest.approx(8048 / SR, rel=1e-12)
    for stream in (loose, strict):
        assert stream["id"] not in after.text


# -- renders ---------------------------------------------------------------------------


def test_renders_are_counted_by_outcome_with_their_duration(server, client):
    before = scrape(server.base, AUTH)
    asset = upload(client)
    done = render(client, asset, [REVERB])
    failed = render(client, asset, [GAIN, {"effect": "broken_nan"}])
    assert (done["status"], failed["status"]) == ("done", "failed")
    after = scrape(server.base, AUTH)

    def gained(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert gained("fxhost_renders_total", outcome="done") == 1
    assert gained("fxhost_renders_total", outcome="failed") == 1
    assert gained("fxhost_render_duration_seconds_count") == 2
    assert gained("fxhost_render_duration_seconds_sum") > 0
    assert gained("fxhost_effect_faults_total", effect="broken_nan", kind="bad_output") == 1
    assert after.value("fxhost_render_queue_depth") == 0
    assert after.value("fxhost_render_worker_restarts_total") == before.value(
        "fxhost_render_worker_restarts_total"
    )
    for some_id in (asset["id"], done["id"], failed["id"], done["result"]["id"]):
        assert some_id not in after.text


def test_a_hung_render_times_out_and_its_worker_is_counted_as_restarted(server, client):
    before = scrape(server.base, AUTH)
    asset = upload(client)
    failed = render(client, asset, [{"effect": "broken_sleep"}])
    assert failed["status"] == "failed" and "time limit" in failed["error"]

    def restarted() -> float:
        return scrape(server.base, AUTH).value("fxhost_render_worker_restarts_total") - before.value(
            "fxhost_render_worker_restarts_total"
        )

    assert wait_until(restarted, what="the replacement worker started") == 1
    after = scrape(server.base, AUTH)

    def gained(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert gained("fxhost_renders_total", outcome="timeout") == 1
    assert gained("fxhost_effect_faults_total", effect="broken_sleep", kind="timeout") == 1


def test_no_tenant_or_key_appears_in_a_scrape(server):
    text = scrape(server.base, AUTH).text
    assert KEY not in text
    assert "tenant" not in text


# -- several workers -------------------------------------------------------------------


def worker_pids(srv) -> list[int]:
    """uvicorn's worker processes: the server's children that multiprocessing spawned
    (not its resource tracker, nor the render pools under the workers)."""
    children = []
    for task in Path(f"/proc/{srv.proc.pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            children += [int(pid) for pid in (task / "children").read_text().split()]
    return [pid for pid in children if "spawn_main" in _cmdline(pid)]


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def requests_by_worker(directory, route: str) -> dict[int, float]:
    """How many requests to ``route`` each process counted, from its own file in the
    multiprocess directory: which workers the kernel gave the connections to."""
    counted: dict[int, float] = {}
    for path in directory.glob("histogram_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            _, sample, labels, _ = json.loads(key)
            # Files keep each bucket's own count (a scrape accumulates them).
            if sample.endswith("_bucket") and labels.get("http_route") == route:
                counted[pid] = counted.get(pid, 0) + value
    return counted


@pytest.mark.slow
def test_two_workers_every_scrape_sees_the_sum(tmp_path):
    directory = tmp_path / "prometheus"
    env = {"FXHOST_WORKERS": "2", "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    if PG_URL:
        env["FXHOST_DATABASE_URL"] = fresh_postgres()
    srv = start_server(tmp_path / "server", env)
    try:
        pids = wait_until(lambda: len(p := worker_pids(srv)) == 2 and p, what="two workers")
        # Many fresh connections: the kernel spreads them over both workers.
        requests = 0
        while len(requests_by_worker(directory, "/api/plugins")) < 2 or requests < 40:
            assert httpx.get(srv.base + "/api/plugins").status_code == 200
            requests += 1
            assert requests < 2000, requests_by_worker(directory, "/api/plugins")
        for _ in range(6):
            metrics = scrape(srv.base)
            assert metrics.value("http_server_request_duration_seconds_count", http_route="/api/plugins") == (
                requests
            )
            assert metrics.value("fxhost_build_info") == 1  # one series, not one per worker
        # Live sessions on fresh connections land on either worker; their counters are
        # flushed within a second, and any scrape sums them.
        sessions, frames = 8, 0
        for seed in range(sessions):
            session = Session(srv.base, steps=[GAIN], sample_rate=SR)
            block = tone(0.05, SR, seed=seed)
            session.process(block)
            frames += block.shape[1]
            session.close()
        wait_until(
            lambda: scrape(srv.base).value("fxhost_live_audio_seconds_total") == pytest.approx(frames / SR),
            what="live audio summed over the workers",
        )
        for _ in range(4):
            metrics = scrape(srv.base)
            assert metrics.value("fxhost_live_blocks_total") == sessions
            assert metrics.value("fxhost_effect_processing_seconds_count", effect="gain") == sessions
        # A worker that dies: uvicorn starts another; what it counted is kept, and its
        # live gauges are dropped at the next scrape.
        victim = pids[0]
        assert (directory / f"gauge_livesum_{victim}.db").exists()
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: victim not in (p := worker_pids(srv)) and len(p) == 2, what="a new worker")
        wait_until(lambda: httpx.get(srv.base + "/health").status_code == 200)
        metrics = scrape(srv.base)
        assert not (directory / f"gauge_livesum_{victim}.db").exists()
        assert (
            metrics.value("http_server_request_duration_seconds_count", http_route="/api/plugins") == requests
        )
        assert metrics.value("fxhost_streams") == 0 and metrics.value("fxhost_build_info") == 1
    finally:
        srv.stop()
