"""``PedalboardEffect``: run a pedalboard plugin as an fxhost effect, immune to block size.

A pedalboard plugin is a JUCE processor. ``plugin.process(x, sr, buffer_size=8192,
reset=False)`` prepares the DSP with ``maximumBlockSize = min(buffer_size, frames)``,
and a call with more frames than any call before prepares it again, which clears its
state (delay lines, envelopes). Streamed naively, in ragged blocks, the output of
pedalboard's reverb, delay or chorus therefore depends on how the stream was cut.
``plugin.reset()`` also forgets the prepared size, and a ``(2, 1)`` or ``(2, 2)`` block
is refused as ambiguous unless a non-square block went through first.

Some plugins also hold audio back (a lookahead, a codec frame, a resampler's filter):
called with ``reset=False`` they return *fewer* frames than they were given until their
pipeline is full. (Called on a whole signal with ``reset=True``, pedalboard feeds them
silence at the end and hides that latency, so the whole-signal output is aligned with
the input; streamed, it is not.)

This class feeds the plugin with one of three strategies:

* **primed** (``silence_is_neutral = True``, the default; reverb, delay, compressor,
  filters...): before the first real block, process :attr:`prime_frames` (8192) frames of
  silence shaped ``(channels, prime_frames)`` ("priming"), then feed every block in chunks
  of at most ``prime_frames`` frames. The plugin is prepared once, for the largest chunk it
  will ever see, and its channel layout is fixed by a non-square block. This is exact
  (output identical to one whole-signal ``plugin.process`` call, for any block pattern)
  only if silence leaves the plugin at rest, i.e. in the same state as a fresh one: true
  of effects whose state is driven only by the input. A plugin that holds audio back
  (``holds_back_audio``, the brick-wall limiter's lookahead) is primed the same way, and
  given at least 3 frames at a time (it forgets its channel count and would read a
  ``(2, 1)`` block as one channel of two frames); its output comes out of a FIFO
  :attr:`latency` frames late (what it holds back, plus those 2 frames): the
  whole-signal output delayed by exactly that.
* **fixed** (``silence_is_neutral = False``; chorus, phaser, anything with a free-running
  LFO, which silence would advance, or with internal framing, which priming would shift:
  MP3 frames, resampler phase): the plugin only ever sees blocks of exactly
  :attr:`fixed_block_size` frames, gathered from the stream through an input FIFO; what it
  returns goes through an output FIFO. :attr:`latency` is ``fixed_block_size`` plus the
  most the plugin ever holds back (measured once, on silence, for these parameters: the
  frames a plugin returns depend on the frame count, never on the audio). The output is
  the whole-signal output delayed by exactly that latency, for any block pattern.
* **segments** (``segment_seconds`` set; pitch shift, GSM): for plugins that cannot be
  streamed at all (pedalboard clears part of their pipeline on every ``process`` call,
  so consecutive calls never join up). The stream is cut into segments of
  ``segment_seconds``, each processed with ``crossfade_seconds`` of the audio before it
  by one whole-signal call (``reset=True``), and consecutive segments are crossfaded
  (sin² fades, summing to 1) over those ``crossfade_seconds``. :attr:`latency` is one
  segment plus one crossfade. The output is exactly that overlap-add of whole pedalboard
  calls (reproducible, the same for any block pattern), but it is *not* the output of
  one call on the whole signal: each segment starts the plugin afresh.

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

Parameters are pushed into the plugin between blocks (live automation) as attributes,
except the fields named in :attr:`restart_fields`, which a plugin only reads when it is
prepared (a lookahead length, a codec or resampler setting): changing one of those
restarts the effect, as :meth:`reset` would (the audio in flight is dropped, and the
latency may change with it).

One class in one module, though long: the three strategies share the priming, the
chunking and the FIFO of held-back audio, and each exists for a plugin behaviour
described above.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Collection, Mapping
from typing import Any, ClassVar, Literal

import msgspec
import numpy as np
import pedalboard
from fxhost_sdk import Effect, Params, param

#: Frames of silence used to prime a plugin, and the largest chunk it is ever given.
#: Equal to pedalboard's default ``buffer_size``, so a whole-signal
#: ``plugin.process(x, sr)`` call and this class prepare the DSP identically.
PRIME_FRAMES = 8192

#: Fewest frames given at once to a plugin that holds audio back (see ``_start``).
MIN_CHUNK = 3

#: How long the latency probe runs a plugin on silence (seconds of audio), at least.
PROBE_SECONDS = 3.0

#: -60 dBFS: the level below which a tail counts as ended.
TAIL_THRESHOLD = 1e-3

_FLOAT32 = np.dtype(np.float32)  # compared per block: cheaper than np.float32, a type

Strategy = Literal["primed", "fixed", "segments"]


def param_above(lower: float, **kwargs: Any) -> msgspec.Meta:
    """:func:`fxhost_sdk.param` for values pedalboard refuses at exactly ``lower`` (a
    cutoff of 0 Hz, a Q of 0). Not ``gt=lower``: pedalboard takes float32, so a double
    just above the bound (``1e-300``) would reach it as the bound itself and be refused
    when the effect is made (a 502); the bound is the least float32 above ``lower``,
    inclusive."""
    return param(ge=float(np.nextafter(np.float32(lower), np.float32(np.inf))), **kwargs)


class _Frames:
    """A FIFO of float32 frames, ``(channels, n)``, that grows as needed."""

    def __init__(self, channels: int, capacity: int = 1024):
        self._buf = np.zeros((channels, max(1, capacity)), dtype=np.float32)
        self._start = 0
        self._stop = 0

    def __len__(self) -> int:
        return self._stop - self._start

    def push(self, frames: np.ndarray) -> None:
        n = frames.shape[1]
        if self._stop + n > self._buf.shape[1]:
            size = len(self)
            if size + n > self._buf.shape[1]:
                grown = np.zeros((self._buf.shape[0], 2 * (size + n)), dtype=np.float32)
                grown[:, :size] = self._buf[:, self._start : self._stop]
                self._buf = grown
            else:
                self._buf[:, :size] = self._buf[:, self._start : self._stop]
            self._start, self._stop = 0, size
        self._buf[:, self._stop : self._stop + n] = frames
        self._stop += n

    def push_zeros(self, n: int) -> None:
        self.push(np.zeros((self._buf.shape[0], n), dtype=np.float32))

    def pop_into(self, out: np.ndarray) -> None:
        n = out.shape[1]
        if n > len(self):
            raise RuntimeError(
                f"internal error: {n} frames asked of an output FIFO holding {len(self)}; the "
                "plugin held back more audio than the latency measured for it"
            )
        out[:] = self._buf[:, self._start : self._start + n]
        self._start += n


class _Cache(OrderedDict[tuple[Any, ...], Any]):
    """A dict that forgets its oldest entries past ``size`` (live automation can sweep
    a parameter through any number of values)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def __setitem__(self, key: tuple[Any, ...], value: Any) -> None:
        super().__setitem__(key, value)
        while len(self) > self.size:
            self.popitem(last=False)


#: (class, sample rate, channels, block, plugin values) -> (latency after priming, most held back)
_HELD_BACK = _Cache(256)
#: Tails, see :meth:`PedalboardEffect.impulse_tail_seconds` and ``probed_tail_seconds``.
_TAILS = _Cache(1024)
_UNSET: Any = object()


class PedalboardEffect(Effect):
    """Base class of effects backed by a pedalboard plugin (see the module docstring)."""

    #: The pedalboard plugin class, e.g. ``pedalboard.Reverb``. It is constructed with no
    #: arguments (override :meth:`make_plugin` otherwise) and configured by attributes.
    plugin_class: ClassVar[type[pedalboard.Plugin]]
    #: Params field -> plugin attribute, for fields whose names differ.
    attributes: ClassVar[Mapping[str, str]] = {}
    #: True if processing silence from rest leaves the plugin at rest (no LFO or other
    #: free-running state, no internal framing); then the plugin is primed. False selects
    #: fixed-size internal blocks with ``fixed_block_size`` frames of latency (or more).
    silence_is_neutral: ClassVar[bool] = True
    #: Frames of silence a primed plugin is primed with, and the largest chunk it is given.
    #: pedalboard's own default ``buffer_size`` (a whole-signal call prepares the DSP the
    #: same way); smaller for a plugin whose every call costs as much as a chunk this size.
    prime_frames: ClassVar[int] = PRIME_FRAMES
    #: Internal block size (frames) when ``silence_is_neutral`` is False.
    fixed_block_size: ClassVar[int] = 256
    #: True if the plugin returns fewer frames than it is given until its pipeline is
    #: full (it reports a latency to pedalboard): the output then goes through a FIFO.
    holds_back_audio: ClassVar[bool] = False
    #: Frames of latency added to what the plugin was measured to hold back, for a plugin
    #: whose count of returned frames wanders by a few frames (a resampler's rounding).
    held_back_margin: ClassVar[int] = 0
    #: Fields the plugin only reads when it is prepared; changing one restarts the effect.
    restart_fields: ClassVar[Collection[str]] = ()
    #: Seconds per independently processed segment: selects the "segments" strategy.
    segment_seconds: ClassVar[float | None] = None
    #: Overlap (and crossfade) of consecutive segments, in seconds.
    crossfade_seconds: ClassVar[float] = 0.0
    #: Most channels the plugin processes together. JUCE's effects handle mono and
    #: stereo; wider signals are processed as stereo pairs (and a trailing mono channel),
    #: each by its own plugin instance.
    max_plugin_channels: ClassVar[int] = 2

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        plugin_class = cls.__dict__.get("plugin_class")
        params = cls.__dict__.get("Params")
        if plugin_class is not None and params is not None and "plugin_values" not in cls.__dict__:
            for field in params.__struct_fields__:
                attribute = cls.attributes.get(field, field)
                if not hasattr(plugin_class, attribute):
                    raise TypeError(
                        f"{cls.__qualname__}.Params.{field}: {plugin_class.__name__} has no "
                        f"attribute {attribute!r}; map it in `attributes` or override "
                        f"`plugin_values`"
                    )
        if cls.strategy() == "fixed" and cls.fixed_block_size < 3:
            # (channels, 1) and (2, 2) blocks are ambiguous to pedalboard.
            raise TypeError(f"{cls.__qualname__}.fixed_block_size must be at least 3")
        for field in cls.restart_fields:
            if params is not None and field not in params.__struct_fields__:
                raise TypeError(f"{cls.__qualname__}.restart_fields names {field!r}, not a field")

    @classmethod
    def strategy(cls) -> Strategy:
        """How the plugin is fed: "primed", "fixed" or "segments" (module docstring)."""
        if cls.segment_seconds is not None:
            return "segments"
        return "primed" if cls.silence_is_neutral else "fixed"

    # -- hooks for subclasses ------------------------------------------------------

    def make_plugin(self, values: Mapping[str, Any]) -> pedalboard.Plugin:
        """A new plugin instance (one per channel group), configured with ``values``
        (:meth:`plugin_values` of the current parameters)."""
        plugin = self.plugin_class()
        for attribute, value in values.items():
            setattr(plugin, attribute, value)
        return plugin

    def plugin_values(self, params: Params) -> dict[str, Any]:
        """The plugin attributes to set for ``params``: by default every field, renamed
        through :attr:`attributes`. Override to convert units (ms to s, names to enums...)."""
        return {
            self.attributes.get(field, field): getattr(params, field) for field in params.__struct_fields__
        }

    # -- the Effect contract ---------------------------------------------------------

    def prepare(self) -> None:
        width = self.max_plugin_channels
        self._groups = [
            slice(start, min(start + width, self.channels)) for start in range(0, self.channels, width)
        ]
        # process() may hand a block straight to the one plugin (see there).
        self._direct = len(self._groups) == 1 and not self.holds_back_audio and self.strategy() == "primed"
        # The plugins are made (fresh ones: reset() must sound like a new instance) by
        # apply_params, which always follows.
        self._plugins: list[pedalboard.Plugin] | None = None
        self._applied: Params | None = None
        self._values: dict[str, Any] = {}
        self._latency = 0

    def apply_params(self, params: Params) -> None:
        values = self.plugin_values(params)
        if self._plugins is None or self._restarts(params):
            self._start(values)
        else:
            # Attributes are read by the plugin at its next process call: live automation
            # without preparing the DSP again (JUCE smooths the gains itself). Only the
            # changed ones: some setters reset the plugin even to the same value.
            changed = {k: v for k, v in values.items() if self._values.get(k, _UNSET) != v}
            for plugin in self._plugins:
                for attribute, value in changed.items():
                    setattr(plugin, attribute, value)
        self._values = dict(values)
        self._applied = params

    def _restarts(self, params: Params) -> bool:
        old = self._applied
        return old is not None and any(getattr(old, f) != getattr(params, f) for f in self.restart_fields)

    @property
    def latency(self) -> int:
        return self._latency

    def process(self, block: np.ndarray) -> np.ndarray:
        # The live case, once primed: one plugin, a float32 block it takes whole. Straight
        # to pedalboard, no copies (a quarter of the per-block cost of a 256-frame stream).
        if self._direct and self._primed:
            shape = block.shape
            if (
                block.dtype == _FLOAT32
                and len(shape) == 2
                and shape[0] == self.channels
                and 0 < shape[1] <= self.prime_frames
            ):
                # (input_array, sample_rate, buffer_size, reset) by position: pybind11 matches
                # keyword arguments by name on every call, 6,000 instructions a block here
                # (bench/live_instructions.py).
                return self._plugins[0].process(block, self.sample_rate, self.prime_frames, False)
        block = np.asarray(block, dtype=np.float32)
        if block.ndim != 2 or block.shape[0] != self.channels:
            raise ValueError(f"expected a block shaped ({self.channels}, frames), got {block.shape}")
        strategy = self.strategy()
        if strategy == "primed":
            return self._process_primed(block)
        if strategy == "fixed":
            return self._process_fixed(block)
        return self._process_segments(block)

    # -- starting (construction, reset, a restart field changed) -----------------------

    def _start(self, values: Mapping[str, Any]) -> None:
        self._plugins = [self.make_plugin(values) for _ in self._groups]
        channels = self.channels
        strategy = self.strategy()
        if strategy == "primed":
            # Priming waits for the first process() call, so that it runs with the
            # parameters in force then, exactly like a fresh plugin's first call.
            self._primed = False
            self._latency = 0
            if self.holds_back_audio:
                # A plugin that holds audio back is given at least MIN_CHUNK frames at a
                # time (so up to MIN_CHUNK - 1 frames wait here): such plugins do not
                # all remember their channel count, and read (2, 1) as one channel.
                self._latency = self._held_back(values)[1] + MIN_CHUNK - 1
                self._pending = np.zeros((channels, 0), dtype=np.float32)
            self._queues = [_Frames(g.stop - g.start) for g in self._groups]
        elif strategy == "fixed":
            size = self.fixed_block_size
            held = self._held_back(values)[1] + self.held_back_margin if self.holds_back_audio else 0
            self._latency = size + held
            self._fifo_in = np.zeros((channels, size), dtype=np.float32)
            self._fifo_fill = 0
            # Output frame t is the plugin's (aligned) output for input frame t - latency.
            self._queues = [_Frames(g.stop - g.start, 2 * self._latency) for g in self._groups]
            for queue in self._queues:
                queue.push_zeros(self._latency)
        else:
            size, fade = self._segment_frames()
            self._latency = size + fade
            self._fifo_in = np.zeros((channels, size), dtype=np.float32)
            self._fifo_fill = 0
            self._history = np.zeros((channels, fade), dtype=np.float32)
            self._tails = [np.zeros((g.stop - g.start, fade), dtype=np.float32) for g in self._groups]
            self._first_segment = True
            self._queues = [_Frames(g.stop - g.start, 2 * self._latency) for g in self._groups]
            for queue in self._queues:
                queue.push_zeros(self._latency)
            ramp = np.sin(0.5 * np.pi * (np.arange(fade) + 0.5) / max(fade, 1)) ** 2
            self._fade_in = ramp.astype(np.float32)
            self._fade_out = (1.0 - ramp).astype(np.float32)

    def _segment_frames(self) -> tuple[int, int]:
        assert self.segment_seconds is not None
        size = max(PRIME_FRAMES // 64, round(self.segment_seconds * self.sample_rate))
        fade = min(size, round(self.crossfade_seconds * self.sample_rate))
        return size, fade

    def _held_back(self, values: Mapping[str, Any]) -> tuple[int, int]:
        """(frames held back right after priming, most frames ever held back) for a plugin
        with ``values``, measured on silence with the strategy's own block sizes; the
        largest over the channel groups. Cached: it depends on nothing else."""
        strategy = self.strategy()
        block = self.prime_frames if strategy == "primed" else self.fixed_block_size
        widths = sorted({g.stop - g.start for g in self._groups})
        key = (
            type(self),
            self.sample_rate,
            tuple(widths),
            block,
            tuple(sorted((k, repr(v)) for k, v in values.items())),
        )
        if key not in _HELD_BACK:
            results = [self._measure_held_back(values, w, block, strategy == "primed") for w in widths]
            _HELD_BACK[key] = (max(r[0] for r in results), max(r[1] for r in results))
        return _HELD_BACK[key]

    def _measure_held_back(
        self, values: Mapping[str, Any], width: int, block: int, primed: bool
    ) -> tuple[int, int]:
        plugin = self.make_plugin(values)
        zeros = np.zeros((width, block), dtype=np.float32)
        fed = returned = worst = 0
        after_priming = None
        enough = max(round(PROBE_SECONDS * self.sample_rate), 16 * block)
        limit = 20 * enough
        full_since = None
        while fed < limit:
            out = plugin.process(zeros, self.sample_rate, buffer_size=self.prime_frames, reset=False)
            fed += block
            returned += out.shape[1]
            if after_priming is None:
                after_priming = fed - returned
            worst = max(worst, fed - returned)
            if out.shape[1] == block and full_since is None:
                full_since = fed
            if full_since is not None and fed >= full_since + enough:
                break
        else:
            raise RuntimeError(f"{type(self).__name__}: the plugin never returned audio on silence")
        assert after_priming is not None
        return (after_priming, worst) if primed else (0, worst)

    # -- strategy 1: prime once, then chunks of at most prime_frames ---------------------

    def _run(self, chunk: np.ndarray, out: np.ndarray) -> None:
        """Process ``chunk`` (all channels) into ``out`` through each group's plugin, for a
        plugin that returns as many frames as it is given."""
        assert self._plugins is not None
        for group, plugin in zip(self._groups, self._plugins, strict=True):
            result = plugin.process(
                chunk[group], self.sample_rate, buffer_size=self.prime_frames, reset=False
            )
            if result.shape[1] != chunk.shape[1]:
                raise RuntimeError(
                    f"internal error: {type(plugin).__name__} returned {result.shape[1]} frames "
                    f"for {chunk.shape[1]}; it holds audio back (set holds_back_audio)"
                )
            out[group] = result

    def _run_queued(self, chunk: np.ndarray, reset: bool = False) -> list[np.ndarray]:
        assert self._plugins is not None
        return [
            plugin.process(chunk[group], self.sample_rate, buffer_size=self.prime_frames, reset=reset)
            for group, plugin in zip(self._groups, self._plugins, strict=True)
        ]

    def _process_primed(self, block: np.ndarray) -> np.ndarray:
        if self.holds_back_audio:
            return self._process_primed_queued(block)
        if not self._primed:
            silence = np.zeros((self.channels, self.prime_frames), dtype=np.float32)
            self._run(silence, np.empty_like(silence))
            self._primed = True
        out = np.empty(block.shape, dtype=np.float32)
        for start in range(0, block.shape[1], self.prime_frames):
            stop = start + self.prime_frames
            self._run(block[:, start:stop], out[:, start:stop])
        return out

    def _process_primed_queued(self, block: np.ndarray) -> np.ndarray:
        if not self._primed:
            silence = np.zeros((self.channels, self.prime_frames), dtype=np.float32)
            # What the plugin returns of the priming is silence; keep just enough of it
            # that the output is `latency` frames behind the input.
            for result, queue in zip(self._run_queued(silence), self._queues, strict=True):
                queue.push_zeros(self._latency - (self.prime_frames - result.shape[1]))
            self._primed = True
        data = np.concatenate([self._pending, block], axis=1) if self._pending.shape[1] else block
        frames = data.shape[1]
        start = 0
        while frames - start >= MIN_CHUNK:
            stop = min(frames, start + self.prime_frames)
            if 0 < frames - stop < MIN_CHUNK:
                stop = frames - MIN_CHUNK  # leave a chunk the plugin can read
            for result, queue in zip(self._run_queued(data[:, start:stop]), self._queues, strict=True):
                queue.push(result)
            start = stop
        self._pending = data[:, start:].copy()
        out = np.empty(block.shape, dtype=np.float32)
        for group, queue in zip(self._groups, self._queues, strict=True):
            queue.pop_into(out[group])
        return out

    # -- strategy 2: fixed-size internal blocks through FIFOs ---------------------------

    def _gather(self, block: np.ndarray, full: Any) -> np.ndarray:
        """Collect ``block`` into the input FIFO, calling ``full()`` each time it holds a
        whole internal block; then return as many frames from the output FIFOs."""
        size = self._fifo_in.shape[1]
        frames = block.shape[1]
        done = 0
        while done < frames:
            fill = self._fifo_fill
            take = min(size - fill, frames - done)
            self._fifo_in[:, fill : fill + take] = block[:, done : done + take]
            self._fifo_fill = fill + take
            done += take
            if self._fifo_fill == size:
                full()
                self._fifo_fill = 0
        out = np.empty(block.shape, dtype=np.float32)
        for group, queue in zip(self._groups, self._queues, strict=True):
            queue.pop_into(out[group])
        return out

    def _process_fixed(self, block: np.ndarray) -> np.ndarray:
        def full() -> None:
            for result, queue in zip(self._run_queued(self._fifo_in), self._queues, strict=True):
                queue.push(result)

        return self._gather(block, full)

    # -- strategy 3: independent segments, crossfaded ---------------------------------

    def _process_segments(self, block: np.ndarray) -> np.ndarray:
        def full() -> None:
            size, fade = self._fifo_in.shape[1], self._history.shape[1]
            segment = np.concatenate([self._history, self._fifo_in], axis=1)
            self._history = segment[:, size:].copy()
            results = self._run_queued(segment, reset=True)
            for index, (result, queue) in enumerate(zip(results, self._queues, strict=True)):
                if result.shape[1] != size + fade:
                    raise RuntimeError(
                        f"internal error: a whole-signal call returned {result.shape[1]} frames "
                        f"for {size + fade}"
                    )
                if self._first_segment:
                    # The first `fade` frames stand for the silence before the stream.
                    queue.push(result[:, fade:size])
                else:
                    head = self._tails[index] * self._fade_out + result[:, :fade] * self._fade_in
                    queue.push(head)
                    queue.push(result[:, fade:size])
                self._tails[index] = result[:, size:].copy()
            self._first_segment = False

        return self._gather(block, full)

    # -- tails ---------------------------------------------------------------------------

    def impulse_tail_seconds(
        self,
        values: Mapping[str, Any],
        *,
        amplitude: float = 1.0,
        threshold: float = TAIL_THRESHOLD,
        limit_seconds: float = 120.0,
    ) -> float:
        """The tail of a linear (time-invariant) plugin configured with ``values``, from its
        impulse response ``h``: the output ``m`` frames after any input with ``|x| <= 1``
        stops is at most ``sum(|h[k]|, k >= m)``, so the tail is the first ``m`` where that
        sum is below ``threshold``. ``amplitude`` scales the impulse (a small one measures a
        saturating filter's small-signal response, its slowest). ``math.inf`` if it has not
        decayed within ``limit_seconds``. Cached per class, sample rate and values."""
        settings = tuple(sorted((k, repr(v)) for k, v in values.items()))
        key = (type(self), self.sample_rate, amplitude, threshold, settings)
        if key in _TAILS:
            return _TAILS[key]
        frames = max(1024, round(self.sample_rate))
        tail = math.inf
        while frames <= limit_seconds * self.sample_rate:
            impulse = np.zeros((1, frames), dtype=np.float32)
            impulse[0, 0] = amplitude
            h = np.abs(self.make_plugin(values).process(impulse, self.sample_rate)[0].astype(np.float64))
            h /= amplitude
            # float32 filters can settle on a tiny limit cycle (around 1e-7) instead of
            # decaying to 0: that floor is not a tail, and summed for ever it would be.
            h = np.maximum(h - np.median(h[-frames // 8 :]), 0.0)
            suffix = np.cumsum(h[::-1])[::-1]  # suffix[m] = sum(h[m:])
            if suffix[-frames // 4] < threshold * 1e-3:  # decayed well within the window
                above = np.flatnonzero(suffix >= threshold)
                tail = (int(above[-1]) + 1 if above.size else 0) / self.sample_rate
                break
            frames *= 4
        _TAILS[key] = tail
        return tail

    def probed_tail_seconds(
        self,
        values: Mapping[str, Any],
        probes: Mapping[str, np.ndarray],
        *,
        margin: float = 1.25,
        threshold: float = TAIL_THRESHOLD,
        limit_seconds: float = 120.0,
    ) -> float:
        """The tail of a nonlinear plugin configured with ``values``, measured: each probe
        (mono full-scale input) is followed by silence, and the tail is the longest time
        any probe's output stays at or above ``threshold / 2``, times ``margin``.
        ``math.inf`` if one has not decayed within ``limit_seconds``. Cached."""
        settings = tuple(sorted((k, repr(v)) for k, v in values.items()))
        key = (type(self), self.sample_rate, "probed", tuple(sorted(probes)), margin, threshold, settings)
        if key in _TAILS:
            return _TAILS[key]
        longest = 0.0
        for probe in probes.values():
            silence = max(1024, round(self.sample_rate))
            while True:
                x = np.concatenate([probe, np.zeros(silence, dtype=np.float32)])[np.newaxis]
                y = np.abs(self.make_plugin(values).process(x, self.sample_rate)[0][probe.size :])
                loud = np.flatnonzero(y >= threshold / 2)
                last = int(loud[-1]) + 1 if loud.size else 0
                if last < silence * 3 // 4:
                    longest = max(longest, last / self.sample_rate)
                    break
                silence *= 4
                if silence > limit_seconds * self.sample_rate:
                    longest = math.inf
                    break
        tail = longest * margin
        _TAILS[key] = tail
        return tail


def feedback_tail_seconds(loop_seconds: float, feedback: float, gain: float = 1.0) -> float:
    """The tail of a delay loop: a delay of at most ``loop_seconds`` fed back with gain
    ``feedback`` and heard with gain ``gain``. After the input stops, the loop holds at most
    ``1 / (1 - |feedback|)`` (full-scale input built up), heard once within one loop and
    then scaled by ``|feedback|`` per loop, so it is under -60 dBFS after
    ``loop_seconds * (1 + log(1e-3 / peak) / log|feedback|)``."""
    feedback = abs(feedback)
    if gain <= 0.0 or loop_seconds <= 0.0:
        return 0.0
    if feedback >= 1.0:
        return math.inf
    peak = gain / (1.0 - feedback)
    if feedback == 0.0 or peak <= TAIL_THRESHOLD:
        return loop_seconds if peak > TAIL_THRESHOLD else 0.0
    loops = max(0.0, math.log(TAIL_THRESHOLD / peak) / math.log(feedback))
    return loop_seconds * (1.0 + loops)
