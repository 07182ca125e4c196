"""``fxhost serve --workers 2`` spreads connections over its workers, busy or not:
each worker listens on a socket of its own (SO_REUSEPORT), so the kernel picks the worker
by a hash of the connection, rather than the first worker to wake taking every
connection waiting (live audio costs per connection: a burst on one worker makes its
blocks late while the other idles)."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections import Counter

import pytest
from restkit import descendants, start_server
from waiting import wait_until

pytestmark = pytest.mark.slow

BURST = 40


def health_over(sock: socket.socket, port: int) -> dict:
    request = f"GET /api/audio/health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    sock.sendall(request.encode())
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return json.loads(body)


def served_by(port: int, count: int, paused: set[int] = frozenset()) -> Counter:
    """Open ``count`` connections, then ask each which process serves it; the workers in
    ``paused`` are stopped while the connections are made, as a worker busy with a
    block would be."""
    for pid in paused:
        os.kill(pid, signal.SIGSTOP)
    try:
        socks = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(count)]
        if paused:
            time.sleep(0.5)  # long enough for an awake worker to accept all it is given
    finally:
        for pid in paused:
            os.kill(pid, signal.SIGCONT)
    try:
        return Counter(health_over(sock, port)["process"] for sock in socks)
    finally:
        for sock in socks:
            sock.close()


@pytest.fixture
def workers(tmp_path):
    """``fxhost serve --workers 2``: its port and its two workers' pids, once both serve."""
    server = start_server(tmp_path, {"FXHOST_WORKERS": "2"})
    try:
        port = int(server.base.rpartition(":")[2])
        # A few single connections until both workers have answered.
        seen: set[int] = set()
        wait_until(lambda: seen.update(served_by(port, 1)) or len(seen) == 2, what="both workers serving")
        assert seen <= set(descendants(server.proc.pid))
        yield port, seen
    finally:
        server.stop()


def test_connections_made_while_a_worker_is_busy_are_still_shared(workers):
    port, pids = workers
    # With one socket shared, the worker that is awake takes every connection; these are
    # long-lived (a live session), so a moment's business would decide for good.
    counts = served_by(port, BURST, paused={min(pids)})
    assert set(counts) == pids, counts
    # A fair coin per connection: one worker with fewer than 8 of 40 is a 1-in-40,000 event.
    assert min(counts.values()) >= 8, counts


def test_a_worker_killed_is_replaced_on_its_socket_and_no_connection_is_refused(workers):
    port, pids = workers
    victim = min(pids)
    os.kill(victim, signal.SIGKILL)
    # While it is replaced, connections hashed to its socket wait there: every one of a
    # burst is served, none refused, half of them by the replacement.
    counts = served_by(port, BURST, paused=pids - {victim})
    assert sum(counts.values()) == BURST, counts
    assert victim not in counts and len(counts) == 2, counts
    assert min(counts.values()) >= 8, counts
