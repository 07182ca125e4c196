import json

from clitools import run_fxhost


def test_plugins_table_and_json():
    table = run_fxhost("plugins")
    assert table.returncode == 0, table.stderr
    assert "pedalboard" in table.stdout and "reverb" in table.stdout and "feedback_delay" in table.stdout
    data = json.loads(run_fxhost("plugins", "--json").stdout)
    effects = {e["name"]: e for e in data["effects"]}
    assert effects["reverb"]["plugin"] == "pedalboard"
    schema = effects["reverb"]["params_schema"]
    assert schema["properties"]["room_size"]["maximum"] == 1
    assert {p["name"]: p["status"] for p in data["plugins"]}["pedalboard"] == "loaded"
    # each plugin's import-and-register time, in the table and the JSON
    assert "load ms" in table.stdout
    assert all(p["load_seconds"] >= 0 for p in data["plugins"] if p["status"] == "loaded")


def test_chains_json_lists_shipped_chains_with_all_params():
    result = run_fxhost("chains", "--json")
    assert result.returncode == 0, result.stderr
    chains = json.loads(result.stdout)
    assert chains and all(c["steps"] for c in chains)
    for chain in chains:
        for step in chain["steps"]:
            if step["effect"] == "reverb":
                assert set(step["params"]) == {
                    "room_size",
                    "damping",
                    "wet_level",
                    "dry_level",
                    "width",
                    "freeze_mode",
                }


def test_validate_reverb_passes():
    result = run_fxhost("validate", "reverb", "--set", "room_size=0.9")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "block" in result.stdout.lower()
    assert "real-time factor" in result.stdout and "latency_measured" in result.stdout


def test_validate_fails_an_effect_slower_than_min_realtime():
    # No effect runs a million times faster than real time in 64-frame blocks.
    result = run_fxhost("validate", "gain", "--min-realtime", "1000000")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL  realtime" in result.stdout and "min_realtime=1e+06" in result.stdout
