"""Filters: first-order high- and low-pass, shelves, peak, and the Moog-style ladder.

Ranges: pedalboard refuses a shelf or peak cutoff or Q of 0 or less, a ladder resonance
outside 0..1 and a ladder drive below 1. The first-order filters accept any cutoff, but
at or above Nyquist their coefficients blow up; like pedalboard's own shelves and peak,
these effects clamp the cutoff to ``sample_rate / 2 - 100`` Hz, which only matters at
sample rates below 40.2 kHz (the ranges end at 20 kHz). Shelf and peak gains are
limited to +-48 dB, Q to 100 and the ladder's drive to 100 (pedalboard has no limit).

Tails come from each filter's own impulse response ``h`` (rendered by pedalboard once
per setting): the output after any full-scale input stops is at most the sum of
``|h|`` from then on, so the tail is where that sum falls below -60 dBFS. The ladder
filter is not linear (``tanh`` saturation; near resonance 1 it sustains its own
oscillation for seconds): its tail is measured, with a full-scale impulse, step and tone
at the cutoff, and given a quarter more.
"""

import math
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

import fxhost_sdk
import numpy as np
import pedalboard
from fxhost_sdk import param

from fxhost_pedalboard.base import PedalboardEffect, param_above

MAX_FREQUENCY_HZ = 20000.0


def cutoff(description: str) -> Any:
    return param_above(0.0, description=description, le=MAX_FREQUENCY_HZ, unit="Hz", scale="log")


class _LinearFilter(PedalboardEffect):
    """A linear time-invariant pedalboard filter: tail from its impulse response."""

    @property
    def tail_seconds(self) -> float:
        return self.impulse_tail_seconds(self.plugin_values(self.params))


class _FirstOrder(_LinearFilter):
    def plugin_values(self, params: fxhost_sdk.Params) -> dict[str, Any]:
        values = super().plugin_values(params)
        # pedalboard's first-order filters do not clamp (their shelves and peak do).
        highest = self.sample_rate / 2 - 100.0
        values["cutoff_frequency_hz"] = min(values["cutoff_frequency_hz"], highest)
        return values


class HighpassFilter(_FirstOrder):
    """JUCE's first-order high-pass (6 dB/octave, -3 dB at the cutoff)."""

    name = "highpass_filter"
    version = "1.0.0"
    summary = "First-order high-pass filter, 6 dB/octave (JUCE, through pedalboard)."
    plugin_class = pedalboard.HighpassFilter

    class Params(fxhost_sdk.Params):
        cutoff_frequency_hz: Annotated[
            float, cutoff("Frequency attenuated by 3 dB; lower ones fall by 6 dB per octave.")
        ] = 50.0


class LowpassFilter(_FirstOrder):
    """JUCE's first-order low-pass (6 dB/octave, -3 dB at the cutoff)."""

    name = "lowpass_filter"
    version = "1.0.0"
    summary = "First-order low-pass filter, 6 dB/octave (JUCE, through pedalboard)."
    plugin_class = pedalboard.LowpassFilter

    class Params(fxhost_sdk.Params):
        cutoff_frequency_hz: Annotated[
            float, cutoff("Frequency attenuated by 3 dB; higher ones fall by 6 dB per octave.")
        ] = 50.0


def _eq_params(what: str, name: str) -> type[fxhost_sdk.Params]:
    # (No `from __future__ import annotations` in this module: these annotations are
    # evaluated here, where `what` is in scope.)
    class Params(fxhost_sdk.Params):
        cutoff_frequency_hz: Annotated[float, cutoff(f"{what} frequency.")] = 440.0
        gain_db: Annotated[
            float,
            param(
                description="Boost (positive) or cut (negative) applied by the filter.",
                ge=-48.0,
                le=48.0,
                unit="dB",
            ),
        ] = 0.0
        # Pedalboard refuses 0, and a Q near float32's least value (1.4e-45) turns the
        # biquad's output to NaN; 0.01 is an octave-wide bell's hundredth, broader than any EQ.
        q: Annotated[
            float,
            param(
                description="Quality factor: higher is narrower (steeper); 1/sqrt(2) is the flattest shelf.",
                ge=0.01,
                le=100.0,
                scale="log",
            ),
        ] = math.sqrt(0.5)

    # Named as the module-level name it is bound to: pickle finds a class by its
    # qualified name, and renders send parameters to worker processes pickled.
    Params.__qualname__ = name
    return Params


HighShelfParams = _eq_params("Shelf (half-gain)", "HighShelfParams")
LowShelfParams = _eq_params("Shelf (half-gain)", "LowShelfParams")
PeakParams = _eq_params("Centre", "PeakParams")


class HighShelfFilter(_LinearFilter):
    """JUCE's (RBJ cookbook) high-shelf biquad."""

    name = "high_shelf_filter"
    version = "1.0.0"
    summary = "High-shelf EQ: boosts or cuts above the cutoff (JUCE biquad, through pedalboard)."
    plugin_class = pedalboard.HighShelfFilter
    Params = HighShelfParams


class LowShelfFilter(_LinearFilter):
    """JUCE's (RBJ cookbook) low-shelf biquad."""

    name = "low_shelf_filter"
    version = "1.0.0"
    summary = "Low-shelf EQ: boosts or cuts below the cutoff (JUCE biquad, through pedalboard)."
    plugin_class = pedalboard.LowShelfFilter
    Params = LowShelfParams


class PeakFilter(_LinearFilter):
    """JUCE's (RBJ cookbook) peaking biquad; a deep cut with a high Q is a notch."""

    name = "peak_filter"
    version = "1.0.0"
    summary = "Peaking EQ: boosts or cuts around a frequency (JUCE biquad, through pedalboard)."
    plugin_class = pedalboard.PeakFilter
    Params = PeakParams


LadderMode = Literal["LPF12", "HPF12", "BPF12", "LPF24", "HPF24", "BPF24"]


class LadderFilter(PedalboardEffect):
    """JUCE's ``dsp::LadderFilter``: a Moog-style 4-pole transistor ladder with ``tanh``
    saturation, in 12 or 24 dB/octave low-, high- or band-pass mode. Cutoff and resonance
    changes are smoothed by JUCE."""

    name = "ladder_filter"
    version = "1.0.0"
    summary = "Moog-style resonant ladder filter, 12/24 dB low/high/band-pass (JUCE, through pedalboard)."
    plugin_class = pedalboard.LadderFilter
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "acid": {"mode": "LPF24", "cutoff_hz": 600.0, "resonance": 0.8, "drive": 3.0},
        "warm": {"mode": "LPF12", "cutoff_hz": 3000.0, "resonance": 0.1, "drive": 1.5},
        "telephone": {"mode": "BPF12", "cutoff_hz": 1500.0, "resonance": 0.3, "drive": 1.0},
        "thin": {"mode": "HPF24", "cutoff_hz": 400.0, "resonance": 0.2, "drive": 1.0},
    }

    class Params(fxhost_sdk.Params):
        mode: Annotated[
            LadderMode,
            param(description="Low-pass (LPF), high-pass (HPF) or band-pass (BPF), 12 or 24 dB per octave."),
        ] = "LPF12"
        cutoff_hz: Annotated[float, cutoff("Cutoff (or centre) frequency.")] = 200.0
        resonance: Annotated[
            float,
            param(
                description="Emphasis around the cutoff; near 1 the filter rings.",
                ge=0.0,
                le=1.0,
                unit="ratio",
            ),
        ] = 0.0
        drive: Annotated[
            float,
            param(
                description="Gain into the saturating ladder: above 1 it distorts.",
                ge=1.0,
                le=100.0,
                unit="ratio",
                scale="log",
            ),
        ] = 1.0

    def plugin_values(self, params: fxhost_sdk.Params) -> dict[str, Any]:
        values = super().plugin_values(params)
        values["mode"] = pedalboard.LadderFilter.Mode.__members__[params.mode]
        return values

    @property
    def tail_seconds(self) -> float:
        # Nonlinear (near resonance 1 it rings on its own, for seconds): measured with a
        # full-scale impulse, step and tone at the cutoff, plus a quarter.
        rate = self.sample_rate
        t = np.arange(round(0.5 * rate)) / rate
        tone = min(self.params.cutoff_hz, 0.45 * rate)
        probes = {
            "impulse": np.eye(1, 64, dtype=np.float32)[0],
            "step": np.ones(round(0.5 * rate), dtype=np.float32),
            "tone": np.sin(2 * np.pi * tone * t).astype(np.float32),
        }
        return self.probed_tail_seconds(self.plugin_values(self.params), probes)
