"""Benchmark: `fxhost render --out-dir` of 40 files of 10 s (stereo 44.1 kHz 16-bit WAV)
through the reverb, whole process, against a shell loop of `sox IN OUT reverb` on the
same files, run alternately (A B C D, A B C D...) on the same machine; and, for
information, the batch with --no-tail (outputs as long as sox's: sox's reverb appends
no tail, fxhost's 2 s) and a shell loop of one-file `fxhost render` beside them.

    uv run python bench/batch.py [--rounds 3] [--files 40] [--seconds 10]

Installs sox with apt-get if it is missing (and it can). Wall time is until the command
exits; CPU time (user + system) is every process it started, workers included: this
script makes itself their subreaper (prctl), so that each one, however deep, is reaped
here and its CPU time counted. Prints the CPU count, the load average before each run,
every run, the medians and the ratio against the sox loop (target: 0.8 or less).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from render_cli import ensure_sox

PR_SET_CHILD_SUBREAPER = 36
SOX_LOOP = "for f in in/*.wav; do sox $f out/$(basename $f) reverb; done"
FXHOST = str(Path(sys.executable).parent / "fxhost")


def make_inputs(folder: Path, files: int, seconds: float) -> None:
    """``files`` different WAVs: a tone and noise, stereo 44.1 kHz PCM_16, about -10 dBFS."""
    rng = np.random.default_rng(0)
    n = int(seconds * 44100)
    t = np.arange(n) / 44100
    for i in range(files):
        tone = 0.25 * np.sin(2 * np.pi * (110 + 10 * i) * t)[:, None]
        audio = tone + 0.05 * rng.standard_normal((n, 2))
        sf.write(folder / f"take{i:02d}.wav", audio.astype(np.float32), 44100, subtype="PCM_16")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(command: str, out: Path) -> tuple[float, float]:
    """``(wall, cpu)`` seconds of ``command`` (a shell command line) writing into ``out``
    (made empty first); fails if the command does."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    cpu = children_cpu()
    start = time.perf_counter()
    process = subprocess.Popen(["bash", "-c", command], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, stderr = process.communicate()
    wall = time.perf_counter() - start
    while True:  # what it left running (a forkserver), reparented here: reap it and count it
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
    if process.returncode != 0:
        raise SystemExit(f"failed ({process.returncode}): {command}\n{stderr.decode()[-2000:]}")
    return wall, children_cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    sox = ensure_sox()
    if sox is None:
        raise SystemExit("sox is not installed and could not be installed (apt-get install -y sox)")
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1)
    with tempfile.TemporaryDirectory() as tmp:
        ins, out = Path(tmp) / "in", Path(tmp) / "out"
        ins.mkdir()
        make_inputs(ins, args.files, args.seconds)
        q = shlex.quote
        cases = {
            "fxhost render in/ --out-dir out/ --effect reverb": (
                f"{q(FXHOST)} render {q(str(ins))} --out-dir {q(str(out))} --effect reverb"
            ),
            "fxhost render in/ --out-dir out/ --effect reverb --no-tail": (
                f"{q(FXHOST)} render {q(str(ins))} --out-dir {q(str(out))} --effect reverb --no-tail"
            ),
            SOX_LOOP: (
                f"for f in {q(str(ins))}/*.wav; do "
                f'{q(sox)} -q "$f" {q(str(out))}/"$(basename "$f")" reverb; done'
            ),
            "for f in in/*.wav; do fxhost render $f out/... --effect reverb; done": (
                f"for f in {q(str(ins))}/*.wav; do "
                f'{q(FXHOST)} render "$f" {q(str(out))}/"$(basename "$f")" --effect reverb; done'
            ),
        }
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        print(f"{os.cpu_count()} CPUs; {args.files} files of {args.seconds:g} s, stereo 44.1 kHz PCM_16")
        for round_ in range(1, args.rounds + 1):
            for name, command in cases.items():
                load = os.getloadavg()[0]
                wall, cpu = run(command, out)
                times[name].append((wall, cpu))
                print(f"round {round_}: {name:70} wall {wall:6.2f} s  cpu {cpu:6.2f} s  load {load:5.2f}")
    print()
    sox_wall = statistics.median(w for w, _ in times[SOX_LOOP])
    print(f"{'case (median of ' + str(args.rounds) + ')':72} {'wall s':>7} {'cpu s':>7} {'x sox':>6}")
    for name, runs in times.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"{name:72} {wall:7.2f} {cpu:7.2f} {wall / sox_wall:6.2f}")


if __name__ == "__main__":
    main()
