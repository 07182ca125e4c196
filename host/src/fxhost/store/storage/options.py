"""The settings of an S3 storage, apart from :mod:`.s3` so that naming them does not
import boto3 (a local folder never does)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class S3Options:
    """Everything needed to reach the store (picklable: a render worker process makes
    its own client from it)."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    #: Scratch copies and temporary files go here.
    scratch_dir: Path = Path("data/scratch")
    scratch_max_bytes: int = 4 << 30
    #: Downloads redirect to a presigned URL valid this long; None: streamed by fxhost.
    presign_seconds: int | None = None
    #: See the module docstring.
    sweep_grace_seconds: float = 3600.0
