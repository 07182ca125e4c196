"""Prometheus metrics: the metric objects, the HTTP middleware that times requests, and
the exposition served at ``GET /metrics`` (or on a port of its own).

The engine counts in plain attributes (:mod:`fxhost.engine.tally`, ring stats, the
render service's counters); :meth:`Metrics.flush` adds what they gained since the last
flush to the Prometheus counters, once a second and before each scrape, so that no
Prometheus call is made per audio block.

Several workers: ``fxhost serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` before any worker
imports prometheus_client, so every process writes its values to files there, and a
scrape of any worker reads them all: the sum. Gauges of processes that died are dropped
at the next scrape (uvicorn replaces a dead worker; its counters are kept).

prometheus_client is imported only when metrics are on (it costs about 0.1 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
import platform
import re
from importlib.metadata import version
from time import perf_counter
from typing import TYPE_CHECKING, Any

from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fxhost.engine.tally import EFFECT_SECONDS_BOUNDS, FaultCounts, Histogram
from fxhost.settings import Settings
from fxhost.store.renders import RENDER_SECONDS_BOUNDS

if TYPE_CHECKING:
    from fxhost.services import Services

log = logging.getLogger(__name__)

#: Seconds between two flushes of the engine's counters into Prometheus: how stale a
#: scrape may see the live counters of another worker.
FLUSH_SECONDS = 1.0
#: HTTP request durations (seconds): the OpenTelemetry semantic conventions' buckets.
HTTP_SECONDS_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
#: Request methods labelled as they are; any other is "_OTHER" (a client cannot make
#: label values up).
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"))
#: The route label of a request that matched no route: never its raw path.
UNMATCHED = "unmatched"
#: The environment variable prometheus_client reads, at import, for multiprocess mode.
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


class Metrics:
    """The Prometheus metrics of one server process."""

    def __init__(self, settings: Settings):
        from prometheus_client import CollectorRegistry, Counter, Gauge
        from prometheus_client import Histogram as PromHistogram

        self.settings = settings
        #: Set: values go to files there, summed over processes by each scrape.
        self.directory = os.environ.get(MULTIPROC_DIR) or None
        # A registry of its own, not prometheus_client's global one: two apps in one
        # process (tests) must not collide. In multiprocess mode a scrape reads the files.
        self.registry = registry = CollectorRegistry(auto_describe=True)

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
            return Counter(name, doc, labels, registry=registry)

        self.http_seconds = PromHistogram(
            "http_server_request_duration_seconds",
            "Duration of HTTP requests, until the response ended, by method, route template and status.",
            ("http_request_method", "http_route", "http_response_status_code"),
            buckets=HTTP_SECONDS_BOUNDS,
            registry=registry,
        )
        self.websocket_sessions = counter(
            "fxhost_websocket_sessions_total", "WebSocket sessions ended, by route template.", ("http_route",)
        )
        self.audio_seconds = counter(
            "fxhost_live_audio_seconds",
            "Seconds of audio live chains processed (sessions and streams); "
            "rate(processing) / rate(audio) is the DSP load.",
        )
        self.processing_seconds = counter(
            "fxhost_live_processing_seconds", "Seconds live chains spent processing blocks."
        )
        self.blocks = counter("fxhost_live_blocks", "Blocks live chains processed.")
        self.deadline_misses = counter(
            "fxhost_live_block_deadline_misses",
            "Live blocks that took longer to process than they last (slower than real time).",
        )
        self.effect_seconds = PromHistogram(
            "fxhost_effect_processing_seconds",
            "Time one effect took on one live block.",
            ("effect",),
            buckets=EFFECT_SECONDS_BOUNDS,
            registry=registry,
        )
        self.effect_faults = counter(
            "fxhost_effect_faults",
            "Effect faults (live and offline) by effect and kind: start, raised, bad_output, params, "
            "timeout, crashed.",
            ("effect", "kind"),
        )
        self.overruns = counter(
            "fxhost_stream_overruns", "Times a stream's reader was lapped by its writer and skipped ahead."
        )
        self.lost_frames = counter("fxhost_stream_lost_frames", "Frames stream readers lost to overruns.")
        self.rejected_frames = counter(
            "fxhost_stream_rejected_frames", 'Input frames refused by a full stream (overflow "reject").'
        )
        self.dropped_frames = counter(
            "fxhost_stream_dropped_frames",
            'Unprocessed input frames a stream dropped to take new ones (overflow "drop_oldest").',
        )
        self.streams = Gauge(
            "fxhost_streams", "Open live streams.", registry=registry, multiprocess_mode="livesum"
        )
        self.render_queue = Gauge(
            "fxhost_render_queue_depth",
            "Renders accepted and not finished (queued or running).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.renders = counter(
            "fxhost_renders",
            "Renders that ended, by outcome: done, failed, timeout, interrupted, cancelled.",
            ("outcome",),
        )
        self.render_seconds = PromHistogram(
            "fxhost_render_duration_seconds",
            "How long renders ran (from leaving the queue to their end), whatever their outcome.",
            buckets=RENDER_SECONDS_BOUNDS,
            registry=registry,
        )
        self.worker_restarts = counter(
            "fxhost_render_worker_restarts",
            "Render worker processes started to replace one that was killed (time limit) or died.",
        )
        build = Gauge(
            "fxhost_build_info",
            "The fxhost and Python versions; always 1.",
            ("version", "python"),
            registry=registry,
            multiprocess_mode="livemax",
        )
        build.labels(version("fxhost"), platform.python_version()).set(1)
        # What the engine's counters were at the last flush.
        self._seen: dict[Any, Any] = {}
        self._services: Services | None = None
        self._flusher: asyncio.Task | None = None
        self._listener: asyncio.Server | None = None

    # -- the engine's counters, flushed -------------------------------------------------

    async def start(self, services: Services) -> None:
        self._services = services
        self._flusher = asyncio.create_task(self._flush_loop(), name="metrics-flush")
        if self.settings.metrics_port is not None:
            self._listener = await listen(self, self.settings.host, self.settings.metrics_port)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        self.flush()  # what this process counted last outlives it, in its files

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            try:
                self.flush()
            except Exception:  # a metric must never take the server down
                log.exception("flushing metrics failed")

    def flush(self) -> None:
        """Add what the engine's counters gained since the last flush. On the event loop
        (the counters are written there)."""
        services = self._services
        if services is None:
            return
        streams, renders = services.streams, services.renders
        for rate, counts in list(streams.totals.rates.items()):
            frames = self._gain(("frames", rate), counts.frames)
            if frames:
                self.audio_seconds.inc(frames / rate)
            self._inc(self.blocks, ("blocks", rate), counts.blocks)
            self._inc(self.processing_seconds, ("seconds", rate), counts.process_seconds)
            self._inc(self.deadline_misses, ("misses", rate), counts.deadline_misses)
        for name, times in list(streams.totals.effects.items()):
            self._add_histogram(self.effect_seconds.labels(name), ("effect", name), times)
        self._add_faults(streams.totals.faults, "live")
        self._add_faults(renders.faults, "offline")
        rings = streams.ring_counts()
        self._inc(self.overruns, "overruns", rings.overruns)
        self._inc(self.lost_frames, "lost", rings.frames_lost)
        self._inc(self.rejected_frames, "rejected", rings.rejected_frames)
        self._inc(self.dropped_frames, "dropped", rings.dropped_frames)
        self.streams.set(sum(1 for stream in streams.streams.values() if not stream.closed))
        self.render_queue.set(len(renders.jobs))
        for outcome, n in list(renders.outcomes.items()):
            self._inc(self.renders.labels(outcome), ("renders", outcome), n)
        self._add_histogram(self.render_seconds, "render_seconds", renders.durations)
        self._inc(self.worker_restarts, "restarts", renders.pool.restarts)

    def _gain(self, key: Any, total: float) -> float:
        gained = total - self._seen.get(key, 0)
        self._seen[key] = total
        return gained

    def _inc(self, counter: Any, key: Any, total: float) -> None:
        gained = self._gain(key, total)
        if gained > 0:
            counter.inc(gained)

    def _add_faults(self, faults: FaultCounts, where: str) -> None:
        for (effect, kind), n in list(faults.items()):
            self._inc(self.effect_faults.labels(effect, kind), (where, effect, kind), n)

    def _add_histogram(self, child: Any, key: Any, histogram: Histogram) -> None:
        """Add a local histogram's new observations to a Prometheus one with the same
        bounds. prometheus_client has no public call for counts observed elsewhere: this
        adds to its bucket and sum values (``_buckets``, ``_sum``), which are what
        ``observe()`` adds to, in memory or in the multiprocess files alike."""
        seen = self._seen.get(key)
        if seen is not None and seen[1] == histogram.sum:
            return  # nothing observed since
        counts = list(histogram.counts)
        if seen is None:
            seen = ([0] * len(counts), 0.0)
        for bucket, now, before in zip(child._buckets, counts, seen[0], strict=True):
            if now > before:
                bucket.inc(now - before)
        if histogram.sum > seen[1]:
            child._sum.inc(histogram.sum - seen[1])
        self._seen[key] = (counts, histogram.sum)

    # -- exposition ---------------------------------------------------------------------

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition of every metric (of every process, in multiprocess mode),
        and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        self.flush()
        if self.directory is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        forget_dead_processes(self.directory)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.directory)
        return generate_latest(registry), CONTENT_TYPE_LATEST

    # -- HTTP ---------------------------------------------------------------------------

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "_OTHER"
        self.http_seconds.labels(method, route, str(status)).observe(seconds)


def forget_dead_processes(directory: str) -> None:
    """Drop the live gauges (open streams, render queue) of processes that are gone:
    prometheus_client's ``mark_process_dead``, for every pid whose files remain."""
    from prometheus_client.multiprocess import mark_process_dead

    pids = set()
    for path in glob.glob(os.path.join(directory, "gauge_live*_*.db")):
        pid = os.path.basename(path)[: -len(".db")].rsplit("_", 1)[-1]
        if pid.isdigit():
            pids.add(int(pid))
    for pid in pids - {os.getpid()}:
        if not _alive(pid):
            mark_process_dead(pid, directory)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process now
        return False
    return True


def prepare_directory(directory: str) -> None:
    """Empty a multiprocess directory of an earlier run's files (prometheus_client needs
    it empty at start); made if missing."""
    os.makedirs(directory, exist_ok=True)
    for path in glob.glob(os.path.join(directory, "*.db")):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


# -- the route label ------------------------------------------------------------------

_CONVERTOR = re.compile(r"\{(\w+):\w+\}")
_labels: dict[int, str] = {}


def route_label(scope: Scope) -> str:
    """The template of the route that served ``scope`` (``/api/assets/{id}``), never the
    raw path: the router's match (``scope["route"]``), else matched again here (a scope
    copied on its way down hides it)."""
    route = scope.get("route")
    if route is None:
        app = scope.get("app")
        router = getattr(app, "router", None)
        for candidate in getattr(router, "routes", ()):
            match, _ = candidate.matches(scope)
            if match != Match.NONE:
                route = candidate
                if match == Match.FULL:
                    break
        if route is None:
            return UNMATCHED
    label = _labels.get(id(route))
    if label is None:
        path = getattr(route, "path", None)
        if path is None:
            return UNMATCHED
        label = _CONVERTOR.sub(r"{\1}", path)
        if isinstance(route, Mount):
            label = f"{label}/{{path}}"
        _labels[id(route)] = label
    return label


class HttpMetrics:
    """Pure ASGI middleware: times every HTTP request, labelled by method, route template
    and status, and counts WebSocket sessions by route. A streamed body is not buffered."""

    def __init__(self, app: ASGIApp, metrics: Metrics | None):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics = self.metrics
        if metrics is None or scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            try:
                return await self.app(scope, receive, send)
            finally:
                metrics.websocket_sessions.labels(route_label(scope)).inc()
        start = perf_counter()
        status = 500  # unless a response starts

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            metrics.observe_request(scope["method"], route_label(scope), status, perf_counter() - start)


# -- a port of its own ----------------------------------------------------------------

#: Longest a scraper on the metrics port may take to send its request.
REQUEST_SECONDS = 10.0
REQUEST_LIMIT = 16384


async def listen(metrics: Metrics, host: str, port: int) -> asyncio.Server | None:
    """Serve ``GET /metrics`` on ``port``, with no key. Every worker listens on it with
    SO_REUSEPORT, so whichever the kernel hands a scrape to answers with the sum and a
    worker that dies takes nothing with it. None (logged) if the port cannot be had."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_SECONDS)
            method, target, *_ = [*head.split(b"\r\n", 1)[0].decode("latin-1").split(" "), ""]
            path = target.split("?", 1)[0]
            if method not in ("GET", "HEAD"):
                status, body, kind = "405 Method Not Allowed", b"use GET\n", "text/plain"
            elif path != "/metrics":
                status, body, kind = "404 Not Found", b"metrics are at /metrics\n", "text/plain"
            else:
                status, (body, kind) = "200 OK", metrics.exposition()
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
                f"Connection: close\r\n\r\n".encode("latin-1")
            )
            if method != "HEAD":
                writer.write(body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        except Exception:
            log.exception("the metrics port failed to answer")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    try:
        return await asyncio.start_server(answer, host, port, reuse_port=True, limit=REQUEST_LIMIT)
    except OSError as error:
        log.error("metrics: cannot listen on %s:%d (%s); /metrics is not served", host, port, error)
        return None
