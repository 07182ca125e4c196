"""The engine: compiled chains and offline rendering. It knows no HTTP.

A compiled chain is a list of effect instances for one sample rate and channel
count. Offline rendering streams blocks through it, compensates the chain's latency
and appends the tail, so memory does not grow with the length of the input.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

import numpy as np
from fxhost_sdk import AssetLoader, Effect, Params

#: Offline block size. Large enough to amortise per-call overhead, and equal to
#: pedalboard's internal chunk so a pedalboard effect is never re-prepared.
RENDER_BLOCK = 8192


class Step(Protocol):
    """A validated chain step: an effect class and its validated parameters."""

    cls: type[Effect]
    params: Params


class CompiledChain:
    """Effect instances, in order, for one sample rate and channel count."""

    def __init__(
        self, steps: Sequence[Step], sample_rate: float, channels: int, *, assets: AssetLoader | None = None
    ):
        self.sample_rate = float(sample_rate)
        self.channels = channels
        self.effects: list[Effect] = [
            step.cls(sample_rate, channels, step.params, assets=assets) for step in steps
        ]

    @property
    def offline(self) -> bool:
        """True if a step needs the whole signal: the chain then renders in memory."""
        return any(effect.offline_only for effect in self.effects)

    def process_whole(self, audio: np.ndarray, block_frames: int = RENDER_BLOCK) -> np.ndarray:
        """Process a whole signal, offline-only steps included. Each streaming step runs
        in blocks with its own latency removed, so every step sees the signal aligned."""
        for effect in self.effects:
            if effect.offline_only:
                audio = np.ascontiguousarray(effect.process_offline(audio), dtype=np.float32)
                continue
            latency = effect.latency
            padded = np.concatenate([audio, np.zeros((self.channels, latency), np.float32)], axis=1)
            out = [
                effect.process(padded[:, i : i + block_frames])
                for i in range(0, padded.shape[1], block_frames)
            ]
            joined = np.concatenate(out, axis=1) if out else padded[:, :0]
            audio = np.ascontiguousarray(joined[:, latency:])
        return audio

    def process(self, block: np.ndarray) -> np.ndarray:
        for effect in self.effects:
            block = effect.process(block)
        return block

    def reset(self) -> None:
        for effect in self.effects:
            effect.reset()

    def set_params(self, index: int, params: Params | dict) -> None:
        self.effects[index].set_params(params)

    @property
    def latency(self) -> int:
        return sum(effect.latency for effect in self.effects)

    @property
    def tail_seconds(self) -> float:
        # Tails add up: each step rings on after the one before it has stopped.
        return sum(effect.tail_seconds for effect in self.effects)

    def tail_frames(self, max_tail_seconds: float) -> int:
        # round() first, so that 0.1 + 0.2 seconds is 300 frames at 1 kHz, not 301
        return math.ceil(round(min(self.tail_seconds, max_tail_seconds) * self.sample_rate, 6))


def render_blocks(
    chain: CompiledChain,
    blocks: Iterable[np.ndarray],
    *,
    tail_frames: int,
    block_frames: int = RENDER_BLOCK,
) -> Iterator[np.ndarray]:
    """Stream ``blocks`` (float32 ``(channels, frames)``) through ``chain``.

    Yields processed blocks aligned with the input (the chain's latency removed),
    followed by ``tail_frames`` of tail: the output is exactly ``input frames +
    tail_frames`` long, unless an offline-only step changes the length (trimming).
    """
    if chain.offline:
        # Offline-only steps need everything first: gather, process, then hand it out.
        audio = np.concatenate([*blocks, np.zeros((chain.channels, tail_frames), np.float32)], axis=1)
        whole = chain.process_whole(audio, block_frames)
        for start in range(0, whole.shape[1], block_frames):
            yield whole[:, start : start + block_frames]
        return
    skip = chain.latency  # output frames that precede the first real one
    for block in blocks:
        out = chain.process(block)
        if skip:
            dropped = min(skip, out.shape[1])
            out, skip = out[:, dropped:], skip - dropped
        if out.shape[1]:
            yield out
    remaining = tail_frames + chain.latency
    # What is still owed is the latency (already skipped at the front) plus the tail.
    silence = np.zeros((chain.channels, block_frames), dtype=np.float32)
    while remaining > 0:
        n = min(block_frames, remaining)
        out = chain.process(silence[:, :n])
        remaining -= n
        if skip:
            dropped = min(skip, out.shape[1])
            out, skip = out[:, dropped:], skip - dropped
        if out.shape[1]:
            yield out
