"""The ``fxhost`` command line: serve, worker, render, plugins, chains, check, validate,
keys, new-plugin.

Errors are one line on stderr and a non-zero exit, never a traceback
(set ``FXHOST_DEBUG=1`` to see one).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import sys
import tomllib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import click
import msgspec
import soundfile as sf
from fxhost_sdk import FieldError

from fxhost.audio.formats import FLOAT_SUBTYPES, AudioFormatError
from fxhost.catalog.config import ConfigError
from fxhost.catalog.registry import Registry, load_registry
from fxhost.engine.compiled import EffectFault
from fxhost.runtime import Runtime, load_config_of, load_runtime
from fxhost.settings import Settings, env_name, load_settings

if TYPE_CHECKING:
    from fxhost.catalog.chains import Chain, ResolvedChain
    from fxhost.engine.offline import RenderResult

#: Files at least this long (in seconds) get a progress bar when stderr is a terminal.
PROGRESS_MIN_SECONDS = 10.0
#: The summary of ``render --out-dir`` names this many failed inputs (each has its line above).
FAILED_NAMED = 10

# Errors a user can cause and fix; anything else is a bug in fxhost or a plugin.
USER_ERRORS = (FieldError, ConfigError, AudioFormatError, sf.LibsndfileError, OSError, KeyError)


class Context:
    """Settings, then plugins and chains loaded only by the commands that need them."""

    def __init__(self, settings: Settings):
        self.settings = settings

    @functools.cached_property
    def runtime(self) -> Runtime:
        return load_runtime(self.settings)

    @functools.cached_property
    def registry(self) -> Registry:
        """The plugins alone: listing them must work even when a chain is broken."""
        return load_registry(load_config_of(self.settings))


pass_context = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    help="The plugins and chains file (default: $FXHOST_PLUGINS_CONFIG or ./plugins.toml).",
)
@click.version_option(package_name="fxhost")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """fxhost: an audio effects host. Effects are plugins; chains come from plugins.toml."""
    settings = load_settings()
    if config_path is not None:
        settings = msgspec.structs.replace(settings, plugins_config=config_path)
    logging.basicConfig(level=settings.log_level.upper(), format="fxhost: %(levelname)s: %(message)s")
    ctx.obj = Context(settings)


@cli.command()
@click.option("--host", help="Interface to listen on (default: $FXHOST_HOST or 127.0.0.1).")
@click.option("--port", type=int, help="Port (default: $FXHOST_PORT or 8000).")
@click.option("--workers", type=int, help="Server processes (default: $FXHOST_WORKERS or 1).")
@pass_context
def serve(context: Context, host: str | None, port: int | None, workers: int | None) -> None:
    """Start the HTTP server."""
    import asyncio

    import uvicorn

    from fxhost.store.db import migrate_database

    settings = context.settings
    runtime = context.runtime  # a bad plugins.toml stops here, in one line
    for plugin in runtime.registry.failed:
        click.echo(f"fxhost: plugin {plugin.name!r} failed: {plugin.error}", err=True)
    # Migrate once, here, so that worker processes starting together do not race.
    asyncio.run(migrate_database(settings.database_url))
    _check_storage(settings)
    # Worker processes read their settings from the environment: pass the CLI's on.
    os.environ[env_name("plugins_config")] = settings.plugins_config
    host = host or settings.host
    made = _metrics_directory(settings, host)
    options: dict[str, Any] = dict(
        factory=True,
        host=host,
        port=settings.port if port is None else port,
        workers=workers or settings.workers,
        log_level=settings.log_level,
        timeout_graceful_shutdown=10,
        # Frames up to 4x the limit reach the app, which answers with an error message
        # before closing; anything larger uvicorn closes itself (1009).
        ws_max_size=4 * settings.max_frame_bytes,
        # PCM barely compresses, and permessage-deflate cost 2.5x the CPU per block.
        ws_per_message_deflate=False,
    )
    try:
        if options["workers"] > 1:
            from fxhost.supervisor import serve_workers

            serve_workers(uvicorn.Config("fxhost.api.app:create_app", **options))
        else:  # one process: the app itself reloads plugins.toml on SIGHUP
            uvicorn.run("fxhost.api.app:create_app", **options)
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)


def _check_storage(settings: Settings) -> None:
    """Stop here, in one line naming the setting, when the storage cannot be used (a bad
    URL, an unreachable endpoint, a missing bucket), rather than in every worker."""
    import asyncio

    from fxhost.services import storage_of
    from fxhost.store.storage.objects import StorageUnavailable

    try:
        asyncio.run(storage_of(settings).start())
    except StorageUnavailable as error:
        raise click.ClickException(f"{env_name(error.setting)}: {error}") from None


@cli.command()
@click.option("--workers", type=int, help="Renders run at once (default: $FXHOST_RENDER_WORKERS or 2).")
@pass_context
def worker(context: Context, workers: int | None) -> None:
    """Start a render node: run renders queued by the servers (FXHOST_RENDER_QUEUE=postgres).

    It needs the servers' database, plugins and storage: the same FXHOST_STORAGE_URL (an
    object store needs no folder shared with them; local folders must be the servers')."""
    import asyncio

    from fxhost.services import run_render_node
    from fxhost.store.db import migrate_database

    settings = context.settings
    if settings.render_queue != "postgres":
        raise click.ClickException(
            f"{env_name('render_queue')} is {settings.render_queue!r}: a render node takes renders from "
            f"the postgres render queue; set {env_name('render_queue')}=postgres and a PostgreSQL "
            f"{env_name('database_url')}, as for the servers"
        )
    if workers is not None:
        settings = msgspec.structs.replace(settings, render_workers=workers)
    runtime = context.runtime  # a bad plugins.toml stops here, in one line
    for plugin in runtime.registry.failed:
        click.echo(f"fxhost: plugin {plugin.name!r} failed: {plugin.error}", err=True)
    asyncio.run(migrate_database(settings.database_url))
    _check_storage(settings)
    asyncio.run(run_render_node(settings, runtime))


#: prometheus_client's multiprocess mode: every process that imports it with this set
#: keeps its values in files there, and a scrape sums them.
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
#: The private directories ``fxhost serve`` makes when the operator set none:
#: ``fxhost-metrics-PID-XXXX`` in the temporary folder.
METRICS_DIR_PREFIX = "fxhost-metrics-"


def _metrics_directory(settings: Settings, host: str) -> str | None:
    """Prepare multiprocess metrics before any worker imports prometheus_client: the
    operator's PROMETHEUS_MULTIPROC_DIR emptied of an earlier run's files, or a private
    one made (returned, to be removed at exit). Checks FXHOST_METRICS_PORT can be had."""
    import socket
    import tempfile

    if not settings.metrics:
        return None
    if settings.metrics_port is not None:
        # Every worker listens there with SO_REUSEPORT; a port another program holds
        # would leave /metrics unserved: say so now, in one line.
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                probe.bind((host, settings.metrics_port))
            except OSError as error:
                raise click.ClickException(
                    f"{env_name('metrics_port')}: cannot listen on {host}:{settings.metrics_port}: "
                    f"{error.strerror or error}"
                ) from None
    directory = os.environ.get(METRICS_DIR_VARIABLE)
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        for stale in Path(directory).glob("*.db"):
            stale.unlink(missing_ok=True)
        return None
    # uvicorn ends a server stopped by SIGTERM with the signal itself, so the directory
    # outlives it: those of servers that are gone are removed here.
    for old in Path(tempfile.gettempdir()).glob(f"{METRICS_DIR_PREFIX}*-*"):
        pid = old.name.removeprefix(METRICS_DIR_PREFIX).split("-", 1)[0]
        with contextlib.suppress(OSError, ValueError):
            if old.stat().st_uid == os.getuid() and not _running(int(pid)):
                shutil.rmtree(old, ignore_errors=True)
    made = tempfile.mkdtemp(prefix=f"{METRICS_DIR_PREFIX}{os.getpid()}-")
    os.environ[METRICS_DIR_VARIABLE] = made
    return made


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_context
def plugins(context: Context, as_json: bool) -> None:
    """List installed plugins, their effects, and what failed to load."""
    from rich.console import Console
    from rich.table import Table

    logging.getLogger("fxhost.catalog.registry").setLevel(logging.ERROR)  # the table says it all
    registry = context.registry
    if as_json:
        click.echo(msgspec.json.format(msgspec.json.encode(registry.view())).decode())
        return
    table = Table(title="plugins")
    for column in ("plugin", "source", "version", "status", "load ms", "effects / problem"):
        table.add_column(column, justify="right" if column == "load ms" else "left")
    for info in registry.plugins:
        detail = ", ".join(info.effects) if info.status == "loaded" else (info.error or "")
        rejected = [f"rejected {r.name}: {'; '.join(r.reasons)}" for r in info.rejected]
        detail = "\n".join([d for d in [detail, *rejected] if d])
        version = info.version or ""
        load = (
            ""
            if info.load_seconds is None
            else f"{1000 * info.load_seconds:.0f}" + (" SLOW" if info.slow else "")
        )
        style = {"failed": "red", "disabled": "dim"}.get(info.status, "yellow" if info.slow else "")
        table.add_row(info.name, info.source, version, info.status, load, detail, style=style)
    Console(width=200).print(table)
    for warning in registry.warnings:
        click.echo(f"warning: {warning}", err=True)
    for info in registry.plugins:
        if info.advice:
            click.echo(f"slow: {info.advice}", err=True)


@cli.command()
@click.option("--markdown", is_flag=True, help="Print the README's effect table.")
@click.option(
    "--write",
    "readme",
    metavar="README",
    type=click.Path(dir_okay=False, exists=True),
    help="Write the effect table into this file, between its markers.",
)
@pass_context
def effects(context: Context, markdown: bool, readme: str | None) -> None:
    """List the installed effects with their parameters and presets."""
    from fxhost.catalog.effects_table import effects_markdown, write_readme

    if readme:
        changed = write_readme(Path(readme), context.registry)
        click.echo(f"{readme}: {'updated' if changed else 'already current'}", err=True)
        return
    if markdown:
        click.echo(effects_markdown(context.registry), nl=False)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="effects")
    for column in ("effect", "plugin", "summary", "presets"):
        table.add_column(column)
    for info in context.registry:
        table.add_row(info.name, info.plugin, info.summary, ", ".join(info.cls.presets))
    Console(width=200).print(table)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_context
def chains(context: Context, as_json: bool) -> None:
    """List the named chains of plugins.toml."""
    from rich.console import Console
    from rich.table import Table

    found = list(context.runtime.chains.values())
    if as_json:
        click.echo(msgspec.json.format(msgspec.json.encode(found)).decode())
        return
    rate = context.settings.default_sample_rate
    table = Table(title=f"chains ({context.runtime.config.display_name}; latency at {rate} Hz)")
    for column in ("chain", "steps", "latency", "description"):
        table.add_column(column)
    for chain in found:
        steps = " -> ".join(step.effect for step in chain.steps)
        table.add_row(chain.name, steps, _latency_text(chain), chain.description)
    Console(width=200).print(table)


@cli.command()
@click.argument("file", required=False, metavar="[FILE]")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON (for CI).")
@click.option("--strict", is_flag=True, help="Exit non-zero on warnings too.")
@click.option(
    "--sample-rate",
    type=click.IntRange(1, 768_000),
    metavar="HZ",
    help="Measure latencies and the clip test at this rate (default: $FXHOST_DEFAULT_SAMPLE_RATE).",
)
@pass_context
def check(context: Context, file: str | None, as_json: bool, strict: bool, sample_rate: int | None) -> None:
    """Check a plugins.toml before deploying it; nothing is started.

    FILE defaults to --config, $FXHOST_PLUGINS_CONFIG or ./plugins.toml. One line per
    finding, naming the file and the path; exit status 1 on any error (with --strict, on
    any warning too), 0 otherwise. Errors: TOML syntax (a key given twice), unknown
    effects and parameters, values out of range, unmet [plugins.require] versions, chains
    over their max_latency_ms. Warnings: chains that can clip a full-scale input (a test
    sweep is rendered through each), plugins that failed to load."""
    from fxhost.catalog.lint import lint_config

    # The findings say what the registry's log lines would, once each.
    logging.getLogger("fxhost.catalog.registry").setLevel(logging.CRITICAL)
    path = file if file is not None else context.settings.plugins_config
    report = lint_config(path, sample_rate or context.settings.default_sample_rate)
    if as_json:
        click.echo(msgspec.json.format(msgspec.json.encode(report)).decode())
    else:
        for finding in report.findings:
            click.echo(str(finding))
        chains = f", {len(report.chains)} chain(s) checked" if report.chains else ""
        click.echo(f"{report.file}: {report.errors} error(s), {report.warnings} warning(s){chains}", err=True)
    if not report.ok or (strict and report.warnings):
        sys.exit(1)


def _latency_text(chain: Chain) -> str:
    """``0 frames (0 ms)``, with the chain's budget when it has one."""
    if chain.latency is None:
        return "?"
    text = f"{chain.latency.frames} frames ({chain.latency.ms:g} ms)"
    return text if chain.max_latency_ms is None else f"{text}, max {chain.max_latency_ms:g} ms"


def parse_assignments(assignments: Sequence[str]) -> dict[str, Any]:
    """``["room_size=0.8", "freeze_mode=true"]`` -> a params mapping; values are TOML
    literals (numbers, booleans, quoted strings), anything else a plain string."""
    params: dict[str, Any] = {}
    for item in assignments:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise FieldError("--set", f"expected KEY=VALUE, got {item!r}")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        params[key] = value
    return params


@cli.command()
@click.argument("effect")
@click.option("--sample-rate", type=float, default=48000, show_default=True)
@click.option(
    "--set", "assignments", multiple=True, metavar="KEY=VALUE", help="A parameter to test with (repeatable)."
)
@click.option(
    "--min-realtime",
    type=click.FloatRange(min=0, min_open=True),
    metavar="FACTOR",
    help="Fail if the effect is slower than FACTOR times real time at any common block size.",
)
@pass_context
def validate(
    context: Context,
    effect: str,
    sample_rate: float,
    assignments: tuple[str, ...],
    min_realtime: float | None,
) -> None:
    """Run the SDK's conformance validator on an installed effect."""
    from fxhost_sdk.testing import check_effect

    info = context.registry.get(effect)
    report = check_effect(
        info.cls,
        sample_rate=sample_rate,
        params=parse_assignments(assignments) or None,
        min_realtime=min_realtime,
    )
    click.echo(str(report))
    if not report.passed:
        sys.exit(1)


@cli.command("new-plugin")
@click.argument("name")
@click.option(
    "--dir",
    "parent",
    default=".",
    show_default=True,
    metavar="DIR",
    help="Where to make the plugin's folder (DIR/NAME).",
)
@click.option(
    "--sdk",
    metavar="PATH|WHEEL",
    help="Where the plugin gets fxhost-sdk: an SDK folder or a built wheel "
    "(default: the sdk folder of the checkout fxhost runs from).",
)
def new_plugin(name: str, parent: str, sdk: str | None) -> None:
    """Scaffold the plugin NAME (e.g. acme-echo) in a new folder: a tested, working effect."""
    from fxhost.scaffold import new_plugin as scaffold

    folder = scaffold(name, parent, sdk)
    click.echo(f"made {folder}")
    click.echo(f"  test it:     cd {folder} && uv run pytest")
    click.echo(f"  install it:  uv add --editable {folder}   (in the host's project)")
    click.echo("  see it:      uv run fxhost plugins")


@cli.command()
@click.argument("paths", metavar="INPUT OUTPUT | INPUT... --out-dir DIR", nargs=-1)
@click.option("--chain", "chain_name", metavar="NAME", help="A chain from plugins.toml.")
@click.option("--effect", metavar="NAME", help="A single effect instead of a chain.")
@click.option(
    "--set", "assignments", multiple=True, metavar="KEY=VALUE", help="A parameter of --effect (repeatable)."
)
@click.option("--preset", metavar="NAME", help="Start --effect from one of its presets.")
@click.option("--no-tail", is_flag=True, help="Cut the output at the input's length.")
@click.option(
    "--subtype",
    metavar="TYPE",
    help="Sample type, e.g. PCM_16, PCM_24, FLOAT (default: by the output rule, see README).",
)
@click.option(
    "--ceiling-dbfs",
    type=float,
    metavar="DB",
    help="True-peak ceiling (-60..0 dBFS): a limiter as the last step keeps the output under it.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar (default: on a terminal, for long files or a batch).",
)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Render every INPUT (files, or folders' audio files) into DIR (made if missing).",
)
@click.option(
    "--format",
    "format_name",
    metavar="NAME",
    help="With --out-dir: the outputs' format (wav, flac, ogg, opus, mp3, aiff...; default: each input's).",
)
@click.option(
    "--recursive", "-r", is_flag=True, help="With --out-dir: folders' sub-folders too, kept in DIR."
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(1, 64),
    metavar="N",
    help="With --out-dir: files rendered at once, each in a process (default: $FXHOST_RENDER_WORKERS or 2).",
)
@click.option("--overwrite", is_flag=True, help="With --out-dir: replace outputs that exist.")
@pass_context
def render(
    context: Context,
    paths: tuple[str, ...],
    chain_name: str | None,
    effect: str | None,
    assignments: tuple[str, ...],
    preset: str | None,
    no_tail: bool,
    subtype: str | None,
    ceiling_dbfs: float | None,
    progress: bool | None,
    out_dir: Path | None,
    format_name: str | None,
    recursive: bool,
    jobs: int | None,
    overwrite: bool,
) -> None:
    """Render INPUT through a chain into OUTPUT (format from OUTPUT's extension), or every
    INPUT into --out-dir DIR.

    Prints the output's sample peak and clipped samples, and warns when any clipped.

    With --out-dir, each INPUT is a file (read by content, whatever its name) or a folder,
    of which the files named as audio are taken (.wav, .flac, .ogg, .mp3, .aiff, .m4a...;
    not hidden ones; sub-folders with --recursive, kept as DIR/SUB/). Each output is
    DIR/NAME.EXT: the input's name, and the extension of --format or else of the input's
    own format (by content; WAV for one fxhost only reads, such as M4A). Outputs that
    exist are refused, before anything is rendered, unless --overwrite. The files render
    --jobs at once, each in a worker process within $FXHOST_RENDER_TIMEOUT_SECONDS; one
    that fails is named with its reason and the others go on; the exit status is 1 if
    any failed."""
    if out_dir is None:
        batch_only = {
            "--format": format_name,
            "--recursive": recursive,
            "--jobs": jobs,
            "--overwrite": overwrite,
        }
        given = [name for name, value in batch_only.items() if value]
        if given:
            verb = "apply" if len(given) > 1 else "applies"
            raise click.UsageError(f"{', '.join(given)} only {verb} with --out-dir DIR")
        if len(paths) != 2:
            raise click.UsageError(
                f"expected INPUT OUTPUT, got {len(paths)} path(s); to render several files or a folder, "
                "give them with --out-dir DIR"
            )
        for what, path in zip(("INPUT", "OUTPUT"), paths, strict=True):
            if os.path.isdir(path):
                raise click.UsageError(f"{what}: {path} is a folder; render folders with --out-dir DIR")
        _render_one(
            context, *paths, chain_name, effect, assignments, preset, no_tail, subtype, ceiling_dbfs, progress
        )
        return
    if not paths:
        raise click.UsageError("give the files or folders to render into --out-dir")
    _render_many(
        context,
        [Path(p) for p in paths],
        out_dir,
        chain_name,
        effect,
        assignments,
        preset,
        no_tail=no_tail,
        output=RenderOptions(format_name, subtype, ceiling_dbfs),
        progress=progress,
        recursive=recursive,
        jobs=jobs or context.settings.render_workers,
        overwrite=overwrite,
    )


def _render_chain(
    context: Context,
    chain_name: str | None,
    effect: str | None,
    assignments: tuple[str, ...],
    preset: str | None,
) -> tuple[Runtime, ResolvedChain, Callable[[str, str], Path]]:
    """The chain ``render`` was asked for, checked, with the lookup of its asset files."""
    from fxhost.audio.files import probe
    from fxhost.catalog.chains import ChainSpec, EffectRef

    if (chain_name is None) == (effect is None):
        raise click.UsageError("give exactly one of --chain NAME or --effect NAME")
    if (assignments or preset) and effect is None:
        raise click.UsageError(
            "--set and --preset apply to --effect; a chain's parameters live in plugins.toml"
        )
    runtime = context.runtime
    spec: ChainSpec
    if chain_name is not None:
        spec, path = chain_name, "chain"
    else:
        assert effect is not None
        spec, path = EffectRef(effect, parse_assignments(assignments), preset), "steps[0]"
    try:
        chain = runtime.resolve(spec, path)
    except FieldError as error:
        if chain_name is None or error.path != "chain":
            raise
        raise FieldError("chain", f"{error.message}; {where_chains_are(runtime)}") from None
    # Asset parameters (an impulse response) are file paths here.
    config_dir = Path(runtime.config.source).parent if runtime.config.source else Path.cwd()
    find_asset = asset_files(config_dir)
    for ref, where in chain.asset_refs():  # each must exist and be audio
        try:
            probe(find_asset(ref, where))
        except AudioFormatError as error:
            raise FieldError(where, str(error)) from None
    return runtime, chain, find_asset


def _render_one(
    context: Context,
    input_path: str,
    output_path: str,
    chain_name: str | None,
    effect: str | None,
    assignments: tuple[str, ...],
    preset: str | None,
    no_tail: bool,
    subtype: str | None,
    ceiling_dbfs: float | None,
    progress: bool | None,
) -> None:
    from fxhost.audio.files import load_audio, probe
    from fxhost.audio.formats import RenderOutput, format_of_path
    from fxhost.engine.offline import render_file

    runtime, chain, find_asset = _render_chain(context, chain_name, effect, assignments, preset)
    if not os.path.exists(input_path):
        raise FileNotFoundError(f"{input_path}: no such file")

    output = RenderOutput(format=format_of_path(output_path), subtype=subtype, ceiling_dbfs=ceiling_dbfs)
    seconds = probe(input_path).duration
    show = sys.stderr.isatty() and seconds >= PROGRESS_MIN_SECONDS if progress is None else progress
    try:
        with progress_bar(show) as update:
            result = render_file(
                input_path,
                output_path,
                chain.steps,
                output=output,
                tail=not no_tail,
                max_tail_seconds=runtime.settings.max_tail_seconds,
                progress=update,
                assets=lambda ref, where: load_audio(find_asset(ref, where)),
            )
    except AudioFormatError as error:
        option = _output_option(error)
        if option is None:
            raise
        raise FieldError(option, str(error).removeprefix(f"{error.field}: ")) from None
    click.echo(_result_line(output_path, result), err=True)
    if result.clipped_samples:
        peak = _peak(result)
        what = "over full scale (kept in the float file)" if result.subtype in FLOAT_SUBTYPES else "clipped"
        click.echo(
            f"fxhost: warning: {result.clipped_samples} samples {what}, peak {peak} dBFS; "
            "lower the level or pass --ceiling-dbfs -1",
            err=True,
        )


def _output_option(error: AudioFormatError) -> str | None:
    """The option of ``render`` that an output error is about, if one is."""
    return {"subtype": "--subtype", "ceiling_dbfs": "--ceiling-dbfs", "format": "--format"}.get(
        error.field or ""
    )


def _peak(result: RenderResult) -> str:
    return "-inf" if result.peak_dbfs is None else f"{result.peak_dbfs:.2f}"


def _result_line(output_path: str | os.PathLike, result: RenderResult) -> str:
    """What ``render`` says of each output: its length, format, peak and clipped samples."""
    seconds_out = result.output_frames / result.input.sample_rate
    return (
        f"{os.fspath(output_path)}: {result.output_frames} frames ({seconds_out:.2f} s, "
        f"tail {result.tail_frames} frames), "
        f"{result.input.sample_rate} Hz, {result.input.channels} ch, {result.format}/{result.subtype}, "
        f"peak {_peak(result)} dBFS, {result.clipped_samples} clipped samples"
    )


class RenderOptions(NamedTuple):
    """The output options of ``render`` (with --out-dir, --format may be None: each input's)."""

    format: str | None
    subtype: str | None
    ceiling_dbfs: float | None


def _render_many(
    context: Context,
    inputs: list[Path],
    out_dir: Path,
    chain_name: str | None,
    effect: str | None,
    assignments: tuple[str, ...],
    preset: str | None,
    *,
    no_tail: bool,
    output: RenderOptions,
    progress: bool | None,
    recursive: bool,
    jobs: int,
    overwrite: bool,
) -> None:
    """``render --out-dir``: every input file into ``out_dir``, ``jobs`` at once, each
    failing alone; a line per file, a summary, exit status 1 if any failed."""
    import asyncio
    import time

    from fxhost.audio.files import probe
    from fxhost.audio.formats import (
        RenderOutput,
        check_ceiling,
        format_name_of,
        output_format_named,
    )
    from fxhost.engine.batch import BatchFile, FileOutcome, find_inputs, render_batch

    began = time.perf_counter()
    runtime, chain, find_asset = _render_chain(context, chain_name, effect, assignments, preset)
    try:  # what can be checked before any file is read
        fixed = output_format_named(output.format) if output.format is not None else None
        if fixed is not None and output.subtype is not None and output.subtype.upper() not in fixed.subtypes:
            raise AudioFormatError(
                f"subtype: {output.subtype!r} is not available for {fixed.name}; "
                f"use one of {', '.join(fixed.subtypes)}",
                "subtype",
            )
        check_ceiling(output.ceiling_dbfs)
    except AudioFormatError as error:
        raise FieldError(_output_option(error) or "--format", str(error).split(": ", 1)[-1]) from None

    failed: list[tuple[str, str]] = []  # (input, why), in the order found
    files: list[BatchFile] = []
    targets: dict[Path, str] = {}
    sources = {p.resolve() for p in inputs if p.is_file()}
    seconds: dict[Path, float] = {}
    for source, relative in find_inputs(inputs, recursive=recursive, skip=out_dir):
        label = os.fspath(source)
        try:  # each input's format, for its output's name, and its length, for the bar
            info = probe(source, display_name=label)
        except USER_ERRORS as error:
            failed.append((label, _one_line(error)))
            continue
        spec = fixed or output_format_named(format_name_of(info.format, info.subtype) or "wav")
        target = out_dir / relative.with_suffix(spec.extension)
        if target in targets:
            raise click.UsageError(f"{targets[target]} and {label} would both be written to {target}")
        if target.resolve() in sources or target.resolve() == source.resolve():
            raise click.UsageError(f"{label} would be replaced by its own output; choose another --out-dir")
        targets[target] = label
        rendered = RenderOutput(format=spec.name, subtype=output.subtype, ceiling_dbfs=output.ceiling_dbfs)
        files.append(BatchFile(source, target, rendered, label))
        seconds[source] = info.duration
    if not files and not failed:
        raise click.UsageError(f"no audio files in {', '.join(map(str, inputs))}")
    exist = [f.target for f in files if f.target.exists()]
    if exist and not overwrite:
        if len(exist) > 1:
            which = f"{exist[0]} and {len(exist) - 1} more exist already; pass --overwrite to replace them"
        else:
            which = f"{exist[0]} exists already; pass --overwrite to replace it"
        raise click.ClickException(f"{which}, or choose another --out-dir")
    for label, why in failed:
        click.echo(f"fxhost: {label}: {why.removeprefix(f'{label}: ')}", err=True)
    out_dir.mkdir(parents=True, exist_ok=True)

    assets = None
    refs = list(chain.asset_refs())
    if refs:  # a loader that pickles, for the workers: ref -> its file
        found = {ref: str(find_asset(ref, where)) for ref, where in refs}
        assets = functools.partial(_load_asset_file, found)
    total = sum(seconds.values())
    show = sys.stderr.isatty() if progress is None else progress
    clipped = 0

    def report(outcome: FileOutcome) -> None:
        nonlocal clipped
        file = outcome.file
        if outcome.error is not None:
            why = _one_line(outcome.error)
            failed.append((file.label, why))
            click.echo(f"fxhost: {file.label}: {why.removeprefix(f'{file.label}: ')}", err=True)
        else:
            assert outcome.result is not None
            clipped += outcome.result.clipped_samples > 0
            click.echo(_result_line(file.target, outcome.result), err=True)

    # The workers say "render workers ready" at INFO: news for a server's log, not here.
    logging.getLogger("fxhost.engine.workers").setLevel(logging.WARNING)
    with progress_bar(show and bool(files), f"rendering {len(files)} files") as update:
        fractions: dict[Path, float] = {}

        def advanced(file: BatchFile, fraction: float) -> None:
            fractions[file.source] = fraction
            if update is not None:
                update(sum(seconds[s] * f for s, f in fractions.items()), total)

        def finished(outcome: FileOutcome) -> None:
            advanced(outcome.file, 1.0)
            report(outcome)

        outcomes = asyncio.run(
            render_batch(
                files,
                chain.steps,
                workers=jobs,
                time_limit=runtime.settings.render_timeout_seconds,
                tail=not no_tail,
                max_tail_seconds=runtime.settings.max_tail_seconds,
                assets=assets,
                progress=advanced,
                finished=finished,
            )
        )
    done = sum(1 for outcome in outcomes if outcome.error is None)
    if clipped:
        click.echo(
            f"fxhost: warning: {clipped} output(s) have clipped samples (see above); "
            "lower the level or pass --ceiling-dbfs -1",
            err=True,
        )
    names = ", ".join(label for label, _ in failed[:FAILED_NAMED])
    more = f" and {len(failed) - FAILED_NAMED} more" if len(failed) > FAILED_NAMED else ""
    click.echo(
        f"fxhost: {done} done, {len(failed)} failed, in {time.perf_counter() - began:.2f} s"
        + (f"; failed: {names}{more}" if failed else ""),
        err=True,
    )
    if failed:
        sys.exit(1)


def _load_asset_file(files: dict[str, str], ref: str, path: str) -> Any:
    """A batch render's asset parameter (a file path, found before the render) decoded in
    a worker process: a module function, so that the loader pickles."""
    from fxhost.audio.files import load_audio

    if ref not in files:
        raise FieldError(path, f"no audio file {ref!r}")
    return load_audio(files[ref])


def where_chains_are(runtime: Runtime) -> str:
    """Which plugins.toml the chains came from (or was looked for), and how to name another."""
    how = "name another with `fxhost --config PATH` or FXHOST_PLUGINS_CONFIG=PATH"
    if runtime.config.source is None:
        looked = Path(runtime.settings.plugins_config).resolve()
        return f"no {looked} was found to read chains from: {how}"
    return f"chains are read from {Path(runtime.config.source).resolve()} ({how})"


def asset_files(*folders: Path) -> Callable[[str, str], Path]:
    """Asset parameters as ``fxhost render`` takes them: a file path, relative to the
    working directory or else to one of ``folders`` (the config file's). Returns the
    lookup: ``(value, field path) -> the file``, a FieldError naming the field if none."""

    def find(ref: str, path: str) -> Path:
        for base in (Path.cwd(), *folders):
            candidate = base / ref
            if candidate.is_file():
                return candidate
        raise FieldError(path, f"no audio file {ref!r}")

    return find


@contextlib.contextmanager
def progress_bar(show: bool, label: str = "rendering") -> Iterator[Callable[[float, float], None] | None]:
    """A rich progress bar on stderr, or nothing (rich is imported only when shown:
    it costs a noticeable part of a short render's start-up)."""
    if not show:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn(label),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("render", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@cli.group()
def keys() -> None:
    """API keys: with any key (or $FXHOST_API_KEYS), every /api and /ws route needs one.

    Only a key's SHA-256 is stored; the key is printed once, by create."""


def _with_database(settings: Settings, work: Callable[[], Any]) -> Any:
    """Run ``work`` (a coroutine function) with the database migrated and open."""
    import asyncio

    from fxhost.store.db import close_database, open_database

    logging.getLogger("tortoise").setLevel(logging.WARNING)  # "shutdown" is no news here

    async def run() -> Any:
        await open_database(settings.database_url)
        try:
            return await work()
        finally:
            await close_database()

    return asyncio.run(run())


@keys.command("create")
@click.argument("name")
@pass_context
def keys_create(context: Context, name: str) -> None:
    """Make a key called NAME and print it (it cannot be shown again)."""
    from fxhost.store.keys import create_key

    try:
        info, key = _with_database(context.settings, lambda: create_key(name))
    except ValueError as error:
        raise click.BadParameter(str(error).removeprefix("name: "), param_hint="NAME") from None
    click.echo(key)
    click.echo(f"fxhost: made key {info.id} ({info.name}); keep it now, it is not stored", err=True)


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_context
def keys_list(context: Context, as_json: bool) -> None:
    """List keys (id, name, the key's first characters, when made and revoked)."""
    from fxhost.store.keys import list_keys

    infos = _with_database(context.settings, list_keys)
    if as_json:
        click.echo(msgspec.json.format(msgspec.json.encode(infos)).decode())
        return
    for info in infos:
        revoked = f"revoked {info.revoked:%Y-%m-%d %H:%M}" if info.revoked else "active"
        click.echo(f"{info.id}  {info.prefix}…  {info.created:%Y-%m-%d %H:%M}  {revoked:<24}  {info.name}")
    if not infos:
        click.echo("no keys (the server runs open unless $FXHOST_API_KEYS is set)", err=True)


@keys.command("revoke")
@click.argument("key_ref", metavar="ID_OR_NAME")
@pass_context
def keys_revoke(context: Context, key_ref: str) -> None:
    """Revoke a key: it is refused from now on (what it made stays, unreachable)."""
    from fxhost.store.keys import revoke_key

    try:
        info = _with_database(context.settings, lambda: revoke_key(key_ref))
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="ID_OR_NAME") from None
    click.echo(f"revoked {info.id} ({info.name})")


def _one_line(error: BaseException) -> str:
    if isinstance(error, KeyError) and error.args:
        text = str(error.args[0])
    elif isinstance(error, OSError) and error.strerror and error.filename:
        text = f"{error.filename}: {error.strerror}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split()) if "\n" not in text.strip() else text.strip()


def main(argv: Sequence[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="fxhost", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("fxhost: aborted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        hint = f" (see: {error.ctx.command_path} --help)" if getattr(error, "ctx", None) else ""
        click.echo(f"fxhost: {error.format_message()}{hint}", err=True)
        sys.exit(error.exit_code)
    except USER_ERRORS as error:
        click.echo(f"fxhost: {_one_line(error)}", err=True)
        sys.exit(1)
    except EffectFault as error:  # a plugin's bug, not fxhost's: the report names the effect
        click.echo(f"fxhost: {error}", err=True)
        sys.exit(1)
    except Exception as error:
        if os.environ.get("FXHOST_DEBUG"):
            raise
        click.echo(f"fxhost: internal error: {type(error).__name__}: {_one_line(error)}", err=True)
        sys.exit(70)


if __name__ == "__main__":  # pragma: no cover
    main()
