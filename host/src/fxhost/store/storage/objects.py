"""The storage interface: objects (the bytes of an asset or a render) under keys
(``uploads/<id>``, ``renders/<id>``), whatever keeps them.

The rule every implementation keeps, and :class:`~fxhost.store.assets.AssetStore` builds
on: an object is durable *before* its database row is written (:meth:`Storage.placed`),
and a row is deleted before its object; so a crash leaves at worst an object with no row,
which :meth:`Storage.sweep` removes once no writer can still be about to insert its row.

Readers that need a file (libsndfile decodes from a path, renders run in worker
processes) :meth:`~Storage.fetch` the object: a local folder hands out its own file, an
object store a scratch copy, bounded in bytes and removed when the reader is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fxhost.store.owners import owner_alive, owner_id

#: The folder (key prefix) of each kind of asset.
FOLDERS = {"upload": "uploads", "render": "renders"}
#: The kind of asset in each folder.
KINDS = {folder: kind for kind, folder in FOLDERS.items()}
#: Temporary and scratch files start with this, then the owner: a sweep removes a dead
#: process's at once.
TEMP_PREFIX = ".part-"

#: ``known()``: the keys that have a row; ``has_row(key)``: whether one key has one now.
KnownKeys = Callable[[], Awaitable[set[str]]]
HasRow = Callable[[str], Awaitable[bool]]


def key_of(kind: str, path: str) -> str:
    """The key of an asset of ``kind`` (``upload``, ``render``) stored as ``path`` (its id)."""
    return f"{FOLDERS[kind]}/{path}"


class StorageUnavailable(Exception):
    """The storage cannot be used as configured; ``setting`` names the setting at fault
    (a Settings field name: the wiring turns it into the variable's name)."""

    def __init__(self, setting: str, message: str):
        super().__init__(message)
        self.setting = setting


class StorageError(Exception):
    """An operation on a working storage failed (a put that took too long, a refused write)."""


def temp_name() -> str:
    # The owner in the name lets a sweep remove a dead process's files at once.
    return f"{TEMP_PREFIX}{owner_id().replace(':', '~')}~{secrets.token_hex(8)}"


def owner_gone(filename: str) -> bool:
    """A temporary file whose writing process (on this host) has died."""
    if not filename.startswith(TEMP_PREFIX):
        return False
    owner = filename.removeprefix(TEMP_PREFIX).rsplit("~", 1)[0].replace("~", ":")
    return owner_alive(owner) is False


class ScratchBudget:
    """Bytes of scratch copies held at once by this process: a fetch waits while taking
    its object's size would pass ``max_bytes``, unless nothing else is held (one object
    larger than the budget still gets through, alone). Shared by threads."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.held = 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def taken(self, size: int) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: self.held == 0 or self.held + size <= self.max_bytes)
            self.held += size
        try:
            yield
        finally:
            with self._changed:
                self.held -= size
                self._changed.notify_all()


@dataclass(frozen=True)
class StorageCheck:
    """What a health check found: usable or not, why, and the free bytes where this
    process writes files (the folders, or the scratch folder of an object store)."""

    ok: bool
    detail: str
    free_bytes: int


class Storage(ABC):
    """Objects under keys. The blocking methods (``*_blocking``, :meth:`open_read`'s
    iterator) are for worker threads; the others are safe on the event loop."""

    #: What and where, for logs: ``file:///srv/fxhost/...``, ``s3://bucket/prefix``.
    description: str

    @abstractmethod
    async def start(self) -> None:
        """Check the storage can be used (folders made, bucket reachable); raises
        :class:`StorageUnavailable` naming the setting at fault."""

    @abstractmethod
    def scratch_path(self, kind: str = "upload") -> Path:
        """A new path for a temporary file meant to become an object of ``kind`` (a body
        being received, a render being written), where :meth:`placed` takes it cheapest."""

    @abstractmethod
    def placed(self, local: Path, key: str) -> AbstractAsyncContextManager[None]:
        """Make the file ``local`` the object ``key``, durably, on entering; the block then
        records it (inserts the row). If the block raises, the object is removed again.
        ``local`` is gone afterwards, either way (moved, or uploaded and deleted)."""

    async def put(self, local: Path, key: str) -> None:
        """Make the file ``local`` the object ``key`` (and remove ``local``)."""
        async with self.placed(local, key):
            pass

    @abstractmethod
    def fetch_blocking(self, key: str) -> AbstractContextManager[Path]:
        """A local file with the object's bytes, for as long as the context lasts: the
        stored file itself, or a scratch copy removed at the end. FileNotFoundError if
        there is no such object. Blocking."""

    @asynccontextmanager
    async def fetch(self, key: str) -> AsyncIterator[Path]:
        """:meth:`fetch_blocking` from the event loop (the copy is made in a thread)."""
        manager = self.fetch_blocking(key)
        entering = asyncio.ensure_future(asyncio.to_thread(manager.__enter__))
        try:
            path = await asyncio.shield(entering)
        except asyncio.CancelledError:
            # A thread cannot be stopped: the copy is made anyway. Wait for it and remove
            # it, else it stays, and holds its share of the scratch budget, for good.
            with contextlib.suppress(BaseException):
                await asyncio.shield(entering)
                await asyncio.to_thread(manager.__exit__, None, None, None)
            raise
        try:
            yield path
        except BaseException as error:
            await asyncio.to_thread(manager.__exit__, type(error), error, error.__traceback__)
            raise
        else:
            await asyncio.to_thread(manager.__exit__, None, None, None)

    def local_path(self, key: str) -> Path | None:
        """The object's own file when the storage is a local folder (read in place); None
        for an object store."""
        return None

    @abstractmethod
    async def open_read(self, key: str, first: int, last: int) -> Iterator[bytes]:
        """Bytes ``first..last`` (inclusive) of the object, as a blocking iterator of
        chunks (iterate it in a thread); opened here, so that a missing object raises
        FileNotFoundError before a response starts."""

    def presigned_url(self, key: str, *, filename: str, media_type: str) -> str | None:
        """A URL a client may GET the object from directly, when the storage gives them
        out and is configured to; else None."""
        return None

    @abstractmethod
    async def check(self) -> StorageCheck:
        """Whether the storage can be used now (``/api/audio/health``); never raises."""

    @abstractmethod
    async def exists(self, key: str) -> bool: ...

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the object; no error if it is already gone."""

    @abstractmethod
    async def sweep(self, known: KnownKeys, has_row: HasRow) -> int:
        """Remove objects with no row that no writer can still be recording, and what
        dead processes left in scratch; returns how many went."""
