"""A live chain: a compiled chain driven block by block, with its counters. No HTTP.

Blocks up to ``inline_frames`` run on the event loop (a thread hop would cost more than
the processing); larger ones in a worker thread, so that one client's big block never
stalls the others. Every block has a deadline (:class:`~fxhost.engine.deadline.DeadlineRunner`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np
from fxhost_sdk import AssetLoader, FieldError

from fxhost.engine.compiled import CompiledChain, Step
from fxhost.engine.deadline import DeadlineRunner


class LiveChain:
    """A compiled chain driven block by block, with its counters. Blocks larger than
    ``inline_frames`` are processed in a worker thread."""

    def __init__(
        self,
        steps: Sequence[Step],
        sample_rate: int,
        channels: int,
        *,
        inline_frames: int,
        max_tail_seconds: float,
        runner: DeadlineRunner,
        assets: AssetLoader | None = None,
    ):
        self.chain = CompiledChain(steps, sample_rate, channels, assets=assets)
        self.inline_frames = inline_frames
        self.runner = runner
        self.max_tail_seconds = max_tail_seconds
        self.frames_in = 0
        self.frames_out = 0
        self.blocks = 0
        self.process_seconds = 0.0
        self._lock = asyncio.Lock()  # one block at a time, parameter changes in between

    @property
    def latency(self) -> int:
        return self.chain.latency

    def step_params(self) -> list[dict[str, Any]]:
        """Each step's effect and its parameters as they are now."""
        return [
            {"effect": effect.name, "params": msgspec.to_builtins(effect.params)}
            for effect in self.chain.effects
        ]

    def tail_frames(self) -> int:
        return self.chain.tail_frames(self.max_tail_seconds) + self.chain.latency

    async def process(self, block: np.ndarray) -> np.ndarray:
        if block.shape[1] <= self.inline_frames and not self._lock.locked():
            # Runs to completion without awaiting: nothing can interleave, no lock needed.
            return self._process_now(block)
        async with self._lock:
            if block.shape[1] <= self.inline_frames:
                return self._process_now(block)
            start = time.perf_counter()
            out = await self.runner.process_in_thread(self.chain, block)
            return self._count(block, out, start)

    def _process_now(self, block: np.ndarray) -> np.ndarray:
        # The per-block path of every live session: counted here, without a call more.
        runner = self.runner
        out = runner.process_inline(self.chain, block)
        self.process_seconds += runner.last_seconds
        self.frames_in += block.shape[1]
        self.frames_out += out.shape[1]
        self.blocks += 1
        return out

    def _count(self, block: np.ndarray, out: np.ndarray, start: float) -> np.ndarray:
        self.process_seconds += time.perf_counter() - start
        self.frames_in += block.shape[1]
        self.frames_out += out.shape[1]
        self.blocks += 1
        return out

    async def set_params(self, index: int, params: dict[str, Any], path: str = "params") -> dict[str, Any]:
        """Validate and apply new parameters for step ``index`` between blocks; returns
        the step's full parameters. FieldError names the field; nothing changes then."""
        if not 0 <= index < len(self.chain.effects):
            raise FieldError("step", f"no step {index}: the chain has {len(self.chain.effects)} step(s)")
        effect = self.chain.effects[index]
        checked = effect.check_params({**msgspec.to_builtins(effect.params), **params}, path)
        async with self._lock:
            self.chain.set_params(index, checked)  # a plugin that fails here is a fault
        return msgspec.to_builtins(checked)

    async def tail(self, block_frames: int) -> list[np.ndarray]:
        """The chain ringing out: its tail (and latency) as processed silence, in blocks."""
        remaining = self.tail_frames()
        out = []
        silence = np.zeros((self.chain.channels, block_frames), dtype=np.float32)
        while remaining > 0:
            n = min(block_frames, remaining)
            out.append(await self.process(silence[:, :n]))
            remaining -= n
        return out
