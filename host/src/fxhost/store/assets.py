"""Assets: audio files stored as received, described in the database, indexed in
memory by an AVL tree and decoded through an LRU cache. No HTTP here.

Durability rule: the database row is the truth. The bytes are stored as an object of
the storage (a local folder or an object store: :mod:`fxhost.store.storage`), durably,
*before* the row is inserted; a delete removes the row *before* the object. So a crash
at any point leaves at worst an object with no row, which :meth:`AssetStore.sweep`
removes (at start-up and periodically), never a row without its object.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import msgspec
import numpy as np
from tortoise.functions import Count, Sum
from tortoise.transactions import in_transaction

from fxhost.audio.files import AudioInfo, open_input, probe
from fxhost.engine.clock import Timestamp
from fxhost.store.avl import AVLTree
from fxhost.store.cache import LRUCache
from fxhost.store.db.models import Asset, AssetEvent, is_id
from fxhost.store.storage.objects import KINDS, Storage, key_of

#: A gap in the event sequence (a transaction not yet committed) is waited for this
#: long before it is taken for a rolled-back insert and skipped.
EVENT_GAP_SECONDS = 10.0
NAME_MAX = 255
#: Frames of audio :meth:`AssetStore.blocks` decodes at a time (1.4 s at 48 kHz: 512 KiB of stereo).
STREAM_BLOCK_FRAMES = 65536


class AssetSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What clients see of an asset."""

    id: str
    name: str
    kind: str
    format: str
    subtype: str
    sample_rate: int
    channels: int
    frames: int
    duration: float
    size: int
    sha256: str
    created: Timestamp


class AssetPage(msgspec.Struct, frozen=True, kw_only=True):
    #: The assets of the page, in name order (with a delimiter: those directly under the prefix).
    items: list[AssetSummary]
    #: With a delimiter: the common prefixes below the prefix (``prefix + segment +
    #: delimiter``, each once, in order), each standing for all the names under it.
    prefixes: list[str]
    #: Pass as ``cursor`` for the next page; ``None`` on the last page.
    next_cursor: str | None


class UploadTooLarge(Exception):
    def __init__(self, limit: int):
        super().__init__(f"the body is larger than the limit of {limit} bytes")
        self.limit = limit


class InvalidCursor(ValueError):
    pass


def summary_of(row: Asset) -> AssetSummary:
    return AssetSummary(
        id=row.id,
        name=row.name,
        kind=row.kind,
        format=row.format,
        subtype=row.subtype,
        sample_rate=row.sample_rate,
        channels=row.channels,
        frames=row.frames,
        duration=row.frames / row.sample_rate if row.sample_rate else 0.0,
        size=row.size,
        sha256=row.sha256,
        created=row.created,
    )


#: Where a page ended: after the asset ``(name, id)``, or after every name that starts
#: with the common prefix ``(prefix, None)``.
Position = tuple[str, str | None]


def encode_cursor(position: Position) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(position)).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        name, asset_id = msgspec.json.decode(raw, type=tuple[str, str | None])
    except (ValueError, msgspec.DecodeError):
        raise InvalidCursor("not a cursor this server gave out") from None
    return name, asset_id


# Asset names are keys, not paths: files are stored under their ids, so a "/" in a name
# is harmless, and sample libraries name their assets like folders ("kit/drums/kick.wav").
# Refused is only what is ambiguous as such a key: a leading "/", empty segments ("a//b",
# a trailing "/"), "." and ".." segments (which a path would collapse), backslashes (a
# Windows separator) and control characters (C0, DEL, C1: invisible in every listing).
# A name is kept exactly as given (no trimming), so that the rule is a pattern a client
# can check: NAME_PATTERN is that rule as an ECMA-262 and Python regex (the OpenAPI
# document carries it); clean_name applies it with a message that says what is wrong.
_CONTROL = "\\x00-\\x1f\\x7f-\\x9f"
_SEGMENT = rf"(?!\.\.?(?:/|$))[^/\\{_CONTROL}]+"
#: An asset name, for ``re.fullmatch`` (and for JSON Schema's ``pattern``, anchored).
NAME_PATTERN = re.compile(rf"^{_SEGMENT}(?:/{_SEGMENT})*$")
_CONTROL_CHAR = re.compile(f"[{_CONTROL}]")


def clean_name(name: str) -> str:
    """``name`` if it is a valid asset name (see :data:`NAME_PATTERN`), else ValueError
    saying why."""
    if not name:
        raise ValueError("name must not be empty")
    if len(name) > NAME_MAX:
        raise ValueError(f"name must be at most {NAME_MAX} characters")
    if (control := _CONTROL_CHAR.search(name)) is not None:
        raise ValueError(f"name must not contain control characters (U+{ord(control[0]):04X})")
    if "\\" in name:
        raise ValueError("name must not contain '\\': folders are separated by '/'")
    if name.startswith("/"):
        raise ValueError("name must not start with '/': names are relative, like 'kit/kick.wav'")
    segments = name.split("/")
    if "" in segments:
        raise ValueError("name must not have empty segments ('//' or a trailing '/')")
    if "." in segments or ".." in segments:
        raise ValueError("name must not have '.' or '..' segments")
    return name


def stem_of(name: str, default: str = "audio") -> str:
    """An asset's name without the extension of its last segment, folders kept, to name
    what is made of it (``kit/kick.wav`` -> ``kit/kick``; ``default`` for a bare ``.wav``)."""
    folder, slash, last = name.rpartition("/")
    return folder + slash + (last.rsplit(".", 1)[0] or default)


def past(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix`` (None: there is
    none, ``prefix`` is all U+10FFFF): seeking to it skips them all."""
    kept = prefix.rstrip("\U0010ffff")
    return kept[:-1] + chr(ord(kept[-1]) + 1) if kept else None


def file_name_of(client_path: str) -> str:
    """The last part of a file name a client sent: some send the path it had there
    (``C:\\Users\\me\\take.wav``), of which only the name is meant (RFC 7578, 4.2)."""
    return client_path.replace("\\", "/").rsplit("/", 1)[-1]


#: Index key: tenant first, so that one tenant's assets are one contiguous range.
IndexKey = tuple[str, str, str]  # (tenant, name, id)


class AssetIndex:
    """The AVL tree of ``(tenant, name, id) -> AssetSummary``, kept in step with the
    database through the asset event log, so that a process lists what any other
    process added."""

    def __init__(self) -> None:
        self.tree: AVLTree[IndexKey, AssetSummary] = AVLTree()
        self.keys: dict[str, IndexKey] = {}
        self.applied_upto = 0  # every event seq <= this has been applied (or given up)
        self.applied_above: set[int] = set()
        self.gaps: dict[int, float] = {}  # missing seq -> when first noticed
        self.lock = asyncio.Lock()

    async def load(self) -> None:
        """Build from the database: events first (the high-water mark), then the rows,
        so that anything committed in between is replayed by the next sync."""
        last = await AssetEvent.all().order_by("-seq").first()
        rows = await Asset.all()
        summaries = sorted(((r.tenant, r.name, r.id), summary_of(r)) for r in rows)
        self.tree = AVLTree()
        self.tree.bulk_load(summaries)
        self.keys = {key[2]: key for key, _ in summaries}
        self.applied_upto = last.seq if last else 0
        self.applied_above.clear()
        self.gaps.clear()

    def put(self, tenant: str, summary: AssetSummary) -> None:
        old = self.keys.get(summary.id)
        if old is not None:
            self.tree.delete(old)
        key = (tenant, summary.name, summary.id)
        self.tree.insert(key, summary)
        self.keys[summary.id] = key

    def remove(self, asset_id: str) -> None:
        key = self.keys.pop(asset_id, None)
        if key is not None:
            self.tree.delete(key)

    async def sync(self) -> None:
        """Apply events committed since the last sync (by any process)."""
        async with self.lock:
            events = await AssetEvent.filter(seq__gt=self.applied_upto).order_by("seq")
            fresh = [e for e in events if e.seq not in self.applied_above]
            added = [e.asset_id for e in fresh if e.op == "add"]
            rows = {r.id: r for r in await Asset.filter(id__in=added)} if added else {}
            for event in fresh:
                if event.op == "add":
                    row = rows.get(event.asset_id)
                    if row is not None:  # else deleted since: its delete event follows
                        self.put(row.tenant, summary_of(row))
                else:
                    self.remove(event.asset_id)
                self.applied_above.add(event.seq)
            self._advance(time.monotonic())

    def _advance(self, now: float) -> None:
        # Move applied_upto over contiguous applied seqs; a gap (an insert not yet
        # committed, or rolled back) holds it until EVENT_GAP_SECONDS have passed.
        while self.applied_above:
            following = self.applied_upto + 1
            if following in self.applied_above:
                self.applied_above.discard(following)
                self.gaps.pop(following, None)
                self.applied_upto = following
                continue
            first_seen = self.gaps.setdefault(following, now)
            if now - first_seen < EVENT_GAP_SECONDS:
                break
            self.gaps.pop(following)
            self.applied_upto = following

    def page(
        self, tenant: str, prefix: str, limit: int, cursor: Position | None, delimiter: str | None = None
    ) -> AssetPage:
        """A page of one tenant's assets whose names start with ``prefix``, in name order;
        a cursor is a position within that tenant, so another tenant's cursor can only
        ever page through the caller's own assets.

        With a ``delimiter``, as S3's ListObjectsV2: the assets directly under the prefix
        (no delimiter after it) and the common prefixes (``prefix + segment +
        delimiter``) of the rest, each once, merged in order; ``limit`` counts both. A
        common prefix's names are skipped by seeking past them in the tree (``O(log n)``),
        never read, so a folder of a million samples costs one entry of a page."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        first = (tenant, prefix)
        start: tuple[str, ...] = first
        inclusive = True
        if cursor is not None:
            name, asset_id = cursor
            if asset_id is not None:
                start, inclusive = (tenant, name, asset_id), False
            elif (beyond := past(name)) is not None:
                start = (tenant, beyond)
            else:
                return AssetPage(items=[], prefixes=[], next_cursor=None)
            if start < first:
                start, inclusive = first, True
        items: list[AssetSummary] = []
        prefixes: list[str] = []
        last: Position | None = None
        walk = self.tree.items_from(start, inclusive=inclusive)
        while walk is not None:
            seek = None
            for (owner, name, asset_id), summary in walk:
                if owner != tenant or not name.startswith(prefix):
                    break
                if len(items) + len(prefixes) == limit:
                    return AssetPage(items=items, prefixes=prefixes, next_cursor=encode_cursor(last))
                cut = name.find(delimiter, len(prefix)) if delimiter else -1
                if cut < 0:
                    items.append(summary)
                    last = (name, asset_id)
                    continue
                common = name[: cut + len(delimiter or "")]
                prefixes.append(common)
                last = (common, None)
                seek = past(common)
                break
            walk = self.tree.items_from((tenant, seek)) if seek is not None else None
        return AssetPage(items=items, prefixes=prefixes, next_cursor=None)

    def __len__(self) -> int:
        return len(self.tree)


class AssetStore:
    def __init__(self, storage: Storage, cache: LRUCache, max_upload_bytes: int, *, lists: bool = True):
        self.storage = storage
        self.cache = cache
        self.max_upload_bytes = max_upload_bytes
        #: False for a render node, which lists no assets: it keeps no index (one that
        #: is never read would only grow) and leaves sweeping to the servers.
        self.lists = lists
        self.index = AssetIndex()

    async def start(self) -> None:
        await self.storage.start()
        if self.lists:
            await self.sweep()
            await self.index.load()

    # -- files ----------------------------------------------------------------------

    @staticmethod
    def key_of(row: Asset) -> str:
        """The storage key of the asset's bytes."""
        return key_of(row.kind, row.path)

    def temp_path(self, kind: str = "upload") -> Path:
        """A new temporary file for a body or a render meant to become an asset of ``kind``."""
        return self.storage.scratch_path(kind)

    def fetch(self, row: Asset) -> AbstractAsyncContextManager[Path]:
        """The asset's bytes as a local file while the context lasts (a scratch copy,
        removed after, when the storage is an object store)."""
        return self.storage.fetch(self.key_of(row))

    async def receive(
        self, chunks: AsyncIterator[bytes], kind: str = "upload", *, keep: bool = True
    ) -> tuple[Path, int, str]:
        """Stream a body into a temporary file, enforcing the size limit as it arrives.

        Returns (temporary path, size, sha256). Raises :class:`UploadTooLarge` as soon as
        the limit is passed, before the rest is read; nothing is left behind. ``keep``
        False is for bodies used once and thrown away (``/api/process``): no fsync, no hash."""
        temp = self.temp_path(kind)
        digest = hashlib.sha256() if keep else None
        size = 0
        try:
            with open(temp, "wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_upload_bytes:
                        raise UploadTooLarge(self.max_upload_bytes)
                    if digest is not None:
                        digest.update(chunk)
                    out.write(chunk)
                out.flush()
                if keep:
                    await asyncio.to_thread(os.fsync, out.fileno())
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return temp, size, digest.hexdigest() if digest is not None else ""

    async def add(
        self,
        temp: Path,
        name: str,
        *,
        tenant: str,
        kind: str = "upload",
        size: int,
        sha256: str,
        commit_with: Callable[[str], Awaitable[object]] | None = None,
    ) -> AssetSummary:
        """Make a received temporary file an asset: probe it, store it as an object,
        then insert its row and event. The temporary file is gone afterwards, either way.
        ``commit_with(asset_id)`` runs in the row's transaction (a render marking itself done)."""
        try:
            name = clean_name(name)
            info = await asyncio.to_thread(probe, temp, display_name=name, full=kind == "upload")
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        asset_id = secrets.token_hex(16)
        placing = asyncio.ensure_future(
            self._place(
                temp,
                asset_id,
                name,
                info,
                tenant=tenant,
                kind=kind,
                size=size,
                sha256=sha256,
                commit_with=commit_with,
            )
        )
        try:
            row = await asyncio.shield(placing)
        except asyncio.CancelledError:
            # Cancelled while the object was stored or its row committed: let that end
            # (both kept, or neither), then stop. Cut short just after the commit, the
            # placing would remove the object of a row that is in.
            with contextlib.suppress(BaseException):
                await asyncio.shield(placing)
            raise
        summary = summary_of(row)
        if self.lists:
            self.index.put(tenant, summary)
        return summary

    async def _place(
        self,
        temp: Path,
        asset_id: str,
        name: str,
        info: AudioInfo,
        *,
        tenant: str,
        kind: str,
        size: int,
        sha256: str,
        commit_with: Callable[[str], Awaitable[object]] | None,
    ) -> Asset:
        """Store ``temp`` as the asset's object, then commit its row (and ``commit_with``)."""
        async with self.storage.placed(temp, key_of(kind, asset_id)), in_transaction():
            row = await Asset.create(
                id=asset_id,
                tenant=tenant,
                name=name,
                kind=kind,
                path=asset_id,
                format=info.format,
                subtype=info.subtype,
                decoder=info.decoder,
                sample_rate=info.sample_rate,
                channels=info.channels,
                frames=info.frames,
                size=size,
                sha256=sha256,
            )
            await AssetEvent.create(asset_id=asset_id, op="add")
            if commit_with is not None:
                await commit_with(asset_id)
        return row

    async def delete(self, asset_id: str, tenant: str) -> bool:
        row = await self.get(asset_id, tenant)
        if row is None:
            return False
        async with in_transaction():
            deleted = await Asset.filter(id=asset_id).delete()
            if deleted:
                await AssetEvent.create(asset_id=asset_id, op="delete")
        self.index.remove(asset_id)
        self.cache.discard(asset_id)
        await self.storage.delete(self.key_of(row))
        return bool(deleted)

    async def sweep(self) -> int:
        """Remove stored objects with no row (an upload or delete cut off by a crash) and
        stale temporary files, as the storage can tell them from work in progress.
        Returns how many went."""

        async def known() -> set[str]:
            return {key_of(kind, path) for kind, path in await Asset.all().values_list("kind", "path")}

        async def has_row(key: str) -> bool:
            folder, _, path = key.partition("/")
            return folder in KINDS and await Asset.exists(kind=KINDS[folder], path=path)

        return await self.storage.sweep(known, has_row)

    # -- reading --------------------------------------------------------------------

    async def get(self, asset_id: str, tenant: str) -> Asset | None:
        """The tenant's asset; another tenant's is as absent as one that never was."""
        return await Asset.get_or_none(id=asset_id, tenant=tenant) if is_id(asset_id) else None

    async def find(self, ref: str, tenant: str) -> Asset | None:
        """A tenant's asset by id, or else by name when exactly one of its assets has that
        name (so that plugins.toml can name an uploaded impulse response). ValueError if
        ambiguous."""
        row = await self.get(ref, tenant)
        if row is not None:
            return row
        if len(ref) > NAME_MAX:
            return None
        named = await Asset.filter(name=ref, tenant=tenant).limit(2)
        if len(named) > 1:
            raise ValueError(f"several assets are named {ref!r}; use the asset's id")
        return named[0] if named else None

    async def page(
        self, tenant: str, prefix: str, limit: int, cursor: str | None, delimiter: str | None = None
    ) -> AssetPage:
        after = decode_cursor(cursor) if cursor else None
        await self.index.sync()
        return self.index.page(tenant, prefix, limit, after, delimiter)

    def decoded(self, row: Asset) -> np.ndarray:
        """The asset's audio as float32 ``(channels, frames)``, through the LRU cache.
        Blocking: call from a worker thread."""

        def load() -> np.ndarray:
            with (
                self.storage.fetch_blocking(self.key_of(row)) as path,
                open_input(path, display_name=row.name) as reader,
            ):
                return reader.read()

        return self.cache.get_or_load(row.id, load)

    def blocks(self, row: Asset, block_frames: int = STREAM_BLOCK_FRAMES) -> Iterator[np.ndarray]:
        """The asset's audio as float32 ``(channels, n)`` blocks of ``block_frames`` (the
        last one shorter), ``row.frames`` frames in all: from the LRU cache if it is there,
        else decoded from the file as they are used, never held whole and never cached
        (whole-file analysis, pictures and transcoding of an asset of any length).
        Blocking: iterate in a worker thread."""
        if row.id in self.cache and (audio := self.cache.get(row.id)) is not None:
            for start in range(0, audio.shape[1], block_frames):
                yield audio[:, start : start + block_frames]
            return
        with (
            self.storage.fetch_blocking(self.key_of(row)) as path,
            open_input(path, display_name=row.name) as reader,
        ):
            yield from reader.blocks(block_frames)

    async def counts(self, tenant: str) -> tuple[int, int]:
        """The tenant's (number of assets, total bytes)."""
        totals = (
            await Asset.filter(tenant=tenant)
            .annotate(n=Count("id"), total=Sum("size"))
            .first()
            .values("n", "total")
        )
        return int(totals["n"] or 0), int(totals["total"] or 0)
