"""Objects in an S3-compatible object store (AWS S3, MinIO, Ceph, R2, ...), through boto3,
whose blocking calls run in threads off the event loop.

``s3://bucket/prefix``: an object's key is ``prefix/uploads/<id>``. A put is one
PutObject, or a multipart upload above boto3's threshold (8 MiB; its transfer manager
uploads the parts in parallel): either way the object appears whole or not at all.

Orphans: an object is written before its row; a crash between the two leaves an object
with no row. Unlike a local folder there is no lock to tell a writer at work from one
that died, so the sweep goes by age: it lists the objects first, then reads the rows,
and removes only objects with no row whose LastModified (for a multipart upload, when
it began) is ``grace`` seconds old. A writer whose put took more than half of ``grace``
removes its object and fails instead of inserting the row; so a row is always
committed long before its object is old enough to be swept (the other half covers the
insert and clocks that disagree), and an acknowledged upload is never swept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import boto3
import boto3.exceptions
import botocore.config
import botocore.exceptions
from boto3.s3.transfer import TransferConfig

from fxhost.store.storage.objects import (
    FOLDERS,
    HasRow,
    KnownKeys,
    ScratchBudget,
    Storage,
    StorageCheck,
    StorageError,
    StorageUnavailable,
    owner_gone,
    temp_name,
)
from fxhost.store.storage.options import S3Options

log = logging.getLogger(__name__)

#: Bytes of a download read at a time (a thread hop each).
READ_CHUNK = 1 << 18
#: Keys deleted per DeleteObjects request (the API's maximum).
DELETE_BATCH = 1000


class S3Storage(Storage):
    def __init__(self, options: S3Options):
        self.options = options
        self.bucket = options.bucket
        self.prefix = f"{options.prefix.strip('/')}/" if options.prefix.strip("/") else ""
        self.description = f"s3://{self.bucket}/{self.prefix}" + (
            f" at {options.endpoint_url}" if options.endpoint_url else ""
        )
        self.scratch = Path(options.scratch_dir)
        self.budget = ScratchBudget(options.scratch_max_bytes)
        config = botocore.config.Config(
            region_name=options.region or None,
            signature_version="s3v4",
            connect_timeout=5,
            read_timeout=60,
            retries={"mode": "standard", "max_attempts": 3},
            # S3-compatible servers (MinIO, moto, Ceph) are reached by path: bucket names
            # as host names need DNS they do not have. AWS itself: virtual hosts.
            s3={"addressing_style": "path" if options.endpoint_url else "auto"},
            max_pool_connections=32,
        )
        self.client = boto3.session.Session().client(
            "s3",
            endpoint_url=options.endpoint_url or None,
            aws_access_key_id=options.access_key_id or None,
            aws_secret_access_key=options.secret_access_key or None,
            config=config,
        )
        self.transfer = TransferConfig(use_threads=True, max_concurrency=4)

    def __reduce__(self):
        return S3Storage, (self.options,)

    def object_key(self, key: str) -> str:
        return self.prefix + key

    # -- start ----------------------------------------------------------------------

    async def start(self) -> None:
        self.scratch.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self._check)

    def _check(self) -> None:
        """fxhost does not create the bucket: where it lives, who may read it, how long
        it keeps deleted versions are the operator's choices. A missing one is said so."""
        where = self.options.endpoint_url or "AWS"
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.NoCredentialsError:
            raise StorageUnavailable(
                "s3_access_key_id",
                "no S3 credentials: set it and FXHOST_S3_SECRET_ACCESS_KEY "
                "(or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or an AWS profile)",
            ) from None
        except (
            botocore.exceptions.EndpointConnectionError,
            botocore.exceptions.ConnectTimeoutError,
        ) as error:
            raise StorageUnavailable("s3_endpoint_url", f"cannot reach the S3 endpoint: {error}") from None
        except botocore.exceptions.ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchBucket", "NotFound"):
                message = f"the bucket {self.bucket!r} does not exist at {where}; create it (fxhost does not)"
                raise StorageUnavailable("storage_url", message) from None
            if code in ("403", "AccessDenied", "Forbidden"):
                message = f"access to the bucket {self.bucket!r} at {where} is denied to these credentials"
                raise StorageUnavailable("s3_access_key_id", message) from None
            raise StorageUnavailable(
                "storage_url", f"the bucket {self.bucket!r} at {where}: {error}"
            ) from None
        except botocore.exceptions.BotoCoreError as error:
            raise StorageUnavailable(
                "storage_url", f"the bucket {self.bucket!r} at {where}: {error}"
            ) from None

    async def check(self) -> StorageCheck:
        try:
            await asyncio.to_thread(self._check)
        except Exception as error:  # report, never raise: this is the health check
            return StorageCheck(ok=False, detail=str(error) or type(error).__name__, free_bytes=0)
        try:
            free = shutil.disk_usage(self.scratch).free
        except OSError as error:
            return StorageCheck(ok=False, detail=f"scratch folder: {error.strerror}", free_bytes=0)
        return StorageCheck(ok=True, detail=f"bucket {self.bucket!r} reachable", free_bytes=free)

    # -- writing --------------------------------------------------------------------

    def scratch_path(self, kind: str = "upload") -> Path:
        return self.scratch / temp_name()

    @asynccontextmanager
    async def placed(self, local: Path, key: str) -> AsyncIterator[None]:
        began = time.monotonic()
        try:
            await asyncio.to_thread(self.put_blocking, local, key)
        finally:
            local.unlink(missing_ok=True)
        took = time.monotonic() - began
        try:
            if took > self.options.sweep_grace_seconds / 2:
                raise StorageError(
                    f"the upload to S3 took {took:.0f} s, more than half of FXHOST_S3_SWEEP_GRACE_SECONDS "
                    f"({self.options.sweep_grace_seconds:.0f} s): the sweep could remove it; not kept"
                )
            yield
        except BaseException:
            with contextlib.suppress(Exception):  # else the sweep removes it later
                await asyncio.to_thread(self._delete_blocking, key)
            raise

    def put_blocking(self, local: Path, key: str) -> None:
        """Upload ``local`` as ``key`` (multipart above the transfer threshold); the file
        is kept. Blocking."""
        with _failing_as("store", key):
            self.client.upload_file(str(local), self.bucket, self.object_key(key), Config=self.transfer)

    # -- reading --------------------------------------------------------------------

    @contextlib.contextmanager
    def fetch_blocking(self, key: str) -> Iterator[Path]:
        size = self._size(key)
        with self.budget.taken(size):
            self.scratch.mkdir(parents=True, exist_ok=True)
            path = self.scratch / temp_name()
            try:
                with _failing_as("fetch", key):
                    self.client.download_file(
                        self.bucket, self.object_key(key), str(path), Config=self.transfer
                    )
                yield path
            finally:
                path.unlink(missing_ok=True)

    def _size(self, key: str) -> int:
        with _failing_as("look up", key):
            return int(self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))["ContentLength"])

    async def open_read(self, key: str, first: int, last: int) -> Iterator[bytes]:
        def get():
            with _failing_as("read", key):
                return self.client.get_object(
                    Bucket=self.bucket, Key=self.object_key(key), Range=f"bytes={first}-{last}"
                )["Body"]

        body = await asyncio.to_thread(get)

        def chunks() -> Iterator[bytes]:
            with contextlib.closing(body):
                yield from body.iter_chunks(READ_CHUNK)

        return chunks()

    def presigned_url(self, key: str, *, filename: str, media_type: str) -> str | None:
        if self.options.presign_seconds is None:
            return None
        # Signing is local arithmetic: no request, fine on the event loop.
        return self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self.object_key(key),
                "ResponseContentType": media_type,
                "ResponseContentDisposition": f"inline; filename*=UTF-8''{quote(filename, safe='')}",
            },
            ExpiresIn=self.options.presign_seconds,
        )

    async def exists(self, key: str) -> bool:
        try:
            await asyncio.to_thread(self._size, key)
        except FileNotFoundError:
            return False
        return True

    # -- removing -------------------------------------------------------------------

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete_blocking, key)

    def _delete_blocking(self, key: str) -> None:
        with _failing_as("delete", key):
            self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    async def sweep(self, known: KnownKeys, has_row: HasRow) -> int:
        grace = self.options.sweep_grace_seconds
        cutoff = datetime.now(UTC) - timedelta(seconds=grace)
        old = await asyncio.to_thread(self._listed_before, cutoff)  # listed first, rows read after
        rows = await known()
        orphans = [key for key in old if key not in rows]
        if orphans:
            await asyncio.to_thread(self._delete_many, orphans)
        aborted = await asyncio.to_thread(self._abort_uploads_before, cutoff)
        if aborted:
            log.info("aborted %d multipart upload(s) older than %.0f s", aborted, grace)
        return len(orphans) + await asyncio.to_thread(self._sweep_scratch)

    def _listed_before(self, cutoff: datetime) -> list[str]:
        keys = []
        pages = self.client.get_paginator("list_objects_v2")
        for folder in FOLDERS.values():
            for page in pages.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}{folder}/"):
                for item in page.get("Contents", []):
                    if item["LastModified"] < cutoff:
                        keys.append(item["Key"].removeprefix(self.prefix))
        return keys

    def _delete_many(self, keys: list[str]) -> None:
        for start in range(0, len(keys), DELETE_BATCH):
            batch = [{"Key": self.object_key(k)} for k in keys[start : start + DELETE_BATCH]]
            answer = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            for error in answer.get("Errors", []):
                log.warning("sweep: could not delete %s: %s", error.get("Key"), error.get("Message"))

    def _abort_uploads_before(self, cutoff: datetime) -> int:
        """Multipart uploads a crashed writer left open (their parts cost storage, unlisted)."""
        aborted = 0
        pages = self.client.get_paginator("list_multipart_uploads")
        for page in pages.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for upload in page.get("Uploads", []):
                if upload["Initiated"] < cutoff:
                    with contextlib.suppress(botocore.exceptions.ClientError):
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        aborted += 1
        return aborted

    def _sweep_scratch(self) -> int:
        """Scratch files of processes on this machine that died."""
        removed = 0
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.scratch):
                if entry.is_file(follow_symlinks=False) and owner_gone(entry.name):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        removed += 1
        return removed


@contextlib.contextmanager
def _failing_as(what: str, key: str) -> Iterator[None]:
    """The store's errors as the interface's: a missing object FileNotFoundError, any
    other refusal or an unreachable store StorageError."""
    try:
        yield
    except botocore.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code", "") in ("404", "NoSuchKey", "NotFound"):
            raise FileNotFoundError(f"no stored object {key}") from None
        raise StorageError(f"the object store failed to {what} {key}: {error}") from None
    except (botocore.exceptions.BotoCoreError, boto3.exceptions.Boto3Error) as error:
        raise StorageError(f"the object store failed to {what} {key}: {error}") from None
