"""API keys and tenants. No HTTP here: the edge asks :class:`Authenticator` which
tenant a presented key belongs to.

A key is shown once, when it is made; the database keeps only its SHA-256, so a stolen
database gives no key away. The tenant of a key made by ``fxhost keys create`` is its
id; the tenant of a static key (the ``api_keys`` setting) is derived from its hash, so
it stays the same across restarts and processes. With no key of either kind the
server runs open, and everything belongs to the open tenant. A key once made keeps
the server closed even when revoked: revoking the last key must not open the doors.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import UTC, datetime

import msgspec

from fxhost.store.db.models import OPEN_TENANT, ApiKey

KEY_PREFIX = "fxk_"
#: How long "has a key ever been made?" is remembered. A key made while the server
#: runs is enforced within this time; a revoked key is refused at once.
KEYS_EXIST_TTL_SECONDS = 2.0


class KeyInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What a listing shows of a key: never the key itself."""

    id: str
    name: str
    prefix: str
    created: datetime
    revoked: datetime | None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def static_tenant(key: str) -> str:
    return "static-" + hash_key(key)[:16]


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(id=row.id, name=row.name, prefix=row.prefix, created=row.created, revoked=row.revoked)


async def create_key(name: str) -> tuple[KeyInfo, str]:
    """A new key: (its description, the key). The key is not kept; show it once."""
    name = name.strip()
    if not name or len(name) > 64 or any(ord(c) < 32 for c in name):
        raise ValueError("name: give 1 to 64 printable characters")
    key = new_key()
    row = await ApiKey.create(
        id="key-" + secrets.token_hex(8), name=name, sha256=hash_key(key), prefix=key[: len(KEY_PREFIX) + 6]
    )
    return _info(row), key


async def list_keys() -> list[KeyInfo]:
    return [_info(row) for row in await ApiKey.all().order_by("created")]


async def revoke_key(ref: str) -> KeyInfo:
    """Revoke by id or by name (when one active key has it). ValueError if none or several."""
    rows = (
        await ApiKey.filter(id=ref)
        or await ApiKey.filter(name=ref, revoked=None)
        or await ApiKey.filter(name=ref).order_by("-revoked").limit(1)  # revoking twice is fine
    )
    if not rows:
        raise ValueError(f"no key with id or name {ref!r}")
    if len(rows) > 1:
        raise ValueError(f"several keys are named {ref!r}; revoke by id")
    row = rows[0]
    if row.revoked is None:
        row.revoked = datetime.now(UTC)
        await row.save(update_fields=["revoked"])
    return _info(row)


class Authenticator:
    """Which tenant a presented key belongs to, and whether a key is needed at all."""

    def __init__(self, static_keys: list[str]):
        self._static = {hash_key(key): static_tenant(key) for key in static_keys}
        self._db_keys_exist: tuple[float, bool] = (-1e9, False)

    async def required(self) -> bool:
        if self._static:
            return True
        checked, exist = self._db_keys_exist
        if time.monotonic() - checked > KEYS_EXIST_TTL_SECONDS:
            exist = await ApiKey.exists()  # revoked ones too: see the module's docstring
            self._db_keys_exist = (time.monotonic(), exist)
        return exist

    async def tenant(self, key: str) -> str | None:
        """The key's tenant, or None for a key that is unknown or revoked."""
        digest = hash_key(key)
        for known, tenant in self._static.items():
            if hmac.compare_digest(known, digest):
                return tenant
        row = await ApiKey.get_or_none(sha256=digest, revoked=None)
        return row.id if row is not None else None

    async def active(self, tenant: str) -> bool:
        """Whether requests can act as ``tenant`` now: the open tenant while the server
        runs open; else a static key's, or an unrevoked database key's. What a tenant
        signed (links) is void once it is not."""
        if not await self.required():
            return tenant == OPEN_TENANT
        if tenant in self._static.values():
            return True
        return tenant != OPEN_TENANT and await ApiKey.exists(id=tenant, revoked=None)

    async def describe(self) -> str:
        """One line for the start-up log."""
        count = await ApiKey.filter(revoked=None).count()
        if not self._static and not await ApiKey.exists():
            return "no API keys are configured: the server is OPEN to anyone who can reach it"
        return f"API keys required: {len(self._static)} static, {count} active in the database"


__all__ = ["OPEN_TENANT", "Authenticator", "KeyInfo", "create_key", "list_keys", "revoke_key"]
