"""Every distribution of the workspace says its licence (PEP 639) and carries its text.

The workspace is built as it would be published (``uv build --all-packages``, uv's build
backend) and each wheel's METADATA and each sdist are read: the SPDX expression, the
licence files named and present in both."""

from __future__ import annotations

import email
import hashlib
import os
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
from procenv import child_env

REPO = Path(__file__).resolve().parents[2]
UV = os.environ.get("UV") or shutil.which("uv")

#: What each distribution is under. fxhost's wheel also holds the vendored Swagger UI
#: (Apache-2.0) and Redoc (MIT) bundles and what they bundle (ieee754: BSD-3-Clause;
#: DOMPurify: Apache-2.0 or MPL-2.0, taken as Apache-2.0), see its api/openapi/static/README.md.
EXPECTED = {
    "fxhost": "MIT AND Apache-2.0 AND BSD-3-Clause",
    "fxhost-sdk": "MIT",
    "fxhost-feedback-delay": "MIT",
    "fxhost-mastering": "MIT",
    # it links pedalboard, which is GPLv3
    "fxhost-pedalboard": "GPL-3.0-or-later",
}
MIT_COPYRIGHT = "Copyright (c) 2026 fxhost contributors"
#: The GNU GPL version 3 as gnu.org publishes it (gpl-3.0.txt); pedalboard's wheel ships
#: the same bytes as its LICENSE.
GPL3_SHA256 = "3972dc9744f6499f0f9b2dbf76696f2ae7ad8af9b23dde66d6af86c9dfb36986"


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    env = child_env({"UV_OFFLINE": "1"})  # uv_build comes from the cache `uv sync` filled
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(
        [UV, "build", "--all-packages", "--out-dir", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return out


def wheel_metadata(wheel: Path) -> tuple[email.message.Message, dict[str, bytes]]:
    with zipfile.ZipFile(wheel) as zf:
        info = next(n.split("/")[0] for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(zf.read(f"{info}/METADATA"))
        licences = {
            n.removeprefix(f"{info}/licenses/"): zf.read(n)
            for n in zf.namelist()
            if n.startswith(f"{info}/licenses/") and not n.endswith("/")
        }
    return meta, licences


def test_every_member_is_built_with_its_licence_expression_and_files(dist):
    wheels = sorted(dist.glob("*.whl"))
    seen = {}
    for wheel in wheels:
        meta, licences = wheel_metadata(wheel)
        name = meta["Name"]
        seen[name] = meta["License-Expression"]
        assert tuple(int(p) for p in meta["Metadata-Version"].split(".")) >= (2, 4), name
        named = meta.get_all("License-File")
        assert named and set(named) == set(licences), (name, named, sorted(licences))
        assert meta["License"] is None  # the expression replaces the free-text field
        text = licences["LICENSE"].decode()
        if meta["License-Expression"] == "GPL-3.0-or-later":
            assert hashlib.sha256(licences["LICENSE"]).hexdigest() == GPL3_SHA256, name
        else:
            assert text.startswith("MIT License") and MIT_COPYRIGHT in text, name
        sdist = dist / wheel.name.replace("-py3-none-any.whl", ".tar.gz")
        with tarfile.open(sdist) as tf:
            in_sdist = {m.name.split("/", 1)[1] for m in tf.getmembers() if m.isfile()}
        assert set(named) <= in_sdist, (name, set(named) - in_sdist)
    assert seen == EXPECTED


def test_the_source_tree_licence_files_match_what_the_pyprojects_say():
    """The repository's own LICENSE (the workspace root, not published) is MIT too."""
    assert MIT_COPYRIGHT in (REPO / "LICENSE").read_text()
    gpl = (REPO / "plugins" / "pedalboard" / "LICENSE").read_bytes()
    assert hashlib.sha256(gpl).hexdigest() == GPL3_SHA256


def test_the_host_wheel_carries_the_console(dist):
    """The console's page, styles and modules are package data: a server installed from
    the wheel serves the same console as one run from the source tree."""
    static = REPO / "host" / "src" / "fxhost" / "api" / "console" / "static"
    expected = {
        f"fxhost/api/console/static/{p.relative_to(static).as_posix()}"
        for p in static.rglob("*")
        if p.is_file()
    }
    wheel = next(dist.glob("fxhost-[0-9]*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        present = set(zf.namelist())
    assert "fxhost/api/console/static/index.html" in expected
    assert expected <= present, sorted(expected - present)


pytestmark = pytest.mark.skipif(UV is None, reason="uv is not on PATH")
