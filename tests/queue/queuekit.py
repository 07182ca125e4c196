"""A render farm on this machine, as an operator runs one: one ``fxhost serve`` API process
and ``fxhost worker`` render nodes, separate processes with separate working folders,
sharing a fresh PostgreSQL database and (for now) the uploads and renders folders.

Heartbeats are short (0.5 s, a node dead after 2 s) so that a killed node's render moves
on quickly; everything else is as deployed."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from procenv import child_env
from restkit import FXHOST, REPO, Server, descendants, encode, fresh_postgres, start_server
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
                import os

                os.kill(pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Farm:
    database: str
    shared: Path
    api: Server
    nodes: list[Node]
    env: dict[str, str]

    def start_node(self, name: str, **env: str) -> Node:
        root = self.shared.parent / name
        root.mkdir()
        log = root / "node.log"
        full = child_env({**self.env, "FXHOST_LOG_LEVEL": "info", **env})
        proc = subprocess.Popen(
            [FXHOST, "worker"], cwd=root, env=full, stdout=log.open("ab"), stderr=subprocess.STDOUT
        )
        node = Node(root, proc, log)
        # Ready: the pool's workers have started and procrastinate's worker listens.
        wait_until(
            lambda: (
                proc.poll() is not None
                or ("render workers ready" in node.text() and "Starting worker" in node.text())
            ),
            60,
            interval=0.1,
            what=f"render node {name} ready",
        )
        assert proc.poll() is None, node.text()[-3000:]
        self.nodes.append(node)
        return node

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.api.stop()


def start_farm(tmp_path: Path, *, nodes: int, plugins_toml: str | None = None, **env: str) -> Farm:
    """A fresh database, the API process, then ``nodes`` render nodes."""
    shared = tmp_path / "shared"
    shared.mkdir()
    common = {
        "FXHOST_DATABASE_URL": fresh_postgres(),
        "FXHOST_RENDER_QUEUE": "postgres",
        "FXHOST_UPLOADS_DIR": str(shared / "uploads"),
        "FXHOST_RENDERS_DIR": str(shared / "renders"),
        **HEARTBEAT,
        **env,
    }
    if plugins_toml is not None:
        (shared / "plugins.toml").write_text(plugins_toml)
        common["FXHOST_PLUGINS_CONFIG"] = str(shared / "plugins.toml")
    farm = Farm(common["FXHOST_DATABASE_URL"], shared, start_server(tmp_path / "api", common), [], common)
    try:
        for n in range(nodes):
            farm.start_node(f"node{n}")
    except BaseException:
        farm.stop()
        raise
    return farm


def query(database: str, sql: str, *args) -> list[dict]:
    """Rows of the farm's database, as the test sees them (asyncpg, no fxhost code)."""
    import asyncpg

    async def run() -> list[dict]:
        conn = await asyncpg.connect(database.replace("postgres://", "postgresql://", 1))
        try:
            return [dict(row) for row in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    return asyncio.run(run())


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
