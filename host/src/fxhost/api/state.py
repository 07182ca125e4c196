"""What a handler reads from its connection: the server's long-lived services, made once
by the app's lifespan (the request's tenant is :func:`fxhost.api.auth.tenant_of`)."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from fxhost.services import Services


def services(conn: HTTPConnection) -> Services:
    return conn.app.state.services
