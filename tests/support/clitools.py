"""Helpers for the CLI tests: run the installed console script, write test audio."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from procenv import child_env

REPO = Path(__file__).resolve().parents[2]
FXHOST = str(Path(sys.executable).parent / "fxhost")


def run_fxhost(*args: str, cwd: Path = REPO, env: dict | None = None, timeout: float = 120):
    """Run the installed ``fxhost`` console script, as a user would."""
    full_env = child_env(env)
    full_env.pop("FXHOST_DEBUG", None)
    return subprocess.run(
        [FXHOST, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def write_signal(path: Path, seconds: float, sample_rate: int = 44100, channels: int = 2, **kw) -> np.ndarray:
    """A deterministic test signal (noise bursts over a sine), written with soundfile;
    returns what was written, as float32 ``(channels, frames)``."""
    rng = np.random.default_rng(1)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    sig = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * rng.standard_normal(n) * (np.sin(2 * np.pi * 2 * t) > 0)
    audio = np.stack([sig * (1 - 0.3 * c) for c in range(channels)]).astype(np.float32)
    sf.write(path, audio.T, sample_rate, **kw)
    data, _ = sf.read(path, dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T)
