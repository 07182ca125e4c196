"""A refused WebSocket (no key, a wrong key, too many connections) is the client's doing:
the server log gets one line at INFO or WARNING naming the reason and the peer, never a
traceback or an ERROR line, on /ws/process and on both stream WebSockets."""

from __future__ import annotations

import json
import re
import socket

import numpy as np
import pytest
from restkit import start_server
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from wskit import Session, interleave

KEY = "refusal-test-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
START = {"chain": "hall", "sample_rate": 48000, "channels": 2}


def refuse(base: str, path: str, headers: dict | None, first: str | bytes | None) -> tuple[str, int, int]:
    """Open a WebSocket that the server refuses: (error code, close code, our local port)."""
    # Our own socket, so that we know our port before the server closes the connection.
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    port = sock.getsockname()[1]
    url = base.replace("http://", "ws://") + path
    with connect(url, sock=sock, open_timeout=10, additional_headers=headers) as ws:
        if first is not None:
            ws.send(first)
        error = json.loads(ws.recv(timeout=10))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    return error["code"], closed.value.rcvd.code, port


def test_refused_sessions_are_one_log_line_each(tmp_path):
    server = start_server(
        tmp_path, {"FXHOST_API_KEYS": KEY, "FXHOST_MAX_CONNECTIONS": "2", "FXHOST_LOG_LEVEL": "info"}
    )
    refusals: list[tuple[str, int, int, str]] = []  # path, peer port, close code, reason in the log
    try:
        with server.client(headers=AUTH) as client:
            r = client.post("/api/streams", json={"chain": "hall", "sample_rate": 48000})
            assert r.status_code == 201, r.text
            sid = r.json()["id"]
        paths = ["/ws/process", f"/ws/streams/{sid}/input", f"/ws/streams/{sid}/output"]
        not_auth = json.dumps({"type": "start", **START})
        ways = [
            (None, not_auth, "no valid API key in the first message"),
            (None, json.dumps({"type": "auth", "token": "wrong"}), "no valid API key in the first message"),
            (None, interleave(np.zeros((2, 64), np.float32)), "no API key: audio came first"),
            ({"Authorization": "Bearer wrong"}, None, "the API key in the Authorization header is not valid"),
        ]
        for path in paths:
            for headers, first, reason in ways:
                code, close, port = refuse(server.base, path, headers, first)
                assert (code, close) == ("unauthorized", 1008)
                refusals.append((path, port, close, reason))

        # Two sessions hold the two connections allowed; every third is refused, key or not.
        held = [Session(server.base, headers=AUTH, **START) for _ in range(2)]
        assert all(s.ready["type"] == "ready" for s in held)
        for path in paths:
            for headers in (AUTH, None):
                code, close, port = refuse(server.base, path, headers, None)
                assert (code, close) == ("busy", 1013)
                refusals.append((path, port, close, "too many connections (max_connections = 2)"))
        for s in held:
            s.close()
    finally:
        server.stop()

    log = next(server.root.glob("server-*.log")).read_text()
    assert "Traceback" not in log and "generator didn't yield" not in log, log
    assert not [line for line in log.splitlines() if "ERROR" in line], log
    refused = [line for line in log.splitlines() if " refused, " in line]
    assert len(refused) == len(refusals), "\n".join(refused)
    for path, port, close, reason in refusals:
        lines = [line for line in refused if re.search(rf"from 127\.0\.0\.1:{port} refused\b", line)]
        assert len(lines) == 1, (port, refused)
        level = "WARNING" if close == 1013 else "INFO"
        expected = f"fxhost: {level}: WebSocket {path} from 127.0.0.1:{port} refused, {close}: {reason}"
        assert lines[0] == expected
