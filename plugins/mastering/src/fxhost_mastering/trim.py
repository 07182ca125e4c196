"""Trimming silence from both ends of a signal."""

from __future__ import annotations

from typing import Annotated

import fxhost_sdk
import numpy as np
from fxhost_sdk import param
from fxhost_sdk.meters import db_to_gain


class TrimSilence(fxhost_sdk.OfflineEffect):
    """Removes the audio before the first and after the last frame at or above
    ``threshold_db``, keeping ``pad_ms`` of the original audio on each side (less where
    the signal ends first). A frame's level is the largest ``|x|`` over its channels, so
    every channel is cut at the same frames. Nothing in the middle is touched.

    Offline-only: the end of the sound is known only when the signal has ended. Audio
    with no frame at or above the threshold (silence) becomes zero frames long.
    """

    name = "trim_silence"
    version = "1.0.0"
    summary = "Removes leading and trailing silence, keeping a short margin."

    class Params(fxhost_sdk.Params):
        threshold_db: Annotated[
            float,
            param(
                description=(
                    "Frames under this level (largest |x| over the channels) at either end count as silence."
                ),
                ge=-120.0,
                le=0.0,
                unit="dBFS",
            ),
        ] = -60.0
        pad_ms: Annotated[
            float,
            param(
                description="Audio kept before the first and after the last frame above the threshold.",
                ge=0.0,
                le=1000.0,
                unit="ms",
            ),
        ] = 10.0

    def process_offline(self, audio: np.ndarray) -> np.ndarray:
        x = np.asarray(audio, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] != self.channels:
            raise ValueError(f"expected audio shaped ({self.channels}, frames), got {x.shape}")
        if x.shape[1] == 0:
            return x.copy()
        level = np.max(np.abs(x), axis=0)
        sound = np.flatnonzero(level >= db_to_gain(self.params.threshold_db))
        if sound.size == 0:
            return np.zeros((self.channels, 0), dtype=np.float32)
        pad = round(self.params.pad_ms * self.sample_rate / 1000.0)
        start = max(0, int(sound[0]) - pad)
        stop = min(x.shape[1], int(sound[-1]) + 1 + pad)
        return np.array(x[:, start:stop], dtype=np.float32, order="C", copy=True)
