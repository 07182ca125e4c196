"""A live chain changing its steps: new parameters live, new steps crossfaded in (equal
power) over a given number of frames, then the new chain alone. Real pedalboard
effects, a sine, the largest sample-to-sample step measured."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from fxhost.engine.compiled import CompiledChain
from fxhost.engine.deadline import DeadlineRunner
from fxhost.engine.live import Crossfade, LiveChain
from fxhost_pedalboard.distortion import Gain, Invert
from fxhost_pedalboard.reverb import Reverb
from fxhost_sdk import Effect, Params

RATE = 48000
BLOCK = 480
FADE = 2400


@dataclass
class Step:
    cls: type[Effect]
    params: Params


def step(cls: type[Effect], **params: Any) -> Step:
    return Step(cls, cls.check_params(params))


def sine(frames: int) -> np.ndarray:
    t = np.arange(frames) / RATE
    return np.tile(0.5 * np.sin(2 * np.pi * 220 * t), (2, 1)).astype(np.float32)


def live(steps: list[Step]) -> LiveChain:
    return LiveChain(steps, RATE, 2, inline_frames=4096, max_tail_seconds=1.0, runner=DeadlineRunner(5.0))


async def run(chain: LiveChain, signal: np.ndarray, at: int, change) -> np.ndarray:
    """``signal`` through ``chain`` in blocks, ``change()`` awaited before the block at ``at``."""
    out = []
    for start in range(0, signal.shape[1], BLOCK):
        if start == at:
            await change()
        out.append(await chain.process(signal[:, start : start + BLOCK]))
    return np.concatenate(out, axis=1)


def largest_step(out: np.ndarray) -> float:
    return float(np.abs(np.diff(out, axis=1)).max())


@pytest.mark.parametrize("fade", [0, FADE])
def test_a_switch_crossfades_with_equal_power_and_no_click(fade):
    x = sine(RATE)
    at = 24 * BLOCK + 7 * BLOCK  # not at a zero crossing of the sine
    chain = live([step(Gain, gain_db=0.0)])
    out = asyncio.run(run(chain, x, at, lambda: chain.switch([step(Invert), step(Gain, gain_db=0.0)], fade)))
    steady = largest_step(out[:, :at])
    if fade == 0:  # the measure sees a click: a hard switch from x to -x
        assert largest_step(out) > 10 * steady
        return
    assert largest_step(out) <= steady * 1.001
    angle = np.minimum(np.arange(1, fade + 1) / fade, 1.0) * np.pi / 2
    expected = x[:, at : at + fade] * (np.cos(angle) - np.sin(angle))  # x faded out, -x in
    np.testing.assert_allclose(out[:, at : at + fade], expected, atol=1e-6)
    np.testing.assert_allclose(out[:, at + fade :], -x[:, at + fade :], atol=1e-6)
    # Over: the live chain runs the new compiled chain alone again (no per-block cost).
    assert isinstance(chain.chain, CompiledChain)
    assert [e.name for e in chain.chain.effects] == ["invert", "gain"]


def test_follow_changes_parameters_live_and_switches_new_steps():
    async def scenario() -> None:
        chain = live([step(Reverb, wet_level=0.0, dry_level=0.5)])
        effect = chain.chain.effects[0]
        assert await chain.follow([step(Reverb, wet_level=0.0, dry_level=0.5)], FADE) == "unchanged"
        assert await chain.follow([step(Reverb, wet_level=0.0, dry_level=0.25)], FADE) == "params"
        assert chain.chain.effects[0] is effect and effect.params.dry_level == 0.25  # the same instance
        outcome = await chain.follow([step(Invert), step(Reverb, wet_level=0.0, dry_level=0.25)], FADE)
        assert outcome == "switched" and isinstance(chain.chain, Crossfade)
        # A switch during a switch: the newest wins, and the chain ends up alone.
        await chain.follow([step(Gain, gain_db=-6.0)], FADE)
        out = [await chain.process(sine(BLOCK)) for _ in range(2 * FADE // BLOCK)]
        assert isinstance(chain.chain, CompiledChain) and [e.name for e in chain.chain.effects] == ["gain"]
        np.testing.assert_allclose(out[-1], 10 ** (-6 / 20) * sine(BLOCK), atol=1e-6)
        assert chain.step_params() == [{"effect": "gain", "params": {"gain_db": -6.0}}]

    asyncio.run(scenario())
