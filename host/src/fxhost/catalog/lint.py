"""Checking a ``plugins.toml`` against the installed plugins, before it is deployed
(``fxhost check``) and when it is loaded (:func:`fxhost.runtime.load_chains`).

One finding per problem, each naming the file and the failing path::

    plugins.toml: chains.hall.steps[0].params.room_size: Expected `float` <= 1.0
    plugins.toml: plugins.require.pedalboard: plugin 'pedalboard' (...) 0.1.0 is installed; >=2 is required
    plugins.toml: chains.loud: warning: full-scale noise peaks at +6.00 dBFS through this chain: ...

Errors are what stops the server from starting: the file's syntax and shape (TOML
itself refuses a key given twice, with its line), unknown effects and parameters,
values out of range, unmet plugin version requirements, chains over their latency
budget. Warnings are what starts but may sound wrong: a chain that can clip a
full-scale input (found by rendering full-scale noise through it), a plugin that failed
to load, a ``disable`` entry that matches nothing.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np
from fxhost_sdk import FieldError

from fxhost.catalog.chains import (
    MAX_STEPS,
    Chain,
    ChainLatency,
    ResolvedStep,
    build_chain,
    chain_latency,
    check_latency_budget,
    stand_in_asset,
    validate_chain_name,
    validate_steps,
)
from fxhost.catalog.config import Config, ConfigError, from_data, load_config
from fxhost.catalog.registry import PluginInfo, Registry, load_registry
from fxhost.engine.compiled import CompiledChain, EffectFault

Severity = Literal["error", "warning"]

#: The clip test: full-scale noise this long, then the chain's tail (at most
#: TEST_TAIL_SECONDS) as silence; the noise's seed, so that a file checks the same twice.
TEST_SECONDS = 1.0
TEST_TAIL_SECONDS = 2.0
TEST_SEED = 16


class Finding(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One problem of a config file."""

    file: str
    severity: Severity
    message: str
    #: The failing path (``chains.hall.steps[0].params.room_size``); None for the file.
    path: str | None = None
    #: Set for TOML syntax errors.
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line is not None else self.file
        parts = [where, *([self.path] if self.path else [])]
        label = "warning: " if self.severity == "warning" else ""
        return f"{': '.join(parts)}: {label}{self.message}"


class ChainReport(msgspec.Struct, kw_only=True):
    """A chain as checked: its latency and the peak of the clip test (dBFS; None: silent
    or not measured)."""

    latency: ChainLatency | None = None
    max_latency_ms: float | None = None
    test_peak_dbfs: float | None = None


class Report(msgspec.Struct, kw_only=True):
    """What ``fxhost check --json`` prints."""

    file: str
    ok: bool
    errors: int
    warnings: int
    findings: list[Finding]
    chains: dict[str, ChainReport] = {}


# -- plugin versions ----------------------------------------------------------------


def _plugin_for(name: str, registry: Registry) -> PluginInfo | None:
    """The plugin a ``[plugins.require]`` key names: its entry-point or module name, or
    its distribution's (as PEP 503 normalises names: ``fxhost_Pedalboard`` is
    ``fxhost-pedalboard``)."""
    from packaging.utils import canonicalize_name  # see check_requirements

    wanted = canonicalize_name(name)
    for info in registry.plugins:
        names = {info.name, info.module, *([info.distribution] if info.distribution else [])}
        if name in names or wanted in {canonicalize_name(n) for n in names}:
            return info
    return None


def check_requirements(config: Config, registry: Registry) -> list[FieldError]:
    """The ``[plugins.require]`` entries the loaded plugins do not meet, one FieldError
    each at ``plugins.require.<name>``, naming the plugin, its installed version and the
    required one."""
    errors: list[FieldError] = []
    named: dict[str, str] = {}  # plugin -> the key that required it first
    for name, specifier in config.plugins.require.items():
        path = f"plugins.require.{name}"
        info = _plugin_for(name, registry)
        if info is not None and info.name in named:
            why = f"plugin {info.name!r} is required already, as plugins.require.{named[info.name]}"
            errors.append(FieldError(path, why))
            continue
        if info is not None:
            named[info.name] = name
        if info is None:
            errors.append(
                FieldError(path, f"plugin {name!r} {specifier} is required, but it is not installed")
            )
            continue
        which = f"plugin {info.name!r}" + (f" ({info.distribution})" if info.distribution else "")
        if info.status != "loaded":
            why = info.error if info.status == "failed" else "it is disabled in [plugins] disable"
            errors.append(FieldError(path, f"{which} {specifier} is required, but it did not load: {why}"))
            continue
        if info.version is None:
            errors.append(
                FieldError(
                    path,
                    f"{which} has no version (it is not an installed distribution); {specifier} is required",
                )
            )
            continue
        # Imported here: packaging costs every command ~15 ms (50 on a busy machine) and is
        # needed only when plugins.toml requires versions (bench/render_cli.py).
        from packaging.specifiers import SpecifierSet
        from packaging.version import InvalidVersion, Version

        try:
            met = SpecifierSet(specifier).contains(Version(info.version), prereleases=True)
        except InvalidVersion:
            met = False
        if not met:
            errors.append(FieldError(path, f"{which} {info.version} is installed; {specifier} is required"))
    return errors


# -- chains -----------------------------------------------------------------------


def check_chains(
    config: Config, registry: Registry, sample_rate: int | None = None
) -> tuple[dict[str, Chain], list[FieldError]]:
    """Validate every chain of ``config`` against ``registry``: the valid chains (every
    parameter filled in) and one FieldError per invalid chain (its first problem). With
    ``sample_rate`` each chain's latency is measured at that rate and held to its
    ``max_latency_ms``."""
    chains: dict[str, Chain] = {}
    errors: list[FieldError] = []
    for name, chain in config.chains.items():
        try:
            chains[name] = build_chain(
                name,
                chain.steps,
                registry.classes,
                description=chain.description,
                path=f"chains.{name}",
                max_latency_ms=chain.max_latency_ms,
                sample_rate=sample_rate,
            )
        except FieldError as error:
            errors.append(error)
    return chains, errors


def test_signal(sample_rate: int, channels: int = 2, seconds: float = TEST_SECONDS) -> np.ndarray:
    """White noise peaking at full scale (1.0), float32 ``(channels, frames)``, the same
    every time: broadband like program material, with a crest factor like music's (its
    RMS near -13 dBFS). A full-scale sine sweep was tried first: it rings reverbs' combs
    up to +14 dBFS, a worst case that flagged chains real material does not clip."""
    frames = max(1, int(sample_rate * seconds))
    noise = np.random.default_rng(TEST_SEED).standard_normal((channels, frames))
    return (noise / np.max(np.abs(noise))).astype(np.float32)


def test_peak(steps: Sequence[ResolvedStep], sample_rate: int) -> float:
    """The sample peak of the full-scale test signal through ``steps`` (with its tail,
    up to TEST_TAIL_SECONDS), linear."""
    signal = test_signal(sample_rate)
    chain = CompiledChain(steps, sample_rate, signal.shape[0], assets=stand_in_asset)
    tail = chain.tail_frames(TEST_TAIL_SECONDS)
    whole = np.concatenate([signal, np.zeros((signal.shape[0], tail), np.float32)], axis=1)
    out = chain.process_whole(whole)
    return float(np.max(np.abs(out))) if out.size else 0.0


def _dbfs(peak: float) -> float | None:
    return None if peak <= 0 else round(20 * math.log10(peak), 2)


def lint_config(path: str, sample_rate: int) -> Report:
    """Every finding of the config file at ``path``, checked against the installed
    plugins (loaded as ``fxhost serve`` would, with its ``[plugins]`` table); nothing is
    started, no database opened. Chains' latencies are measured at ``sample_rate``."""
    findings: list[Finding] = []
    reports: dict[str, ChainReport] = {}

    def add(severity: Severity, where: str | None, message: str, source: str) -> None:
        findings.append(Finding(file=source, severity=severity, path=where or None, message=message))

    try:
        config = load_config(path, required=True)
    except ConfigError as error:
        if not (error.path or "").startswith("chains."):
            return _report(path, [_finding(error)], reports)
        # A chain's shape: read the others without it, so that each is reported.
        config, shapes = _without_misshapen_chains(path)
        findings += [_finding(error) for error in shapes]
        if config is None:
            return _report(path, findings, reports)
    source = config.display_name
    registry = load_registry(config)
    for info in registry.failed:
        add("warning", "plugins", f"plugin {info.name!r} failed to load: {info.error}", source)
    for warning in registry.warnings:
        where, sep, message = warning.partition(": ")
        add(
            "warning",
            where if sep and where.startswith("plugins.") else None,
            message if sep else warning,
            source,
        )
    for error in check_requirements(config, registry):
        add("error", error.path, error.message, source)

    for name, chain in config.chains.items():
        path_of = f"chains.{name}"
        try:
            validate_chain_name(name, path_of)
        except FieldError as error:
            add("error", error.path, error.message, source)
            continue
        steps: list[ResolvedStep] = []
        broken = False
        # Step by step, so that every bad step is reported, not only the first.
        for i, step in enumerate(chain.steps):
            try:
                resolved = validate_steps([step], registry.classes, path_of)[0]
            except FieldError as error:
                add(
                    "error",
                    error.path.replace(f"{path_of}.steps[0]", f"{path_of}.steps[{i}]", 1),
                    error.message,
                    source,
                )
                broken = True
                continue
            steps.append(resolved)
        if not chain.steps or len(chain.steps) > MAX_STEPS:
            add(
                "error",
                f"{path_of}.steps",
                f"a chain has 1 to {MAX_STEPS} steps, not {len(chain.steps)}",
                source,
            )
            continue
        if broken:
            continue
        report = reports[name] = ChainReport(max_latency_ms=chain.max_latency_ms)
        try:
            report.latency = chain_latency(steps, sample_rate, path_of)
            check_latency_budget(report.latency, chain.max_latency_ms, steps, path_of)
        except FieldError as error:
            add("error", error.path, error.message, source)
        try:
            peak = test_peak(steps, sample_rate)
        except (EffectFault, FieldError) as fault:
            add("error", path_of, f"the test signal could not be rendered: {fault}", source)
            continue
        report.test_peak_dbfs = _dbfs(peak)
        if peak > 1.0:
            add(
                "warning",
                path_of,
                f"full-scale noise peaks at {report.test_peak_dbfs:+.2f} dBFS through this chain: "
                "it can clip a full-scale input; lower a gain or end the chain with a limiter",
                source,
            )
    return _report(source, findings, reports)


def _finding(error: ConfigError) -> Finding:
    return Finding(
        file=error.source,
        severity="error",
        path=error.path,
        line=error.line,
        column=error.column,
        message=error.message,
    )


def _without_misshapen_chains(path: str) -> tuple[Config | None, list[ConfigError]]:
    """The config at ``path`` (readable TOML, its ``chains`` a table) read without the
    chains whose shape is wrong, and the error of each of those; (None, errors) when the
    rest is wrong too (its first error last)."""
    file = Path(path)
    data = tomllib.loads(file.read_text("utf-8"))
    errors: list[ConfigError] = []
    good: dict[str, Any] = {}
    for name, chain in data.get("chains", {}).items():
        try:
            from_data({"chains": {name: chain}}, path, file.parent)
        except ConfigError as error:
            errors.append(error)
        else:
            good[name] = chain
    try:
        return from_data({**data, "chains": good}, path, file.parent), errors
    except ConfigError as error:
        return None, [*errors, error]


def _report(source: str, findings: list[Finding], chains: dict[str, ChainReport]) -> Report:
    errors = sum(1 for f in findings if f.severity == "error")
    return Report(
        file=source,
        ok=errors == 0,
        errors=errors,
        warnings=len(findings) - errors,
        findings=findings,
        chains=chains,
    )
