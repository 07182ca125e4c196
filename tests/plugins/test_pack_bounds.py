"""Exclusive lower bounds of the pack's parameters hold in float32, the type pedalboard takes.

Found by schemathesis once the OpenAPI document let it create streams: a limiter with
``lookahead_ms: 1e-300`` passed validation (``> 0``) and reached pedalboard as 0.0f,
which refused it when the effect was made (a 502). Every value a Params accepts must make
an effect; every value below the float32 bound is refused by validation, naming the field.
"""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
from fxhost_pedalboard import EFFECTS
from fxhost_sdk import FieldError

#: (effect class, field) of every parameter with an exclusive lower bound of 0.
ABOVE_ZERO = [
    (cls, name)
    for cls in EFFECTS
    for name, prop in msgspec.json.schema(cls.Params)["$defs"][cls.Params.__name__]["properties"].items()
    if prop.get("minimum") is not None and 0 < prop["minimum"] < 1e-30
]


def test_there_are_such_parameters() -> None:
    names = {(cls.name, name) for cls, name in ABOVE_ZERO}
    assert ("brickwall_limiter", "lookahead_ms") in names and ("brickwall_limiter", "release_ms") in names
    assert ("lowpass_filter", "cutoff_frequency_hz") in names


@pytest.mark.parametrize(("cls", "name"), ABOVE_ZERO, ids=lambda v: getattr(v, "name", v))
def test_the_least_accepted_value_makes_an_effect_and_less_is_refused(cls, name) -> None:
    least = float(np.nextafter(np.float32(0), np.float32(1)))
    params = cls.check_params({name: least})
    cls(48000, 2, params).process(np.zeros((2, 256), dtype=np.float32))  # pedalboard takes it
    for below in (1e-300, least / 2, 0.0):
        with pytest.raises(FieldError) as caught:
            cls.check_params({name: below})
        assert caught.value.path == f"params.{name}"
