"""The offline engine: latency compensation and the tail, with effects whose behaviour is known."""

import math
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import pytest
from fxhost.engine.compiled import CompiledChain
from fxhost.engine.offline import render_blocks
from fxhost_sdk import Effect, Params, param


class DelayParams(Params):
    frames: Annotated[int, param(ge=0, le=10_000, description="Delay in frames")] = 100


class PureDelay(Effect):
    """Delays by ``frames`` and says so as its latency."""

    name = "pure_delay"
    version = "1"
    summary = "A pure delay that reports it as latency."
    Params = DelayParams

    def prepare(self):
        self.history = np.zeros((self.channels, self.params.frames), np.float32)

    def process(self, block):
        joined = np.concatenate([self.history, block], axis=1)
        self.history = joined[:, joined.shape[1] - self.params.frames :]
        return np.ascontiguousarray(joined[:, : block.shape[1]])

    @property
    def latency(self):
        return self.params.frames


class DecayParams(Params):
    seconds: Annotated[float, param(ge=0, le=10, description="Tail length", unit="s")] = 0.5


class Ring(Effect):
    """Output = input + a constant 0.25 ringing for ``seconds`` after the last non-zero input."""

    name = "ring"
    version = "1"
    summary = "Rings for a fixed time."
    Params = DecayParams

    def prepare(self):
        self.left = 0

    def process(self, block):
        out = block.copy()
        for i in range(block.shape[1]):
            if np.any(block[:, i]):
                self.left = round(self.params.seconds * self.sample_rate)
            elif self.left:
                out[:, i] += 0.25
                self.left -= 1
        return out

    @property
    def tail_seconds(self):
        return self.params.seconds


def render_array(chain, audio, *, tail_frames, block_frames):
    """The whole of ``audio`` through render_blocks, joined."""
    blocks = (audio[:, i : i + block_frames] for i in range(0, audio.shape[1], block_frames))
    return np.concatenate(
        list(render_blocks(chain, blocks, tail_frames=tail_frames, block_frames=block_frames)), 1
    )


@dataclass
class Step:
    cls: type
    params: Params


def test_latency_is_compensated_and_length_kept():
    sr, frames = 1000, 5000
    audio = np.random.default_rng(0).standard_normal((2, frames)).astype(np.float32)
    chain = CompiledChain(
        [Step(PureDelay, DelayParams(frames=123)), Step(PureDelay, DelayParams(frames=7))], sr, 2
    )
    assert chain.latency == 130
    out = render_array(chain, audio, tail_frames=0, block_frames=256)
    np.testing.assert_array_equal(out, audio)


def test_tail_is_appended_and_rings_out():
    sr = 1000
    audio = np.ones((1, 300), np.float32)
    chain = CompiledChain([Step(Ring, DecayParams(seconds=0.2)), Step(Ring, DecayParams(seconds=0.1))], sr, 1)
    assert chain.tail_seconds == pytest.approx(0.3)
    tail = chain.tail_frames(max_tail_seconds=30)
    assert tail == 300
    out = render_array(chain, audio, tail_frames=tail, block_frames=64)
    assert out.shape == (1, 600)
    assert np.all(out[:, 300:500] >= 0.25)  # first ring
    assert chain.tail_frames(max_tail_seconds=0.05) == 50  # capped by the setting


def test_infinite_tail_is_capped():
    class Frozen(Ring):
        name = "frozen"

        @property
        def tail_seconds(self):
            return math.inf

    chain = CompiledChain([Step(Frozen, DecayParams())], 48000, 2)
    assert chain.tail_frames(max_tail_seconds=2.5) == 120000
