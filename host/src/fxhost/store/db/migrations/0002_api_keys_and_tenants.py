"""API keys, and a tenant on everything a key can own.

Saved chains move to a new table keyed by (tenant, name): two keys may each have a
chain called "vocal". Rows made before keys existed belong to the open tenant ("")."""

import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("fxhost", "0001_initial")]

    initial = False

    operations = [
        ops.CreateModel(
            name="ApiKey",
            fields=[
                ("id", fields.CharField(primary_key=True, unique=True, db_index=True, max_length=32)),
                ("name", fields.CharField(max_length=64)),
                ("sha256", fields.CharField(unique=True, max_length=64)),
                (
                    "prefix",
                    fields.CharField(
                        description="The first characters of the key, to recognise it in listings.",
                        max_length=16,
                    ),
                ),
                ("created", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("revoked", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "api_keys",
                "app": "fxhost",
                "pk_attr": "id",
                "table_description": "An API key made by ``fxhost keys create``. Only its SHA-256 is stored: the key",
            },
            bases=["Model"],
        ),
        ops.AddField(
            model_name="Asset",
            name="tenant",
            field=fields.CharField(default="", db_default="", db_index=True, max_length=32),
        ),
        ops.AddField(
            model_name="Render",
            name="tenant",
            field=fields.CharField(default="", db_default="", db_index=True, max_length=32),
        ),
        # The old table keeps its name under another model name until its rows are copied.
        ops.RenameModel(old_name="SavedChain", new_name="LegacyChain"),
        ops.CreateModel(
            name="SavedChain",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("tenant", fields.CharField(default="", max_length=32)),
                ("name", fields.CharField(max_length=64)),
                ("description", fields.TextField(default="", unique=False)),
                (
                    "steps",
                    fields.JSONField(encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads),
                ),
                ("created", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("updated", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={
                "table": "saved_chains",
                "app": "fxhost",
                "unique_together": (("tenant", "name"),),
                "pk_attr": "id",
                "table_description": "A chain saved through the API (chains from plugins.toml are not stored). Names",
            },
            bases=["Model"],
        ),
        ops.RunSQL(
            "INSERT INTO saved_chains (tenant, name, description, steps, created, updated) "
            "SELECT '', name, description, steps, created, updated FROM chains"
        ),
        ops.DeleteModel(name="LegacyChain"),
    ]
