import pytest
from restkit import start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("live"), {"FXHOST_MAX_FRAME_BYTES": "262144"})
    yield srv
    srv.stop()
