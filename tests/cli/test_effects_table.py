"""The README's effect table is generated from the effects' schemas and must be current."""

from pathlib import Path

from clitools import REPO, run_fxhost
from fxhost.catalog.config import load_config
from fxhost.catalog.effects_table import effects_markdown, readme_table
from fxhost.catalog.registry import load_registry


def test_readme_effect_table_is_current():
    registry = load_registry(load_config(REPO / "plugins.toml"))
    assert readme_table(REPO / "README.md") == effects_markdown(registry), (
        "the README's effect table is stale: run `uv run fxhost effects --write README.md`"
    )


def test_effects_command_prints_the_same_table():
    result = run_fxhost("effects", "--markdown")
    assert result.returncode == 0, result.stderr
    assert result.stdout == readme_table(Path(REPO) / "README.md")
    assert "`reverb`" in result.stdout
