"""Benchmark: the render cache (FXHOST_RENDER_CACHE). Two ``fxhost serve`` processes in the
same run, one with the cache and one without (the baseline), each with its own SQLite
database; the same file is uploaded to both and rendered through the same chain, then
rendered again ``--repeats`` times. Reported: the wall time of a render as a client sees
it, from ``POST /api/renders`` to the render's ``done`` (followed by its server-sent
events), the first render and the median of the repeats, on each server.

    uv run python bench/render_cache.py [--seconds 30] [--repeats 5]

The servers alternate request by request, so that load from elsewhere falls on both.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
from benchkit import start_fxhost

SR = 48000
CHAIN = "hall"


def wav(seconds: float) -> bytes:
    rng = np.random.default_rng(16)
    audio = (0.3 * rng.standard_normal((int(seconds * SR), 2))).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, audio, SR, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def render(client: httpx.Client, asset: str) -> tuple[float, dict]:
    """One render, POST to done: (seconds, the final render resource)."""
    began = time.perf_counter()
    response = client.post(
        "/api/renders", json={"asset": asset, "chain": CHAIN, "output": {"format": "flac"}}
    )
    response.raise_for_status()
    view = response.json()
    if view["status"] != "done":
        with client.stream("GET", f"/api/renders/{view['id']}/events") as events:
            for line in events.iter_lines():
                if line.startswith("data: "):
                    view = json.loads(line.removeprefix("data: "))
    elapsed = time.perf_counter() - began
    if view["status"] != "done":
        raise SystemExit(f"render failed: {view}")
    return elapsed, view


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the file (stereo 48 kHz)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    body = wav(args.seconds)
    with tempfile.TemporaryDirectory(prefix="fxhost-bench-cache-") as scratch:
        servers = {}
        for label, cache in (("cache on", "true"), ("cache off", "false")):
            folder = Path(scratch) / label.replace(" ", "-")
            folder.mkdir()
            env = {
                "FXHOST_RENDER_CACHE": cache,
                "FXHOST_UPLOADS_DIR": str(folder / "uploads"),
                "FXHOST_RENDERS_DIR": str(folder / "renders"),
            }
            servers[label] = start_fxhost(folder, env)
        try:
            clients = {
                label: httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300)
                for label, (_, port, _) in servers.items()
            }
            assets = {}
            for label, client in clients.items():
                response = client.post("/api/assets", params={"name": "bench.wav"}, content=body)
                response.raise_for_status()
                assets[label] = response.json()["id"]
            first: dict[str, float] = {}
            repeats: dict[str, list[float]] = {label: [] for label in clients}
            cached: dict[str, int] = dict.fromkeys(clients, 0)
            for label, client in clients.items():
                first[label], _ = render(client, assets[label])
            for _ in range(args.repeats):
                for label, client in clients.items():
                    seconds, view = render(client, assets[label])
                    repeats[label].append(seconds)
                    cached[label] += view["cached_from"] is not None
        finally:
            for server, _, _ in servers.values():
                server.terminate()
                server.wait(timeout=30)
    base = statistics.median(repeats["cache off"])
    print(
        f"{args.seconds:g} s stereo 48 kHz PCM_16 through {CHAIN!r} to FLAC; {args.repeats} repeats; "
        f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}"
    )
    print("| server | first render | repeat render, median | repeats reused | repeat x no-cache repeat |")
    print("|---|---:|---:|---:|---:|")
    for label in clients:
        median = statistics.median(repeats[label])
        print(
            f"| {label} | {first[label] * 1000:.0f} ms | {median * 1000:.1f} ms | "
            f"{cached[label]}/{args.repeats} | {median / base:.3f} |"
        )


if __name__ == "__main__":
    main()
