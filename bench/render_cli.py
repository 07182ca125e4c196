"""Benchmark: `fxhost render` of 60 s of stereo 44.1 kHz 16-bit WAV through the reverb,
whole process, median of 5 runs, against (a) a bare script doing soundfile read,
pedalboard.Reverb, soundfile write, and (b) `sox in.wav out.wav reverb`.

    env -u PYTHONDONTWRITEBYTECODE uv run python bench/render_cli.py [--runs 5] [--seconds 60]

(bytecode cached, as on a user's machine: the first round compiles and is not counted).
The cases alternate, one run of each per round, so that a machine busy with something
else slows them alike and the ratios stay fair.

Installs sox with apt-get if it is missing (and it can). Prints a table of medians
and the ratios against the bare script.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

BARE = """
import sys, soundfile as sf, pedalboard
audio, sr = sf.read(sys.argv[1], dtype="float32", always_2d=True)
out = pedalboard.Reverb().process(audio.T.copy(), sr)
sf.write(sys.argv[2], out.T, sr, subtype="PCM_16")
"""


def ensure_sox() -> str | None:
    if shutil.which("sox"):
        return shutil.which("sox")
    if shutil.which("apt-get"):
        subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "sox"], check=False, capture_output=True)
    return shutil.which("sox")


def seconds(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def median_seconds(cases: dict[str, list[str]], runs: int) -> dict[str, float]:
    """Each case once per round, ``runs`` rounds after a warm-up round; the medians."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for round_ in range(runs + 1):
        for name, cmd in cases.items():
            took = seconds(cmd)
            if round_:
                times[name].append(took)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    fxhost = str(Path(sys.executable).parent / "fxhost")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.wav"
        rng = np.random.default_rng(0)
        n = int(args.seconds * 44100)
        t = np.arange(n) / 44100
        audio = 0.3 * np.sin(2 * np.pi * 220 * t)[:, None] + 0.1 * rng.standard_normal((n, 2))
        sf.write(src, audio.astype(np.float32), 44100, subtype="PCM_16")
        cases = {
            "bare script (soundfile + pedalboard.Reverb)": [
                sys.executable,
                "-c",
                BARE,
                str(src),
                f"{tmp}/bare.wav",
            ],
            "fxhost render --effect reverb": [
                fxhost,
                "render",
                str(src),
                f"{tmp}/fx.wav",
                "--effect",
                "reverb",
            ],
            "fxhost render --effect reverb --no-tail": [
                fxhost,
                "render",
                str(src),
                f"{tmp}/fx2.wav",
                "--effect",
                "reverb",
                "--no-tail",
            ],
        }
        # Start-up alone, to show how much of the difference is fixed cost.
        cases["start-up: python -c 'import pedalboard, soundfile'"] = [
            sys.executable,
            "-c",
            "import pedalboard, soundfile",
        ]
        cases["start-up: fxhost --version"] = [fxhost, "--version"]
        sox = ensure_sox()
        if sox:
            cases["sox in.wav out.wav reverb"] = [sox, str(src), f"{tmp}/sox.wav", "reverb"]
        results = median_seconds(cases, args.runs)
    base = results["bare script (soundfile + pedalboard.Reverb)"]
    print(f"{args.seconds:.0f} s stereo 44.1 kHz PCM_16, median of {args.runs} runs, whole process")
    print(f"{'case':52} {'seconds':>8} {'x bare':>7}")
    for name, seconds in results.items():
        print(f"{name:52} {seconds:8.3f} {seconds / base:7.2f}")
    if not sox:
        print("sox: not installed and could not be installed; skipped")


if __name__ == "__main__":
    main()
