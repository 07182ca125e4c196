"""Normalisation: gain for the whole signal, chosen from a measurement of all of it.

Both effects are offline-only (:class:`fxhost_sdk.OfflineEffect`): the gain depends on
the loudest moment or on the loudness of everything, which a stream does not know until
it ends. Hosts run them in renders (``fxhost render``, ``POST /api/renders``,
``POST /api/process``) and refuse them in live streams.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar

import fxhost_sdk
import numpy as np
from fxhost_sdk import FieldError, param
from fxhost_sdk.meters import (
    ABSOLUTE_GATE_LUFS,
    LOUDNESS_MIN_RATE,
    LoudnessMeter,
    db_to_gain,
    gain_to_db,
    true_peak,
)

#: Channels in the order L, R, C, Ls, Rs.
MAX_CHANNELS = 5
#: A safety margin under the true-peak ceiling for float32 rounding (-0.00001 dB).
CEILING_MARGIN = 1.0 - 1e-6
#: The result is measured again while it is further than this from the target (LU) ...
LOUDNESS_TOLERANCE = 0.001
#: ... at most this many times (only when the gain moves a block across the -70 LUFS gate).
MAX_CORRECTIONS = 4


def _checked(audio: np.ndarray, channels: int) -> np.ndarray:
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] != channels:
        raise ValueError(f"expected audio shaped ({channels}, frames), got {x.shape}")
    return x


def _scaled(x: np.ndarray, gain: float) -> np.ndarray:
    return np.ascontiguousarray(x.astype(np.float64) * gain, dtype=np.float32)


class LoudnessNormalize(fxhost_sdk.OfflineEffect):
    """Sets the integrated loudness of the whole signal to ``target_lufs``.

    Loudness is measured with the SDK's meter (:mod:`fxhost_sdk.meters`), the one the
    host reports with: ITU-R BS.1770-4 K-weighting, 400 ms blocks overlapping by 75%, the
    absolute gate at -70 LUFS and the relative gate 10 LU below (EBU R128 uses the same
    measurement). One gain is applied to every channel, so the stereo image is kept; mono
    counts as one channel (BS.1770: no +3 dB dual-mono rule).

    With ``limit_true_peak`` the gain is lowered, if it must be, so that the true peak
    stays at or under ``max_true_peak_db``: the true peak is measured by 4x oversampling
    (BS.1770-4 Annex 2), not just the sample peak. The target is then not reached: the
    effect never compresses or limits; put a limiter before it for that.

    Left unchanged: audio shorter than one 400 ms gating block (it has no integrated
    loudness), and audio whose every block is under the -70 LUFS gate (silence: it
    measures -inf LUFS).
    """

    name = "loudness_normalize"
    version = "1.0.0"
    summary = "Sets integrated loudness (ITU-R BS.1770-4 / EBU R128) to a target, under a true-peak ceiling."
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # EBU R128 (broadcast): -23 LUFS, -1 dBTP.
        "ebu_r128": {"target_lufs": -23.0, "limit_true_peak": True, "max_true_peak_db": -1.0},
        # What the large streaming platforms normalise music to.
        "streaming": {"target_lufs": -14.0, "limit_true_peak": True, "max_true_peak_db": -1.0},
        # Spoken word for podcast apps.
        "podcast": {"target_lufs": -16.0, "limit_true_peak": True, "max_true_peak_db": -1.0},
    }

    class Params(fxhost_sdk.Params):
        target_lufs: Annotated[
            float,
            param(
                description=(
                    "Integrated loudness to reach. -23 LUFS is EBU R128 (broadcast); streaming "
                    "platforms play music at about -14 LUFS, podcasts at -16."
                ),
                ge=-70.0,
                le=-5.0,
                unit="LUFS",
            ),
        ] = -23.0
        limit_true_peak: Annotated[
            bool,
            param(
                description=(
                    "Lower the gain if it must be, so the true peak stays at or under "
                    "max_true_peak_db (the loudness target is then not reached)."
                ),
            ),
        ] = True
        max_true_peak_db: Annotated[
            float,
            param(
                description="Highest true peak (4x oversampled estimate) the gain may produce.",
                ge=-20.0,
                le=0.0,
                unit="dBTP",
            ),
        ] = -1.0

    def prepare(self) -> None:
        if self.sample_rate < LOUDNESS_MIN_RATE:
            raise FieldError(
                "sample_rate",
                f"loudness is measured at {LOUDNESS_MIN_RATE:g} Hz or more (K-weighting), "
                f"got {self.sample_rate:g}",
            )
        if self.channels > MAX_CHANNELS:
            raise FieldError(
                "channels",
                f"loudness is measured on at most {MAX_CHANNELS} channels (L, R, C, Ls, Rs), "
                f"got {self.channels}",
            )

    def measure(self, audio: np.ndarray) -> LoudnessMeter:
        """The loudness meter run over float ``(channels, frames)`` audio."""
        x = _checked(audio, self.channels)
        return LoudnessMeter(self.channels, x.shape[1], round(self.sample_rate)).run(x)

    def process_offline(self, audio: np.ndarray) -> np.ndarray:
        x = _checked(audio, self.channels)
        meter = self.measure(x)
        loudness = meter.integrated()
        if loudness is None:  # shorter than one gating block, or silent
            return x.copy()
        # The blocks' loudness before the gate: which of them the gain moves across it.
        blocks = meter.blocks()
        p = self.params
        target = p.target_lufs
        ceiling = math.inf
        if p.limit_true_peak:
            peak = max(true_peak(x, self.sample_rate), default=0.0)
            if peak > 0:
                ceiling = db_to_gain(p.max_true_peak_db) / peak * CEILING_MARGIN
        gain = min(db_to_gain(target - loudness), ceiling)
        out = _scaled(x, gain)
        # The measurement is linear in the gain, gates included, unless the gain moves a
        # block across the absolute gate: then the result is measured again and corrected.
        shift = gain_to_db(gain)
        crossed = blocks.size == 0 or bool(
            np.any((blocks >= ABSOLUTE_GATE_LUFS) != (blocks + shift >= ABSOLUTE_GATE_LUFS))
        )
        for _ in range(MAX_CORRECTIONS if crossed else 0):
            if gain >= ceiling:
                break
            measured = self.measure(out).integrated()
            error = target - measured if measured is not None else math.nan
            if not math.isfinite(error) or abs(error) <= LOUDNESS_TOLERANCE:
                break
            gain = min(gain * db_to_gain(error), ceiling)
            out = _scaled(x, gain)
        return out


class PeakNormalize(fxhost_sdk.OfflineEffect):
    """Scales the whole signal so its sample peak (the largest ``|x|`` over every channel)
    is exactly ``target_db``: one gain for all channels. Silence is left unchanged."""

    name = "peak_normalize"
    version = "1.0.0"
    summary = "Scales the whole signal so its highest sample peak is at a target level."

    class Params(fxhost_sdk.Params):
        target_db: Annotated[
            float,
            param(
                description="Level of the highest sample peak over all channels.",
                ge=-60.0,
                le=0.0,
                unit="dBFS",
            ),
        ] = -1.0

    def process_offline(self, audio: np.ndarray) -> np.ndarray:
        x = _checked(audio, self.channels)
        peak = float(np.max(np.abs(x))) if x.size else 0.0
        if peak == 0.0 or not math.isfinite(peak):
            return x.copy()
        return _scaled(x, db_to_gain(self.params.target_db) / peak)
