"""Modulation: chorus and phaser (JUCE, through pedalboard).

Both have a free-running LFO, which silence would advance, so they cannot be primed:
they run on fixed internal blocks of 256 frames (the ``fixed`` strategy), and their
output is pedalboard's whole-signal output delayed by exactly 256 frames, whatever the
block sizes. A parameter change applies from the next internal block.

Ranges are JUCE's (``jassert`` in ``dsp::Chorus`` and ``dsp::Phaser``): rates 0..100 Hz
(pedalboard refuses a chorus rate outside it), depth and mix 0..1, feedback -1..1, chorus
centre delay 1..100 ms (JUCE clamps to it), phaser centre frequency 20 Hz..20 kHz (the
span JUCE maps the LFO onto; it also stops at ``0.49 * sample_rate``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

import fxhost_sdk
import pedalboard
from fxhost_sdk import param

from fxhost_pedalboard.base import PedalboardEffect, feedback_tail_seconds

#: JUCE's chorus swings its delay by up to +-10 ms at depth 1 (20 ms x depth / 2).
CHORUS_MODULATION_MS = 10.0


def rate(description: str) -> object:
    return param(description=description, ge=0.0, le=100.0, unit="Hz", scale="log")


def unit_interval(description: str, lower: float = 0.0) -> object:
    return param(description=description, ge=lower, le=1.0, unit="ratio")


class Chorus(PedalboardEffect):
    """JUCE's ``dsp::Chorus``: the input through a delay line whose delay an LFO sweeps
    around ``centre_delay_ms``, fed back and mixed with the dry signal. Short delays with
    feedback make it a flanger; ``mix`` 1 makes it a vibrato."""

    name = "chorus"
    version = "1.0.0"
    summary = "Chorus / flanger / vibrato: an LFO-swept delay (JUCE, through pedalboard)."
    plugin_class = pedalboard.Chorus
    silence_is_neutral = False  # the LFO runs in silence
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "subtle": {"rate_hz": 0.8, "depth": 0.15, "centre_delay_ms": 7.0, "feedback": 0.0, "mix": 0.35},
        "lush": {"rate_hz": 0.5, "depth": 0.4, "centre_delay_ms": 8.0, "feedback": 0.1, "mix": 0.5},
        "flanger": {"rate_hz": 0.25, "depth": 0.6, "centre_delay_ms": 2.0, "feedback": 0.7, "mix": 0.5},
        "vibrato": {"rate_hz": 5.0, "depth": 0.2, "centre_delay_ms": 5.0, "feedback": 0.0, "mix": 1.0},
    }

    class Params(fxhost_sdk.Params):
        rate_hz: Annotated[float, rate("Speed of the LFO sweeping the delay.")] = 1.0
        depth: Annotated[float, unit_interval("How far the LFO sweeps the delay (+-10 ms at 1).")] = 0.25
        centre_delay_ms: Annotated[
            float,
            param(
                description="Delay around which the LFO sweeps; about 7 ms for chorus, 1-3 ms for flanging.",
                ge=1.0,
                le=100.0,
                unit="ms",
                scale="log",
            ),
        ] = 7.0
        feedback: Annotated[
            float, unit_interval("Delayed signal fed back into the delay line.", lower=-1.0)
        ] = 0.0
        mix: Annotated[float, unit_interval("Proportion of the delayed (wet) signal.")] = 0.5

    @property
    def tail_seconds(self) -> float:
        p = self.params
        loop = (p.centre_delay_ms + CHORUS_MODULATION_MS) / 1000.0
        return feedback_tail_seconds(loop, p.feedback, gain=p.mix)


class Phaser(PedalboardEffect):
    """JUCE's ``dsp::Phaser``: six first-order all-pass filters whose cutoff an LFO sweeps
    (logarithmically, between 20 Hz and 20 kHz) around ``centre_frequency_hz``, with
    feedback, mixed with the dry signal: moving notches."""

    name = "phaser"
    version = "1.0.0"
    summary = "Phaser: six LFO-swept all-pass stages with feedback (JUCE, through pedalboard)."
    plugin_class = pedalboard.Phaser
    silence_is_neutral = False  # the LFO runs in silence
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "slow": {"rate_hz": 0.2, "depth": 0.6, "centre_frequency_hz": 1000.0, "feedback": 0.3, "mix": 0.5},
        "fast": {"rate_hz": 3.0, "depth": 0.5, "centre_frequency_hz": 1300.0, "feedback": 0.0, "mix": 0.5},
        "deep": {"rate_hz": 0.5, "depth": 1.0, "centre_frequency_hz": 800.0, "feedback": 0.7, "mix": 0.5},
    }

    class Params(fxhost_sdk.Params):
        rate_hz: Annotated[float, rate("Speed of the LFO sweeping the all-pass cutoff.")] = 1.0
        depth: Annotated[float, unit_interval("How far the LFO sweeps (over the 20 Hz-20 kHz span).")] = 0.5
        centre_frequency_hz: Annotated[
            float,
            param(
                description="All-pass cutoff around which the LFO sweeps.",
                ge=20.0,
                le=20000.0,
                unit="Hz",
                scale="log",
            ),
        ] = 1300.0
        feedback: Annotated[float, unit_interval("All-pass output fed back to their input.", lower=-1.0)] = (
            0.0
        )
        mix: Annotated[float, unit_interval("Proportion of the phased (wet) signal.")] = 0.5

    @property
    def tail_seconds(self) -> float:
        p = self.params
        if abs(p.feedback) >= 1.0 and p.mix > 0.0:
            return math.inf
        # The slowest ringing is at the lowest cutoff the LFO reaches: measure the
        # impulse response of the phaser held there (LFO stopped).
        top = min(20000.0, 0.49 * self.sample_rate)
        span = math.log10(top / 20.0)
        centre = min(max(math.log10(max(p.centre_frequency_hz, 1e-9) / 20.0) / span, 0.0), 1.0)
        lowest = 20.0 * (top / 20.0) ** max(0.0, centre - p.depth / 2.0)
        values = self.plugin_values(p)
        values.update(rate_hz=0.0, depth=0.0, centre_frequency_hz=lowest)
        return self.impulse_tail_seconds(values)
