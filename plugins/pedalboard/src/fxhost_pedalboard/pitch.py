"""Pitch shifting with Rubber Band (through pedalboard)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

import fxhost_sdk
import pedalboard
from fxhost_sdk import param

from fxhost_pedalboard.base import PedalboardEffect


class PitchShift(PedalboardEffect):
    """``pedalboard.PitchShift``: Rubber Band's real-time stretcher shifts the pitch, keeping
    the duration. At 0 semitones it passes the audio through (within 1e-6).

    **Not exact.** pedalboard cannot stream this plugin: it primes Rubber Band through a
    one-second delay line that is cleared on every ``process`` call, so each call loses the
    last second given to it. So the effect cuts the stream into segments of 0.25 s, runs
    each (with the 0.05 s before it) through one whole pedalboard call, and crossfades
    consecutive segments over those 0.05 s. The output is exactly that (for any block
    pattern), delayed by :attr:`latency` = 0.3 s; but each segment starts Rubber Band
    afresh, so it is not the output of one whole-signal call. The difference is of the
    size Rubber Band itself shows when the same signal merely starts 0.1 s later (relative
    STFT-magnitude distance 0.25 vs 0.20 on a voice-like signal, +5 semitones; the shift
    itself changes the spectrum by 1.1): a phase vocoder's output depends on where its
    frames fall, and its phases on where it started. ``semitones`` changes apply from the
    next segment. Each segment costs Rubber Band a second of priming silence (pedalboard's
    own): about 0.15 s of one core per second of stereo 48 kHz audio, three times
    a whole-signal call. Far shifts are slow in Rubber Band itself: at +-72 semitones
    one whole-signal call takes 2.7 s per second of stereo audio (this effect 5.9 s),
    slower than real time.
    """

    name = "pitch_shift"
    version = "1.0.0"
    summary = "Pitch shift without changing duration (Rubber Band, through pedalboard)."
    plugin_class = pedalboard.PitchShift
    segment_seconds = 0.25
    crossfade_seconds = 0.05
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "octave-up": {"semitones": 12.0},
        "octave-down": {"semitones": -12.0},
        "fifth-up": {"semitones": 7.0},
    }

    class Params(fxhost_sdk.Params):
        semitones: Annotated[
            float,
            param(
                description="Pitch change; 12 is an octave up, -12 an octave down.",
                ge=-72.0,
                le=72.0,
                unit="semitones",
            ),
        ] = 0.0

    @property
    def tail_seconds(self) -> float:
        # Rubber Band's analysis window smears the last frames past the input's end.
        return 0.1
