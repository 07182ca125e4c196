"""A real S3 API for the tests: moto's server mode, started in the test process on a free
port (about a second), spoken to over HTTP by the servers under test and by boto3 here.
Never a mock of the client: fxhost's boto3 sends real requests to a real endpoint."""

from __future__ import annotations

import secrets
from pathlib import Path

import boto3
from restkit import free_port

REGION = "us-east-1"
#: moto accepts any credentials; these are what the servers under test are given.
ACCESS_KEY, SECRET_KEY = "fxhost-test", "fxhost-test-secret"


class MotoS3:
    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.endpoint = f"http://127.0.0.1:{port}"

    def start(self) -> MotoS3:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def client(self):
        return s3_client(self.endpoint)

    def new_bucket(self) -> str:
        name = f"fxhost-test-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=name)
        return name

    def env(self, root: Path, bucket: str | None = None, prefix: str = "fx") -> dict[str, str]:
        """A server's settings for a fresh bucket (or ``bucket``), scratch under ``root``."""
        bucket = bucket or self.new_bucket()
        return {
            "FXHOST_STORAGE_URL": f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}",
            "FXHOST_S3_ENDPOINT_URL": self.endpoint,
            "FXHOST_S3_REGION": REGION,
            "FXHOST_S3_ACCESS_KEY_ID": ACCESS_KEY,
            "FXHOST_S3_SECRET_ACCESS_KEY": SECRET_KEY,
            "FXHOST_SCRATCH_DIR": str(root / "scratch"),
        }


def s3_client(endpoint: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


def bucket_of(env: dict[str, str]) -> tuple[str, str]:
    """(bucket, key prefix ending in '/' or empty) of a server's S3 settings."""
    bucket, _, prefix = env["FXHOST_STORAGE_URL"].removeprefix("s3://").partition("/")
    return bucket, f"{prefix.strip('/')}/" if prefix.strip("/") else ""


def objects(client, env: dict[str, str], folder: str = "uploads") -> dict[str, dict]:
    """The objects of a server's folder (``uploads``, ``renders``): name -> ListObjectsV2 entry."""
    bucket, prefix = bucket_of(env)
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}{folder}/"):
        for item in page.get("Contents", []):
            found[item["Key"].removeprefix(f"{prefix}{folder}/")] = item
    return found
