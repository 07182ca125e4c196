"""The plugin registry: discovery through real entry points, and every way a plugin fails."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated

import msgspec
import numpy as np
import pytest
from fxhost.catalog.config import Config, PluginsConfig, parse_config
from fxhost.catalog.registry import (
    PluginInfo,
    Registry,
    RejectedEffect,
    UnknownEffectError,
    load_registry,
    params_schema,
)
from fxhost_sdk import Params, param
from procenv import child_env

Write = Callable[[str, str], str]
Source = Callable[..., str]
Load = Callable[..., Registry]

ACME = '''\
"""Acme's effects for fxhost: packaged the way any third party would."""

from typing import Annotated

import numpy as np
from fxhost_sdk import Effect, Params, hookimpl, param


class AcmeGain(Effect):
    name = "acme_gain"
    version = "1.2.0"
    summary = "Acme's gain, in decibels."

    class Params(Params):
        gain_db: Annotated[
            float, param(description="Gain.", ge=-60.0, le=24.0, unit="dB")
        ] = 0.0

    def apply_params(self, params):
        self._factor = np.float32(10.0 ** (params.gain_db / 20.0))

    def process(self, block):
        return block * self._factor


@hookimpl
def fxhost_effects():
    return [AcmeGain]
'''


def write_distribution(
    root: Path, package: str, source: str, *, dist: str, version: str, entry_points: str
) -> Path:
    """A package as pip would install it: the code and a real ``.dist-info`` folder."""
    root.mkdir(parents=True, exist_ok=True)
    (root / package).mkdir()
    (root / package / "__init__.py").write_text(source)
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\nRequires-Dist: fxhost-sdk\n"
    )
    (info / "entry_points.txt").write_text(entry_points)
    (info / "RECORD").write_text("")
    return root


@pytest.fixture
def acme_site(tmp_path: Path) -> Path:
    return write_distribution(
        tmp_path / "site",
        "acme_fx",
        ACME,
        dist="acme-fx",
        version="1.0",
        entry_points="[fxhost]\nacme = acme_fx\n",
    )


@pytest.fixture
def forget_modules():
    """Forget the test distributions' modules after the test."""
    yield
    for name in list(sys.modules):
        if name.split(".")[0] in {"acme_fx", "other_fx"}:
            del sys.modules[name]


# -- discovery through a real entry point ------------------------------------------------


def test_third_party_plugin_found_through_its_entry_point(
    acme_site: Path, monkeypatch: pytest.MonkeyPatch, forget_modules: None
) -> None:
    monkeypatch.syspath_prepend(str(acme_site))

    registry = load_registry(Config())

    acme = registry.plugin("acme")
    assert acme.load_seconds is not None and 0 <= acme.load_seconds < 60
    assert msgspec.structs.replace(acme, load_seconds=None, advice=None) == PluginInfo(
        name="acme",
        source="entry-point",
        module="acme_fx",
        distribution="acme-fx",
        version="1.0",
        status="loaded",
        effects=["acme_gain"],
    )
    info = registry.get("acme_gain")
    assert (info.plugin, info.version, info.summary) == (
        "acme",
        "1.2.0",
        "Acme's gain, in decibels.",
    )
    assert info.params_schema["properties"]["gain_db"]["x-unit"] == "dB"
    effect = info.cls(48000, 2, {"gain_db": -6.0})
    out = effect.process(np.ones((2, 8), dtype=np.float32))
    assert out.dtype == np.float32
    assert out.shape == (2, 8)
    np.testing.assert_allclose(out, 10 ** (-6 / 20), rtol=1e-6)


def test_third_party_plugin_found_in_a_fresh_interpreter(acme_site: Path, tmp_path: Path) -> None:
    """Nothing in-process is faked: a new Python with only PYTHONPATH set finds the plugin."""
    script = textwrap.dedent(
        """
        import sys
        import msgspec
        import numpy as np
        from fxhost.catalog.registry import load_registry

        registry = load_registry()
        effect = registry.get("acme_gain").cls(44100, 1, {"gain_db": 6.0})
        peak = float(effect.process(np.full((1, 4), 0.5, dtype=np.float32)).max())
        sys.stdout.write(msgspec.json.encode({"registry": registry.view(), "peak": peak}).decode())
        """
    )
    env = child_env({"PYTHONPATH": str(acme_site)})
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    plugins = {plugin["name"]: plugin for plugin in result["registry"]["plugins"]}
    assert plugins["acme"]["status"] == "loaded"
    assert plugins["acme"]["distribution"] == "acme-fx"
    assert plugins["acme"]["effects"] == ["acme_gain"]
    effects = {effect["name"]: effect for effect in result["registry"]["effects"]}
    assert effects["acme_gain"]["plugin"] == "acme"
    assert effects["acme_gain"]["params_schema"]["type"] == "object"
    assert result["peak"] == pytest.approx(0.5 * 10 ** (6 / 20), rel=1e-6)


@pytest.mark.parametrize("name", ["acme", "acme_fx"])
def test_entry_point_disabled_by_entry_point_or_module_name(
    name: str, acme_site: Path, monkeypatch: pytest.MonkeyPatch, forget_modules: None
) -> None:
    monkeypatch.syspath_prepend(str(acme_site))
    sys.modules.pop("acme_fx", None)

    registry = load_registry(Config(plugins=PluginsConfig(disable=[name])))

    assert registry.plugin("acme").status == "disabled"
    assert "acme_gain" not in registry
    assert "acme_fx" not in sys.modules  # a disabled plugin is not even imported
    assert not [warning for warning in registry.warnings if "matches no plugin" in warning]


@pytest.mark.parametrize("first_on_path", ["acme", "other"])
def test_same_entry_point_name_in_two_distributions(
    first_on_path: str,
    acme_site: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    forget_modules: None,
) -> None:
    other_site = write_distribution(
        tmp_path / "other-site",
        "other_fx",
        ACME.replace("acme_gain", "other_gain"),
        dist="other-fx",
        version="2.0",
        entry_points="[fxhost]\nacme = other_fx\n",
    )
    sites = [acme_site, other_site] if first_on_path == "acme" else [other_site, acme_site]
    for site in reversed(sites):
        monkeypatch.syspath_prepend(str(site))

    registry = load_registry(Config())

    # Sorted by distribution name whatever the order on sys.path: acme-fx wins.
    both = [plugin for plugin in registry.plugins if plugin.name == "acme"]
    assert [(p.distribution, p.status) for p in both] == [
        ("acme-fx", "loaded"),
        ("other-fx", "failed"),
    ]
    assert both[1].error == (
        "plugin name 'acme' is already used by entry point 'acme' (acme_fx, from acme-fx 1.0), "
        "loaded first; this one is entry point 'acme' (other_fx, from other-fx 2.0)"
    )
    assert "acme_gain" in registry
    assert "other_gain" not in registry


def test_entry_points_are_skipped_on_request(acme_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(acme_site))
    registry = load_registry(Config(), entry_points=False)
    assert registry.plugins == []
    assert len(registry) == 0


# -- plugins that fail: reported, skipped, the rest still loads ------------------------------


def failed(registry: Registry, name: str) -> str:
    plugin = registry.plugin(name)
    assert plugin.status == "failed", plugin
    assert plugin.effects == []
    assert plugin.error is not None
    assert "Traceback" not in plugin.error
    return plugin.error


@pytest.fixture
def good(
    write_module: Write,
    effect_source: Source,
    plugin_source: Source,
) -> str:
    """A plugin that works, loaded after the broken one: it must not be affected."""
    return write_module("good_fx", plugin_source(effect_source("Good", "good")))


def test_plugin_that_cannot_be_imported(
    good: str,
    registry_of: Load,
) -> None:
    registry = registry_of("no_such_fx_module", good)
    assert failed(registry, "no_such_fx_module") == (
        "import failed: ModuleNotFoundError: No module named 'no_such_fx_module'"
    )
    assert registry.plugin(good).status == "loaded"
    assert "good" in registry


@pytest.mark.parametrize(
    ("source", "error"),
    [
        (
            "import not_installed_dependency_xyz\n",
            "import failed: ModuleNotFoundError: No module named 'not_installed_dependency_xyz'",
        ),
        ("raise RuntimeError('no licence key')\n", "import failed: RuntimeError: no licence key"),
        ("def broken(:\n", "import failed: SyntaxError: "),
        ("import sys\nsys.exit(3)\n", "import failed: SystemExit: 3"),
    ],
    ids=["missing-dependency", "raises", "syntax-error", "sys-exit"],
)
def test_plugin_whose_import_fails(
    write_module: Write,
    good: str,
    source: str,
    error: str,
    registry_of: Load,
) -> None:
    module = write_module("broken_fx", source)
    registry = registry_of(module, good)
    assert failed(registry, module).startswith(error)
    assert "good" in registry


def test_hook_that_raises(
    write_module: Write,
    good: str,
    registry_of: Load,
) -> None:
    module = write_module(
        "raising_fx",
        HEADER_ONLY + "@hookimpl\ndef fxhost_effects():\n    raise ValueError('cannot find DSP library')\n",
    )
    registry = registry_of(module, good)
    assert failed(registry, module) == "fxhost_effects raised: ValueError: cannot find DSP library"
    assert "good" in registry
    assert registry.plugin_manager is not None
    assert registry.plugin_manager.get_plugin(module) is None  # unregistered again


HEADER_ONLY = "import fxhost_sdk\nfrom fxhost_sdk import hookimpl\n\n"


@pytest.mark.parametrize(
    ("returned", "error"),
    [
        ("None", "fxhost_effects returned NoneType, expected a list of effect classes"),
        ("{'gain': Gain}", "fxhost_effects returned dict, expected a list of effect classes"),
        ("Gain", "fxhost_effects returned ABCMeta, expected a list of effect classes"),
        (
            "['gain']",
            "fxhost_effects returned a list containing 'gain' (str), expected effect classes",
        ),
        ("[Gain(48000, 1)]", "fxhost_effects returned a list containing <"),
    ],
    ids=["none", "dict", "bare-class", "list-of-str", "list-of-instance"],
)
def test_hook_that_returns_something_else(
    write_module: Write,
    good: str,
    returned: str,
    error: str,
    effect_source: Source,
    plugin_source: Source,
    registry_of: Load,
) -> None:
    module = write_module("odd_fx", plugin_source(effect_source(), effects=returned))
    registry = registry_of(module, good)
    assert failed(registry, module).startswith(error)
    assert "gain" not in registry
    assert "good" in registry


def test_hookimpl_with_a_wrong_argument_fails_pluggy_validation(
    write_module: Write,
    good: str,
    registry_of: Load,
) -> None:
    module = write_module(
        "wrongarg_fx",
        HEADER_ONLY + "@hookimpl\ndef fxhost_effects(registry):\n    return []\n",
    )
    registry = registry_of(module, good)
    assert failed(registry, module) == (
        "invalid plugin: PluginValidationError: Plugin 'wrongarg_fx' for hook 'fxhost_effects'; "
        "hookimpl definition: fxhost_effects(registry); Argument(s) {'registry'} are declared "
        "in the hookimpl but can not be found in the hookspec"
    )
    assert "good" in registry


def test_hookimpl_with_a_misspelt_hook_name(
    write_module: Write,
    good: str,
    registry_of: Load,
) -> None:
    module = write_module("typo_fx", HEADER_ONLY + "@hookimpl\ndef fxhost_effect():\n    return []\n")
    registry = registry_of(module, good)
    assert failed(registry, module) == (
        "invalid plugin: unknown hook 'fxhost_effect' (fxhost hooks: 'fxhost_effects')"
    )
    assert "good" in registry


def test_hook_without_the_hookimpl_marker(
    write_module: Write,
    good: str,
    registry_of: Load,
) -> None:
    module = write_module("unmarked_fx", "def fxhost_effects():\n    return []\n")
    registry = registry_of(module, good)
    assert failed(registry, module) == (
        "invalid plugin: no fxhost_effects hook (is it decorated with fxhost_sdk.hookimpl?)"
    )


def test_plugin_with_no_effects_loads_with_a_warning(
    write_module: Write,
    plugin_source: Source,
    registry_of: Load,
) -> None:
    module = write_module("empty_fx", plugin_source(effects="[]"))
    registry = registry_of(module)
    assert registry.plugin(module).status == "loaded"
    assert registry.warnings == ["plugin 'empty_fx' provides no effects"]


# -- effect classes with problems: rejected, the plugin's other effects load ----------------


INVALID_DEFAULT = 'gain: Annotated[float, param(description="Gain.", ge=0.0, le=1.0)] = 2.0'
NO_DEFAULT = 'gain: Annotated[float, param(description="Gain.", ge=0.0, le=1.0)]'


@pytest.mark.parametrize(
    ("kwargs", "rejected"),
    [
        (
            {"cls": "PlainParams", "name": "plain_params", "params": False, "body": "Params = dict"},
            RejectedEffect(
                name="plain_params",
                cls="malformed_fx.PlainParams",
                reasons=["PlainParams.Params must be a subclass of fxhost_sdk.Params, got <class 'dict'>"],
            ),
        ),
        (
            {"cls": "BadName", "name": "Bad Name"},
            RejectedEffect(
                name="Bad Name",
                cls="malformed_fx.BadName",
                reasons=[
                    "BadName.name must be a string of lower-case letters, digits and '_' "
                    "starting with a letter, got 'Bad Name'"
                ],
            ),
        ),
        (
            {"cls": "Nameless", "name": None},
            RejectedEffect(
                name="Nameless",
                cls="malformed_fx.Nameless",
                reasons=[
                    "Nameless.name must be a string of lower-case letters, digits and '_' "
                    "starting with a letter, got None"
                ],
            ),
        ),
        (
            {"cls": "BadDefault", "name": "bad_default", "fields": (INVALID_DEFAULT,)},
            RejectedEffect(
                name="bad_default",
                cls="malformed_fx.BadDefault",
                reasons=[
                    "BadDefault.Params needs a valid default for every field "
                    "(params.gain: Expected float <= 1.0)"
                ],
            ),
        ),
        (
            {"cls": "NoDefault", "name": "no_default", "fields": (NO_DEFAULT,)},
            RejectedEffect(
                name="no_default",
                cls="malformed_fx.NoDefault",
                reasons=[
                    "NoDefault.Params needs a valid default for every field "
                    "(params.gain: required field missing)"
                ],
            ),
        ),
        (
            {"cls": "NotAnEffect", "name": "not_an_effect", "base": "object"},
            None,  # reason checked below: the repr of the class
        ),
    ],
    ids=["params-not-a-struct", "bad-name", "no-name", "invalid-default", "no-default", "not-an-effect"],
)
def test_malformed_effect_is_rejected_and_the_others_load(
    write_module: Write,
    effect_source: Source,
    plugin_source: Source,
    registry_of: Load,
    kwargs: dict,
    rejected: RejectedEffect | None,
) -> None:
    source = effect_source(**kwargs)
    module = write_module("malformed_fx", plugin_source(source, effect_source()))
    registry = registry_of(module)

    plugin = registry.plugin(module)
    assert plugin.status == "loaded"
    assert plugin.effects == ["gain"]
    assert "gain" in registry
    assert len(plugin.rejected) == 1
    if rejected is not None:
        assert plugin.rejected[0] == rejected
    else:
        assert plugin.rejected[0].reasons == [
            "<class 'malformed_fx.NotAnEffect'> is not a subclass of fxhost_sdk.Effect"
        ]


def test_effect_with_several_problems_lists_them_all(
    write_module: Write,
    plugin_source: Source,
    registry_of: Load,
) -> None:
    source = (
        "class Sloppy(fxhost_sdk.Effect):\n"
        "    name = 'Sloppy'\n"
        "    version = ''\n"
        "    summary = 'two\\nlines'\n"
    )
    module = write_module("sloppy_fx", plugin_source(source))
    (rejected,) = registry_of(module).plugin(module).rejected
    assert rejected.reasons == [
        "Sloppy.name must be a string of lower-case letters, digits and '_' starting with a "
        "letter, got 'Sloppy'",
        "Sloppy.version must be a non-empty string, got ''",
        "Sloppy.summary must be one line",
        "Sloppy does not implement process",
    ]


# -- name clashes: first registration wins, deterministically -------------------------------


@pytest.mark.parametrize("order", [("alpha_fx", "beta_fx"), ("beta_fx", "alpha_fx")])
def test_effect_name_clash_first_listed_module_wins(
    write_module: Write,
    order: tuple[str, str],
    effect_source: Source,
    plugin_source: Source,
    registry_of: Load,
) -> None:
    for module in ("alpha_fx", "beta_fx"):
        write_module(
            module,
            plugin_source(
                effect_source("Shared", "shared"),
                effect_source(f"Own{module[0]}", f"own_{module[0]}"),
            ),
        )

    first, second = order
    registry = registry_of(first, second)

    assert registry.get("shared").plugin == first
    assert registry.get("shared").cls.__module__ == first
    loser = registry.plugin(second)
    assert loser.status == "loaded"
    assert loser.effects == [f"own_{second[0]}"]  # its other effect is still there
    assert loser.rejected == [
        RejectedEffect(
            name="shared",
            cls=f"{second}.Shared",
            reasons=[
                f"effect name 'shared' is already registered by plugin {first!r} "
                f"({first}.Shared), which loaded first; plugin {second!r} ({second}.Shared) loses"
            ],
        )
    ]
    # The same inputs always give the same registry (but for how long each load took).
    again = registry_of(first, second)
    assert _untimed(again) == _untimed(registry)


def _untimed(registry: Registry) -> dict:
    view = msgspec.to_builtins(registry.view())
    for plugin in view["plugins"]:
        assert plugin.pop("load_seconds") >= 0
        plugin.pop("advice")  # None, or the advice for a slow plugin on a busy machine
    return view


def test_entry_points_load_before_config_modules(
    acme_site: Path,
    monkeypatch: pytest.MonkeyPatch,
    write_module: Write,
    forget_modules: None,
    effect_source: Source,
    plugin_source: Source,
) -> None:
    monkeypatch.syspath_prepend(str(acme_site))
    module = write_module("aaa_fx", plugin_source(effect_source("Impostor", "acme_gain")))

    registry = load_registry(Config(plugins=PluginsConfig(modules=[module])))

    assert registry.get("acme_gain").plugin == "acme"
    (rejected,) = registry.plugin(module).rejected
    assert "already registered by plugin 'acme'" in rejected.reasons[0]
    # Disabling the winner lets the other one in.
    registry = load_registry(Config(plugins=PluginsConfig(modules=[module], disable=["acme"])))
    assert registry.get("acme_gain").plugin == module


def test_module_already_loaded_through_an_entry_point(
    acme_site: Path, monkeypatch: pytest.MonkeyPatch, forget_modules: None
) -> None:
    monkeypatch.syspath_prepend(str(acme_site))
    registry = load_registry(Config(plugins=PluginsConfig(modules=["acme_fx"])))
    assert registry.plugin("acme").status == "loaded"
    assert failed(registry, "acme_fx") == (
        "module 'acme_fx' is the same object as plugin 'acme', already loaded"
    )


# -- disabled plugins ------------------------------------------------------------------------


def test_disabled_module_is_reported_and_not_imported(
    write_module: Write,
    good: str,
    registry_of: Load,
) -> None:
    module = write_module("off_fx", "raise RuntimeError('must not be imported')\n")
    registry = registry_of(module, good, disable=[module, "nothing-by-this-name"])

    plugin = registry.plugin(module)
    assert (plugin.status, plugin.error) == ("disabled", None)
    assert registry.plugin(good).status == "loaded"
    assert registry.warnings == [
        "plugins.disable: 'nothing-by-this-name' matches no plugin (entry-point or module name)"
    ]


def test_config_paths_make_local_modules_importable(
    tmp_path: Path,
    effect_source: Source,
    plugin_source: Source,
) -> None:
    local = tmp_path / "local_plugins"
    local.mkdir()
    (local / "local_fx.py").write_text(plugin_source(effect_source("Local", "local")))
    config = parse_config(
        '[plugins]\nmodules = ["local_fx"]\npaths = ["local_plugins"]\n',
        "plugins.toml",
        base_dir=tmp_path,
    )
    try:
        registry = load_registry(config, entry_points=False)
    finally:
        sys.modules.pop("local_fx", None)
    assert registry.plugin("local_fx").status == "loaded"
    assert "local" in registry
    assert sys.path[0] == str(local)
    assert registry.warnings == []


def test_config_path_that_does_not_exist_is_a_warning(tmp_path: Path) -> None:
    config = parse_config("[plugins]\npaths = ['gone']\n", "plugins.toml", base_dir=tmp_path)
    registry = load_registry(config, entry_points=False)
    assert registry.warnings == [f"plugins.paths: {str(tmp_path / 'gone')!r} is not a folder"]


# -- the registry as data --------------------------------------------------------------------


def test_unknown_effect_error_is_a_key_error_with_a_clear_message(fake_registry: Registry) -> None:
    with pytest.raises(KeyError) as caught:
        fake_registry.get("reverb")
    assert isinstance(caught.value, UnknownEffectError)
    # the one unknown-effect message of every entry point (chains, the CLI, the API)
    assert str(caught.value) == "unknown effect 'reverb'; available: gain, room"
    did_you_mean = r"^unknown effect 'rooms' \(did you mean 'room'\?\); available: gain, room$"
    with pytest.raises(KeyError, match=did_you_mean):
        fake_registry.get("rooms")
    assert "gain" in fake_registry
    assert [info.name for info in fake_registry] == ["gain", "room"]


def test_registry_serialises_to_json(fake_registry: Registry) -> None:
    data = json.loads(msgspec.json.encode(fake_registry.view()))
    assert data == fake_registry.to_builtins()
    assert [effect["name"] for effect in data["effects"]] == ["gain", "room"]
    (plugin,) = data["plugins"]
    assert 0 <= plugin.pop("load_seconds") < 60
    plugin.pop("advice")  # None, or the advice for a slow plugin on a busy machine
    assert plugin == {
        "name": "fake_fx",
        "source": "module",
        "module": "fake_fx",
        "distribution": None,
        "version": None,
        "status": "loaded",
        "error": None,
        "effects": ["room", "gain"],
        "rejected": [],
    }
    room = data["effects"][1]
    assert room["params_schema"] == {
        "title": "Params",
        "type": "object",
        "properties": {
            "room_size": {
                "description": "Size.",
                "x-scale": "linear",
                "type": "number",
                "minimum": 0.0,
                "maximum": 1.0,
                "default": 0.5,
            },
            "wet_level": {
                "description": "Wet.",
                "x-scale": "linear",
                "type": "number",
                "minimum": 0.0,
                "maximum": 1.0,
                "default": 0.33,
            },
        },
        "required": [],
        "additionalProperties": False,
    }


class Shape(Enum):
    SINE = "sine"
    SQUARE = "square"


class Lfo(msgspec.Struct):
    rate: float = 1.0
    shape: Shape = Shape.SINE


class NestedParams(Params):
    depth: Annotated[float, param(description="Depth.", ge=0, le=1)] = 0.5
    lfo: Lfo = msgspec.field(default_factory=Lfo)


def test_params_schema_inlines_nested_definitions() -> None:
    schema = params_schema(NestedParams)
    text = json.dumps(schema)
    assert "$ref" not in text
    assert "$defs" not in text
    assert schema["type"] == "object"
    assert schema["properties"]["lfo"]["properties"]["shape"]["enum"] == ["sine", "square"]


def test_an_effect_whose_params_cannot_be_evaluated_is_rejected_not_fatal(tmp_path, monkeypatch):
    """An annotation naming something that does not exist raises NameError when msgspec
    evaluates it: that effect is rejected; the host still loads the others."""
    module = tmp_path / "broken_annotations_fx.py"
    module.write_text(
        "from __future__ import annotations\n"
        "import fxhost_sdk\n"
        "class P(fxhost_sdk.Params):\n"
        "    level: NoSuchType = 1.0\n"
        "class Broken(fxhost_sdk.Effect):\n"
        "    name = 'broken'\n"
        "    version = '1'\n"
        "    summary = 'Never loads.'\n"
        "    Params = P\n"
        "    def process(self, block):\n"
        "        return block\n"
        "@fxhost_sdk.hookimpl\n"
        "def fxhost_effects():\n"
        "    return [Broken]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from fxhost.catalog.config import parse_config
    from fxhost.catalog.registry import load_registry

    registry = load_registry(parse_config('[plugins]\nmodules = ["broken_annotations_fx"]\n'))
    plugin = registry.plugin("broken_annotations_fx")
    assert plugin.status == "loaded" and plugin.effects == []
    assert "NameError" in plugin.rejected[0].reasons[0] and "NoSuchType" in plugin.rejected[0].reasons[0]
    assert "reverb" in registry
