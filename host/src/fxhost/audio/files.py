"""Reading and writing audio files: the host's one place for them.

**Reading.** :func:`open_input` recognises a file by its content, never by its name,
and returns an :class:`AudioReader` whose ``info`` describes it and whose
``blocks()`` / ``read()`` give float32 arrays shaped ``(channels, frames)``.
libsndfile (through soundfile) is tried first: WAV, FLAC, Ogg Vorbis and Opus, MP3,
AIFF, W64, RF64, CAF, AU... Only what libsndfile refuses goes to FFmpeg (through
PyAV): AAC or ALAC in M4A/MP4, Matroska/WebM, raw ADTS AAC and the like.

``info.frames`` is exact, always: it is the number of frames ``blocks()`` yields.
Where the header's count is exact (PCM containers, FLAC, Ogg) it is used as is.
Where it is only an estimate it is counted by decoding the whole file once when it
is opened: MP3 (without a Xing/LAME header its length is guessed from the bit rate)
and everything read through PyAV (container durations are rounded, estimated or
absent). For MP4/M4A the count is then cut to the stream's duration from the edit
list, which drops the encoder's padding at the end (the priming at the start is
dropped by FFmpeg itself), so an AAC file is as long as the audio it was made from,
to the millisecond. A file that decodes to fewer frames than that (a truncated FLAC),
or to NaN or infinite samples (a float file may hold them),
raises :class:`AudioFormatError` from ``blocks()``.

**Writing.** :func:`encode` writes a whole array to bytes, :func:`open_output` gives an
:class:`AudioWriter` fed block by block, in one of :data:`~fxhost.audio.formats.OUTPUT_FORMATS`.
Integer subtypes are clipped to full scale, since libsndfile would wrap around; where
it gives the same bytes, the integer samples are computed here (see :func:`_pcm`).
Closing an output does not fsync it: a caller that keeps the file makes it durable.

Every error about the audio itself is an :class:`AudioFormatError` with a one-line
message that names the file by its base name (or the name the caller gave), never
by a path on this machine. A missing or unreadable file is an ``OSError`` as usual.

Reading and writing share one module because both speak libsndfile's vocabulary
(formats, subtypes, its errors) and writing is checked against what reading reports.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import soundfile as sf
from fxhost_sdk import LoadedAudio

from fxhost.audio.formats import FLOAT_SUBTYPES, AudioFormatError, check_output, file_label

if TYPE_CHECKING:
    import av

DEFAULT_BLOCK_FRAMES = 4096

_READ_CHUNK = 65536
#: libsndfile subtypes decoded from integers: their samples are always finite.
_INTEGER_SUBTYPES = frozenset({"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32", "ULAW", "ALAW"})
#: libsndfile's frame count for "unknown".
_SF_COUNT_MAX = 2**63 - 1


# ---------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    frames: int
    #: Short upper-case container name: "WAV", "FLAC", "OGG", "MP3", "AIFF", "M4A"...
    format: str
    #: libsndfile's subtype ("PCM_16", "FLOAT", "VORBIS"...), or the codec for PyAV ("AAC", "ALAC").
    subtype: str
    #: "libsndfile" or "pyav".
    decoder: str
    duration: float = field(init=False)  # seconds

    def __post_init__(self) -> None:
        object.__setattr__(self, "duration", self.frames / self.sample_rate if self.sample_rate else 0.0)


class AudioReader:
    """An open input. Use as a context manager; ``blocks()`` and ``read()`` start
    from the beginning each time they are called."""

    info: AudioInfo
    name: str
    #: What is wrong with a file that still reads as far as it is whole (a cut WAV), if anything.
    damage: str | None = None

    def blocks(self, block_frames: int = DEFAULT_BLOCK_FRAMES) -> Iterator[np.ndarray]:
        """Yield float32 C-contiguous blocks shaped ``(channels, block_frames)``, the
        last one shorter; ``info.frames`` frames in all."""
        if block_frames < 1:
            raise ValueError(f"block_frames must be at least 1, not {block_frames}")
        chunks = self._chunks()
        if not (self.info.decoder == "libsndfile" and self.info.subtype in _INTEGER_SUBTYPES):
            chunks = _finite(chunks, self.name)
        return _reblock(chunks, block_frames, self.info.frames, self._truncated)

    def read(self) -> np.ndarray:
        """All of it, as one float32 ``(channels, frames)`` array."""
        try:
            out = np.empty((self.info.channels, self.info.frames), np.float32)
        except (MemoryError, ValueError):  # a damaged header can promise any length
            raise AudioFormatError(
                f"{self.name}: its {self.info.format} header declares {self.info.frames} frames, "
                "too many to decode"
            ) from None
        done = 0
        for block in self.blocks(_READ_CHUNK):
            out[:, done : done + block.shape[1]] = block
            done += block.shape[1]
        return out

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> AudioReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _chunks(self) -> Iterator[np.ndarray]:
        """Decoded ``(channels, n)`` float32 arrays of any size (contiguous or not), from
        the start; the same whatever block size is asked for, so that blocks of any size
        hold the very same samples (mpg123's float output depends on the read sizes)."""
        raise NotImplementedError

    def _truncated(self, done: int) -> AudioFormatError:
        return AudioFormatError(
            f"{self.name}: corrupt or truncated {self.info.format} data: "
            f"it ends after {done} of {self.info.frames} frames"
        )


def open_input(source: str | os.PathLike | BinaryIO, *, display_name: str | None = None) -> AudioReader:
    """Open audio for reading, recognised by its content whatever its name says.

    ``source`` is a path or a seekable binary file object (kept open: the caller
    closes it). ``display_name`` is how errors refer to it (default: the file's
    base name; never a path on this machine).
    Raises :class:`AudioFormatError` for anything that is not audio fxhost can read.
    """
    owned = isinstance(source, (str, os.PathLike))
    display = file_label(source, display_name)
    fileobj: BinaryIO = open(source, "rb", buffering=0) if owned else source  # noqa: SIM115 - the reader owns it
    try:
        fileobj.seek(0, io.SEEK_END)
        if fileobj.tell() == 0:
            raise AudioFormatError(f"{display}: not audio: the file is empty")
        reader = _open_sndfile(fileobj, owned, display)
        return reader if isinstance(reader, AudioReader) else _PyAVReader(fileobj, owned, display, reader)
    except BaseException:
        if owned:
            fileobj.close()
        raise


def probe(
    source: str | os.PathLike | BinaryIO, *, display_name: str | None = None, full: bool = False
) -> AudioInfo:
    """What :func:`open_input` would say about ``source``; ``full`` refuses a damaged file
    and decodes all of it too, so that corrupt data or NaN samples are refused now rather
    than later (for a file to keep)."""
    with open_input(source, display_name=display_name) as reader:
        if full and reader.damage:
            raise AudioFormatError(f"{reader.name}: {reader.damage}")
        if full:
            for _ in reader.blocks(_READ_CHUNK):
                pass
        return reader.info


def _open_sndfile(fileobj: BinaryIO, owned: bool, name: str) -> _SndfileReader | str | None:
    """libsndfile's reader; else why libsndfile refused, when it knew the format
    but not this file ("Malformed 'fmt ' chunk"), or None.

    libsndfile gets a file descriptor or a file object, never the name: given a
    name it falls back on the extension when the content says nothing (any bytes
    named ``.au`` read as 8 kHz mu-law, anything named ``.mp3`` goes to mpg123).
    """
    fileobj.seek(0)
    try:
        handle = sf.SoundFile(fileobj.fileno(), closefd=False) if owned else sf.SoundFile(fileobj)
    except sf.LibsndfileError as error:
        # 1 is "format not recognised"; 7 is what a failed mpg123 open says ("file
        # does not exist or is not a regular file"), which says nothing either.
        return None if error.code in (1, 7) else _reason(error)
    if handle.frames == _SF_COUNT_MAX:
        # A FLAC written without knowing its length (piped) says so in its header;
        # libsndfile can then neither count its frames nor seek back: FFmpeg reads it.
        handle.close()
        return None
    try:
        return _SndfileReader(handle, fileobj if owned else None, name)
    except BaseException:
        handle.close()
        raise


def _reason(error: sf.LibsndfileError) -> str:
    reason = " ".join(error.error_string.split()).removeprefix("Error : ").rstrip(".")
    return reason or "unknown libsndfile error"


#: libsndfile's log line for an audio chunk whose header claims more bytes than the file holds.
_CUT_CHUNK = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
#: Sizes written by recorders that stream and never go back to fix the header: not a cut.
_UNKNOWN_SIZES = {0, 0x7FFFFFFF, 0xFFFFFFFF}


class _SndfileReader(AudioReader):
    def __init__(self, handle: sf.SoundFile, owned: BinaryIO | None, name: str):
        self._handle, self._owned, self.name = handle, owned, name
        # libsndfile reads a cut PCM file up to where it ends, and says so only in its log.
        cut = _CUT_CHUNK.search(handle.extra_info)
        if cut and int(cut[1]) > int(cut[2]) and int(cut[1]) not in _UNKNOWN_SIZES:
            self.damage = (
                f"truncated {handle.format} data: the header says {cut[1]} bytes of audio, "
                f"the file holds {cut[2]}"
            )
        frames = handle.frames
        if handle.subtype.startswith("MPEG_"):  # mpg123's count is an estimate without a Xing/LAME tag
            frames = sum(chunk.shape[1] for chunk in self._chunks())
        self.info = AudioInfo(
            handle.samplerate, handle.channels, frames, handle.format, handle.subtype, "libsndfile"
        )

    def _chunks(self) -> Iterator[np.ndarray]:
        handle = self._handle
        try:
            handle.seek(0)
            while True:
                data = handle.read(_READ_CHUNK, dtype="float32", always_2d=True)
                if not len(data):
                    return
                yield data.T  # made contiguous by _reblock, in one copy per block
        except sf.LibsndfileError as error:
            raise AudioFormatError(
                f"{self.name}: corrupt or truncated {handle.format} data ({_reason(error)})"
            ) from None

    def close(self) -> None:
        self._handle.close()
        if self._owned is not None:
            self._owned.close()


class _Unnamed:
    """A file object without a ``name``: FFmpeg's probe scores the name's extension
    too, and some demuxers (raw PCM, mu-law...) match on nothing else."""

    def __init__(self, fileobj: BinaryIO):
        self._file = fileobj

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()


# FFmpeg's demuxer name (first of its aliases) -> our short format name.
_PYAV_FORMATS = {"mov": "M4A", "matroska": "MATROSKA", "asf": "WMA", "aac": "AAC", "wav": "WAV"}


class _PyAVReader(AudioReader):
    def __init__(self, fileobj: BinaryIO, owned: bool, name: str, sndfile_reason: str | None = None):
        # Imported here: PyAV takes 40-120 ms to import, and most files (WAV, FLAC, MP3...)
        # never need it (bench/render_cli.py counts start-up in a render's time).
        import av

        self._file, self._owned, self.name = fileobj, owned, name
        # libsndfile's reason, when it knew the format, says more than FFmpeg's
        not_audio = AudioFormatError(f"{name}: not audio fxhost can read ({sndfile_reason})")
        try:
            fileobj.seek(0)
            container = av.open(_Unnamed(fileobj), metadata_errors="ignore")
        except (av.FFmpegError, ValueError, OSError):
            if sndfile_reason:
                raise not_audio from None
            raise AudioFormatError(f"{name}: not audio fxhost can read (format not recognised)") from None
        with container:
            kind = container.format.name.split(",")[0]
            fmt = _PYAV_FORMATS.get(kind, kind.upper())
            if kind == "mov" and container.streams.video:
                fmt = "MP4"
            stream = container.streams.best("audio")
            if stream is None:
                raise AudioFormatError(f"{name}: not audio: no audio stream in this {fmt} file")
            if stream.codec_context is None:  # FFmpeg has no decoder for the codec the header names
                raise AudioFormatError(f"{name}: not audio fxhost can read (no decoder for its {fmt} codec)")
            codec = stream.codec_context.codec.canonical_name.upper()
            rate = channels = frames = longest = 0
            try:
                for frame in container.decode(stream):
                    shape = (frame.sample_rate, frame.layout.nb_channels)
                    if not frames:
                        rate, channels = shape
                    elif shape != (rate, channels):
                        raise AudioFormatError(
                            f"{name}: its {codec} stream changes sample rate or channel count midway"
                        )
                    frames += frame.samples
                    longest = max(longest, frame.samples)
            except (av.FFmpegError, ValueError) as error:
                if isinstance(error, AudioFormatError):
                    raise
                raise AudioFormatError(f"{name}: corrupt {fmt}/{codec} data after {frames} frames") from None
            if not frames:
                if sndfile_reason:
                    raise not_audio
                raise AudioFormatError(f"{name}: not audio: its {fmt}/{codec} stream decodes to nothing")
            if kind == "mov" and stream.duration:
                # The edit list's duration: without the encoder's padding at the end.
                declared = round(stream.duration * stream.time_base * rate)
                if 0 < frames - declared <= 2 * longest:
                    frames = declared
        self.info = AudioInfo(rate, channels, frames, fmt, codec, "pyav")

    def _chunks(self) -> Iterator[np.ndarray]:
        import av

        done = 0
        try:
            self._file.seek(0)
            with av.open(_Unnamed(self._file), metadata_errors="ignore") as container:
                stream = container.streams.best("audio")
                for frame in container.decode(stream):
                    chunk = _frame_array(frame)
                    done += chunk.shape[1]
                    yield chunk
        except (av.FFmpegError, OSError):
            raise AudioFormatError(
                f"{self.name}: corrupt {self.info.format}/{self.info.subtype} data after {done} frames"
            ) from None

    def close(self) -> None:
        if self._owned:
            self._file.close()


def _finite(chunks: Iterator[np.ndarray], name: str) -> Iterator[np.ndarray]:
    """``chunks`` as they are, refused at the first NaN or infinite sample (float files can
    hold them; no effect or encoder can use them)."""
    done = 0
    with contextlib.closing(chunks):
        for chunk in chunks:
            if not np.isfinite(chunk).all():
                frame = done + int(np.flatnonzero(~np.isfinite(chunk).all(axis=0))[0])
                raise AudioFormatError(f"{name}: NaN or infinite sample at frame {frame}")
            done += chunk.shape[1]
            yield chunk


def _frame_array(frame: av.AudioFrame) -> np.ndarray:
    """A decoded frame as float32 ``(channels, samples)``, whatever its sample format."""
    data = frame.to_ndarray()
    if not frame.format.is_planar:
        data = data.reshape(-1, frame.layout.nb_channels).T
    if data.dtype == np.uint8:
        data = (data.astype(np.float32) - 128) * np.float32(1 / 128)
    elif data.dtype.kind == "i":
        data = data.astype(np.float32) * np.float32(2.0 ** (1 - 8 * data.dtype.itemsize))
    return np.ascontiguousarray(data, dtype=np.float32)


def _reblock(
    chunks: Iterator[np.ndarray], block_frames: int, total: int, truncated: Callable[[int], Exception]
) -> Iterator[np.ndarray]:
    """Chunks of any size as blocks of ``block_frames`` (the last one shorter),
    ``total`` frames in all: more is cut off, less raises ``truncated(done)``."""
    pending: list[np.ndarray] = []
    have = done = 0
    with contextlib.closing(chunks):  # a decoder stopped early closes its file now
        for chunk in chunks:
            chunk = chunk[:, : total - done - have]
            if chunk.shape[1]:
                pending.append(chunk)
                have += chunk.shape[1]
            while have >= block_frames:
                joined = pending[0] if len(pending) == 1 else np.concatenate(pending, axis=1)
                yield np.ascontiguousarray(joined[:, :block_frames])
                rest = joined[:, block_frames:]
                pending, have = ([rest] if rest.shape[1] else []), rest.shape[1]
                done += block_frames
            if done + have >= total:
                break
    if have:
        yield np.ascontiguousarray(np.concatenate(pending, axis=1))
        done += have
    if done < total:
        raise truncated(done)


def load_audio(source: str | os.PathLike, *, display_name: str | None = None) -> LoadedAudio:
    """All of a file, for an effect's asset parameter (an impulse response)."""
    with open_input(source, display_name=display_name) as reader:
        return LoadedAudio(reader.read(), reader.info.sample_rate)


# ---------------------------------------------------------------------------------
# Writing


class _Output(sf.SoundFile):
    """A SoundFile whose close does not fsync. libsndfile hands every write to the file
    as it comes; ``sf_write_sync`` (SoundFile.flush, called by close) is only an fsync,
    7 ms for a 10.6 MB WAV on the development disk and far more when the disk is busy,
    paid by every ``/api/process`` for a file read once and deleted. Durability is the
    caller's: :func:`~fxhost.engine.offline.render_file` fsyncs before its atomic
    rename, a render's result is fsynced by ``seal`` before it becomes an asset."""

    def flush(self) -> None:
        pass


#: Integer sample types that can be handed to libsndfile as integers, and as which.
_PCM_DTYPES = {"PCM_16": np.int16, "PCM_24": np.int32, "PCM_S8": np.int16, "PCM_U8": np.int16}
_FULL_SCALE = np.float32(2.0**31)
#: The largest float32 below 2**31 (which int32 cannot hold).
_BELOW_FULL_SCALE = np.float32(2.0**31 - 128)


def _pcm(block: np.ndarray, dtype: type) -> np.ndarray:
    """A float32 ``(channels, frames)`` block as C-contiguous ``(frames, channels)``
    integers, computed the way libsndfile 1.2 converts floats itself: ``lrint(x * 2**31)``
    clipped to int32, of which 16-bit keeps the top 16 bits (the others take the top bits
    of the int32 themselves). Every step is exact in float32 (scales are powers of two).

    Handing libsndfile integers instead of floats halves the cost of writing: 18 ms
    against 40 ms of CPU for 60 s of stereo PCM_16 (libsndfile converts floats through a
    small buffer, a write call for each 8 KiB)."""
    out = np.empty(block.shape[::-1], np.float32)
    with np.errstate(over="ignore"):  # absurdly loud samples become inf, then full scale
        np.multiply(block.T, _FULL_SCALE, out=out)
    np.rint(out, out=out)
    np.clip(out, -_FULL_SCALE, _BELOW_FULL_SCALE, out=out)
    if dtype is np.int16:
        np.multiply(out, np.float32(2.0**-16), out=out)
        np.floor(out, out=out)
    return out.astype(dtype)


@functools.cache
def _writes_pcm(fmt: str, subtype: str) -> type | None:
    """The integer type to hand libsndfile for ``fmt``/``subtype``, if :func:`_pcm` gives
    the very bytes libsndfile's own conversion gives (checked once, on edge cases and
    noise beyond full scale); None: write floats."""
    dtype = _PCM_DTYPES.get(subtype)
    if dtype is None:
        return None
    edges = np.array([0, 1, -1, 2**-15, -(2**-15), 2**-16, 2**-31, 1 - 2**-24, -1 + 2**-24], np.float32)
    # Values spread evenly over -1.5..1.5 (a golden-ratio sequence), beyond full scale
    # too; not numpy.random, whose import (~12 ms) every render would pay.
    spread = 3.0 * ((np.arange(4096) * 0.6180339887498949) % 1.0) - 1.5
    probe = np.concatenate([edges, spread.astype(np.float32)]).reshape(1, -1)
    written = []
    for frames in (np.clip(probe.T, -1.0, 1.0), _pcm(probe, dtype)):
        buffer = io.BytesIO()
        try:
            with sf.SoundFile(buffer, "w", 44100, 1, subtype, format=fmt) as out:
                out.write(frames)
        except (sf.LibsndfileError, ValueError, TypeError):
            return None
        written.append(buffer.getvalue())
    return dtype if written[0] == written[1] else None


class AudioWriter:
    """An output written block by block; use as a context manager. ``target`` is a
    path or a seekable binary file object (left open). Closing it does not fsync."""

    def __init__(
        self,
        target: str | os.PathLike | BinaryIO,
        sample_rate: int,
        channels: int,
        fmt: str,
        subtype: str | None = None,
    ):
        self.format, self.subtype = check_output(fmt, subtype, sample_rate, channels)
        self.sample_rate, self.channels, self.frames = int(sample_rate), int(channels), 0
        self._clip = self.subtype not in FLOAT_SUBTYPES
        self._pcm = _writes_pcm(self.format.format, self.subtype)
        try:
            self._handle = _Output(
                target,
                "w",
                samplerate=self.sample_rate,
                channels=self.channels,
                format=self.format.format,
                subtype=self.subtype,
            )
        except sf.LibsndfileError as error:
            raise AudioFormatError(
                f"cannot write {self.format.name}/{self.subtype} at {sample_rate} Hz "
                f"with {channels} channel(s): {_reason(error)}"
            ) from None

    def write(self, block: np.ndarray) -> None:
        """Write a ``(channels, frames)`` block; integer subtypes are clipped to full
        scale first, since libsndfile would otherwise wrap around."""
        block = as_audio(block, self.channels)
        if self._pcm is not None and block.dtype == np.float32:
            frames = _pcm(block, self._pcm)
        else:
            frames = block.T
            if self._clip:  # into a C-contiguous array, which soundfile then need not copy
                frames = np.clip(frames, -1.0, 1.0, out=np.empty(frames.shape, frames.dtype))
        self._handle.write(frames)
        self.frames += block.shape[1]

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> AudioWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_output(
    target: str | os.PathLike | BinaryIO,
    sample_rate: int,
    channels: int,
    fmt: str,
    subtype: str | None = None,
) -> AudioWriter:
    """An :class:`AudioWriter` for output format ``fmt`` (a key of :data:`OUTPUT_FORMATS`)."""
    return AudioWriter(target, sample_rate, channels, fmt, subtype)


def encode(audio: np.ndarray, sample_rate: int, fmt: str, subtype: str | None = None) -> bytes:
    """``audio`` (``(channels, frames)``, or 1-D for mono) as the bytes of a file in
    output format ``fmt``, with ``subtype`` or the format's default."""
    audio = as_audio(audio)
    buffer = io.BytesIO()
    with AudioWriter(buffer, sample_rate, audio.shape[0], fmt, subtype) as writer:
        writer.write(audio)
    return buffer.getvalue()


def as_audio(audio: np.ndarray, channels: int | None = None) -> np.ndarray:
    """``audio`` as a float ``(channels, frames)`` array (1-D is mono), or a field-named error."""
    audio = np.asarray(audio)
    if audio.ndim == 1:
        audio = audio[np.newaxis]
    if audio.ndim != 2 or (channels is not None and audio.shape[0] != channels):
        want = f"({channels}, frames)" if channels else "(channels, frames)"
        raise AudioFormatError(f"audio: expected an array shaped {want}, not {audio.shape}", "audio")
    if audio.dtype.kind != "f":
        raise AudioFormatError(f"audio: expected floating-point samples, not {audio.dtype}", "audio")
    return audio
