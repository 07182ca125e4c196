"""Offline renders of assets through chains, in worker processes, never on the event loop.

A render is a database row (status, progress, result) and, while it runs, a job in
the process that runs it: the one that accepted it (the ``local`` render queue), or an
``fxhost worker`` render node (the ``postgres`` queue, :mod:`fxhost.store.render_queue`).
Progress is kept in memory for server-sent events and written to the row twice a second
with a heartbeat, so that any process can report it, a render whose process died is
recognised, and a render cancelled through another process is seen and stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from fxhost_sdk import FieldError
from fxhost_sdk.host import AssetLoader
from tortoise.functions import Count

from fxhost.audio.formats import RenderOutput, checked_output, output_format_named
from fxhost.catalog.chains import ChainSpec, RecordedChain, ResolvedChain, ResolvedStep
from fxhost.engine.clock import Timestamp
from fxhost.engine.compiled import EffectFault, EffectTimeout
from fxhost.engine.offline import RenderResult, render_file
from fxhost.engine.tally import FaultCounts, Histogram
from fxhost.engine.workers import WorkerPool
from fxhost.store.assets import AssetStore, AssetSummary, clean_name, stem_of, summary_of
from fxhost.store.chains import ChainStore, StoredAssets
from fxhost.store.db.models import Asset, Render, is_id
from fxhost.store.owners import owner_alive, owner_id

log = logging.getLogger(__name__)

RenderStatus = Literal["queued", "running", "done", "failed", "cancelled"]
#: How a render ended, for metrics: done; failed (an error, an effect's fault); timeout
#: (past the time limit); interrupted (the server stopped, or its process died);
#: cancelled (by a client).
RenderOutcome = Literal["done", "failed", "timeout", "interrupted", "cancelled"]
#: Upper bounds (seconds) of the buckets of render durations.
RENDER_SECONDS_BOUNDS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
FINISHED = ("done", "failed", "cancelled")
#: Statuses of a render that has not ended.
ACTIVE = ("queued", "running")
#: How often progress and heartbeats are written to the database.
PERSIST_SECONDS = 0.5
#: A running render whose heartbeat is older than this belongs to a dead process.
STALE_SECONDS = 30.0


class RenderView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    status: RenderStatus
    progress: float
    asset: str
    chain: dict[str, Any]
    output: RenderOutput
    tail: bool
    result: AssetSummary | None = None
    peak_dbfs: Annotated[
        float | None,
        msgspec.Meta(
            description="The output's sample peak in dBFS, measured on the samples written (after "
            "resampling and any ceiling); above 0 means samples beyond full scale. Null until the "
            "render is done, and for digital silence."
        ),
    ] = None
    clipped_samples: Annotated[
        int | None,
        msgspec.Meta(
            description="Output samples (each channel's) at or beyond full scale, |x| >= 1.0: "
            "clipped in an integer format, over full scale in a float one; 0 with a ceiling. "
            "Null until the render is done."
        ),
    ] = None
    error: str | None = None
    node: Annotated[
        str | None,
        msgspec.Meta(
            description="The process (`host:pid`) that ran the render last: the server's own, or an "
            "`fxhost worker` render node's. Null while it has not started."
        ),
    ] = None
    attempts: Annotated[
        int,
        msgspec.Meta(
            ge=0,
            description="How many times a process started the render: more than 1 when a render node "
            "died mid-render and another ran it again (at most FXHOST_RENDER_ATTEMPTS).",
        ),
    ] = 0
    recorded: Annotated[
        RecordedChain | None,
        msgspec.Meta(
            description="The chain as it ran, to reproduce it: each step's effect and effect version, "
            "plugin and plugin version, and every parameter (defaults included). Give it back as `chain` "
            "to `POST /api/renders` to render the same again. Null for renders made before it was kept."
        ),
    ] = None
    cached_from: Annotated[
        str | None,
        msgspec.Meta(
            description="With FXHOST_RENDER_CACHE: the earlier render whose result this one reused (the "
            "same input content, recorded chain, output and tail); its `result` is that render's. Null "
            "when it was rendered."
        ),
    ] = None
    created: Timestamp
    started: Timestamp | None = None
    finished: Timestamp | None = None


def cache_key(
    input_sha256: str,
    recorded: RecordedChain,
    chain: ResolvedChain,
    output: RenderOutput,
    *,
    tail: bool,
    max_tail_seconds: float,
) -> str:
    """The render cache's key: a SHA-256 of everything the output depends on: the input's
    content, each step's effect and plugin versions and parameters, the content of the
    assets its parameters name, the output options, the tail and its cap."""
    assets = chain.assets.rows if isinstance(chain.assets, StoredAssets) else {}
    what = {
        "input": input_sha256,
        "steps": recorded.steps,
        "assets": {ref: row.sha256 for ref, row in assets.items()},
        "output": output,
        "tail": tail,
        "max_tail_seconds": max_tail_seconds if tail else None,
    }
    return hashlib.sha256(msgspec.json.encode(what, order="sorted")).hexdigest()


def render_task(
    source: Path,
    display_name: str,
    steps: list[ResolvedStep],
    target: Path,
    output: RenderOutput,
    *,
    tail: bool,
    max_tail_seconds: float,
    progress: Callable[[float], None],
    assets: AssetLoader | None = None,
) -> RenderResult:
    """A render in a worker process (:class:`~fxhost.engine.workers.WorkerPool` runs it):
    :func:`~fxhost.engine.offline.render_file` into ``target``, a temporary file of the
    store, reporting progress as a fraction (1.0 only once the result is kept)."""
    return render_file(
        source,
        target,
        steps,
        output=output,
        display_name=display_name,
        tail=tail,
        max_tail_seconds=max_tail_seconds,
        progress=lambda done, total: progress(min(done / max(1, total), 0.999)),
        assets=assets,
        atomic=False,
    )


def render_and_seal(
    source: Path, display_name: str, steps: list[ResolvedStep], target: Path, output: RenderOutput, **options
) -> tuple[int, str, RenderResult]:
    """A render task for a worker process: :func:`render_task`, then :func:`seal`."""
    result = render_task(source, display_name, steps, target, output, **options)
    return (*seal(target), result)


def seal(path: Path) -> tuple[int, str]:
    """Make a written file durable and fingerprint it: (size, sha256). Blocking."""
    digest = hashlib.sha256()
    # libsndfile has closed the file; reopen it to hash it and fsync its data.
    with open(path, "rb") as written:
        for chunk in iter(lambda: written.read(1 << 20), b""):
            digest.update(chunk)
        os.fsync(written.fileno())
    return path.stat().st_size, digest.hexdigest()


@dataclass
class Job:
    """A render this process is about to run or is running."""

    id: str
    progress: float = 0.0
    status: RenderStatus = "queued"
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    #: The fencing token of the run: the row's ``attempts`` when this process claimed it.
    #: A write that finds another number lost the row (cancelled, or run again elsewhere).
    attempts: int = 0
    #: The task that runs it, cancelled when the render is.
    task: asyncio.Task | None = None
    #: Set before ``task`` is cancelled because the render was cancelled.
    cancelled: bool = False
    #: Set once the run writes its own end (its result and ``done``, or ``failed``): the
    #: row then stops being ``running`` by the run's own hand, which the persist loop
    #: must not take for a cancel (that write is fenced by ``attempts`` itself).
    ending: bool = False


class RenderCancelled(Exception):
    """The render's row stopped being this run's (cancelled) before its result was kept."""


class NoSuchRender(LookupError):
    pass


class RenderFinished(Exception):
    """The render has ended already: there is nothing to cancel."""


#: The owner of rows the postgres render queue runs: its sweep recovers them, not
#: :meth:`RenderService.fail_orphans`.
QUEUE_OWNER = "render-queue"


class RenderService:
    """Renders accepted by this process and, in the ``local`` render queue, run in its
    own worker pool. The ``postgres`` queue (:mod:`fxhost.store.render_queue`) overrides
    how a render is handed on (:meth:`_dispatch`) and stopped (:meth:`_stop`); every
    render, wherever it runs, goes through :meth:`execute`."""

    #: What an interrupted run leaves in the row: (status, error). A render node hands
    #: it back to the queue instead.
    interrupted: tuple[RenderStatus, str | None] = ("failed", "interrupted: the server stopped")

    def __init__(
        self,
        store: AssetStore,
        chains: ChainStore,
        *,
        workers: int,
        max_tail_seconds: float,
        time_limit: float,
        cache: bool = False,
    ):
        self.store = store
        self.chains = chains
        self.max_tail_seconds = max_tail_seconds
        #: Reuse an earlier render's result when its cache key matches (render_cache).
        self.cache = cache
        #: Worker processes, shared with /api/process. The forkserver imports this module
        #: and the effects' own, so that neither the pool's start nor a task does.
        effect_modules = sorted({cls.__module__ for cls in chains.effects.values()})
        self.pool = WorkerPool(workers, time_limit, preload=(__name__, *effect_modules))
        self.slots = asyncio.Semaphore(workers)
        self.owner = owner_id()
        self.jobs: dict[str, Job] = {}
        self.tasks: set[asyncio.Task] = set()
        #: Counters for metrics: renders that ended here by outcome, how long those that
        #: ran took, and the effect faults of renders and /api/process.
        self.outcomes: Counter[RenderOutcome] = Counter()
        self.durations = Histogram(RENDER_SECONDS_BOUNDS)
        self.faults = FaultCounts()
        self._persister: asyncio.Task | None = None

    async def start(self) -> None:
        self.pool.start()
        await self.fail_orphans()
        self._persister = asyncio.create_task(self._persist_loop())

    async def stop(self) -> None:
        if self._persister:
            self._persister.cancel()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.pool.stop()

    async def render_now(
        self, source: Path, target: Path, chain: ResolvedChain, output: RenderOutput, *, tail: bool
    ) -> RenderResult:
        """Render ``source`` into ``target`` and wait (``/api/process``): in a worker
        process like any render, so that a hung effect is killed at the time limit."""
        try:
            return await self.pool.run(
                render_task,
                source,
                "body",
                chain.steps,
                target,
                output,
                tail=tail,
                max_tail_seconds=self.max_tail_seconds,
                assets=chain.assets,
            )
        except EffectFault as fault:
            self.faults.add(fault)
            raise

    async def fail_orphans(self) -> int:
        """Mark failed the renders left queued or running by a process that is gone
        (renders of the postgres queue are its sweep's: they run again)."""
        stale_before = datetime.now(UTC) - timedelta(seconds=STALE_SECONDS)
        failed = 0
        for row in await Render.filter(status__in=ACTIVE).exclude(owner=QUEUE_OWNER):
            alive = owner_alive(row.owner)
            if row.owner == self.owner and row.id in self.jobs:
                continue
            stale = row.heartbeat is None or row.heartbeat < stale_before
            if alive is False or (alive is None and stale) or (row.owner == self.owner):
                changed = await Render.filter(id=row.id, status__in=ACTIVE).update(
                    status="failed", error="interrupted: the server restarted", finished=_now()
                )
                failed += changed
        if failed:
            log.warning("marked %d interrupted render(s) failed", failed)
            self.outcomes["interrupted"] += failed
        return failed

    async def submit(
        self,
        asset_id: str,
        chain: ChainSpec | RecordedChain,
        output: RenderOutput,
        tail: bool,
        *,
        tenant: str,
    ) -> Render:
        """Accept a render: its row (with the chain recorded and its cache key), then
        either the result of an earlier render with the same key (the render cache) or
        the render handed on to run."""
        asset = await self.store.get(asset_id, tenant)
        if asset is None:
            raise FieldError("asset", f"no asset with id {asset_id!r}")
        resolved = await self.chains.resolve(chain, "chain", tenant=tenant)
        name, steps = resolved.name, resolved.steps
        checked_output(output, asset.sample_rate, asset.channels, asset.subtype)
        recorded = self.chains.record(resolved)
        # Kept whether or not the cache is on: a cache turned on later finds these.
        key = cache_key(
            asset.sha256, recorded, resolved, output, tail=tail, max_tail_seconds=self.max_tail_seconds
        )
        fields: dict[str, Any] = {
            "id": os.urandom(16).hex(),
            "tenant": tenant,
            "asset_id": asset_id,
            "chain": {"name": name, "steps": [msgspec.to_builtins(s.to_step()) for s in steps]},
            "recorded": msgspec.to_builtins(recorded),
            "cache_key": key,
            "output": msgspec.to_builtins(output),
            "tail": tail,
            "heartbeat": _now(),
        }
        earlier = await self._cached(key, tenant) if self.cache else None
        if earlier is not None:
            now = _now()
            return await Render.create(
                **fields,
                status="done",
                progress=1.0,
                owner=self.owner,
                result_asset_id=earlier.result_asset_id,
                peak_dbfs=earlier.peak_dbfs,
                clipped_samples=earlier.clipped_samples,
                cached_from=earlier.cached_from or earlier.id,
                started=now,
                finished=now,
            )
        row = await Render.create(**fields, status="queued", owner=self.owner_of_new())
        await self._dispatch(row, asset, resolved, output)
        return row

    async def _cached(self, key: str, tenant: str) -> Render | None:
        """The latest done render of ``tenant`` with cache key ``key`` whose result is still
        kept (a deleted result is not reused). Only done rows count: in the postgres queue
        a row is done once a node has committed its result, wherever it ran."""
        earlier = (
            await Render.filter(cache_key=key, tenant=tenant, status="done", result_asset_id__isnull=False)
            .order_by("-finished")
            .limit(8)
        )
        for row in earlier:
            if await Asset.exists(id=row.result_asset_id, tenant=tenant):
                return row
        return None

    def owner_of_new(self) -> str:
        """The ``owner`` of a render this process accepts."""
        return self.owner

    async def _dispatch(self, row: Render, asset: Asset, chain: ResolvedChain, output: RenderOutput) -> None:
        """Hand an accepted render on to be run: here, in this process's pool."""
        job = self.jobs[row.id] = Job(row.id)
        task = job.task = asyncio.create_task(self._run(row, asset, chain, output, job))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def cancel(self, render_id: str, tenant: str) -> RenderView:
        """Cancel a queued or running render: its row says ``cancelled`` at once, and
        whoever runs it stops (:meth:`_stop`). NoSuchRender, or RenderFinished when it
        has ended already (done, failed or cancelled)."""
        row = await Render.get_or_none(id=render_id, tenant=tenant) if is_id(render_id) else None
        if row is None:
            raise NoSuchRender(render_id)
        changed = await Render.filter(id=render_id, status__in=ACTIVE).update(
            status="cancelled", error="cancelled by request", finished=_now()
        )
        if not changed:
            status = (await Render.get(id=render_id)).status
            raise RenderFinished(
                f"render {render_id} is {status}: only a queued or running render can be cancelled"
            )
        await self._stop(row)
        view = await self.view(render_id, tenant)
        assert view is not None
        return view

    async def _stop(self, row: Render) -> None:
        """Stop a cancelled render if it runs here (a render another process of the same
        server runs is seen cancelled by that process's persist loop, within a second)."""
        self.stop_job(row.id)

    def stop_job(self, render_id: str) -> None:
        job = self.jobs.get(render_id)
        if job is not None and job.task is not None and not job.cancelled:
            job.cancelled = True
            job.task.cancel()

    async def _run(self, row: Render, asset: Asset, chain: ResolvedChain, output: RenderOutput, job: Job):
        """A render of the local queue: wait for a slot, claim the row, execute it."""
        try:
            async with self.slots:
                claimed = await Render.filter(id=row.id, status="queued").update(
                    status="running", started=_now(), node=self.owner, attempts=1, heartbeat=_now()
                )
                if not claimed:  # cancelled while it waited
                    self.outcomes["cancelled"] += 1
                    return
                row.status, row.node, row.attempts = "running", self.owner, 1
                await self.execute(row, asset, chain, output, job)
        except asyncio.CancelledError:
            if not job.cancelled:
                raise
            if job.status == "queued":  # cancelled in line; execute counts the others
                self.outcomes["cancelled"] += 1
        finally:
            job.changed.set()
            self.jobs.pop(row.id, None)

    def input_file(self, asset: Asset) -> AbstractAsyncContextManager[Path]:
        """The render's input as a local file while the context lasts: the stored file
        itself, or (an object store) a copy fetched to this process's scratch folder and
        removed after, so that a render node needs no folder shared with the servers."""
        return self.store.fetch(asset)

    async def keep_output(
        self, row: Render, asset: Asset, temp: Path, size: int, sha256: str, rendered: RenderResult
    ) -> AssetSummary:
        """Keep the rendered file ``temp`` as the render's result asset, and mark the render
        done in the same transaction: a crash leaves both or neither (an object store
        uploads it before the row is written, in parts when it is large). RenderCancelled,
        keeping nothing, when the row is no longer this run's."""
        spec = output_format_named(msgspec.convert(row.output, RenderOutput).format)
        label = row.chain.get("name") or "render"  # in the source's folder:
        name = clean_name(f"{stem_of(asset.name)}-{label}{spec.extension}")

        async def done(asset_id: str) -> None:
            kept = await Render.filter(id=row.id, status="running", attempts=row.attempts).update(
                status="done",
                progress=1.0,
                result_asset_id=asset_id,
                peak_dbfs=rendered.peak_dbfs,
                clipped_samples=rendered.clipped_samples,
                finished=_now(),
            )
            if not kept:
                raise RenderCancelled(row.id)

        return await self.store.add(
            temp, name, tenant=row.tenant, kind="render", size=size, sha256=sha256, commit_with=done
        )

    async def execute(
        self, row: Render, asset: Asset, chain: ResolvedChain, output: RenderOutput, job: Job
    ) -> RenderOutcome:
        """Run a render whose row this process has claimed (status ``running``, its
        ``attempts`` this run's): in the worker pool, with progress, its result kept and
        ``done`` committed together. Every write is fenced by ``attempts``, so a run that
        lost its row (cancelled, or run again elsewhere) changes nothing."""
        temp = self.store.temp_path("render")
        outcome: RenderOutcome = "failed"
        began = time.perf_counter()
        job.attempts, job.status = row.attempts, "running"
        job.changed.set()
        if job.task is None:
            job.task = asyncio.current_task()
        self.jobs[row.id] = job
        status: RenderStatus = "failed"
        error: str | None = None
        try:

            def progress(fraction: float) -> None:
                job.progress = fraction  # called on the loop, from the workers' reports
                job.changed.set()

            async with self.input_file(asset) as source:
                size, sha256, rendered = await self.pool.run(
                    render_and_seal,
                    source,
                    asset.name,
                    chain.steps,
                    temp,
                    output,
                    tail=row.tail,
                    max_tail_seconds=self.max_tail_seconds,
                    progress=progress,
                    assets=chain.assets,
                )
            job.ending = True
            await self.keep_output(row, asset, temp, size, sha256, rendered)
            status, outcome = "done", "done"
            job.progress = 1.0
        except (asyncio.CancelledError, RenderCancelled) as stopped:
            if job.cancelled or await _cancelled(row.id):
                job.cancelled = True
                status, outcome = "cancelled", "cancelled"
            else:
                status, error = self.interrupted
                outcome = "interrupted"
            if isinstance(stopped, asyncio.CancelledError):
                raise
        except Exception as failure:
            if isinstance(failure, EffectFault):
                self.faults.add(failure)
                outcome = "timeout" if isinstance(failure, EffectTimeout) else "failed"
            expected = isinstance(failure, ValueError | EffectFault)
            log.warning("render %s failed: %s", row.id, failure, exc_info=not expected)
            error = _one_line(failure)
            if isinstance(failure, FileNotFoundError) and not await self.store.storage.exists(
                self.store.key_of(asset)
            ):
                # deleted before the render opened it (once open, a deleted file still reads to the end)
                error = f"the asset {asset.id} was deleted before the render could read it"
        finally:
            job.ending = True
            self.outcomes[outcome] += 1
            self.durations.observe(time.perf_counter() - began)
            temp.unlink(missing_ok=True)
            job.status = status
            if status in ("failed", "queued"):
                # Only while the row is still this run's: a cancel or a later run wins.
                finished = _now() if status == "failed" else None
                with contextlib.suppress(Exception):
                    await Render.filter(id=row.id, status="running", attempts=row.attempts).update(
                        status=status, error=error, finished=finished, progress=job.progress
                    )
            job.changed.set()
            self.jobs.pop(row.id, None)
        return outcome

    async def _persist_loop(self) -> None:
        while True:
            await asyncio.sleep(PERSIST_SECONDS)
            with contextlib.suppress(Exception):
                await self.persist()

    async def persist(self) -> None:
        """Write running renders' progress and heartbeat; stop those whose row another
        process cancelled (found by the write, fenced by ``attempts``, changing nothing)."""
        jobs = list(self.jobs.values())
        queued = [job.id for job in jobs if job.status == "queued"]
        if queued:
            # Asked by status, not by absence: a render claimed meanwhile is running, not gone.
            for render_id in await Render.filter(id__in=queued, status="cancelled").values_list(
                "id", flat=True
            ):
                self.stop_job(render_id)
        for job in jobs:
            if job.status == "running":
                kept = await Render.filter(id=job.id, status="running", attempts=job.attempts).update(
                    progress=job.progress, heartbeat=_now()
                )
                # Not kept while the run ends itself: its own done (or failed) came first.
                # Stopped then, it would be cut short after its commit.
                if not kept and not job.ending:
                    self.stop_job(job.id)

    async def view(self, render_id: str, tenant: str) -> RenderView | None:
        """The tenant's render; another tenant's is as absent as one that never was."""
        row = await Render.get_or_none(id=render_id, tenant=tenant) if is_id(render_id) else None
        if row is None:
            return None
        job = self.jobs.get(render_id)
        result = None
        if row.result_asset_id:
            asset = await Asset.get_or_none(id=row.result_asset_id)
            result = summary_of(asset) if asset else None
        progress = job.progress if job and row.status == "running" else row.progress
        return RenderView(
            id=row.id,
            status=row.status,  # type: ignore[arg-type]
            progress=round(progress, 4),
            asset=row.asset_id,
            chain=row.chain,
            output=msgspec.convert(row.output, RenderOutput),
            tail=row.tail,
            result=result,
            peak_dbfs=row.peak_dbfs,
            clipped_samples=row.clipped_samples,
            error=row.error,
            node=row.node,
            attempts=row.attempts,
            recorded=msgspec.convert(row.recorded, RecordedChain) if row.recorded else None,
            cached_from=row.cached_from,
            created=row.created,
            started=row.started,
            finished=row.finished,
        )

    async def watch(
        self, render_id: str, tenant: str, poll_seconds: float = 0.5
    ) -> AsyncIterator[RenderView]:
        """Snapshots of a render as it changes, ending with its final state. Renders run
        by another process are followed by polling the database."""
        last: tuple | None = None
        while True:
            job = self.jobs.get(render_id)
            if job is not None:
                job.changed.clear()
            view = await self.view(render_id, tenant)
            if view is None:
                return
            key = (view.status, view.progress)
            if key != last:
                last = key
                yield view
            if view.status in FINISHED:
                return
            if job is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(job.changed.wait(), timeout=poll_seconds * 4)
            else:
                await asyncio.sleep(poll_seconds)

    async def counts(self, tenant: str) -> dict[str, int]:
        counts = dict.fromkeys(("queued", "running", "done", "failed", "cancelled"), 0)
        rows = (
            await Render.filter(tenant=tenant)
            .annotate(n=Count("id"))
            .group_by("status")
            .values("status", "n")
        )
        counts.update({row["status"]: row["n"] for row in rows})
        return counts


async def _cancelled(render_id: str) -> bool:
    return await Render.filter(id=render_id, status="cancelled").exists()


def _now() -> datetime:
    return datetime.now(UTC)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    plain = isinstance(error, ValueError | FieldError | EffectFault)
    return text if plain else f"{type(error).__name__}: {text}"
