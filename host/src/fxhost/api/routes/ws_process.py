"""``/ws/process``: one client's live audio through a chain. The protocol is in
:mod:`fxhost.api.protocol`; the session plumbing in :mod:`fxhost.api.sessions`."""

from __future__ import annotations

import logging
from time import perf_counter

from fxhost_sdk import FieldError
from starlette.websockets import WebSocket, WebSocketDisconnect

from fxhost.api import protocol as p
from fxhost.api.auth import AuthMessage, tenant_of
from fxhost.api.openapi.declare import WebSocketOperation
from fxhost.api.sessions import (
    START_TIMEOUT,
    ProtocolError,
    audio_of,
    block_io,
    connection_lost,
    effect_failed,
    receive,
    send,
    session,
    unread_bytes,
)
from fxhost.api.state import services
from fxhost.audio.pcm import Pcm, frame_bytes, to_interleaved
from fxhost.catalog.chains import ChainSpec
from fxhost.engine.compiled import EffectFault
from fxhost.engine.live import LiveChain
from fxhost.engine.timing import AudioClock

log = logging.getLogger(__name__)

#: Frames of tail sent per binary message on flush.
TAIL_BLOCK = 4096
#: Bytes of the tag that starts every binary frame of an ``indexed`` session.
TAG_BYTES = 8


@session
async def ws_process(ws: WebSocket) -> None:
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
    clock, pcm, indexed = AudioClock(rate), Pcm(start.channels, start.format), start.indexed
    await send(ws, _ready(live, start, rate, svc.settings.block_size))
    receive, send_asgi = block_io(ws)
    # The per-block loop, with the layers a block would pass written out (receive(),
    # _process(), LiveChain.process(), a send_bytes()): each call is a cost of its own here.
    while True:
        message = await receive()
        data = message.get("bytes")
        if data is not None:
            arrived = perf_counter()
            tag = b""
            if indexed:
                tag, data = _tagged(data)
            block = audio_of(data, pcm, max_bytes)
            clock.arrive(block.shape[1], arrived)
            try:
                out = live.process_now(block)
                if out is None:  # a large block, or a parameter change in progress
                    out = await live.process(block)
            except EffectFault as fault:
                log.warning("/ws/process: %s", fault)
                raise effect_failed(fault) from None
            reply = tag + pcm.encode(out) if tag else pcm.encode(out)
            try:
                await send_asgi({"type": "websocket.send", "bytes": reply})
            except OSError:
                raise connection_lost(ws) from None
            clock.done(perf_counter())
        elif message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        else:
            await _control(ws, live, clock, message.get("text") or "", start)


def _tagged(data: bytes) -> tuple[bytes, memoryview]:
    """A binary frame of an ``indexed`` session: its tag, and the PCM after it."""
    if len(data) < TAG_BYTES:
        raise ProtocolError(
            "invalid_audio",
            f"a frame of {len(data)} bytes has no tag: an indexed session's frames start with "
            f"{TAG_BYTES} bytes (a little-endian unsigned index), then PCM",
            p.CLOSE_INVALID_DATA,
        )
    return data[:TAG_BYTES], memoryview(data)[TAG_BYTES:]


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
    spec: ChainSpec = start.chain if start.chain is not None else start.steps or []
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
    block = start.block or default_block
    total = block + live.latency
    return p.Ready(
        latency=live.latency,
        latency_ms=round(live.latency * 1000 / rate, 3),
        expected_latency=p.ExpectedLatency(
            block_frames=block,
            buffer_frames=0,
            chain_frames=live.latency,
            total_frames=total,
            total_ms=round(total * 1000 / rate, 3),
        ),
        sample_rate=rate,
        channels=start.channels,
        format=start.format,
        block=block,
        tail_frames=live.tail_frames(),
        steps=live.step_params(),
        indexed=start.indexed,
    )


async def _control(ws: WebSocket, live: LiveChain, clock: AudioClock, text: str, start: p.Start) -> None:
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
        await send(ws, _stats(ws, live, clock, start))
    elif isinstance(message, p.Flush):
        frames = 0
        for block in await live.tail(TAIL_BLOCK):
            pcm = to_interleaved(block, start.format)
            if start.indexed:  # the tail goes on from the frames received
                pcm = (clock.frames + frames).to_bytes(TAG_BYTES, "little") + pcm
            frames += block.shape[1]
            await ws.send_bytes(pcm)
        await send(ws, p.Flushed(frames=frames))


def _stats(ws: WebSocket, live: LiveChain, clock: AudioClock, start: p.Start) -> p.StatsReply:
    unread = unread_bytes(ws)
    return p.StatsReply(
        frames_in=live.frames_in,
        frames_out=live.frames_out,
        blocks=live.blocks,
        frame=clock.frames,
        late_blocks=clock.late,
        underruns=clock.underruns,
        queue_frames=None if unread is None else unread // frame_bytes(start.channels, start.format),
        process_seconds=round(live.process_seconds, 6),
        latency=live.latency,
    )


ROUTES = [
    WebSocketOperation(
        "/ws/process",
        ws_process,
        summary="Process live audio: binary PCM frames in, processed frames out, in order.",
        description="Send a `start` message first (a chain by name or its steps, sample_rate, channels, "
        "format f32le|s16le); the server answers `ready` with the chain's latency in frames and ms and "
        "`expected_latency`, the end-to-end latency to expect (block, buffering and chain). Then send "
        "binary frames of interleaved little-endian PCM of any whole number of frames: each is "
        "answered by one processed frame of the same size, in order, so the n-th binary frame back is "
        "the n-th sent, and a block's frame index is the number of frames sent before it. With "
        '`"indexed": true` in `start` every binary frame, both ways, starts with an 8-byte '
        "little-endian unsigned tag: the client's, echoed on its processed block (tail blocks carry "
        "their frame index). `set` changes a step's parameters between blocks, `stats` reports the "
        "connection's counters (blocks, frames, frame = frames received, late_blocks, underruns, "
        "queue_frames, process_seconds, latency), `flush` sends the tail as binary frames and then "
        "`flushed`. Protocol errors get an `error` message and a close code: 1003 audio "
        "before start or text where audio is expected, 1007 a partial frame or NaN/Inf, 1008 a "
        "wrong or invalid start, 1009 a frame over the size limit, 1011 an effect failed, 1013 "
        "too many connections.",
        tags=["live"],
        client_messages=[AuthMessage, p.ClientMessage],
        server_messages=[p.ServerMessage],
    ),
]
