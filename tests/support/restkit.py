"""Helpers for the REST tests: a real ``fxhost serve`` process on a free port, against
SQLite always and PostgreSQL when ``FXHOST_TEST_DATABASE_URL`` is set, and test audio
made with numpy and soundfile."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import io
import itertools
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from procenv import child_env
from waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
FXHOST = str(Path(sys.executable).parent / "fxhost")
PG_URL = os.environ.get("FXHOST_TEST_DATABASE_URL")


#: Parameters for a module-scoped server fixture: SQLite always, PostgreSQL when set.
BACKENDS = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=pytest.mark.skipif(
            not PG_URL, reason="FXHOST_TEST_DATABASE_URL is not set (.ci/run sets it to the local PostgreSQL)"
        ),
    ),
]


#: Parameters for a server fixture of the tests that store audio: BACKENDS, and SQLite
#: with the audio in an S3 bucket of a moto server (the ``moto_s3`` fixture).
STORAGE_BACKENDS = [*BACKENDS, "s3"]


def serve_backend(request, tmp_path_factory):
    """A module-scoped server fixture's body for ``request.param`` in STORAGE_BACKENDS."""
    root = tmp_path_factory.mktemp(f"srv-{request.param}")
    env = {}
    if request.param == "postgres":
        env["FXHOST_DATABASE_URL"] = fresh_postgres()
    elif request.param == "s3":
        env.update(request.getfixturevalue("moto_s3").env(root))
    srv = start_server(root, env)
    yield srv
    srv.stop()


def stored_names(server: Server, folder: str = "uploads") -> set[str]:
    """What the server keeps in its ``folder`` (``uploads``, ``renders``): file names
    (a sub-folder as ``name/``) or object names in the bucket, and the temporary files
    in its scratch folder (S3) or in that folder (local), whose names start with ``.part``."""
    if "FXHOST_STORAGE_URL" in server.env:
        from s3kit import objects, s3_client

        names = set(objects(s3_client(server.env["FXHOST_S3_ENDPOINT_URL"]), server.env, folder))
        scratch = Path(server.env["FXHOST_SCRATCH_DIR"])
        return names | ({p.name for p in scratch.iterdir()} if scratch.exists() else set())
    return {p.name + ("/" if p.is_dir() else "") for p in (server.root / folder).iterdir()}


#: How :func:`assert_resampled` judges a resampled output: below this frequency...
RESAMPLE_BAND_HZ = 19000
#: ...at least this signal-to-error ratio against scipy's resampler.
RESAMPLE_MIN_SNR_DB = 50.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: The databases this process made and has not dropped yet.
_databases: list[str] = []
_made = itertools.count()


def _admin(*statements: str, keep_going: bool = False) -> None:
    """Run statements on the ``test`` database; with ``keep_going``, one that fails is
    reported on stderr and the next ones still run."""
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG_URL.replace("postgres://", "postgresql://", 1))
        try:
            for sql in statements:
                try:
                    await conn.execute(sql)
                except Exception as exc:
                    if not keep_going:
                        raise
                    print(f"{sql}: {exc}", file=sys.stderr)
        finally:
            await conn.close()

    asyncio.run(run())


def pg_query(database: str, sql: str, *args) -> list[dict]:
    """Rows of a test server's PostgreSQL database, as the test sees them (asyncpg, no
    fxhost code)."""
    return asyncio.run(_pg(database, lambda conn: conn.fetch(sql, *args)))


def pg_execute(database: str, sql: str) -> None:
    """Statements (several, separated by semicolons) run in a test server's database."""
    asyncio.run(_pg(database, lambda conn: conn.execute(sql)))


async def _pg(database: str, work) -> list[dict]:
    import asyncpg

    conn = await asyncpg.connect(database.replace("postgres://", "postgresql://", 1))
    try:
        result = await work(conn)
        return [dict(row) for row in result] if isinstance(result, list) else []
    finally:
        await conn.close()


def fresh_postgres() -> str:
    """A new, empty PostgreSQL database for one test server, dropped when the run ends.

    Each server gets its own database, named after this run's process, so runs that share
    the machine's PostgreSQL (two CI jobs, a developer's inner loop beside CI, the xdist
    workers of one run) never drop each other's tables."""
    name = f"fxhost_test_{os.getpid()}_{next(_made)}_{secrets.token_hex(3)}"
    _admin(f'CREATE DATABASE "{name}"')
    _databases.append(name)
    return PG_URL.rsplit("/", 1)[0] + "/" + name


@atexit.register
def drop_databases() -> None:
    """Drop the databases this process made, over one connection. tests/conftest.py calls
    it as the test session ends: an xdist worker is killed 10 s after its session (execnet),
    which on a loaded machine left the last few to an exit handler that never finished."""
    names, _databases[:] = list(_databases), []
    if names:
        try:
            _admin(*(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in names), keep_going=True)
        except Exception as exc:  # the server went away: say what is left behind
            print(f"could not drop test databases {names}: {exc}", file=sys.stderr)


@dataclass
class Server:
    base: str
    root: Path
    env: dict[str, str]
    proc: subprocess.Popen

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=60, **kw)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self) -> Server:
        self.stop()
        return start_server(self.root, self.env, fresh=False)


def start_server(root: Path, env: dict[str, str], *, fresh: bool = True, port: int | None = None) -> Server:
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    full_env = child_env(
        {
            "FXHOST_HOST": "127.0.0.1",
            "FXHOST_PORT": str(port),
            "FXHOST_UPLOADS_DIR": str(root / "uploads"),
            "FXHOST_RENDERS_DIR": str(root / "renders"),
            "FXHOST_PLUGINS_CONFIG": str(REPO / "plugins.toml"),
            "FXHOST_LOG_LEVEL": "warning",
            **env,
        }
    )
    full_env.setdefault("FXHOST_DATABASE_URL", f"sqlite://{root / 'fxhost.db'}")
    log = open(root / f"server-{port}.log", "ab")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen([FXHOST, "serve"], cwd=root, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"server did not start:\n{(root / f'server-{port}.log').read_text()[-3000:]}")
        time.sleep(0.1)
    return Server(base, root, env, proc)


def descendants(pid: int) -> list[int]:
    """Every process under ``pid`` (uvicorn's workers and their helpers), from /proc."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            for child in (task / "children").read_text().split():
                found += [int(child), *descendants(int(child))]
    return found


def kill_tree(server: Server) -> None:
    """SIGKILL the server and all its processes at once, and wait until they are gone
    (test_a_killed_server_leaves_no_worker_behind shows that killing the server alone is
    enough; this does not wait for that)."""
    pids = descendants(server.proc.pid)
    server.proc.send_signal(signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    server.proc.wait()
    for pid in pids:  # reaped by init once their parent is gone
        wait_until(lambda pid=pid: not Path(f"/proc/{pid}").exists(), what=f"process {pid} gone")


def tone(seconds: float = 1.0, sample_rate: int = 44100, channels: int = 2, seed: int = 0) -> np.ndarray:
    """A deterministic test signal, float32 ``(channels, frames)``, peak about 0.6."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    base = 0.4 * np.sin(2 * np.pi * 330 * t) + 0.15 * rng.standard_normal(n) * (np.sin(2 * np.pi * 3 * t) > 0)
    return np.stack([base * (1 - 0.25 * c) for c in range(channels)]).astype(np.float32)


def encode(audio: np.ndarray, sample_rate: int, fmt: str, subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio.T, sample_rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def decode(data: bytes) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return np.ascontiguousarray(audio.T), rate


def assert_resampled(out: np.ndarray, audio: np.ndarray, from_rate: int, to_rate: int) -> None:
    """``out`` is ``audio`` (``(channels, frames)`` at ``from_rate``) resampled to
    ``to_rate``, judged against an independent resampler: scipy's polyphase FIR
    (``resample_poly``; fxhost uses soxr).

    Both are linear-phase and compensate their own delay, so the signals are compared as
    they are, sample for sample (a shift fails). The two anti-alias filters differ by
    design near the lower Nyquist frequency, so both are low-passed alike (zero-phase,
    RESAMPLE_BAND_HZ) first; there the signal-to-error ratio must reach RESAMPLE_MIN_SNR_DB.
    (Measured on the tests' reverberated tones: fxhost's soxr HQ 61 and 65 dB; soxr's
    quick quality 24 dB, linear interpolation 21 dB.)"""
    from math import gcd

    from scipy.signal import filtfilt, firwin, resample_poly

    g = gcd(from_rate, to_rate)
    assert abs(out.shape[1] - round(audio.shape[1] * to_rate / from_rate)) <= 1, out.shape
    expected = resample_poly(audio.astype(np.float64), to_rate // g, from_rate // g, axis=1)
    frames = min(out.shape[1], expected.shape[1])
    lowpass = firwin(255, RESAMPLE_BAND_HZ, fs=to_rate)
    want = filtfilt(lowpass, 1, expected[:, :frames], axis=1)
    got = filtfilt(lowpass, 1, out[:, :frames].astype(np.float64), axis=1)
    snr = 10 * np.log10(np.sum(want**2) / np.sum((got - want) ** 2))
    assert snr >= RESAMPLE_MIN_SNR_DB, f"resampled {from_rate} -> {to_rate} Hz: {snr:.1f} dB"
