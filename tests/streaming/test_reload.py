"""plugins.toml reloaded by a running server: a real ``fxhost serve`` with a config file
in a temporary folder, edited while a live WebSocket consumer listens to a stream made
from one of its chains. A parameter change applies live, a structural one crossfades;
the output is measured around the switches. A broken file changes nothing and the
health says why; watching can be turned off, and SIGHUP reloads (on every worker)."""

from __future__ import annotations

import json
import signal
import threading
import time

import httpx
import numpy as np
import pytest
from fxhost.catalog.config import config_hash, parse_config
from restkit import PG_URL, decode, encode, fresh_postgres, start_server
from waiting import wait_until
from wskit import deinterleave, interleave, open_ws

RATE = 48000
CHANNELS = 2
#: The crossfade the servers here run with: the default of FXHOST_CROSSFADE_MS.
FADE_FRAMES = RATE * 50 // 1000
AMPLITUDE = 0.5
FREQ = 220.0


def chain_toml(*steps: str, name: str = "live", extra: str = "") -> str:
    body = ",\n  ".join(steps)
    return f"[plugins]\ndisable = []\n\n[chains.{name}]\nsteps = [\n  {body},\n]\n{extra}"


# A reverb with no wet signal is its dry gain (2 x dry_level, smoothed by JUCE when it
# changes live): an exact reference to measure against.
DRY_1 = chain_toml('{ effect = "reverb", params = { wet_level = 0.0, dry_level = 0.5 } }')
DRY_HALF = chain_toml('{ effect = "reverb", params = { wet_level = 0.0, dry_level = 0.25 } }')
INVERT_DRY_HALF = chain_toml(
    '{ effect = "invert" }', '{ effect = "reverb", params = { wet_level = 0.0, dry_level = 0.25 } }'
)


def digest(text: str, base=None) -> str:
    """The hash a server shows for ``text`` (``base``: the file's folder, for its paths)."""
    return config_hash(parse_config(text, "plugins.toml", base_dir=base))


def sine(start: int, frames: int) -> np.ndarray:
    t = np.arange(start, start + frames) / RATE
    return np.tile(AMPLITUDE * np.sin(2 * np.pi * FREQ * t), (CHANNELS, 1)).astype(np.float32)


def health(base: str) -> dict:
    # A fresh connection each time: with several workers, each may answer.
    return httpx.get(f"{base}/api/audio/health", timeout=30).json()


def write_config(path, text: str) -> None:
    # As an editor saves: a new file renamed over the old one.
    temp = path.with_suffix(".tmp")
    temp.write_text(text)
    temp.replace(path)


def reloaded(base: str, text: str, *, ok: bool = True, folder=None) -> dict:
    """Wait for the server to have read ``text``; its health's config."""
    want = digest(text, folder)

    def done() -> dict | None:
        config = health(base)["config"]
        last = config["last_reload"]
        if ok and config["hash"] == want and last and last["ok"]:
            return config
        if not ok and last and not last["ok"]:
            return config
        return None

    return wait_until(done, what=f"reload of config {want}")


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("reload-config") / "plugins.toml"
    path.write_text(DRY_1)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory, config_file):
    srv = start_server(
        tmp_path_factory.mktemp("reload"),
        {"FXHOST_PLUGINS_CONFIG": str(config_file), "FXHOST_LOG_LEVEL": "info", "FXHOST_RENDER_WORKERS": "1"},
    )
    yield srv
    srv.stop()


@pytest.fixture
def restore(config_file, server):
    """Each test starts from, and leaves, the DRY_1 config in force."""
    in_force = health(server.base)["config"]["hash"]
    if config_file.read_text() != DRY_1 or in_force != digest(DRY_1):
        write_config(config_file, DRY_1)
        reloaded(server.base, DRY_1)
    yield
    write_config(config_file, DRY_1)
    reloaded(server.base, DRY_1)


def make_stream(base: str, chain="live") -> dict:
    response = httpx.post(
        f"{base}/api/streams", json={"chain": chain, "sample_rate": RATE, "channels": CHANNELS}, timeout=30
    )
    assert response.status_code == 201, response.text
    return response.json()


class LiveRun:
    """A producer writing a sine in real time (20 ms blocks) and a consumer reading the
    output over WebSocket from frame 0, each in a thread."""

    BLOCK = RATE // 50

    def __init__(self, base: str, stream_id: str, seconds: float):
        self.total = int(seconds * RATE) // self.BLOCK * self.BLOCK
        self.written = 0
        self.received: list[np.ndarray] = []
        self.messages: list[dict] = []
        self.producer = open_ws(base, f"/ws/streams/{stream_id}/input")
        self.consumer = open_ws(base, f"/ws/streams/{stream_id}/output?from=0")
        self._threads = [threading.Thread(target=self._produce), threading.Thread(target=self._consume)]
        for thread in self._threads:
            thread.start()

    def _produce(self) -> None:
        start = time.monotonic()
        while self.written < self.total:
            self.producer.send(interleave(sine(self.written, self.BLOCK)))
            self.written += self.BLOCK
            lag = start + self.written / RATE - time.monotonic()
            if lag > 0:
                time.sleep(lag)  # real time: the pace of a live source

    def _consume(self) -> None:
        frames = 0
        while frames < self.total:
            message = self.consumer.recv(timeout=30)
            if isinstance(message, str):
                self.messages.append(json.loads(message))
                continue
            block = deinterleave(message, CHANNELS)
            self.received.append(block)
            frames += block.shape[1]

    def at_least(self, seconds: float) -> None:
        wait_until(lambda: self.written >= seconds * RATE, what=f"{seconds} s written")

    def finish(self) -> np.ndarray:
        for thread in self._threads:
            thread.join(timeout=60)
        self.producer.close()
        self.consumer.close()
        return np.concatenate(self.received, axis=1)


def test_a_live_stream_follows_its_chain_across_reloads_without_a_click(server, config_file, restore):
    stream = make_stream(server.base)
    run = LiveRun(server.base, stream["id"], seconds=4.0)
    run.at_least(1.0)
    write_config(config_file, DRY_HALF)  # parameters only: applied live, smoothed by the effect
    config = reloaded(server.base, DRY_HALF)
    assert config["last_reload"]["trigger"] == "file"
    assert any("new parameters applied live" in line for line in config["last_reload"]["changes"])
    run.at_least(2.2)
    write_config(config_file, INVERT_DRY_HALF)  # a step added: a crossfaded switch
    config = reloaded(server.base, INVERT_DRY_HALF)
    assert any("50 ms crossfade" in line for line in config["last_reload"]["changes"]), config
    out = run.finish()

    # No gap: every frame written came out, in order, none lost.
    assert out.shape == (CHANNELS, run.total) and run.messages == [{"type": "position", "frame": 0}]
    x = sine(0, run.total)
    np.testing.assert_allclose(out[:, : RATE // 2], x[:, : RATE // 2], atol=1e-5)  # the first chain
    np.testing.assert_allclose(out[:, -RATE // 4 :], -0.5 * x[:, -RATE // 4 :], atol=1e-5)  # the last

    # The structural switch: where the output is neither the old chain's nor the new one's.
    old, new = 0.5 * x[0], -0.5 * x[0]
    between = np.flatnonzero((np.abs(out[0] - old) > 1e-3) & (np.abs(out[0] - new) > 1e-3))
    between = between[between > int(1.5 * RATE)]  # past the dry level's own smoothing
    fade = between[-1] - between[0] + 1
    assert 0.9 * FADE_FRAMES <= fade <= FADE_FRAMES, fade

    # No discontinuity beyond the signal's own: the largest step from one sample to the
    # next, anywhere, is that of the steady sine (2 A sin(pi f / rate)).
    steps = np.abs(np.diff(out, axis=1)).max(axis=0)
    steady = steps[: RATE // 2].max()
    assert steady == pytest.approx(2 * AMPLITUDE * np.sin(np.pi * FREQ / RATE), rel=0.01)
    before = steps[between[0] - RATE // 2 : between[0] - 1].max()  # at the chain's level then
    around = steps[between[0] - RATE // 10 : between[-1] + RATE // 10].max()
    print(
        f"\ncrossfade {fade} frames ({fade / RATE * 1000:.1f} ms); largest sample step: "
        f"{around:.5f} around the switch, {before:.5f} in the 0.5 s before it ({around / before:.3f}x); "
        f"whole run {steps.max():.5f}, the first chain's steady {steady:.5f}; "
        f"a hard switch would step by up to {AMPLITUDE:.3f}"
    )
    assert around <= before * 1.01
    assert steps.max() <= steady * 1.01


def test_a_broken_file_changes_nothing_and_the_health_says_why(server, config_file, restore):
    before = health(server.base)["config"]
    stream = make_stream(server.base)
    broken = chain_toml(
        '{ effect = "reverb", params = { room_size = 9.0 } }', extra="[chains.extra]\nsteps = []\n"
    )
    write_config(config_file, broken)
    config = reloaded(server.base, broken, ok=False)
    assert config["hash"] == before["hash"] and config["loaded_at"] == before["loaded_at"]
    errors = config["last_reload"]["errors"]
    assert any(f"{config_file}: chains.live.steps[0].params.room_size" in line for line in errors), errors
    assert config["last_reload"]["hash"] == before["hash"]
    # Nothing changed: the chains, the running stream.
    chains = httpx.get(f"{server.base}/api/chains", timeout=30).json()
    assert "extra" not in {c["name"] for c in chains}
    live = httpx.get(f"{server.base}/api/streams/{stream['id']}", timeout=30).json()
    assert live["steps"] == stream["steps"]
    # A TOML syntax error: the line and column.
    write_config(config_file, "[chains.live\n")
    wait_until(
        lambda: any(
            f"{config_file}:1:" in line for line in health(server.base)["config"]["last_reload"]["errors"]
        ),
        what="the syntax error in the health",
    )
    assert health(server.base)["config"]["hash"] == before["hash"]
    log = next(server.root.glob("server-*.log")).read_text()
    assert "reload refused, nothing changed" in log and "chains.live.steps[0].params.room_size" in log
    # The stream kept running the old chain all along.
    block = sine(0, 4800)
    out = stream_through(server.base, stream["id"], block)
    np.testing.assert_allclose(out, block, atol=1e-5)
    httpx.delete(f"{server.base}/api/streams/{stream['id']}", timeout=30)


def stream_through(base: str, stream_id: str, block: np.ndarray) -> np.ndarray:
    with httpx.Client(base_url=base, timeout=30) as client:
        start = client.post(f"/api/streams/{stream_id}/input", content=interleave(block)).json()
        cursor = start["write_pos"] - block.shape[1]

        def output() -> bytes | None:
            got = client.get(f"/api/streams/{stream_id}/output", params={"cursor": cursor})
            return got.content if int(got.headers["X-Frames"]) >= block.shape[1] else None

        return deinterleave(wait_until(output, what="the block processed"), CHANNELS)[:, : block.shape[1]]


def test_chains_and_plugins_come_and_go_with_the_file(server, config_file, restore):
    effects = {e["name"] for e in httpx.get(f"{server.base}/api/effects", timeout=30).json()}
    assert "feedback_delay" in effects
    text = DRY_1.replace("disable = []", 'disable = ["feedback-delay"]') + (
        '\n[chains.dark]\nsteps = [{ effect = "lowpass_filter", params = { cutoff_frequency_hz = 800.0 } }]\n'
    )
    write_config(config_file, text)
    config = reloaded(server.base, text)
    changes = config["last_reload"]["changes"]
    assert "added chain 'dark'" in changes
    assert any(line.startswith("plugin 'feedback-delay' unloaded (disabled)") for line in changes), changes
    effects = {e["name"] for e in httpx.get(f"{server.base}/api/effects", timeout=30).json()}
    assert "feedback_delay" not in effects
    refused = httpx.post(
        f"{server.base}/api/streams", json={"chain": [{"effect": "feedback_delay"}]}, timeout=30
    )
    assert refused.status_code == 422 and "chain[0].effect" in refused.text
    assert "dark" in {c["name"] for c in httpx.get(f"{server.base}/api/chains", timeout=30).json()}
    document = httpx.get(f"{server.base}/openapi.json", timeout=30).json()
    assert "dark" in json.dumps(document["components"]["schemas"]["LiveChainRef"])
    # Back: the plugin loads again, the chain is gone.
    write_config(config_file, DRY_1)
    changes = reloaded(server.base, DRY_1)["last_reload"]["changes"]
    assert "removed chain 'dark'" in changes and any("plugin 'feedback-delay' loaded" in c for c in changes)
    effects = {e["name"] for e in httpx.get(f"{server.base}/api/effects", timeout=30).json()}
    assert "feedback_delay" in effects


def test_what_only_a_restart_does_is_said(server, config_file, restore):
    folder = config_file.parent / "local_plugins"
    folder.mkdir(exist_ok=True)
    with_path = DRY_1.replace("disable = []", 'disable = []\npaths = ["local_plugins"]')
    write_config(config_file, with_path)
    assert reloaded(server.base, with_path, folder=folder.parent)["last_reload"]["restart_needed"] == []
    write_config(config_file, DRY_1)
    restart = reloaded(server.base, DRY_1)["last_reload"]["restart_needed"]
    assert restart == [f"plugins.paths: {str(folder)!r} was removed; it stays on sys.path until a restart"]


def test_patch_switches_a_streams_steps(server, restore):
    stream = make_stream(server.base)
    patched = httpx.patch(
        f"{server.base}/api/streams/{stream['id']}",
        json={"chain": [{"effect": "invert"}, {"effect": "gain", "params": {"gain_db": -12.0}}]},
        timeout=30,
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["chain"] is None and [s["effect"] for s in body["steps"]] == ["invert", "gain"]
    # Past the crossfade, the new chain alone.
    block = sine(0, FADE_FRAMES + 4800)
    out = stream_through(server.base, stream["id"], block)
    np.testing.assert_allclose(out[:, FADE_FRAMES:], -(10 ** (-12 / 20)) * block[:, FADE_FRAMES:], atol=1e-5)
    # A bad chain is refused naming the field, and changes nothing.
    bad = httpx.patch(
        f"{server.base}/api/streams/{stream['id']}", json={"chain": [{"effect": "nope"}]}, timeout=30
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "chain[0].effect"
    unknown = httpx.patch(
        f"{server.base}/api/streams/{stream['id']}", json={"chain": "nope", "extra": 1}, timeout=30
    )
    assert unknown.status_code == 422
    after = httpx.get(f"{server.base}/api/streams/{stream['id']}", timeout=30).json()
    assert after["steps"] == body["steps"]
    # Back to the config chain by name: it follows the file again.
    again = httpx.patch(f"{server.base}/api/streams/{stream['id']}", json={"chain": "live"}, timeout=30)
    assert again.status_code == 200 and again.json()["chain"] == "live"
    httpx.delete(f"{server.base}/api/streams/{stream['id']}", timeout=30)


def test_a_render_in_flight_keeps_the_chain_it_started_with(server, config_file, restore):
    client = httpx.Client(base_url=server.base, timeout=60)
    long = sine(0, 12 * RATE)
    audio = sine(0, 2 * RATE)
    ids = []
    for name, signal_ in (("long.wav", long), ("short.wav", audio)):
        response = client.post(
            "/api/assets", params={"name": name}, content=encode(signal_, RATE, "WAV", "FLOAT")
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    # One render worker: a slow render holds it, so the one through the chain waits.
    slow = client.post(
        "/api/renders",
        json={"asset": ids[0], "chain": [{"effect": "pitch_shift", "params": {"semitones": 3}}]},
    )
    assert slow.status_code == 202, slow.text
    render = client.post(
        "/api/renders",
        json={"asset": ids[1], "chain": "live", "output": {"format": "wav", "subtype": "FLOAT"}},
    ).json()
    write_config(config_file, INVERT_DRY_HALF)
    reloaded(server.base, INVERT_DRY_HALF)
    status = client.get(f"/api/renders/{render['id']}").json()["status"]
    assert status in ("queued", "running"), "the render was over before the reload: no test"

    def finished() -> dict | None:
        body = client.get(f"/api/renders/{render['id']}").json()
        return body if body["status"] in ("done", "failed") else None

    done = wait_until(finished, 120, what="the render finishing")
    assert done["status"] == "done", done
    rendered, _ = decode(client.get(f"/api/assets/{done['result']['id']}/audio").content)
    # The chain at submit (and its tail: the reverb rings on, its wet level 0: silence).
    np.testing.assert_allclose(rendered[:, : audio.shape[1]], audio, atol=1e-5)
    assert np.abs(rendered[:, audio.shape[1] :]).max(initial=0) < 1e-4
    client.close()


@pytest.fixture(scope="module")
def unwatched(tmp_path_factory):
    root = tmp_path_factory.mktemp("unwatched")
    path = root / "plugins.toml"
    path.write_text(DRY_1)
    srv = start_server(root / "srv", {"FXHOST_PLUGINS_CONFIG": str(path), "FXHOST_CONFIG_WATCH": "false"})
    yield srv, path
    srv.stop()


def test_without_watching_only_sighup_reloads(unwatched):
    srv, path = unwatched
    config = health(srv.base)["config"]
    assert config["watching"] is False and config["last_reload"] is None
    write_config(path, DRY_HALF)
    # The watcher of a watching server reloads within its 200 ms debounce; this one must not.
    time.sleep(1.0)
    assert health(srv.base)["config"]["hash"] == digest(DRY_1)
    srv.proc.send_signal(signal.SIGHUP)
    config = reloaded(srv.base, DRY_HALF)
    assert config["last_reload"]["trigger"] == "signal" and srv.proc.poll() is None


@pytest.mark.slow
@pytest.mark.skipif(
    not PG_URL, reason="FXHOST_TEST_DATABASE_URL is not set (.ci/run sets it to the local PostgreSQL)"
)
def test_sighup_reloads_every_worker(tmp_path):
    path = tmp_path / "plugins.toml"
    path.write_text(DRY_1)
    srv = start_server(
        tmp_path / "srv",
        {
            "FXHOST_PLUGINS_CONFIG": str(path),
            "FXHOST_CONFIG_WATCH": "false",
            "FXHOST_WORKERS": "2",
            "FXHOST_DATABASE_URL": fresh_postgres(),
        },
    )
    try:
        seen: dict[int, str] = {}

        def every_worker(want: str) -> bool:
            answer = health(srv.base)
            seen[answer["process"]] = answer["config"]["hash"]
            return len(seen) == 2 and set(seen.values()) == {want}

        wait_until(lambda: every_worker(digest(DRY_1)), what="both workers answering")
        workers = set(seen)
        write_config(path, DRY_HALF)
        srv.proc.send_signal(signal.SIGHUP)  # to the supervisor, which hands it on
        wait_until(lambda: every_worker(digest(DRY_HALF)), what="both workers reloaded")
        assert set(seen) == workers  # the same processes: reloaded, not replaced
    finally:
        srv.stop()
