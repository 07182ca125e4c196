"""Fixtures for the registry and config tests: throwaway plugin modules on sys.path.

The tests define their own plugins (never the first-party ones, except where the
shipped plugins.toml is checked against what is really installed).
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fxhost.catalog.config import Config, PluginsConfig
from fxhost.catalog.registry import Registry, load_registry


def make_effect_source(
    cls: str = "Gain",
    name: str | None = "gain",
    *,
    fields: tuple[str, ...] = (
        'gain: Annotated[float, param(description="Linear gain.", ge=0.0, le=4.0)] = 1.0',
    ),
    body: str = "",
    base: str = "fxhost_sdk.Effect",
    params: bool = True,
) -> str:
    """Source of one effect class: a gain with one parameter by default."""
    lines = [f"class {cls}({base}):"]
    if name is not None:
        lines.append(f"    name = {name!r}")
    lines += ['    version = "1.0"', '    summary = "Multiplies the signal by a gain."']
    if params:
        lines.append("    class Params(fxhost_sdk.Params):")
        lines += [f"        {field}" for field in fields] or ["        pass"]
    lines.append(textwrap.indent(textwrap.dedent(body), "    "))
    lines += [
        "    def process(self, block):",
        '        return (block * getattr(self.params, "gain", 1.0)).astype(np.float32)',
        "",
    ]
    return "\n".join(lines)


HEADER = """\
from typing import Annotated

import fxhost_sdk
import numpy as np
from fxhost_sdk import hookimpl, param
"""


def make_plugin_source(*classes: str, effects: str | None = None, extra: str = "") -> str:
    """A plugin module: the classes, then a hookimpl returning ``effects`` (default: all)."""
    if effects is None:
        effects = "[" + ", ".join(_class_names(classes)) + "]"
    hook = f"\n@hookimpl\ndef fxhost_effects():\n    return {effects}\n"
    return HEADER + "\n".join(classes) + extra + hook


def _class_names(sources: tuple[str, ...]) -> list[str]:
    names = []
    for source in sources:
        for line in source.splitlines():
            if line.startswith("class "):
                names.append(line.split()[1].split("(")[0])
    return names


@pytest.fixture(autouse=True)
def _restore_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """load_registry prepends plugins.paths to sys.path: undo that after each test."""
    monkeypatch.setattr(sys, "path", list(sys.path))


@pytest.fixture
def effect_source() -> Callable[..., str]:
    """``effect_source(cls="Gain", name="gain", *, fields=(...), body="", base=..., params=True)``:
    the source of one effect class."""
    return make_effect_source


@pytest.fixture
def plugin_source() -> Callable[..., str]:
    """``plugin_source(*class_sources, effects=None, extra="")``: a plugin module's source."""
    return make_plugin_source


@pytest.fixture
def registry_of() -> Callable[..., Registry]:
    """``registry_of(*modules, disable=None)``: a registry of those modules only."""
    return load_modules


@pytest.fixture
def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], str]]:
    """``write_module(name, source)`` writes an importable module and returns its name;
    it is forgotten (sys.modules) after the test."""
    folder = tmp_path / "modules"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    written: list[str] = []

    def write(name: str, source: str) -> str:
        path = folder.joinpath(*name.split("."))
        if "." in name:
            for i in range(1, len(name.split("."))):
                package = folder.joinpath(*name.split(".")[:i])
                package.mkdir(exist_ok=True)
                (package / "__init__.py").touch()
        path.with_suffix(".py").write_text(source)
        written.append(name)
        return name

    yield write
    tops = {name.split(".")[0] for name in written}
    for name in list(sys.modules):
        if name.split(".")[0] in tops:
            del sys.modules[name]


def load_modules(*modules: str, disable: list[str] | None = None) -> Registry:
    """A registry of only the given modules (no installed entry points)."""
    config = Config(plugins=PluginsConfig(modules=list(modules), disable=disable or []))
    return load_registry(config, entry_points=False)


@pytest.fixture
def fake_registry(write_module: Callable[[str, str], str]) -> Registry:
    """Two test effects: ``room`` (a reverb-like parameter set) and ``gain``."""
    room = make_effect_source(
        "Room",
        "room",
        fields=(
            'room_size: Annotated[float, param(description="Size.", ge=0.0, le=1.0)] = 0.5',
            'wet_level: Annotated[float, param(description="Wet.", ge=0.0, le=1.0)] = 0.33',
        ),
    )
    module = write_module("fake_fx", make_plugin_source(room, make_effect_source()))
    registry = load_modules(module)
    assert sorted(registry.effects) == ["gain", "room"], registry.plugins
    return registry
