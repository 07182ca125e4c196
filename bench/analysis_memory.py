"""Benchmark: the memory a real ``fxhost serve`` takes for whole-file work on long assets
(analysis, waveform, spectrogram, transcoding), for assets of several lengths.

    uv run python bench/analysis_memory.py [--minutes 10,60] [--bound-mib 256]

For each length, a stereo 44.1 kHz FLAC (16-bit; a slow sweep, a tremolo and a little
noise, so that every endpoint has work to do) is written block by block with soundfile
(this script never holds it whole), uploaded to one server, and then the four requests
run at once: ``/analysis``, ``/waveform.png``, ``/spectrogram.png`` and
``/audio?format=wav`` (transcoded while streamed to a temporary file; the client reads
the download as it comes and throws it away). With the default
``FXHOST_ANALYSIS_CONCURRENCY=2`` two run while two wait in line.

The server's RSS is read from ``/proc/<pid>/status`` every 50 ms. A 15 s asset goes
through the same requests first, so that what is loaded once (matplotlib, scipy, the
job threads) is loaded before anything is measured. "idle" is the RSS with the asset
uploaded and no request running; "peak above idle" is the highest RSS
while the four requests run, minus idle. Decoded whole, one hour of stereo float32 is
1.27 GB (what the server held before it read assets block by block); the bound asked for
is 256 MiB above idle whatever the length, and the ratio of the longest to the shortest
length's peak shows that it does not grow with the length.

The server runs in a temporary folder on SQLite, with an upload limit raised to take the
hour's file.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
from benchkit import start_fxhost

SR = 44_100
CHANNELS = 2
WRITE_SECONDS = 10  # seconds generated and written at a time
SAMPLE_SECONDS = 0.05
MiB = 1024 * 1024
REQUESTS = ("analysis", "waveform.png", "spectrogram.png", "audio?format=wav")


def write_flac(path: Path, minutes: float) -> int:
    """A stereo FLAC of ``minutes``, generated and written 10 s at a time; its size."""
    frames = int(minutes * 60 * SR)
    rng = np.random.default_rng(1)
    phase = 0.0
    with sf.SoundFile(path, "w", samplerate=SR, channels=CHANNELS, format="FLAC", subtype="PCM_16") as f:
        for start in range(0, frames, WRITE_SECONDS * SR):
            n = min(WRITE_SECONDS * SR, frames - start)
            t = (start + np.arange(n)) / SR
            freq = 100.0 + 3000.0 * (0.5 + 0.5 * np.sin(2 * np.pi * t / 600.0))  # a 10-minute sweep
            phases = phase + 2 * np.pi * np.cumsum(freq) / SR
            phase = float(phases[-1])
            level = 0.4 + 0.3 * np.sin(2 * np.pi * t / 7.0)  # a slow tremolo
            left = level * np.sin(phases)
            right = 0.5 * left + 0.01 * rng.standard_normal(n)
            f.write(np.stack([left, right], axis=1).astype(np.float32))
    return path.stat().st_size


class Sampler:
    """The server's RSS, sampled every 50 ms in a thread while :attr:`active`."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def rss(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def __enter__(self) -> Sampler:
        self.peak = self.rss()
        self._stop.clear()

        def run() -> None:
            while not self._stop.wait(SAMPLE_SECONDS):
                self.peak = max(self.peak, self.rss())

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def fetch(base: str, asset: str, path: str) -> tuple[str, int, int, float]:
    """(path, status, bytes received, seconds); the body is read as it comes and dropped."""
    started = time.perf_counter()
    size = 0
    with httpx.stream("GET", f"{base}/api/assets/{asset}/{path}", timeout=3600) as response:
        for chunk in response.iter_bytes():
            size += len(chunk)
    return path, response.status_code, size, time.perf_counter() - started


def measure(base: str, sampler: Sampler, folder: Path, minutes: float) -> dict:
    path = folder / f"{minutes:g}min.flac"
    t0 = time.perf_counter()
    size = write_flac(path, minutes)
    took = time.perf_counter() - t0
    print(f"{minutes:g} min: wrote {size / MiB:.0f} MiB of FLAC in {took:.1f} s", flush=True)
    with open(path, "rb") as body:
        response = httpx.post(f"{base}/api/assets", params={"name": path.name}, content=body, timeout=3600)
    response.raise_for_status()
    asset = response.json()["id"]
    path.unlink()
    time.sleep(1.0)
    idle = sampler.rss()
    started = time.perf_counter()
    with sampler, ThreadPoolExecutor(len(REQUESTS)) as pool:
        results = list(pool.map(lambda p: fetch(base, asset, p), REQUESTS))
    seconds = time.perf_counter() - started
    for p, status, received, took in results:
        print(f"  {p:<18} {status}  {received / MiB:8.1f} MiB  {took:6.1f} s", flush=True)
        if status != 200:
            raise SystemExit(f"{p}: HTTP {status}")
    httpx.delete(f"{base}/api/assets/{asset}").raise_for_status()
    return {"minutes": minutes, "idle": idle, "peak": sampler.peak, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", default="10,60", help="asset lengths, comma-separated")
    parser.add_argument("--bound-mib", type=float, default=256.0, help="allowed peak above idle")
    args = parser.parse_args()
    lengths = [float(m) for m in args.minutes.split(",")]

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        server, port, _ = start_fxhost(folder, {"FXHOST_MAX_UPLOAD_BYTES": str(4096 * MiB)})
        base = f"http://127.0.0.1:{port}"
        try:
            sampler = Sampler(server.pid)
            measure(base, sampler, folder, 0.25)  # warm-up: imports (matplotlib, scipy) and thread pools
            rows = [measure(base, sampler, folder, minutes) for minutes in lengths]
        finally:
            server.terminate()
            server.wait(timeout=60)

    print()
    heads = ("stereo 44.1 kHz FLAC", "decoded", "idle RSS", "peak RSS", "above idle", "time")
    print(" ".join(f"{h:>{w}}" for h, w in zip(heads, (22, 10, 9, 9, 11, 7), strict=True)))
    for row in rows:
        decoded = row["minutes"] * 60 * SR * CHANNELS * 4
        above = row["peak"] - row["idle"]
        print(
            f"{row['minutes']:>18g} min {decoded / MiB:>6.0f} MiB {row['idle'] / MiB:>5.0f} MiB "
            f"{row['peak'] / MiB:>5.0f} MiB {above / MiB:>7.0f} MiB {row['seconds']:>6.1f}s"
        )
    aboves = [row["peak"] - row["idle"] for row in rows]
    worst = max(aboves)
    print(f"\nlongest / shortest peak above idle: {aboves[-1] / max(aboves[0], 1):.2f}")
    verdict = "within" if worst <= args.bound_mib * MiB else "OVER"
    print(f"largest peak above idle: {worst / MiB:.0f} MiB, {verdict} the bound of {args.bound_mib:g} MiB")
    if worst > args.bound_mib * MiB:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
