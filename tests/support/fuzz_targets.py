"""Fuzz targets: the upload/decode path and the WebSocket message and frame parsers, with
the properties each must keep whatever it is fed. Shared by tests/fuzz (hypothesis, a few
hundred examples in CI) and bench/fuzz.py (atheris or hypothesis, for as long as asked).

A target returns normally when the input was handled as the contract says, and raises
anything else (``AssertionError`` for a broken property, or the unexpected exception
itself) when it found a bug. A target that refused everything would keep every property,
so each has a baseline, the same path with a refusal counted as a failure, for inputs
that are valid (:func:`decode_upload`, :func:`decode_ws_text`, :func:`decode_ws_frame`).

- :func:`check_decode`: bytes stored as an upload are opened, probed and read exactly as
  the server does (:func:`fxhost.audio.files.open_input` on the stored file): finite float32
  ``(channels, frames)`` audio as ``info`` declares, or :class:`AudioFormatError`.
- :func:`check_ws_text`: a text message of /ws/process decodes to a client message that
  encodes back to itself, or raises :class:`FieldError` (the server's close 1008/error).
- :func:`check_ws_frame`: a binary frame of /ws/process or a stream's input is whole
  frames of finite float32 audio, or a :class:`ProtocolError` with its close code.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from functools import cache
from pathlib import Path

import msgspec
import numpy as np
import soundfile as sf
from fxhost.api import protocol
from fxhost.api.sessions import ProtocolError, audio_of
from fxhost.audio.files import AudioInfo, open_input
from fxhost.audio.formats import AudioFormatError
from fxhost.audio.pcm import SAMPLE_BYTES, Pcm
from fxhost_sdk import FieldError
from hypothesis import strategies as st

#: The seed files' audio: a decaying chirp, stereo, SEED_FRAMES frames at SEED_RATE.
SEED_RATE = 22050
SEED_FRAMES = 1200
#: Formats of the seed files, as soundfile writes them: (format, subtype).
SEED_FORMATS = {
    "wav16": ("WAV", "PCM_16"),
    "wavfloat": ("WAV", "FLOAT"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "aiff": ("AIFF", "PCM_24"),
}
#: Close codes a bad binary frame may end a session with.
FRAME_CLOSE_CODES = {protocol.CLOSE_INVALID_DATA, protocol.CLOSE_TOO_BIG}
#: Frame size limit the frame target is run with (the server's is a setting).
MAX_FRAME_BYTES = 1 << 16


def seed_audio() -> np.ndarray:
    """What every seed file holds, float32 ``(channels, frames)``."""
    t = np.arange(SEED_FRAMES) / SEED_RATE
    mono = 0.5 * np.sin(2 * np.pi * (200 + 2000 * t) * t) * np.exp(-3 * t)
    return np.stack([mono, -0.5 * mono]).astype(np.float32)


@cache
def seed_files() -> dict[str, bytes]:
    """Small valid files of :func:`seed_audio`, one per format, to mutate."""
    seeds = {}
    for name, (fmt, subtype) in SEED_FORMATS.items():
        buffer = io.BytesIO()
        sf.write(buffer, seed_audio().T, SEED_RATE, format=fmt, subtype=subtype)
        seeds[name] = buffer.getvalue()
    return seeds


def seed_messages() -> list[str]:
    """Valid client messages of /ws/process, to mutate."""
    return [
        '{"type": "start", "chain": "hall", "sample_rate": 48000, "channels": 2, "format": "f32le"}',
        '{"type": "start", "steps": [{"effect": "gain", "params": {"gain_db": -6}}], "format": "s16le"}',
        '{"type": "start", "chain": "hall", "indexed": true}',
        '{"type": "set", "step": 0, "params": {"room_size": 0.5}}',
        '{"type": "stats"}',
        '{"type": "flush"}',
    ]


class DecodeTarget:
    """:func:`check_decode` with one scratch folder for all its inputs."""

    def __init__(self, folder: Path | None = None):
        self._tmp = None if folder else tempfile.TemporaryDirectory(prefix="fxhost-fuzz-")
        self.path = (folder or Path(self._tmp.name)) / "upload"

    def __call__(self, data: bytes) -> None:
        check_decode(data, self.path)

    def accept(self, data: bytes) -> tuple[AudioInfo, np.ndarray]:
        """:func:`decode_upload`: the audio, or AudioFormatError if refused."""
        return decode_upload(data, self.path)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def decode_upload(data: bytes, path: Path) -> tuple[AudioInfo, np.ndarray]:
    """Store ``data`` at ``path`` as an upload is stored, then open, probe and read it:
    ``(info, audio)``, the audio exactly what ``info`` declares. Raises
    :class:`AudioFormatError` when the upload is refused."""
    path.write_bytes(data)
    try:
        with open_input(path, display_name="upload") as reader:
            info = reader.info
            assert info.channels >= 1 and info.sample_rate >= 1 and info.frames >= 0, info
            audio = reader.read()
            # What the cache and the engine hold: exactly what info declared.
            assert audio.dtype == np.float32 and audio.shape == (info.channels, info.frames), (
                audio.dtype,
                audio.shape,
                info,
            )
            assert np.isfinite(audio).all(), f"non-finite samples decoded from {info}"
            return info, audio
    finally:
        os.unlink(path)


def check_decode(data: bytes, path: Path) -> None:
    """:func:`decode_upload`, where a refusal is an answer too, if it is a clean one."""
    try:
        decode_upload(data, path)
    except AudioFormatError as error:
        message = str(error)
        assert message.startswith("upload"), message  # named as the client named it
        assert str(path.parent) not in message and "\n" not in message, message  # no server path


def decode_ws_text(text: str) -> protocol.ClientMessage:
    """A text message as /ws/process reads it (the first one and those after): a client
    message that encodes back to itself. Raises :class:`FieldError` when refused."""
    message = protocol.decode_message(text)
    assert isinstance(message, protocol.Start | protocol.Set | protocol.Stats | protocol.Flush), message
    again = protocol.decode_message(msgspec.json.encode(message).decode())
    assert again == message, (message, again)
    return message


def check_ws_text(text: str) -> None:
    """:func:`decode_ws_text`, and the same text on a stream's socket (only ``stats`` is
    a message there), where a refusal naming its field is an answer too."""
    try:
        decode_ws_text(text)
    except FieldError as error:
        assert isinstance(error.path, str), error
    try:
        assert isinstance(protocol.decode_stream_message(text), protocol.Stats)
    except FieldError as error:
        assert isinstance(error.path, str), error


def decode_ws_frame(data: bytes, channels: int, fmt: str, max_bytes: int = MAX_FRAME_BYTES) -> np.ndarray:
    """A binary frame as /ws/process and /ws/streams/{id}/input read it: whole frames of
    finite float32 audio. Raises :class:`ProtocolError` when refused."""
    block = audio_of(data, Pcm(channels, fmt), max_bytes)
    width = SAMPLE_BYTES[fmt]
    assert len(data) <= max_bytes
    assert block.dtype == np.float32 and block.shape == (channels, len(data) // (width * channels))
    assert block.flags.writeable and np.isfinite(block).all()
    if fmt == "s16le":
        assert np.abs(block).max(initial=0) <= 1.0
    return block


def check_ws_frame(data: bytes, channels: int, fmt: str, max_bytes: int = MAX_FRAME_BYTES) -> None:
    """:func:`decode_ws_frame`, where a refusal closing with a fitting code is an answer too."""
    try:
        decode_ws_frame(data, channels, fmt, max_bytes)
    except ProtocolError as error:
        assert error.close_code in FRAME_CLOSE_CODES, error.close_code


# ------------------------------------------------------------------------------ inputs


@st.composite
def mutations_of(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed truncated, bit-flipped, overwritten, with bytes inserted or spliced with
    another seed: a few edits each, so that most of the file still parses."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        edit = draw(st.sampled_from(["truncate", "flip", "overwrite", "insert", "splice"]))
        at = draw(st.integers(0, len(data)))
        if edit == "truncate":
            del data[at:]
        elif edit == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif edit == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[at : at + len(chunk)] = chunk
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif edit == "splice":
            other = draw(st.sampled_from(seeds))
            data[at:] = other[draw(st.integers(0, len(other))) :]
    return bytes(data)


def upload_bodies() -> st.SearchStrategy[bytes]:
    """What a client may upload: anything, or a real file of each format, damaged."""
    seeds = list(seed_files().values())
    return st.one_of(st.binary(max_size=2048), mutations_of(seeds))


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=8,
)
_fields = ["chain", "steps", "sample_rate", "channels", "format", "block", "indexed", "step", "params"]


def ws_texts() -> st.SearchStrategy[str]:
    """Text messages: any text, valid messages damaged, and JSON objects of the protocol's
    message types and field names with values of any JSON type."""
    objects = st.fixed_dictionaries(
        {"type": st.sampled_from(["start", "set", "stats", "flush", "ready", ""])},
        optional={name: _json for name in _fields},
    ).map(json.dumps)
    damaged = mutations_of([m.encode() for m in seed_messages()]).map(
        lambda b: b.decode("utf-8", "surrogatepass") if _utf8(b) else b.decode("latin-1")
    )
    return st.one_of(st.text(), objects, damaged)


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def ws_frames() -> st.SearchStrategy[tuple[bytes, int, str]]:
    """(frame, channels, format): any bytes, and samples of any float32 bit pattern (NaN,
    infinities, denormals) with a partial frame now and then."""
    floats = st.lists(st.floats(width=32), max_size=256).map(lambda v: np.asarray(v, "<f4").tobytes())
    tails = st.binary(max_size=3)
    samples = st.tuples(floats, tails).map(lambda t: t[0] + t[1])
    data = st.one_of(st.binary(max_size=MAX_FRAME_BYTES + 8), samples)
    return st.tuples(data, st.integers(1, 32), st.sampled_from(sorted(SAMPLE_BYTES)))
