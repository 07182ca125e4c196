"""The environment of the fxhost processes the tests start (``fxhost serve``, ``fxhost
render``...): the test run's own, with Python's bytecode cached.

The suite starts about fifty servers and more CLI runs. Where the environment sets
``PYTHONDONTWRITEBYTECODE`` (as this machine's does, to keep ``__pycache__`` folders out
of the source tree), every one of them compiled every module it imported, about a second
per start-up. Children write their bytecode under one cache folder instead
(``PYTHONPYCACHEPREFIX``, outside the source tree, ignored by git), so only the first
compiles; the tests themselves are unchanged."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: Where the children's bytecode goes, unless the environment names a place.
PYCACHE = REPO / ".pytest_cache" / "pycache"


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """``os.environ`` plus ``extra``, for an fxhost process the tests start."""
    env = {**os.environ, **(extra or {})}
    if "PYTHONPYCACHEPREFIX" not in env:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env
