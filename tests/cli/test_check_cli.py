"""``fxhost check``: a config linted before deploy, as an operator or a CI job runs it,
on good and broken files; and the same problems stopping ``fxhost serve`` at start."""

import json
import math

import numpy as np
import pedalboard
import pytest
from clitools import REPO, run_fxhost
from restkit import free_port

GOOD = """
[plugins.require]
fxhost-pedalboard = ">=0.1,<1"
feedback-delay = ">=0.1"

[chains.quiet-room]
max_latency_ms = 10
steps = [{ effect = "reverb", params = { room_size = 0.3, wet_level = 0.2, dry_level = 0.5 } }]
"""

BROKEN = """
[plugins.require]
fxhost-pedalboard = ">=99"
nonesuch = "==1.0"

[chains.hall]
steps = [
  { effect = "reverb", params = { room_size = 1.5 } },
  { effect = "reverbb" },
  { effect = "gain", params = { volume = 2 } },
]

[chains.slow]
max_latency_ms = 50
steps = [{ effect = "pitch_shift", params = { semitones = 3 } }]

[chains.loud]
steps = [{ effect = "gain", params = { gain_db = 6 } }]
"""


def check(tmp_path, text, *args):
    path = tmp_path / "plugins.toml"
    path.write_text(text)
    return run_fxhost("check", str(path), *args, cwd=tmp_path)


def test_a_good_file_passes_and_nothing_is_started(tmp_path):
    result = check(tmp_path, GOOD)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""
    assert "0 error(s), 0 warning(s), 1 chain(s) checked" in result.stderr
    # No database, no storage folders: nothing was started.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plugins.toml"]


def test_a_broken_file_has_one_line_per_finding_with_file_and_path(tmp_path):
    result = check(tmp_path, BROKEN)
    assert result.returncode == 1
    name = str(tmp_path / "plugins.toml")
    lines = result.stdout.splitlines()
    assert all(line.startswith(f"{name}: ") for line in lines), lines
    found = {line.removeprefix(f"{name}: ").split(": ", 1)[0]: line for line in lines}
    assert set(found) == {
        "plugins.require.fxhost-pedalboard",
        "plugins.require.nonesuch",
        "chains.hall.steps[0].params.room_size",
        "chains.hall.steps[1].effect",
        "chains.hall.steps[2].params.volume",
        "chains.slow.max_latency_ms",
        "chains.loud",
    }
    assert (
        "plugin 'pedalboard' (fxhost-pedalboard) 0.1.0 is installed; >=99 is required"
        in found["plugins.require.fxhost-pedalboard"]
    )
    assert "'nonesuch' ==1.0 is required, but it is not installed" in found["plugins.require.nonesuch"]
    assert found["chains.hall.steps[0].params.room_size"].endswith("Expected float <= 1.0")
    assert "did you mean 'reverb'?" in found["chains.hall.steps[1].effect"]
    assert "unknown parameter of 'gain'" in found["chains.hall.steps[2].params.volume"]
    assert (
        "latency is 300 ms (14400 frames at 48000 Hz: steps[0] pitch_shift 14400), over its budget of 50 ms"
        in (found["chains.slow.max_latency_ms"])
    )
    assert "6 error(s), 1 warning(s)" in result.stderr


def test_clip_warning_is_the_rendered_peak(tmp_path):
    """The warning's figure is the peak of full-scale noise through the chain, as
    pedalboard renders it; a warning alone exits 0, or 1 with --strict."""
    result = check(
        tmp_path, '[chains.loud]\nsteps = [{ effect = "gain", params = { gain_db = 6 } }]\n', "--json"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    [finding] = report["findings"]
    assert (finding["severity"], finding["path"]) == ("warning", "chains.loud")
    noise = np.random.default_rng(16).standard_normal((2, 48000))
    noise = (noise / np.abs(noise).max()).astype(np.float32)
    peak = np.abs(pedalboard.Gain(gain_db=6).process(noise, 48000)).max()
    assert report["chains"]["loud"]["test_peak_dbfs"] == pytest.approx(20 * math.log10(peak), abs=0.01)
    assert f"{20 * math.log10(peak):+.2f} dBFS" in finding["message"]
    assert (
        check(
            tmp_path, '[chains.loud]\nsteps = [{ effect = "gain", params = { gain_db = 6 } }]\n', "--strict"
        ).returncode
        == 1
    )
    quiet = check(
        tmp_path, '[chains.quiet]\nsteps = [{ effect = "gain", params = { gain_db = -1 } }]\n', "--strict"
    )
    assert quiet.returncode == 0, quiet.stdout


def test_json_for_ci(tmp_path):
    result = check(tmp_path, BROKEN, "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert (report["ok"], report["errors"], report["warnings"]) == (False, 6, 1)
    assert report["file"] == str(tmp_path / "plugins.toml")
    slow = next(f for f in report["findings"] if f["path"] == "chains.slow.max_latency_ms")
    assert slow["severity"] == "error" and slow["file"] == report["file"]
    assert report["chains"]["loud"]["latency"] == {"frames": 0, "ms": 0.0, "sample_rate": 48000, "steps": [0]}


def test_a_key_given_twice_is_named_with_its_line(tmp_path):
    text = '[chains.hall]\nsteps = [{ effect = "gain" }]\n\n[chains.hall]\nsteps = [{ effect = "reverb" }]\n'
    result = check(tmp_path, text)
    assert result.returncode == 1
    assert (
        result.stdout.strip()
        == f"{tmp_path / 'plugins.toml'}:4:13: invalid TOML: Cannot declare ('chains', 'hall') twice"
    )
    report = json.loads(check(tmp_path, text, "--json").stdout)
    assert (report["findings"][0]["line"], report["findings"][0]["column"]) == (4, 13)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            '[plugins.require]\npedalboard = "~~1"\n',
            "plugins.require.pedalboard: not a PEP 440 version specifier: '~~1'",
        ),
        (
            "[plugins.require]\npedalboard = 1\n",
            "plugins.require.pedalboard: expected a version specifier string",
        ),
        (
            '[plugins.require]\npedalboard = ">=0.1"\nfxhost_Pedalboard = "<1"\n',
            "plugins.require.fxhost_Pedalboard: plugin 'pedalboard' is required already, "
            "as plugins.require.pedalboard",
        ),
        (
            '[chains.x]\nmax_latency_ms = -1\nsteps = [{ effect = "gain" }]\n',
            "chains.x.max_latency_ms: Expected",
        ),
    ],
)
def test_bad_pins_and_budgets_are_named(tmp_path, text, line):
    result = check(tmp_path, text)
    assert result.returncode == 1 and line in result.stdout, result.stdout


def test_the_shipped_config_has_no_errors():
    result = run_fxhost("check", str(REPO / "plugins.toml"), "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["errors"] == 0, result.stdout
    assert set(report["chains"]) == {"vocal-plate", "hall", "slapback", "ambient"}


def test_serve_refuses_an_unmet_pin_and_a_chain_over_budget(tmp_path):
    """The same checks stop the server at start: one line each, exit 1, nothing served."""
    (tmp_path / "plugins.toml").write_text(
        '[plugins.require]\nfxhost-pedalboard = ">=99"\n\n'
        '[chains.slow]\nmax_latency_ms = 50\nsteps = [{ effect = "pitch_shift" }]\n'
    )
    result = run_fxhost(
        "serve",
        "--port",
        str(free_port()),
        cwd=tmp_path,
        env={"FXHOST_PLUGINS_CONFIG": "plugins.toml"},
        timeout=60,
    )
    assert result.returncode == 1
    assert (
        "plugins.toml: plugins.require.fxhost-pedalboard: plugin 'pedalboard' (fxhost-pedalboard) 0.1.0"
        in (result.stderr)
    )
    assert "plugins.toml: chains.slow.max_latency_ms: the chain's latency is 300 ms" in result.stderr
    assert not (tmp_path / "fxhost.db").exists()


def test_chains_lists_each_chains_latency(tmp_path):
    (tmp_path / "plugins.toml").write_text(
        '[chains.shifted]\nmax_latency_ms = 400\nsteps = [{ effect = "gain" }, { effect = "pitch_shift" }]\n'
    )
    env = {"FXHOST_PLUGINS_CONFIG": "plugins.toml", "FXHOST_DEFAULT_SAMPLE_RATE": "44100"}
    listed = run_fxhost("chains", "--json", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    [chain] = json.loads(listed.stdout)
    # Rubber Band holds 0.3 s back, whatever the rate.
    assert chain["latency"] == {"frames": 13230, "ms": 300.0, "sample_rate": 44100, "steps": [0, 13230]}
    assert chain["max_latency_ms"] == 400
    table = run_fxhost("chains", cwd=tmp_path, env=env)
    assert "13230 frames (300 ms), max 400 ms" in table.stdout and "latency at 44100 Hz" in table.stdout


def test_every_misshapen_chain_is_reported_and_the_others_checked(tmp_path):
    text = (
        '[chains.a]\nstepz = [{ effect = "gain" }]\n\n'
        '[chains.b]\nsteps = [{ effect = "gain", paramz = {} }]\n\n'
        '[chains.c]\nsteps = [{ effect = "gain", params = { gain_db = 99 } }]\n'
    )
    result = check(tmp_path, text)
    assert result.returncode == 1
    paths = [line.split(": ")[1] for line in result.stdout.splitlines()]
    assert paths == ["chains.a.stepz", "chains.b.steps[0].paramz", "chains.c.steps[0].params.gain_db"]
    assert "unknown field (allowed: steps, description, max_latency_ms)" in result.stdout
