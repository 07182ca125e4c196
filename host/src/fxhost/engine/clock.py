"""Points in time as the API sends them: aware UTC datetimes, which msgspec writes as
ISO-8601 (``2025-01-31T12:00:00.123456Z``) and declares ``format: date-time``. One alias
for every resource, so that no timestamp goes out as a Unix float."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import msgspec

Timestamp = Annotated[datetime, msgspec.Meta(tz=True, description="ISO-8601, UTC")]


def now() -> datetime:
    return datetime.now(UTC)
