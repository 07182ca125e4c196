"""The fuzz targets of tests/support/fuzz_targets.py, a few hundred examples each, in CI.
bench/fuzz.py runs the same targets for as long as asked.

No deadline: speed is not asserted here (a hang is caught by pytest's timeout)."""

from __future__ import annotations

import pytest
from fuzz_targets import (
    DecodeTarget,
    check_ws_frame,
    check_ws_text,
    seed_files,
    seed_messages,
    upload_bodies,
    ws_frames,
    ws_texts,
)
from hypothesis import HealthCheck, given, settings

CI = settings(max_examples=300, deadline=None, derandomize=True, database=None)


@pytest.fixture(scope="module")
def decode(tmp_path_factory):
    return DecodeTarget(tmp_path_factory.mktemp("decode"))


@pytest.mark.parametrize("name", sorted(seed_files()))
def test_every_seed_file_decodes(decode, name):
    decode(seed_files()[name])  # the undamaged seeds are audio: the target's baseline


@settings(CI, suppress_health_check=[HealthCheck.too_slow])  # decoding is slow by nature
@given(data=upload_bodies())
def test_an_upload_decodes_or_is_refused_as_not_audio(decode, data):
    decode(data)


def test_every_seed_message_decodes():
    for text in seed_messages():
        check_ws_text(text)


@CI
@given(text=ws_texts())
def test_a_text_message_decodes_or_is_refused_with_its_field(text):
    check_ws_text(text)


@CI
@given(frame=ws_frames())
def test_a_binary_frame_is_audio_or_closes_with_its_code(frame):
    check_ws_frame(*frame)
