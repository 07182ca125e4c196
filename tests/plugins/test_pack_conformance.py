"""fxhost-pedalboard: the SDK's conformance validator on every effect, with its defaults
and with another parameter set (at the other sample rate)."""

from __future__ import annotations

import inspect

import pytest
from fxhost_pedalboard import EFFECTS
from fxhost_sdk.testing import validate_effect
from test_pack import OTHER, load_asset

#: About half a second of test signal (0.537 s: no round length, so no LFO comes back to
#: its start): the validator's checks run it through every block pattern, in mono and
#: stereo; half a second keeps the 48 runs quick.
SECONDS = 0.537


@pytest.mark.parametrize("cls", EFFECTS, ids=lambda c: c.name)
def test_conformance_defaults(cls):
    validate_effect(cls, seconds=SECONDS, assets=load_asset)


@pytest.mark.parametrize("cls", EFFECTS, ids=lambda c: c.name)
def test_conformance_other_params(cls):
    validate_effect(cls, params=OTHER[cls.name], sample_rate=44100, seconds=SECONDS, assets=load_asset)


def test_the_validator_takes_an_asset_loader():
    assert "assets" in inspect.signature(validate_effect).parameters
    # (Convolution's conformance with an impulse response is test_conformance_other_params.)
    assert OTHER["convolution"]["impulse_response"] == "room.wav"
