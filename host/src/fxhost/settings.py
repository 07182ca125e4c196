"""Settings from environment variables ``FXHOST_*`` and a ``.env`` file.

Every setting has a working default, so ``fxhost serve`` runs with no configuration:
SQLite and data folders in the working directory, ``plugins.toml`` beside them.
The environment wins over ``.env``. Lists (CORS origins, API keys) are comma-separated.
"""

from __future__ import annotations

import os
from typing import Annotated, Literal

import msgspec
from dotenv import dotenv_values
from fxhost_sdk import FieldError
from fxhost_sdk.host import convert

from fxhost.audio.formats import SampleRate

PREFIX = "FXHOST_"
MiB = 1024 * 1024


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    #: Interface ``fxhost serve`` listens on.
    host: str = "127.0.0.1"
    #: Port ``fxhost serve`` listens on.
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8000
    #: Server processes (uvicorn workers); they share the database and the data folder.
    workers: Annotated[int, msgspec.Meta(ge=1, le=64)] = 1
    #: tortoise-orm URL: ``sqlite://fxhost.db`` or ``postgres://user@host:5432/db``.
    database_url: str = "sqlite://fxhost.db"
    #: Where uploaded audio is stored, as received.
    uploads_dir: str = "data/uploads"
    #: Where rendered audio is stored.
    renders_dir: str = "data/renders"
    #: Where asset and render files are kept: empty for ``uploads_dir`` and ``renders_dir``;
    #: ``file:///srv/fxhost`` for its ``uploads`` and ``renders`` folders; ``s3://bucket/prefix``
    #: for an S3-compatible object store (the bucket must exist: fxhost does not create it).
    storage_url: Annotated[str, msgspec.Meta(pattern=r"^$|^(file|s3)://")] = ""
    #: The S3 API's endpoint (MinIO, Ceph, R2...: ``http://minio:9000``); empty: AWS's.
    s3_endpoint_url: Annotated[str, msgspec.Meta(pattern=r"^$|^https?://")] = ""
    #: The S3 region; empty: boto3's default (``AWS_REGION``, the AWS profile).
    s3_region: str = ""
    #: S3 credentials; empty: boto3's own chain (``AWS_ACCESS_KEY_ID`` and
    #: ``AWS_SECRET_ACCESS_KEY``, an AWS profile, an instance role).
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    #: Raw asset downloads answer 307 to a presigned URL of the object store instead of
    #: streaming it through fxhost.
    s3_presign_downloads: bool = False
    #: How long a presigned download URL is valid.
    s3_presign_seconds: Annotated[int, msgspec.Meta(ge=1, le=7 * 24 * 3600)] = 300
    #: An object with no database row is swept once it is this old; a put that takes
    #: more than half of it fails rather than risk that (see the README's Storage).
    s3_sweep_grace_seconds: Annotated[float, msgspec.Meta(ge=1)] = 3600.0
    #: With an object store: where bodies being received, renders being written and
    #: local copies of objects (for decoding, analysis, renders) are kept meanwhile.
    scratch_dir: str = "data/scratch"
    #: Largest total of local copies of objects held at once by a process (a larger
    #: object still goes, alone); more wait.
    scratch_max_bytes: Annotated[int, msgspec.Meta(ge=MiB)] = 4096 * MiB
    #: Largest request body accepted (uploads, /api/process), in bytes.
    max_upload_bytes: Annotated[int, msgspec.Meta(ge=1)] = 512 * MiB
    #: Sample rate used where a client does not say one.
    default_sample_rate: SampleRate = 48000
    #: Block size, in frames, for streaming where a client does not say one.
    block_size: Annotated[int, msgspec.Meta(ge=16, le=65536)] = 256
    #: Memory for decoded audio kept in the LRU cache, in bytes.
    cache_bytes: Annotated[int, msgspec.Meta(ge=0)] = 256 * MiB
    #: Renders (and /api/process requests) run at once, each in a worker process.
    render_workers: Annotated[int, msgspec.Meta(ge=1, le=64)] = 2
    #: Longest a render or /api/process may run; past it the worker process is killed and
    #: the render fails, naming the effect that hung.
    render_timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 3600.0
    #: Where renders run: ``local``, in this server's own worker processes; ``postgres``,
    #: queued in the PostgreSQL database (``database_url`` must be one) for ``fxhost worker``
    #: render nodes, the server only queueing them.
    render_queue: Literal["local", "postgres"] = "local"
    #: Times a queued render is started (a node that dies mid-render hands it on) before it
    #: is marked failed.
    render_attempts: Annotated[int, msgspec.Meta(ge=1, le=100)] = 3
    #: A render whose input content and recorded chain (effect and plugin versions, every
    #: parameter) and output match an earlier done render's reuses its result.
    render_cache: bool = False
    #: Whole-file jobs on assets (analysis, waveform, spectrogram, transcoding) this process
    #: runs at once, each reading the file block by block in a thread; more wait in line.
    analysis_concurrency: Annotated[int, msgspec.Meta(ge=1, le=64)] = 2
    #: Longest a whole-file job waits in line for a slot; past it the request is refused
    #: with 503 and ``Retry-After``. 0: refuse at once when every slot is taken.
    analysis_queue_seconds: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 30.0
    #: Live streams this process runs at once.
    max_streams: Annotated[int, msgspec.Meta(ge=1, le=10000)] = 64
    #: WebSocket connections this process accepts at once.
    max_connections: Annotated[int, msgspec.Meta(ge=1, le=100000)] = 512
    #: Largest WebSocket binary frame (and REST stream input body), in bytes.
    max_frame_bytes: Annotated[int, msgspec.Meta(ge=64)] = 1024 * 1024
    #: A stream with no producer or consumer activity for this long is deleted.
    stream_idle_seconds: Annotated[float, msgspec.Meta(gt=0)] = 300.0
    #: Largest ring buffer of a stream, in bytes (float32 frames x channels); a stream has
    #: two. Bounds the memory a client can make the server hold per stream.
    max_stream_ring_bytes: Annotated[int, msgspec.Meta(ge=4096)] = 32 * MiB
    #: Default ring buffer capacity of a stream, in seconds of audio.
    stream_capacity_seconds: Annotated[float, msgspec.Meta(gt=0, le=600)] = 10.0
    #: Live blocks up to this many frames are processed on the event loop; larger ones
    #: in a worker thread (a thread hop costs more than processing a small block).
    inline_frames: Annotated[int, msgspec.Meta(ge=0)] = 2048
    #: Longest one live block may take in the chain (in a worker thread); past it the
    #: session or stream ends with an error naming the effect.
    block_timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    #: Interface of this process's internal listener, through which the other workers and
    #: nodes reach the streams it owns (``0.0.0.0`` when nodes run on other machines).
    internal_host: str = "127.0.0.1"
    #: Port of the internal listener; 0: any free port (needed with several workers).
    internal_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0
    #: Host name or address other nodes reach the internal listener at, when it is not
    #: ``internal_host`` (behind NAT, or listening on ``0.0.0.0``).
    internal_advertise: str | None = None
    #: How often each process tells the shared database it is alive.
    cluster_heartbeat_seconds: Annotated[float, msgspec.Meta(gt=0, le=60)] = 2.0
    #: A process silent for this long is dead: its streams are lost (at once when it ran
    #: on the same host and its pid is gone).
    cluster_dead_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 10.0
    #: The plugins and chains file.
    plugins_config: str = "plugins.toml"
    #: Origins allowed by CORS (``*`` for any); none by default.
    cors_origins: list[str] = []
    #: Static API keys, comma-separated (besides those made by ``fxhost keys create``).
    #: With none of either, the server runs open.
    api_keys: list[str] = []
    #: The key that signs links (``POST /api/links``); every server sharing the database
    #: must have the same. Unset: one is made once and kept in the database.
    link_secret: Annotated[str, msgspec.Meta(min_length=32)] | None = None
    #: Longest a link may be valid for, in seconds (``expires_in`` of ``POST /api/links``).
    link_max_seconds: Annotated[int, msgspec.Meta(ge=1)] = 7 * 24 * 3600
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    #: Prometheus metrics at ``/metrics`` (false: none are kept, and /metrics answers 404).
    metrics: bool = True
    #: ``/metrics`` needs no API key (it follows the key rule of ``/api`` otherwise).
    metrics_open: bool = False
    #: Serve ``/metrics`` on this port of ``host`` instead, with no key (every worker
    #: listens on it, SO_REUSEPORT); the main port's ``/metrics`` then answers 404.
    metrics_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] | None = None
    #: Longest tail a render appends (a frozen reverb rings for ever).
    max_tail_seconds: Annotated[float, msgspec.Meta(gt=0, le=600)] = 30.0
    #: Redis (``redis://host:6379/0``) to which the output of the streams this process
    #: owns is published, and from which other processes relay it to their listeners.
    #: Empty: no fan-out.
    redis_url: Annotated[str, msgspec.Meta(pattern=r"^$|^(redis|rediss|unix)://")] = ""
    #: The prefix of every Redis key fxhost makes (several deployments may share a Redis).
    redis_prefix: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:-]+$")] = "fxhost"


def env_name(field: str) -> str:
    return PREFIX + field.upper()


def load_settings(env: dict[str, str] | None = None, dotenv_path: str | os.PathLike = ".env") -> Settings:
    """Read settings; raises ``fxhost_sdk.FieldError`` naming the variable at fault."""
    source = {**dotenv_values(dotenv_path), **(os.environ if env is None else env)}
    fields: dict[str, object] = {}
    for field in Settings.__struct_fields__:
        value = source.get(env_name(field))
        if value is None:
            continue
        if field in ("cors_origins", "api_keys"):
            fields[field] = [item.strip() for item in value.split(",") if item.strip()]
        else:
            fields[field] = value
    try:
        # Environment values are strings: strict=False lets msgspec parse numbers.
        settings = convert(fields, Settings, strict=False)
    except FieldError as error:
        root = error.path.split(".", 1)[0].split("[", 1)[0]
        raise FieldError(env_name(root), error.message) from None
    if settings.render_queue == "postgres" and not is_postgres(settings.database_url):
        scheme = settings.database_url.split("://", 1)[0]
        raise FieldError(
            env_name("render_queue"),
            f"the postgres render queue needs a PostgreSQL {env_name('database_url')} "
            f"(postgres://user@host:5432/db), not {scheme}://",
        )
    return settings


#: URL schemes of PostgreSQL in ``database_url`` (tortoise-orm's names).
POSTGRES_SCHEMES = ("postgres", "postgresql", "asyncpg", "psycopg")


def is_postgres(database_url: str) -> bool:
    return database_url.split("://", 1)[0] in POSTGRES_SCHEMES
