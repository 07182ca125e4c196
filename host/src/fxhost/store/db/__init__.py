"""Database access: tortoise-orm set-up and migrations. SQLite by default, PostgreSQL
through the same ``database_url`` setting."""

from __future__ import annotations

from typing import Any

from tortoise import Tortoise
from tortoise.migrations.api import migrate

APP = "fxhost"


def tortoise_config(database_url: str) -> dict[str, Any]:
    return {
        "connections": {"default": database_url},
        "apps": {
            APP: {
                "models": ["fxhost.store.db.models"],
                "default_connection": "default",
                "migrations": "fxhost.store.db.migrations",
            }
        },
        "use_tz": True,
    }


#: For the ``tortoise`` CLI (``tortoise -c fxhost.store.db.TORTOISE_ORM makemigrations``).
TORTOISE_ORM = tortoise_config("sqlite://fxhost.db")


async def migrate_database(database_url: str) -> None:
    """Apply pending migrations (a no-op when there are none)."""
    await migrate(config=tortoise_config(database_url))
    await Tortoise.close_connections()


async def open_database(database_url: str) -> None:
    """Apply pending migrations, then open the connections."""
    await migrate_database(database_url)
    # The global fallback lets request tasks use the connections opened in the
    # lifespan task (tortoise keeps them in a context variable otherwise).
    await Tortoise.init(config=tortoise_config(database_url), _enable_global_fallback=True)


async def close_database() -> None:
    await Tortoise.close_connections()
