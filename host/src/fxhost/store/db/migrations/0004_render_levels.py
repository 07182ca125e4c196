"""A render's output levels: its sample peak (dBFS) and how many samples reached full
scale. Null for renders made before they were measured, and until a render is done."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("fxhost", "0003_server_secret")]

    initial = False

    operations = [
        ops.AddField(model_name="Render", name="peak_dbfs", field=fields.FloatField(null=True)),
        ops.AddField(model_name="Render", name="clipped_samples", field=fields.BigIntField(null=True)),
    ]
