from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise import fields


class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name="Asset",
            fields=[
                ("id", fields.CharField(primary_key=True, unique=True, db_index=True, max_length=32)),
                ("name", fields.CharField(db_index=True, max_length=255)),
                ("kind", fields.CharField(default="upload", max_length=16)),
                (
                    "path",
                    fields.CharField(
                        description="Where the file is, relative to its storage folder.", max_length=255
                    ),
                ),
                ("format", fields.CharField(max_length=16)),
                ("subtype", fields.CharField(max_length=32)),
                ("decoder", fields.CharField(max_length=16)),
                ("sample_rate", fields.IntField()),
                ("channels", fields.IntField()),
                ("frames", fields.BigIntField()),
                ("size", fields.BigIntField()),
                ("sha256", fields.CharField(max_length=64)),
                ("created", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "assets",
                "app": "fxhost",
                "pk_attr": "id",
                "table_description": "An audio file stored as received (uploads) or as rendered (render results).",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="AssetEvent",
            fields=[
                ("seq", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("asset_id", fields.CharField(max_length=32)),
                ("op", fields.CharField(max_length=8)),
            ],
            options={
                "table": "asset_events",
                "app": "fxhost",
                "pk_attr": "seq",
                "table_description": "A log of asset additions and deletions, in commit order, so that every server",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Render",
            fields=[
                ("id", fields.CharField(primary_key=True, unique=True, db_index=True, max_length=32)),
                ("status", fields.CharField(db_index=True, max_length=16)),
                ("progress", fields.FloatField(default=0.0)),
                ("asset_id", fields.CharField(max_length=32)),
                (
                    "chain",
                    fields.JSONField(encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads),
                ),
                (
                    "output",
                    fields.JSONField(encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads),
                ),
                ("tail", fields.BooleanField(default=True)),
                ("result_asset_id", fields.CharField(null=True, max_length=32)),
                ("error", fields.TextField(null=True, unique=False)),
                (
                    "owner",
                    fields.CharField(
                        description="Which process runs it, so a restart can tell an orphan from a live render.",
                        max_length=64,
                    ),
                ),
                ("heartbeat", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("created", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("started", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("finished", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "renders",
                "app": "fxhost",
                "pk_attr": "id",
                "table_description": "An offline render of an asset through a chain, run in the worker pool.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="SavedChain",
            fields=[
                ("name", fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ("description", fields.TextField(default="", unique=False)),
                (
                    "steps",
                    fields.JSONField(encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads),
                ),
                ("created", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("updated", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={
                "table": "chains",
                "app": "fxhost",
                "pk_attr": "name",
                "table_description": "A chain saved through the API (chains from plugins.toml are not stored).",
            },
            bases=["Model"],
        ),
    ]
