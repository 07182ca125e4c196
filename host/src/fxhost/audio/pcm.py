"""Interleaved little-endian PCM, the binary frames of live audio (WebSocket frames and
stream REST bodies), and the limits of a live session's audio.

:class:`Pcm` (a session's: checked once), :func:`to_interleaved` and
:func:`from_interleaved` convert between ``(channels, frames)`` float32 and interleaved
PCM in one of :data:`FORMATS`. This is the one place that vocabulary (``f32le``,
``s16le``) is declared.
"""

from __future__ import annotations

import math
import operator
from typing import Annotated, Literal, get_args

import msgspec
import numpy as np

#: Interleaved little-endian PCM: 32-bit float, or 16-bit signed integer.
PcmFormat = Literal["f32le", "s16le"]
FORMATS: tuple[str, ...] = get_args(PcmFormat)
#: Bytes of one sample, by format.
SAMPLE_BYTES = {"f32le": 4, "s16le": 2}

#: A live session's sample rate and channel count, as request fields.
LiveSampleRate = Annotated[int, msgspec.Meta(ge=8000, le=384000)]
LiveChannels = Annotated[int, msgspec.Meta(ge=1, le=32)]

_F32LE = np.dtype("<f4")
_S16LE = np.dtype("<i2")
_S16_SCALE = np.float32(32768.0)
_S16_INV = np.float32(1.0 / 32768.0)


def frame_bytes(channels: int, fmt: PcmFormat) -> int:
    """Bytes of one frame of ``channels`` samples in ``fmt``."""
    return SAMPLE_BYTES[fmt] * channels


class Pcm:
    """Interleaved little-endian PCM of ``channels`` channels in ``fmt``, checked once: each
    block's conversion then does only its own checks (a live session converts every
    block). ``ValueError`` for an unknown format or a channel count under 1."""

    __slots__ = ("channels", "format", "frame_bytes")

    def __init__(self, channels: int, fmt: PcmFormat):
        width = SAMPLE_BYTES.get(fmt)
        if width is None:
            raise ValueError(f"unknown sample format {fmt!r}: expected one of {', '.join(FORMATS)}")
        channels = operator.index(channels)
        if channels < 1:
            raise ValueError(f"channels must be >= 1, not {channels}")
        self.channels = channels
        self.format = fmt
        self.frame_bytes = width * channels

    def decode(self, data: bytes | bytearray | memoryview) -> np.ndarray:
        """PCM -> float32 ``(channels, frames)`` (a new, writable array). ``"s16le"`` is
        divided by 32768. ``ValueError`` if the byte count is not a whole number of frames,
        or if ``"f32le"`` audio holds NaN or infinities."""
        if isinstance(data, memoryview):
            data = data.tobytes()
        size = len(data)
        if size % self.frame_bytes:
            raise ValueError(
                f"{size} bytes is not a whole number of frames: a frame of {self.channels} channel(s) "
                f"in {self.format} has {self.frame_bytes} bytes"
            )
        if self.format == "f32le":
            # numpy's arguments by position: a keyword costs a thousand instructions a call.
            flat = np.frombuffer(data, _F32LE)
            # A sum of squares is NaN/Inf if any sample is: one reduction, the check that
            # effects' outputs get too (engine.compiled); only absurdly loud finite audio
            # overflows it, and gets the exact test. (vdot, not dot: dot warns on overflow.)
            if not math.isfinite(np.vdot(flat, flat)) and not np.isfinite(flat).all():
                raise ValueError("the audio contains NaN or infinite samples")
            return flat.reshape(-1, self.channels).T.copy()
        samples = np.frombuffer(data, _S16LE).reshape(-1, self.channels)
        out = np.empty((self.channels, samples.shape[0]), dtype=np.float32)
        np.multiply(samples.T, _S16_INV, out=out)
        return out

    def encode(self, block: np.ndarray) -> bytes:
        """A float32 ``(channels, frames)`` array -> PCM; see :func:`to_interleaved`, which
        also takes other arrays and checks them."""
        if self.format == "f32le":
            # Fortran order of a (channels, frames) array is frame-major: interleaved. A live
            # chain's output is float32 already (native, little-endian here): no astype call.
            if block.dtype != _F32LE:
                block = block.astype(_F32LE)
            return block.tobytes("F")
        # Rounding first, then clamping to [-32768, 32767], is clipping to [-1, 1 - 1/32768]
        # first; np.maximum/np.minimum are cheaper than np.clip on small blocks.
        tmp = np.multiply(block, _S16_SCALE)
        np.rint(tmp, out=tmp)
        np.maximum(tmp, -32768.0, out=tmp)
        np.minimum(tmp, 32767.0, out=tmp)
        return tmp.astype(_S16LE).tobytes("F")


def to_interleaved(block: np.ndarray, fmt: PcmFormat) -> bytes:
    """``(channels, frames)`` float audio -> interleaved little-endian PCM. ``"s16le"``
    scales by 32768, rounding to the nearest step, after clipping to
    ``[-1, 1 - 1/32768]``. Samples should be finite (NaN has no int16 value)."""
    if type(block) is not np.ndarray:
        block = np.asarray(block)
    if block.ndim != 2:
        raise ValueError(f"expected a block shaped (channels, frames), got {block.shape}")
    return Pcm(max(1, block.shape[0]), fmt).encode(block)


def from_interleaved(data: bytes | bytearray | memoryview, channels: int, fmt: PcmFormat) -> np.ndarray:
    """Interleaved little-endian PCM -> float32 ``(channels, frames)`` (a new, writable
    array); see :meth:`Pcm.decode`."""
    return Pcm(channels, fmt).decode(data)
