"""``PedalboardEffect``: run a pedalboard plugin as an fxhost effect, immune to block size.

A pedalboard plugin is a JUCE processor. ``plugin.process(x, sr, buffer_size=8192,
reset=False)`` prepares the DSP with ``maximumBlockSize = min(buffer_size, frames)``,
and a call with more frames than any call before prepares it again, which clears its
state (delay lines, envelopes). Streamed naively, in ragged blocks, the output of
pedalboard's reverb, delay or chorus therefore depends on how the stream was cut.
``plugin.reset()`` also forgets the prepared size, and a ``(2, 1)`` or ``(2, 2)`` block
is refused as ambiguous unless a non-square block went through first.

This class feeds the plugin so that it is prepared exactly once per reset, by one of
two strategies chosen with :attr:`PedalboardEffect.silence_is_neutral`:

* ``True`` (the default; reverb, delay, compressor, filters...): before the first real
  block, process ``PRIME_FRAMES`` frames of silence shaped ``(channels, PRIME_FRAMES)``
  ("priming"), then feed every block in chunks of at most ``PRIME_FRAMES`` frames. The
  plugin is prepared once, for the largest chunk it will ever see, and its channel
  layout is fixed by a non-square block. This is exact (output identical to one
  whole-signal ``plugin.process`` call, for any block pattern) only if silence leaves the
  plugin at rest, i.e. in the same state as a fresh one. That is the case for effects
  whose state is driven only by the input.
* ``False`` (chorus, phaser, anything with a free-running LFO, which silence would
  advance): the plugin only ever sees blocks of exactly :attr:`fixed_block_size`
  frames, gathered from the stream through an input FIFO; the output comes out of an
  output FIFO one block later, so :attr:`latency` is ``fixed_block_size`` frames. The
  output is the whole-signal output delayed by exactly that latency, for any block
  pattern.

A subclass names the pedalboard class and declares its ``Params``; fields map to the
plugin's attributes of the same name unless :attr:`attributes` or
:meth:`plugin_values` say otherwise::

    class Delay(PedalboardEffect):
        name = "delay"
        version = "1.0.0"
        summary = "Echo with feedback (JUCE, through pedalboard)."
        plugin_class = pedalboard.Delay

        class Params(fxhost_sdk.Params):
            delay_seconds: Annotated[float, param(description="...", ge=0, le=2, unit="s")] = 0.5
            ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pedalboard
from fxhost_sdk import Effect, Params

#: Frames of silence used to prime a plugin, and the largest chunk it is ever given.
#: Equal to pedalboard's default ``buffer_size``, so a whole-signal
#: ``plugin.process(x, sr)`` call and this class prepare the DSP identically.
PRIME_FRAMES = 8192


class PedalboardEffect(Effect):
    """Base class of effects backed by a pedalboard plugin (see the module docstring)."""

    #: The pedalboard plugin class, e.g. ``pedalboard.Reverb``. It is constructed with no
    #: arguments (override :meth:`make_plugin` otherwise) and configured by attributes.
    plugin_class: ClassVar[type[pedalboard.Plugin]]
    #: Params field -> plugin attribute, for fields whose names differ.
    attributes: ClassVar[Mapping[str, str]] = {}
    #: True if processing silence from rest leaves the plugin at rest (no LFO or other
    #: free-running state); then the plugin is primed and runs with no latency. False
    #: selects fixed-size internal blocks with ``fixed_block_size`` frames of latency.
    silence_is_neutral: ClassVar[bool] = True
    #: Internal block size (and latency in frames) when ``silence_is_neutral`` is False.
    fixed_block_size: ClassVar[int] = 256
    #: Most channels the plugin processes together. JUCE's effects handle mono and
    #: stereo; wider signals are processed as stereo pairs (and a trailing mono channel),
    #: each by its own plugin instance.
    max_plugin_channels: ClassVar[int] = 2

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        plugin_class = cls.__dict__.get("plugin_class")
        params = cls.__dict__.get("Params")
        if plugin_class is not None and params is not None:
            for field in params.__struct_fields__:
                attribute = cls.attributes.get(field, field)
                if not hasattr(plugin_class, attribute):
                    raise TypeError(
                        f"{cls.__qualname__}.Params.{field}: {plugin_class.__name__} has no "
                        f"attribute {attribute!r}; map it in `attributes` or override "
                        f"`plugin_values`"
                    )
        if not cls.silence_is_neutral and cls.fixed_block_size < 3:
            # (channels, 1) and (2, 2) blocks are ambiguous to pedalboard.
            raise TypeError(f"{cls.__qualname__}.fixed_block_size must be at least 3")

    # -- hooks for subclasses ------------------------------------------------------

    def make_plugin(self) -> pedalboard.Plugin:
        """A new plugin instance (one per channel group)."""
        return self.plugin_class()

    def plugin_values(self, params: Params) -> dict[str, Any]:
        """The plugin attributes to set for ``params``: by default every field, renamed
        through :attr:`attributes`. Override to convert units (ms to s, ...)."""
        return {
            self.attributes.get(field, field): getattr(params, field)
            for field in params.__struct_fields__
        }

    # -- the Effect contract ---------------------------------------------------------

    def prepare(self) -> None:
        width = self.max_plugin_channels
        self._groups = [
            slice(start, min(start + width, self.channels))
            for start in range(0, self.channels, width)
        ]
        if getattr(self, "_plugins", None) is None:
            self._plugins = [self.make_plugin() for _ in self._groups]
        else:
            # reset(): clear the DSP state; the plugin also forgets its prepared size.
            for plugin in self._plugins:
                plugin.reset()
        # Priming waits for the first process() call, so that it runs with the
        # parameters in force then, exactly like a fresh plugin's first call.
        self._primed = False
        if not self.silence_is_neutral:
            size = self.fixed_block_size
            self._fifo_in = np.zeros((self.channels, size), dtype=np.float32)
            self._fifo_out = np.zeros((self.channels, size), dtype=np.float32)
            self._fifo_fill = 0

    def apply_params(self, params: Params) -> None:
        # Attributes are read by the plugin at its next process call: live automation
        # without preparing the DSP again (JUCE smooths the gains itself).
        values = self.plugin_values(params)
        for plugin in self._plugins:
            for attribute, value in values.items():
                setattr(plugin, attribute, value)

    @property
    def latency(self) -> int:
        return 0 if self.silence_is_neutral else self.fixed_block_size

    def process(self, block: np.ndarray) -> np.ndarray:
        block = np.asarray(block, dtype=np.float32)
        if block.ndim != 2 or block.shape[0] != self.channels:
            raise ValueError(
                f"expected a block shaped ({self.channels}, frames), got {block.shape}"
            )
        if self.silence_is_neutral:
            return self._process_primed(block)
        return self._process_fixed(block)

    # -- strategy 1: prime once, then chunks of at most PRIME_FRAMES -------------------

    def _run(self, chunk: np.ndarray, out: np.ndarray) -> None:
        """Process ``chunk`` (all channels) into ``out`` through each group's plugin."""
        for group, plugin in zip(self._groups, self._plugins, strict=True):
            out[group] = plugin.process(
                chunk[group], self.sample_rate, buffer_size=PRIME_FRAMES, reset=False
            )

    def _process_primed(self, block: np.ndarray) -> np.ndarray:
        if not self._primed:
            silence = np.zeros((self.channels, PRIME_FRAMES), dtype=np.float32)
            self._run(silence, np.empty_like(silence))
            self._primed = True
        out = np.empty(block.shape, dtype=np.float32)
        for start in range(0, block.shape[1], PRIME_FRAMES):
            stop = start + PRIME_FRAMES
            self._run(block[:, start:stop], out[:, start:stop])
        return out

    # -- strategy 2: fixed-size internal blocks through FIFOs ---------------------------

    def _process_fixed(self, block: np.ndarray) -> np.ndarray:
        # Input frame i of internal block k is stored at _fifo_in[:, i]; the output
        # returned for it is frame i of the processed block k - 1, kept in _fifo_out
        # (silence before the first block): a delay of exactly fixed_block_size frames.
        size = self.fixed_block_size
        out = np.empty(block.shape, dtype=np.float32)
        frames = block.shape[1]
        done = 0
        while done < frames:
            fill = self._fifo_fill
            take = min(size - fill, frames - done)
            self._fifo_in[:, fill : fill + take] = block[:, done : done + take]
            out[:, done : done + take] = self._fifo_out[:, fill : fill + take]
            self._fifo_fill = fill + take
            done += take
            if self._fifo_fill == size:
                self._run(self._fifo_in, self._fifo_out)
                self._fifo_fill = 0
        return out
