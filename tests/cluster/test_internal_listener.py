"""The internal listener of one process, with the default SQLite database: where it
listens is in the registry, with each stream it owns, and a port it cannot have stops
the server with one clear error."""

import socket
import sqlite3
import subprocess

import httpx
from procenv import child_env
from restkit import FXHOST, REPO, start_server


def test_one_process_registers_its_streams_and_forgets_them(tmp_path):
    server = start_server(tmp_path, {"FXHOST_INTERNAL_ADVERTISE": "localhost"})
    try:
        stream = httpx.post(f"{server.base}/api/streams", json={"chain": "hall"}, timeout=30).json()
        with sqlite3.connect(tmp_path / "fxhost.db") as db:
            ((node, address),) = db.execute("SELECT id, address FROM cluster_nodes").fetchall()
            assert node.endswith(f":{server.proc.pid}") and address.startswith("localhost:")
            rows = db.execute("SELECT id, node FROM cluster_streams").fetchall()
        assert rows == [(stream["id"], node)]
        assert httpx.delete(f"{server.base}/api/streams/{stream['id']}", timeout=30).status_code == 204
        with sqlite3.connect(tmp_path / "fxhost.db") as db:
            assert db.execute("SELECT id FROM cluster_streams").fetchall() == []
    finally:
        server.stop()
    with sqlite3.connect(tmp_path / "fxhost.db") as db:
        assert db.execute("SELECT id FROM cluster_nodes").fetchall() == []


def test_an_internal_port_in_use_stops_the_server_saying_so(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = child_env(
            {
                "FXHOST_PORT": "0",
                "FXHOST_INTERNAL_PORT": str(port),
                "FXHOST_DATABASE_URL": f"sqlite://{tmp_path / 'fxhost.db'}",
                "FXHOST_PLUGINS_CONFIG": str(REPO / "plugins.toml"),
            }
        )
        done = subprocess.run(
            [FXHOST, "serve"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
    assert done.returncode != 0
    assert f"FXHOST_INTERNAL_HOST/FXHOST_INTERNAL_PORT: cannot listen on 127.0.0.1:{port}" in done.stderr
