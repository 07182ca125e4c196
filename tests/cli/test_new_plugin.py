"""``fxhost new-plugin NAME``: what it writes, what it refuses (leaving nothing behind),
and, end to end, the plugin author's path the guide (sdk/README.md) describes: from an
empty folder, scaffold, ``uv run pytest`` in the plugin, install it beside a host with
the documented command, ``fxhost plugins`` lists it, and it stays across ``uv sync``;
the two other ways of the guide's table (``plugins.toml`` paths; ``uv pip install -e``,
which ``uv sync`` undoes) as the guide says they behave.

The end-to-end test runs uv on a copy of this checkout (a host's project as a user has
it), offline where uv's cache has the packages (tests/support/uvkit.py): they are
hard-linked from the cache, so a whole host environment takes about a second.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from clitools import REPO, run_fxhost
from fxhost_sdk import FieldError
from uvkit import run


def scaffold(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_fxhost("new-plugin", *args, cwd=cwd)


# -- what it writes -------------------------------------------------------------------


def test_it_writes_a_plugin_distribution_pointing_at_this_checkouts_sdk(tmp_path):
    result = scaffold("acme-echo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "acme-echo"
    assert f"made {folder}" in result.stdout
    assert f"uv add --editable {folder}" in result.stdout
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert files == [
        ".gitignore",
        "README.md",
        "pyproject.toml",
        "src/acme_echo/__init__.py",
        "src/acme_echo/effect.py",
        "tests/test_acme_echo.py",
    ]
    project = tomllib.loads((folder / "pyproject.toml").read_text())
    assert project["project"]["name"] == "acme-echo"
    assert project["project"]["entry-points"]["fxhost"] == {"acme-echo": "acme_echo"}
    assert not any(dep.startswith("fxhost ") or dep == "fxhost" for dep in project["project"]["dependencies"])
    assert project["tool"]["uv"]["sources"]["fxhost-sdk"] == {
        "path": (REPO / "sdk").as_posix(),
        "editable": True,
    }
    effect = (folder / "src/acme_echo/effect.py").read_text()
    assert 'name = "acme_echo"' in effect and "class AcmeEcho(fxhost_sdk.Effect)" in effect
    assert "LinearSmoother" in effect
    assert "validate_effect(AcmeEcho)" in (folder / "tests/test_acme_echo.py").read_text()
    readme = (folder / "README.md").read_text()
    assert f"uv add --editable {folder.as_posix()}" in readme


def test_the_generated_code_imports_only_the_sdk(tmp_path):
    """The template is code the host ships: it must follow the plugin rule itself."""
    assert scaffold("rule-check", cwd=tmp_path).returncode == 0
    sources = "\n".join(p.read_text() for p in (tmp_path / "rule-check").rglob("*.py"))
    imports = {
        line.split()[1].split(".")[0]
        for line in sources.splitlines()
        if line.startswith(("import ", "from "))
    }
    assert imports == {"__future__", "math", "typing", "fxhost_sdk", "numpy", "rule_check"}
    # and it is clean by this project's own lint rules and format
    ruff = Path(sys.executable).parent / "ruff"
    folder = tmp_path / "rule-check"
    select = "--select=E,F,W,I,B,UP,SIM,RUF"
    lint = subprocess.run(
        [ruff, "check", "--isolated", select, "--line-length=110", "."], cwd=folder, capture_output=True
    )
    assert lint.returncode == 0, lint.stdout.decode()
    form = subprocess.run(
        [ruff, "format", "--isolated", "--line-length=110", "--check", "."], cwd=folder, capture_output=True
    )
    assert form.returncode == 0, form.stdout.decode()


def test_sdk_option_takes_a_folder_or_a_wheel(tmp_path):
    wheel = tmp_path / "fxhost_sdk-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"")  # only its name and existence matter here; the slow test builds a real one
    assert scaffold("from-wheel", "--sdk", str(wheel), cwd=tmp_path).returncode == 0
    sources = tomllib.loads((tmp_path / "from-wheel/pyproject.toml").read_text())["tool"]["uv"]["sources"]
    assert sources["fxhost-sdk"] == {"path": wheel.as_posix()}
    assert (
        scaffold("from-folder", "--sdk", str(REPO / "sdk"), "--dir", str(tmp_path), cwd=REPO).returncode == 0
    )
    sources = tomllib.loads((tmp_path / "from-folder/pyproject.toml").read_text())["tool"]["uv"]["sources"]
    assert sources["fxhost-sdk"] == {"path": (REPO / "sdk").as_posix(), "editable": True}


# -- what it refuses ------------------------------------------------------------------


BAD = [
    (["Acme"], "NAME: 'Acme' is not a plugin name"),
    (["acme echo"], "is not a plugin name"),
    (["1acme"], "is not a plugin name"),
    (["acme--echo"], "is not a plugin name"),
    (["acme-"], "is not a plugin name"),
    (["../escape"], "is not a plugin name"),
    (["a" * 65], "at most 64 characters"),
    (["class"], "'class' is a Python keyword"),
    (["numpy"], "a module named 'numpy' is already installed"),
    (["fxhost-sdk"], "a module named 'fxhost_sdk' is already installed"),
    (["taken"], "already exists"),
    (["acme-echo", "missing-folder"], "--sdk: missing-folder: expected the sdk folder"),
    (["acme-echo", "host"], "expected the sdk folder of an fxhost checkout"),
]


@pytest.fixture
def crowded(tmp_path: Path) -> Path:
    """A folder with a plugin folder ``taken`` and a folder ``host`` that is no SDK."""
    (tmp_path / "taken").mkdir()
    (tmp_path / "host").mkdir()
    return tmp_path


@pytest.mark.parametrize(("args", "says"), BAD)
def test_a_bad_name_or_sdk_is_refused_naming_it_and_leaves_nothing(crowded, monkeypatch, args, says):
    from fxhost.scaffold import new_plugin

    monkeypatch.chdir(crowded)
    before = sorted(crowded.rglob("*"))
    name, *sdk = args
    with pytest.raises(FieldError) as error:
        new_plugin(name, crowded, *sdk)
    assert says in str(error.value)
    assert sorted(crowded.rglob("*")) == before


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["Acme"], "fxhost: NAME: 'Acme' is not a plugin name"),
        (["taken"], "already exists"),
        (["acme-echo", "--sdk", "host"], "fxhost: --sdk: host: expected the sdk folder"),
        (["acme-echo", "--dir", "nowhere"], "fxhost: --dir:"),
    ],
)
def test_the_command_says_it_in_one_line_and_exits_1(crowded, args, says):
    before = sorted(crowded.rglob("*"))
    result = scaffold(*args, cwd=crowded)
    assert result.returncode == 1
    assert says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert sorted(crowded.rglob("*")) == before


def test_outside_a_checkout_it_asks_for_sdk(tmp_path, monkeypatch):
    """An fxhost installed from wheels has no SDK source to point at: --sdk is required."""
    import fxhost_sdk
    from fxhost.scaffold import new_plugin

    installed = tmp_path / "lib" / "python3.11" / "site-packages" / "fxhost_sdk" / "__init__.py"
    installed.parent.mkdir(parents=True)
    monkeypatch.setattr(fxhost_sdk, "__file__", str(installed))
    with pytest.raises(FieldError) as error:
        new_plugin("acme-echo", tmp_path)
    assert error.value.path == "--sdk"
    assert "not run from a checkout" in error.value.message
    assert not (tmp_path / "acme-echo").exists()
    assert new_plugin("acme-echo", tmp_path, REPO / "sdk") == tmp_path / "acme-echo"


def test_a_failure_half_way_leaves_nothing(tmp_path, monkeypatch):
    """The folder appears whole or not at all (written under a hidden name, renamed)."""
    from fxhost import scaffold as module

    real = Path.write_text
    written = []

    def fail_on_the_third(self, *args, **kwargs):
        written.append(self)
        if len(written) == 3:
            raise OSError(28, "No space left on device", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", fail_on_the_third)
    with pytest.raises(OSError, match="No space left"):
        module.new_plugin("half-way", tmp_path)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


# -- end to end -----------------------------------------------------------------------


def copy_checkout(target: Path) -> None:
    """This checkout's files as git sees them (tracked, and new ones not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def listed(host: Path, *args: str) -> dict[str, dict]:
    """The plugins ``fxhost plugins --json`` lists in the host's project, by name."""
    out = run("uv", "run", "fxhost", *args, "plugins", "--json", cwd=host).stdout
    return {plugin["name"]: plugin for plugin in json.loads(out)["plugins"]}


@pytest.mark.slow
def test_from_an_empty_folder_to_a_listed_plugin(tmp_path):
    host, work = tmp_path / "fxhost", tmp_path / "work"
    work.mkdir()
    copy_checkout(host)
    run("uv", "sync", cwd=host)  # the host's project, as a user has it after cloning
    fxhost = host / ".venv" / "bin" / "fxhost"

    started = time.perf_counter()
    run(fxhost, "new-plugin", "acme-echo", cwd=work)
    plugin = work / "acme-echo"
    # the default SDK is the one of the checkout that fxhost runs from: the copy's
    sources = tomllib.loads((plugin / "pyproject.toml").read_text())["tool"]["uv"]["sources"]
    assert sources["fxhost-sdk"]["path"] == (host / "sdk").as_posix()
    tested = run("uv", "run", "pytest", "-q", "-p", "no:cacheprovider", cwd=plugin)
    assert "3 passed" in tested.stdout.splitlines()[-1]
    tested_at = time.perf_counter()
    run("uv", "add", "--editable", plugin, cwd=host)  # the guide's one command
    found = listed(host)
    listed_at = time.perf_counter()

    assert found["acme-echo"]["status"] == "loaded"
    assert found["acme-echo"]["effects"] == ["acme_echo"]
    print(
        f"\nscaffold to listed: {listed_at - started:.1f} s (scaffold + uv run pytest "
        f"{tested_at - started:.1f} s, uv add + fxhost plugins {listed_at - tested_at:.1f} s)"
    )
    validated = run("uv", "run", "fxhost", "validate", "acme_echo", cwd=host)
    assert "acme_echo" in validated.stdout

    # `uv add` wrote it into the project: `uv sync` keeps it
    run("uv", "sync", cwd=host)
    assert found.keys() <= listed(host).keys()

    # `uv pip install -e` alone: listed until the next `uv sync` removes it
    run("uv", "remove", "acme-echo", cwd=host)
    assert "acme-echo" not in listed(host)
    run("uv", "pip", "install", "--python", host / ".venv", "-e", plugin, cwd=host)
    assert listed(host)["acme-echo"]["status"] == "loaded"
    run("uv", "sync", cwd=host)
    assert "acme-echo" not in listed(host)

    # plugins.toml paths + modules: nothing installed, so nothing for `uv sync` to undo
    config = host / "local-plugins.toml"
    config.write_text(f'[plugins]\npaths = ["{plugin / "src"}"]\nmodules = ["acme_echo"]\n')
    run("uv", "sync", cwd=host)
    by_module = listed(host, "--config", str(config))
    assert by_module["acme_echo"]["status"] == "loaded"
    assert by_module["acme_echo"]["effects"] == ["acme_echo"]
    assert os.listdir(work) == ["acme-echo"]
