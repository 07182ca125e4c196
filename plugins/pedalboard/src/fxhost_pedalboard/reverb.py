"""The reverb: JUCE's Freeverb (through ``pedalboard.Reverb``) and its tail, derived.

JUCE's ``juce::Reverb`` is Jezar's Freeverb. Per channel, the input, scaled by 0.015
(the sum L+R in stereo), feeds 8 parallel lowpass-feedback comb filters whose summed
output goes through 4 series "allpass" filters (feedback 0.5). Output L is
``wet1 * outL + wet2 * outR + dry * inL`` with ``wet1 = 1.5 * wet_level * (1 + width)``,
``wet2 = 1.5 * wet_level * (1 - width)``, ``dry = 2 * dry_level``. The comb feedback is
``room_size * 0.28 + 0.7``; damping is a one-pole lowpass in the comb loop with unit gain
at DC. Delay lengths are given in samples at 44.1 kHz and scaled to the sample rate;
the right channel's are 23 samples longer. ``freeze_mode >= 0.5`` sets the feedback to
1 and the input gain to 0: the sound sustains for ever.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

import fxhost_sdk
import pedalboard
from fxhost_sdk import param

from fxhost_pedalboard.base import PedalboardEffect

COMB_TUNINGS = (1116, 1188, 1277, 1356, 1422, 1491, 1557, 1617)  # samples at 44.1 kHz
ALLPASS_TUNINGS = (556, 441, 341, 225)
STEREO_SPREAD = 23
INPUT_GAIN = 0.015
WET_SCALE = 3.0
#: -60 dBFS: the level below which the tail counts as ended.
TAIL_THRESHOLD = 1e-3


def freeverb_tail_seconds(
    sample_rate: float,
    channels: int,
    room_size: float,
    wet_level: float,
    width: float,
    freeze_mode: float,
    threshold: float = TAIL_THRESHOLD,
) -> float:
    """Seconds after the input stops until the wet output of any full-scale input
    (|x| <= 1 on every channel) has fallen below ``threshold``.

    The bound, from the Freeverb structure (see the module docstring):

    1. A comb's impulse response is non-negative with sum ``1 / (1 - fb)`` (damping
       is a lowpass with unit gain at DC), so when the input stops each comb holds at
       most ``g_in / (1 - fb)``, ``g_in = 0.015 * (input channels summed)``.
    2. After that every comb mode decays by at least ``fb`` per loop of the longest
       comb ``L``: per sample by ``r = fb ** (1 / L)``. The slowest decay is at DC,
       where damping does not help, so damping is taken as 0 (the worst case).
    3. A Freeverb allpass ``(1.5 w - 1) / (1 - 0.5 w)``, ``w = z ** -D``, amplifies a mode
       decaying at rate ``r`` by at most ``(1.5 g + 1) / (1 + 0.5 g)`` with
       ``g = r ** -D`` (5/3 for a steady tone; the four give about 7.7).
    4. The output gain is ``|wet1| + |wet2| = 3 * wet_level`` in stereo,
       ``1.5 * wet_level * (1 + width)`` in mono.

    So the output is at most ``A * r ** n`` with ``A = out * 8 * g_in / (1 - fb) * G_ap``,
    and the tail is ``n = ln(A / threshold) / ln(1 / r)`` samples.
    """
    if freeze_mode >= 0.5:
        return math.inf
    stereo = channels >= 2
    wet = WET_SCALE * wet_level
    out_gain = wet if stereo else 0.5 * wet * (1.0 + width)
    in_gain = INPUT_GAIN * (2 if stereo else 1)
    feedback = room_size * 0.28 + 0.7
    spread = STEREO_SPREAD if stereo else 0
    # JUCE: size = int(sample_rate) * tuning / 44100, in integer arithmetic.
    rate = int(sample_rate)
    longest = max((rate * (t + spread)) // 44100 for t in COMB_TUNINGS)
    per_sample = feedback ** (1.0 / longest)
    allpass_gain = 1.0
    for tuning in ALLPASS_TUNINGS:
        g = per_sample ** -((rate * (tuning + spread)) // 44100)
        allpass_gain *= (1.5 * g + 1.0) / (1.0 + 0.5 * g)
    peak = out_gain * len(COMB_TUNINGS) * in_gain / (1.0 - feedback) * allpass_gain
    if peak <= threshold:
        return 0.0
    frames = math.log(peak / threshold) / -math.log(per_sample)
    return frames / sample_rate


class Reverb(PedalboardEffect):
    """Algorithmic room reverb: JUCE's Freeverb through ``pedalboard.Reverb``."""

    name = "reverb"
    version = "1.0.0"
    summary = "Algorithmic room reverb (Freeverb, as in JUCE and pedalboard)."
    plugin_class = pedalboard.Reverb
    silence_is_neutral = True  # no LFO: silence leaves Freeverb at rest
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "small-room": {"room_size": 0.3, "damping": 0.6, "wet_level": 0.2, "dry_level": 0.45, "width": 0.7},
        "plate": {"room_size": 0.6, "damping": 0.15, "wet_level": 0.3, "dry_level": 0.45, "width": 1.0},
        "hall": {"room_size": 0.85, "damping": 0.4, "wet_level": 0.33, "dry_level": 0.4, "width": 1.0},
        "cathedral": {"room_size": 0.97, "damping": 0.3, "wet_level": 0.45, "dry_level": 0.3, "width": 1.0},
    }

    class Params(fxhost_sdk.Params):
        room_size: Annotated[
            float,
            param(
                description="Size of the simulated room: comb feedback 0.7 (0) to 0.98 (1); "
                "larger rooms ring longer.",
                ge=0.0,
                le=1.0,
            ),
        ] = 0.5
        damping: Annotated[
            float,
            param(
                description="High-frequency absorption in the reverb loop: 0 bright, "
                "1 dark; the low end decays the same.",
                ge=0.0,
                le=1.0,
            ),
        ] = 0.5
        wet_level: Annotated[
            float,
            param(
                description="Linear gain of the reverberated signal.",
                ge=0.0,
                le=1.0,
                unit="ratio",
            ),
        ] = 0.33
        dry_level: Annotated[
            float,
            param(
                description="Linear gain of the unprocessed signal; 0.5 passes it at unity "
                "gain (JUCE scales it by 2).",
                ge=0.0,
                le=1.0,
                unit="ratio",
            ),
        ] = 0.4
        width: Annotated[
            float,
            param(
                description="Stereo width of the reverberation: 0 mono, 1 widest.",
                ge=0.0,
                le=1.0,
            ),
        ] = 1.0
        freeze_mode: Annotated[
            float,
            param(
                description="At 0.5 or above the reverb holds its current sound for ever "
                "and ignores new input (infinite tail).",
                ge=0.0,
                le=1.0,
            ),
        ] = 0.0

    @property
    def tail_seconds(self) -> float:
        p = self.params
        return freeverb_tail_seconds(
            self.sample_rate,
            self.channels,
            room_size=p.room_size,
            wet_level=p.wet_level,
            width=p.width,
            freeze_mode=p.freeze_mode,
        )
