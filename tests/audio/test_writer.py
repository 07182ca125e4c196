"""AudioWriter computes integer samples itself where that gives libsndfile's own bytes
(it is twice as fast): every output must equal what libsndfile writes from the same
float samples, clipped to full scale, for every format and sample type, whatever the
block size and channel count, and the caller's blocks are left as they were."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from fxhost.audio.files import open_output

CASES = [
    ("wav", "PCM_16"),
    ("wav", "PCM_24"),
    ("wav", "PCM_32"),
    ("wav", "PCM_U8"),
    ("wav", "FLOAT"),
    ("aiff", "PCM_16"),
    ("aiff", "PCM_24"),
    ("aiff", "PCM_S8"),
    ("flac", "PCM_16"),
    ("flac", "PCM_24"),
]


def signal(channels: int, frames: int, seed: int) -> np.ndarray:
    """Noise past full scale, quiet passages, and the edge values of the conversion."""
    rng = np.random.default_rng(seed)
    audio = (0.8 * rng.standard_normal((channels, frames))).astype(np.float32)
    audio[:, frames // 2 : frames // 2 + 1000] *= 1e-5
    edges = [1.0, -1.0, 1 - 2**-24, -1 + 2**-24, 2**-15, -(2**-15), 2**-16, -(2**-16), 2**-31, 3.0, -1e30]
    audio[0, : len(edges)] = edges
    return audio


@pytest.mark.parametrize(("fmt", "subtype"), CASES)
@pytest.mark.parametrize("channels", [1, 2, 3])
def test_written_bytes_are_libsndfiles_own(fmt, subtype, channels):
    audio = signal(channels, 20000, seed=channels)
    expected = io.BytesIO()
    clipped = audio.T if subtype == "FLOAT" else np.clip(audio.T, -1.0, 1.0)
    sf.write(expected, clipped, 44100, format=fmt.upper(), subtype=subtype)
    kept = audio.copy()
    written = io.BytesIO()
    with open_output(written, 44100, channels, fmt, subtype) as writer:
        for start, size in zip([0, 1, 4097, 12288], [1, 4096, 8191, 7712], strict=True):
            writer.write(audio[:, start : start + size])
    assert written.getvalue() == expected.getvalue()
    np.testing.assert_array_equal(audio, kept)  # blocks are not clipped in place
