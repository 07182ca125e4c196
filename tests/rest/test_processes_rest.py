"""Several server processes over one database and one data folder, and restarts:
an asset uploaded through one process is listed by another, and a render cut off by a
crash is marked failed when the server starts again, with no file left behind."""

import signal

import pytest
from restkit import BACKENDS, fresh_postgres, start_server, tone
from test_renders_rest import upload
from waiting import wait_until


def env_for(backend: str, root) -> dict[str, str]:
    if backend == "postgres":
        return {"FXHOST_DATABASE_URL": fresh_postgres()}
    return {"FXHOST_DATABASE_URL": f"sqlite://{root / 'shared.db'}"}


def names(client, prefix=""):
    return [
        a["name"] for a in client.get("/api/assets", params={"prefix": prefix, "limit": 1000}).json()["items"]
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_index_is_shared_between_processes(tmp_path, backend):
    env = env_for(backend, tmp_path)
    first = start_server(tmp_path, env)
    second = start_server(tmp_path, env)
    try:
        with first.client() as a, second.client() as b:
            assert names(b) == []  # b has built its index, before a uploads anything
            asset = upload(a, tone(0.1), "from-a.wav")
            assert names(b) == ["from-a.wav"]
            assert b.get(f"/api/assets/{asset['id']}/audio").status_code == 200
            upload(b, tone(0.1), "from-b.wav")
            assert names(a) == ["from-a.wav", "from-b.wav"]
            assert b.delete(f"/api/assets/{asset['id']}").status_code == 204
            assert names(a) == ["from-b.wav"]
    finally:
        first.stop()
        second.stop()


@pytest.mark.parametrize("backend", BACKENDS)
def test_render_cut_off_by_a_crash_is_marked_failed(tmp_path, backend):
    server = start_server(tmp_path, env_for(backend, tmp_path))
    try:
        with server.client() as client:
            asset = upload(client, tone(300.0, sample_rate=48000), "long.wav", sample_rate=48000)
            render = client.post("/api/renders", json={"asset": asset["id"], "chain": "ambient"}).json()
            # Killed once it has written part of its output (progress is reported as it goes).
            view = wait_until(
                lambda: (v := client.get(f"/api/renders/{render['id']}").json())["progress"] and v
            )
            assert view["status"] == "running" and 0 < view["progress"] < 1, view
        server.stop(signal.SIGKILL)
        server = server.restart()
        with server.client() as client:
            after = client.get(f"/api/renders/{render['id']}").json()
            assert after["status"] == "failed" and "interrupted" in after["error"]
            assert after["result"] is None
            assert [a["name"] for a in client.get("/api/assets").json()["items"]] == ["long.wav"]
        leftovers = [p.name for d in ("uploads", "renders") for p in (tmp_path / d).iterdir()]
        assert leftovers == [asset["id"]], leftovers  # the partial render output is gone
    finally:
        server.stop()
