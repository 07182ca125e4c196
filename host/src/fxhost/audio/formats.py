"""The formats fxhost writes, and the one rule that picks an output's format, sample
type and rate.

:data:`OUTPUT_FORMATS` lists the formats written, by name, with their subtypes, media
type and file extension. Sample rates, channel counts and subtypes are checked before
libsndfile sees them (some bad combinations crash it), with errors that name the field.

**The output rule** (:func:`choose_output`), the same for ``fxhost render``, renders,
``/api/process`` and transcoding: the format asked for (or named by the output file's
extension); the subtype asked for, else the source's where the format has it (float
stays float), else 24-bit for a float or 32-bit source where the format has it, else
the format's default; the sample rate asked for, else the source's. An output may also
ask for a true-peak ``ceiling_dbfs`` (:data:`CeilingDbfs`, checked here with the rest;
the engine applies it).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import msgspec
import numpy as np
from fxhost_sdk import FieldError

#: Sample rates outside this range are refused for writing and resampling.
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768_000
#: libsndfile's own limit.
MAX_CHANNELS = 1024
#: A file's sample rate, as a request field: what fxhost writes and resamples to.
SampleRate = Annotated[int, msgspec.Meta(ge=MIN_SAMPLE_RATE, le=MAX_SAMPLE_RATE)]

OPUS_SAMPLE_RATES = (8000, 12000, 16000, 24000, 48000)
MP3_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)

FLOAT_SUBTYPES = frozenset({"FLOAT", "DOUBLE"})


class AudioFormatError(ValueError):
    """Audio that cannot be read, or an output that cannot be written as asked.

    ``field`` names the offending argument (``"subtype"``, ``"sample_rate"``...) when
    the error is about one, so that an API can point at the request field.
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field

    def __reduce__(self):  # raised in render worker processes, re-raised here
        return type(self), (*self.args, self.field)


def file_label(source: object, name: str | None = None) -> str:
    """How messages name a file: ``name`` if given, else its base name (never a path on
    this machine), non-printable characters replaced."""
    if name is None:
        raw = source if isinstance(source, (str, os.PathLike)) else getattr(source, "name", None)
        name = Path(os.fsdecode(raw)).name if isinstance(raw, (str, bytes, os.PathLike)) else "audio"
    return "".join(c if c.isprintable() else "?" for c in name) or "audio"


@dataclass(frozen=True)
class OutputFormat:
    """A format fxhost writes: ``name`` is how clients ask for it."""

    name: str
    #: How messages call it.
    label: str
    #: libsndfile's major format, which is also what :class:`AudioInfo` reads back.
    format: str
    #: Subtypes offered (libsndfile's names).
    subtypes: tuple[str, ...]
    default_subtype: str
    media_type: str
    #: File extensions, the usual one first.
    extensions: tuple[str, ...]
    lossless: bool = True
    #: The only sample rates the codec does, when it is that picky.
    sample_rates: tuple[int, ...] = ()
    max_sample_rate: int = MAX_SAMPLE_RATE
    max_channels: int = MAX_CHANNELS

    @property
    def extension(self) -> str:
        return self.extensions[0]


_PCM = ("PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "ULAW", "ALAW")
_ALAC = ("ALAC_16", "ALAC_20", "ALAC_24", "ALAC_32")

# Left out of the subtypes: those libsndfile cannot write or writes with a wrong
# length (ADPCM, GSM, G.72x, DWVW, MP3-in-WAV). The limits were found by trying:
# libsndfile crashes outright on Vorbis above 192 kHz or 255 channels.
OUTPUT_FORMATS: dict[str, OutputFormat] = {
    f.name: f
    for f in (
        OutputFormat("wav", "WAV", "WAV", ("PCM_U8", *_PCM), "PCM_16", "audio/wav", (".wav", ".wave")),
        OutputFormat(
            "flac",
            "FLAC",
            "FLAC",
            ("PCM_S8", "PCM_16", "PCM_24"),
            "PCM_16",
            "audio/flac",
            (".flac",),
            max_sample_rate=655_350,
            max_channels=8,
        ),
        OutputFormat(
            "ogg",
            "Ogg Vorbis",
            "OGG",
            ("VORBIS", "OPUS"),
            "VORBIS",
            "audio/ogg",
            (".ogg", ".oga"),
            lossless=False,
            max_sample_rate=192_000,
            max_channels=255,
        ),
        OutputFormat(
            "opus",
            "Ogg Opus",
            "OGG",
            ("OPUS",),
            "OPUS",
            "audio/ogg; codecs=opus",
            (".opus",),
            lossless=False,
            sample_rates=OPUS_SAMPLE_RATES,
            max_sample_rate=48000,
            max_channels=255,
        ),
        OutputFormat(
            "mp3",
            "MP3",
            "MP3",
            ("MPEG_LAYER_III",),
            "MPEG_LAYER_III",
            "audio/mpeg",
            (".mp3",),
            lossless=False,
            sample_rates=MP3_SAMPLE_RATES,
            max_sample_rate=48000,
            max_channels=2,
        ),
        OutputFormat(
            "aiff",
            "AIFF",
            "AIFF",
            ("PCM_S8", "PCM_U8", *_PCM),
            "PCM_16",
            "audio/aiff",
            (".aiff", ".aif", ".aifc"),
        ),
        OutputFormat("w64", "Wave64", "W64", ("PCM_U8", *_PCM), "PCM_16", "audio/x-w64", (".w64",)),
        OutputFormat("rf64", "RF64", "RF64", ("PCM_U8", *_PCM), "PCM_16", "audio/x-rf64", (".rf64",)),
        OutputFormat("caf", "CAF", "CAF", ("PCM_S8", *_PCM, *_ALAC), "PCM_16", "audio/x-caf", (".caf",)),
        OutputFormat("au", "AU", "AU", ("PCM_S8", *_PCM), "PCM_16", "audio/basic", (".au", ".snd")),
    )
}

FORMAT_BY_EXTENSION: dict[str, str] = {ext: f.name for f in OUTPUT_FORMATS.values() for ext in f.extensions}

# Input formats (AudioInfo.format) that no output format writes, with their media type.
_READ_ONLY_MEDIA_TYPES = {
    "M4A": "audio/mp4",
    "MP4": "video/mp4",
    "AAC": "audio/aac",
    "MATROSKA": "audio/x-matroska",
    "WMA": "audio/x-ms-wma",
}

#: The extensions of what fxhost reads (PyAV) but no output format writes.
READ_ONLY_EXTENSIONS = (".m4a", ".mp4", ".aac", ".mka", ".webm", ".wma")
#: What a folder's audio files are called (``fxhost render --out-dir`` picks them by
#: name, then reads each by content): the extensions of every format fxhost reads.
AUDIO_EXTENSIONS = frozenset({*FORMAT_BY_EXTENSION, *READ_ONLY_EXTENSIONS})


def format_name_of(fmt: str, subtype: str | None = None) -> str | None:
    """The output format that writes what :class:`AudioInfo` calls ``fmt`` (and
    ``subtype``): ``"FLAC"`` -> ``"flac"``, ``"OGG"`` with ``"OPUS"`` -> ``"opus"``;
    None for what fxhost reads but does not write (M4A...)."""
    fmt = "WAV" if fmt == "WAVEX" else fmt
    if fmt == "OGG" and subtype == "OPUS":
        return "opus"
    return next((f.name for f in OUTPUT_FORMATS.values() if f.format == fmt), None)


def media_type_of(fmt: str, subtype: str | None = None) -> str:
    """The media type of a file that :class:`AudioInfo` calls ``fmt`` (and ``subtype``)."""
    name = format_name_of(fmt, subtype)
    if name is not None:
        return OUTPUT_FORMATS[name].media_type
    return _READ_ONLY_MEDIA_TYPES.get(fmt, "application/octet-stream")


def output_format_named(fmt: str) -> OutputFormat:
    """The :class:`OutputFormat` called ``fmt`` (any case)."""
    found = OUTPUT_FORMATS.get(str(fmt).lower())
    if found is None:
        raise AudioFormatError(
            f"format: {fmt!r} is not an output format; use one of {', '.join(OUTPUT_FORMATS)}", "format"
        )
    return found


def check_output(fmt: str, subtype: str | None, sample_rate: int, channels: int) -> tuple[OutputFormat, str]:
    """``(format, subtype)`` after checking that ``fmt`` can hold audio at this
    rate and channel count, with ``subtype`` or its default; else a field-named
    :class:`AudioFormatError`."""
    out = output_format_named(fmt)
    if subtype is None:
        subtype = out.default_subtype
    subtype = str(subtype).upper()
    if subtype not in out.subtypes:
        raise AudioFormatError(
            f"subtype: {subtype!r} is not available for {out.name}; use one of {', '.join(out.subtypes)}",
            "subtype",
        )
    check_sample_rate(sample_rate)
    if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)) or channels < 1:
        raise AudioFormatError(f"channels: expected a whole number from 1, not {channels!r}", "channels")
    codec = OUTPUT_FORMATS["opus"] if subtype == "OPUS" else out  # Opus in .ogg is still Opus
    if codec.sample_rates and sample_rate not in codec.sample_rates:
        raise AudioFormatError(
            f"sample_rate: {codec.label} only does {_or(codec.sample_rates)} Hz, not {sample_rate}; "
            "resample first",
            "sample_rate",
        )
    if sample_rate > codec.max_sample_rate:
        raise AudioFormatError(
            f"sample_rate: {codec.label} goes up to {codec.max_sample_rate} Hz, not {sample_rate}; "
            "resample first",
            "sample_rate",
        )
    if channels > codec.max_channels:
        raise AudioFormatError(
            f"channels: {codec.label} holds at most {codec.max_channels} channels, not {channels}", "channels"
        )
    return out, subtype


def check_sample_rate(sample_rate: int, field: str = "sample_rate") -> None:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
        raise AudioFormatError(f"{field}: expected a whole number of Hz, not {sample_rate!r}", field)
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise AudioFormatError(
            f"{field}: {sample_rate} Hz is out of range; use {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz", field
        )


def _or(values: Iterable[int]) -> str:
    *rest, last = (str(v) for v in values)
    return f"{', '.join(rest)} or {last}" if rest else last


# ---------------------------------------------------------------------------------
# The output rule


#: The lowest ``ceiling_dbfs`` taken: a ceiling further down is a mistake, not a level.
MIN_CEILING_DBFS = -60.0
#: An output's true-peak ceiling, as a request field.
CeilingDbfs = Annotated[
    float,
    msgspec.Meta(
        ge=MIN_CEILING_DBFS,
        le=0.0,
        description="True-peak ceiling in dBFS (dBTP): a limiter applied as the render's last "
        "step, after any resampling, keeps the output's true peak (4x oversampled, as "
        "/api/assets/{id}/analysis measures it) at or under it, so nothing clips. "
        "Default: no limiter.",
        extra={"unit": "dBFS"},
    ),
]


class RenderOutput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The output asked for: format, sample rate and sample type, and an optional true-peak
    ceiling. A sample type left out is the source's where the format has it (float stays
    float), else 24-bit for a float or 32-bit source where the format has it, else the
    format's own."""

    #: Output format name: wav, flac, ogg, opus, mp3, aiff, ... (default: wav).
    format: str = "wav"
    #: Output sample rate in Hz (default: the source's). Resampled with soxr.
    sample_rate: int | None = None
    #: libsndfile sample type, e.g. PCM_16, PCM_24, FLOAT (default: the source's where the
    #: format has it, else 24-bit for a float or 32-bit source where it has that, else the
    #: format's own).
    subtype: str | None = None
    #: True-peak ceiling in dBFS: a limiter as the last step keeps the output under it.
    ceiling_dbfs: CeilingDbfs | None = None


def format_of_path(path: str | os.PathLike) -> str:
    """The output format that ``path``'s extension names (``.flac`` -> ``flac``)."""
    ext = Path(path).suffix.lower()
    name = FORMAT_BY_EXTENSION.get(ext)
    if name is None:
        raise AudioFormatError(
            f"{file_label(path)}: unknown output format {ext or '(no extension)'!r}; "
            f"use an extension such as {', '.join(f.extension for f in OUTPUT_FORMATS.values())}"
        )
    return name


def choose_output(
    output: RenderOutput, sample_rate: int, channels: int, source_subtype: str | None = None
) -> tuple[OutputFormat, str, int]:
    """``(format, subtype, sample rate)`` for writing audio of ``channels`` at
    ``sample_rate`` (and of ``source_subtype``) as ``output`` asks, by the rule in the
    module's docstring; an :class:`AudioFormatError` naming the field if it cannot be."""
    spec = output_format_named(output.format)
    subtype = output.subtype
    if subtype is None:
        if source_subtype in spec.subtypes:
            subtype = source_subtype
        elif source_subtype in {"PCM_32", *FLOAT_SUBTYPES} and "PCM_24" in spec.subtypes:
            subtype = "PCM_24"  # the closest a format without float or 32-bit gets
    rate = output.sample_rate or sample_rate
    spec, subtype = check_output(spec.name, subtype, rate, channels)
    check_ceiling(output.ceiling_dbfs)
    return spec, subtype, rate


def check_ceiling(ceiling_dbfs: float | None) -> None:
    """A field-named :class:`AudioFormatError` unless ``ceiling_dbfs`` is None or a level
    from :data:`MIN_CEILING_DBFS` to 0 dBFS."""
    if ceiling_dbfs is None:
        return
    field = "ceiling_dbfs"
    if isinstance(ceiling_dbfs, bool) or not isinstance(ceiling_dbfs, (int, float, np.floating, np.integer)):
        raise AudioFormatError(f"{field}: expected a level in dBFS, not {ceiling_dbfs!r}", field)
    if not MIN_CEILING_DBFS <= ceiling_dbfs <= 0.0:  # NaN fails this too
        raise AudioFormatError(
            f"{field}: {ceiling_dbfs!r} is out of range; use {MIN_CEILING_DBFS:g} to 0 dBFS", field
        )


def checked_output(
    output: RenderOutput, sample_rate: int, channels: int, source_subtype: str | None, path: str = "output"
) -> RenderOutput:
    """``output`` with its subtype and rate chosen (:func:`choose_output`), for a request
    field at ``path``: a :class:`~fxhost_sdk.FieldError` names ``output.subtype`` and the
    like."""
    try:
        spec, subtype, rate = choose_output(output, sample_rate, channels, source_subtype)
    except AudioFormatError as error:
        field = error.field or "format"
        message = str(error).removeprefix(f"{field}: ")
        raise FieldError(f"{path}.{field}" if path else field, message) from None
    return RenderOutput(format=spec.name, sample_rate=rate, subtype=subtype, ceiling_dbfs=output.ceiling_dbfs)
