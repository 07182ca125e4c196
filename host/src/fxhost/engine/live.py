"""A live chain: a compiled chain driven block by block, with its counters. No HTTP.

Blocks up to ``inline_frames`` run on the event loop (a thread hop would cost more than
the processing); larger ones in a worker thread, so that one client's big block never
stalls the others. Every block has a deadline (:class:`~fxhost.engine.deadline.DeadlineRunner`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, Literal

import msgspec
import numpy as np
from fxhost_sdk import Effect, FieldError, Params
from fxhost_sdk.host import AssetLoader, asset_fields

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
        self.sample_rate, self.channels = sample_rate, channels
        #: What runs each block: the compiled chain, or a :class:`Crossfade` while it switches.
        self.chain: CompiledChain | Crossfade = self._compile(steps, assets)
        self._counts = totals.at_rate(sample_rate) if totals is not None else None
        self.inline_frames = inline_frames
        self.runner = runner
        self.max_tail_seconds = max_tail_seconds
        self.frames_in = 0
        self.frames_out = 0
        self.blocks = 0
        self.process_seconds = 0.0
        self._lock = asyncio.Lock()  # one block at a time, parameter changes in between

    def _compile(self, steps: Sequence[Step], assets: AssetLoader | None) -> CompiledChain:
        totals = self.totals
        try:
            chain = CompiledChain(steps, self.sample_rate, self.channels, assets=assets)
        except EffectFault as fault:
            if totals is not None:
                totals.faults.add(fault)
            raise
        if totals is not None and totals.time_effects:
            chain.timings = [totals.effect(effect.name) for effect in chain.effects]
        return chain

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
                self._count(block.shape[1], time.perf_counter() - start)
                return out
        except EffectFault as fault:
            self._fault(fault)
            raise

    def process_now(self, block: np.ndarray) -> np.ndarray | None:
        """``block`` processed here, on the event loop, if it may be: it is no larger than
        ``inline_frames`` and no parameter change holds the chain. Else None, and the
        caller awaits :meth:`process`. The live per-block path calls this, not
        :meth:`process`: a coroutine per block is a cost of its own (bench/live_instructions.py),
        and so is a call, which is why :meth:`_process_now` is written out here."""
        frames = block.shape[1]
        if frames > self.inline_frames or self._lock.locked():
            return None
        runner = self.runner
        try:
            # Runs to completion without awaiting: nothing can interleave, no lock needed.
            out = runner.process_inline(self.chain, block)
        except EffectFault as fault:
            self._fault(fault)
            raise
        # The deadline's clock readings time the block: no clock pair of our own.
        self._count(frames, runner.last_seconds)
        return out

    def _process_now(self, block: np.ndarray) -> np.ndarray:
        """:meth:`process_now`'s work, for :meth:`process` under the lock (and bench/metrics.py)."""
        runner = self.runner
        out = runner.process_inline(self.chain, block)
        self._count(block.shape[1], runner.last_seconds)
        return out

    def _count(self, frames: int, elapsed: float) -> None:
        """A block of ``frames`` frames processed in ``elapsed`` seconds. The output has as
        many frames: the chain checks that every step's output has its input's shape."""
        self.process_seconds += elapsed
        self.frames_in += frames
        self.frames_out += frames
        self.blocks += 1
        if (counts := self._counts) is not None:
            counts.blocks += 1
            counts.frames += frames
            counts.process_seconds += elapsed
            if elapsed * counts.sample_rate > frames:  # slower than real time
                counts.deadline_misses += 1

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

    async def follow(
        self, steps: Sequence[Step], fade_frames: int, assets: AssetLoader | None = None
    ) -> Literal["unchanged", "params", "switched"]:
        """Make the chain run ``steps``: the same effects in the same order take the new
        parameters live (:meth:`set_params`, which each effect smooths where it can);
        anything else (a step added, removed, moved, an effect or asset swapped) is a
        :meth:`switch`. FieldError or EffectFault for new steps that cannot start: the
        chain runs on as it was."""
        effects = self.chain.effects
        same = len(effects) == len(steps) and all(
            effect.name == step.cls.name and _same_assets(effect.params, step.params)
            for effect, step in zip(effects, steps, strict=True)
        )
        if not same:
            await self.switch(steps, fade_frames, assets)
            return "switched"
        changed = [
            (index, msgspec.to_builtins(step.params))
            for index, (effect, step) in enumerate(zip(effects, steps, strict=True))
            if msgspec.to_builtins(effect.params) != msgspec.to_builtins(step.params)
        ]
        for index, params in changed:
            await self.set_params(index, params)
        return "params" if changed else "unchanged"

    async def switch(
        self, steps: Sequence[Step], fade_frames: int, assets: AssetLoader | None = None
    ) -> None:
        """Run ``steps`` from the next block on: new effect instances, crossfaded in over
        ``fade_frames`` frames while the old ones fade out (0: at once). Made before the
        switch: if they fail to start (EffectFault, FieldError) nothing changes."""
        new = self._compile(steps, assets)
        async with self._lock:  # not in the middle of a block run in a thread
            old = self.chain
            self.chain = Crossfade(self, old, new, fade_frames) if fade_frames > 0 else new

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


def _same_assets(old: Params, new: Params) -> bool:
    """Whether two parameter sets of one effect name the same assets (an effect reads its
    assets when it starts: another one means new instances)."""
    return all(getattr(old, name) == getattr(new, name) for name in asset_fields(type(new)))


class Crossfade:
    """Two chains run in parallel on the same input while a live chain switches: the old
    one fades out and the new one in with equal-power gains (cos and sin of a quarter
    turn over ``frames`` frames, so that uncorrelated outputs keep their loudness), then
    the live chain runs the new one alone. Stands in for the compiled chain meanwhile,
    so that a live chain's block path pays nothing when no switch is under way; the
    effects it shows (parameters, latency, tail) are the new chain's."""

    def __init__(self, live: LiveChain, old: CompiledChain | Crossfade, new: CompiledChain, frames: int):
        self.live, self.old, self.new, self.frames = live, old, new, frames
        self.done = 0
        self.channels = new.channels

    @property
    def effects(self) -> list[Effect]:
        return self.new.effects

    @property
    def latency(self) -> int:
        return self.new.latency

    def tail_frames(self, max_tail_seconds: float) -> int:
        return self.new.tail_frames(max_tail_seconds)

    def set_params(self, index: int, params: Any) -> None:
        self.new.set_params(index, params)

    def process(self, block: np.ndarray) -> np.ndarray:
        faded = self.old.process(block)
        out = self.new.process(block)
        frames = block.shape[1]
        angle = np.arange(self.done + 1, self.done + frames + 1, dtype=np.float64)
        angle *= (np.pi / 2) / self.frames
        np.minimum(angle, np.pi / 2, out=angle)
        mixed = (faded * np.cos(angle) + out * np.sin(angle)).astype(np.float32)
        self.done += frames
        if self.done >= self.frames and self.live.chain is self:
            self.live.chain = self.new  # the switch is over (unless a newer one began)
        return mixed
