"""Objects as files in local folders (the default): ``uploads/<id>`` in the uploads folder,
``renders/<id>`` in the renders folder, as fxhost always kept them.

A file is written to a temporary name in its folder, fsynced, renamed into place and
the folder fsynced, before its row is inserted. Between the rename and the insert the
writer holds a lock on the file (its claim), so a sweep can tell a file still being
added from one left by a crash, without waiting for a grace period to pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

from fxhost.store.storage.objects import (
    FOLDERS,
    TEMP_PREFIX,
    HasRow,
    KnownKeys,
    Storage,
    StorageCheck,
    owner_gone,
    temp_name,
)

#: Files younger than this are never swept: another process may be between the
#: rename and the insert of its row.
SWEEP_GRACE_SECONDS = 30.0
#: Bytes read at a time by :meth:`LocalStorage.open_read`.
READ_CHUNK = 1 << 16


class LocalStorage(Storage):
    def __init__(self, folders: dict[str, Path]):
        """``folders``: kind (``upload``, ``render``) -> the folder its files are in."""
        self.folders = {FOLDERS[kind]: Path(folder) for kind, folder in folders.items()}
        self.description = ", ".join(
            f"{name} in {folder.resolve().as_uri()}" for name, folder in self.folders.items()
        )

    def __reduce__(self):
        # Pickled for a render worker process: the folders are all it needs.
        kinds = {kind: self.folders[name] for kind, name in FOLDERS.items()}
        return LocalStorage, (kinds,)

    async def start(self) -> None:
        for folder in self.folders.values():
            folder.mkdir(parents=True, exist_ok=True)

    async def check(self) -> StorageCheck:
        folders = self.folders.values()
        problems = [f.name for f in folders if not (f.is_dir() and os.access(f, os.W_OK))]
        if problems:
            return StorageCheck(ok=False, detail=f"not writable: {', '.join(problems)}", free_bytes=0)
        return StorageCheck(
            ok=True, detail="writable", free_bytes=min(shutil.disk_usage(f).free for f in folders)
        )

    def file_of(self, key: str) -> Path:
        folder, _, name = key.partition("/")
        return self.folders[folder] / name

    def scratch_path(self, kind: str = "upload") -> Path:
        return self.folders[FOLDERS[kind]] / temp_name()

    @asynccontextmanager
    async def placed(self, local: Path, key: str) -> AsyncIterator[None]:
        final = self.file_of(key)
        try:
            if local.parent != final.parent:  # another folder, maybe another disk: copy in first
                local = await asyncio.to_thread(_copy_in, local, final.parent)
            claim = _claim(local)  # held until the row is in: see sweep
        except BaseException:
            local.unlink(missing_ok=True)
            raise
        try:
            try:
                os.replace(local, final)
            except BaseException:
                local.unlink(missing_ok=True)
                raise
            await asyncio.to_thread(_fsync_dir, final.parent)
            try:
                yield
            except BaseException:
                final.unlink(missing_ok=True)
                raise
        finally:
            claim.close()

    @contextlib.contextmanager
    def fetch_blocking(self, key: str) -> Iterator[Path]:
        path = self.file_of(key)
        if not path.is_file():
            raise FileNotFoundError(f"no stored file {path}")
        yield path  # read in place: a file deleted meanwhile still reads to the end once open

    def local_path(self, key: str) -> Path:
        return self.file_of(key)

    async def open_read(self, key: str, first: int, last: int) -> Iterator[bytes]:
        file = open(self.file_of(key), "rb")  # noqa: SIM115 - the iterator closes it

        def chunks() -> Iterator[bytes]:
            with file:
                file.seek(first)
                left = last - first + 1
                while left > 0 and (data := file.read(min(READ_CHUNK, left))):
                    left -= len(data)
                    yield data

        return chunks()

    async def exists(self, key: str) -> bool:
        return self.file_of(key).is_file()

    async def delete(self, key: str) -> None:
        self.file_of(key).unlink(missing_ok=True)

    async def sweep(self, known: KnownKeys, has_row: HasRow, grace: float = SWEEP_GRACE_SECONDS) -> int:
        """Remove files with no row (an upload or delete cut off by a crash) and stale
        temporary files: those older than ``grace`` seconds, a dead process's temporary
        files, and files no writer claims that still have no row."""
        rows = await known()
        now = time.time()
        removed = 0
        for name, folder in self.folders.items():
            for entry in await asyncio.to_thread(lambda f=folder: list(os.scandir(f))):
                key = f"{name}/{entry.name}"
                if not entry.is_file(follow_symlinks=False) or key in rows:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    if (
                        owner_gone(entry.name)
                        or now - entry.stat().st_mtime >= grace
                        or await _abandoned(key, entry.name, entry.path, has_row)
                    ):
                        os.unlink(entry.path)
                        removed += 1
        return removed


async def _abandoned(key: str, name: str, path: str, has_row: HasRow) -> bool:
    # A file renamed into place whose writer no longer claims it: its row is in (the
    # rows read by the sweep are older than the file) or the writer died before it.
    if name.startswith(TEMP_PREFIX) or not _unclaimed(path):
        return False
    return not await has_row(key)


def _copy_in(source: Path, folder: Path) -> Path:
    """``source`` copied to a temporary file in ``folder``, fsynced; ``source`` removed."""
    temp = folder / temp_name()
    try:
        with open(source, "rb") as src, open(temp, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    source.unlink(missing_ok=True)
    return temp


def _claim(path: Path):
    """An open file holding an exclusive lock on ``path``; closing it releases the lock."""
    claim = open(path, "rb")  # noqa: SIM115 - the caller closes it once the row is in
    fcntl.flock(claim, fcntl.LOCK_EX)
    return claim


def _unclaimed(path: str) -> bool:
    """No process holds the lock of :func:`_claim` on ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
