"""Signed links at the edge: which route each action opens, the URL of a link, and the
check of a link a request presents (called by :class:`fxhost.api.auth.RequireApiKey`).

Browsers cannot set a header on ``EventSource``, ``<audio src>`` or ``<a download>``:
``POST /api/links`` gives them a URL such as ``/api/assets/ID/audio?exp=...&sig=...``
that opens one route for one resource, as the tenant that made it, until ``exp``. The
signature is :mod:`fxhost.store.links`'.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import parse_qsl, quote, unquote_plus, urlencode

from fxhost.api.openapi.declare import problem_resp
from fxhost.api.openapi.problems import FieldProblem, ProblemException, not_found
from fxhost.services import Services
from fxhost.store.db.models import Asset, Render, is_id

Action = Literal["download", "events", "stream_output"]
#: The security of a route a link can open: a key, or a link (the ``signedLink`` scheme).
LINK_SECURITY = [{"apiKey": []}, {"signedLink": []}]
#: What such a route answers to a link that does not open it.
LINK_REFUSED = problem_resp(
    "The signed link (`exp`, `sig`) has expired, was altered, or is for another route, resource or tenant."
)
#: The query parameters of a link. A handler never sees them: they are taken out of the
#: query string once the link is checked.
LINK_PARAMS = ("exp", "sig")


async def _asset_owner(svc: Services, asset_id: str) -> str | None:
    if not is_id(asset_id):
        return None
    return next(iter(await Asset.filter(id=asset_id).limit(1).values_list("tenant", flat=True)), None)


async def _render_owner(svc: Services, render_id: str) -> str | None:
    if not is_id(render_id):
        return None
    return next(iter(await Render.filter(id=render_id).limit(1).values_list("tenant", flat=True)), None)


async def _stream_owner(svc: Services, stream_id: str) -> str | None:
    stream = svc.streams.streams.get(stream_id)
    if stream is None:  # another process's, maybe (its owner is asked when the link is used)
        return await svc.registry.tenant_of(stream_id)
    # Seen by its owner as the routes see it (a stream stopped by a fault still says why).
    return stream.tenant if svc.streams.get(stream_id, stream.tenant) else None


@dataclass(frozen=True)
class Target:
    """What a link of one action opens."""

    action: Action
    #: The route, as it is declared (``{id}`` is the resource).
    path: str
    #: What the resource is called, in the request body (``asset``) and in errors.
    noun: str
    #: The tenant that owns a resource, or None when there is no such resource.
    owner: Callable[[Services, str], Awaitable[str | None]]

    def pattern(self) -> re.Pattern[str]:
        head, _, tail = self.path.partition("{id}")
        return re.compile(re.escape(head) + "(?P<id>[^/]+)" + re.escape(tail))

    def url(self, resource: str, exp: int, sig: str) -> str:
        return self.path.replace("{id}", quote(resource, safe="")) + "?" + urlencode({"exp": exp, "sig": sig})


#: Every action a link can grant: ``GET`` (and ``HEAD``) on one route, nothing else.
TARGETS: dict[str, Target] = {
    t.action: t
    for t in (
        Target("download", "/api/assets/{id}/audio", "asset", _asset_owner),
        Target("events", "/api/renders/{id}/events", "render", _render_owner),
        Target("stream_output", "/api/streams/{id}/output", "stream", _stream_owner),
    )
}
_PATTERNS = [(target, target.pattern()) for target in TARGETS.values()]


def expires_at(exp: int) -> datetime:
    return datetime.fromtimestamp(exp, UTC)


def _key(part: bytes) -> str:
    return unquote_plus(part.split(b"=", 1)[0].decode("latin-1"))


def presents_link(query_string: bytes) -> bool:
    """Whether a request's query string carries a link's parameters."""
    return any(_key(part) in LINK_PARAMS for part in query_string.split(b"&") if part)


def without_link(query_string: bytes) -> bytes:
    """The query string without the link's parameters, for the handler to decode."""
    return b"&".join(part for part in query_string.split(b"&") if part and _key(part) not in LINK_PARAMS)


def _params(query_string: bytes) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        params.setdefault(key, []).append(value)
    return params


async def check_link(svc: Services, method: str, path: str, query_string: bytes) -> str:
    """The tenant a link acts as, once it is checked for this request; else a 403
    problem naming ``sig`` or ``exp`` (or a 404 when its resource is gone)."""

    def refused(field: str, message: str) -> ProblemException:
        detail = f"this link does not open {method} {path}: {field}: {message}"
        return ProblemException(403, detail, errors=[FieldProblem(field, message)])

    match = next(((t, m) for t, p in _PATTERNS if (m := p.fullmatch(path))), None)
    if match is None or method not in ("GET", "HEAD"):
        routes = ", ".join(f"GET {t.path}" for t in TARGETS.values())
        raise refused("sig", f"a link opens only one of {routes}")
    target, found = match
    params = _params(query_string)
    sig, exp_text = (params.get(name, []) for name in ("sig", "exp"))
    if len(exp_text) != 1 or not re.fullmatch(r"[0-9]{1,12}", exp_text[0]):
        raise refused("exp", "give the link's exp once and unchanged (Unix seconds)")
    if len(sig) != 1 or not re.fullmatch(r"[A-Za-z0-9_-]{43}", sig[0]):
        raise refused("sig", "give the link's sig once and unchanged")
    exp, resource = int(exp_text[0]), found["id"]
    owner = await target.owner(svc, resource)
    if owner is None:
        raise not_found(f"no {target.noun} with id {resource!r}")
    if not svc.links.verify(sig[0], target.action, resource, owner, exp):
        noun = target.noun
        raise refused("sig", f"not this server's signature of a {target.action} link for this {noun}")
    if time.time() > exp:
        raise refused("exp", f"the link expired at {expires_at(exp).isoformat()}")
    if not await svc.auth.active(owner):
        raise refused("sig", "the API key that made this link is revoked")
    return owner
