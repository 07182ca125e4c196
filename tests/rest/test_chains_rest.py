"""Chains over REST: plugins.toml's are read-only, saved ones are validated as the file is."""

import pytest

STEPS = [{"effect": "reverb", "params": {"room_size": 0.3}}, {"effect": "feedback_delay"}]


def test_lists_config_chains(client):
    chains = {c["name"]: c for c in client.get("/api/chains").json()}
    assert chains["hall"]["source"] == "config"
    assert client.get("/api/chains/hall").json()["steps"][0]["params"]["room_size"] == 0.9


def test_create_get_replace_delete(client):
    created = client.post("/api/chains", json={"name": "my-room", "steps": STEPS, "description": "d"})
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/api/chains/my-room"
    chain = created.json()
    assert chain["source"] == "api" and chain["steps"][0]["params"]["damping"] == 0.5  # defaults filled in
    assert client.get("/api/chains/my-room").json() == chain
    assert client.post("/api/chains", json={"name": "my-room", "steps": STEPS}).status_code == 409
    replaced = client.put("/api/chains/my-room", json={"steps": STEPS[:1]})
    assert replaced.status_code == 200 and len(replaced.json()["steps"]) == 1
    assert "my-room" in {c["name"] for c in client.get("/api/chains").json()}
    assert client.delete("/api/chains/my-room").status_code == 204
    assert client.get("/api/chains/my-room").status_code == 404
    assert client.delete("/api/chains/my-room").status_code == 404
    assert client.put("/api/chains/new-one", json={"steps": STEPS}).status_code == 201
    client.delete("/api/chains/new-one")


@pytest.mark.parametrize(
    "body, path, words",
    [
        (
            {"name": "x", "steps": [{"effect": "reverb", "params": {"room_size": 2}}]},
            "steps[0].params.room_size",
            "<= 1.0",
        ),
        ({"name": "x", "steps": [STEPS[0], {"effect": "nope"}]}, "steps[1].effect", "unknown effect 'nope'"),
        (
            {"name": "x", "steps": [{"effect": "reverb", "params": {"size": 1}}]},
            "steps[0].params.size",
            "unknown",
        ),
        ({"name": "Bad Name", "steps": STEPS}, "name", "invalid chain name"),
        ({"name": "x\n", "steps": STEPS}, "name", "invalid chain name"),
        ({"name": "x", "steps": []}, "steps", "at least one step"),
        ({"name": "x"}, "steps", "required"),
        ({"name": "x", "steps": STEPS, "extra": 1}, "extra", "unknown"),
        ({"name": 5, "steps": STEPS}, "name", "Expected str"),
    ],
)
def test_invalid_chains_name_the_field(client, body, path, words):
    response = client.post("/api/chains", json=body)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["errors"][0]["path"] == path, problem
    assert words in problem["errors"][0]["message"] or words in problem["detail"]
    assert client.get("/api/chains/x").status_code == 404  # nothing half-saved


def test_config_chains_are_read_only(client):
    assert client.put("/api/chains/hall", json={"steps": STEPS}).status_code == 409
    assert client.delete("/api/chains/hall").status_code == 409
    assert client.post("/api/chains", json={"name": "hall", "steps": STEPS}).status_code == 409


def test_malformed_json_is_a_400(client):
    response = client.post(
        "/api/chains", content=b'{"name": "x", "steps": [', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and "not valid JSON" in response.json()["detail"]
