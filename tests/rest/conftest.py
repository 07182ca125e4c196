import pytest
from restkit import BACKENDS, fresh_postgres, start_server


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tmp_path_factory):
    """A real fxhost server for the test module, on SQLite and on PostgreSQL."""
    env = {}
    if request.param == "postgres":
        env["FXHOST_DATABASE_URL"] = fresh_postgres()
    srv = start_server(tmp_path_factory.mktemp(f"srv-{request.param}"), env)
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    with server.client() as c:
        yield c
