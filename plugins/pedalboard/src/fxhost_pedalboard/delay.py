"""The delay: pedalboard's digital echo with feedback."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

import fxhost_sdk
import pedalboard
from fxhost_sdk import param

from fxhost_pedalboard.base import PedalboardEffect, feedback_tail_seconds


class Delay(PedalboardEffect):
    """``pedalboard.Delay``: a delay line of ``int(delay_seconds * sample_rate)`` frames
    (no interpolation) whose output is fed back with gain ``feedback``; the output is
    ``(1 - mix) * dry + mix * delayed``. pedalboard refuses a delay outside 0..30 s and a
    feedback or mix outside 0..1. Silence leaves it at rest, so it is primed: no latency,
    and exact for any block pattern. A delay of 0 passes the input through unchanged."""

    name = "delay"
    version = "1.0.0"
    summary = "Digital echo with feedback and dry/wet mix (JUCE delay line, through pedalboard)."
    plugin_class = pedalboard.Delay
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "slapback": {"delay_seconds": 0.09, "feedback": 0.0, "mix": 0.3},
        "eighth": {"delay_seconds": 0.25, "feedback": 0.35, "mix": 0.35},  # an eighth note at 120 bpm
        "quarter": {"delay_seconds": 0.5, "feedback": 0.4, "mix": 0.35},  # a quarter note at 120 bpm
        "ambient": {"delay_seconds": 0.75, "feedback": 0.65, "mix": 0.4},
    }

    class Params(fxhost_sdk.Params):
        delay_seconds: Annotated[
            float,
            param(description="Time between echoes.", ge=0.0, le=30.0, unit="s", scale="log"),
        ] = 0.5
        feedback: Annotated[
            float,
            param(
                description="Proportion of each echo fed back for the next; 1 repeats for ever.",
                ge=0.0,
                le=1.0,
                unit="ratio",
            ),
        ] = 0.0
        mix: Annotated[
            float,
            param(description="Proportion of the delayed (wet) signal.", ge=0.0, le=1.0, unit="ratio"),
        ] = 0.5

    @property
    def tail_seconds(self) -> float:
        p = self.params
        frames = int(p.delay_seconds * self.sample_rate)
        if frames == 0:
            return 0.0
        return feedback_tail_seconds((frames + 1) / self.sample_rate, p.feedback, gain=p.mix)
