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
from fxhost_sdk import FieldError
from fxhost_sdk.host import AssetLoader

from fxhost.engine.compiled import CompiledChain, EffectFault, Step
from fxhost.engine.deadline import DeadlineRunner
from fxhost.engine.tally import LiveTotals


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
        totals: LiveTotals | None = None,
    ):
        #: Where this chain also counts what it runs, summed with every other live chain.
        self.totals = totals
        try:
            self.chain = CompiledChain(steps, sample_rate, channels, assets=assets)
        except EffectFault as fault:
            if totals is not None:
                totals.faults.add(fault)
            raise
        self._counts = totals.at_rate(sample_rate) if totals is not None else None
        if totals is not None and totals.time_effects:
            self.chain.timings = [totals.effect(effect.name) for effect in self.chain.effects]
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
        out = self.process_now(block)
        if out is not None:
            return out
        try:
            async with self._lock:
                if block.shape[1] <= self.inline_frames:
                    return self._process_now(block)
                start = time.perf_counter()
                out = await self.runner.process_in_thread(self.chain, block)
                return self._count(block, out, time.perf_counter() - start)
        except EffectFault as fault:
            self._fault(fault)
            raise

    def process_now(self, block: np.ndarray) -> np.ndarray | None:
        """``block`` processed here, on the event loop, if it may be: it is no larger than
        ``inline_frames`` and no parameter change holds the chain. Else None, and the
        caller awaits :meth:`process`. The live per-block path calls this, not
        :meth:`process`: a coroutine per block is a cost of its own (bench/live_instructions.py)."""
        if block.shape[1] > self.inline_frames or self._lock.locked():
            return None
        try:
            # Runs to completion without awaiting: nothing can interleave, no lock needed.
            return self._process_now(block)
        except EffectFault as fault:
            self._fault(fault)
            raise

    def _process_now(self, block: np.ndarray) -> np.ndarray:
        runner = self.runner
        out = runner.process_inline(self.chain, block)
        # The deadline's clock readings time the block: no clock pair of our own.
        return self._count(block, out, runner.last_seconds)

    def _count(self, block: np.ndarray, out: np.ndarray, elapsed: float) -> np.ndarray:
        frames = block.shape[1]
        self.process_seconds += elapsed
        self.frames_in += frames
        self.frames_out += out.shape[1]
        self.blocks += 1
        if (counts := self._counts) is not None:
            counts.blocks += 1
            counts.frames += frames
            counts.process_seconds += elapsed
            if elapsed * counts.sample_rate > frames:  # slower than real time
                counts.deadline_misses += 1
        return out

    def _fault(self, fault: EffectFault) -> None:
        if self.totals is not None:
            self.totals.faults.add(fault)

    async def set_params(self, index: int, params: dict[str, Any], path: str = "params") -> dict[str, Any]:
        """Validate and apply new parameters for step ``index`` between blocks; returns
        the step's full parameters. FieldError names the field; nothing changes then."""
        if not 0 <= index < len(self.chain.effects):
            raise FieldError("step", f"no step {index}: the chain has {len(self.chain.effects)} step(s)")
        effect = self.chain.effects[index]
        checked = effect.check_params({**msgspec.to_builtins(effect.params), **params}, path)
        async with self._lock:
            try:
                self.chain.set_params(index, checked)  # a plugin that fails here is a fault
            except EffectFault as fault:
                self._fault(fault)
                raise
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
