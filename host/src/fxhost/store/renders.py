"""Offline renders of assets through chains, in worker processes, never on the event loop.

A render is a database row (status, progress, result) and, while it runs, a job in
the process that accepted it. Progress is kept in memory for server-sent events and
written to the row twice a second with a heartbeat, so that any process can report
it and a render whose process died is recognised and marked failed.
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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from fxhost_sdk import AssetLoader, FieldError
from tortoise.functions import Count

from fxhost.audio.formats import RenderOutput, checked_output, output_format_named
from fxhost.catalog.chains import ChainSpec, ResolvedChain, ResolvedStep
from fxhost.engine.clock import Timestamp
from fxhost.engine.compiled import EffectFault, EffectTimeout
from fxhost.engine.offline import RenderResult, render_file
from fxhost.engine.tally import FaultCounts, Histogram
from fxhost.engine.workers import WorkerPool
from fxhost.store.assets import AssetStore, AssetSummary, clean_name, stem_of, summary_of
from fxhost.store.chains import ChainStore
from fxhost.store.db.models import Asset, Render, is_id
from fxhost.store.owners import owner_alive, owner_id

log = logging.getLogger(__name__)

RenderStatus = Literal["queued", "running", "done", "failed"]
#: How a render ended, for metrics: done; failed (an error, an effect's fault); timeout
#: (past the time limit); interrupted (the server stopped, or its process died).
RenderOutcome = Literal["done", "failed", "timeout", "interrupted"]
#: Upper bounds (seconds) of the buckets of render durations.
RENDER_SECONDS_BOUNDS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
FINISHED = ("done", "failed")
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
    created: Timestamp
    started: Timestamp | None = None
    finished: Timestamp | None = None


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
    id: str
    progress: float = 0.0
    status: RenderStatus = "queued"
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class RenderService:
    def __init__(
        self,
        store: AssetStore,
        chains: ChainStore,
        *,
        workers: int,
        max_tail_seconds: float,
        time_limit: float,
    ):
        self.store = store
        self.chains = chains
        self.max_tail_seconds = max_tail_seconds
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
        """Mark failed the renders left queued or running by a process that is gone."""
        stale_before = datetime.now(UTC) - timedelta(seconds=STALE_SECONDS)
        failed = 0
        for row in await Render.filter(status__in=["queued", "running"]):
            alive = owner_alive(row.owner)
            if row.owner == self.owner and row.id in self.jobs:
                continue
            stale = row.heartbeat is None or row.heartbeat < stale_before
            if alive is False or (alive is None and stale) or (row.owner == self.owner):
                row.status, row.error, row.finished = "failed", "interrupted: the server restarted", _now()
                await row.save(update_fields=["status", "error", "finished"])
                failed += 1
        if failed:
            log.warning("marked %d interrupted render(s) failed", failed)
            self.outcomes["interrupted"] += failed
        return failed

    async def submit(
        self, asset_id: str, chain: ChainSpec, output: RenderOutput, tail: bool, *, tenant: str
    ) -> Render:
        asset = await self.store.get(asset_id, tenant)
        if asset is None:
            raise FieldError("asset", f"no asset with id {asset_id!r}")
        resolved = await self.chains.resolve(chain, "chain", tenant=tenant)
        name, steps = resolved.name, resolved.steps
        checked_output(output, asset.sample_rate, asset.channels, asset.subtype)
        row = await Render.create(
            id=os.urandom(16).hex(),
            tenant=tenant,
            status="queued",
            asset_id=asset_id,
            chain={"name": name, "steps": [msgspec.to_builtins(s.to_step()) for s in steps]},
            output=msgspec.to_builtins(output),
            tail=tail,
            owner=self.owner,
            heartbeat=_now(),
        )
        job = self.jobs[row.id] = Job(row.id)
        task = asyncio.create_task(self._run(row, asset, resolved, output, job))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return row

    async def _run(self, row: Render, asset: Asset, chain: ResolvedChain, output: RenderOutput, job: Job):
        temp = self.store.temp_path("render")
        outcome: RenderOutcome = "failed"
        began: float | None = None
        try:
            async with self.slots:
                began = time.perf_counter()
                job.status = "running"
                row.status, row.started = "running", _now()
                await row.save(update_fields=["status", "started"])
                job.changed.set()

                def progress(fraction: float) -> None:
                    job.progress = fraction  # called on the loop, from the workers' reports
                    job.changed.set()

                # The input as a local file: the stored one, or a scratch copy of an object.
                async with self.store.fetch(asset) as source:
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
                spec = output_format_named(output.format)
                label = row.chain.get("name") or "render"  # in the source's folder:
                name = clean_name(f"{stem_of(asset.name)}-{label}{spec.extension}")
                # Done in the result's own transaction: a crash leaves both or neither.
                done = Render.filter(id=row.id).update
                result = await self.store.add(
                    temp,
                    name,
                    tenant=row.tenant,
                    kind="render",
                    size=size,
                    sha256=sha256,
                    commit_with=lambda asset_id: done(
                        status="done",
                        progress=1.0,
                        result_asset_id=asset_id,
                        peak_dbfs=rendered.peak_dbfs,
                        clipped_samples=rendered.clipped_samples,
                        finished=_now(),
                    ),
                )
                row.status, row.progress, row.result_asset_id = "done", 1.0, result.id
                row.peak_dbfs, row.clipped_samples = rendered.peak_dbfs, rendered.clipped_samples
                outcome = "done"
        except asyncio.CancelledError:
            row.status, row.error = "failed", "interrupted: the server stopped"
            outcome = "interrupted"
            raise
        except Exception as error:
            if isinstance(error, EffectFault):
                self.faults.add(error)
                outcome = "timeout" if isinstance(error, EffectTimeout) else "failed"
            expected = isinstance(error, ValueError | EffectFault)
            log.warning("render %s failed: %s", row.id, error, exc_info=not expected)
            row.status, row.error = "failed", _one_line(error)
            if isinstance(error, FileNotFoundError) and not await self.store.storage.exists(
                self.store.key_of(asset)
            ):
                # deleted before the render opened it (once open, a deleted file still reads to the end)
                row.error = f"the asset {asset.id} was deleted before the render could read it"
        finally:
            self.outcomes[outcome] += 1
            if began is not None:
                self.durations.observe(time.perf_counter() - began)
            temp.unlink(missing_ok=True)
            row.finished = _now()
            job.status = row.status  # type: ignore[assignment]
            job.progress = row.progress if row.status == "done" else job.progress
            with contextlib.suppress(Exception):
                await row.save(update_fields=["status", "progress", "result_asset_id", "error", "finished"])
            job.changed.set()
            self.jobs.pop(row.id, None)

    async def _persist_loop(self) -> None:
        while True:
            await asyncio.sleep(PERSIST_SECONDS)
            for job in list(self.jobs.values()):
                if job.status == "running":
                    with contextlib.suppress(Exception):
                        await Render.filter(id=job.id, status="running").update(
                            progress=job.progress, heartbeat=_now()
                        )

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
        counts = dict.fromkeys(("queued", "running", "done", "failed"), 0)
        rows = (
            await Render.filter(tenant=tenant)
            .annotate(n=Count("id"))
            .group_by("status")
            .values("status", "n")
        )
        counts.update({row["status"]: row["n"] for row in rows})
        return counts


def _now() -> datetime:
    return datetime.now(UTC)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    plain = isinstance(error, ValueError | FieldError | EffectFault)
    return text if plain else f"{type(error).__name__}: {text}"
