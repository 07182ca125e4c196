"""Database access: tortoise-orm set-up and migrations. SQLite by default, PostgreSQL
through the same ``database_url`` setting."""

from __future__ import annotations

import logging
from typing import Any

from tortoise import Tortoise
from tortoise.context import TortoiseContext
from tortoise.migrations.api import migrate

APP = "fxhost"

log = logging.getLogger(__name__)


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
    """Apply pending migrations (a no-op when there are none), in a tortoise context of
    their own whose connections close when done, and say which were applied."""
    async with TortoiseContext():
        if not await _migrate(database_url):
            log.info("database: the schema is up to date")


async def open_database(database_url: str) -> None:
    """Apply pending migrations, then open the connections.

    One tortoise context for both: ``Tortoise.init`` re-initialises the context the
    migrations used, closing their connections, so nothing is "shut down" before the
    server has started (``serve`` migrates first, and this finds nothing to do)."""
    await _migrate(database_url)
    # The global fallback lets request tasks use the connections opened in the
    # lifespan task (tortoise keeps them in a context variable otherwise).
    await Tortoise.init(config=tortoise_config(database_url), _enable_global_fallback=True)


async def close_database() -> None:
    await Tortoise.close_connections()


async def _migrate(database_url: str) -> list[str]:
    applied: list[str] = []

    def progress(event: str, app: str, name: str) -> None:
        if event == "apply_done":
            applied.append(f"{app}.{name}")

    await migrate(config=tortoise_config(database_url), progress=progress)
    if applied:
        log.info("database: applied %s", ", ".join(applied))
    return applied
