"""Cancel in the local render queue (the default): a running render's worker process is
killed and the render marked ``cancelled``, a queued one never starts, and the pool carries
on; bad input to cancel is refused with problem+json. And the render queue's settings are
checked at start-up, naming the setting at fault."""

from __future__ import annotations

import time

import pytest
from clitools import run_fxhost
from queuekit import BROKEN_TOML, DELAY, finished, noise, running, slow, submit, upload, view
from restkit import BACKENDS, PG_URL, fresh_postgres, start_server


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"cancel-{request.param}")
    (root / "plugins.toml").write_text(BROKEN_TOML)
    env = {"FXHOST_PLUGINS_CONFIG": str(root / "plugins.toml"), "FXHOST_RENDER_WORKERS": "1"}
    if request.param == "postgres":
        env["FXHOST_DATABASE_URL"] = fresh_postgres()
    srv = start_server(root, env)
    yield srv
    srv.stop()


def test_cancel_a_running_and_a_queued_render(server):
    with server.client() as client:
        long = upload(client, noise(4.0, 1), "long.wav")
        short = upload(client, noise(0.5, 2), "short.wav")
        assets_before = {a["id"] for a in client.get("/api/assets").json()["items"]}
        busy = submit(client, long, [slow(1.0)], tail=False)
        assert running(client, busy)["attempts"] == 1
        waiting = submit(client, short, [DELAY])  # one worker, taken: queued
        assert view(client, waiting)["status"] == "queued"

        r = client.post(f"/api/renders/{waiting}/cancel")
        assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
        r = client.post(f"/api/renders/{busy}/cancel")
        cancelled_at = time.monotonic()
        assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
        assert r.json()["error"] == "cancelled by request"

        after = finished(client, submit(client, short, [DELAY]))
        print(f"the next render was done {time.monotonic() - cancelled_at:.2f} s after the cancel")
        assert after["status"] == "done", after
        for render_id in (busy, waiting):
            body = view(client, render_id)
            assert body["status"] == "cancelled" and body["result"] is None, body
        assets = {a["id"] for a in client.get("/api/assets").json()["items"]}
        assert assets - assets_before == {after["result"]["id"]}
        stats = client.get("/api/audio/statistics").json()["renders"]
        assert stats["cancelled"] == 2 and stats["running"] == 0 and stats["queued"] == 0, stats


@pytest.mark.parametrize(("ref", "status"), [("0" * 32, 404), ("not-an-id", 404)])
def test_cancel_of_no_render_is_404(server, ref, status):
    with server.client() as client:
        r = client.post(f"/api/renders/{ref}/cancel")
        assert r.status_code == status, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert ref in r.json()["detail"]


def test_cancel_of_a_finished_render_is_409(server):
    with server.client() as client:
        body = finished(client, submit(client, upload(client, noise(0.2, 5), "s.wav"), [DELAY]))
        assert body["status"] == "done"
        r = client.post(f"/api/renders/{body['id']}/cancel")
        assert r.status_code == 409, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert f"render {body['id']} is done" in r.json()["detail"]
        assert view(client, body["id"])["status"] == "done"  # unchanged


def test_the_postgres_queue_needs_a_postgres_database(tmp_path):
    env = {"FXHOST_RENDER_QUEUE": "postgres", "FXHOST_DATABASE_URL": f"sqlite://{tmp_path / 'x.db'}"}
    for command in ("serve", "worker"):
        result = run_fxhost(command, cwd=tmp_path, env=env)
        assert result.returncode == 1, result.stderr
        assert "FXHOST_RENDER_QUEUE" in result.stderr and "FXHOST_DATABASE_URL" in result.stderr
        assert "not sqlite://" in result.stderr and "Traceback" not in result.stderr


def test_a_render_node_needs_the_postgres_queue(tmp_path):
    env = {"FXHOST_DATABASE_URL": PG_URL or "postgres://nobody@127.0.0.1:1/none"}
    result = run_fxhost("worker", cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stderr
    assert "FXHOST_RENDER_QUEUE is 'local'" in result.stderr and "Traceback" not in result.stderr
