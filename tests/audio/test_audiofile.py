"""fxhost.audio: reading by content (libsndfile, then PyAV), writing every output
format to bytes or block by block, the output rule, and resampling with soxr.

All audio is made here, with soundfile and PyAV, and read back through the module.
"""

import io
import itertools
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from fxhost.audio import files, formats
from fxhost.audio import resample as rs
from fxhost.audio.formats import OUTPUT_FORMATS, AudioFormatError

#: Lossy codecs at their default bit rates keep a two-tone signal 25-40 dB above the
#: codec noise (measured: Vorbis 40, MP3 39, Opus 37, FFmpeg's AAC 25). 20 dB leaves
#: room for other library versions yet fails on garbage, a wrong channel order or a
#: wrong rate; timing is checked apart, by the lag of the best cross-correlation.
LOSSY_MIN_SNR_DB = 20.0


def output_format(path: str, input_subtype: str | None = None) -> tuple[str, str]:
    """What ``fxhost render`` writes for ``path`` from input of ``input_subtype``: the
    format its extension names, the subtype by the output rule."""
    wanted = formats.RenderOutput(format=formats.format_of_path(path))
    spec, subtype, _ = formats.choose_output(wanted, 48000, 2, input_subtype)
    return spec.name, subtype


def tones(frames: int, sample_rate: int, channels: int = 2) -> np.ndarray:
    """Two tones per channel, different in every channel (so a swap shows)."""
    t = np.arange(frames) / sample_rate
    return np.stack(
        [
            0.4 * np.sin(2 * np.pi * 440 * (1 + 0.5 * c) * t)
            + 0.2 * np.sin(2 * np.pi * 1234 * (1 + 0.1 * c) * t + c)
            for c in range(channels)
        ]
    ).astype(np.float32)


def noise(frames: int, channels: int = 2, seed: int = 1) -> np.ndarray:
    return (
        (0.3 * np.random.default_rng(seed).standard_normal((channels, frames))).clip(-1, 1).astype(np.float32)
    )


def snr_db(reference: np.ndarray, decoded: np.ndarray, edge: int = 2000) -> float:
    x, y = reference[:, edge:-edge], decoded[:, edge:-edge]
    return float(10 * np.log10(np.sum(x**2) / np.sum((y - x) ** 2)))


def best_lag(reference: np.ndarray, decoded: np.ndarray, span: int = 200) -> int:
    """The shift of ``decoded`` against ``reference`` that correlates best."""
    n = min(reference.shape[1], decoded.shape[1]) - 2 * span
    x = reference[:, span : span + n]
    return max(
        range(-span, span + 1), key=lambda lag: float(np.sum(x * decoded[:, span + lag : span + lag + n]))
    )


def write_pyav(target, audio: np.ndarray, sample_rate: int, codec: str, container: str, sample_format: str):
    """Encode ``audio`` with FFmpeg (PyAV) into ``target``, a path or a file object."""
    channels = audio.shape[0]
    layout = {1: "mono", 2: "stereo"}[channels]
    with av.open(target, "w", format=container) as out:
        stream = out.add_stream(codec, rate=sample_rate)
        stream.layout = layout
        size = stream.codec_context.frame_size or 1024
        for pos in range(0, audio.shape[1], size):
            block = audio[:, pos : pos + size]
            if sample_format.startswith("s16"):
                block = np.round(block * 32768).clip(-32768, 32767).astype(np.int16)
            if not sample_format.endswith("p"):  # packed: interleaved in one row
                block = block.T.reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(block), format=sample_format, layout=layout
            )
            frame.sample_rate, frame.pts = sample_rate, pos
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def sixteen_bit(audio: np.ndarray) -> np.ndarray:
    """``audio`` as 16-bit PCM would hold it, back in float."""
    return (np.round(audio * 32768).clip(-32768, 32767) / 32768).astype(np.float32)


# ---------------------------------------------------------------------------------
# Reading

LOSSLESS = [
    # (libsndfile format, subtype, extension, sample rate, channels, tolerance)
    ("WAV", "PCM_16", "wav", 44100, 2, 2**-15),
    ("WAV", "PCM_24", "wav", 96000, 1, 2**-23),
    ("WAV", "FLOAT", "wav", 48000, 2, 0),
    ("WAV", "PCM_U8", "wav", 8000, 1, 2**-7),
    ("FLAC", "PCM_16", "flac", 44100, 2, 2**-15),
    ("FLAC", "PCM_24", "flac", 192000, 3, 2**-23),
    ("AIFF", "PCM_16", "aiff", 22050, 2, 2**-15),
    ("AIFF", "FLOAT", "aif", 44100, 1, 0),
    ("W64", "PCM_24", "w64", 48000, 2, 2**-23),
    ("RF64", "PCM_32", "rf64", 44100, 2, 2**-31),
    ("CAF", "DOUBLE", "caf", 44100, 2, 0),
    ("CAF", "ALAC_16", "caf", 44100, 2, 2**-15),
    ("AU", "PCM_16", "au", 16000, 1, 2**-15),
]


@pytest.mark.parametrize("fmt, subtype, ext, rate, channels, tol", LOSSLESS, ids=lambda v: str(v))
def test_lossless_formats_round_trip(tmp_path: Path, fmt, subtype, ext, rate, channels, tol):
    audio = noise(rate // 2 + 77, channels)
    path = tmp_path / f"in.{ext}"
    sf.write(path, audio.T, rate, format=fmt, subtype=subtype)
    with files.open_input(path) as reader:
        info = reader.info
        data = reader.read()
    assert (info.format, info.subtype, info.decoder) == (fmt, subtype, "libsndfile")
    assert (info.sample_rate, info.channels, info.frames) == (rate, channels, audio.shape[1])
    assert info.duration == pytest.approx(audio.shape[1] / rate)
    assert data.dtype == np.float32 and data.flags.c_contiguous and data.shape == audio.shape
    np.testing.assert_array_equal(data, sf.read(path, dtype="float32", always_2d=True)[0].T)
    np.testing.assert_allclose(data, audio, rtol=0, atol=tol)


@pytest.mark.parametrize(
    "fmt, subtype, rate, channels",
    [
        ("OGG", "VORBIS", 44100, 2),
        ("OGG", "OPUS", 48000, 2),
        ("OGG", "OPUS", 16000, 1),
        ("MP3", None, 44100, 1),
    ],
)
def test_lossy_formats_round_trip(tmp_path: Path, fmt, subtype, rate, channels):
    audio = tones(rate + 321, rate, channels)
    path = tmp_path / "in.bin"
    sf.write(path, audio.T, rate, format=fmt, subtype=subtype)
    with files.open_input(path) as reader:
        info, data = reader.info, reader.read()
    assert (info.format, info.sample_rate, info.channels) == (fmt, rate, channels)
    # Ogg granule positions and the LAME tag libsndfile writes make lossy lengths exact
    assert info.frames == data.shape[1] == audio.shape[1]
    assert best_lag(audio, data) == 0  # encoder delay and Opus pre-skip are removed
    assert snr_db(audio, data) > LOSSY_MIN_SNR_DB


def test_m4a_aac_is_read_through_pyav(tmp_path: Path):
    rate = 44100
    audio = tones(2 * rate + 321, rate)
    path = tmp_path / "in.m4a"
    write_pyav(str(path), audio, rate, "aac", "mp4", "fltp")
    with pytest.raises(sf.LibsndfileError):
        sf.info(path)  # the reason PyAV is here
    info = files.probe(path)
    assert (info.format, info.subtype, info.decoder) == ("M4A", "AAC", "pyav")
    assert (info.sample_rate, info.channels) == (rate, 2)
    # The edit list (in milliseconds, as FFmpeg writes it) trims the encoder's padding:
    # the length is the input's to the millisecond, not rounded up to 1024-frame packets.
    assert abs(info.frames - audio.shape[1]) <= rate // 1000 + 1
    with files.open_input(path) as reader:
        data = reader.read()
    assert data.shape == (2, info.frames)
    n = min(data.shape[1], audio.shape[1])
    assert best_lag(audio[:, :n], data[:, :n]) == 0  # FFmpeg drops the AAC priming
    assert snr_db(audio[:, :n], data[:, :n]) > LOSSY_MIN_SNR_DB


@pytest.mark.parametrize(
    "codec, container, sample_format, ext, subtype",
    [("alac", "ipod", "s16p", "m4a", "ALAC"), ("pcm_s16le", "mov", "s16", "mov", "PCM_S16LE")],
)
def test_pyav_lossless_is_exact(tmp_path: Path, codec, container, sample_format, ext, subtype):
    """ALAC (planar, decoded as 32-bit) and packed 16-bit PCM: every sample format
    conversion is exact, and so is the length."""
    audio = sixteen_bit(noise(30000, 2))
    path = tmp_path / f"in.{ext}"
    write_pyav(str(path), audio, 44100, codec, container, sample_format)
    with files.open_input(path) as reader:
        assert (reader.info.decoder, reader.info.subtype, reader.info.frames) == ("pyav", subtype, 30000)
        np.testing.assert_array_equal(reader.read(), audio)


def test_what_libsndfile_refuses_goes_to_pyav(tmp_path: Path):
    """G.722 in a WAV: libsndfile knows WAV but not the codec; FFmpeg decodes it."""
    path = tmp_path / "phone.wav"
    audio = tones(16000, 16000, 1)
    with av.open(str(path), "w", format="wav") as out:
        stream = out.add_stream("g722", rate=16000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(
            np.round(audio * 32767).astype(np.int16), format="s16", layout="mono"
        )
        frame.sample_rate, frame.pts = 16000, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    with pytest.raises(sf.LibsndfileError):
        sf.info(path)
    with files.open_input(path) as reader:
        assert (reader.info.format, reader.info.subtype, reader.info.decoder) == ("WAV", "ADPCM_G722", "pyav")
        assert (reader.info.sample_rate, reader.info.channels, reader.info.frames) == (16000, 1, 16000)
        decoded = reader.read()
    lag = best_lag(audio, decoded)  # G.722's QMF filters delay the signal a little
    assert 0 <= lag < 50 and snr_db(audio[:, : 16000 - lag], decoded[:, lag:]) > LOSSY_MIN_SNR_DB


def test_formats_are_recognised_by_content_not_name(tmp_path: Path):
    audio = noise(5000, 2)
    flac_named_wav = tmp_path / "song.wav"
    sf.write(flac_named_wav, audio.T, 44100, format="FLAC")
    m4a_named_mp3 = tmp_path / "song.mp3"
    write_pyav(str(m4a_named_mp3), tones(44100, 44100), 44100, "aac", "mp4", "fltp")
    wav_named_au = tmp_path / "song.au"
    sf.write(wav_named_au, audio.T, 32000, format="WAV", subtype="PCM_24")
    ogg_named_flac = tmp_path / "song.flac"
    sf.write(ogg_named_flac, audio.T, 44100, format="OGG")
    assert files.probe(flac_named_wav).format == "FLAC"
    assert (files.probe(m4a_named_mp3).format, files.probe(m4a_named_mp3).decoder) == ("M4A", "pyav")
    assert (files.probe(wav_named_au).format, files.probe(wav_named_au).sample_rate) == ("WAV", 32000)
    assert files.probe(ogg_named_flac).subtype == "VORBIS"


def test_mp3_frames_are_counted_when_the_header_only_estimates(tmp_path: Path):
    """Without a Xing/LAME tag libsndfile guesses an MP3's length from its bit rate
    (here 2000-odd frames too many); fxhost counts by decoding instead."""
    path = tmp_path / "no-xing.mp3"
    audio = tones(3 * 44100 + 123, 44100, 1)
    with av.open(str(path), "w", format="mp3", options={"write_xing": "0"}) as out:
        stream = out.add_stream("libmp3lame", rate=44100)
        stream.layout = "mono"
        for pos in range(0, audio.shape[1], 1152):
            frame = av.AudioFrame.from_ndarray(
                audio[:, pos : pos + 1152].copy(), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 44100, pos
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with files.open_input(path) as reader:
        decoded = reader.read()
        assert reader.info.frames == decoded.shape[1] != sf.info(path).frames
        assert sum(block.shape[1] for block in reader.blocks(1000)) == reader.info.frames


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("samples")
    audio = tones(44100 + 555, 44100)
    files = {}
    for name, fmt, subtype in [
        ("wav", "WAV", "PCM_24"),
        ("flac", "FLAC", "PCM_16"),
        ("ogg", "OGG", "VORBIS"),
        ("mp3", "MP3", "MPEG_LAYER_III"),
    ]:
        files[name] = folder / f"x.{name}"
        sf.write(files[name], audio.T, 44100, format=fmt, subtype=subtype)
    files["m4a"] = folder / "x.m4a"
    write_pyav(str(files["m4a"]), audio, 44100, "aac", "mp4", "fltp")
    return files


@pytest.mark.parametrize("kind", ["wav", "flac", "ogg", "mp3", "m4a"])
@pytest.mark.parametrize("block_frames", [1, 333, 4096, 100_000])
def test_blocks_equal_read(sample_files, kind, block_frames):
    if block_frames == 1 and kind in ("mp3", "m4a"):
        block_frames = 7  # one-frame blocks of a decoded stream take long and prove nothing more
    with files.open_input(sample_files[kind]) as reader:
        whole = reader.read()
        blocks = list(reader.blocks(block_frames))
        again = reader.read()  # every pass starts from the beginning
    assert whole.shape == (reader.info.channels, reader.info.frames)
    assert all(b.dtype == np.float32 and b.flags.c_contiguous and b.shape[0] == 2 for b in blocks)
    assert all(b.shape[1] == block_frames for b in blocks[:-1]) and 0 < blocks[-1].shape[1] <= block_frames
    np.testing.assert_array_equal(np.concatenate(blocks, axis=1), whole)
    np.testing.assert_array_equal(again, whole)


def write_video_without_audio(path: Path) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def make_not_audio(folder: Path, kind: str) -> Path:
    wav = io.BytesIO()
    sf.write(wav, noise(4410).T, 44100, format="WAV")
    flac = io.BytesIO()
    sf.write(flac, noise(44100).T, 44100, format="FLAC")
    ogg = io.BytesIO()
    sf.write(ogg, noise(44100).T, 44100, format="OGG")
    content = {
        "text-named-wav": ("notes.wav", b"this is not audio\n" * 50),
        "text-named-au": ("notes.au", b"libsndfile would read any bytes named .au as mu-law\n" * 50),
        "text-named-mp3": ("notes.mp3", b"nor is this\n" * 50),
        "random-bytes": ("noise.flac", np.random.default_rng(0).bytes(20000)),
        "mpeg-sync-then-junk": ("junk.mp3", b"\xff\xfb\x90\x00" + np.random.default_rng(1).bytes(5000)),
        "zero-length": ("empty.wav", b""),
        "zero-length-m4a": ("empty.m4a", b""),
        "wav-header-cut": ("cut.wav", wav.getvalue()[:20]),
        "flac-header-cut": ("cut.flac", flac.getvalue()[:30]),
        "ogg-header-cut": ("cut.ogg", ogg.getvalue()[:50]),
    }
    if kind == "video-without-audio":
        path = folder / "clip.mp4"
        write_video_without_audio(path)
        return path
    name, data = content[kind]
    path = folder / name
    path.write_bytes(data)
    return path


NOT_AUDIO = [
    "text-named-wav",
    "text-named-au",
    "text-named-mp3",
    "random-bytes",
    "mpeg-sync-then-junk",
    "zero-length",
    "zero-length-m4a",
    "wav-header-cut",
    "flac-header-cut",
    "ogg-header-cut",
    "video-without-audio",
]


@pytest.mark.parametrize("kind", NOT_AUDIO)
def test_not_audio_is_refused_in_one_line_without_a_path(tmp_path: Path, kind: str):
    path = make_not_audio(tmp_path, kind)
    with pytest.raises(AudioFormatError) as caught:
        files.open_input(path)
    message = str(caught.value)
    assert message.startswith(f"{path.name}: ") and "not audio" in message
    assert "\n" not in message and tmp_path.name not in message  # one line, no directory
    assert caught.value.field is None
    with pytest.raises(AudioFormatError):
        files.probe(path)
    if kind == "video-without-audio":
        assert "no audio stream" in message


def test_errors_use_the_given_name_for_file_objects(tmp_path: Path):
    with pytest.raises(AudioFormatError, match=r"^upload\.wav: not audio"):
        files.open_input(io.BytesIO(b"not audio at all" * 100), display_name="upload.wav")
    with pytest.raises(AudioFormatError, match=r"^audio: not audio: the file is empty"):
        files.open_input(io.BytesIO(b""))
    # a file object works like a path, and is left open for its owner
    data = noise(1000, 1)
    buffer = io.BytesIO(files.encode(data, 44100, "flac", "PCM_24"))
    with files.open_input(buffer, display_name="upload.flac") as reader:
        assert reader.info.format == "FLAC"
        np.testing.assert_allclose(reader.read(), data, atol=2**-23)
    assert not buffer.closed


def test_truncated_data(tmp_path: Path):
    """WAV and Ogg cut in the middle read as far as they are whole, and say so in
    ``frames``; a FLAC cut in the middle opens (its header is whole, and promises
    more) but raises when it is read."""
    audio = noise(44100)
    for fmt in ("WAV", "OGG"):
        whole = io.BytesIO()
        sf.write(whole, audio.T, 44100, format=fmt)
        with files.open_input(io.BytesIO(whole.getvalue()[: len(whole.getvalue()) // 2])) as reader:
            assert 0 < reader.info.frames < 44100
            assert reader.read().shape == (2, reader.info.frames)
    flac = io.BytesIO()
    sf.write(flac, noise(44100).T, 44100, format="FLAC")
    path = tmp_path / "half.flac"
    path.write_bytes(flac.getvalue()[: len(flac.getvalue()) // 2])
    with files.open_input(path) as reader:
        assert reader.info.frames == 44100
        with pytest.raises(AudioFormatError, match=r"^half\.flac: corrupt or truncated FLAC data"):
            reader.read()


def _flac_with_total_samples(audio: np.ndarray, total: int) -> bytes:
    """A FLAC of ``audio`` whose STREAMINFO says ``total`` samples (36 bits; 0: unknown)."""
    buffer = io.BytesIO()
    sf.write(buffer, audio.T, 44100, format="FLAC")
    data = bytearray(buffer.getvalue())
    # 'fLaC', block header (4), block sizes (4), frame sizes (6), then 64 bits: rate (20),
    # channels - 1 (3), bits - 1 (5), total samples (36).
    packed = int.from_bytes(data[18:26], "big") & ~((1 << 36) - 1) | total
    data[18:26] = packed.to_bytes(8, "big")
    return bytes(data)


def test_flac_of_unknown_length(tmp_path: Path):
    """A FLAC written without knowing its length (piped) has 0 total samples in its
    header (found by tests/fuzz: it was described as 2**63 - 1 frames, and read failed)."""
    audio = noise(30000)
    path = tmp_path / "piped.flac"
    path.write_bytes(_flac_with_total_samples(audio, 0))
    with files.open_input(path) as reader:
        assert (reader.info.format, reader.info.frames, reader.info.channels) == ("FLAC", 30000, 2)
        decoded = reader.read()
    expected, _ = sf.read(io.BytesIO(_flac_with_total_samples(audio, 30000)), dtype="float32")
    np.testing.assert_array_equal(decoded, expected.T)


def test_flac_promising_more_than_memory_is_refused(tmp_path: Path):
    """A damaged header may promise 2**36 frames in a few hundred bytes (found by
    bench/fuzz.py): reading refuses it as bad audio, not with a MemoryError."""
    path = tmp_path / "huge.flac"
    path.write_bytes(_flac_with_total_samples(noise(1000), 2**36 - 1))
    with files.open_input(path) as reader, pytest.raises(AudioFormatError, match=r"^huge\.flac: "):
        reader.read()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_refused_when_read(tmp_path: Path, bad: float):
    """A float WAV may hold NaN or infinities (found by tests/fuzz): it opens, since its
    header is fine, but reading it raises rather than handing them to an effect."""
    audio = noise(10000)
    audio[1, 7000] = bad
    path = tmp_path / "bad.wav"
    sf.write(path, audio.T, 44100, subtype="FLOAT")
    with files.open_input(path) as reader:
        assert reader.info.frames == 10000
        with pytest.raises(AudioFormatError, match=r"^bad\.wav: NaN or infinite sample at frame"):
            reader.read()


# ---------------------------------------------------------------------------------
# Writing


def read_back(data: bytes) -> tuple[files.AudioInfo, np.ndarray]:
    with files.open_input(io.BytesIO(data), display_name="encoded") as reader:
        return reader.info, reader.read()


@pytest.mark.parametrize("name", list(OUTPUT_FORMATS))
def test_encode_every_format_with_its_default_subtype(name: str):
    fmt = OUTPUT_FORMATS[name]
    audio = tones(12345, 48000)
    info, data = read_back(files.encode(audio, 48000, name))
    assert (info.format, info.subtype, info.sample_rate, info.channels) == (
        fmt.format,
        fmt.default_subtype,
        48000,
        2,
    )
    assert info.frames == audio.shape[1]
    if fmt.lossless:
        np.testing.assert_allclose(data, audio, atol=2**-15)
    else:
        assert best_lag(audio, data) == 0 and snr_db(audio, data) > LOSSY_MIN_SNR_DB
    assert fmt.media_type.startswith("audio/") and fmt.extension.startswith(".")
    assert output_format(f"out{fmt.extension}") == (name, fmt.default_subtype)


@pytest.mark.parametrize(
    "name, subtype", [(f.name, s) for f in OUTPUT_FORMATS.values() for s in f.subtypes], ids=lambda v: str(v)
)
def test_encode_every_offered_subtype(name: str, subtype: str):
    audio = noise(2000, 1)
    info, data = read_back(files.encode(audio, 48000, name, subtype.lower()))  # subtypes in any case
    assert (info.format, info.subtype, info.frames) == (OUTPUT_FORMATS[name].format, subtype, 2000)
    assert np.all(np.isfinite(data))


def test_float_stays_float_and_integers_clip():
    audio = np.array([[0.0, 0.5, 1.5, -2.0, -0.25]], np.float32)
    for subtype in ("FLOAT", "DOUBLE"):
        _, data = read_back(files.encode(audio, 44100, "wav", subtype))
        np.testing.assert_array_equal(data, audio)  # nothing clipped, nothing rounded
    _, data = read_back(files.encode(audio, 44100, "flac", "PCM_24"))
    np.testing.assert_allclose(data, [[0.0, 0.5, 1.0, -1.0, -0.25]], atol=2**-23)  # no wrap-around
    _, data = read_back(files.encode(audio[0], 44100, "aiff"))  # 1-D is mono
    assert data.shape == (1, 5)


def test_streaming_writer_equals_encode(tmp_path: Path):
    audio = noise(10000, 2)
    whole = files.encode(audio, 44100, "flac", "PCM_24")
    path = tmp_path / "streamed.bin"
    with files.open_output(path, 44100, 2, "flac", "PCM_24") as writer:
        for start, stop in [(0, 1), (1, 4097), (4097, 4097), (4097, 10000)]:
            writer.write(audio[:, start:stop])
        assert writer.frames == 10000
        with pytest.raises(AudioFormatError, match=r"audio: expected an array shaped \(2, frames\)"):
            writer.write(audio[:1])
    np.testing.assert_array_equal(read_back(path.read_bytes())[1], read_back(whole)[1])


def test_output_format_from_extension_keeps_the_input_subtype_where_it_can():
    assert output_format("a.wav", "FLOAT") == ("wav", "FLOAT")  # float stays float
    assert output_format("a.flac", "FLOAT") == ("flac", "PCM_24")  # the closest FLAC gets
    assert output_format("a.flac", "PCM_32") == ("flac", "PCM_24")
    assert output_format("a.FLAC", "PCM_16") == ("flac", "PCM_16")
    assert output_format("a.ogg", "OPUS") == ("ogg", "OPUS")
    assert output_format("a.opus", "PCM_16") == ("opus", "OPUS")
    assert output_format("a.mp3", "FLOAT") == ("mp3", "MPEG_LAYER_III")
    assert output_format("a.wav", "MPEG_LAYER_III") == ("wav", "PCM_16")  # not MP3-in-WAV
    assert output_format("a.wav", "AAC") == ("wav", "PCM_16")  # from an M4A input
    assert output_format("a.aif", "PCM_24") == ("aiff", "PCM_24")
    assert output_format("a.caf", "ALAC_24") == ("caf", "ALAC_24")
    with pytest.raises(AudioFormatError, match=r"^out\.xyz: unknown output format '\.xyz'; use an extension"):
        output_format("/some/where/out.xyz")
    with pytest.raises(AudioFormatError, match=r"'\(no extension\)'"):
        output_format("out")


@pytest.mark.parametrize(
    "fmt, subtype, rate, channels, field, message",
    [
        (
            "flac",
            "FLOAT",
            44100,
            2,
            "subtype",
            "subtype: 'FLOAT' is not available for flac; use one of PCM_S8, ",
        ),
        ("wav", "VORBIS", 44100, 2, "subtype", "subtype: 'VORBIS' is not available for wav"),
        (
            "opus",
            None,
            44100,
            2,
            "sample_rate",
            "sample_rate: Ogg Opus only does 8000, 12000, 16000, 24000 or 48000 Hz",
        ),
        ("ogg", "OPUS", 22050, 1, "sample_rate", "sample_rate: Ogg Opus only does"),
        ("mp3", None, 96000, 2, "sample_rate", "sample_rate: MP3 only does 8000, 11025"),
        ("mp3", None, 44100, 6, "channels", "channels: MP3 holds at most 2 channels, not 6"),
        (
            "ogg",
            None,
            384000,
            2,
            "sample_rate",
            "sample_rate: Ogg Vorbis goes up to 192000 Hz",
        ),  # libsndfile crashes
        (
            "ogg",
            None,
            48000,
            256,
            "channels",
            "channels: Ogg Vorbis holds at most 255 channels",
        ),  # libsndfile crashes
        ("flac", None, 48000, 9, "channels", "channels: FLAC holds at most 8 channels"),
        ("wav", None, 0, 2, "sample_rate", "sample_rate: 0 Hz is out of range; use 1000 to 768000 Hz"),
        ("wav", None, 10**9, 2, "sample_rate", "sample_rate: 1000000000 Hz is out of range"),
        ("wav", None, 44100.5, 2, "sample_rate", "sample_rate: expected a whole number of Hz"),
        ("wav", None, 44100, 0, "channels", "channels: expected a whole number from 1"),
        ("wav", None, 44100, 2000, "channels", "channels: WAV holds at most 1024 channels"),
        ("m4a", None, 44100, 2, "format", "format: 'm4a' is not an output format; use one of wav, flac, ogg"),
    ],
)
def test_bad_output_requests_name_the_field(fmt, subtype, rate, channels, field, message):
    with pytest.raises(AudioFormatError) as caught:
        files.open_output(io.BytesIO(), rate, channels, fmt, subtype)
    assert caught.value.field == field
    assert str(caught.value).startswith(message), str(caught.value)
    if channels:
        with pytest.raises(AudioFormatError):
            files.encode(np.zeros((channels, 10), np.float32), rate, fmt, subtype)


def test_input_formats_map_to_output_formats_and_media_types():
    assert [formats.format_name_of(f) for f in ("WAV", "WAVEX", "FLAC", "OGG", "MP3", "CAF")] == [
        "wav",
        "wav",
        "flac",
        "ogg",
        "mp3",
        "caf",
    ]
    assert formats.format_name_of("OGG", "OPUS") == "opus"
    assert formats.format_name_of("M4A", "AAC") is None  # read, never written
    assert formats.media_type_of("FLAC") == "audio/flac"
    assert formats.media_type_of("OGG", "OPUS") == "audio/ogg; codecs=opus"
    assert formats.media_type_of("M4A") == "audio/mp4"
    assert formats.media_type_of("NIST") == "application/octet-stream"
    for name, fmt in OUTPUT_FORMATS.items():  # every output format reads back as itself
        assert formats.format_name_of(fmt.format, fmt.default_subtype) == name


# ---------------------------------------------------------------------------------
# Resampling


def peak_hz(audio: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.shape[-1])))
    return float(np.fft.rfftfreq(audio.shape[-1], 1 / sample_rate)[np.argmax(spectrum)])


def test_resample_keeps_frequency_amplitude_and_length():
    n = 44100 * 2 + 17
    t = np.arange(n) / 44100
    audio = np.stack([0.5 * np.sin(2 * np.pi * 1000 * t), 0.25 * np.sin(2 * np.pi * 3000 * t)]).astype(
        np.float32
    )
    out = rs.resample(audio, 44100, 48000)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    assert out.shape[0] == 2 and abs(out.shape[1] - round(n * 48000 / 44100)) <= 1
    assert peak_hz(out[0], 48000) == pytest.approx(1000, abs=1)
    assert peak_hz(out[1], 48000) == pytest.approx(3000, abs=1)
    middle = out[:, 4800:-4800]
    np.testing.assert_allclose(np.max(np.abs(middle), axis=1), [0.5, 0.25], rtol=1e-3)
    # against the ideal: the same sines sampled at 48 kHz
    t48 = np.arange(out.shape[1]) / 48000
    ideal = np.stack([0.5 * np.sin(2 * np.pi * 1000 * t48), 0.25 * np.sin(2 * np.pi * 3000 * t48)])
    assert np.max(np.abs(out - ideal)[:, 4800:-4800]) < 1e-4


def test_resample_quality_setting():
    n = 44100
    t = np.arange(n) / 44100
    audio = (0.5 * np.sin(2 * np.pi * 15000 * t)).astype(np.float32)[np.newaxis]
    t48 = np.arange(round(n * 48000 / 44100)) / 48000
    ideal = 0.5 * np.sin(2 * np.pi * 15000 * t48)
    errors = {}
    for quality in rs.RESAMPLE_QUALITIES:
        out = rs.resample(audio, 44100, 48000, quality=quality.lower())
        errors[quality] = float(np.max(np.abs(out[0] - ideal[: out.shape[1]])[4800:-4800]))
    assert errors["VHQ"] < 1e-5 and errors["HQ"] < 1e-4
    assert errors["QQ"] > 10 * errors["HQ"]  # the quick one is really worse near the band edge
    with pytest.raises(AudioFormatError, match="quality: 'best' is not a resampling quality") as caught:
        rs.resample(audio, 44100, 48000, quality="best")
    assert caught.value.field == "quality"
    with pytest.raises(AudioFormatError, match="to_rate: 5 Hz is out of range"):
        rs.resample(audio, 44100, 5)
    same = rs.resample(audio, 44100, 44100)
    np.testing.assert_array_equal(same, audio)
    assert same is not audio


@pytest.mark.parametrize("rates", [(44100, 48000), (48000, 44100), (96000, 8000), (22050, 22050)])
def test_streaming_resampler_equals_whole(rates):
    """soxr's stream and its one-shot call run the same filter: identical results
    (a tolerance of 1e-6 is allowed only for other soxr builds)."""
    from_rate, to_rate = rates
    audio = noise(from_rate + 1234, 2, seed=3)
    whole = rs.resample(audio, from_rate, to_rate)
    resampler = rs.Resampler(2, from_rate, to_rate)
    sizes = np.random.default_rng(7).integers(0, 3000, 100)
    edges = np.concatenate([[0], np.cumsum(sizes)])
    edges = edges[edges < audio.shape[1]]
    parts = [resampler.process(audio[:, a:b]) for a, b in itertools.pairwise(edges)]
    parts.append(resampler.process(audio[:, edges[-1] :], last=True))
    assert all(p.dtype == np.float32 and p.flags.c_contiguous and p.shape[0] == 2 for p in parts)
    streamed = np.concatenate(parts, axis=1)
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, rtol=0, atol=1e-6)
    # reset() starts afresh; flush() is the same as an empty last block
    resampler.reset()
    again = np.concatenate(
        [resampler.process(audio[:, :5000]), resampler.process(audio[:, 5000:]), resampler.flush()], 1
    )
    np.testing.assert_allclose(again, whole, rtol=0, atol=1e-6)
    with pytest.raises(AudioFormatError, match=r"audio: expected an array shaped \(2, frames\)"):
        resampler.process(audio[:1])
