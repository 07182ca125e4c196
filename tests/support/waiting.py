"""Waiting on a condition, never on the clock: tests that must see a server reach a
state poll what a client can observe until it holds, with a generous deadline that
only a broken server reaches (a slow or busy machine just polls longer)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Long enough for any healthy server on a loaded machine; reached only when broken.
DEFAULT_TIMEOUT = 30.0


def wait_until(
    predicate: Callable[[], T],
    timeout: float = DEFAULT_TIMEOUT,
    *,
    interval: float = 0.02,
    what: str | None = None,
) -> T:
    """Call ``predicate`` until it returns something truthy, and return that.

    Raises AssertionError naming ``what`` (or the predicate) and its last value when
    ``timeout`` seconds pass first. ``interval`` is the pause between polls: a poll rate,
    not a guess at how long anything takes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            name = what or getattr(predicate, "__name__", repr(predicate))
            raise AssertionError(f"{name} did not hold within {timeout:g} s (last: {value!r})")
        time.sleep(interval)
