"""The SDK's conformance validator on the first-party effects, and on a naive pedalboard
wrapper that it must catch."""

from __future__ import annotations

from typing import Annotated

import fxhost_sdk
import numpy as np
import pedalboard
import pytest
from fxhost_feedback_delay import FeedbackDelay
from fxhost_pedalboard import PedalboardEffect, Reverb
from fxhost_sdk import param

testing = pytest.importorskip("fxhost_sdk.testing")


def test_reverb_defaults():
    testing.validate_effect(Reverb)


def test_reverb_other_params():
    testing.validate_effect(
        Reverb,
        params={
            "room_size": 0.9,
            "damping": 0.1,
            "wet_level": 0.7,
            "dry_level": 0.2,
            "width": 0.3,
            "freeze_mode": 0.0,
        },
        sample_rate=44100,
    )


def test_frozen_reverb():
    testing.validate_effect(Reverb, params={"freeze_mode": 1.0})


def test_feedback_delay():
    testing.validate_effect(FeedbackDelay)
    testing.validate_effect(FeedbackDelay, params={"delay_seconds": 0.003, "feedback": 0.95})


class NaiveReverb(fxhost_sdk.Effect):
    """pedalboard.Reverb wrapped the obvious way: each block straight to ``process``.

    One mono plugin per channel, so that pedalboard never refuses an ambiguous (2, 1)
    block: the only thing missing is the immunity to block size.
    """

    name = "naive_reverb"
    version = "0"
    summary = "pedalboard.Reverb without the block-size immunity."
    Params = Reverb.Params
    tail_seconds = Reverb.tail_seconds

    def prepare(self) -> None:
        self._plugins = [pedalboard.Reverb() for _ in range(self.channels)]

    def apply_params(self, params: fxhost_sdk.Params) -> None:
        for plugin in self._plugins:
            for field in params.__struct_fields__:
                setattr(plugin, field, getattr(params, field))

    def process(self, block: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [
                plugin.process(block[c : c + 1], self.sample_rate, reset=False)
                for c, plugin in enumerate(self._plugins)
            ]
        )


def test_the_validator_catches_a_naive_pedalboard_wrapper():
    with pytest.raises(testing.ConformanceError, match=r"(?i)block") as error:
        testing.validate_effect(NaiveReverb)
    failed = {check.name for check in error.value.report.failures}
    assert failed == {"block_size_invariance"}


class FixedBlockChorus(PedalboardEffect):
    """The other immunity strategy (fixed internal blocks, latency) passes too."""

    name = "fixed_block_chorus"
    version = "0"
    summary = "pedalboard.Chorus through fixed-size internal blocks."
    plugin_class = pedalboard.Chorus
    silence_is_neutral = False

    class Params(fxhost_sdk.Params):
        rate_hz: Annotated[float, param(description="LFO rate", ge=0.0, le=20.0, unit="Hz")] = 1.0
        mix: Annotated[float, param(description="dry/wet", ge=0.0, le=1.0)] = 0.5


def test_fixed_block_strategy():
    report = testing.validate_effect(FixedBlockChorus)
    assert "stereo 256" in str(report)  # the latency it reports
