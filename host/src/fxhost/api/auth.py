"""API keys at the edge: every ``/api`` and ``/ws`` route needs ``Authorization:
Bearer KEY`` when keys are configured, and every request carries the tenant its key
belongs to; so does ``/metrics`` unless FXHOST_METRICS_OPEN opens it. ``/health``,
``/docs``, ``/redoc`` and ``/openapi.json`` stay open.

Browsers cannot set headers on a WebSocket, so a WebSocket without the header may
instead send ``{"type": "auth", "token": KEY}`` as its first message.
"""

from __future__ import annotations

from collections.abc import Collection

import msgspec
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from fxhost.api.links import check_link, presents_link, without_link
from fxhost.api.openapi.problems import ProblemException, problem_response
from fxhost.store.keys import OPEN_TENANT, Authenticator

GUARDED = ("/api/", "/ws/")
#: Keys of the ASGI scope's "state" this module sets.
TENANT = "tenant"
WS_AUTH = "ws_auth"  # "pending" (expect an auth message) or "invalid"


def guarded(path: str) -> bool:
    return path.startswith(GUARDED) or path in ("/api", "/ws")


def bearer(scope: Scope) -> str | None:
    """The key of an ``Authorization: Bearer`` header; "" when the header is malformed."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, key = value.decode("latin-1").strip().partition(" ")
            return key.strip() if scheme.lower() == "bearer" else ""
    return None


class RequireApiKey:
    """Pure ASGI middleware (it must not buffer streamed bodies or WebSockets). ``also``:
    paths outside ``/api`` and ``/ws`` that need a key too (``/metrics``)."""

    def __init__(self, app: ASGIApp, also: Collection[str] = ()):
        self.app = app
        self.also = frozenset(also)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not (
            guarded(scope["path"]) or scope["path"] in self.also
        ):
            return await self.app(scope, receive, send)
        # The authenticator is one of the services, made in the lifespan.
        auth: Authenticator = scope["app"].state.services.auth
        state = scope.setdefault("state", {})
        if scope["type"] == "http" and presents_link(scope.get("query_string", b"")):
            return await self._linked(scope, receive, send)
        if not await auth.required():
            state[TENANT] = OPEN_TENANT
            return await self.app(scope, receive, send)
        key = bearer(scope)
        tenant = await auth.tenant(key) if key else None
        if tenant is not None:
            state[TENANT] = tenant
        elif scope["type"] == "websocket":
            # The session says why, over the socket, once accepted (see authenticate_ws).
            state[WS_AUTH] = "pending" if key is None else "invalid"
        else:
            return await _unauthorized(scope, receive, send, key)
        return await self.app(scope, receive, send)

    async def _linked(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A request with a signed link: it acts as the tenant that made the link, whose
        parameters the handler never sees; or it is refused, whatever else it carries."""
        query = scope.get("query_string", b"")
        try:
            tenant = await check_link(scope["app"].state.services, scope["method"], scope["path"], query)
        except ProblemException as error:
            return await problem_response(error.to_problem(instance=scope["path"]))(scope, receive, send)
        scope["state"][TENANT] = tenant
        return await self.app({**scope, "query_string": without_link(query)}, receive, send)


async def _unauthorized(scope: Scope, receive: Receive, send: Send, key: str | None) -> None:
    if key is None:
        detail, challenge = "this route needs an API key: Authorization: Bearer KEY", 'Bearer realm="fxhost"'
    else:
        detail = "the API key is not valid (unknown, revoked or malformed)"
        challenge = 'Bearer realm="fxhost", error="invalid_token"'
    problem = ProblemException(401, detail).to_problem(instance=scope["path"])
    response = problem_response(problem)
    response.headers["WWW-Authenticate"] = challenge
    await response(scope, receive, send)


def tenant_of(conn: HTTPConnection) -> str:
    """The tenant of an authenticated request (set by :class:`RequireApiKey`)."""
    tenant = conn.scope.get("state", {}).get(TENANT)
    if tenant is None:  # a route outside /api and /ws asked: a wiring mistake
        raise RuntimeError(f"{conn.url.path} is not behind RequireApiKey")
    return tenant


class AuthMessage(msgspec.Struct, tag="auth", forbid_unknown_fields=True):
    """A browser's first WebSocket message, in place of the Authorization header."""

    token: str


_auth_decoder = msgspec.json.Decoder(AuthMessage)


def ws_auth_state(conn: HTTPConnection) -> str | None:
    return conn.scope.get("state", {}).get(WS_AUTH)


async def tenant_from_message(conn: HTTPConnection, authenticator: Authenticator, text: str) -> str | None:
    """Check an auth message; on success the connection's tenant is set and returned."""
    try:
        token = _auth_decoder.decode(text).token
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    tenant = await authenticator.tenant(token) if token else None
    if tenant is not None:
        state = conn.scope["state"]
        state[TENANT] = tenant
        state.pop(WS_AUTH, None)
    return tenant
