"""How long each plugin takes to load, and first-party plugins that import heavy
libraries only when an effect needs them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable

from fxhost.catalog.registry import SLOW_PLUGIN_SECONDS, Registry
from procenv import child_env


def test_each_plugin_load_time_is_measured_and_a_slow_one_is_flagged(
    write_module: Callable[[str, str], str],
    effect_source: Callable[..., str],
    plugin_source: Callable[..., str],
    registry_of: Callable[..., Registry],
) -> None:
    # An import that sleeps stands for one that imports a heavy library at module level.
    heavy = plugin_source(effect_source("Slow", "slow_gain"), extra="\nimport time\ntime.sleep(0.15)\n")
    write_module("sleepy_plugin", heavy)
    write_module("quick_plugin", plugin_source(effect_source("Quick", "quick_gain")))
    registry = registry_of("sleepy_plugin", "quick_plugin")
    sleepy, quick = registry.plugin("sleepy_plugin"), registry.plugin("quick_plugin")
    assert sleepy.load_seconds is not None and sleepy.load_seconds >= 0.15
    assert sleepy.slow and sleepy.advice is not None
    assert f"plugin 'sleepy_plugin' took {1000 * sleepy.load_seconds:.0f} ms" in sleepy.advice
    assert "over 100 ms" in sleepy.advice and "lazily" in sleepy.advice
    assert quick.load_seconds is not None and quick.load_seconds < SLOW_PLUGIN_SECONDS and not quick.slow
    assert quick.advice is None
    # advice, not a warning: a busy machine can slow any plugin, and every command would say so
    assert registry.warnings == []
    listed = {p["name"]: p for p in registry.to_builtins()["plugins"]}
    assert listed["sleepy_plugin"]["load_seconds"] == sleepy.load_seconds
    assert listed["sleepy_plugin"]["advice"] == sleepy.advice


def test_a_plugin_that_fails_to_import_still_has_its_time(
    write_module: Callable[[str, str], str], registry_of: Callable[..., Registry]
) -> None:
    write_module("broken_plugin", "raise ImportError('no such library')\n")
    info = registry_of("broken_plugin").plugin("broken_plugin")
    assert info.status == "failed" and info.load_seconds is not None


def test_disabled_plugins_have_no_load_time(
    write_module: Callable[[str, str], str],
    effect_source: Callable[..., str],
    plugin_source: Callable[..., str],
    registry_of: Callable[..., Registry],
) -> None:
    write_module("off_plugin", plugin_source(effect_source()))
    info = registry_of("off_plugin", disable=["off_plugin"]).plugin("off_plugin")
    assert info.status == "disabled" and info.load_seconds is None


def test_loading_the_first_party_plugins_imports_no_scipy(tmp_path) -> None:
    """scipy (through the loudness meter) costs ~1 s of start-up: the first-party plugins
    must import it only when an effect measures, never when they are loaded."""
    script = textwrap.dedent(
        """
        import json, sys
        from fxhost.catalog.registry import load_registry

        registry = load_registry()
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("scipy", "pyloudnorm", "av"))
        plugins = {p.name: [p.status, p.load_seconds] for p in registry.plugins}
        print(json.dumps({"heavy": heavy, "plugins": plugins}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=child_env({}),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    for name in ("pedalboard", "feedback-delay", "mastering"):
        assert result["plugins"][name][0] == "loaded", result
    assert result["heavy"] == [], f"loading the plugins imported {result['heavy']}"
