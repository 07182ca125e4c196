"""Dynamics: compressor, limiter, brick-wall limiter, noise gate (JUCE, through pedalboard).

Ranges: pedalboard refuses a compressor or gate ``ratio`` below 1 (JUCE asserts it too),
a brick-wall ``release_ms`` of 0 or less and a ``lookahead_ms`` outside (0, 100]. Levels
and times it accepts without limit; here a threshold or ceiling lies between -100 dBFS
(below 16-bit noise; JUCE floors its dB conversions at -200) and 0 dBFS, an attack
between 0 (instant: JUCE's ballistics filter treats anything under 1 µs as 0) and 1 s,
a release up to 10 s, a ratio up to 100:1 (a limiter for every practical purpose).

None of them rings: the output is the input times a gain, so it stops when the input
does (the brick-wall limiter's lookahead is its latency, not a tail).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

import fxhost_sdk
import pedalboard
from fxhost_sdk import param

from fxhost_pedalboard.base import PedalboardEffect, param_above

LEVEL_DB = {"ge": -100.0, "le": 0.0, "unit": "dB"}


class Compressor(PedalboardEffect):
    """JUCE's ``dsp::Compressor``: a peak ballistics filter drives the gain above the
    threshold (``(level / threshold) ** (1 / ratio - 1)``), with no knee and no make-up
    gain."""

    name = "compressor"
    version = "1.0.0"
    summary = "Dynamic range compressor: reduces the level above a threshold (JUCE, through pedalboard)."
    plugin_class = pedalboard.Compressor
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "gentle": {"threshold_db": -18.0, "ratio": 2.0, "attack_ms": 20.0, "release_ms": 250.0},
        "vocal": {"threshold_db": -20.0, "ratio": 4.0, "attack_ms": 5.0, "release_ms": 120.0},
        "limiter-ish": {"threshold_db": -6.0, "ratio": 20.0, "attack_ms": 0.5, "release_ms": 80.0},
    }

    class Params(fxhost_sdk.Params):
        threshold_db: Annotated[
            float, param(description="Level above which the gain is reduced.", **LEVEL_DB)
        ] = 0.0
        ratio: Annotated[
            float,
            param(
                description="Input level change (dB) per output level change above the "
                "threshold; 1 leaves the signal as it is.",
                ge=1.0,
                le=100.0,
                unit=":1",
                scale="log",
            ),
        ] = 1.0
        attack_ms: Annotated[
            float,
            param(
                description="Time for the level detector to follow a rise.",
                ge=0.0,
                le=1000.0,
                unit="ms",
                scale="log",
            ),
        ] = 1.0
        release_ms: Annotated[
            float,
            param(
                description="Time for the level detector to follow a fall.",
                ge=0.0,
                le=10000.0,
                unit="ms",
                scale="log",
            ),
        ] = 100.0


class Limiter(PedalboardEffect):
    """JUCE's ``dsp::Limiter``: a fixed first compressor (-10 dB, 4:1, 2 ms / 200 ms), a
    second one at the threshold (1000:1, release ``release_ms``), make-up gain of
    ``-threshold_db`` (+1.9 dB) and a hard clip at 0 dBFS. It makes a signal louder; for a
    ceiling without make-up gain use ``brickwall_limiter``."""

    name = "limiter"
    version = "1.0.0"
    summary = "Loudness-maximising limiter with automatic make-up gain (JUCE, through pedalboard)."
    plugin_class = pedalboard.Limiter

    class Params(fxhost_sdk.Params):
        threshold_db: Annotated[
            float,
            param(
                description="Level at which limiting engages; make-up gain raises it to 0 dBFS.",
                **LEVEL_DB,
            ),
        ] = -10.0
        release_ms: Annotated[
            float,
            param(
                description="Time for the gain to recover after a peak.",
                ge=0.0,
                le=10000.0,
                unit="ms",
                scale="log",
            ),
        ] = 100.0


class BrickwallLimiter(PedalboardEffect):
    """pedalboard's look-ahead brick-wall limiter: instant attack on the peaks it sees
    ``lookahead_ms`` ahead, hold, exponential release, no make-up gain, output clipped at
    the ceiling.

    The lookahead is a latency: the plugin holds that much audio back, so the output is
    pedalboard's (latency-compensated) whole-signal output delayed by :attr:`latency`
    frames (``int(sample_rate * lookahead_ms / 1000)``, plus the oversampler's delay with
    ``true_peak``). pedalboard reads ``lookahead_ms`` and ``true_peak`` only when it
    prepares the plugin, so changing either restarts the effect (and changes its latency).
    """

    name = "brickwall_limiter"
    version = "1.0.0"
    summary = "Look-ahead brick-wall limiter: a hard output ceiling, no make-up gain (pedalboard)."
    plugin_class = pedalboard.BrickwallLimiter
    holds_back_audio = True
    restart_fields = ("lookahead_ms", "true_peak")
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "mastering": {"ceiling_db": -1.0, "release_ms": 150.0, "lookahead_ms": 5.0, "true_peak": True},
        "broadcast": {"ceiling_db": -2.0, "release_ms": 100.0, "lookahead_ms": 3.0, "true_peak": True},
    }

    class Params(fxhost_sdk.Params):
        ceiling_db: Annotated[
            float, param(description="Highest output level (sample peak).", **LEVEL_DB)
        ] = -1.0
        release_ms: Annotated[
            float,
            param_above(
                0.0,
                description="Time constant of the gain's recovery after a peak.",
                le=10000.0,
                unit="ms",
                scale="log",
            ),
        ] = 100.0
        lookahead_ms: Annotated[
            float,
            param_above(
                0.0,
                description="How far ahead peaks are seen (and the latency); takes effect "
                "by restarting the limiter.",
                le=100.0,
                unit="ms",
                scale="log",
            ),
        ] = 5.0
        true_peak: Annotated[
            bool,
            param(
                description="Detect inter-sample peaks with 4x oversampling (a few frames "
                "more latency); takes effect by restarting the limiter."
            ),
        ] = False


class NoiseGate(PedalboardEffect):
    """JUCE's ``dsp::NoiseGate``: an RMS detector (50 ms release) drives a downward
    expander below the threshold; a low ratio makes it a gentle expander."""

    name = "noise_gate"
    version = "1.0.0"
    summary = "Noise gate / downward expander below a threshold (JUCE, through pedalboard)."
    plugin_class = pedalboard.NoiseGate
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "gentle": {"threshold_db": -50.0, "ratio": 2.0, "attack_ms": 5.0, "release_ms": 200.0},
        "tight": {"threshold_db": -40.0, "ratio": 20.0, "attack_ms": 0.5, "release_ms": 50.0},
    }

    class Params(fxhost_sdk.Params):
        threshold_db: Annotated[
            float, param(description="Level below which the signal is attenuated.", **LEVEL_DB)
        ] = -100.0
        ratio: Annotated[
            float,
            param(
                description="Expansion ratio below the threshold; 1 leaves the signal as it is.",
                ge=1.0,
                le=100.0,
                unit=":1",
                scale="log",
            ),
        ] = 10.0
        attack_ms: Annotated[
            float,
            param(
                description="Time for the gate to open on a rise.",
                ge=0.0,
                le=1000.0,
                unit="ms",
                scale="log",
            ),
        ] = 1.0
        release_ms: Annotated[
            float,
            param(
                description="Time for the gate to close on a fall.",
                ge=0.0,
                le=10000.0,
                unit="ms",
                scale="log",
            ),
        ] = 100.0
