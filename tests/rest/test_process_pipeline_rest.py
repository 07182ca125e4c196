"""What keeps ``/api/process`` close to the bare pipeline (bench/rest_process.py), seen
from outside without timing anything.

The render worker processes start with the server, in the background, so that the
first request does not pay for their start (the forkserver importing the engine and
the effects: seconds): the server logs "render workers ready" with their process ids,
those are the processes forked by its forkserver, and the first request is served by
them (no process is started for it). The request's temporary files (the body, the
output sent from a memory map) are gone once it is answered, whether it succeeded or not.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from restkit import PG_URL, decode, encode, fresh_postgres, start_server, tone
from waiting import wait_until

READY = re.compile(r"render workers ready: (\d+) process\(es\) in [\d.]+ s \(pids ([\d ]+)\)")


def ready_lines(log: Path, count: int) -> list[re.Match]:
    """The first ``count`` "render workers ready" lines of the server's log, waiting for
    them (a condition, not a timed assertion: the bound only ends a test that fails)."""

    def found() -> list[re.Match]:
        lines = [m for line in log.read_text().splitlines() if (m := READY.search(line))]
        return lines if len(lines) >= count else []

    return wait_until(found, 120, interval=0.05, what=f"{count} 'render workers ready' line(s) in the log")


def parent(pid: int) -> int:
    # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def children(pid: int) -> set[int]:
    """Process ids whose parent is ``pid``, from /proc."""
    found = set()
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if parent(int(entry.name)) == pid:
                found.add(int(entry.name))
        except (OSError, IndexError):
            continue
    return found


def descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        for child in children(todo.pop()):
            found.add(child)
            todo.append(child)
    return found


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def is_forkserver(pid: int) -> bool:
    """Whether ``pid`` is a forkserver (its children, the workers, carry its command line
    too: they are forked from it)."""
    try:
        return "multiprocessing.forkserver" in cmdline(pid) and "multiprocessing.forkserver" not in cmdline(
            parent(pid)
        )
    except OSError:  # gone meanwhile
        return False


def render_workers(server_pid: int) -> set[int]:
    """The children of the server's forkserver: its render worker processes."""
    forkservers = [p for p in children(server_pid) if is_forkserver(p)]
    assert len(forkservers) == 1, [cmdline(p) for p in children(server_pid)]
    return children(forkservers[0])


def started_pools(root_pid: int, *, processes: int, workers: int) -> list[set[int]]:
    """The worker processes of each server process below ``root_pid`` (the children of
    its forkserver), once there are ``processes`` pools of ``workers`` (waiting for them:
    the bound only ends a test that fails)."""

    def started() -> list[list[int]]:
        pools = [children(f) for f in descendants(root_pid) if is_forkserver(f)]
        return pools if len(pools) == processes and all(len(pool) == workers for pool in pools) else []

    return wait_until(started, 120, interval=0.05, what=f"{processes} worker pool(s) of {workers}")


def log_of(server) -> Path:
    return next(server.root.glob("server-*.log"))


def server_env(**extra: str) -> dict[str, str]:
    env = {"FXHOST_LOG_LEVEL": "info", "FXHOST_RENDER_WORKERS": "2", **extra}
    if PG_URL:
        env["FXHOST_DATABASE_URL"] = fresh_postgres()
    return env


@pytest.fixture
def wav() -> tuple[np.ndarray, bytes]:
    audio = tone(0.5, 44100, 2, seed=5)
    return audio, encode(audio, 44100, "WAV", "FLOAT")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("pipeline"), server_env())
    yield srv
    srv.stop()


def temporary_files(server) -> list[Path]:
    return [p for folder in ("uploads", "renders") for p in (server.root / folder).glob(".part-*")]


def no_temporary_files(server) -> list[Path]:
    """Waits until the temporary files are gone (they go just after the response is sent);
    returns what is left at the bound, which only ends a test that fails."""
    deadline = time.monotonic() + 30
    while (left := temporary_files(server)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left


def test_workers_are_ready_before_the_first_request(server, wav):
    (match,) = ready_lines(log_of(server), 1)
    assert match[1] == "2"
    logged = {int(pid) for pid in match[2].split()}
    workers = render_workers(server.proc.pid)
    # The processes the log names are the running workers, before any request.
    assert logged == workers and len(workers) == 2
    audio, body = wav
    with server.client() as client:
        response = client.post("/api/process", params={"effect": "gain", "gain_db": "-6"}, content=body)
    assert response.status_code == 200, response.text
    out, _ = decode(response.content)
    np.testing.assert_allclose(out, audio * 10 ** (-6 / 20), atol=1e-6)
    # Served by one of them: no worker was started for it.
    assert render_workers(server.proc.pid) == workers


def test_process_leaves_no_temporary_files(server, wav):
    audio, body = wav
    with server.client() as client:
        response = client.post("/api/process", params={"effect": "gain", "gain_db": "0"}, content=body)
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(decode(response.content)[0], audio, atol=1e-6)
        assert no_temporary_files(server) == []
        # Refused after the body was stored: the output rule refuses the subtype.
        response = client.post("/api/process", params={"effect": "gain", "subtype": "VORBIS"}, content=body)
        assert response.status_code == 422, response.text
        assert no_temporary_files(server) == []
        # A client that leaves before reading the answer (several slices of the map).
        long = encode(tone(10.0, 44100, 2, seed=6), 44100, "WAV", "FLOAT")
        with client.stream("POST", "/api/process", params={"effect": "gain"}, content=long) as response:
            assert response.status_code == 200
            assert int(response.headers["content-length"]) > 3 * 2**20
        assert no_temporary_files(server) == []


def test_each_server_process_starts_its_workers(tmp_path, wav):
    """With FXHOST_WORKERS=2 each server process has its own pool, started at its start.
    (Those processes log at WARNING only, so the pools are seen in /proc.)"""
    server = start_server(tmp_path, server_env(FXHOST_WORKERS="2"))
    try:
        pools = started_pools(server.proc.pid, processes=2, workers=2)
        workers = set().union(*pools)
        _audio, body = wav
        with server.client() as client:
            for _ in range(4):  # whichever process accepts them
                response = client.post("/api/process", params={"effect": "gain"}, content=body)
                assert response.status_code == 200, response.text
        assert set().union(*started_pools(server.proc.pid, processes=2, workers=2)) == workers
    finally:
        server.stop()
