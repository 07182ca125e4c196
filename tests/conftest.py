"""Settings for the whole suite.

Hypothesis: the property tests and state machines run the same examples on every run
(``derandomize``), with no per-example deadline (this machine is shared: a slow example
is not a bug; a hang is caught by pytest's timeout), and a failure prints the blob that
reproduces it (``@reproduce_failure``). ``HYPOTHESIS_PROFILE=dev`` draws random examples
instead, remembered in .hypothesis/, to explore beyond the fixed ones.

Both cores: ``uv run pytest`` runs the tests in one pytest-xdist worker per core, a whole
test module (or test class) to a worker at a time (``--dist loadscope``), so that a module's
server fixture starts once. Nothing the tests share needs more: every server gets a free
port and a fresh PostgreSQL database (``restkit.fresh_postgres``, named after the worker's
process), every Redis test a key prefix of its own, every test its own ``tmp_path``. ``-n
0`` runs everything in one process; ``-n 3`` (and any ``--dist``) are taken as given
(the defaults are in pyproject.toml's addopts)."""

import os
import sys

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True, database=None)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def moto_s3():
    """A real S3 API (moto's server mode) on a free port, for the whole run."""
    from s3kit import MotoS3

    server = MotoS3().start()
    yield server
    server.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, the scopes a worker takes are handed out in collection order: the modules
    with the most slow tests (minutes each, multi-process) first, so that neither worker
    starts one while the other is finishing, then the others, those with the most tests
    first. Within a module, the order is the file's. A single process keeps the file order."""
    if not hasattr(config, "workerinput"):
        return
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.rsplit("::", 1)[0], []).append(item)

    def weight(scope: list[pytest.Item]) -> tuple[int, int]:
        return (-sum(1 for item in scope if item.get_closest_marker("slow")), -len(scope))

    items[:] = [item for scope in sorted(modules.values(), key=weight) for item in scope]


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The PostgreSQL databases the tests made are dropped here, before an xdist worker is
    told to go (restkit.drop_databases)."""
    restkit = sys.modules.get("restkit")
    if restkit is not None:
        restkit.drop_databases()
