"""Live audio: ``/ws/process`` for one client, and shared streams with producers and
consumers over WebSocket and REST. The protocol is in :mod:`fxhost.api.protocol`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
from fxhost_sdk import FieldError
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from fxhost.api import protocol as p
from fxhost.api.auth import AuthMessage, tenant_from_message, tenant_of, ws_auth_state
from fxhost.api.http import JSONResponse, not_found, services
from fxhost.api.openapi import (
    FieldProblem,
    ProblemException,
    Resp,
    ValidationProblem,
    decode_json_body,
    decode_query,
    problem_resp,
)
from fxhost.api.spec import api
from fxhost.chains import ChainName, ChainSteps
from fxhost.engine import EffectFault, EffectTimeout
from fxhost.live import LiveChain, Stream, StreamBuffers, StreamInfo, StreamLimit
from fxhost.ring import RingOverflow, from_interleaved, to_interleaved

log = logging.getLogger(__name__)

#: Seconds a client has to send its first message.
START_TIMEOUT = 30.0
#: Frames of tail sent per binary message on flush.
TAIL_BLOCK = 4096
BYTES_PER_SAMPLE = {"f32le": 4, "s16le": 2}
#: No key, or a key that is not valid: a policy violation.
CLOSE_AUTH = p.CLOSE_POLICY


# -- shared helpers -----------------------------------------------------------------


class ProtocolError(Exception):
    """Ends a WebSocket session: an error message, then a close with ``close_code``."""

    def __init__(self, code: str, message: str, close_code: int, path: str | None = None):
        super().__init__(message)
        self.code, self.message, self.close_code, self.path = code, message, close_code, path


async def send(ws: WebSocket, message: p.ServerMessage) -> None:
    await ws.send_text(p.encode_message(message))


async def close_with(ws: WebSocket, error: ProtocolError) -> None:
    if ws.application_state == WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):
            await send(ws, p.Error(code=error.code, message=error.message, path=error.path))
            await ws.close(error.close_code, error.message[:120])


@contextlib.asynccontextmanager
async def session(ws: WebSocket) -> AsyncIterator[None]:
    """Accept, count the connection against the limit, and turn protocol errors into an
    error message and a close code. The server and other sessions carry on whatever
    happens here."""
    svc = services(ws)
    await ws.accept()
    if svc.connections >= svc.settings.max_connections:
        await close_with(
            ws, ProtocolError("busy", "too many connections; try again later", p.CLOSE_TRY_LATER)
        )
        return
    svc.connections += 1
    try:
        await _authenticate(ws)
        yield
    except ProtocolError as error:
        await close_with(ws, error)
    except EffectFault as fault:  # while flushing the tail
        await close_with(ws, effect_failed(fault))
    except WebSocketDisconnect:
        pass
    except Exception:
        log.exception("WebSocket %s failed", ws.url.path)
        await close_with(
            ws, ProtocolError("internal", "the server failed; the error is logged", p.CLOSE_INTERNAL)
        )
    finally:
        svc.connections -= 1


async def _authenticate(ws: WebSocket) -> None:
    """A WebSocket whose key was not in a header must send it as its first message."""
    state = ws_auth_state(ws)
    if state is None:
        return
    needed = 'this route needs an API key: the Authorization header, or {"type": "auth", "token": KEY} first'
    if state == "invalid":
        raise ProtocolError(
            "unauthorized", "the API key is not valid (unknown, revoked or malformed)", CLOSE_AUTH
        )
    try:
        first = await receive(ws, START_TIMEOUT)
    except TimeoutError:
        raise ProtocolError("unauthorized", needed, CLOSE_AUTH) from None
    if isinstance(first, bytes) or await tenant_from_message(ws, services(ws).auth, first) is None:
        raise ProtocolError("unauthorized", needed, CLOSE_AUTH)


async def receive(ws: WebSocket, timeout: float | None = None) -> bytes | str:
    message = await asyncio.wait_for(ws.receive(), timeout) if timeout else await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    if message.get("bytes") is not None:
        return message["bytes"]
    return message.get("text") or ""


def audio_of(data: bytes, channels: int, fmt: str, max_bytes: int) -> np.ndarray:
    if len(data) > max_bytes:
        raise ProtocolError(
            "too_big",
            f"a frame of {len(data)} bytes is larger than the limit of {max_bytes}",
            p.CLOSE_TOO_BIG,
        )
    try:
        return from_interleaved(data, channels, fmt)
    except ValueError as error:
        raise ProtocolError("invalid_audio", str(error), p.CLOSE_INVALID_DATA) from None


def effect_failed(fault: EffectFault) -> ProtocolError:
    """An effect failed or hung: the session or stream ends (1011), naming the effect."""
    code = "effect_timeout" if isinstance(fault, EffectTimeout) else "effect_failed"
    return ProtocolError(code, str(fault), p.CLOSE_INTERNAL)


def stream_closed(stream: Stream) -> ProtocolError:
    if stream.failure is not None:
        return effect_failed(stream.failure)
    return ProtocolError("gone", "the stream was deleted", p.CLOSE_GONE)


def field_problem(error: FieldError) -> ValidationProblem:
    return ValidationProblem([FieldProblem(error.path, error.message)])


# -- /ws/process ----------------------------------------------------------------------


@api.websocket(
    "/ws/process",
    summary="Process live audio: binary PCM frames in, processed frames out, in order.",
    description=(
        "Send a `start` message first (a chain by name or its steps, sample_rate, channels, "
        "format f32le|s16le); the server answers `ready` with the latency in frames. Then send "
        "binary frames of interleaved little-endian PCM of any whole number of frames: each is "
        "answered by one processed frame of the same size. `set` changes a step's parameters "
        "between blocks, `stats` reports counters, `flush` sends the tail as binary frames and "
        "then `flushed`. Protocol errors get an `error` message and a close code: 1003 audio "
        "before start or text where audio is expected, 1007 a partial frame or NaN/Inf, 1008 a "
        "wrong or invalid start, 1009 a frame over the size limit, 1011 an effect failed, 1013 "
        "too many connections."
    ),
    tags=["live"],
    client_messages=[AuthMessage, p.ClientMessage],
    server_messages=[p.ServerMessage],
)
async def ws_process(ws: WebSocket) -> None:
    async with session(ws):
        svc = services(ws)
        first = await _first_message(ws)
        try:
            start = p.decode_message(first)
        except FieldError as error:
            raise ProtocolError("invalid_start", str(error), p.CLOSE_POLICY, error.path) from None
        if not isinstance(start, p.Start):
            raise ProtocolError(
                "expected_start", 'the first message must be {"type": "start", ...}', p.CLOSE_POLICY
            )
        live = await _live_chain(ws, start)
        rate = start.sample_rate or svc.settings.default_sample_rate
        max_bytes = svc.settings.max_frame_bytes
        await send(ws, _ready(live, start, rate, svc.settings.block_size))
        while True:
            data = await receive(ws)
            if isinstance(data, bytes):
                block = audio_of(data, start.channels, start.format, max_bytes)
                out = await _process(live, block)
                await ws.send_bytes(to_interleaved(out, start.format))
            else:
                await _control(ws, live, data, start.format)


async def _first_message(ws: WebSocket) -> str:
    try:
        first = await receive(ws, START_TIMEOUT)
    except TimeoutError:
        raise ProtocolError(
            "timeout", f"no start message within {START_TIMEOUT:.0f} s", p.CLOSE_POLICY
        ) from None
    if isinstance(first, bytes):
        raise ProtocolError(
            "expected_start",
            'audio before the start message; send {"type": "start", ...} first',
            p.CLOSE_UNSUPPORTED,
        )
    return first


async def _live_chain(ws: WebSocket, start: p.Start) -> LiveChain:
    svc = services(ws)
    if (start.chain is None) == (start.steps is None):
        raise ProtocolError("invalid_start", "give exactly one of chain or steps", p.CLOSE_POLICY, "chain")
    spec: Any = (
        start.chain if start.chain is not None else [msgspec.to_builtins(s) for s in start.steps or []]
    )
    try:
        resolved = await svc.chains.resolve(
            spec, "chain" if start.chain is not None else "steps", tenant=tenant_of(ws), live=True
        )
        rate = start.sample_rate or svc.settings.default_sample_rate
        return svc.streams.live_chain(resolved.steps, rate, start.channels, assets=resolved.assets)
    except FieldError as error:
        code = "unknown_chain" if error.path == "chain" else "invalid_start"
        raise ProtocolError(code, str(error), p.CLOSE_POLICY, error.path) from None


def _ready(live: LiveChain, start: p.Start, rate: int, default_block: int) -> p.Ready:
    return p.Ready(
        latency=live.latency,
        sample_rate=rate,
        channels=start.channels,
        format=start.format,
        block=start.block or default_block,
        tail_frames=live.tail_frames(),
        steps=live.step_params(),
    )


async def _process(live: LiveChain, block: np.ndarray) -> np.ndarray:
    try:
        return await live.process(block)
    except EffectFault as fault:
        log.warning("/ws/process: %s", fault)
        raise effect_failed(fault) from None


async def _control(ws: WebSocket, live: LiveChain, text: str, fmt: str) -> None:
    """A control message during the session. A bad one gets an error message; the
    session goes on."""
    try:
        message = p.decode_message(text)
    except FieldError as error:
        await send(ws, p.Error(code="invalid_message", message=str(error), path=error.path or None))
        return
    if isinstance(message, p.Start):
        await send(ws, p.Error(code="already_started", message="the session has started already"))
    elif isinstance(message, p.Set):
        try:
            params = await live.set_params(message.step, message.params)
        except FieldError as error:
            await send(ws, p.Error(code="invalid_params", message=str(error), path=error.path))
        else:
            await send(ws, p.Updated(step=message.step, params=params))
    elif isinstance(message, p.Stats):
        await send(ws, _stats(live))
    elif isinstance(message, p.Flush):
        frames = 0
        for block in await live.tail(TAIL_BLOCK):
            frames += block.shape[1]
            await ws.send_bytes(to_interleaved(block, fmt))
        await send(ws, p.Flushed(frames=frames))


def _stats(live: LiveChain) -> p.StatsReply:
    return p.StatsReply(
        frames_in=live.frames_in,
        frames_out=live.frames_out,
        blocks=live.blocks,
        process_seconds=round(live.process_seconds, 6),
        latency=live.latency,
    )


# -- shared streams over REST --------------------------------------------------------


class StreamCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: A chain's name, or its steps.
    chain: ChainName | ChainSteps
    sample_rate: Annotated[int, msgspec.Meta(ge=8000, le=384000)] | None = None
    channels: Annotated[int, msgspec.Meta(ge=1, le=32)] = 2
    format: p.Format = "f32le"
    #: Ring buffer capacity in frames (default: the stream_capacity_seconds setting).
    capacity: Annotated[int, msgspec.Meta(ge=64, le=100_000_000)] | None = None
    #: What a producer's block that does not fit does: refused, or the oldest unprocessed input dropped.
    overflow: Literal["reject", "drop_oldest"] = "reject"


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


@api.post(
    "/api/streams",
    summary="Create a shared stream: producers write in, one task runs the chain, many consumers read.",
    tags=["live"],
    body=StreamCreate,
    responses={201: StreamInfo, 429: problem_resp("The server runs as many streams as it may.")},
)
async def create_stream(request: Request) -> Response:
    svc = services(request)
    body = decode_json_body(await request.body(), StreamCreate)
    spec: Any = body.chain if isinstance(body.chain, str) else [msgspec.to_builtins(s) for s in body.chain]
    tenant = tenant_of(request)
    resolved = await svc.chains.resolve(spec, "chain", tenant=tenant, live=True)
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
        )
    except StreamLimit as error:
        raise ProblemException(429, str(error)) from None
    return JSONResponse(stream.info(), status_code=201, headers={"Location": f"/api/streams/{stream.id}"})


@api.get(
    "/api/streams",
    summary="The live streams of this server process.",
    tags=["live"],
    responses={200: list[StreamInfo]},
)
async def list_streams(request: Request) -> Response:
    return JSONResponse([s.info() for s in services(request).streams.of(tenant_of(request))])


@api.get("/api/streams/{id}", summary="One stream.", tags=["live"], responses={200: StreamInfo})
async def get_stream(request: Request) -> Response:
    return JSONResponse(_stream(request).info())


@api.delete(
    "/api/streams/{id}",
    summary="Stop and delete a stream; its consumers are told.",
    tags=["live"],
    responses={204: None},
)
async def delete_stream(request: Request) -> Response:
    _stream(request)
    await services(request).streams.delete(request.path_params["id"])
    return Response(status_code=204)


@api.post(
    "/api/streams/{id}/input",
    summary="Write raw interleaved PCM (the stream's format) into the stream's input ring.",
    tags=["live"],
    raw_body={"application/octet-stream": "Interleaved little-endian PCM, whole frames."},
    responses={
        200: StreamInput,
        413: problem_resp("More than the ring's capacity or the frame size limit."),
        429: problem_resp("The input ring is full (overflow policy reject): retry later."),
    },
)
async def stream_input(request: Request) -> Response:
    stream = _stream(request)
    svc = services(request)
    frame_bytes = stream.channels * BYTES_PER_SAMPLE[stream.format]
    limit = min(svc.settings.max_frame_bytes, stream.capacity * frame_bytes)
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


@api.get(
    "/api/streams/{id}/output",
    summary="Read processed audio from a cursor: raw PCM, with the next cursor in X-Next-Cursor.",
    tags=["live"],
    query=OutputQuery,
    responses={
        200: Resp(
            media_type="application/octet-stream",
            binary=True,
            headers={
                "X-Next-Cursor": "Pass as cursor to read on.",
                "X-Lost-Frames": "Frames skipped because the cursor fell out of the ring.",
                "X-Frames": "Frames in this body.",
            },
        )
    },
)
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


@api.patch(
    "/api/streams/{id}/steps/{index:int}",
    summary="Change a step's parameters live (only the fields given); applied between blocks.",
    tags=["live"],
    body=dict[str, Any],
    responses={200: StepUpdate},
)
async def patch_step(request: Request) -> Response:
    stream = _stream(request)
    index = request.path_params["index"]
    params = decode_json_body(await request.body(), dict[str, Any])
    try:
        full = await stream.live.set_params(index, params, path="params")
    except FieldError as error:
        if error.path == "step":
            raise not_found(error.message) from None
        raise field_problem(error) from None
    except EffectFault as fault:
        stream.fail(fault)  # the effect's state is unknown now: the stream cannot go on
        raise
    return JSONResponse(StepUpdate(step=index, params=full))


# -- shared streams over WebSocket ---------------------------------------------------


@api.websocket(
    "/ws/streams/{id}/input",
    summary="Produce into a stream: binary frames of interleaved PCM in the stream's format.",
    description="A block that does not fit the input ring under the `reject` policy is answered by a "
    "`rejected` message (the connection stays open); text messages are refused (close 1003).",
    tags=["live"],
    client_messages=[AuthMessage],
    server_messages=[p.Rejected, p.Error],
)
async def ws_stream_input(ws: WebSocket) -> None:
    async with session(ws):
        stream = _ws_stream(ws)
        max_bytes = services(ws).settings.max_frame_bytes
        while True:
            data = await receive(ws)
            if not isinstance(data, bytes):
                raise ProtocolError(
                    "expected_audio", "send binary PCM frames in the stream's format", p.CLOSE_UNSUPPORTED
                )
            if stream.closed:
                raise stream_closed(stream)
            block = audio_of(data, stream.channels, stream.format, max_bytes)
            try:
                stream.write(block)
            except RingOverflow as error:
                await send(ws, p.Rejected(frames=block.shape[1], free=error.free))


@api.websocket(
    "/ws/streams/{id}/output",
    summary="Consume a stream: every processed frame from now on, as binary frames.",
    description="A consumer that falls behind by more than the ring's capacity gets an `overrun` "
    "message with the frames it lost, and goes on from the oldest frame kept. When the stream is "
    "deleted the connection closes with 4404.",
    tags=["live"],
    client_messages=[AuthMessage],
    server_messages=[p.Overrun, p.Error],
)
async def ws_stream_output(ws: WebSocket) -> None:
    async with session(ws):
        stream = _ws_stream(ws)
        reader = stream.consumer()
        # Watch for the client going away while this task waits for audio.
        gone = asyncio.ensure_future(_drain(ws))
        try:
            while not gone.done():
                block, lost = reader.read(65536)
                if lost:
                    await send(ws, p.Overrun(lost=lost))
                if block.shape[1]:
                    stream.touch()
                    await ws.send_bytes(to_interleaved(block, stream.format))
                    continue
                if stream.closed:
                    raise stream_closed(stream)
                waiter = asyncio.ensure_future(stream.output_ready.wait())
                await asyncio.wait({waiter, gone}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
        finally:
            gone.cancel()
            stream.release(reader)


async def _drain(ws: WebSocket) -> None:
    """Read and ignore what a consumer sends, until it disconnects."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            await receive(ws)


def _ws_stream(ws: WebSocket) -> Stream:
    stream = services(ws).streams.get(ws.path_params["id"], tenant_of(ws))
    if stream is not None and stream.failure is not None:
        raise effect_failed(stream.failure)
    if stream is None:
        raise ProtocolError("unknown_stream", f"no stream with id {ws.path_params['id']!r}", p.CLOSE_GONE)
    return stream


@api.get(
    "/api/streams/{id}/buffers",
    summary="One stream's ring buffers.",
    tags=["live"],
    responses={200: StreamBuffers},
)
async def stream_buffers(request: Request) -> Response:
    return JSONResponse(_stream(request).buffers())
