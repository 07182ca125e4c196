"""Benchmark: the postgres render queue on this machine. One API process (``fxhost serve``,
FXHOST_RENDER_QUEUE=postgres) and 1, then 2, ``fxhost worker`` render nodes of one worker
process each, on a fresh PostgreSQL database per run:

- **enqueue -> start latency**: renders submitted one at a time to idle nodes, each
  waited for; from the row's ``created`` (the API) to its ``started`` (the node's claim);
  p50 and p99;
- **throughput**: ``--files`` short files (2 s stereo 48 kHz) submitted at once through
  the reverb; from the first submit to the last ``done``, in renders per second.

    FXHOST_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test uv run python bench/render_queue.py

The nodes share the machine's CPUs with the API and PostgreSQL: the CPU count printed is
the limit on what a second node can add.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
from benchkit import REPO, start_fxhost

SR = 48000
CHAIN = [{"effect": "reverb", "params": {"room_size": 0.5}}]


def admin(url: str, sql: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def start_node(folder: Path, env: dict[str, str]) -> subprocess.Popen:
    folder.mkdir()
    log = folder / "node.log"
    with open(log, "wb") as out:
        node = subprocess.Popen(
            [str(Path(sys.executable).parent / "fxhost"), "worker"],
            cwd=folder,
            env={**os.environ, **env, "FXHOST_LOG_LEVEL": "info"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while True:
        text = log.read_text(errors="replace")
        if "render workers ready" in text and "Starting worker" in text:
            return node
        if node.poll() is not None or time.monotonic() > deadline:
            node.kill()
            raise SystemExit(f"the render node did not start:\n{text[-2000:]}")
        time.sleep(0.1)


def wav(seconds: float, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    audio = (0.3 * rng.standard_normal((int(seconds * SR), 2))).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, audio, SR, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def finished(client: httpx.Client, render_id: str) -> dict:
    while True:
        body = client.get(f"/api/renders/{render_id}").json()
        if body["status"] in ("done", "failed", "cancelled"):
            if body["status"] != "done":
                raise SystemExit(f"render {render_id} {body['status']}: {body['error']}")
            return body
        time.sleep(0.02)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(base_url: str, nodes: int, files: int, latency_renders: int) -> dict:
    name = f"fxhost_bench_{os.getpid()}_{secrets.token_hex(3)}"
    admin(base_url, f'CREATE DATABASE "{name}"')
    database = base_url.rsplit("/", 1)[0] + "/" + name
    procs: list[subprocess.Popen] = []
    try:
        with tempfile.TemporaryDirectory(prefix="fxhost-bench-queue-") as scratch:
            root = Path(scratch)
            env = {
                "FXHOST_DATABASE_URL": database,
                "FXHOST_RENDER_QUEUE": "postgres",
                "FXHOST_RENDER_WORKERS": "1",
                "FXHOST_UPLOADS_DIR": str(root / "uploads"),
                "FXHOST_RENDERS_DIR": str(root / "renders"),
                "FXHOST_PLUGINS_CONFIG": str(REPO / "plugins.toml"),
            }
            (root / "api").mkdir()
            server, port, _ = start_fxhost(root / "api", env)
            procs.append(server)
            for n in range(nodes):
                procs.append(start_node(root / f"node{n}", env))
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                assets = []
                for seed in range(files):
                    r = client.post("/api/assets", params={"name": f"n{seed}.wav"}, content=wav(2.0, seed))
                    assets.append(r.json()["id"])

                def submit(asset: str) -> str:
                    r = client.post("/api/renders", json={"asset": asset, "chain": CHAIN})
                    assert r.status_code == 202, r.text
                    return r.json()["id"]

                latencies = []
                for asset in assets[:latency_renders]:
                    body = finished(client, submit(asset))
                    started = datetime.fromisoformat(body["started"])
                    latencies.append((started - datetime.fromisoformat(body["created"])).total_seconds())
                began = time.perf_counter()
                ids = [submit(asset) for asset in assets]
                bodies = [finished(client, render_id) for render_id in ids]
                wall = time.perf_counter() - began
        return {
            "nodes": nodes,
            "p50": percentile(latencies, 0.5),
            "p99": percentile(latencies, 0.99),
            "wall": wall,
            "rate": files / wall,
            "spread": len({b["node"] for b in bodies}),
        }
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        admin(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--latency-renders", type=int, default=40)
    args = parser.parse_args()
    base_url = os.environ.get("FXHOST_BENCH_DATABASE_URL") or os.environ.get("FXHOST_TEST_DATABASE_URL")
    if not base_url:
        raise SystemExit("set FXHOST_TEST_DATABASE_URL (or FXHOST_BENCH_DATABASE_URL) to a PostgreSQL URL")
    results = [run(base_url, nodes, args.files, args.latency_renders) for nodes in (1, 2)]
    print(
        f"CPUs: {os.cpu_count()}; {args.files} files of 2 s stereo 48 kHz through the reverb;"
        " 1 worker process per node"
    )
    print(
        f"{'nodes':>5}  {'start p50':>10}  {'start p99':>10}  {'wall':>8}  {'renders/s':>9}"
        f"  {'nodes used':>10}"
    )
    for r in results:
        print(
            f"{r['nodes']:>5}  {r['p50'] * 1000:>8.0f}ms  {r['p99'] * 1000:>8.0f}ms  {r['wall']:>7.2f}s"
            f"  {r['rate']:>9.2f}  {r['spread']:>10}"
        )
    print(f"2 nodes / 1 node throughput: {results[1]['rate'] / results[0]['rate']:.2f}x")


if __name__ == "__main__":
    main()
