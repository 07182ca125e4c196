"""WebSocket session plumbing shared by ``/ws/process`` and the stream endpoints: accepting
a connection within the connection limit, authenticating it, receiving with a timeout,
turning PCM frames into audio, and ending a session with an error message and a close
code that says why (the codes are in :mod:`fxhost.api.protocol`). The server and other
sessions carry on whatever happens in one.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import functools
import logging
import termios
from collections.abc import Awaitable, Callable

import numpy as np
from starlette.types import Receive, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from fxhost.api import protocol as p
from fxhost.api.auth import tenant_from_message, ws_auth_state
from fxhost.api.state import services
from fxhost.audio.pcm import Pcm
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


class Refused(ProtocolError):
    """The session is refused before it starts (no valid key, too many connections): the
    client's doing, not the server's, so it is one log line naming the reason and the peer,
    not a traceback. ``reason`` is what the log says; ``message`` what the client is told."""

    def __init__(self, code: str, message: str, close_code: int, reason: str = ""):
        super().__init__(code, message, close_code)
        self.reason = reason or message


Handler = Callable[[WebSocket], Awaitable[None]]


def session(handler: Handler) -> Handler:
    """A WebSocket endpoint from a session handler: accept, refuse a connection over the
    limit or without a valid key, then run ``handler``, turning protocol errors into an
    error message and a close code. The server and other sessions carry on whatever
    happens in one session."""

    @functools.wraps(handler)
    async def endpoint(ws: WebSocket) -> None:
        svc = services(ws)
        await ws.accept()
        try:
            if svc.connections >= svc.settings.max_connections:
                raise Refused(
                    "busy",
                    "too many connections; try again later",
                    p.CLOSE_TRY_LATER,
                    f"too many connections (max_connections = {svc.settings.max_connections})",
                )
            svc.connections += 1
            try:
                await _authenticate(ws)
                await handler(ws)
            finally:
                svc.connections -= 1
        except Refused as refusal:
            # Too many connections is the operator's business (capacity); a missing key is not.
            level = logging.WARNING if refusal.code == "busy" else logging.INFO
            log.log(
                level,
                "WebSocket %s from %s refused, %s: %s",
                ws.url.path,
                peer(ws),
                refusal.close_code,
                refusal.reason,
            )
            await close_with(ws, refusal)
        except ProtocolError as error:
            await close_with(ws, error)
        except EffectFault as fault:  # while flushing the tail
            await close_with(ws, effect_failed(fault))
        except WebSocketDisconnect:
            pass
        except Exception:
            log.exception("WebSocket %s from %s failed", ws.url.path, peer(ws))
            await close_with(
                ws, ProtocolError("internal", "the server failed; the error is logged", p.CLOSE_INTERNAL)
            )

    return endpoint


def peer(ws: WebSocket) -> str:
    """The client's ``host:port`` (as uvicorn sees it, after trusted proxy headers)."""
    return f"{ws.client.host}:{ws.client.port}" if ws.client else "an unknown peer"


async def _authenticate(ws: WebSocket) -> None:
    """A WebSocket whose key was not in a header must send it as its first message."""
    state = ws_auth_state(ws)
    if state is None:
        return
    needed = 'this route needs an API key: the Authorization header, or {"type": "auth", "token": KEY} first'
    if state == "invalid":
        raise Refused(
            "unauthorized",
            "the API key is not valid (unknown, revoked or malformed)",
            CLOSE_AUTH,
            "the API key in the Authorization header is not valid",
        )
    try:
        first = await receive(ws, START_TIMEOUT)
    except TimeoutError:
        raise Refused(
            "unauthorized", needed, CLOSE_AUTH, f"no API key within {START_TIMEOUT:.0f} s"
        ) from None
    if isinstance(first, bytes):
        raise Refused("unauthorized", needed, CLOSE_AUTH, "no API key: audio came first")
    if await tenant_from_message(ws, services(ws).auth, first) is None:
        raise Refused("unauthorized", needed, CLOSE_AUTH, "no valid API key in the first message")


async def receive(ws: WebSocket, timeout: float | None = None) -> bytes | str:
    message = await asyncio.wait_for(ws.receive(), timeout) if timeout else await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    if message.get("bytes") is not None:
        return message["bytes"]
    return message.get("text") or ""


def audio_of(data: bytes | memoryview, pcm: Pcm, max_bytes: int) -> np.ndarray:
    """A binary frame as audio, or the protocol error that ends the session."""
    if len(data) > max_bytes:
        raise ProtocolError(
            "too_big",
            f"a frame of {len(data)} bytes is larger than the limit of {max_bytes}",
            p.CLOSE_TOO_BIG,
        )
    try:
        return pcm.decode(data)
    except ValueError as error:
        raise ProtocolError("invalid_audio", str(error), p.CLOSE_INVALID_DATA) from None


def block_io(ws: WebSocket) -> tuple[Receive, Send]:
    """The ASGI ``receive`` and ``send``, for a per-block loop: those of Starlette's
    WebSocket check its state machine on every message (1.5 µs a block, a tenth of what
    /ws/process adds to a bare handler: bench/live_instructions.py), and a coroutine of
    our own around them would cost one more per block. The caller raises
    WebSocketDisconnect on a disconnect message, and :func:`connection_lost` when a send
    raises OSError, as Starlette's would."""
    return ws._receive, ws._send


def connection_lost(ws: WebSocket) -> WebSocketDisconnect:
    """A send to a connection that is gone (OSError): the WebSocket is marked disconnected,
    and the caller raises the WebSocketDisconnect(1006) returned, as Starlette's send does."""
    ws.application_state = WebSocketState.DISCONNECTED
    return WebSocketDisconnect(1006)


def unread_bytes(ws: WebSocket) -> int | None:
    """Bytes the client has sent that the session has not read yet: the messages the
    ASGI server holds for it plus what waits in the kernel's socket buffer (WebSocket
    framing included). None where the server does not let us see them. For ``stats``
    only: a system call and a look into uvicorn's protocol object."""
    protocol = getattr(ws._receive, "__self__", None)  # uvicorn's, for its transport and queue
    transport = getattr(protocol, "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return None
    waiting = array.array("i", [0])
    try:
        fcntl.ioctl(sock.fileno(), termios.FIONREAD, waiting, True)
    except (OSError, ValueError):
        return None
    queued = getattr(getattr(protocol, "queue", None), "_queue", ())
    return waiting[0] + sum(len(event.get("bytes") or b"") for event in queued)


def effect_failed(fault: EffectFault) -> ProtocolError:
    """An effect failed or hung: the session or stream ends (1011), naming the effect."""
    code = "effect_timeout" if isinstance(fault, EffectTimeout) else "effect_failed"
    return ProtocolError(code, str(fault), p.CLOSE_INTERNAL)
