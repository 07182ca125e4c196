"""Shared streams: create, list, delete; producers write PCM into a stream's input ring
(WebSocket or REST), consumers read its output ring (WebSocket, or REST from a cursor),
and a step's parameters change live. The streams themselves are
:mod:`fxhost.engine.streams`; the protocol is in :mod:`fxhost.api.protocol`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from time import perf_counter
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from fxhost_sdk import FieldError
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from fxhost.api import protocol as p
from fxhost.api.auth import AuthMessage, tenant_of
from fxhost.api.cluster import (
    StreamLost,
    forwarder,
    is_internal,
    lost_close,
    owned,
    owner_elsewhere,
)
from fxhost.api.links import LINK_REFUSED, LINK_SECURITY
from fxhost.api.openapi.declare import Link, Operation, Resp, WebSocketOperation, component, problem_resp
from fxhost.api.openapi.decode import decode_json_body, decode_query
from fxhost.api.openapi.problems import FieldProblem, ProblemException, ValidationProblem, not_found
from fxhost.api.responses import JSONResponse
from fxhost.api.sessions import ProtocolError, audio_of, effect_failed, receive, send, session
from fxhost.api.state import services
from fxhost.api.vocabulary import LiveChainRef, LiveChainSteps, StreamId
from fxhost.audio.pcm import (
    LiveChannels,
    LiveSampleRate,
    Pcm,
    PcmFormat,
    frame_bytes,
    from_interleaved,
    to_interleaved,
)
from fxhost.engine.compiled import EffectFault
from fxhost.engine.ring import RingOverflow, RingReader
from fxhost.engine.streams import Broadcast, OverflowPolicy, Stream, StreamBuffers, StreamInfo, StreamLimit
from fxhost.engine.timing import AudioClock
from fxhost.reload import follow_chain
from fxhost.store.fanout import FanoutUnavailable
from fxhost.store.registry import Entry

TAGS = ["live"]
#: The most frames a consumer's socket gets in one binary frame.
CONSUMER_CHUNK = 65536


def stream_closed(stream: Stream) -> ProtocolError:
    if stream.failure is not None:
        return effect_failed(stream.failure)
    return ProtocolError("gone", "the stream was deleted", p.CLOSE_GONE)


class StreamCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: A chain's name, or its steps.
    chain: LiveChainRef | LiveChainSteps
    sample_rate: LiveSampleRate | None = None
    channels: LiveChannels = 2
    format: PcmFormat = "f32le"
    #: Ring buffer capacity in frames (default: the stream_capacity_seconds setting).
    capacity: Annotated[int, msgspec.Meta(ge=64, le=100_000_000)] | None = None
    #: What a producer's block that does not fit does: refused, or the oldest unprocessed input dropped.
    overflow: OverflowPolicy = "reject"


class StreamInput(msgspec.Struct, kw_only=True):
    frames: int
    write_pos: int


class OutputQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    cursor: (
        Annotated[
            int, msgspec.Meta(ge=0, description="Frame position to read from (default: the oldest kept).")
        ]
        | None
    ) = None
    max_frames: Annotated[int, msgspec.Meta(ge=1, le=10_000_000, description="Most frames to return.")] = (
        65536
    )


class ProducerQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    ack: Annotated[
        bool,
        msgspec.Meta(
            description="Answer every accepted block with a `written` message: the input frame index "
            "of its first frame (which is also its output frame index)."
        ),
    ] = False


class ConsumerQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    from_: (
        Annotated[
            int,
            msgspec.Meta(
                ge=0,
                description="Start at this output frame index (at most the frames written so far; older "
                "than the oldest kept: from the oldest, with an `overrun` naming the frames lost), or "
                "`now` / `oldest`. Given, the server first sends a `position` message.",
            ),
        ]
        | Literal["now", "oldest"]
        | None
    ) = msgspec.field(default=None, name="from")


class StreamUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: The chain the stream runs from now on: a chain's name, or its steps.
    chain: LiveChainRef | LiveChainSteps


class StepUpdate(msgspec.Struct, kw_only=True):
    step: int
    params: dict[str, Any]


def _stream(conn: HTTPConnection) -> Stream:
    stream_id = conn.path_params["id"]
    stream = services(conn).streams.get(stream_id, tenant_of(conn))
    if stream is not None and stream.failure is not None:
        raise stream.failure  # until the stream is reaped, say why it stopped
    if stream is None:
        raise not_found(f"no stream with id {stream_id!r}")
    return stream


async def create_stream(request: Request) -> Response:
    svc = services(request)
    body = decode_json_body(await request.body(), StreamCreate)
    tenant = tenant_of(request)
    resolved = await svc.chains.resolve(body.chain, "chain", tenant=tenant, live=True)
    rate = body.sample_rate or svc.settings.default_sample_rate
    capacity = body.capacity or round(svc.settings.stream_capacity_seconds * rate)
    ring_bytes, limit = capacity * body.channels * 4, svc.settings.max_stream_ring_bytes
    if ring_bytes > limit:
        given = "" if body.capacity else " (the default, stream_capacity_seconds at this rate)"
        raise ValidationProblem(
            [
                FieldProblem(
                    "capacity",
                    f"{capacity} frames{given} x {body.channels} channels is a {ring_bytes}-byte ring, over "
                    f"the limit of {limit} (FXHOST_MAX_STREAM_RING_BYTES); at most "
                    f"{limit // (4 * body.channels)} frames",
                )
            ]
        )
    try:
        stream = svc.streams.create(
            body.chain if isinstance(body.chain, str) else None,
            resolved.steps,
            sample_rate=rate,
            channels=body.channels,
            wire_format=body.format,
            capacity=capacity,
            overflow=body.overflow,
            tenant=tenant,
            assets=resolved.assets,
            follows_config=isinstance(body.chain, str) and body.chain in svc.chains.config_chains,
        )
    except StreamLimit as error:
        raise ProblemException(429, str(error)) from None
    info = stream.info()
    try:
        # Before the answer: any process the client reaches next must find it.
        await svc.registry.add(stream.id, tenant, msgspec.json.encode(info).decode())
    except BaseException:
        await svc.streams.delete(stream.id)
        raise
    return JSONResponse(info, status_code=201, headers={"Location": f"/api/streams/{stream.id}"})


async def list_streams(request: Request) -> Response:
    svc, tenant = services(request), tenant_of(request)
    here = [s.info() for s in svc.streams.of(tenant)]
    if is_internal(request):  # another process asks for this one's part of the list
        return JSONResponse(here)
    elsewhere = await svc.registry.listing(tenant)
    return JSONResponse(here + await forwarder(request).streams_of(request, elsewhere))


@owned
async def get_stream(request: Request) -> Response:
    return JSONResponse(_stream(request).info())


@owned
async def update_stream(request: Request) -> Response:
    stream = _stream(request)
    body = decode_json_body(await request.body(), StreamUpdate)
    spec = body.chain if isinstance(body.chain, str) else list(body.chain)
    await follow_chain(services(request), stream, spec)
    return JSONResponse(stream.info())


@owned
async def delete_stream(request: Request) -> Response:
    _stream(request)
    await services(request).streams.delete(request.path_params["id"])
    return Response(status_code=204)


@owned
async def stream_input(request: Request) -> Response:
    stream = _stream(request)
    svc = services(request)
    limit = min(svc.settings.max_frame_bytes, stream.capacity * frame_bytes(stream.channels, stream.format))
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise ProblemException(413, f"the body is larger than {limit} bytes")
    if not data:
        raise ValidationProblem([FieldProblem("body", "empty: send at least one frame of PCM")])
    try:
        block = from_interleaved(bytes(data), stream.channels, stream.format)
    except ValueError as error:
        raise ValidationProblem([FieldProblem("body", str(error))]) from None
    try:
        stream.write(block)
    except RingOverflow as error:
        seconds = max(1, round((error.needed - error.free) / stream.sample_rate))
        raise ProblemException(429, f"{error}; retry in about {seconds} s") from None
    return JSONResponse(StreamInput(frames=block.shape[1], write_pos=stream.input.write_pos))


@owned
async def stream_output(request: Request) -> Response:
    stream = _stream(request)
    query = decode_query(request, OutputQuery)
    cursor = stream.output.oldest_pos if query.cursor is None else query.cursor
    if cursor > stream.output.write_pos:
        raise ValidationProblem(
            [FieldProblem("cursor", f"beyond the end of the output ({stream.output.write_pos})")]
        )
    block, next_cursor, lost = stream.output.read_at(cursor, query.max_frames)
    stream.touch()
    return Response(
        to_interleaved(block, stream.format),
        media_type="application/octet-stream",
        headers={
            "X-Next-Cursor": str(next_cursor),
            "X-Lost-Frames": str(lost),
            "X-Frames": str(block.shape[1]),
        },
    )


@owned
async def patch_step(request: Request) -> Response:
    stream = _stream(request)
    index = request.path_params["index"]
    params = decode_json_body(await request.body(), dict[str, Any])
    try:
        full = await stream.live.set_params(index, params, path="params")
    except FieldError as error:
        if error.path == "step":
            raise not_found(error.message) from None
        raise ValidationProblem.of(error) from None
    except EffectFault as fault:
        stream.fail(fault)  # the effect's state is unknown now: the stream cannot go on
        raise
    return JSONResponse(StepUpdate(step=index, params=full))


class _Rejections:
    __slots__ = ("blocks", "frames")

    def __init__(self) -> None:
        self.blocks = self.frames = 0


@session
async def ws_stream_input(ws: WebSocket) -> None:
    stream = await _ws_stream(ws)
    if not isinstance(stream, Stream):
        return await forwarder(ws).websocket(ws, stream)
    query = _ws_query(ws, ProducerQuery)
    max_bytes = services(ws).settings.max_frame_bytes
    # The producer's own audio clock: its underruns. Writing is never late; the
    # stream's processing is (stream.clock).
    clock, rejected = AudioClock(stream.sample_rate), _Rejections()
    pcm = Pcm(stream.channels, stream.format)
    while True:
        data = await receive(ws)
        if not isinstance(data, bytes):
            await send(ws, _producer_stats(stream, clock, rejected, data))
            continue
        arrived = perf_counter()
        if stream.closed:
            raise stream_closed(stream)
        block = audio_of(data, pcm, max_bytes)
        frames = block.shape[1]
        clock.arrive(frames, arrived)
        try:
            stream.write(block)
        except RingOverflow as error:
            rejected.blocks += 1
            rejected.frames += frames
            await send(ws, p.Rejected(frames=frames, free=error.free))
        else:
            if query.ack:
                await send(ws, p.Written(frame=stream.input.write_pos - frames, frames=frames))


def _producer_stats(stream: Stream, clock: AudioClock, rejected: _Rejections, text: str) -> p.StatsReply:
    """The answer to a producer's text message: only ``stats`` is one."""
    try:
        p.decode_stream_message(text)
    except FieldError:
        raise ProtocolError(
            "expected_audio",
            'send binary PCM frames in the stream\'s format (the only text message is {"type": "stats"})',
            p.CLOSE_UNSUPPORTED,
        ) from None
    return p.StatsReply(
        blocks=clock.blocks,
        frames_in=clock.frames - rejected.frames,
        frames_out=0,
        frame=stream.input.write_pos,
        late_blocks=stream.clock.late,
        underruns=clock.underruns,
        queue_frames=stream.unprocessed,
        rejected_blocks=rejected.blocks,
        rejected_frames=rejected.frames,
    )


class _Consumer:
    """One consumer's counters: its audio clock (blocks, frames sent, underruns) and overruns."""

    __slots__ = ("clock", "late", "overruns", "reader")

    def __init__(self, sample_rate: int, reader: RingReader, late: AudioClock | None) -> None:
        self.reader = reader
        self.clock = AudioClock(sample_rate)
        #: The stream's processing clock, where this process runs it (not on a mirror).
        self.late = late
        self.overruns = 0

    def stats(self) -> p.StatsReply:
        reader, clock = self.reader, self.clock
        return p.StatsReply(
            blocks=clock.blocks,
            frames_in=0,
            frames_out=clock.frames,
            frame=reader.cursor,
            late_blocks=None if self.late is None else self.late.late,
            underruns=clock.underruns,
            queue_frames=reader.lag,
            overruns=self.overruns,
            lost=reader.lost,
        )


@session
async def ws_stream_output(ws: WebSocket) -> None:
    stream = await _ws_stream(ws)
    if not isinstance(stream, Stream):
        return await _remote_consumer(ws, stream)
    start = _ws_query(ws, ConsumerQuery).from_
    reader = _consumer(stream, start)
    try:
        await _consume(
            ws,
            _Consumer(stream.sample_rate, reader, stream.clock),
            stream.format,
            stream.output_ready,
            touch=stream.touch,
            ended=lambda: stream_closed(stream) if stream.closed else None,
            position=start is not None,
        )
    finally:
        stream.release(reader)


async def _remote_consumer(ws: WebSocket, entry: Entry) -> None:
    """A consumer of a stream another process owns. With Redis (``FXHOST_REDIS_URL``) it
    reads this process's mirror of the stream's output, so that listeners spread over
    processes and nodes; a resume (``from``) and a server without Redis are forwarded to
    the owner, which has the history."""
    fanout = services(ws).fanout
    query = _ws_query(ws, ConsumerQuery)
    if fanout is None or query.from_ not in (None, "now") or entry.address is None:
        return await forwarder(ws).websocket(ws, entry)
    info = msgspec.json.decode(entry.info, type=StreamInfo)
    try:
        mirror = await fanout.mirror(entry.stream, channels=info.channels, capacity=info.capacity)
    except (LookupError, FanoutUnavailable):
        return await forwarder(ws).websocket(ws, entry)
    reader = mirror.consumer()
    lost: list[StreamLost] = []

    async def watch_owner() -> None:
        # A killed owner publishes no end: the registry tells of its death first.
        while True:
            await asyncio.sleep(services(ws).settings.cluster_heartbeat_seconds)
            try:
                await owner_elsewhere(ws, entry.stream)
            except StreamLost as error:
                lost.append(error)
                mirror.output_ready.notify()
                return

    def ended() -> ProtocolError | None:
        if lost:
            return lost_close(lost[0])
        if not mirror.closed:
            return None
        if mirror.failure is not None:
            return effect_failed(mirror.failure)
        if mirror.ended == "lost":
            return lost_close(
                StreamLost(entry.stream, mirror.message or f"its owner, {entry.node}, stopped publishing")
            )
        return ProtocolError("gone", "the stream was deleted", p.CLOSE_GONE)

    watcher = asyncio.ensure_future(watch_owner())
    try:
        await _consume(
            ws,
            _Consumer(info.sample_rate, reader, None),
            info.format,
            mirror.output_ready,
            touch=lambda: None,
            ended=ended,
            position=query.from_ is not None,
        )
    finally:
        watcher.cancel()
        await mirror.release(reader)


async def _consume(
    ws: WebSocket,
    consumer: _Consumer,
    fmt: PcmFormat,
    ready: Broadcast,
    *,
    touch: Callable[[], None],
    ended: Callable[[], ProtocolError | None],
    position: bool,
) -> None:
    """Send a consumer its reader's frames as they come, until the client goes or the
    source (a stream here, or a mirror of one elsewhere) ends."""
    reader, clock = consumer.reader, consumer.clock
    # Answer stats, and watch for the client going away while this task waits for audio.
    gone = asyncio.ensure_future(_listen(ws, consumer))
    try:
        if position:
            await send(ws, p.Position(frame=reader.cursor))
        while not gone.done():
            block, lost = reader.read(CONSUMER_CHUNK)
            if lost:
                consumer.overruns += 1
                await send(ws, p.Overrun(lost=lost, frame=reader.cursor - block.shape[1]))
            if block.shape[1]:
                touch()
                clock.arrive(block.shape[1], perf_counter())
                await ws.send_bytes(to_interleaved(block, fmt))
                clock.done(perf_counter())
                if block.shape[1] == CONSUMER_CHUNK:
                    # Catching up on a backlog (a resume, a slow link): a send that does not
                    # block does not yield, so let other tasks (this one's stats) run.
                    await asyncio.sleep(0)
                continue
            error = ended()
            if error is not None:
                raise error
            waiter = asyncio.ensure_future(ready.wait())
            await asyncio.wait({waiter, gone}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
    finally:
        gone.cancel()


def _consumer(stream: Stream, start: int | Literal["now", "oldest"] | None) -> RingReader:
    """The consumer's reader at ``from``: now, the oldest frame kept, or a frame index."""
    if start == "oldest":
        start = stream.output.oldest_pos
    elif start == "now":
        start = None
    try:
        return stream.consumer(start)
    except ValueError:
        written = stream.output.write_pos
        raise ProtocolError(
            "invalid_query",
            f"from: frame {start} is ahead of the stream's output: {written} frames were written so far "
            f"(resume from at most {written})",
            p.CLOSE_POLICY,
            "from",
        ) from None


async def _listen(ws: WebSocket, consumer: _Consumer) -> None:
    """Answer a consumer's ``stats`` (other text gets an error; the session goes on),
    until it disconnects."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            data = await receive(ws)
            if isinstance(data, bytes):
                continue  # a consumer has nothing to send; ignored as it always was
            try:
                p.decode_stream_message(data)
            except FieldError as error:
                await send(ws, p.Error(code="invalid_message", message=str(error), path=error.path or None))
            else:
                await send(ws, consumer.stats())


Q = TypeVar("Q", bound=msgspec.Struct)


def _ws_query(ws: WebSocket, query_type: type[Q]) -> Q:
    """A WebSocket's query string, or the 1008 close that names the bad parameter."""
    try:
        return decode_query(ws, query_type)
    except ProblemException as problem:
        path = problem.errors[0].path if problem.errors else None
        raise ProtocolError("invalid_query", problem.detail, p.CLOSE_POLICY, path or None) from None


async def _ws_stream(ws: WebSocket) -> Stream | Entry:
    """The stream, when this process owns it; else the registry's entry of its owner."""
    stream_id = ws.path_params["id"]
    stream = services(ws).streams.get(stream_id, tenant_of(ws))
    if stream is not None and stream.failure is not None:
        raise effect_failed(stream.failure)
    if stream is None and services(ws).streams.streams.get(stream_id) is None:
        try:
            entry = await owner_elsewhere(ws, stream_id)
        except StreamLost as error:
            raise lost_close(error) from None
        if entry is not None:
            return entry
    if stream is None:
        raise ProtocolError("unknown_stream", f"no stream with id {ws.path_params['id']!r}", p.CLOSE_GONE)
    return stream


@owned
async def stream_buffers(request: Request) -> Response:
    return JSONResponse(_stream(request).buffers())


#: What a stream's id leads to.
ID_LINKS = [
    Link(op, {"id": "$response.body#/id"})
    for op in ("get_stream", "stream_input", "stream_output", "stream_buffers")
] + [
    Link("patch_step", {"id": "$response.body#/id", "index": "0"}, description="Change the first step."),
    Link("update_stream", {"id": "$response.body#/id"}, description="Change the chain it runs."),
    Link(
        "create_link",
        request_body={"action": "stream_output", "stream": "$response.body#/id"},
        description="A signed link to its output, for a browser.",
    ),
    Link("delete_stream", {"id": "$response.body#/id"}),
]
#: What a route on one stream may answer besides its own, when another process owns it.
ELSEWHERE = {
    410: problem_resp("The process that ran the stream died: the stream is lost (the detail says why)."),
    503: problem_resp("The process that runs the stream did not answer: retry."),
}
#: A step's parameters, as a PATCH gives them: some of those of the step's effect.
StepParams = component(dict[str, Any], "StepParams")


ROUTES = [
    Operation(
        "POST",
        "/api/streams",
        create_stream,
        summary="Create a shared stream: producers write in, one task runs the chain, many consumers read.",
        tags=["live"],
        body=StreamCreate,
        example={"chain": "vocal-plate", "sample_rate": 48000, "channels": 2, "format": "f32le"},
        responses={201: StreamInfo, 429: problem_resp("This server process runs as many streams as it may.")},
        links=ID_LINKS,
    ),
    Operation(
        "GET",
        "/api/streams",
        list_streams,
        summary="The live streams: those of every process sharing the database (workers and nodes).",
        tags=["live"],
        responses={200: list[StreamInfo]},
    ),
    Operation(
        "GET",
        "/api/streams/{id}",
        get_stream,
        summary="One stream.",
        tags=["live"],
        responses={**ELSEWHERE, 200: StreamInfo},
        path_types={"id": StreamId},
    ),
    Operation(
        "PATCH",
        "/api/streams/{id}",
        update_stream,
        summary="Change the chain a stream runs, live: the same effects take the new parameters, "
        "other steps are crossfaded in (FXHOST_CROSSFADE_MS).",
        description="The new chain (a name, or steps) is checked as on creation; if it is refused, or "
        "an effect fails to start, the stream runs on as it was. Steps with the same effects in the same "
        "order take their new parameters between blocks, smoothed where the effect can; anything else "
        "(a step added, removed or moved, an effect swapped) runs the new chain beside the old one for "
        "the crossfade (equal power), then alone. Given a chain of plugins.toml by name, the stream "
        "follows that chain when the file is reloaded; given steps, it follows none.",
        tags=["live"],
        body=StreamUpdate,
        example={"chain": [{"effect": "reverb", "params": {"room_size": 0.8}}]},
        responses={**ELSEWHERE, 200: StreamInfo},
        path_types={"id": StreamId},
    ),
    Operation(
        "DELETE",
        "/api/streams/{id}",
        delete_stream,
        summary="Stop and delete a stream; its consumers are told.",
        tags=["live"],
        responses={**ELSEWHERE, 204: None},
        path_types={"id": StreamId},
    ),
    Operation(
        "POST",
        "/api/streams/{id}/input",
        stream_input,
        summary="Write raw interleaved PCM (the stream's format) into the stream's input ring.",
        tags=["live"],
        raw_body={"application/octet-stream": "Interleaved little-endian PCM, whole frames."},
        responses={
            **ELSEWHERE,
            200: StreamInput,
            413: problem_resp("More than the ring's capacity or the frame size limit."),
            429: problem_resp("The input ring is full (overflow policy reject): retry later."),
        },
        path_types={"id": StreamId},
    ),
    Operation(
        "GET",
        "/api/streams/{id}/output",
        stream_output,
        summary="Read processed audio from a cursor: raw PCM, with the next cursor in X-Next-Cursor.",
        tags=["live"],
        security=LINK_SECURITY,
        query=OutputQuery,
        responses={
            **ELSEWHERE,
            403: LINK_REFUSED,
            200: Resp(
                media_type="application/octet-stream",
                binary=True,
                headers={
                    "X-Next-Cursor": "Pass as cursor to read on.",
                    "X-Lost-Frames": "Frames skipped because the cursor fell out of the ring.",
                    "X-Frames": "Frames in this body.",
                },
            ),
        },
        path_types={"id": StreamId},
    ),
    Operation(
        "PATCH",
        "/api/streams/{id}/steps/{index:int}",
        patch_step,
        summary="Change a step's parameters live (only the fields given); applied between blocks.",
        tags=["live"],
        body=StepParams,
        example={"wet_level": 0.5},
        responses={**ELSEWHERE, 200: StepUpdate},
        path_types={"id": StreamId},
    ),
    WebSocketOperation(
        "/ws/streams/{id}/input",
        ws_stream_input,
        summary="Produce into a stream: binary frames of interleaved PCM in the stream's format.",
        description="Each accepted block goes into the input ring at the ring's write position: its "
        "frames get the next input frame indices, and the output frame with the same index is its "
        "processed audio (the chain's latency is inside the audio: `latency` of the stream). With "
        "`?ack=true` every accepted block is answered by `written` (its first frame index and its "
        "frames). A block that does not fit the input ring under the `reject` policy is answered by a "
        "`rejected` message (the connection stays open). The only text message is `stats`, answered "
        "with the connection's counters (blocks, frames_in, frame = the input's write position, "
        "late_blocks of the stream's processing, underruns of this producer, queue_frames = input not "
        "yet processed, rejected_blocks/frames); other text is refused (close 1003). When the process "
        "that ran the stream dies, the connection closes with 4410 (`stream_lost`).",
        tags=["live"],
        query=ProducerQuery,
        client_messages=[AuthMessage, p.Stats],
        server_messages=[p.Written, p.Rejected, p.StatsReply, p.Error],
    ),
    WebSocketOperation(
        "/ws/streams/{id}/output",
        ws_stream_output,
        summary="Consume a stream: processed frames as binary frames, from now or from a frame index.",
        description="Frames arrive in order and without gaps, so one index gives every frame's: with "
        "`?from=N` (a frame index, `now` or `oldest`) the server first sends `position` (the index of "
        "the next binary frame); an `overrun` says how many frames were skipped and the index of the "
        "next frame. A consumer that falls behind by more than the ring's capacity, or asks for frames "
        "no longer kept, gets `overrun` and goes on from the oldest frame kept; `from` beyond the frames "
        "written so far closes with 1008 naming `from`. Resume after a disconnect with `from` = the "
        "index after the last frame received. Text `stats` is answered with the connection's counters "
        "(blocks, frames_out, frame = the next frame's index, underruns, queue_frames = its lag, "
        "overruns, lost, late_blocks of the stream's processing). When the stream is deleted the "
        "connection closes with 4404; when the process that ran it dies, with 4410 (`stream_lost`).",
        tags=["live"],
        query=ConsumerQuery,
        client_messages=[AuthMessage, p.Stats],
        server_messages=[p.Position, p.Overrun, p.StatsReply, p.Error],
    ),
    Operation(
        "GET",
        "/api/streams/{id}/buffers",
        stream_buffers,
        summary="One stream's ring buffers.",
        tags=["live"],
        responses={**ELSEWHERE, 200: StreamBuffers},
        path_types={"id": StreamId},
    ),
]
