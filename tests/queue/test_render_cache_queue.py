"""The render cache in the postgres render queue: an API process with FXHOST_RENDER_CACHE
and a render node (queuekit's farm). A render runs on the node and records its chain; the
same render again is answered by the API process from the first one's result, with no
job queued; a render whose twin has not finished yet is rendered, not reused."""

from __future__ import annotations

import numpy as np
import pytest
from queuekit import (
    BROKEN_TOML,
    DELAY,
    SR,
    finished,
    node_id,
    noise,
    query,
    slow,
    start_farm,
    submit,
    upload,
    view,
)
from restkit import PG_URL, decode

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not PG_URL, reason="FXHOST_TEST_DATABASE_URL is not set (.ci/run sets it to the local PostgreSQL)"
    ),
]


@pytest.fixture(scope="module")
def farm(tmp_path_factory, moto_s3):
    farm = start_farm(
        tmp_path_factory.mktemp("cache-farm"), moto_s3, plugins_toml=BROKEN_TOML, FXHOST_RENDER_CACHE="true"
    )
    farm.start_node("node")
    yield farm
    farm.stop()


def test_a_repeated_render_reuses_the_nodes_result_without_a_job(farm):
    with farm.api.client() as client:
        asset = upload(client, noise(0.5, 11), "cached.wav")
        first = finished(client, submit(client, asset, [DELAY]))
        assert first["status"] == "done" and first["node"] == node_id(farm.nodes[0])
        assert first["cached_from"] is None and first["recorded"]["steps"][0]["effect"] == "feedback_delay"
        second = view(client, submit(client, asset, [DELAY]))
        # Answered at once by the API process: done, the first result, no job.
        assert second["status"] == "done" and second["cached_from"] == first["id"]
        assert second["result"]["id"] == first["result"]["id"] and second["attempts"] == 0
        [row] = query(farm.database, "SELECT job_id FROM renders WHERE id = $1", second["id"])
        assert row["job_id"] is None
        audio, rate = decode(client.get(f"/api/assets/{second['result']['id']}/audio").content)
        assert rate == SR and np.isfinite(audio).all() and audio.shape[0] == 2


def test_a_twin_still_running_is_not_reused(farm):
    with farm.api.client() as client:
        asset = upload(client, noise(0.5, 12), "twins.wav")
        chain = [slow(0.05), DELAY]
        first_id = submit(client, asset, chain)
        second = finished(client, submit(client, asset, chain))
        first = finished(client, first_id)
        # Both rendered on the node: the second was accepted while the first was not done.
        assert (first["status"], second["status"]) == ("done", "done")
        assert first["cached_from"] is None and second["cached_from"] is None
        assert first["result"]["id"] != second["result"]["id"]
        third = view(client, submit(client, asset, chain))
        assert third["status"] == "done" and third["cached_from"] in (first["id"], second["id"])
