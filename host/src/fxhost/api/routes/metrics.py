"""``GET /metrics``: Prometheus metrics, summed over every worker (:mod:`fxhost.api.metrics`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from fxhost.api.metrics import Metrics
from fxhost.api.openapi.declare import Operation, Resp
from fxhost.api.openapi.problems import not_found
from fxhost.api.state import services


async def metrics(request: Request) -> Response:
    settings = services(request).settings
    collected: Metrics | None = getattr(request.app.state, "metrics", None)
    if collected is None:
        raise not_found("metrics are off on this server (FXHOST_METRICS=false)")
    if settings.metrics_port is not None:
        raise not_found(f"metrics are served on port {settings.metrics_port} (FXHOST_METRICS_PORT)")
    body, content_type = collected.exposition()
    return Response(body, media_type=content_type)


ROUTES = [
    Operation(
        "GET",
        "/metrics",
        metrics,
        summary="Prometheus metrics, summed over every worker process of this server.",
        description="The Prometheus text format. Needs an API key like `/api` unless FXHOST_METRICS_OPEN "
        "is true; with FXHOST_METRICS_PORT set, metrics are served on that port instead (no key) and "
        "this route answers 404. The README's Metrics section lists them.",
        tags=["meta"],
        responses={
            200: Resp(
                media_type="text/plain",
                binary=False,
                type=str,
                description="The metrics, in the Prometheus text exposition format.",
            )
        },
    ),
]
