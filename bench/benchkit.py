"""What the bench scripts share: a real ``fxhost serve`` on a free port, from this checkout,
with SQLite in a scratch folder, started and waited for until ``/health`` answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_fxhost(folder: Path, env: dict[str, str]) -> tuple[subprocess.Popen, int, Path]:
    """``fxhost serve`` in ``folder`` (its database, uploads and ``server.log``), with
    ``env`` over the defaults; returns the process, its port and its log once healthy, or
    exits with the log's tail if it does not start within a minute."""
    port = free_port()
    full_env = {
        **os.environ,
        "FXHOST_PORT": str(port),
        "FXHOST_LOG_LEVEL": "warning",
        "FXHOST_PLUGINS_CONFIG": str(REPO / "plugins.toml"),
        "FXHOST_DATABASE_URL": f"sqlite://{folder}/fxhost.db",
        **env,
    }
    log = folder / "server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "fxhost"), "serve"],
            cwd=folder,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return server, port, log
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise SystemExit(f"the server did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)
