"""Gain and waveshaping: gain, polarity, hard clipping, tanh distortion, bit crushing.

All five are memoryless (each output sample depends on the input sample alone), so they
have no latency and no tail. Ranges: pedalboard refuses a bit depth outside 0..32 and
accepts any gain, drive or threshold; here gain lies within -100..+24 dB, the clipping
threshold within -100..0 dBFS and the drive within 0..60 dB (x1000, past which tanh is
a square wave anyway).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

import fxhost_sdk
import pedalboard
from fxhost_sdk import param

from fxhost_pedalboard.base import PedalboardEffect


class Gain(PedalboardEffect):
    """JUCE's ``dsp::Gain``: multiplies by ``10 ** (gain_db / 20)``."""

    name = "gain"
    version = "1.0.0"
    summary = "Volume change in decibels (JUCE, through pedalboard)."
    plugin_class = pedalboard.Gain

    class Params(fxhost_sdk.Params):
        gain_db: Annotated[
            float,
            param(
                description="Gain applied to the signal; negative attenuates.", ge=-100.0, le=24.0, unit="dB"
            ),
        ] = 1.0


class Invert(PedalboardEffect):
    """``pedalboard.Invert``: ``-x``. Inaudible alone; cancels a signal when mixed with it."""

    name = "invert"
    version = "1.0.0"
    summary = "Flips the polarity of the signal (pedalboard)."
    plugin_class = pedalboard.Invert


class Clipping(PedalboardEffect):
    """``pedalboard.Clipping``: hard clip at +-``10 ** (threshold_db / 20)``."""

    name = "clipping"
    version = "1.0.0"
    summary = "Hard clipping at a threshold (pedalboard)."
    plugin_class = pedalboard.Clipping

    class Params(fxhost_sdk.Params):
        threshold_db: Annotated[
            float,
            param(description="Level at which the signal is clipped.", ge=-100.0, le=0.0, unit="dB"),
        ] = -6.0


class Distortion(PedalboardEffect):
    """``pedalboard.Distortion``: ``tanh(x * 10 ** (drive_db / 20))``."""

    name = "distortion"
    version = "1.0.0"
    summary = "tanh waveshaping distortion with a drive gain (JUCE, through pedalboard)."
    plugin_class = pedalboard.Distortion
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "warm": {"drive_db": 6.0},
        "crunch": {"drive_db": 18.0},
        "fuzz": {"drive_db": 40.0},
    }

    class Params(fxhost_sdk.Params):
        drive_db: Annotated[
            float,
            param(
                description="Gain before the tanh: more drive, more distortion (and level).",
                ge=0.0,
                le=60.0,
                unit="dB",
            ),
        ] = 25.0


class Bitcrush(PedalboardEffect):
    """``pedalboard.Bitcrush``: rounds each sample to a multiple of ``2 ** -bit_depth``
    (fractional depths allowed)."""

    name = "bitcrush"
    version = "1.0.0"
    summary = "Reduces the bit depth for a lo-fi, digitised sound (pedalboard)."
    plugin_class = pedalboard.Bitcrush
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "12-bit": {"bit_depth": 12.0},
        "8-bit": {"bit_depth": 8.0},
        "4-bit": {"bit_depth": 4.0},
    }

    class Params(fxhost_sdk.Params):
        bit_depth: Annotated[
            float,
            param(description="Bits of resolution kept; fewer is cruder.", ge=0.0, le=32.0, unit="bits"),
        ] = 8.0
