"""Signed links: what a link says, the signature that proves the server made it, and the
secret that signs. No HTTP here: the edge (:mod:`fxhost.api.links`) says which route an
action opens and checks the links that requests present.

A link grants one ``action`` on one resource of one tenant until ``exp`` (Unix seconds).
Its signature is HMAC-SHA256, keyed by the server's secret, over all four; the URL
carries only ``exp`` and the signature, so the tenant is not shown to whoever holds the
link: the server finds it as the owner of the resource, and a link made by one tenant
never verifies for another's resource, another resource or another action.

The secret is the ``link_secret`` setting, or else one made once and kept in the
database, so that every process and server that shares the database signs alike and
links outlive restarts. Changing the secret voids every link made before.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import time

from tortoise.exceptions import IntegrityError

from fxhost.store.db.models import ServerSecret

#: The row of :class:`ServerSecret` that holds the links' key.
SECRET_NAME = "links"
#: Versions the signed message, so that its layout can change without old links verifying.
_VERSION = b"fxhost-link/1"


async def link_secret(configured: str | None) -> bytes:
    """The key that signs links: ``configured`` (the setting) if given, else the one in the
    database, made now if there is none.

    Several processes may start at once on a new database: each tries to insert its own
    secret, the first insert wins (the name is the primary key), and the others read the
    winner's row, so all of them end up with the same key.
    """
    if configured:
        return configured.encode()
    return await stored_secret(SECRET_NAME)


async def stored_secret(name: str) -> bytes:
    """The server's secret called ``name``, made now if there is none (see above: the
    first of several processes to insert it wins)."""
    row = await ServerSecret.get_or_none(name=name)
    if row is None:
        try:
            row = await ServerSecret.create(name=name, value=secrets.token_urlsafe(48))
        except IntegrityError:  # another process made it first: use theirs
            row = await ServerSecret.get(name=name)
    return row.value.encode()


def expiry(expires_in: int, now: float | None = None) -> int:
    """``exp`` for a link that works for at least ``expires_in`` seconds from ``now``."""
    return math.ceil((time.time() if now is None else now) + expires_in)


class LinkSigner:
    """Signs and checks links with one secret."""

    def __init__(self, secret: bytes):
        self._secret = secret

    def sign(self, action: str, resource: str, tenant: str, exp: int) -> str:
        """The signature (URL-safe base64, 43 characters) of a link."""
        message = b"\n".join((_VERSION, action.encode(), resource.encode(), tenant.encode(), b"%d" % exp))
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def verify(self, sig: str, action: str, resource: str, tenant: str, exp: int) -> bool:
        """Whether ``sig`` is this server's signature of that link (expiry aside), in
        constant time."""
        return hmac.compare_digest(sig.encode(), self.sign(action, resource, tenant, exp).encode())
