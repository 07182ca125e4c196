"""The postgres render queue (``FXHOST_RENDER_QUEUE=postgres``): renders are procrastinate
jobs in the server's PostgreSQL database, run by ``fxhost worker`` render nodes.

- The API process (:class:`QueuedRenderService`) makes the render's row, then queues one
  job for it (procrastinate's ``queueing_lock`` and ``lock`` are the render's id: never two
  waiting, never two running) and keeps the job's id in the row. It never runs a render.
- A node (:class:`RenderNode`) is a procrastinate worker whose task claims the row (one
  conditional UPDATE: still queued or running, not another job's, ``attempts`` + 1) and
  runs it through :meth:`RenderService.execute`, in its own pebble pool: time limit, hung
  effect named, result and ``done`` committed together, as in the local queue. Every
  write of a run is fenced by its ``attempts``, so a run that lost its row changes nothing.
- Cancel: the row says ``cancelled`` at once; the job is aborted
  (``cancel_job_by_id_async(abort=True)``), which a node hears through LISTEN/NOTIFY and
  answers by cancelling the task, which kills its worker process. A node's persist loop
  also finds the cancelled row within half a second, should the notification be lost.
- A node killed mid-render stops heartbeating (procrastinate's worker heartbeat, every
  ``cluster_heartbeat_seconds``); after ``cluster_dead_seconds`` every other node's sweep
  finds its job stalled (``get_stalled_jobs``) and retries it (``retry_job``): another node
  claims it, up to ``render_attempts`` starts, then the render fails saying why.
- Idempotent queueing: a row left active with no live job (the API died between the row
  and the job, or a node stopped and handed the render back) is queued again by the sweep;
  a job that finds its row taken by another job does nothing.
- A node whose plugin set (names and versions) differs from the API's fails the render,
  naming the differences, rather than render different audio. Failing, not leaving the job
  for another node: a procrastinate job cannot be handed back to the queue for "some other
  worker" (a retry can be fetched by the same node again), and a render left waiting for a
  node that may never come would wait silently; a mixed cluster is a deployment mistake
  that should show at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import procrastinate
import psycopg
from procrastinate.exceptions import AlreadyEnqueued
from procrastinate.schema import SchemaManager
from tortoise.expressions import Q

from fxhost.audio.formats import RenderOutput
from fxhost.catalog.chains import ChainStep
from fxhost.catalog.registry import Registry
from fxhost.store.assets import AssetStore
from fxhost.store.chains import ChainStore
from fxhost.store.db.models import Asset, Render
from fxhost.store.owners import owner_id
from fxhost.store.renders import ACTIVE, QUEUE_OWNER, Job, RenderService, RenderStatus

log = logging.getLogger(__name__)

#: The procrastinate task of a render.
RENDER_TASK = "fxhost.render"
#: The advisory lock held while procrastinate's schema is looked for and applied, so that
#: processes starting together apply it once.
SCHEMA_LOCK = 0x66786871  # "fxhq"
#: How often a node sweeps: stalled jobs retried, rows without a live job queued again.
SWEEP_SECONDS = 2.0
#: A row is left this long after it was made before the sweep takes it for one without a
#: job (its API process queues the job a moment after it makes the row).
UNQUEUED_GRACE_SECONDS = 10.0
#: How often a node asks for new and for aborted jobs besides listening for them: the
#: longest a job waits when a notification is missed (one sent before the node listened,
#: or lost with a connection). procrastinate's 5 s default showed as a 5 s p99 in
#: bench/render_queue.py.
POLL_SECONDS = 1.0
#: Job states after which a job will not run again.
ENDED_JOB = ("succeeded", "failed", "cancelled", "aborted")


def conninfo(database_url: str) -> str:
    """The settings' ``database_url`` (tortoise's spelling) as a libpq URL for psycopg;
    tortoise's own query options (pool sizes) are dropped."""
    _scheme, rest = database_url.split("://", 1)
    return "postgresql://" + rest.split("?", 1)[0]


def queue_app(database_url: str, *, max_size: int = 4) -> procrastinate.App:
    return procrastinate.App(
        connector=procrastinate.PsycopgConnector(
            conninfo=conninfo(database_url), min_size=1, max_size=max_size
        )
    )


async def apply_queue_schema(database_url: str) -> bool:
    """Apply procrastinate's schema to the database unless it is there (idempotent, and
    safe when processes start together); True when it was applied."""
    async with await psycopg.AsyncConnection.connect(conninfo(database_url)) as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        cursor = await conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
        row = await cursor.fetchone()
        if row and row[0]:
            return False
        await conn.execute(SchemaManager.get_schema())
    log.info("database: applied the render queue's schema (procrastinate)")
    return True


def plugin_set(registry: Registry) -> dict[str, str]:
    """The loaded plugins, name -> version (a module plugin without a distribution: its
    effects' versions), as a render node must match them."""
    found: dict[str, str] = {}
    for info in registry.plugins:
        if info.status != "loaded":
            continue
        effects = ", ".join(f"{name} {registry.classes[name].version}" for name in sorted(info.effects))
        found[info.name] = info.version or f"({effects})"
    return found


def plugin_differences(wanted: dict[str, str], here: dict[str, str]) -> list[str]:
    """How the plugins ``here`` differ from those ``wanted``, one phrase each."""
    differences = []
    for name in sorted(wanted.keys() | here.keys()):
        if name not in here:
            differences.append(f"{name} {wanted[name]} is missing")
        elif name not in wanted:
            differences.append(f"{name} {here[name]} is extra")
        elif wanted[name] != here[name]:
            differences.append(f"{name} is {here[name]}, not {wanted[name]}")
    return differences


async def enqueue(
    app: procrastinate.App, render_id: str, plugins: dict[str, str], previous: int | None
) -> int:
    """Queue the one job of a render (or find the one waiting) and keep its id in the row,
    replacing ``previous`` (None, or a job that ended without finishing the render)."""
    try:
        job_id = await app.configure_task(RENDER_TASK, queueing_lock=render_id, lock=render_id).defer_async(
            render_id=render_id, plugins=plugins
        )
    except AlreadyEnqueued:
        waiting = await app.job_manager.list_jobs_async(queueing_lock=render_id, status="todo")
        job_id = next(iter(waiting)).id
    assert job_id is not None
    current = Q(job_id__isnull=True) if previous is None else Q(job_id=previous)
    await Render.filter(current, id=render_id, status__in=ACTIVE).update(job_id=job_id)
    return job_id


class QueuedRenderService(RenderService):
    """The API process's renders in the postgres queue: queued, never run here
    (``/api/process`` still runs in this process's own pool)."""

    def __init__(
        self, store: AssetStore, chains: ChainStore, *, database_url: str, plugins: dict[str, str], **pool
    ):
        super().__init__(store, chains, **pool)
        self.app = queue_app(database_url)
        self.plugins = plugins

    async def start(self) -> None:
        await self.app.open_async()
        await super().start()

    async def stop(self) -> None:
        await super().stop()
        await self.app.close_async()

    def owner_of_new(self) -> str:
        return QUEUE_OWNER

    async def _dispatch(self, row: Render, asset, chain, output) -> None:
        await enqueue(self.app, row.id, self.plugins, None)

    async def _stop(self, row: Render) -> None:
        job_id = await Render.filter(id=row.id).first().values_list("job_id", flat=True)
        if job_id is not None:
            # A waiting job is cancelled; a running one is asked to abort, which its node
            # hears at once (LISTEN/NOTIFY) and answers by killing the render's process.
            await self.app.job_manager.cancel_job_by_id_async(job_id, abort=True)
        self.outcomes["cancelled"] += 1  # the nodes keep no metrics that are served


class RenderNode(RenderService):
    """``fxhost worker``: a procrastinate worker that runs queued renders in its own pool."""

    #: A render this node was running when it stopped goes back to the queue (the sweep
    #: of any node queues it again), its attempt counted.
    interrupted: tuple[RenderStatus, str | None] = ("queued", None)

    def __init__(
        self,
        store: AssetStore,
        chains: ChainStore,
        *,
        database_url: str,
        plugins: dict[str, str],
        attempts: int,
        heartbeat_seconds: float,
        dead_seconds: float,
        **pool: Any,
    ):
        super().__init__(store, chains, **pool)
        self.app = queue_app(database_url, max_size=4 + pool["workers"])
        self.app.task(name=RENDER_TASK, pass_context=True)(self.run_job)
        self.plugins = plugins
        self.max_attempts = attempts
        self.heartbeat_seconds, self.dead_seconds = heartbeat_seconds, dead_seconds
        self.concurrency = pool["workers"]
        self.node = owner_id()

    async def fail_orphans(self) -> int:
        return 0  # a node accepts no renders of its own: its sweep recovers queued ones

    async def serve(self) -> None:
        """Run renders until SIGINT or SIGTERM (procrastinate's worker handles both: no
        new job is taken, and running renders go back to the queue)."""
        await self.app.open_async()
        await self.start()
        sweeper = asyncio.create_task(self._sweep_loop())
        log.info(
            "render node %s: %d worker(s); plugins %s",
            self.node,
            self.concurrency,
            ", ".join(f"{name} {version}" for name, version in sorted(self.plugins.items())) or "none",
        )
        try:
            await self.app.run_worker_async(
                name=f"fxhost-render-node-{self.node}",
                concurrency=self.concurrency,
                update_heartbeat_interval=self.heartbeat_seconds,
                stalled_worker_timeout=self.dead_seconds,
                fetch_job_polling_interval=POLL_SECONDS,
                abort_job_polling_interval=POLL_SECONDS,
                shutdown_graceful_timeout=0,
                delete_jobs="successful",
            )
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await self.stop()
            await self.app.close_async()

    async def run_job(
        self, context: procrastinate.JobContext, render_id: str, plugins: dict[str, str]
    ) -> str:
        """The procrastinate task: claim the render's row, then execute it. Returns what
        happened (kept as the job's result, in the worker's log)."""
        job_id = context.job.id
        row = await Render.get_or_none(id=render_id)
        if row is None or row.status not in ACTIVE:
            return f"render is {row.status if row else 'gone'}: nothing to do"
        mine = Q(job_id__isnull=True) | Q(job_id=job_id)
        if row.job_id not in (None, job_id):
            return f"render belongs to job {row.job_id}: nothing to do"
        differences = plugin_differences(plugins, self.plugins)
        if differences:
            why = (
                f"refused by render node {self.node}: its plugins differ from the server's "
                f"({'; '.join(differences)}); run nodes with the server's plugins"
            )
            return await self._give_up(render_id, mine, row.attempts, why)
        if row.attempts >= self.max_attempts:
            why = (
                f"gave up after {row.attempts} attempt(s) (FXHOST_RENDER_ATTEMPTS): the render node "
                f"{row.node} running it last stopped before it finished"
            )
            return await self._give_up(render_id, mine, row.attempts, why)
        claimed = await Render.filter(mine, id=render_id, status__in=ACTIVE, attempts=row.attempts).update(
            status="running",
            node=self.node,
            attempts=row.attempts + 1,
            job_id=job_id,
            started=_now(),
            heartbeat=_now(),
            progress=0.0,
            error=None,
        )
        if not claimed:
            return "render was taken or cancelled meanwhile: nothing to do"
        row = await Render.get(id=render_id)
        job = Job(render_id, attempts=row.attempts, task=asyncio.current_task())
        try:
            asset = await Asset.get_or_none(id=row.asset_id)
            if asset is None:
                raise ValueError(f"the asset {row.asset_id} was deleted before the render could read it")
            steps = [ChainStep(effect=s["effect"], params=s.get("params", {})) for s in row.chain["steps"]]
            chain = await self.chains.resolve(steps, "chain", tenant=row.tenant)
            output = msgspec.convert(row.output, RenderOutput)
        except Exception as error:
            return await self._give_up(
                render_id, Q(job_id=job_id), row.attempts, str(error), status="running"
            )
        outcome = await self.execute(row, asset, chain, output, job)
        return f"render {outcome} on {self.node} (attempt {row.attempts})"

    async def _give_up(
        self, render_id: str, mine: Q, attempts: int, why: str, status: str | None = None
    ) -> str:
        statuses = (status,) if status else ACTIVE
        await Render.filter(mine, id=render_id, status__in=statuses, attempts=attempts).update(
            status="failed", error=why, finished=_now()
        )
        self.outcomes["failed"] += 1
        log.warning("render %s failed: %s", render_id, why)
        return why

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                await self.sweep()
            except Exception:  # the database may be back next time
                log.exception("render queue sweep failed")

    async def sweep(self) -> None:
        """Retry the jobs of nodes that stopped heartbeating; queue again the renders left
        active with no live job."""
        manager = self.app.job_manager
        for job in await manager.get_stalled_jobs(
            task_name=RENDER_TASK, seconds_since_heartbeat=self.dead_seconds
        ):
            with contextlib.suppress(Exception):  # another node's sweep was first
                await manager.retry_job(job)
                log.warning("render job %s: its node stopped heartbeating; queued again", job.id)
        await manager.prune_stalled_workers(self.dead_seconds)
        live = {
            job.id
            for status in ("todo", "doing")
            for job in await manager.list_jobs_async(task=RENDER_TASK, status=status)
        }
        made_before = _now() - timedelta(seconds=UNQUEUED_GRACE_SECONDS)
        rows = await Render.filter(status__in=ACTIVE, owner=QUEUE_OWNER).values("id", "job_id", "created")
        for row in rows:
            if row["job_id"] in live or (row["job_id"] is None and row["created"] > made_before):
                continue
            plugins = self.plugins
            if row["job_id"] is not None:  # keep the server's plugin set the job was queued with
                ended = list(await manager.list_jobs_async(id=row["job_id"]))
                if ended and ended[0].status not in ENDED_JOB:
                    continue
                if ended:
                    plugins = ended[0].task_kwargs.get("plugins", plugins)
            job_id = await enqueue(self.app, row["id"], plugins, row["job_id"])
            log.warning("render %s had no live job; queued again as job %s", row["id"], job_id)


def _now() -> datetime:
    return datetime.now(UTC)
