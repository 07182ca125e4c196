"""The database tables (tortoise-orm). Schema changes go through migrations:
``uv run tortoise -c fxhost.store.db.TORTOISE_ORM makemigrations`` after editing this file."""

import re

from tortoise import fields
from tortoise.models import Model

#: Asset and render ids: 32 lower-case hex digits. Anything else names nothing, and is
#: answered without asking the database (whose column would refuse it with an error).
ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")


def is_id(value: str) -> bool:
    return bool(ID_PATTERN.fullmatch(value))


#: The tenant of everything made while the server runs with no API keys.
OPEN_TENANT = ""
TENANT_MAX = 32


class Asset(Model):
    """An audio file stored as received (uploads) or as rendered (render results).

    The row is the truth: a file in the storage folders with no row is garbage from an
    interrupted upload or delete, and is swept. ``tenant`` is the API key that owns it
    (its id); no other key sees it. (No comment beside that field: tortoise turns comments
    into column comments, which its SQLite ADD COLUMN mangles.)"""

    id = fields.CharField(max_length=32, primary_key=True)
    tenant = fields.CharField(
        max_length=TENANT_MAX, default=OPEN_TENANT, db_default=OPEN_TENANT, db_index=True
    )
    name = fields.CharField(max_length=255, db_index=True)
    kind = fields.CharField(max_length=16, default="upload")  # "upload" | "render"
    #: Where the file is, relative to its storage folder.
    path = fields.CharField(max_length=255)
    format = fields.CharField(max_length=16)
    subtype = fields.CharField(max_length=32)
    decoder = fields.CharField(max_length=16)
    sample_rate = fields.IntField()
    channels = fields.IntField()
    frames = fields.BigIntField()
    size = fields.BigIntField()
    sha256 = fields.CharField(max_length=64)
    created = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "assets"


class AssetEvent(Model):
    """A log of asset additions and deletions, in commit order, so that every server
    process can bring its in-memory index up to date with one indexed query."""

    seq = fields.BigIntField(primary_key=True, generated=True)
    asset_id = fields.CharField(max_length=32)
    op = fields.CharField(max_length=8)  # "add" | "delete"

    class Meta:
        table = "asset_events"


class SavedChain(Model):
    """A chain saved through the API (chains from plugins.toml are not stored). Names
    are unique per tenant: two keys may each have a chain called "vocal"."""

    id = fields.IntField(primary_key=True)
    tenant = fields.CharField(max_length=TENANT_MAX, default=OPEN_TENANT)
    name = fields.CharField(max_length=64)
    description = fields.TextField(default="")
    steps = fields.JSONField()
    created = fields.DatetimeField(auto_now_add=True)
    updated = fields.DatetimeField(auto_now=True)
    max_latency_ms = fields.FloatField(null=True)

    class Meta:
        table = "saved_chains"
        unique_together = (("tenant", "name"),)


class Render(Model):
    """An offline render of an asset through a chain, run in the worker pool."""

    id = fields.CharField(max_length=32, primary_key=True)
    tenant = fields.CharField(
        max_length=TENANT_MAX, default=OPEN_TENANT, db_default=OPEN_TENANT, db_index=True
    )
    status = fields.CharField(max_length=16, db_index=True)  # queued | running | done | failed | cancelled
    progress = fields.FloatField(default=0.0)
    asset_id = fields.CharField(max_length=32)
    chain = fields.JSONField()  # {"name": ..., "steps": [...]}: what was rendered, in full
    output = fields.JSONField()  # {"format", "sample_rate", "subtype", "ceiling_dbfs"}
    tail = fields.BooleanField(default=True)
    result_asset_id = fields.CharField(max_length=32, null=True)
    # The output's sample peak (dBFS) and samples at or over full scale, once done.
    peak_dbfs = fields.FloatField(null=True)
    clipped_samples = fields.BigIntField(null=True)
    error = fields.TextField(null=True)
    #: Which process runs it, so a restart can tell an orphan from a live render.
    owner = fields.CharField(max_length=64)
    heartbeat = fields.DatetimeField(null=True)
    created = fields.DatetimeField(auto_now_add=True)
    started = fields.DatetimeField(null=True)
    finished = fields.DatetimeField(null=True)
    # The process (host:pid) that ran it last, how many times one started it, and (in the
    # postgres render queue) the id of its one procrastinate job.
    node = fields.CharField(max_length=128, null=True)
    attempts = fields.IntField(default=0, db_default=0)
    job_id = fields.BigIntField(null=True)
    # The chain as it ran, to reproduce it: each step's effect and its version, plugin and
    # plugin version, every parameter (see fxhost.catalog.recorded); null for renders made
    # before it was kept. cache_key: its hash with the input's content, for the render
    # cache; cached_from: the earlier render whose result this one reused.
    recorded = fields.JSONField(null=True)
    cache_key = fields.CharField(max_length=64, null=True, db_index=True)
    cached_from = fields.CharField(max_length=32, null=True)

    class Meta:
        table = "renders"


class ApiKey(Model):
    """An API key made by ``fxhost keys create``. Only its SHA-256 is stored: the key
    itself is shown once, when it is made. A revoked key stays, so that its id (the
    tenant of what it made) is never given out again."""

    id = fields.CharField(max_length=TENANT_MAX, primary_key=True)
    name = fields.CharField(max_length=64)
    sha256 = fields.CharField(max_length=64, unique=True)
    #: The first characters of the key, to recognise it in listings.
    prefix = fields.CharField(max_length=16)
    created = fields.DatetimeField(auto_now_add=True)
    revoked = fields.DatetimeField(null=True)

    class Meta:
        table = "api_keys"


class ServerSecret(Model):
    """A secret the server made for itself, once, and that every process sharing the
    database reads: the key that signs links (unless the link_secret setting gives one).
    The first process to insert a name wins; the others read its row."""

    name = fields.CharField(max_length=32, primary_key=True)
    value = fields.CharField(max_length=128)
    created = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "server_secrets"


class ClusterNode(Model):
    """A running server process (a worker of a node) that owns live streams: where its
    internal listener is, and when it last said it was alive. A process that stops
    cleanly deletes its row; a dead one's row is removed by any live process."""

    id = fields.CharField(max_length=128, primary_key=True)
    address = fields.CharField(max_length=255)
    heartbeat = fields.DatetimeField()
    started = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "cluster_nodes"


class ClusterStream(Model):
    """A live stream and the process that owns it (its rings and chain), so that any
    process can forward a client to the owner. ``info`` is the stream as created (JSON),
    for listings when its owner does not answer. ``lost`` says why a stream whose owner
    died is gone; such a row is kept a while so that clients are told, then purged."""

    id = fields.CharField(max_length=64, primary_key=True)
    tenant = fields.CharField(max_length=TENANT_MAX, db_index=True)
    node = fields.CharField(max_length=128, null=True, db_index=True)
    info = fields.TextField()
    created = fields.DatetimeField(auto_now_add=True)
    lost = fields.TextField(null=True)
    lost_at = fields.DatetimeField(null=True)

    class Meta:
        table = "cluster_streams"
