"""The Dockerfile's install steps, replayed without Docker (CI has no Docker daemon).

The build stage is read with dockerfile-parse; its COPY steps copy exactly what they name
from the build context (the repository less what ``.dockerignore`` leaves out, decided by
docker-py's implementation of Docker's rules) into a temporary folder standing for the
image's ``/``; its RUN steps, which must all be uv commands, run there with the stage's ENV.
Then the final stage is played as the image has it: the environment alone (the sources
deleted), ``plugins.toml`` beside it, a non-root user, and the CMD serving on 0.0.0.0.

Two settings are changed from the image's, for speed only, as neither changes what is
installed: uv links from its cache (the image copies, as its cache is a mount) and
compiles no bytecode (measured here: 34.6 s for the first step as the image runs it,
1.8 s linked and not compiled); and the packages come from this machine's uv cache
(``UV_OFFLINE``), which ``uv run pytest`` filled with a superset of them."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from docker.utils.build import exclude_paths
from dockerfile_parse import DockerfileParser
from procenv import child_env
from restkit import free_port
from waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
UV = os.environ.get("UV") or shutil.which("uv")
PLUGINS = {"feedback-delay", "mastering", "pedalboard"}


@dataclass
class Stage:
    name: str
    #: (instruction, value) in order, ARG and comments left out
    steps: list[tuple[str, str]] = field(default_factory=list)


def stages() -> list[Stage]:
    found: list[Stage] = []
    for item in DockerfileParser(path=str(REPO / "Dockerfile")).structure:
        instruction, value = item["instruction"], item["value"]
        if instruction == "FROM":
            words = value.split()
            found.append(Stage(words[2] if len(words) == 3 and words[1].upper() == "AS" else ""))
        elif instruction not in ("ARG", "COMMENT") and found:
            found[-1].steps.append((instruction, value))
    return found


def build_stage() -> Stage:
    return next(s for s in stages() if s.name == "build")


def final_stage() -> Stage:
    return stages()[-1]


def context_files() -> set[str]:
    """The files of the build context, relative to the repository, as Docker sends them."""
    lines = (REPO / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    return {p for p in exclude_paths(str(REPO), patterns) if (REPO / p).is_file()}


def split_copy(value: str) -> tuple[dict[str, str], list[str], str]:
    """A COPY's options (``--from=...``), sources and destination."""
    words = shlex.split(value)
    options = dict(w[2:].split("=", 1) for w in words if w.startswith("--"))
    paths = [w for w in words if not w.startswith("--")]
    return options, paths[:-1], paths[-1]


def uv_command(value: str) -> list[str]:
    """A RUN step's command, its ``--mount`` options left out; it must be uv."""
    words = [w for w in shlex.split(value) if not w.startswith("--mount=")]
    assert words[0] == "uv", f"a RUN step of the build stage that this test does not replay: {value}"
    return [UV, *words[1:]]


class Image:
    """A folder standing for the image's file system: ``/app`` is ``root/app``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.context = context_files()
        self.workdir = root
        self.env: dict[str, str] = {}

    def path(self, container_path: str) -> Path:
        return self.root / container_path.lstrip("/")

    def copy(self, value: str) -> list[str]:
        """Play one COPY from the build context; returns the context files it copied."""
        options, sources, dest = split_copy(value)
        assert "from" not in options
        target = self.path(dest) if dest.startswith("/") else self.workdir / dest
        copied = []
        for source in sources:
            assert not set(source) & set("*?["), f"no wildcards, each file named: {source}"
            source = source.strip("/").removeprefix(".").strip("/")
            if source in self.context:  # a file: into the folder, or to the name given
                into = target / Path(source).name if dest.endswith("/") or len(sources) > 1 else target
                picked = {source: into}
            else:  # a folder (or the whole context, "."): its contents into the destination
                prefix = f"{source}/" if source else ""
                picked = {f: target / f.removeprefix(prefix) for f in self.context if f.startswith(prefix)}
                assert picked, f"COPY names {source!r}, which is not in the build context"
            for name, to in picked.items():
                to.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / name, to)
                copied.append(name)
        return copied

    def set_env(self, value: str) -> None:
        for word in shlex.split(value):
            key, _, val = word.partition("=")
            self.env[key] = val

    def run(self, value: str) -> subprocess.CompletedProcess:
        env = child_env(
            {
                **self.env,
                "UV_OFFLINE": "1",
                # speed only, see the module's docstring
                "UV_COMPILE_BYTECODE": "0",
                "UV_LINK_MODE": "hardlink",
            }
        )
        env.pop("VIRTUAL_ENV", None)  # uv would warn that it is not the project's
        return subprocess.run(
            uv_command(value), cwd=self.workdir, env=env, capture_output=True, text=True, timeout=600
        )


def workspace_pyprojects() -> set[str]:
    """Every workspace member's pyproject.toml, from the root's member globs."""
    members = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]["members"]
    return {
        str((folder / "pyproject.toml").relative_to(REPO))
        for pattern in members
        for folder in REPO.glob(pattern)
        if (folder / "pyproject.toml").is_file()
    }


def installed(site: Path) -> set[str]:
    return {p.name.split("-")[0].lower().replace("_", "-") for p in site.glob("*.dist-info")}


def test_the_dependency_layer_is_the_lock_and_every_members_pyproject():
    """What decides the first layer: a member left out would fail ``--locked`` in the image,
    and a source file there would reinstall every dependency on each change to it."""
    copies = []
    for instruction, value in build_stage().steps:
        if instruction == "RUN":
            break
        if instruction == "COPY":
            options, sources, _ = split_copy(value)
            if "from" not in options:  # the uv binary comes from uv's image
                copies += sources
    assert set(copies) == {"uv.lock", "pyproject.toml"} | workspace_pyprojects()
    assert len(workspace_pyprojects()) == 5


def test_the_build_context_leaves_out_local_state_and_secrets():
    files = context_files()
    assert "uv.lock" in files and "plugins.toml" in files and "host/src/fxhost/cli.py" in files
    for left_out in (".venv/", ".git/", ".env", "tests/", "bench/", "data/", "fxhost.db"):
        assert not any(f == left_out or f.startswith(left_out) for f in files), left_out
    assert not any("__pycache__" in f for f in files)


def test_the_image_runs_fxhost_serve_on_every_interface_as_a_user():
    steps = dict(final_stage().steps)
    assert json.loads(steps["CMD"]) == ["fxhost", "serve", "--host", "0.0.0.0"]
    assert steps["USER"] not in ("root", "0")
    assert steps["USER"] in (steps["RUN"].split("useradd")[1].split("&&")[0].split())


@dataclass
class Built:
    """The build stage replayed, and the final stage laid out from it."""

    #: per RUN step: the files in the working folder when it ran, and what was installed after
    runs: list[tuple[set[str], set[str]]]
    venv: Path
    #: the final stage's working folder (``/data``)
    workdir: Path
    #: the environment of a process in the final image
    env: dict[str, str]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    image = Image(tmp_path_factory.mktemp("dockerfile") / "image")
    runs = []
    for instruction, value in build_stage().steps:
        if instruction == "ENV":
            image.set_env(value)
        elif instruction == "WORKDIR":
            image.workdir = image.path(value)
            image.workdir.mkdir(parents=True, exist_ok=True)
        elif instruction == "COPY" and "--from=" not in value:  # --from: the uv binary
            image.copy(value)
        elif instruction == "RUN":
            files = {str(p.relative_to(image.workdir)) for p in image.workdir.rglob("*") if p.is_file()}
            result = image.run(value)
            assert result.returncode == 0, f"{value}\n{result.stderr[-3000:]}"
            runs.append((files, installed(next(image.workdir.glob(".venv/lib/python3*/site-packages")))))

    # The final stage: the environment and plugins.toml, no sources.
    venv = image.path("/app/.venv")
    for child in image.path("/app").iterdir():
        if child != venv:
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    final = Image(image.root)
    final.context = image.context
    for instruction, value in final_stage().steps:
        if instruction == "COPY" and "--from=" not in value:
            assert final.copy(value) == ["plugins.toml"]
        elif instruction == "ENV":
            final.set_env(value)
        elif instruction == "WORKDIR":
            final.workdir = final.path(value)
            final.workdir.mkdir(parents=True, exist_ok=True)
    env = child_env(
        {
            "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
            "FXHOST_PLUGINS_CONFIG": str(final.path(final.env["FXHOST_PLUGINS_CONFIG"])),
            "FXHOST_HOST": final.env["FXHOST_HOST"],
            "FXHOST_LOG_LEVEL": "warning",
        }
    )
    env.pop("VIRTUAL_ENV", None)
    return Built(runs, venv, final.workdir, env)


def test_the_first_step_installs_the_dependencies_from_the_lock_and_pyprojects_alone(built):
    """What makes the dependency layer cacheable: it needs nothing but those files."""
    assert len(built.runs) == 2
    files, first = built.runs[0]
    assert files == {"uv.lock", "pyproject.toml"} | workspace_pyprojects()
    assert {"numpy", "pedalboard", "starlette", "tortoise-orm", "uvicorn"} <= first
    assert not any(name.startswith("fxhost") for name in first)


def test_the_second_step_installs_the_workspace_and_no_development_tool(built):
    _, second = built.runs[1]
    ours = {"fxhost", "fxhost-sdk", "fxhost-pedalboard", "fxhost-feedback-delay", "fxhost-mastering"}
    assert ours <= second
    assert not {"pytest", "ruff", "hypothesis", "schemathesis", "pytest-cov"} & second


def test_the_environment_alone_lists_every_plugin(built):
    listing = subprocess.run(
        [built.venv / "bin" / "fxhost", "plugins", "--json"],
        cwd=built.workdir,
        env=built.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listing.returncode == 0, listing.stderr
    plugins = {p["name"]: p for p in json.loads(listing.stdout)["plugins"]}
    assert set(plugins) == PLUGINS
    assert {p["status"] for p in plugins.values()} == {"loaded"}, plugins
    # installed from wheels into the environment, not linked to the (deleted) sources
    site = next(built.venv.glob("lib/python3*/site-packages"))
    assert all((site / p["module"] / "__init__.py").is_file() for p in plugins.values())


@pytest.mark.slow  # a server start: about 19 s on this shared 2-core machine under load
def test_the_images_command_serves_from_the_data_folder(built):
    port = free_port()
    cmd = json.loads(dict(final_stage().steps)["CMD"])
    log_path = built.workdir / "server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [built.venv / "bin" / cmd[0], *cmd[1:]],
            cwd=built.workdir,
            env={**built.env, "FXHOST_PORT": str(port)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def health():
            assert server.poll() is None, log_path.read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/api/audio/health", timeout=2).json()
            except httpx.TransportError:
                return None

        body = wait_until(health, timeout=120, what="the image's server answers")
        assert body["status"] == "ok", body
        assert set(body["plugins"]["loaded"]) == PLUGINS and not body["plugins"]["failed"], body["plugins"]
        assert (built.workdir / "fxhost.db").exists()  # the database went to the data folder
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


pytestmark = pytest.mark.skipif(UV is None, reason="uv is not on PATH")
