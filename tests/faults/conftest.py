"""A real server that loads the deliberately broken effects (tests/support/broken_effects.py)
the way an operator loads a third party's module: named in plugins.toml. Time limits are
short so that hung effects are stopped quickly."""

import pytest
from faultkit import BLOCK_LIMIT, PLUGINS_TOML, RENDER_LIMIT
from restkit import PG_URL, fresh_postgres, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    (root / "plugins.toml").write_text(PLUGINS_TOML)
    env = {
        "FXHOST_PLUGINS_CONFIG": str(root / "plugins.toml"),
        "FXHOST_RENDER_TIMEOUT_SECONDS": str(RENDER_LIMIT),
        "FXHOST_BLOCK_TIMEOUT_SECONDS": str(BLOCK_LIMIT),
        "FXHOST_RENDER_WORKERS": "2",
    }
    if PG_URL:
        env["FXHOST_DATABASE_URL"] = fresh_postgres()
    srv = start_server(root, env)
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    with server.client() as c:
        yield c
