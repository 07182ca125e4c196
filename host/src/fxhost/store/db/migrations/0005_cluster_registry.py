"""The owner registry of live streams: the server processes (nodes and their workers)
with their internal address and heartbeat, and which process owns each stream, so that
any process can forward a stream's clients to its owner."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("fxhost", "0004_render_levels")]

    initial = False

    operations = [
        ops.CreateModel(
            name="ClusterNode",
            fields=[
                ("id", fields.CharField(primary_key=True, unique=True, db_index=True, max_length=128)),
                ("address", fields.CharField(max_length=255)),
                ("heartbeat", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("started", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "cluster_nodes",
                "app": "fxhost",
                "pk_attr": "id",
                "table_description": "A running server process (a worker of a node) that owns live streams: where its",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="ClusterStream",
            fields=[
                ("id", fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ("tenant", fields.CharField(db_index=True, max_length=32)),
                ("node", fields.CharField(null=True, db_index=True, max_length=128)),
                ("info", fields.TextField(unique=False)),
                ("created", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("lost", fields.TextField(null=True, unique=False)),
                ("lost_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "cluster_streams",
                "app": "fxhost",
                "pk_attr": "id",
                "table_description": "A live stream and the process that owns it (its rings and chain), so that any",
            },
            bases=["Model"],
        ),
    ]
