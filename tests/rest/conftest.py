import pytest
from restkit import BACKENDS, serve_backend


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tmp_path_factory):
    """A real fxhost server for the test module, on SQLite and on PostgreSQL."""
    yield from serve_backend(request, tmp_path_factory)


@pytest.fixture
def client(server):
    with server.client() as c:
        yield c
