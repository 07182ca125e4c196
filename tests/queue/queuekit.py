"""A render farm on this machine, as an operator runs one: one ``fxhost serve`` API process
and ``fxhost worker`` render nodes, separate processes with separate working folders
(each its own uploads, renders and scratch folders, its own copy of plugins.toml),
sharing only a fresh PostgreSQL database and an S3 bucket (moto's server): nothing on
disk, as machines that share no file system.

Heartbeats are short (0.5 s, a node dead after 2 s) so that a killed node's render moves
on quickly; everything else is as deployed."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from procenv import child_env
from restkit import FXHOST, REPO, Server, descendants, encode, fresh_postgres, start_server
from restkit import pg_query as query  # noqa: F401 - the tests read the farm's database with it
from s3kit import MotoS3
from waiting import wait_until

SR = 48000
#: The broken effects' module, loaded as a third party's: ``broken_slow`` makes a render
#: as slow as a test needs (it sleeps per block and passes audio through).
BROKEN_TOML = f"""
[plugins]
paths = ["{REPO / "tests" / "support"}"]
modules = ["broken_effects"]
"""
#: A short heartbeat, so that a killed node's job is taken for stalled within seconds.
HEARTBEAT = {"FXHOST_CLUSTER_HEARTBEAT_SECONDS": "0.5", "FXHOST_CLUSTER_DEAD_SECONDS": "2"}
DELAY = {"effect": "feedback_delay", "params": {"delay_seconds": 0.01, "feedback": 0.5, "mix": 0.5}}


def slow(seconds_per_block: float) -> dict:
    return {"effect": "broken_slow", "params": {"seconds": seconds_per_block}}


@dataclass
class Node:
    root: Path
    proc: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the node and its worker processes at once."""
        pids = descendants(self.proc.pid)
        self.proc.send_signal(signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait()

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        self.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()


def own_folders(root: Path, plugins_toml: str | None) -> dict[str, str]:
    """A process's settings for the folders it keeps to itself, under ``root``."""
    root.mkdir(parents=True)
    env = {
        "FXHOST_UPLOADS_DIR": str(root / "uploads"),
        "FXHOST_RENDERS_DIR": str(root / "renders"),
        "FXHOST_SCRATCH_DIR": str(root / "scratch"),
    }
    if plugins_toml is not None:
        (root / "plugins.toml").write_text(plugins_toml)
        env["FXHOST_PLUGINS_CONFIG"] = str(root / "plugins.toml")
    return env


@dataclass
class Farm:
    database: str
    top: Path
    api: Server
    #: The settings every process shares: database, queue, storage, heartbeats.
    env: dict[str, str]
    plugins_toml: str | None
    #: The render nodes running now (:meth:`stop_nodes` stops them).
    nodes: list[Node] = field(default_factory=list)

    def start_nodes(self, *names: str, **env: str) -> list[Node]:
        """Start render nodes (together: they start in parallel) and wait until each is
        ready: its pool's workers started and procrastinate's worker listening."""
        started = []
        for name in names:
            root = self.top / name
            own = own_folders(root, self.plugins_toml)
            log = root / "node.log"
            full = child_env({**self.env, **own, "FXHOST_LOG_LEVEL": "info", **env})
            proc = subprocess.Popen(
                [FXHOST, "worker"], cwd=root, env=full, stdout=log.open("ab"), stderr=subprocess.STDOUT
            )
            started.append(Node(root, proc, log))
        self.nodes += started
        for node in started:
            wait_until(
                lambda node=node: (
                    node.proc.poll() is not None
                    or ("render workers ready" in node.text() and "Starting worker" in node.text())
                ),
                60,
                interval=0.1,
                what=f"render node {node.root.name} ready",
            )
            assert node.proc.poll() is None, node.text()[-3000:]
        return started

    def start_node(self, name: str, **env: str) -> Node:
        return self.start_nodes(name, **env)[0]

    def stop_nodes(self) -> None:
        for node in self.nodes:
            node.terminate()  # all at once: each hands its running renders back
        for node in self.nodes:
            node.stop()
        self.nodes.clear()

    def stop(self) -> None:
        self.stop_nodes()
        self.api.stop()


def start_farm(tmp_path: Path, s3: MotoS3, *, plugins_toml: str | None = None, **env: str) -> Farm:
    """A fresh database and bucket and the API process; no render node yet."""
    common = {
        "FXHOST_DATABASE_URL": fresh_postgres(),
        "FXHOST_RENDER_QUEUE": "postgres",
        **{name: value for name, value in s3.env(tmp_path).items() if name != "FXHOST_SCRATCH_DIR"},
        **HEARTBEAT,
        **env,
    }
    api_root = tmp_path / "api"
    api = start_server(api_root, {**common, **own_folders(api_root, plugins_toml)})
    return Farm(common["FXHOST_DATABASE_URL"], tmp_path, api, common, plugins_toml)


def noise(seconds: float, seed: int, channels: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.3 * rng.standard_normal((channels, int(seconds * SR)))).astype(np.float32)


def upload(client: httpx.Client, audio: np.ndarray, name: str) -> str:
    r = client.post("/api/assets", params={"name": name}, content=encode(audio, SR, "WAV", "FLOAT"))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def submit(client: httpx.Client, asset: str, steps: list, tail: bool = True) -> str:
    r = client.post(
        "/api/renders", json={"asset": asset, "chain": steps, "output": {"subtype": "FLOAT"}, "tail": tail}
    )
    assert r.status_code == 202, r.text
    return r.json()["id"]


def view(client: httpx.Client, render_id: str) -> dict:
    r = client.get(f"/api/renders/{render_id}")
    assert r.status_code == 200, r.text
    return r.json()


def finished(client: httpx.Client, render_id: str, seconds: float = 120) -> dict:
    def ended() -> dict | None:
        body = view(client, render_id)
        return body if body["status"] in ("done", "failed", "cancelled") else None

    return wait_until(ended, seconds, interval=0.05, what=f"render {render_id} finishing")


def running(client: httpx.Client, render_id: str) -> dict:
    return wait_until(
        lambda: (v := view(client, render_id))["status"] == "running" and v["progress"] > 0 and v,
        60,
        interval=0.02,
        what=f"render {render_id} running",
    )


def node_id(node: Node) -> str:
    """How a render names the node process that ran it: ``host:pid``."""
    import socket

    return f"{socket.gethostname()}:{node.pid}"


def elapsed_since(start: float) -> float:
    return time.monotonic() - start
