"""plugins.toml: its shape, its chains, and the exact wording of every error."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import msgspec
import numpy as np
import pytest
from fxhost.catalog.chains import (
    MAX_STEPS,
    Chain,
    ChainStep,
    EffectRef,
    build_chain,
    resolve_chain,
    validate_chain_name,
    validate_steps,
)
from fxhost.catalog.config import (
    ChainConfig,
    Config,
    ConfigError,
    PluginsConfig,
    load_config,
    parse_config,
)
from fxhost.catalog.registry import Registry, load_registry
from fxhost.runtime import check_chains, load_chains
from fxhost_sdk import FieldError

ROOT = Path(__file__).resolve().parents[2]

EXAMPLE = """
[plugins]
disable = ["feedback-delay"]
modules = ["my_effects.fx"]
paths = ["./local_plugins"]

[chains.vocal]
description = "Small room"
steps = [
  { effect = "room", params = { room_size = 0.3, wet_level = 0.2 } },
  { effect = "gain" },
]
"""

ARRAY_OF_TABLES = """
[plugins]
disable = ["feedback-delay"]
modules = ["my_effects.fx"]
paths = ["./local_plugins"]

[chains.vocal]
description = "Small room"

[[chains.vocal.steps]]
effect = "room"
params = { room_size = 0.3, wet_level = 0.2 }

[[chains.vocal.steps]]
effect = "gain"
"""


def parse(text: str, base_dir: Path | None = None) -> Config:
    return parse_config(textwrap.dedent(text), "plugins.toml", base_dir=base_dir)


def error_of(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return caught.value


# -- the shape of the file -----------------------------------------------------------------


def test_example_config(tmp_path: Path) -> None:
    config = parse(EXAMPLE, base_dir=tmp_path)
    assert config.source == "plugins.toml"
    assert config.plugins == PluginsConfig(
        disable=["feedback-delay"],
        modules=["my_effects.fx"],
        paths=[str(tmp_path / "local_plugins")],
    )
    assert config.chains == {
        "vocal": ChainConfig(
            description="Small room",
            steps=[
                ChainStep(effect="room", params={"room_size": 0.3, "wet_level": 0.2}),
                ChainStep(effect="gain", params={}),
            ],
        )
    }


def test_array_of_tables_form_is_the_same_config(tmp_path: Path) -> None:
    assert parse(ARRAY_OF_TABLES, base_dir=tmp_path) == parse(EXAMPLE, base_dir=tmp_path)


def test_empty_file_is_an_empty_config() -> None:
    assert parse("") == Config(source="plugins.toml")


@pytest.mark.parametrize(
    ("text", "message", "path"),
    [
        (
            "[chain.vocal]\nsteps = []\n",
            "plugins.toml: chain: unknown field (allowed: plugins, chains)",
            "chain",
        ),
        (
            "[plugins]\nmodule = ['x']\n",
            "plugins.toml: plugins.module: unknown field (allowed: disable, modules, paths, require)",
            "plugins.module",
        ),
        (
            "[plugins]\ndisable = 'feedback-delay'\n",
            "plugins.toml: plugins.disable: Expected array, got str",
            "plugins.disable",
        ),
        (
            "[plugins]\nmodules = ['ok', 3]\n",
            "plugins.toml: plugins.modules[1]: Expected str, got int",
            "plugins.modules[1]",
        ),
        (
            "[plugins]\nmodules = ['my-effects']\n",
            "plugins.toml: plugins.modules[0]: not a module name: 'my-effects'",
            "plugins.modules[0]",
        ),
        (
            "[plugins]\nmodules = ['a.fx', 'b', 'a.fx']\n",
            "plugins.toml: plugins.modules[2]: 'a.fx' is listed twice",
            "plugins.modules[2]",
        ),
        (
            "[plugins]\ndisable = ['']\n",
            "plugins.toml: plugins.disable[0]: not a plugin name: ''",
            "plugins.disable[0]",
        ),
        (
            "[plugins]\npaths = ['']\n",
            "plugins.toml: plugins.paths[0]: empty folder name",
            "plugins.paths[0]",
        ),
        ("chains = 3\n", "plugins.toml: chains: Expected object, got int", "chains"),
        (
            "[chains.vocal]\ndescription = 'no steps'\n",
            "plugins.toml: chains.vocal.steps: required field missing",
            "chains.vocal.steps",
        ),
        (
            "[chains.vocal]\nstep = []\nsteps = []\n",
            "plugins.toml: chains.vocal.step: unknown field (allowed: steps, description, max_latency_ms)",
            "chains.vocal.step",
        ),
        (
            "[chains.vocal]\ndescription = 1\nsteps = []\n",
            "plugins.toml: chains.vocal.description: Expected str, got int",
            "chains.vocal.description",
        ),
        (
            "[chains.vocal]\nsteps = { effect = 'room' }\n",
            "plugins.toml: chains.vocal.steps: Expected array, got object",
            "chains.vocal.steps",
        ),
        (
            "[[chains.vocal.steps]]\neffect = 'room'\n[[chains.vocal.steps]]\nparms = {}\n",
            "plugins.toml: chains.vocal.steps[1].parms: unknown field (allowed: effect, params, preset)",
            "chains.vocal.steps[1].parms",
        ),
        (
            "[[chains.vocal.steps]]\nparams = {}\n",
            "plugins.toml: chains.vocal.steps[0].effect: required field missing",
            "chains.vocal.steps[0].effect",
        ),
        (
            "[[chains.vocal.steps]]\neffect = 'room'\nparams = 0.3\n",
            "plugins.toml: chains.vocal.steps[0].params: Expected object, got float",
            "chains.vocal.steps[0].params",
        ),
        (
            "[[chains.Vocal.steps]]\neffect = 'room'\n",
            "plugins.toml: chains.Vocal: invalid chain name 'Vocal': use 1 to 64 lower-case "
            "letters, digits, '-' and '_', starting with a letter or digit",
            "chains.Vocal",
        ),
        (
            "[[chains.\"my vocal\".steps]]\neffect = 'room'\n",
            "plugins.toml: chains.\"my vocal\": invalid chain name 'my vocal': use 1 to 64 "
            "lower-case letters, digits, '-' and '_', starting with a letter or digit",
            'chains."my vocal"',
        ),
    ],
    ids=[
        "unknown-top-level-key",
        "unknown-plugins-key",
        "disable-not-a-list",
        "module-not-a-string",
        "bad-module-name",
        "module-twice",
        "empty-disable-name",
        "empty-path",
        "chains-not-a-table",
        "chain-without-steps",
        "unknown-chain-key",
        "description-not-a-string",
        "steps-not-a-list",
        "unknown-step-key",
        "step-without-effect",
        "params-not-a-table",
        "upper-case-chain-name",
        "chain-name-with-space",
    ],
)
def test_config_errors_name_the_file_and_the_path(text: str, message: str, path: str) -> None:
    error = error_of(text)
    assert str(error) == message
    assert (error.source, error.path, error.line) == ("plugins.toml", path, None)


def test_toml_syntax_error_gives_file_line_and_column() -> None:
    error = error_of('[plugins]\ndisable = []\n\n[chains.vocal]\ndescription "x"\n')
    assert str(error) == ("plugins.toml:5:13: invalid TOML: Expected '=' after a key in a key/value pair")
    assert (error.line, error.column, error.path) == (5, 13, None)


def test_toml_duplicate_table_is_a_syntax_error_with_its_line() -> None:
    error = error_of("[chains.vocal]\nsteps = []\n[chains.vocal]\nsteps = []\n")
    assert str(error) == "plugins.toml:3:14: invalid TOML: Cannot declare ('chains', 'vocal') twice"


# -- finding the file ----------------------------------------------------------------------


def test_explicit_file_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(missing)
    assert str(caught.value) == f"{missing}: file not found"


def test_missing_default_file_is_an_empty_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config() == Config()
    assert load_config("plugins.toml", required=False) == Config()
    with pytest.raises(ConfigError, match=r"^plugins.toml: file not found$"):
        load_config("plugins.toml")


def test_default_file_is_read_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("plugins.toml").write_text(EXAMPLE)
    config = load_config()
    assert config.source == "plugins.toml"
    assert list(config.chains) == ["vocal"]
    assert config.plugins.paths == [str(tmp_path / "local_plugins")]


def test_paths_are_relative_to_the_file_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "etc").mkdir()
    file = tmp_path / "etc" / "fx.toml"
    file.write_text("[plugins]\npaths = ['plugins', '../shared', '/opt/fx']\n")
    monkeypatch.chdir(ROOT)
    assert load_config(file).plugins.paths == [
        str(tmp_path / "etc" / "plugins"),
        str(tmp_path / "shared"),
        "/opt/fx",
    ]


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    file = tmp_path / "plugins.toml"
    file.write_bytes(b"[plugins]\ndisable = ['\xff']\n")
    with pytest.raises(ConfigError) as caught:
        load_config(file)
    assert str(caught.value) == f"{file}: not UTF-8 text: invalid start byte at byte 22"


def test_syntax_error_in_a_file_names_that_file(tmp_path: Path) -> None:
    file = tmp_path / "fx.toml"
    file.write_text("[chains.vocal\n")
    with pytest.raises(ConfigError) as caught:
        load_config(file)
    assert str(caught.value).startswith(f"{file}:1:")


# -- chains against the registry -----------------------------------------------------------


def chains_error(text: str, registry: Registry) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_chains(parse(text), registry)
    return caught.value


def test_chains_are_validated_with_defaults_filled_in(fake_registry: Registry) -> None:
    chains = load_chains(parse(EXAMPLE), fake_registry)
    assert chains == {
        "vocal": Chain(
            name="vocal",
            description="Small room",
            source="config",
            steps=[
                ChainStep(effect="room", params={"room_size": 0.3, "wet_level": 0.2}),
                ChainStep(effect="gain", params={"gain": 1.0}),
            ],
        )
    }
    resolved = resolve_chain("vocal", chains, fake_registry.classes)
    assert resolved.name == "vocal"
    assert [step.cls.name for step in resolved.steps] == ["room", "gain"]
    assert resolved.steps[0].params.room_size == 0.3
    assert msgspec.json.decode(msgspec.json.encode(chains)) == msgspec.to_builtins(chains)


def test_parameter_out_of_range(fake_registry: Registry) -> None:
    error = chains_error(
        """
        [chains.vocal]
        steps = [
          { effect = "gain" },
          { effect = "room", params = { room_size = 1.3 } },
        ]
        """,
        fake_registry,
    )
    assert str(error) == "plugins.toml: chains.vocal.steps[1].params.room_size: Expected float <= 1.0"
    assert error.path == "chains.vocal.steps[1].params.room_size"
    assert [e.path for e in error.errors] == [error.path]


def test_unknown_effect_says_which_effects_exist(fake_registry: Registry) -> None:
    error = chains_error('[[chains.vocal.steps]]\neffect = "rooom"\n', fake_registry)
    assert str(error) == (
        "plugins.toml: chains.vocal.steps[0].effect: unknown effect 'rooom' "
        "(did you mean 'room'?); available: gain, room"
    )


def test_unknown_effect_with_no_effects_loaded() -> None:
    empty = Registry({}, [])
    error = chains_error('[[chains.vocal.steps]]\neffect = "reverb"\n', empty)
    assert str(error) == (
        "plugins.toml: chains.vocal.steps[0].effect: unknown effect 'reverb': "
        "no effects are loaded (see `fxhost plugins`)"
    )


def test_unknown_parameter_lists_the_effects_parameters(fake_registry: Registry) -> None:
    error = chains_error(
        '[[chains.vocal.steps]]\neffect = "room"\nparams = { roomsize = 0.3 }\n', fake_registry
    )
    assert str(error) == (
        "plugins.toml: chains.vocal.steps[0].params.roomsize: unknown parameter of 'room' "
        "(it has: room_size, wet_level)"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("true", "Expected float, got bool"),
        ("'0.3'", "Expected float, got str"),
        ("-0.1", "Expected float >= 0.0"),
        ("{ x = 1 }", "Expected float, got object"),
    ],
)
def test_parameter_of_the_wrong_type(fake_registry: Registry, value: str, message: str) -> None:
    error = chains_error(
        f'[[chains.vocal.steps]]\neffect = "room"\nparams = {{ wet_level = {value} }}\n',
        fake_registry,
    )
    assert str(error) == f"plugins.toml: chains.vocal.steps[0].params.wet_level: {message}"


def test_integers_are_accepted_for_float_parameters(fake_registry: Registry) -> None:
    chains = load_chains(
        parse('[[chains.big.steps]]\neffect = "room"\nparams = { room_size = 1 }\n'), fake_registry
    )
    assert chains["big"].steps[0].params["room_size"] == 1.0


def test_chain_with_no_steps(fake_registry: Registry) -> None:
    error = chains_error("[chains.silence]\nsteps = []\n", fake_registry)
    assert str(error) == "plugins.toml: chains.silence.steps: a chain needs at least one step"


def test_chain_with_too_many_steps(fake_registry: Registry) -> None:
    steps = ", ".join(['{ effect = "gain" }'] * (MAX_STEPS + 1))
    error = chains_error(f"[chains.long]\nsteps = [{steps}]\n", fake_registry)
    assert str(error) == "plugins.toml: chains.long.steps: a chain has at most 64 steps, got 65"
    steps = ", ".join(['{ effect = "gain" }'] * MAX_STEPS)
    assert len(load_chains(parse(f"[chains.long]\nsteps = [{steps}]\n"), fake_registry)["long"].steps) == 64


def test_every_invalid_chain_is_reported_at_once(fake_registry: Registry) -> None:
    text = """
    [chains.a]
    steps = [{ effect = "nope" }]
    [chains.good]
    steps = [{ effect = "gain" }]
    [chains.b]
    steps = [{ effect = "gain", params = { gain = 9.0 } }]
    """
    error = chains_error(text, fake_registry)
    assert str(error) == (
        "plugins.toml: chains.a.steps[0].effect: unknown effect 'nope'; available: gain, room\n"
        "plugins.toml: chains.b.steps[0].params.gain: Expected float <= 4.0"
    )
    assert [e.path for e in error.errors] == ["chains.a.steps[0].effect", "chains.b.steps[0].params.gain"]
    chains, errors = check_chains(parse(text), fake_registry)
    assert list(chains) == ["good"]
    assert len(errors) == 2


def test_config_built_in_code_is_named_in_errors(fake_registry: Registry) -> None:
    config = Config(chains={"x": ChainConfig(steps=[ChainStep(effect="none")])})
    with pytest.raises(ConfigError, match=r"^<default config>: chains\.x\.steps\[0\]\.effect: "):
        load_chains(config, fake_registry)


# -- chains without TOML (what the API reuses) ---------------------------------------------


def test_validate_steps_on_decoded_json(fake_registry: Registry) -> None:
    steps = validate_steps([{"effect": "gain", "params": {"gain": 2}}], fake_registry.classes)
    assert steps[0].effect == "gain"
    assert steps[0].params.gain == 2.0
    assert steps[0].to_step() == ChainStep(effect="gain", params={"gain": 2.0})
    # ChainStep instances are accepted too
    assert validate_steps([ChainStep(effect="gain")], fake_registry.classes)[0].params.gain == 1.0


@pytest.mark.parametrize(
    ("steps", "path", "message"),
    [
        ({"effect": "gain"}, "", "steps: Expected array, got object"),
        ([], "chain", "chain.steps: a chain needs at least one step"),
        ([{"effect": "gain"}, {"effect": 3}], "", "steps[1].effect: Expected str, got int"),
        ([{"effect": "gain", "extra": 1}], "", "steps[0].extra: unknown field"),
        (
            [{"effect": "room", "params": {"room_size": 2}}],
            "",
            "steps[0].params.room_size: Expected float <= 1.0",
        ),
        (
            [{"effect": "room", "params": {"room_size": math.nan}}],
            "",
            "steps[0].params.room_size: Expected float >= 0.0",
        ),
    ],
)
def test_validate_steps_errors(fake_registry: Registry, steps: object, path: str, message: str) -> None:
    with pytest.raises(FieldError) as caught:
        validate_steps(steps, fake_registry.classes, path)
    assert str(caught.value) == message


def test_build_chain_checks_the_name(fake_registry: Registry) -> None:
    chain = build_chain("my-chain_2", [{"effect": "gain"}], fake_registry.classes, source="api")
    assert chain == Chain(
        name="my-chain_2", steps=[ChainStep(effect="gain", params={"gain": 1.0})], source="api"
    )
    for bad in ["", "-x", "UPPER", "a" * 65, "a b", "a.b"]:
        with pytest.raises(FieldError, match=r"^name: invalid chain name"):
            build_chain(bad, [{"effect": "gain"}], fake_registry.classes)
    assert validate_chain_name("0" + "a" * 63) == "0" + "a" * 63


@pytest.mark.parametrize(
    ("spec", "path", "message"),
    [
        ("nope", "chain", "chain: unknown chain 'nope' (available: vocal)"),
        ([{"effect": "roomm"}], "chain", "chain[0].effect: unknown effect 'roomm' (did you mean 'room'?)"),
        ([{"effect": "room", "preset": "x"}], "steps", "steps[0].preset: room has no preset 'x'"),
        (EffectRef("gainn", {}), "steps[0]", "steps[0].effect: unknown effect 'gainn' (did you mean"),
        (EffectRef("gain", {"gain": 9}), "steps[0]", "steps[0].params.gain: Expected float <= 4.0"),
        (EffectRef("gain", {"gain": "9"}, query=True), "chain", "gain: Expected float <= 4.0"),
        (EffectRef("gain", {"gian": "1"}, query=True), "chain", "gian: unknown parameter of 'gain'"),
        (EffectRef("gian", {}, query=True), "chain", "effect: unknown effect 'gian' (did you mean 'gain'?)"),
    ],
)
def test_resolve_chain_names_the_field_for_every_kind_of_spec(
    fake_registry: Registry, spec: object, path: str, message: str
) -> None:
    """A chain's name, its steps, or one effect (typed, or from a query string): one
    resolver, one unknown-effect message, the failing field named as it was given."""
    chains = load_chains(parse(EXAMPLE), fake_registry)
    with pytest.raises(FieldError) as caught:
        resolve_chain(spec, chains, fake_registry.classes, path)  # type: ignore[arg-type]
    assert str(caught.value).startswith(message)


def test_resolve_chain_of_one_effect_from_a_query_parses_strings(fake_registry: Registry) -> None:
    resolved = resolve_chain(EffectRef("gain", {"gain": "2.5"}, query=True), {}, fake_registry.classes)
    assert resolved.name is None
    assert resolved.steps[0].params.gain == 2.5
    typed = resolve_chain(EffectRef("room", {"wet_level": 0.1}), {}, fake_registry.classes, "steps[0]")
    assert typed.steps[0].params.wet_level == 0.1
    assert typed.steps[0].params_path == "steps[0].params"


# -- the shipped plugins.toml against the plugins really installed --------------------------


def test_shipped_plugins_toml_loads_and_its_chains_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    config = load_config()
    assert config.source == "plugins.toml"
    registry = load_registry(config)

    first_party = {plugin.name: plugin for plugin in registry.plugins}
    for name in ("pedalboard", "feedback-delay"):
        assert first_party[name].status == "loaded", first_party[name]
        assert first_party[name].rejected == []
    chains = load_chains(config, registry)
    assert set(chains) == {"vocal-plate", "hall", "slapback", "ambient"}
    assert [step.effect for step in chains["ambient"].steps] == ["feedback_delay", "reverb"]

    # Every chain runs: a second of noise through fresh instances gives finite float32.
    rng = np.random.default_rng(0)
    block = rng.uniform(-0.5, 0.5, (2, 4800)).astype(np.float32)
    for chain in chains.values():
        steps = resolve_chain(chain.name, chains, registry.classes).steps
        effects = [step.cls(48000, 2, step.params) for step in steps]
        out = block
        for _ in range(10):
            out = block
            for effect in effects:
                out = effect.process(out)
        assert out.shape == (2, 4800)
        assert out.dtype == np.float32
        assert np.isfinite(out).all()
