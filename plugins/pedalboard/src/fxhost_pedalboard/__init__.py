"""fxhost effects backed by Spotify's pedalboard (JUCE DSP): every effect pedalboard ships.

``PedalboardEffect`` makes a pedalboard plugin immune to block size; each effect
subclasses it, names the pedalboard class and declares its parameters (see ``base``).
"""

import fxhost_sdk

from fxhost_pedalboard.base import PedalboardEffect
from fxhost_pedalboard.convolution import Convolution
from fxhost_pedalboard.delay import Delay
from fxhost_pedalboard.distortion import Bitcrush, Clipping, Distortion, Gain, Invert
from fxhost_pedalboard.dynamics import BrickwallLimiter, Compressor, Limiter, NoiseGate
from fxhost_pedalboard.filters import (
    HighpassFilter,
    HighShelfFilter,
    LadderFilter,
    LowpassFilter,
    LowShelfFilter,
    PeakFilter,
)
from fxhost_pedalboard.lofi import GSMFullRateCompressor, MP3Compressor, Resample
from fxhost_pedalboard.modulation import Chorus, Phaser
from fxhost_pedalboard.pitch import PitchShift
from fxhost_pedalboard.reverb import Reverb

#: Every effect of this plugin, in the order ``fxhost_effects`` registers them.
EFFECTS: tuple[type[PedalboardEffect], ...] = (
    Reverb,
    Bitcrush,
    BrickwallLimiter,
    Chorus,
    Clipping,
    Compressor,
    Convolution,
    Delay,
    Distortion,
    Gain,
    GSMFullRateCompressor,
    HighShelfFilter,
    HighpassFilter,
    Invert,
    LadderFilter,
    Limiter,
    LowShelfFilter,
    LowpassFilter,
    MP3Compressor,
    NoiseGate,
    PeakFilter,
    Phaser,
    PitchShift,
    Resample,
)

__all__ = [
    "EFFECTS",
    "Bitcrush",
    "BrickwallLimiter",
    "Chorus",
    "Clipping",
    "Compressor",
    "Convolution",
    "Delay",
    "Distortion",
    "GSMFullRateCompressor",
    "Gain",
    "HighShelfFilter",
    "HighpassFilter",
    "Invert",
    "LadderFilter",
    "Limiter",
    "LowShelfFilter",
    "LowpassFilter",
    "MP3Compressor",
    "NoiseGate",
    "PeakFilter",
    "PedalboardEffect",
    "Phaser",
    "PitchShift",
    "Resample",
    "Reverb",
    "fxhost_effects",
]


@fxhost_sdk.hookimpl
def fxhost_effects() -> list[type[fxhost_sdk.Effect]]:
    return list(EFFECTS)
