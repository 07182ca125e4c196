"""Convolution with an impulse response named by an asset parameter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import fxhost_sdk
import numpy as np
import pedalboard
from fxhost_sdk import FieldError, param

from fxhost_pedalboard.base import PedalboardEffect


class Convolution(PedalboardEffect):
    """``pedalboard.Convolution`` (JUCE's zero-latency partitioned convolution) with the
    impulse response an asset parameter names: a cabinet, a room, any linear filter.

    The impulse response is loaded through the host's asset loader when the reference
    changes, and handed to pedalboard as an array with its own sample rate; JUCE
    resamples it to the stream's rate and normalises its level (as pedalboard always
    does with an array). Its first two channels are used: a stereo impulse response
    gives true stereo, a mono one is applied to every channel.

    ``impulse_response`` is ``""`` by default: no impulse response, and the effect passes
    the input through unchanged (``mix`` is then ignored). Changing the impulse response
    between blocks starts a new convolution: the old one's tail is cut off. ``mix`` can
    change at any time. Silence leaves a convolution at rest, so it is primed: no latency,
    and equal to one whole-signal pedalboard call for any block pattern (within 1e-7:
    JUCE's FFT partitions see the blocks). It is primed with, and fed at most, 512 frames
    at a time rather than 8192: JUCE sizes its first FFT partition for the largest block
    and computes it on every call, so a one-frame block would cost as much as 8192 frames
    (0.6 ms instead of 0.03 ms), while long signals run as fast either way.
    """

    name = "convolution"
    version = "1.0.0"
    summary = (
        "Convolution with an impulse response (an audio asset): cabinets, rooms (JUCE, through pedalboard)."
    )
    plugin_class = pedalboard.Convolution
    restart_fields = ("impulse_response",)
    prime_frames = 512

    class Params(fxhost_sdk.Params):
        impulse_response: Annotated[
            str,
            fxhost_sdk.asset(
                description="Audio asset holding the impulse response (any length, mono or stereo, "
                'any sample rate); "" for none: the input passes through unchanged.'
            ),
        ] = ""
        mix: Annotated[
            float,
            param(description="Proportion of the convolved (wet) signal.", ge=0.0, le=1.0, unit="ratio"),
        ] = 1.0

    def prepare(self) -> None:
        super().prepare()
        if not hasattr(self, "_ir_ref"):
            self._ir_ref: str | None = None
            self._ir: np.ndarray | None = None
            self._ir_rate = 0.0

    def apply_params(self, params: fxhost_sdk.Params) -> None:
        ref = params.impulse_response
        if ref != self._ir_ref:
            # Load first: a refused asset raises FieldError and leaves the effect as it was.
            ir, rate = self._load(ref) if ref else (None, 0.0)
            self._ir_ref, self._ir, self._ir_rate = ref, ir, rate
        super().apply_params(params)

    def _load(self, ref: str) -> tuple[np.ndarray, float]:
        path = "params.impulse_response"
        if self.assets is None:
            raise FieldError(path, "this host gave the effect no way to load audio assets")
        loaded = self.assets(ref, path)
        audio = np.asarray(loaded.audio, dtype=np.float32)
        if audio.ndim == 1:
            audio = audio[np.newaxis]
        if audio.ndim != 2 or audio.shape[0] < 1 or audio.shape[1] < 1:
            raise FieldError(
                path, f"the impulse response must be audio (channels, frames), got {audio.shape}"
            )
        if not np.isfinite(audio).all():
            raise FieldError(path, "the impulse response has NaN or infinite samples")
        audio = audio[:2]
        if audio.shape[1] < 4:
            # Trailing zeros change nothing, and keep the array's layout unambiguous to
            # pedalboard (it guesses (2, 2) blocks).
            audio = np.pad(audio, ((0, 0), (0, 4 - audio.shape[1])))
        return np.ascontiguousarray(audio), float(loaded.sample_rate)

    def make_plugin(self, values: Mapping[str, Any]) -> pedalboard.Plugin:
        if self._ir is None:
            return pedalboard.Gain(gain_db=0.0)  # never called: process passes through
        return pedalboard.Convolution(self._ir, mix=values["mix"], sample_rate=self._ir_rate)

    def plugin_values(self, params: fxhost_sdk.Params) -> dict[str, Any]:
        return {} if self._ir is None else {"mix": params.mix}

    def process(self, block: np.ndarray) -> np.ndarray:
        if self._ir is None:
            block = np.asarray(block, dtype=np.float32)
            if block.ndim != 2 or block.shape[0] != self.channels:
                raise ValueError(f"expected a block shaped ({self.channels}, frames), got {block.shape}")
            return np.array(block, dtype=np.float32, order="C", copy=True)
        return super().process(block)

    @property
    def tail_seconds(self) -> float:
        if self._ir is None or self.params.mix == 0.0:
            return 0.0
        # After the input stops, the output is the rest of the impulse response.
        return self._ir.shape[1] / self._ir_rate
