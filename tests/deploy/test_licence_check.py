""".ci/licences.py, the CI step that lists every installed distribution's licence and
fails on one it does not know: on this environment, and on made-up distributions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / ".ci" / "licences.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def install_fake(site: Path, name: str, *headers: str) -> None:
    """A distribution as an installer leaves it: only its metadata matters here."""
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.4", f"Name: {name}", "Version: 1.0", *headers]
    (info / "METADATA").write_text("\n".join(lines) + "\n")


def rows(stdout: str) -> dict[str, list[str]]:
    return {
        line.split()[0]: line.split() for line in stdout.splitlines()[1:] if line.strip() and "  " in line
    }


def test_this_environment_passes_and_every_distribution_is_listed():
    import importlib.metadata

    result = run()
    assert result.returncode == 0, result.stdout + result.stderr
    listed = rows(result.stdout)
    installed = {d.metadata["Name"] for d in importlib.metadata.distributions()}
    assert installed <= set(listed)
    assert listed["pedalboard"][2] == "GPL" and listed["fxhost-pedalboard"][2] == "GPL"
    assert listed["fxhost-sdk"][2:4] == ["MIT", "MIT"]
    assert "0 with a licence that is unknown or not allowed" in result.stdout


def test_known_licences_in_every_form_pass(tmp_path):
    install_fake(tmp_path, "by-expression", "License-Expression: Apache-2.0 OR BSD-2-Clause")
    install_fake(tmp_path, "by-spdx-field", "License: ISC")
    install_fake(tmp_path, "by-classifier", "Classifier: License :: OSI Approved :: MIT License")
    install_fake(tmp_path, "by-text", "License: BSD 3-Clause License\n  Copyright (c) the authors")
    result = run("--path", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    listed = rows(result.stdout)
    assert [listed[n][2].rstrip(",") for n in ("by-classifier", "by-spdx-field", "by-text")] == [
        "MIT",
        "ISC",
        "BSD",
    ]
    assert listed["by-expression"][2:4] == ["Apache,", "BSD"]


def test_an_unknown_licence_fails_naming_the_distribution(tmp_path):
    install_fake(tmp_path, "fine", "License-Expression: MIT")
    install_fake(tmp_path, "secret-sauce", "License: Proprietary. All rights reserved.")
    install_fake(tmp_path, "custom-ref", "License-Expression: MIT AND LicenseRef-Custom")
    install_fake(tmp_path, "says-nothing")
    result = run("--path", str(tmp_path))
    assert result.returncode == 1
    assert "3 with a licence that is unknown or not allowed" in result.stdout
    problems = dict(line.strip().split(": ", 1) for line in result.stderr.splitlines())
    assert set(problems) == {"secret-sauce 1.0", "custom-ref 1.0", "says-nothing 1.0"}
    assert "Proprietary" in problems["secret-sauce 1.0"]
    assert "LicenseRef-Custom" in problems["custom-ref 1.0"]
    assert problems["says-nothing 1.0"] == "its metadata names no licence"


def test_gpl_outside_the_known_copyleft_distributions_fails(tmp_path):
    install_fake(
        tmp_path, "pedalboard", "Classifier: License :: OSI Approved :: GNU General Public License v3 (GPLv3)"
    )
    install_fake(tmp_path, "sneaky-gpl", "License-Expression: GPL-3.0-only")
    install_fake(tmp_path, "lesser", "License-Expression: LGPL-2.1-or-later")
    result = run("--path", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "sneaky-gpl 1.0: GPL outside the known copyleft distributions ('GPL-3.0-only')"
    )
