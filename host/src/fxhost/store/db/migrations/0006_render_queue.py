"""Renders on the render queue: which process (``host:pid``) ran a render last, how many
times one started it, and the id of its procrastinate job (``FXHOST_RENDER_QUEUE=postgres``).
Null and 0 for renders made before."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("fxhost", "0005_cluster_registry")]

    initial = False

    operations = [
        ops.AddField(model_name="Render", name="node", field=fields.CharField(null=True, max_length=128)),
        ops.AddField(model_name="Render", name="attempts", field=fields.IntField(default=0, db_default=0)),
        ops.AddField(model_name="Render", name="job_id", field=fields.BigIntField(null=True)),
    ]
