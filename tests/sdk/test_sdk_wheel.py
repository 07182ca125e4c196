"""fxhost-sdk stands alone: ``uv build`` makes a wheel and an sdist with complete
metadata; the wheel installs into a fresh virtual environment with its three
dependencies and nothing of the host, and a plugin's tests pass there; a plugin whose
``[tool.uv.sources]`` names the built wheel tests with ``uv run pytest`` (the guide's
"built wheel" way of getting fxhost-sdk before it is published).

uv runs offline where its cache has what is needed (tests/support/uvkit.py).
"""

from __future__ import annotations

import subprocess
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from clitools import REPO, run_fxhost
from uvkit import run, uv_env

pytestmark = pytest.mark.slow

SDK = REPO / "sdk"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """``uv build`` in sdk/: (wheel, sdist)."""
    out = tmp_path_factory.mktemp("dist")
    run("uv", "build", "--wheel", "--sdist", "--out-dir", out, cwd=SDK)
    (wheel,) = out.glob("fxhost_sdk-*.whl")
    (sdist,) = out.glob("fxhost_sdk-*.tar.gz")
    return wheel, sdist


def test_the_wheel_carries_complete_metadata(built):
    wheel, _ = built
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
    assert metadata["Name"] == "fxhost-sdk"
    assert metadata["Summary"].startswith("Write audio effect plugins for fxhost")
    assert metadata["Requires-Python"] == ">=3.11"
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert metadata["Description-Content-Type"] == "text/markdown"
    # the long description is the plugin author's guide
    assert metadata.get_payload().strip() == (SDK / "README.md").read_text().strip()
    classifiers = metadata.get_all("Classifier")
    assert "Topic :: Multimedia :: Sound/Audio" in classifiers
    assert "Programming Language :: Python :: 3 :: Only" in classifiers
    assert "audio" in metadata["Keywords"]
    requires = sorted(r.split(">=")[0] for r in metadata.get_all("Requires-Dist") if "extra ==" not in r)
    assert requires == ["msgspec", "numpy", "pluggy"]
    assert any(r.startswith("scipy") and "extra == 'meters'" in r for r in metadata.get_all("Requires-Dist"))
    modules = {n.split("/")[1] for n in names if n.startswith("fxhost_sdk/") and n.endswith(".py")}
    assert {"__init__.py", "effect.py", "params.py", "smoothing.py", "testing.py", "host.py"} <= modules
    assert not [n for n in names if n.startswith("fxhost/")]


def test_the_sdist_builds_the_same_package(built):
    _, sdist = built
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"pyproject.toml", "README.md", "LICENSE", "src/fxhost_sdk/__init__.py"} <= names


def test_a_plugins_tests_pass_in_a_fresh_venv_with_only_the_wheel(built, tmp_path):
    wheel, _ = built
    venv = tmp_path / "venv"
    run("uv", "venv", venv, cwd=tmp_path)
    run("uv", "pip", "install", "--python", venv, wheel, cwd=tmp_path)
    frozen = run("uv", "pip", "freeze", "--python", venv, cwd=tmp_path).stdout
    assert sorted(line.split("==")[0].split(" @ ")[0] for line in frozen.splitlines()) == [
        "fxhost-sdk",
        "msgspec",
        "numpy",
        "pluggy",
    ]
    run("uv", "pip", "install", "--python", venv, "pytest", cwd=tmp_path)  # to run the tests with
    python = venv / "bin" / "python"
    assert run(python, "-c", "import fxhost_sdk; print(fxhost_sdk.__file__)", cwd=tmp_path).stdout.startswith(
        str(venv)
    )
    no_host = subprocess.run([python, "-c", "import fxhost"], capture_output=True, env=uv_env())
    assert no_host.returncode == 1 and b"No module named 'fxhost'" in no_host.stderr

    assert run_fxhost("new-plugin", "acme-wheel", "--sdk", str(wheel), cwd=tmp_path).returncode == 0
    plugin = tmp_path / "acme-wheel"
    tested = run(
        python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=plugin, PYTHONPATH=str(plugin / "src")
    )
    assert "3 passed" in tested.stdout.splitlines()[-1]


def test_a_plugin_gets_the_sdk_from_a_built_wheel(built, tmp_path):
    wheel, _ = built
    assert run_fxhost("new-plugin", "acme-wheel", "--sdk", str(wheel), cwd=tmp_path).returncode == 0
    plugin = tmp_path / "acme-wheel"
    tested = run("uv", "run", "pytest", "-q", "-p", "no:cacheprovider", cwd=plugin)
    assert "3 passed" in tested.stdout.splitlines()[-1]
    where = run("uv", "run", "python", "-c", "import fxhost_sdk; print(fxhost_sdk.__file__)", cwd=plugin)
    assert where.stdout.startswith(str(plugin / ".venv"))  # installed from the wheel, not this checkout
