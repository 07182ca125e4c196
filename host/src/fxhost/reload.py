"""A running server reads ``plugins.toml`` again: on SIGHUP, and when the file changes
(watched with watchfiles unless ``FXHOST_CONFIG_WATCH=false``).

All or nothing: the new file goes through the start-up loading path
(:func:`~fxhost.runtime.load_runtime`: the file, the plugins, every chain checked against
them) before anything changes; a file that fails is refused, its errors (each naming the
file and the path) go to the log and to ``/api/audio/health``, and the server runs on as
it was. A good one replaces the runtime at once: the chains the API lists and resolves,
the effects it offers, the OpenAPI document; live streams made from a chain of the file
follow it (:meth:`~fxhost.engine.live.LiveChain.follow`: new parameters live, new steps
crossfaded). Renders under way keep the chain they were resolved with.

Each server process reloads on its own: every worker watches the file, and ``fxhost
serve --workers N`` hands SIGHUP on to each worker (see :mod:`fxhost.cli`); each one's
health shows the hash of the config it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

import msgspec
import watchfiles
from fxhost_sdk import FieldError

from fxhost.catalog.config import ConfigError
from fxhost.catalog.registry import Registry
from fxhost.engine import clock
from fxhost.engine.compiled import EffectFault
from fxhost.engine.streams import Stream
from fxhost.runtime import Reload, ReloadTrigger, Runtime, effect_origins, load_runtime
from fxhost.services import Services
from fxhost.store.render_queue import QueuedRenderService, plugin_set

log = logging.getLogger(__name__)

#: How long the watcher waits for a burst of file events (an editor's write, rename and
#: chmod) to end before reloading once.
WATCH_DEBOUNCE_MS = 200


class Reloader:
    """Reloads the config of one server process (its :class:`~fxhost.services.Services`).
    ``on_reload`` is told of each new runtime (the edge rebuilds what it derived from it)."""

    def __init__(self, services: Services, on_reload: Callable[[Runtime], None] | None = None):
        self.services = services
        self.on_reload = on_reload
        self._lock = asyncio.Lock()  # one reload at a time, in the order asked
        self._stop = asyncio.Event()
        self._watcher: asyncio.Task | None = None
        self._pending: set[asyncio.Task] = set()
        self._signal = False

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, self._signalled)
            self._signal = True
        except (RuntimeError, ValueError):  # not the main thread (an app run in a test client)
            log.debug("SIGHUP does not reload here: not the main thread")
        if self.services.settings.config_watch:
            self._watcher = asyncio.create_task(self._watch(), name="fxhost-config-watch")

    async def stop(self) -> None:
        if self._signal:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        self._stop.set()
        for task in [*self._pending, *([self._watcher] if self._watcher else [])]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _signalled(self) -> None:
        task = asyncio.create_task(self.reload("signal"))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _watch(self) -> None:
        file = Path(self.services.settings.plugins_config).absolute()
        try:
            async for _ in watchfiles.awatch(
                file.parent,
                # The folder, not the file: editors replace a file by renaming another onto it.
                watch_filter=lambda _change, path: os.path.basename(path) == file.name,
                debounce=WATCH_DEBOUNCE_MS,
                recursive=False,
                stop_event=self._stop,
            ):
                await self.reload("file")
        except (OSError, RuntimeError) as error:  # no such folder, no inotify watches left
            log.warning("%s is not watched (%s); SIGHUP still reloads it", file, error)

    async def reload(self, trigger: ReloadTrigger) -> Reload:
        """Read the config again and apply it if it is good; what happened is returned,
        logged, and kept for the health (``services.config.last_reload``)."""
        async with self._lock:
            svc = self.services
            old = svc.runtime
            status = svc.config
            assert status is not None, "services not started"
            try:
                # The start-up path: file, plugins, chains. In a thread: plugins import.
                new = await asyncio.to_thread(load_runtime, svc.settings)
            except Exception as error:  # a ConfigError names the file and path; else a bug
                if not isinstance(error, ConfigError):
                    log.exception("reading the config again failed")
                errors = str(error).splitlines() or [type(error).__name__]
                report = Reload(at=clock.now(), trigger=trigger, ok=False, errors=errors, hash=status.hash)
                log.error(
                    "%s: reload refused, nothing changed (config %s stays in force):\n%s",
                    old.config.display_name,
                    status.hash,
                    error,
                )
                svc.config = msgspec.structs.replace(status, last_reload=report)
                return report
            changes = _chain_changes(old, new)
            plugins, restart = _plugin_changes(old.registry, new.registry)
            changes += plugins
            restart += [
                f"plugins.paths: {folder!r} was removed; it stays on sys.path until a restart"
                for folder in old.config.plugins.paths
                if folder not in new.config.plugins.paths
            ]
            self._install(new)
            changes += await self._follow(old, new)
            now = clock.now()
            digest = new.config_hash
            report = Reload(
                at=now, trigger=trigger, ok=True, changes=changes, restart_needed=restart, hash=digest
            )
            svc.config = msgspec.structs.replace(
                status, source=new.config.display_name, hash=digest, loaded_at=now, last_reload=report
            )
            log.info(
                "%s reloaded (%s; config %s): %s",
                new.config.display_name,
                trigger,
                new.config_hash,
                "; ".join(changes) or "nothing changed",
            )
            for line in restart:
                log.warning("needs a restart: %s", line)
            return report

    def _install(self, new: Runtime) -> None:
        """From now on, requests see the new chains and effects."""
        svc = self.services
        svc.runtime = new
        svc.chains.config_chains = new.chains
        svc.chains.effects = new.registry.classes
        svc.chains.origins = effect_origins(new.registry)  # what renders record
        if isinstance(svc.renders, QueuedRenderService):  # what render nodes must match
            svc.renders.plugins = plugin_set(new.registry)
        if self.on_reload is not None:
            self.on_reload(new)

    async def _follow(self, old: Runtime, new: Runtime) -> list[str]:
        """The streams made from a chain of the file take its new version: one line each
        that changed (or could not)."""
        svc = self.services
        changes = []
        for stream in list(svc.streams.streams.values()):
            name = stream.chain_name
            if stream.closed or not stream.follows_config or name is None:
                continue
            chain = new.chains.get(name)
            if chain is None:
                changes.append(f"stream {stream.id}: chain {name!r} is gone; the stream keeps its steps")
                continue
            if old.chains.get(name) == chain:
                continue
            try:
                outcome = await follow_chain(svc, stream, name)
            except (FieldError, EffectFault) as error:
                changes.append(f"stream {stream.id}: cannot follow chain {name!r} ({error}); keeps its steps")
                continue
            changes.append(f"stream {stream.id}: {outcome} (chain {name!r})")
        return changes


async def follow_chain(svc: Services, stream: Stream, spec: str | list) -> str:
    """Switch ``stream`` to a chain (a name, or steps) as a reload or a PATCH does: the
    same effects take new parameters live, other steps are crossfaded in
    (``FXHOST_CROSSFADE_MS``). Returns what happened, in words. FieldError for a chain
    that is not valid live, EffectFault for one whose effects fail to start: the
    stream runs on as it was either way; an effect that fails to take its new
    parameters stops the stream (as a PATCH of a step does)."""
    resolved = await svc.chains.resolve(spec, "chain", tenant=stream.tenant, live=True)
    fade_ms = svc.settings.crossfade_ms
    fade = round(fade_ms / 1000 * stream.sample_rate)
    try:
        outcome = await stream.live.follow(resolved.steps, fade, resolved.assets)
    except EffectFault as fault:
        if fault.kind == "params":
            stream.fail(fault)
        raise
    stream.chain_name = spec if isinstance(spec, str) else None
    stream.follows_config = isinstance(spec, str) and spec in svc.chains.config_chains
    try:  # what other processes list for it
        await svc.registry.restore(stream.id, stream.tenant, msgspec.json.encode(stream.info()).decode())
    except Exception:  # the next heartbeat writes it again
        log.exception("stream %s: could not update the registry", stream.id)
    if outcome == "switched":
        return f"switched to new steps with a {fade_ms:g} ms crossfade" if fade else "switched to new steps"
    return "new parameters applied live" if outcome == "params" else "unchanged"


def _chain_changes(old: Runtime, new: Runtime) -> list[str]:
    before, after = old.chains, new.chains
    added = sorted(after.keys() - before.keys())
    removed = sorted(before.keys() - after.keys())
    changed = sorted(name for name in after.keys() & before.keys() if after[name] != before[name])
    return [
        f"{what} chain{'s' if len(names) > 1 else ''} {', '.join(map(repr, names))}"
        for what, names in (("added", added), ("changed", changed), ("removed", removed))
        if names
    ]


def _plugin_changes(old: Registry, new: Registry) -> tuple[list[str], list[str]]:
    """(what loaded and unloaded, what needs a restart). A module imported once stays
    imported: a plugin upgraded on disk runs its old code until a restart, and ``new``
    is told the version that runs."""
    before = {info.name: info for info in old.plugins}
    changes: list[str] = []
    restart: list[str] = []
    for info in new.plugins:
        was = before.pop(info.name, None)
        was_loaded = was is not None and was.status == "loaded"
        if info.status == "loaded" and not was_loaded:
            changes.append(f"plugin {info.name!r} loaded ({_effects(info.effects)})")
        elif was_loaded and info.status != "loaded":
            assert was is not None
            changes.append(_unloaded(info.name, info.status, was.effects))
        elif was is not None and was_loaded and was.version != info.version:
            restart.append(
                f"plugin {info.name!r}: version {was.version} runs, {info.version} is installed; "
                "restart to run it"
            )
            info.version = was.version
    for name, was in before.items():
        if was.status == "loaded":
            changes.append(_unloaded(name, "no longer installed", was.effects))
    return changes, restart


def _effects(names: list[str]) -> str:
    return f"effects {', '.join(names)}" if names else "no effects"


def _unloaded(name: str, why: str, effects: list[str]) -> str:
    return (
        f"plugin {name!r} unloaded ({why}): {_effects(effects)} no longer offered; "
        "live streams running them keep them until they end"
    )
