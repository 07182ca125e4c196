"""Helpers for the live tests: a WebSocket client speaking fxhost's protocol."""

from __future__ import annotations

import json

import numpy as np
from websockets.sync.client import connect


def interleave(block: np.ndarray, fmt: str = "f32le") -> bytes:
    if fmt == "f32le":
        return np.ascontiguousarray(block.T, dtype="<f4").tobytes()
    return np.ascontiguousarray((np.clip(block, -1, 32767 / 32768) * 32768).round().T, dtype="<i2").tobytes()


def deinterleave(data: bytes, channels: int, fmt: str = "f32le") -> np.ndarray:
    dtype = "<f4" if fmt == "f32le" else "<i2"
    frames = np.frombuffer(data, dtype=dtype).reshape(-1, channels).T.astype(np.float32)
    return frames if fmt == "f32le" else frames / 32768


def open_ws(base: str, path: str, headers: dict[str, str] | None = None):
    """A connected client (the context-manager form of websockets' connect, entered)."""
    url = base.replace("http://", "ws://") + path
    return connect(url, max_size=None, open_timeout=10, additional_headers=headers).__enter__()


class Session:
    """A /ws/process client: send blocks, collect the processed frames."""

    def __init__(
        self, base: str, path: str = "/ws/process", *, headers: dict[str, str] | None = None, **start
    ):
        self.ws = open_ws(base, path, headers)
        self.channels = start.get("channels", 2)
        self.format = start.get("format", "f32le")
        self.ready = None
        if start:
            self.send_json({"type": "start", **start})
            self.ready = self.recv_json()

    def send_json(self, message) -> None:
        self.ws.send(json.dumps(message))

    def recv_json(self, timeout: float = 10):
        message = self.ws.recv(timeout=timeout)
        assert isinstance(message, str), f"expected a JSON message, got {len(message)} bytes"
        return json.loads(message)

    def process(self, block: np.ndarray) -> np.ndarray:
        self.ws.send(interleave(block, self.format))
        reply = self.ws.recv(timeout=10)
        assert isinstance(reply, bytes), reply
        return deinterleave(reply, self.channels, self.format)

    def flush(self) -> tuple[np.ndarray, dict]:
        self.send_json({"type": "flush"})
        blocks = []
        while True:
            message = self.ws.recv(timeout=30)
            if isinstance(message, str):
                return (
                    np.concatenate(blocks, axis=1) if blocks else np.zeros((self.channels, 0), np.float32),
                    json.loads(message),
                )
            blocks.append(deinterleave(message, self.channels, self.format))

    def close(self) -> None:
        self.ws.close()
