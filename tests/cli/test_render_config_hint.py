"""``fxhost render --chain NAME`` outside the project folder: the one-line error says which
plugins.toml it looked for (an absolute path) and how to name one, and following that
advice works."""

from __future__ import annotations

import os
import subprocess

from clitools import FXHOST, REPO, write_signal

HOW = "name another with `fxhost --config PATH` or FXHOST_PLUGINS_CONFIG=PATH"


def fxhost(*args: str, cwd, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("FXHOST_PLUGINS_CONFIG", "FXHOST_DEBUG")}
    return subprocess.run(
        [FXHOST, *args], cwd=cwd, env={**clean, **env}, capture_output=True, text=True, timeout=120
    )


def test_render_outside_the_project_says_where_it_looked(tmp_path):
    write_signal(tmp_path / "in.wav", 0.2)
    done = fxhost("render", "in.wav", "out.wav", "--chain", "hall", cwd=tmp_path)
    assert done.returncode == 1 and not (tmp_path / "out.wav").exists()
    looked = (tmp_path / "plugins.toml").resolve()
    assert done.stderr.splitlines() == [
        "fxhost: chain: unknown chain 'hall' (available: none are defined); "
        f"no {looked} was found to read chains from: {HOW}"
    ]

    config = str(REPO / "plugins.toml")
    by_option = fxhost("--config", config, "render", "in.wav", "a.wav", "--chain", "hall", cwd=tmp_path)
    by_env = fxhost(
        "render", "in.wav", "b.wav", "--chain", "hall", cwd=tmp_path, FXHOST_PLUGINS_CONFIG=config
    )
    assert by_option.returncode == by_env.returncode == 0, (by_option.stderr, by_env.stderr)
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()


def test_an_unknown_chain_names_the_file_it_was_looked_for_in(tmp_path):
    write_signal(tmp_path / "in.wav", 0.2)
    config = tmp_path / "conf" / "mine.toml"
    config.parent.mkdir()
    config.write_text('[chains.small]\nsteps = [{effect = "reverb", params = {room_size = 0.1}}]\n')
    done = fxhost("--config", "conf/mine.toml", "render", "in.wav", "o.wav", "--chain", "hall", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "fxhost: chain: unknown chain 'hall' (available: small); "
        f"chains are read from {config.resolve()} ({HOW})"
    ]
