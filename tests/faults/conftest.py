"""A real server that loads the deliberately broken effects (tests/support/broken_effects.py)
the way an operator loads a third party's module: named in plugins.toml. Time limits are
short so that hung effects are stopped quickly.

``patient_server`` is the same with a render time limit of an hour, for showing that a
hung task holds no one else up without racing its limit (a bystander on a slow machine
would otherwise have to finish inside the 2 s)."""

import pytest
from faultkit import BLOCK_LIMIT, HANG_MARKS, PATIENT_LIMIT, PLUGINS_TOML, RENDER_LIMIT
from restkit import PG_URL, fresh_postgres, kill_tree, start_server


def broken_server(root, render_limit: float, workers: int):
    (root / "plugins.toml").write_text(PLUGINS_TOML)
    (root / "hangs").mkdir()
    env = {
        "FXHOST_PLUGINS_CONFIG": str(root / "plugins.toml"),
        "FXHOST_RENDER_TIMEOUT_SECONDS": str(render_limit),
        "FXHOST_BLOCK_TIMEOUT_SECONDS": str(BLOCK_LIMIT),
        "FXHOST_RENDER_WORKERS": str(workers),
        HANG_MARKS: str(root / "hangs"),
    }
    if PG_URL:
        env["FXHOST_DATABASE_URL"] = fresh_postgres()
    return start_server(root, env)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = broken_server(tmp_path_factory.mktemp("faults"), RENDER_LIMIT, workers=2)
    yield srv
    srv.stop()


@pytest.fixture
def patient_server(tmp_path):
    """Three workers, an hour's limit. Its hung tasks end only with the server, killed
    with all its processes (a graceful stop would wait for them)."""
    srv = broken_server(tmp_path, PATIENT_LIMIT, workers=3)
    yield srv
    if srv.proc.poll() is None:
        kill_tree(srv)


@pytest.fixture
def client(server):
    with server.client() as c:
        yield c
