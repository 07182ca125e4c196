"""WebSocket session plumbing shared by ``/ws/process`` and the stream endpoints: accepting
a connection within the connection limit, authenticating it, receiving with a timeout,
turning PCM frames into audio, and ending a session with an error message and a close
code that says why (the codes are in :mod:`fxhost.api.protocol`). The server and other
sessions carry on whatever happens in one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import numpy as np
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from fxhost.api import protocol as p
from fxhost.api.auth import tenant_from_message, ws_auth_state
from fxhost.api.state import services
from fxhost.audio.pcm import PcmFormat, from_interleaved
from fxhost.engine.compiled import EffectFault, EffectTimeout

log = logging.getLogger(__name__)

#: Seconds a client has to send its first message.
START_TIMEOUT = 30.0
#: No key, or a key that is not valid: a policy violation.
CLOSE_AUTH = p.CLOSE_POLICY


class ProtocolError(Exception):
    """Ends a WebSocket session: an error message, then a close with ``close_code``."""

    def __init__(self, code: str, message: str, close_code: int, path: str | None = None):
        super().__init__(message)
        self.code, self.message, self.close_code, self.path = code, message, close_code, path


async def send(ws: WebSocket, message: p.ServerMessage) -> None:
    await ws.send_text(p.encode_message(message))


async def close_with(ws: WebSocket, error: ProtocolError) -> None:
    if ws.application_state == WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):
            await send(ws, p.Error(code=error.code, message=error.message, path=error.path))
            await ws.close(error.close_code, error.message[:120])


@contextlib.asynccontextmanager
async def session(ws: WebSocket) -> AsyncIterator[None]:
    """Accept, count the connection against the limit, and turn protocol errors into an
    error message and a close code. The server and other sessions carry on whatever
    happens here."""
    svc = services(ws)
    await ws.accept()
    if svc.connections >= svc.settings.max_connections:
        await close_with(
            ws, ProtocolError("busy", "too many connections; try again later", p.CLOSE_TRY_LATER)
        )
        return
    svc.connections += 1
    try:
        await _authenticate(ws)
        yield
    except ProtocolError as error:
        await close_with(ws, error)
    except EffectFault as fault:  # while flushing the tail
        await close_with(ws, effect_failed(fault))
    except WebSocketDisconnect:
        pass
    except Exception:
        log.exception("WebSocket %s failed", ws.url.path)
        await close_with(
            ws, ProtocolError("internal", "the server failed; the error is logged", p.CLOSE_INTERNAL)
        )
    finally:
        svc.connections -= 1


async def _authenticate(ws: WebSocket) -> None:
    """A WebSocket whose key was not in a header must send it as its first message."""
    state = ws_auth_state(ws)
    if state is None:
        return
    needed = 'this route needs an API key: the Authorization header, or {"type": "auth", "token": KEY} first'
    if state == "invalid":
        raise ProtocolError(
            "unauthorized", "the API key is not valid (unknown, revoked or malformed)", CLOSE_AUTH
        )
    try:
        first = await receive(ws, START_TIMEOUT)
    except TimeoutError:
        raise ProtocolError("unauthorized", needed, CLOSE_AUTH) from None
    if isinstance(first, bytes) or await tenant_from_message(ws, services(ws).auth, first) is None:
        raise ProtocolError("unauthorized", needed, CLOSE_AUTH)


async def receive(ws: WebSocket, timeout: float | None = None) -> bytes | str:
    message = await asyncio.wait_for(ws.receive(), timeout) if timeout else await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    if message.get("bytes") is not None:
        return message["bytes"]
    return message.get("text") or ""


def audio_of(data: bytes, channels: int, fmt: PcmFormat, max_bytes: int) -> np.ndarray:
    """A binary frame as audio, or the protocol error that ends the session."""
    if len(data) > max_bytes:
        raise ProtocolError(
            "too_big",
            f"a frame of {len(data)} bytes is larger than the limit of {max_bytes}",
            p.CLOSE_TOO_BIG,
        )
    try:
        return from_interleaved(data, channels, fmt)
    except ValueError as error:
        raise ProtocolError("invalid_audio", str(error), p.CLOSE_INVALID_DATA) from None


def effect_failed(fault: EffectFault) -> ProtocolError:
    """An effect failed or hung: the session or stream ends (1011), naming the effect."""
    code = "effect_timeout" if isinstance(fault, EffectTimeout) else "effect_failed"
    return ProtocolError(code, str(fault), p.CLOSE_INTERNAL)
