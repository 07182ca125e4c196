"""Reading and writing audio files with libsndfile (through soundfile).

Input formats are recognised by content, never by file name. The output format is
the one the output file's extension names.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

# Extensions soundfile does not map by itself, with the subtype they imply.
_EXTRA_EXTENSIONS = {
    ".opus": ("OGG", "OPUS"),
    ".oga": ("OGG", None),
    ".aif": ("AIFF", None),
    ".aifc": ("AIFF", None),
    ".wave": ("WAV", None),
}
_FLOAT_SUBTYPES = {"FLOAT", "DOUBLE"}


class AudioFormatError(ValueError):
    """An audio file that cannot be read, or an output that cannot be written as asked."""


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def open_input(path: str | os.PathLike) -> sf.SoundFile:
    """Open an audio file for reading, whatever its name says."""
    try:
        return sf.SoundFile(path)
    except sf.LibsndfileError as error:
        raise AudioFormatError(
            f"{Path(path).name}: not audio that libsndfile can read ({error.error_string})"
        ) from None


def info_of(handle: sf.SoundFile) -> AudioInfo:
    return AudioInfo(handle.samplerate, handle.channels, handle.frames, handle.format, handle.subtype)


def read_blocks(handle: sf.SoundFile, block_frames: int) -> Iterator[np.ndarray]:
    """Yield float32 blocks shaped ``(channels, frames)`` from an open input."""
    for block in handle.blocks(blocksize=block_frames, dtype="float32", always_2d=True):
        yield np.ascontiguousarray(block.T)


def output_format(path: str | os.PathLike, input_subtype: str | None = None) -> tuple[str, str]:
    """``(format, subtype)`` for writing ``path``: the format from its extension, the
    input's subtype where the format can hold it (so float input stays float)."""
    ext = Path(path).suffix.lower()
    fmt, subtype = _EXTRA_EXTENSIONS.get(ext, (ext[1:].upper(), None))
    if not ext or fmt not in sf.available_formats():
        raise AudioFormatError(
            f"{Path(path).name}: unknown output format {ext or '(no extension)'!r}; "
            "use an extension such as .wav, .flac, .ogg, .opus, .mp3, .aiff, .w64"
        )
    if subtype is None:
        if input_subtype and sf.check_format(fmt, input_subtype):
            subtype = input_subtype
        elif input_subtype in _FLOAT_SUBTYPES and sf.check_format(fmt, "PCM_24"):
            subtype = "PCM_24"  # the closest a PCM-only format gets to float
        else:
            subtype = sf.default_subtype(fmt)
    return fmt, subtype


def open_output(
    path: str | os.PathLike, sample_rate: int, channels: int, fmt: str, subtype: str
) -> sf.SoundFile:
    try:
        return sf.SoundFile(path, "w", samplerate=sample_rate, channels=channels, format=fmt, subtype=subtype)
    except (sf.LibsndfileError, ValueError, TypeError) as error:
        raise AudioFormatError(
            f"{Path(path).name}: cannot write {fmt}/{subtype} "
            f"at {sample_rate} Hz with {channels} channel(s): {error}"
        ) from None


def write_block(handle: sf.SoundFile, block: np.ndarray) -> None:
    """Write a ``(channels, frames)`` float32 block; integer formats are clipped to
    full scale first, since libsndfile would otherwise wrap around."""
    frames = block.T
    if handle.subtype not in _FLOAT_SUBTYPES:
        frames = np.clip(frames, -1.0, 1.0)
    handle.write(frames)
