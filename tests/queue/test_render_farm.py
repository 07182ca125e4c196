"""The postgres render queue as a farm: one API process and ``fxhost worker`` render nodes,
each its own process with its own working folders, sharing only a fresh PostgreSQL
database and an S3 bucket (moto's server; :mod:`queuekit`). The API process, its
database and bucket serve the whole module (an API start is the dearest part); each
test starts the render nodes it needs and stops them, and looks only at its own renders.

- renders spread over both nodes, every output equal sample for sample to the same render
  made in this process with the engine; progress reaches a client of the API process;
  the nodes fetched their inputs from the bucket and uploaded the results to it, leaving
  nothing in their own folders;
- a node killed with SIGKILL mid-render: the job runs again on another (attempts 2);
  killed again once the attempts are spent, it fails saying why;
- cancel of a queued and of a running render: ``cancelled`` at once, the node stops it
  and carries on with the next;
- a node with another plugin set refuses, naming the difference;
- a render row left without a job (the API died between the row and the job) is queued
  by a node's sweep, and has exactly one job.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from fxhost.engine.compiled import CompiledChain
from fxhost.engine.offline import render_blocks
from fxhost_feedback_delay import FeedbackDelay
from queuekit import (
    BROKEN_TOML,
    DELAY,
    SR,
    Farm,
    finished,
    node_id,
    noise,
    query,
    running,
    slow,
    start_farm,
    submit,
    upload,
    view,
)
from restkit import PG_URL, REPO, decode
from s3kit import objects
from waiting import wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not PG_URL, reason="FXHOST_TEST_DATABASE_URL is not set (.ci/run sets it to the local PostgreSQL)"
    ),
]

RENDERS = 20


@pytest.fixture(scope="module")
def farm(tmp_path_factory, moto_s3):
    """The API process (with the broken effects, for a slow render), no node yet."""
    farm = start_farm(tmp_path_factory.mktemp("farm"), moto_s3, plugins_toml=BROKEN_TOML)
    yield farm
    farm.stop()


@pytest.fixture
def nodeless(farm):
    """The farm, its render nodes stopped after the test."""
    yield farm
    farm.stop_nodes()


class _Step:
    def __init__(self, params: dict):
        self.cls = FeedbackDelay
        self.params = FeedbackDelay.check_params(params)


def delayed(audio: np.ndarray) -> np.ndarray:
    """DELAY's render of ``audio`` with its tail, made here by the engine itself."""
    chain = CompiledChain([_Step(DELAY["params"])], SR, audio.shape[0])
    return np.concatenate(list(render_blocks(chain, [audio], tail_frames=chain.tail_frames(30.0))), axis=1)


def result_audio(client: httpx.Client, body: dict) -> np.ndarray:
    audio, rate = decode(client.get(f"/api/assets/{body['result']['id']}/audio").content)
    assert rate == SR
    return audio


@pytest.fixture(scope="class")
def two(farm):
    """Two render nodes with the server's plugins, for TestTwoNodes (which leaves them running)."""
    farm.start_nodes("pair-a", "pair-b")
    yield farm
    farm.stop_nodes()


class TestTwoNodes:
    def test_renders_spread_over_two_nodes_and_match_a_local_render(self, two: Farm, moto_s3):
        farm = two
        with farm.api.client() as client:
            inputs = [noise(0.5, seed) for seed in range(RENDERS)]
            assets = [upload(client, audio, f"n{seed}.wav") for seed, audio in enumerate(inputs)]
            began = time.monotonic()
            ids = [submit(client, asset, [DELAY]) for asset in assets]
            # The first render's progress, through the API process, from whichever node runs it.
            with client.stream("GET", f"/api/renders/{ids[0]}/events") as events:
                kinds = [line.split(": ", 1)[1] for line in events.iter_lines() if line.startswith("event:")]
            assert kinds[-1] == "done", kinds
            bodies = [finished(client, render_id) for render_id in ids]
            wall = time.monotonic() - began
            assert [b["status"] for b in bodies] == ["done"] * RENDERS, [b["error"] for b in bodies]
            nodes = {b["node"] for b in bodies}
            assert nodes == {node_id(node) for node in farm.nodes}, nodes
            assert {b["attempts"] for b in bodies} == {1}
            for audio, body in zip(inputs, bodies, strict=True):
                np.testing.assert_array_equal(result_audio(client, body), delayed(audio))
            print(f"{RENDERS} renders on 2 nodes in {wall:.2f} s")
            # One job each, finished (procrastinate deletes the jobs that succeeded).
            jobs = query(
                farm.database,
                "SELECT count(*) AS n FROM procrastinate_jobs WHERE status <> 'succeeded' AND lock = ANY($1)",
                ids,
            )
            assert jobs == [{"n": 0}]
        # The results are objects in the bucket; the nodes kept nothing of their own: the
        # inputs fetched to scratch and the rendered files were removed once uploaded.
        stored = objects(moto_s3.client(), farm.env, "renders")
        assert {b["result"]["id"] for b in bodies} <= set(stored), sorted(stored)
        for node in farm.nodes:
            left = sorted(p.relative_to(node.root) for p in node.root.rglob("*") if p.is_file())
            assert left == [Path("node.log"), Path("plugins.toml")], left

    def test_a_render_left_without_a_job_is_queued_by_the_sweep_once(self, two: Farm):
        farm = two
        with farm.api.client() as client:
            audio = noise(0.5, 4)
            asset = upload(client, audio, "a.wav")
            done = finished(client, submit(client, asset, [DELAY]))
            assert done["status"] == "done"
            # What an API process killed between the row and its job leaves: a queued row
            # with no job, made a while ago.
            orphan = "f" * 32
            query(
                farm.database,
                "INSERT INTO renders (id, tenant, status, progress, asset_id, chain, output, tail, owner,"
                " created, attempts) SELECT $1, tenant, 'queued', 0, asset_id, chain, output, tail,"
                " 'render-queue', now() - interval '1 minute', 0 FROM renders WHERE id = $2",
                orphan,
                done["id"],
            )
            body = finished(client, orphan)
            assert body["status"] == "done" and body["attempts"] == 1, body
            np.testing.assert_array_equal(result_audio(client, body), result_audio(client, done))
            # One job for it, ever: the sweep's (kept in the row).
            jobs = query(farm.database, "SELECT id FROM procrastinate_jobs WHERE lock = $1", orphan)
            row = query(farm.database, "SELECT job_id FROM renders WHERE id = $1", orphan)
            assert len(jobs) <= 1 and row[0]["job_id"] is not None
            wait_until(
                lambda: any("no live job" in node.text() for node in farm.nodes), what="the sweep's log line"
            )


def test_a_node_with_another_plugin_set_refuses(nodeless: Farm):
    farm = nodeless
    # This node loads the repository's plugins.toml: no broken_effects module.
    farm.start_node("other", FXHOST_PLUGINS_CONFIG=str(REPO / "plugins.toml"))
    with farm.api.client() as client:
        asset = upload(client, noise(0.5, 3), "a.wav")
        body = finished(client, submit(client, asset, [DELAY]))
        assert body["status"] == "failed", body
        assert "plugins differ" in body["error"] and "broken_effects" in body["error"], body
        assert "missing" in body["error"] and body["result"] is None


def test_a_node_killed_mid_render_hands_it_on_until_its_attempts_are_spent(nodeless: Farm):
    farm = nodeless
    first = farm.start_node("kill-a")
    with farm.api.client() as client:
        audio = noise(1.0, 7)
        asset = upload(client, audio, "slow.wav")
        render_id = submit(client, asset, [slow(0.4)], tail=False)
        assert running(client, render_id)["node"] == node_id(first)
        first.kill()
        second = farm.start_node("kill-b")
        body = finished(client, render_id)
        assert body["status"] == "done", body
        assert body["node"] == node_id(second) and body["attempts"] == 2, body
        np.testing.assert_array_equal(result_audio(client, body), audio)

        # Killed again where a node allows one attempt: the render fails, saying why.
        render_id = submit(client, asset, [slow(0.4)], tail=False)
        assert running(client, render_id)["node"] == node_id(second)
        second.kill()
        farm.start_node("kill-c", FXHOST_RENDER_ATTEMPTS="1")
        body = finished(client, render_id)
        assert body["status"] == "failed" and body["attempts"] == 1, body
        assert "gave up after 1 attempt" in body["error"] and node_id(second) in body["error"], body
        assert body["result"] is None


def test_cancel_stops_a_queued_and_a_running_render_and_the_node_carries_on(nodeless: Farm):
    farm = nodeless
    node = farm.start_node("cancel", FXHOST_RENDER_WORKERS="1")
    with farm.api.client() as client:
        long = upload(client, noise(4.0, 1), "long.wav")
        short = upload(client, noise(0.5, 2), "short.wav")
        assets_before = {a["id"] for a in client.get("/api/assets", params={"limit": 1000}).json()["items"]}
        busy = submit(client, long, [slow(1.0)], tail=False)
        running(client, busy)
        waiting = submit(client, short, [DELAY])  # the node's one slot is taken: queued
        assert view(client, waiting)["status"] == "queued"

        r = client.post(f"/api/renders/{waiting}/cancel")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "cancelled" and r.json()["node"] is None

        with client.stream("GET", f"/api/renders/{busy}/events") as events:
            r = client.post(f"/api/renders/{busy}/cancel")
            cancelled_at = time.monotonic()
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "cancelled", r.json()
            last = None
            for line in events.iter_lines():
                if line.startswith("event:"):
                    last = line.split(": ", 1)[1]
                if line.startswith("data:") and last == "cancelled":
                    assert json.loads(line[5:])["status"] == "cancelled"
                    break
        assert last == "cancelled"

        # The node stopped it (its worker process killed) and takes the next render.
        after = submit(client, short, [DELAY])
        body = finished(client, after)
        freed = time.monotonic() - cancelled_at
        assert body["status"] == "done" and body["node"] == node_id(node), body
        print(f"the next render was done {freed:.2f} s after the cancel")
        assert "render workers ready" in node.text()
        # Neither cancelled render left a result, and neither row was overwritten.
        assert view(client, busy)["status"] == "cancelled" and view(client, busy)["result"] is None
        assert view(client, waiting)["status"] == "cancelled"
        assets = {a["id"] for a in client.get("/api/assets", params={"limit": 1000}).json()["items"]}
        assert assets - assets_before == {body["result"]["id"]}
        # The cancelled render's job was aborted by the node, the waiting one's cancelled.
        statuses = {
            row["lock"]: row["status"]
            for row in query(
                farm.database,
                "SELECT lock, status::text FROM procrastinate_jobs WHERE lock = ANY($1)",
                [busy, waiting],
            )
        }
        assert statuses.get(busy) == "aborted" and statuses.get(waiting) == "cancelled", statuses
        # Bad input: an unknown render, a finished one.
        for bad, status in ((f"{'0' * 32}", 404), ("nope", 404), (after, 409), (busy, 409)):
            r = client.post(f"/api/renders/{bad}/cancel")
            assert r.status_code == status, r.text
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["status"] == status
        assert "is done" in client.post(f"/api/renders/{after}/cancel").json()["detail"]
