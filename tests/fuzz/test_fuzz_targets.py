"""The fuzz targets of tests/support/fuzz_targets.py, a few hundred examples each, in CI.
bench/fuzz.py runs the same targets for as long as asked.

A target passes an input it refuses cleanly, so the baselines first show that valid
inputs are accepted and decoded to what they hold: a decoder that refused everything
would pass every property test and fail these.

No deadline: speed is not asserted here (a hang is caught by pytest's timeout)."""

from __future__ import annotations

import json

import msgspec
import numpy as np
import pytest
from fuzz_targets import (
    SEED_FRAMES,
    SEED_RATE,
    DecodeTarget,
    check_ws_frame,
    check_ws_text,
    decode_ws_frame,
    decode_ws_text,
    seed_audio,
    seed_files,
    seed_messages,
    upload_bodies,
    ws_frames,
    ws_texts,
)
from hypothesis import HealthCheck, given, settings
from wskit import interleave

CI = settings(max_examples=300, database=None)

#: How close each seed decodes to what was written: the lossless ones within their
#: quantisation step (exactly, for float)...
LOSSLESS_ATOL = {"wav16": 2**-15, "wavfloat": 0.0, "flac": 2**-15, "aiff": 2**-23}
#: ...the lossy ones (Vorbis and MP3 of a 54 ms chirp: 28 and 41 dB measured) with a
#: signal-to-error ratio of at least this, which silence (0 dB) or noise cannot reach.
LOSSY_MIN_SNR_DB = 20.0


@pytest.fixture(scope="module")
def decode(tmp_path_factory):
    return DecodeTarget(tmp_path_factory.mktemp("decode"))


@pytest.mark.parametrize("name", sorted(seed_files()))
def test_every_seed_file_decodes_to_what_was_written(decode, name):
    info, audio = decode.accept(seed_files()[name])  # a refusal (AudioFormatError) fails here
    assert (info.sample_rate, info.channels, info.frames) == (SEED_RATE, 2, SEED_FRAMES), info
    written = seed_audio()
    if name in LOSSLESS_ATOL:
        np.testing.assert_allclose(audio, written, rtol=0, atol=LOSSLESS_ATOL[name])
    else:
        snr = 10 * np.log10(np.sum(written**2) / np.sum((audio - written) ** 2))
        assert snr >= LOSSY_MIN_SNR_DB, f"{name}: {snr:.1f} dB"


@settings(CI, suppress_health_check=[HealthCheck.too_slow])  # decoding is slow by nature
@given(data=upload_bodies())
def test_an_upload_decodes_or_is_refused_as_not_audio(decode, data):
    decode(data)


@pytest.mark.parametrize("text", seed_messages())
def test_every_seed_message_decodes_to_what_it_says(text):
    message = decode_ws_text(text)  # a refusal (FieldError) fails here
    sent, decoded = json.loads(text), msgspec.to_builtins(message)
    assert {key: decoded.get(key) for key in sent} == sent, decoded


@pytest.mark.parametrize("fmt", ["f32le", "s16le"])
@pytest.mark.parametrize("channels", [1, 2, 8])
def test_whole_frames_of_audio_decode_to_their_samples(fmt, channels):
    audio = np.resize(seed_audio(), (channels, 300))
    block = decode_ws_frame(interleave(audio, fmt), channels, fmt)  # a refusal fails here
    np.testing.assert_allclose(block, audio, rtol=0, atol=0.0 if fmt == "f32le" else 2**-15)


@CI
@given(text=ws_texts())
def test_a_text_message_decodes_or_is_refused_with_its_field(text):
    check_ws_text(text)


@CI
@given(frame=ws_frames())
def test_a_binary_frame_is_audio_or_closes_with_its_code(frame):
    check_ws_frame(*frame)
