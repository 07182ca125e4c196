"""The owner registry of live streams, in the database every process shares.

A stream lives in one process, its *owner* (its rings and chain run there). Each process
(a worker of ``fxhost serve``, on this machine or another: a *node*) registers the address
of its internal listener and beats a heartbeat; each stream it creates gets a row naming
it. Any process can then find a stream's owner and forward the stream's clients to it.

A process that stops cleanly deletes its rows. One that dies is found by any live
process's housekeeping: its heartbeat is older than ``dead_seconds``, or (on the same
host) its pid is gone. Its node row is removed and its streams are marked *lost*, with
the reason, so that their clients are told why rather than "not found"; lost rows are
purged after ``lost_seconds``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fxhost.store.db.models import ClusterNode, ClusterStream
from fxhost.store.links import stored_secret
from fxhost.store.owners import owner_alive, owner_id

log = logging.getLogger(__name__)

#: What a stream id can be (the engine makes 24 hex digits); anything else names no stream
#: and is answered without asking the database (PostgreSQL refuses NUL characters).
STREAM_ID = re.compile(r"[0-9a-f]{1,64}")
#: The most owners of streams remembered at once.
OWNERS_KEPT = 10_000


@dataclass(frozen=True)
class Entry:
    """A stream's row: who owns it, where the owner listens, or why it is lost."""

    stream: str
    tenant: str
    #: The owner process (``host:pid``); None once lost.
    node: str | None
    #: The owner's internal listener, ``host:port``; None once lost or when the owner's
    #: node row is gone.
    address: str | None
    #: Why the stream is gone, when its owner died.
    lost: str | None
    #: The stream as created (JSON), for listings when its owner does not answer.
    info: str


def _now() -> datetime:
    return datetime.now(UTC)


class Registry:
    """This process's view of the registry: its own rows, and lookups of everyone's."""

    def __init__(self, *, heartbeat_seconds: float, dead_seconds: float, lost_seconds: float):
        self.node = owner_id()
        self.heartbeat_seconds = heartbeat_seconds
        self.dead_seconds = dead_seconds
        self.lost_seconds = lost_seconds
        self.address: str | None = None
        #: stream -> (until when, its entry), for other processes' live streams.
        self._owners: dict[str, tuple[float, Entry]] = {}

    async def join(self, address: str) -> None:
        """Register this process and the address of its internal listener."""
        self.address = address
        await ClusterNode.update_or_create(id=self.node, defaults={"address": address, "heartbeat": _now()})
        log.info("cluster: %s listens for other processes on %s", self.node, address)

    async def beat(self) -> bool:
        """Say this process is alive. True when it had been taken for dead (it could not
        beat for too long) and registered again: its streams must be registered again."""
        updated = await ClusterNode.filter(id=self.node).update(heartbeat=_now())
        if updated or not self.address:
            return False
        log.warning("cluster: %s was taken for dead; registering again", self.node)
        await self.join(self.address)
        return True

    async def restore(self, stream_id: str, tenant: str, info: str) -> None:
        """Own a stream again after being taken for dead (clients told "lost" meanwhile
        find it again)."""
        values = {"tenant": tenant, "node": self.node, "info": info, "lost": None, "lost_at": None}
        await ClusterStream.update_or_create(id=stream_id, defaults=values)

    async def leave(self) -> None:
        """A clean stop: this process's streams and its node row go (the streams close)."""
        await ClusterStream.filter(node=self.node).delete()
        await ClusterNode.filter(id=self.node).delete()

    async def add(self, stream_id: str, tenant: str, info: str) -> None:
        await ClusterStream.create(id=stream_id, tenant=tenant, node=self.node, info=info)

    async def remove(self, stream_id: str) -> None:
        await ClusterStream.filter(id=stream_id, node=self.node).delete()

    async def find(self, stream_id: str, *, fresh: bool = False) -> Entry | None:
        """A stream's entry. Where another process's live stream runs is remembered for a
        heartbeat (no database round trip per forwarded request); ``fresh`` asks the
        database, as a caller does when that owner did not answer."""
        if not STREAM_ID.fullmatch(stream_id):
            return None
        hit = None if fresh else self._owners.get(stream_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        row = await ClusterStream.get_or_none(id=stream_id)
        if row is None:
            self._owners.pop(stream_id, None)
            return None
        node = await ClusterNode.get_or_none(id=row.node) if row.node else None
        entry = Entry(row.id, row.tenant, row.node, node.address if node else None, row.lost, row.info)
        if entry.address is not None and entry.lost is None and entry.node != self.node:
            if len(self._owners) >= OWNERS_KEPT:
                self._owners.clear()  # a bound, not an LRU: it refills as requests come
            self._owners[stream_id] = (time.monotonic() + self.heartbeat_seconds, entry)
        else:
            self._owners.pop(stream_id, None)
        return entry

    async def tenant_of(self, stream_id: str) -> str | None:
        """The tenant of a stream that is not lost, wherever it runs."""
        if not STREAM_ID.fullmatch(stream_id):
            return None
        row = await ClusterStream.get_or_none(id=stream_id)
        return row.tenant if row is not None and row.lost is None else None

    async def listing(self, tenant: str) -> list[Entry]:
        """The tenant's streams on other processes that are not lost, oldest first."""
        rows = ClusterStream.filter(tenant=tenant, lost=None).exclude(node=self.node)
        rows = await rows.order_by("created")
        nodes = {n.id: n.address for n in await ClusterNode.filter(id__in={r.node for r in rows})}
        return [Entry(r.id, r.tenant, r.node, nodes.get(r.node or ""), None, r.info) for r in rows]

    def death(self, node: str, heartbeat: datetime | None) -> str | None:
        """Why ``node`` counts as dead, or None while it may be alive."""
        if node == self.node:
            return None
        if owner_alive(node) is False:
            return f"its owner process ({node}) is gone"
        if heartbeat is None:
            return f"its owner process ({node}) left the cluster"
        silent = (_now() - heartbeat).total_seconds()
        if silent > self.dead_seconds:
            return f"its owner process ({node}) gave no heartbeat for {silent:.0f} s"
        return None

    async def check_owner(self, node: str) -> str | None:
        """Whether a stream's owner is dead (say, it did not answer): the reason, having
        marked its streams lost; None while it may be alive."""
        row = await ClusterNode.get_or_none(id=node)
        reason = self.death(node, row.heartbeat if row else None)
        if reason is not None:
            await self._bury(node, reason)
        return reason

    async def reap(self) -> list[str]:
        """Housekeeping, by any live process: bury dead processes, purge old lost rows.
        Returns the dead processes' ids."""
        dead = []
        for row in await ClusterNode.exclude(id=self.node):
            reason = self.death(row.id, row.heartbeat)
            if reason is not None:
                await self._bury(row.id, reason)
                dead.append(row.id)
        # Rows of processes with no node row (it died before any housekeeping ran, and
        # another process's housekeeping removed it without seeing them) are lost too.
        known = set(await ClusterNode.all().values_list("id", flat=True))
        for orphan in set(await ClusterStream.filter(lost=None).values_list("node", flat=True)) - known:
            if orphan and orphan != self.node and owner_alive(orphan) is not True:
                await self._bury(orphan, f"its owner process ({orphan}) left the cluster")
        await ClusterStream.filter(lost_at__lt=_now() - timedelta(seconds=self.lost_seconds)).delete()
        return dead

    async def _bury(self, node: str, reason: str) -> None:
        lost = await ClusterStream.filter(node=node).update(node=None, lost=reason, lost_at=_now())
        await ClusterNode.filter(id=node).delete()
        log.warning("cluster: %s is dead (%s); %d stream(s) lost", node, reason, lost)


#: The row of the server's secrets that keys internal requests.
INTERNAL_SECRET = "internal"
_VERSION = b"fxhost-internal/1"


async def internal_secret() -> bytes:
    """The key of internal requests, the same for every process sharing the database."""
    return await stored_secret(INTERNAL_SECRET)


class InternalSigner:
    """Signs and checks what one process asks another on a client's behalf: one method on
    one path, as one tenant, until ``exp`` (Unix seconds), so that a request seen once
    cannot be turned into another or replayed for long."""

    #: How long a signature is good for: the time to reach another process.
    LIFETIME = 60

    def __init__(self, secret: bytes):
        self._secret = secret

    def sign(self, method: str, path: str, tenant: str, exp: int | None = None) -> tuple[int, str]:
        exp = int(time.time()) + self.LIFETIME if exp is None else exp
        message = b"\n".join((_VERSION, method.encode(), path.encode(), tenant.encode(), b"%d" % exp))
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return exp, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def verify(self, sig: str, method: str, path: str, tenant: str, exp: int) -> bool:
        """Whether ``sig`` signs this request and has not expired, in constant time."""
        good = hmac.compare_digest(sig.encode(), self.sign(method, path, tenant, exp)[1].encode())
        return good and exp >= time.time()
