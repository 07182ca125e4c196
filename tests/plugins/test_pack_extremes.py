"""Every effect of the pack, at each numeric parameter's own bounds (one at a time, the
others at their defaults), makes finite audio: a value the schema accepts must not turn
the output to NaN (the fuzzer found a peak filter's Q of 1.4e-45, float32's least
positive value, which pedalboard's biquad turned into NaN: a 502 for a request the
document called valid)."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from fxhost_pedalboard import EFFECTS
from fxhost_sdk.testing import make_test_asset_loader, make_test_signal, process_blocks

RATE = 48000


def extremes(cls) -> list[tuple[str, float]]:
    found = []
    for field in msgspec.inspect.type_info(cls.Params).fields:
        t = field.type
        while isinstance(t, msgspec.inspect.Metadata):  # descriptions and units around the type
            t = t.type
        if isinstance(t, msgspec.inspect.FloatType | msgspec.inspect.IntType):
            for bound in (t.ge, t.le):  # an exclusive bound (gt, lt) is refused, not run
                if bound is not None and math.isfinite(bound):
                    found.append((field.encode_name, bound))
    return found


CASES = [
    pytest.param(cls, name, value, id=f"{cls.name}-{name}={value:g}")
    for cls in EFFECTS
    for name, value in extremes(cls)
]


@pytest.mark.parametrize(("cls", "name", "value"), CASES)
def test_output_is_finite_at_every_bound(cls, name, value):
    params = msgspec.to_builtins(cls.Params())
    default = params[name]
    params[name] = type(default)(value) if isinstance(default, int | float) else value
    checked = cls.check_params(params)
    effect = cls(RATE, 2, checked, assets=make_test_asset_loader(RATE))
    x = make_test_signal(RATE, 2, seconds=0.25)
    out = (
        effect.process_offline(x.copy())
        if getattr(cls, "offline_only", False)
        else process_blocks(effect, x, 256)
    )
    assert np.isfinite(out).all(), f"{cls.name} with {name}={value!r}: NaN/Inf"
