"""The storage a URL names: empty for the uploads and renders folders, ``file:///path``
for ``path/uploads`` and ``path/renders``, ``s3://bucket/prefix`` for an object store."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

from fxhost.store.storage.local import LocalStorage
from fxhost.store.storage.objects import Storage, StorageUnavailable
from fxhost.store.storage.options import S3Options


def storage_from_url(url: str, *, uploads_dir: Path, renders_dir: Path, s3: S3Options) -> Storage:
    """``s3`` carries the other S3 settings (its bucket and prefix are taken from the
    URL). StorageUnavailable (``storage_url``) for a URL that names no storage."""
    if not url:
        return LocalStorage({"upload": uploads_dir, "render": renders_dir})
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise StorageUnavailable("storage_url", f"{url!r}: a file URL is file:///absolute/folder")
        root = Path(unquote(parts.path))
        return LocalStorage({"upload": root / "uploads", "render": root / "renders"})
    if parts.scheme == "s3":
        if not parts.netloc:
            raise StorageUnavailable(
                "storage_url", f"{url!r}: an S3 URL is s3://bucket or s3://bucket/prefix"
            )
        if parts.query or parts.fragment:
            raise StorageUnavailable("storage_url", f"{url!r}: an S3 URL has no query or fragment")
        from fxhost.store.storage.s3 import S3Storage  # boto3 only when it is used

        return S3Storage(replace(s3, bucket=parts.netloc, prefix=unquote(parts.path).strip("/")))
    raise StorageUnavailable("storage_url", f"{url!r}: give file:///folder or s3://bucket/prefix")
