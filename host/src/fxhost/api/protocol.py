"""The WebSocket protocol: JSON text messages tagged by ``type`` (msgspec tagged
unions), binary frames of interleaved little-endian PCM, and the close codes that say
why a connection ended."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from fxhost_sdk import FieldError
from fxhost_sdk.host import field_error

from fxhost.audio.pcm import LiveChannels, LiveSampleRate, PcmFormat
from fxhost.catalog.chains import ChainStep

# Close codes (RFC 6455 section 7.4.1, and the 4000-4999 range for ours).
CLOSE_NORMAL = 1000
CLOSE_UNSUPPORTED = 1003  # text where audio is expected, or audio before "start"
CLOSE_INVALID_DATA = 1007  # not a whole number of frames, NaN/Inf, JSON that does not parse
CLOSE_POLICY = 1008  # a wrong first message, an invalid start (unknown chain, bad field)
CLOSE_TOO_BIG = 1009  # a frame larger than max_frame_bytes
CLOSE_INTERNAL = 1011  # an effect failed
CLOSE_TRY_LATER = 1013  # too many connections
CLOSE_GONE = 4404  # the stream does not exist or was deleted
CLOSE_LOST = 4410  # the stream's owner process died: the stream is lost


class Start(msgspec.Struct, tag="start", kw_only=True, forbid_unknown_fields=True):
    """The first message: which chain (by name, or its steps) and the audio format."""

    chain: str | None = None
    steps: list[ChainStep] | None = None
    sample_rate: LiveSampleRate | None = None
    channels: LiveChannels = 2
    format: PcmFormat = "f32le"
    #: The block size the client intends to send, in frames (informational; any size works).
    block: Annotated[int, msgspec.Meta(ge=1, le=65536)] | None = None
    #: Every binary frame, both ways, starts with an 8-byte little-endian unsigned tag:
    #: the client's (its block's first frame index, say) echoed on the processed block.
    indexed: bool = False


class Set(msgspec.Struct, tag="set", kw_only=True, forbid_unknown_fields=True):
    """Change parameters of step ``step`` between blocks (only the fields given)."""

    step: Annotated[int, msgspec.Meta(ge=0)]
    params: dict[str, Any]


class Stats(msgspec.Struct, tag="stats", forbid_unknown_fields=True):
    """Ask for the session's counters."""


class Flush(msgspec.Struct, tag="flush", forbid_unknown_fields=True):
    """Ask for the tail: sent as binary frames, then a ``flushed`` message."""


ClientMessage = Start | Set | Stats | Flush


class ExpectedLatency(msgspec.Struct, kw_only=True):
    """The end-to-end latency a client should expect from a session, before the network:
    a block is processed once all of it has arrived (``block_frames``), the server holds
    nothing beyond it (``buffer_frames``: each block is answered as it is processed), and
    the chain's output lags its input by ``chain_frames``."""

    block_frames: int
    buffer_frames: int
    chain_frames: int
    total_frames: int
    total_ms: float


class Ready(msgspec.Struct, tag="ready", kw_only=True):
    #: The chain's latency in frames (and in ms at ``sample_rate``).
    latency: int
    latency_ms: float
    expected_latency: ExpectedLatency
    sample_rate: int
    channels: int
    format: PcmFormat
    block: int
    tail_frames: int
    steps: list[dict[str, Any]]
    #: Whether binary frames carry the 8-byte tag (``start.indexed``).
    indexed: bool = False


class Updated(msgspec.Struct, tag="updated", kw_only=True):
    step: int
    params: dict[str, Any]


class StatsReply(msgspec.Struct, tag="stats", kw_only=True, omit_defaults=True):
    """One connection's counters. ``frame``, ``late_blocks``, ``underruns`` and
    ``queue_frames`` are defined in the README ("Frame indices, resume and stats")."""

    #: Binary blocks received (a session, a producer) or sent (a consumer).
    blocks: int
    frames_in: int
    frames_out: int
    #: The frame index of the next frame: the next block's first (a session: frames
    #: received; a producer: the input ring's write position; a consumer: its cursor).
    frame: int
    #: Blocks answered after the audio clock passed their last frame (a stream's
    #: sockets: the stream's processing chunks, shared by its connections; absent for a
    #: consumer served from a mirror, whose process does not run the stream).
    late_blocks: int | None = None
    #: Times the connection's audio clock ran dry waiting for the other side.
    underruns: int
    #: Frames waiting: received and not processed yet (a session: in the socket; a
    #: producer: the stream's input ring), or, for a consumer, output not yet sent to it.
    queue_frames: int | None = None
    process_seconds: float | None = None
    latency: int | None = None
    #: A consumer's overruns and the frames they skipped.
    overruns: int | None = None
    lost: int | None = None
    #: A producer's blocks and frames refused (policy ``reject``).
    rejected_blocks: int | None = None
    rejected_frames: int | None = None


class Flushed(msgspec.Struct, tag="flushed", kw_only=True):
    frames: int


class Overrun(msgspec.Struct, tag="overrun", kw_only=True):
    """A consumer fell behind by more than the ring's capacity (or asked for frames no
    longer kept) and skipped ``lost`` frames; ``frame`` is the index of the next frame."""

    lost: int
    frame: int


class Position(msgspec.Struct, tag="position", kw_only=True):
    """A consumer that named ``from``: the frame index of the next binary frame."""

    frame: int


class Written(msgspec.Struct, tag="written", kw_only=True):
    """A producer with ``ack``: its block went into the input ring at ``frame``."""

    frame: int
    frames: int


class Rejected(msgspec.Struct, tag="rejected", kw_only=True):
    """A producer's block did not fit in the stream's input ring (policy ``reject``)."""

    frames: int
    free: int


class Error(msgspec.Struct, tag="error", kw_only=True, omit_defaults=True):
    code: str
    message: str
    path: str | None = None


ServerMessage = Ready | Updated | StatsReply | Flushed | Overrun | Position | Written | Rejected | Error

_decoder = msgspec.json.Decoder(ClientMessage)
#: What a stream's sockets accept as text.
StreamMessage = Stats
_stream_decoder = msgspec.json.Decoder(StreamMessage)
_encoder = msgspec.json.Encoder()


def decode_message(text: str) -> ClientMessage:
    """A client's text message; FieldError names the failing field (``steps[0].effect``)."""
    try:
        return _decoder.decode(text)
    except msgspec.ValidationError as error:
        raise field_error(error) from None
    except msgspec.DecodeError as error:
        raise FieldError("", f"not a JSON message: {error}") from None
    except RecursionError:
        raise FieldError("", "not a JSON message: it is nested too deeply") from None


def decode_stream_message(text: str) -> StreamMessage:
    """A text message on a stream's socket (only ``stats``); FieldError says why not."""
    try:
        return _stream_decoder.decode(text)
    except msgspec.ValidationError as error:
        raise field_error(error) from None
    except (msgspec.DecodeError, RecursionError):
        raise FieldError("", 'not a JSON message: a stream socket takes {"type": "stats"}') from None


def encode_message(message: ServerMessage) -> str:
    return _encoder.encode(message).decode()
