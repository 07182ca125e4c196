"""Running uv as a plugin author types it, from the tests (tests/cli/test_new_plugin.py,
tests/sdk/test_sdk_wheel.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from procenv import child_env

#: uv's answer when offline and a package is not in its cache
NOT_CACHED = "because the network was disabled"


def uv_env(**extra: str) -> dict[str, str]:
    """A user's environment: not inside this test run's venv or its interpreter choice,
    without this run's coverage hooks (a child's coverage would land in this run's data)."""
    env = child_env({"UV_NO_PROGRESS": "1", **extra})
    for name in [
        n for n in env if n.startswith(("COV_CORE_", "VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "UV_PYTHON"))
    ]:
        del env[name]
    return env


def run(*command: str | Path, cwd: Path, **extra: str) -> subprocess.CompletedProcess:
    """Run ``command`` (uv, or a program it installed) and check it succeeded. uv runs
    offline first, from the cache the workspace's ``uv sync`` and ``uv lock`` filled (a
    whole host environment is hard-linked in about a second); only a package missing
    from the cache sends it to the index."""
    args = [str(c) for c in command]
    result = subprocess.run(
        args, cwd=cwd, env=uv_env(UV_OFFLINE="1", **extra), capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0 and NOT_CACHED in result.stderr:
        result = subprocess.run(
            args, cwd=cwd, env=uv_env(**extra), capture_output=True, text=True, timeout=300
        )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result
