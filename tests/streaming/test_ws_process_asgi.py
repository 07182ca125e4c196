"""/ws/process driven in process, through ASGI (no socket), for what a real client cannot
time: a reply sent to a connection that has just gone. The session's per-block loop sends
through the raw ASGI ``send`` (sessions.block_io); an OSError there must end the session
as a disconnect (1006), as Starlette's ``send_bytes`` would, not as a server failure."""

import asyncio
import json
import logging
from pathlib import Path

import numpy as np
from fxhost.api.app import create_app
from fxhost.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
SCOPE = {
    "type": "websocket",
    "path": "/ws/process",
    "raw_path": b"/ws/process",
    "root_path": "",
    "headers": [(b"host", b"test")],
    "query_string": b"",
    "client": ("127.0.0.1", 5000),
    "server": ("127.0.0.1", 8000),
    "scheme": "ws",
    "subprotocols": [],
    "asgi": {"version": "3.0", "spec_version": "2.3"},
}
START = {"type": "start", "chain": "hall", "sample_rate": 48000, "channels": 2, "format": "f32le"}


def test_a_send_to_a_connection_gone_ends_the_session_as_a_disconnect(tmp_path, caplog):
    settings = load_settings(
        {
            "FXHOST_UPLOADS_DIR": str(tmp_path / "uploads"),
            "FXHOST_RENDERS_DIR": str(tmp_path / "renders"),
            "FXHOST_PLUGINS_CONFIG": str(REPO / "plugins.toml"),
            "FXHOST_DATABASE_URL": f"sqlite://{tmp_path / 'fxhost.db'}",
        },
        tmp_path / ".env",
    )
    block = np.zeros((256, 2), "<f4").tobytes()
    incoming = [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": json.dumps(START)},
        *({"type": "websocket.receive", "bytes": block} for _ in range(3)),
    ]
    sent: list[dict] = []

    async def receive():
        if incoming:
            return incoming.pop(0)
        await asyncio.sleep(3600)  # the session must not ask for more: its send failed

    async def send(message):
        sent.append(message)
        if message.get("bytes") is not None:
            raise OSError("the client has gone")  # what uvicorn's ClientDisconnected is

    async def main():
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            await asyncio.wait_for(app(SCOPE, receive, send), 30)

    with caplog.at_level(logging.INFO, logger="fxhost.api"):
        asyncio.run(main())
    # Accepted, ready, the first processed block (which failed), and nothing after: no
    # error message or close sent to a connection that is gone, nothing logged as a failure.
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.send"]
    assert json.loads(sent[1]["text"])["type"] == "ready"
    assert len(sent[2]["bytes"]) == len(block)
    assert len(incoming) == 2  # two blocks never read
    assert not [r for r in caplog.records if r.name.startswith("fxhost.api")], caplog.text
