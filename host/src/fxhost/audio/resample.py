"""Resampling with soxr: a whole signal (:func:`resample`) or block by block
(:class:`Resampler`)."""

from __future__ import annotations

import numpy as np

from fxhost.audio.files import as_audio
from fxhost.audio.formats import MAX_CHANNELS, AudioFormatError, check_sample_rate

RESAMPLE_QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")


def _soxr_quality(quality: str) -> str:
    q = str(quality).upper()
    if q not in RESAMPLE_QUALITIES:
        raise AudioFormatError(
            f"quality: {quality!r} is not a resampling quality; use one of {', '.join(RESAMPLE_QUALITIES)}",
            "quality",
        )
    return q


def resample(audio: np.ndarray, from_rate: int, to_rate: int, quality: str = "HQ") -> np.ndarray:
    """``audio`` ``(channels, frames)`` resampled with soxr: float32 C-contiguous,
    ``round(frames * to_rate / from_rate)`` frames. ``quality`` is soxr's: QQ
    (quick), LQ, MQ, HQ (20-bit, the default) or VHQ (28-bit)."""
    audio = as_audio(audio)
    check_sample_rate(from_rate, "from_rate")
    check_sample_rate(to_rate, "to_rate")
    q = _soxr_quality(quality)
    if from_rate == to_rate:
        return np.array(audio, dtype=np.float32, order="C")
    import soxr  # here: most renders never resample, and every render pays its import

    # soxr takes (frames, channels); the transposed view of our layout is its
    # "split channels" layout, read without a copy.
    out = soxr.resample(audio.astype(np.float32, copy=False).T, from_rate, to_rate, q)
    return np.ascontiguousarray(out.T)


class Resampler:
    """Block-by-block resampling (soxr's stream): the concatenated outputs equal
    :func:`resample` of the concatenated inputs once the last block is passed with
    ``last=True``. Outputs lag behind inputs by the filter's delay meanwhile."""

    def __init__(self, channels: int, from_rate: int, to_rate: int, quality: str = "HQ"):
        check_sample_rate(from_rate, "from_rate")
        check_sample_rate(to_rate, "to_rate")
        if not 1 <= channels <= MAX_CHANNELS:
            raise AudioFormatError(f"channels: expected 1 to {MAX_CHANNELS}, not {channels}", "channels")
        self.from_rate, self.to_rate, self.channels = from_rate, to_rate, channels
        self.quality = _soxr_quality(quality)
        self._stream = None
        if from_rate != to_rate:
            import soxr  # here: most renders never resample, and every render pays its import

            self._stream = soxr.ResampleStream(from_rate, to_rate, channels, "float32", self.quality)

    def process(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        """Resample the next ``(channels, frames)`` block; ``last=True`` flushes."""
        block = as_audio(block, self.channels)
        if self._stream is None:
            return np.array(block, dtype=np.float32, order="C")
        frames = np.ascontiguousarray(block.T, dtype=np.float32)
        return np.ascontiguousarray(self._stream.resample_chunk(frames, last).T)

    def flush(self) -> np.ndarray:
        """What is still inside, once the input has ended: ``process(empty, last=True)``."""
        return self.process(np.zeros((self.channels, 0), np.float32), last=True)

    def reset(self) -> None:
        """Forget the past, for a new signal."""
        if self._stream is not None:
            self._stream.clear()
