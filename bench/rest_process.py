"""Benchmark: POST /api/process of 60 s of stereo 44.1 kHz WAV through the reverb over
loopback, against the bare in-process pipeline (soundfile read, pedalboard.Reverb,
soundfile write) run side by side in the same run.

    uv run python bench/rest_process.py [--runs 7] [--seconds 60]

Starts a real `fxhost serve` on a free port in a temporary folder; the client is httpx.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pedalboard
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bare(data: bytes) -> bytes:
    audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    out = pedalboard.Reverb().process(audio.T.copy(), rate)
    buffer = io.BytesIO()
    sf.write(buffer, out.T, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    n = int(args.seconds * 44100)
    rng = np.random.default_rng(0)
    t = np.arange(n) / 44100
    audio = (0.3 * np.sin(2 * np.pi * 220 * t)[:, None] + 0.1 * rng.standard_normal((n, 2))).astype(
        np.float32
    )
    buffer = io.BytesIO()
    sf.write(buffer, audio, 44100, format="WAV", subtype="PCM_16")
    data = buffer.getvalue()

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {
            **os.environ,
            "FXHOST_PORT": str(port),
            "FXHOST_LOG_LEVEL": "warning",
            "FXHOST_PLUGINS_CONFIG": str(REPO / "plugins.toml"),
        }
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "fxhost"), "serve"],
            cwd=tmp,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            rest, local = [], []
            with httpx.Client(base_url=base, timeout=120) as client:
                params = {"effect": "reverb", "tail": "false"}
                client.post("/api/process", params=params, content=data).raise_for_status()  # warm-up
                bare(data)
                for _ in range(args.runs):  # interleaved, so both see the same machine
                    start = time.perf_counter()
                    response = client.post("/api/process", params=params, content=data)
                    response.raise_for_status()
                    rest.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    bare(data)
                    local.append(time.perf_counter() - start)
        finally:
            server.terminate()
            server.wait()
    r, b = statistics.median(rest), statistics.median(local)
    mb = len(data) / 1e6
    print(f"{args.seconds:.0f} s stereo 44.1 kHz PCM_16 WAV ({mb:.1f} MB), reverb, median of {args.runs}")
    print(f"{'case':58} {'seconds':>8} {'x bare':>7}")
    print(f"{'bare in-process: soundfile read, pedalboard.Reverb, write':58} {b:8.3f} {1:7.2f}")
    print(f"{'POST /api/process?effect=reverb&tail=false over loopback':58} {r:8.3f} {r / b:7.2f}")


if __name__ == "__main__":
    main()
