"""Links: ``POST /api/links`` makes a signed, expiring URL that opens one route for one of
the caller's resources without the Authorization header (for ``EventSource``,
``<audio src>``, ``<a download>``). What each action opens and how a link is checked is
:mod:`fxhost.api.links`."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import UNSET, UnsetType
from starlette.requests import Request
from starlette.responses import Response

from fxhost.api.auth import tenant_of
from fxhost.api.links import TARGETS, expires_at
from fxhost.api.openapi.declare import Operation, component, problem_resp
from fxhost.api.openapi.decode import decode_json_body
from fxhost.api.openapi.problems import FieldProblem, ValidationProblem, not_found
from fxhost.api.responses import JSONResponse
from fxhost.api.state import services
from fxhost.engine.clock import Timestamp
from fxhost.store.links import expiry

TAGS = ["links"]
#: How long a link works when the request does not say.
DEFAULT_EXPIRES_IN = 3600

ResourceId = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{1,64}$", description="The resource's id.")]
#: Its maximum is the link_max_seconds setting, which the served document states.
ExpiresIn = component(
    Annotated[
        int,
        msgspec.Meta(
            ge=1,
            description="Seconds the link works for (default 3600, at most the link_max_seconds "
            "setting, 7 days by default).",
        ),
    ],
    "LinkExpiresIn",
)


class DownloadLink(
    msgspec.Struct, tag="download", tag_field="action", kw_only=True, forbid_unknown_fields=True
):
    """`GET /api/assets/{asset}/audio` (with any of its query parameters: format, sample_rate...)."""

    asset: ResourceId
    expires_in: ExpiresIn | UnsetType = UNSET


class EventsLink(msgspec.Struct, tag="events", tag_field="action", kw_only=True, forbid_unknown_fields=True):
    """`GET /api/renders/{render}/events`: the render's progress as server-sent events."""

    render: ResourceId
    expires_in: ExpiresIn | UnsetType = UNSET


class StreamOutputLink(
    msgspec.Struct, tag="stream_output", tag_field="action", kw_only=True, forbid_unknown_fields=True
):
    """`GET /api/streams/{stream}/output`: the stream's processed PCM, from a cursor."""

    stream: ResourceId
    expires_in: ExpiresIn | UnsetType = UNSET


LinkRequest = Annotated[
    DownloadLink | EventsLink | StreamOutputLink,
    msgspec.Meta(
        title="LinkRequest",
        description="What the link opens: an `action` and the id of one of the caller's resources.",
        examples=[
            {"action": "download", "asset": "0123456789abcdef0123456789abcdef", "expires_in": 600},
            {"action": "events", "render": "0123456789abcdef0123456789abcdef"},
            {"action": "stream_output", "stream": "0123456789abcdef01234567"},
        ],
    ),
]


class Link(msgspec.Struct, kw_only=True):
    """A signed URL (relative to the server) that opens one route for one resource, with
    no Authorization header, until `expires`."""

    url: Annotated[str, msgspec.Meta(examples=["/api/assets/0123456789abcdef0123456789abcdef/audio?exp=..."])]
    expires: Timestamp


async def create_link(request: Request) -> Response:
    body = decode_json_body(await request.body(), LinkRequest)
    svc = services(request)
    tenant = tenant_of(request)
    target = TARGETS[body.__struct_config__.tag]  # type: ignore[index]
    resource = getattr(body, target.noun)  # the body names it as the link's errors do
    limit = svc.settings.link_max_seconds
    expires_in = min(DEFAULT_EXPIRES_IN, limit) if body.expires_in is UNSET else body.expires_in
    if expires_in > limit:
        raise ValidationProblem(
            [FieldProblem("expires_in", f"at most {limit} seconds (FXHOST_LINK_MAX_SECONDS)")]
        )
    if await target.owner(svc, resource) != tenant:  # another tenant's is as absent as none
        raise not_found(f"no {target.noun} with id {resource!r}")
    exp = expiry(expires_in)
    url = target.url(resource, exp, svc.links.sign(target.action, resource, tenant, exp))
    return JSONResponse(Link(url=url, expires=expires_at(exp)), status_code=201)


ROUTES = [
    Operation(
        "POST",
        "/api/links",
        create_link,
        summary="A signed URL that opens one of your resources without the Authorization header.",
        description="For what a browser cannot set a header on (`EventSource`, `<audio src>`, "
        "`<a download>`): `download` opens `GET /api/assets/{id}/audio`, `events` "
        "`GET /api/renders/{id}/events`, `stream_output` `GET /api/streams/{id}/output`. The URL "
        "works for that route and resource only, as the key that made it, until `expires` (or until "
        "that key is revoked). Its `exp` and `sig` parameters must be kept as given; the route's own "
        "query parameters may be added.",
        tags=TAGS,
        body=LinkRequest,
        example={"action": "download", "asset": "5f2b1c0e9a7d4e3f8b6a2c1d0e9f8a7b", "expires_in": 600},
        responses={201: Link, 404: problem_resp("No such resource of yours.")},
    ),
]
