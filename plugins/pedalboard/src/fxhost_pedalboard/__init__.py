"""fxhost effects backed by Spotify's pedalboard (JUCE DSP), starting with the reverb.

``PedalboardEffect`` makes a pedalboard plugin immune to block size; each effect
subclasses it, names the pedalboard class and declares its parameters.
"""

import fxhost_sdk

from fxhost_pedalboard.base import PedalboardEffect
from fxhost_pedalboard.reverb import Reverb

__all__ = ["PedalboardEffect", "Reverb", "fxhost_effects"]


@fxhost_sdk.hookimpl
def fxhost_effects() -> list[type[fxhost_sdk.Effect]]:
    return [Reverb]
