"""Secrets the server makes for itself: the key that signs links, made once by whichever
process starts first and read by every other process that shares the database."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("fxhost", "0002_api_keys_and_tenants")]

    initial = False

    operations = [
        ops.CreateModel(
            name="ServerSecret",
            fields=[
                ("name", fields.CharField(primary_key=True, unique=True, db_index=True, max_length=32)),
                ("value", fields.CharField(max_length=128)),
                ("created", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "server_secrets",
                "app": "fxhost",
                "pk_attr": "name",
                "table_description": "A secret the server made for itself, once, and that every process sharing the",
            },
            bases=["Model"],
        ),
    ]
