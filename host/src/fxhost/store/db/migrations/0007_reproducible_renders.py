"""Reproducible renders and latency budgets: the resolved chain a render ran (effect and
plugin versions, every parameter), its cache key (the input's content and that chain,
hashed) and the render whose result it reused; a saved chain's ``max_latency_ms``.
Null for rows made before."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("fxhost", "0006_render_queue")]

    initial = False

    operations = [
        ops.AddField(model_name="Render", name="recorded", field=fields.JSONField(null=True)),
        ops.AddField(
            model_name="Render", name="cache_key", field=fields.CharField(max_length=64, null=True, db_index=True)
        ),
        ops.AddField(model_name="Render", name="cached_from", field=fields.CharField(max_length=32, null=True)),
        ops.AddField(model_name="SavedChain", name="max_latency_ms", field=fields.FloatField(null=True)),
    ]
