"""Streams across processes: every worker and node serves every stream.

A stream runs in one process, its owner (:mod:`fxhost.store.registry` says which, and
where it listens). A client may reach any process: one that does not own the stream
forwards the client's REST request or WebSocket to the owner's *internal listener*, and
the owner's answer back, so the client never knows (no redirects: WebSocket clients may
ignore them).

The internal listener serves the same stream routes to other processes only. Its
requests carry the tenant the public edge authenticated and an HMAC signature of the
method, path, tenant and expiry, keyed by the server's internal secret (in the shared
database); anything else is refused (403, or close 1008 before the WebSocket opens). The
public port knows nothing of those headers: there they are just headers.

When the owner does not answer, or its connection breaks, the registry decides whether
it died; the stream is then *lost*: REST answers 410, a WebSocket closes with 4410
(``stream_lost``), each saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import uvicorn
from starlette.background import BackgroundTask
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from fxhost.api import protocol as p
from fxhost.api.auth import TENANT, tenant_of
from fxhost.api.openapi.problems import ProblemException, not_found, problem_response
from fxhost.api.sessions import ProtocolError
from fxhost.api.state import services
from fxhost.engine.streams import StreamInfo
from fxhost.settings import Settings
from fxhost.store.registry import Entry, InternalSigner

log = logging.getLogger(__name__)

#: The headers of an internal request: who the client is, until when, and the signature.
TENANT_HEADER = "x-fxhost-tenant"
EXP_HEADER = "x-fxhost-exp"
SIG_HEADER = "x-fxhost-signature"
#: The key of the ASGI scope's "state" that marks a request of the internal listener.
INTERNAL = "internal"
#: The "method" signed for a WebSocket.
WS_METHOD = "WS"
#: Seconds to reach an owner; to wait for its answer to a REST request.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
#: A forwarded WebSocket pings its owner this often, and gives it up after as long
#: without a pong: a machine that vanished without closing its sockets is noticed.
PING_SECONDS = 5.0
#: A forwarded answer up to this size is read whole, then sent on in one piece; a larger
#: one is streamed through.
SMALL_BODY = 256 * 1024
#: Headers that belong to one connection, not to the request or response forwarded.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "date",
        "server",
    }
)
#: What the owner must not be told by the client: the key stays at the public edge, and
#: internal headers come only from this process.
_NOT_FORWARDED = HOP_BY_HOP | {"authorization", TENANT_HEADER, EXP_HEADER, SIG_HEADER}


class StreamLost(Exception):
    """The stream's owner died: the stream and its audio are gone."""

    def __init__(self, stream_id: str, reason: str):
        super().__init__(f"stream {stream_id!r} is lost: {reason}; create a new stream")


def lost_problem(error: StreamLost) -> ProblemException:
    return ProblemException(410, str(error), type="urn:fxhost:problem:stream-lost")


def lost_close(error: StreamLost) -> ProtocolError:
    return ProtocolError("stream_lost", str(error), p.CLOSE_LOST)


def is_internal(conn: HTTPConnection) -> bool:
    """Whether a request came through the internal listener (set only by its middleware)."""
    return bool(conn.scope.get("state", {}).get(INTERNAL))


async def owner_elsewhere(conn: HTTPConnection, stream_id: str) -> Entry | None:
    """The registry's entry of a stream of this tenant that another process owns, for a
    public request that this process cannot serve itself; None when the stream is
    nowhere (the handler says not found). Raises :class:`StreamLost`."""
    if is_internal(conn):
        return None  # an owner never forwards: that could loop
    svc = services(conn)
    entry = await svc.registry.find(stream_id)
    if entry is None or entry.tenant != tenant_of(conn):
        return None
    if entry.lost is not None:
        raise StreamLost(stream_id, entry.lost)
    if entry.node is None or entry.node == svc.registry.node:
        return None  # ours, and gone from this process: deleted a moment ago
    if entry.address is None:
        raise StreamLost(
            stream_id, await svc.registry.check_owner(entry.node) or f"its owner, {entry.node}, left"
        )
    return entry


def owned(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """A stream route that another process's stream reaches through forwarding: the
    handler runs when this process owns the stream (or it is nowhere)."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        stream_id = request.path_params["id"]
        if services(request).streams.streams.get(stream_id) is None:
            try:
                entry = await owner_elsewhere(request, stream_id)
            except StreamLost as error:
                raise lost_problem(error) from None
            if entry is not None:
                return await forwarder(request).http(request, entry)
        return await handler(request)

    return endpoint


def forwarder(conn: HTTPConnection) -> Forwarder:
    return conn.app.state.forwarder


class Forwarder:
    """Forwards clients to stream owners: one HTTP client (a pool of connections to the
    other processes) and the signer of internal requests."""

    def __init__(self, signer: InternalSigner):
        import httpx  # only servers load it, when they start

        self.signer = signer
        self.client = httpx.AsyncClient(
            # Without it a small request waits on the peer's delayed ACK: 8 ms against 3.
            transport=httpx.AsyncHTTPTransport(
                socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
                limits=httpx.Limits(max_connections=256, max_keepalive_connections=32),
            ),
            timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
        )

    async def close(self) -> None:
        await self.client.aclose()

    def headers(self, method: str, path: str, tenant: str) -> dict[str, str]:
        exp, sig = self.signer.sign(method, path, tenant)
        return {TENANT_HEADER: tenant, EXP_HEADER: str(exp), SIG_HEADER: sig}

    async def http(self, request: Request, entry: Entry) -> Response:
        """The owner's answer to ``request``: status, headers and body as it gave them
        (problems included), streamed both ways."""
        import httpx

        path = request.url.path
        headers = [(k, v) for k, v in request.headers.items() if k not in _NOT_FORWARDED]
        headers += list(self.headers(request.method, path, tenant_of(request)).items())
        has_body = request.method in ("POST", "PUT", "PATCH")
        query = request.url.query  # as the client sent it (a link's exp and sig taken out)
        outgoing = self.client.build_request(
            request.method,
            f"http://{entry.address}{path}" + (f"?{query}" if query else ""),
            headers=headers,
            content=request.stream() if has_body else None,
        )
        try:
            response = await self.client.send(outgoing, stream=True)
        except httpx.TransportError as error:
            raise await self._unreachable(request, entry, error) from None
        headers = {k: v for k, v in response.headers.items() if k not in HOP_BY_HOP}
        size = response.headers.get("content-length", "")
        if size.isdigit() and int(size) <= SMALL_BODY:
            try:
                body = await response.aread()
            except httpx.TransportError as error:
                raise await self._unreachable(request, entry, error) from None
            finally:
                await response.aclose()
            return Response(body, status_code=response.status_code, headers=headers)
        return StreamingResponse(
            response.aiter_raw(),
            status_code=response.status_code,
            headers=headers,
            background=BackgroundTask(response.aclose),
        )

    async def _unreachable(self, conn: HTTPConnection, entry: Entry, error: Exception) -> ProblemException:
        assert entry.node is not None
        registry = services(conn).registry
        now = await registry.find(entry.stream, fresh=True)  # it may have gone meanwhile
        if now is None or now.node == registry.node:
            return not_found(f"no stream with id {entry.stream!r}")
        reason = now.lost or await registry.check_owner(entry.node)
        if reason is not None:
            return lost_problem(StreamLost(entry.stream, reason))
        log.warning("stream %s: its owner %s did not answer: %r", entry.stream, entry.node, error)
        detail = f"the process that runs stream {entry.stream!r} did not answer; retry"
        return ProblemException(503, detail)

    async def streams_of(self, conn: HTTPConnection, entries: list[Entry]) -> list[StreamInfo]:
        """The tenant's streams on other processes, from their owners (as created, for an
        owner that does not answer)."""
        tenant = tenant_of(conn)
        by_node: dict[str, list[Entry]] = {}
        for entry in entries:
            by_node.setdefault(entry.address or "", []).append(entry)

        async def ask(address: str, owned: list[Entry]) -> list[StreamInfo]:
            wanted = {e.stream for e in owned}
            if address:
                with contextlib.suppress(Exception):
                    path = "/api/streams"
                    response = await self.client.get(
                        f"http://{address}{path}", headers=self.headers("GET", path, tenant)
                    )
                    if response.status_code == 200:
                        infos = msgspec.json.decode(response.content, type=list[StreamInfo])
                        return [i for i in infos if i.id in wanted]
            return [msgspec.json.decode(e.info, type=StreamInfo) for e in owned]

        found = await asyncio.gather(*(ask(a, e) for a, e in by_node.items()))
        return [info for infos in found for info in infos]

    async def websocket(self, ws: WebSocket, entry: Entry) -> None:
        """Pump an accepted client's WebSocket to and from the owner's: binary and text
        frames both ways, the owner's close (code and reason) to the client, the client's
        close to the owner. A broken owner connection ends the client's with 4410."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidStatus

        path, query = ws.url.path, ws.url.query  # the owner checks the query (from=, ack=)
        url = f"ws://{entry.address}{path}" + (f"?{query}" if query else "")
        try:
            owner = await connect(
                url,
                additional_headers=self.headers(WS_METHOD, path, tenant_of(ws)),
                open_timeout=CONNECT_TIMEOUT,
                ping_interval=PING_SECONDS,
                ping_timeout=PING_SECONDS,
                max_size=None,
                compression=None,
            )
        except (OSError, TimeoutError, InvalidStatus) as error:
            await self._ws_unreachable(ws, entry, error)
            return
        client_gone = asyncio.Event()
        up = asyncio.create_task(_client_to_owner(ws, owner, client_gone))
        try:
            try:
                async for message in owner:
                    if isinstance(message, bytes):
                        await ws.send_bytes(message)
                    else:
                        await ws.send_text(message)
            except ConnectionClosed:
                pass
            except (WebSocketDisconnect, RuntimeError):  # the client went while we sent
                client_gone.set()
        finally:
            up.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await up
            await owner.close()
        if client_gone.is_set():
            return
        code, reason = owner.close_code, owner.close_reason or ""
        if code is None or code == 1006:
            # No close frame: the owner's process or machine went away.
            assert entry.node is not None
            why = await services(ws).registry.check_owner(entry.node)
            raise lost_close(
                StreamLost(entry.stream, why or f"the connection to its owner process, {entry.node}, broke")
            )
        with contextlib.suppress(Exception):
            await ws.close(1000 if code == 1005 else code, reason)

    async def _ws_unreachable(self, ws: WebSocket, entry: Entry, error: Exception) -> None:
        problem = await self._unreachable(ws, entry, error)
        if problem.status == 410:
            raise ProtocolError("stream_lost", problem.detail, p.CLOSE_LOST)
        if problem.status == 404:
            raise ProtocolError("unknown_stream", problem.detail, p.CLOSE_GONE)
        raise ProtocolError("unavailable", problem.detail, p.CLOSE_TRY_LATER)


async def _client_to_owner(ws: WebSocket, owner: Any, client_gone: asyncio.Event) -> None:
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            client_gone.set()
            code = message.get("code") or 1000
            # 1005/1006 say that no code was given or the connection dropped: not sendable.
            await owner.close(1000 if code in (1005, 1006) else code, message.get("reason") or "")
            return
        if message.get("bytes") is not None:
            await owner.send(message["bytes"])
        elif message.get("text") is not None:
            await owner.send(message["text"])


class RequireInternal:
    """The internal listener's gate (pure ASGI): a request signed with the internal
    secret acts as the tenant it names; any other is refused."""

    def __init__(self, app: ASGIApp, signer: InternalSigner):
        self.app = app
        self.signer = signer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
        method = WS_METHOD if scope["type"] == "websocket" else scope["method"]
        tenant, exp, sig = (headers.get(h) for h in (TENANT_HEADER, EXP_HEADER, SIG_HEADER))
        valid = (
            tenant is not None
            and sig is not None
            and exp is not None
            and exp.isdigit()
            and len(exp) <= 12
            and self.signer.verify(sig, method, scope["path"], tenant, int(exp))
        )
        if not valid:
            log.warning("internal %s %s refused: not signed by this cluster", method, scope["path"])
            if scope["type"] == "websocket":
                # Before the handshake completes: the client sees 403.
                return await send({"type": "websocket.close", "code": p.CLOSE_POLICY})
            problem = ProblemException(403, "internal requests must be signed by a process of this cluster")
            return await problem_response(problem.to_problem(instance=scope["path"]))(scope, receive, send)
        state = scope.setdefault("state", {})
        state[TENANT], state[INTERNAL] = tenant, True
        return await self.app(scope, receive, send)


class _QuietServer(uvicorn.Server):
    """A uvicorn server inside another's process: the main server handles the signals."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[override]
        yield


#: The internal listener's task: what uvicorn logs from it is left out (below).
LISTENER_TASK = "fxhost-internal-listener"


def _not_the_listeners(record: logging.LogRecord) -> bool:
    """uvicorn says "Started server process", "Shutting down"... for every server it runs:
    the main server's lines are the ones an operator reads; the listener says once where
    it listens."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no event loop in this thread
        return True
    return task is None or task.get_name() != LISTENER_TASK


logging.getLogger("uvicorn.error").addFilter(_not_the_listeners)


class InternalListener:
    """The internal listener of this process: a second uvicorn server on the same event
    loop, serving the internal app."""

    def __init__(self, app: ASGIApp, settings: Settings):
        config = uvicorn.Config(
            app,
            host=settings.internal_host,
            port=settings.internal_port,
            lifespan="off",
            # The main server configured logging already.
            log_config=None,
            log_level=None,
            access_log=False,
            ws_max_size=4 * settings.max_frame_bytes,
            ws_per_message_deflate=False,
            # Its clients are this server's peers, closed with 1012 when it stops.
            timeout_graceful_shutdown=5,
        )
        self.server = _QuietServer(config)
        self.advertise = settings.internal_advertise
        self._task: asyncio.Task | None = None

    async def start(self) -> str:
        """Start listening; the address other processes reach it at, ``host:port``."""
        config = self.server.config
        try:
            # Bound here rather than by uvicorn, which would exit the process on failure.
            family, kind, proto, _, address = socket.getaddrinfo(
                config.host, config.port, type=socket.SOCK_STREAM
            )[0]
            sock = socket.socket(family, kind, proto)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
        except OSError as error:
            raise RuntimeError(
                f"FXHOST_INTERNAL_HOST/FXHOST_INTERNAL_PORT: cannot listen on {config.host}:{config.port}: "
                f"{error.strerror or error}"
            ) from None
        sock.set_inheritable(False)
        self._task = asyncio.create_task(self.server.serve(sockets=[sock]), name=LISTENER_TASK)
        while not self.server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise RuntimeError("the internal listener stopped at start-up")
            await asyncio.sleep(0.01)
        host, port = sock.getsockname()[:2]
        if not self.advertise and host in ("0.0.0.0", "::"):
            host = socket.gethostname()  # every interface: this machine's name reaches one
        host = self.advertise or host
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task:
            with contextlib.suppress(Exception):
                await self._task
