"""Fixed-capacity ring buffers of float32 audio frames: one writer, many readers.

A stream (a named, shared live session) has an *input ring*, written by its producers
(WebSocket or REST) and read by its one processing task, and an *output ring*, written
by that task and read by any number of listeners. Both are :class:`RingBuffer`.

Positions are absolute frame counts (Python ints: they never wrap), from 0 or from the
``start`` a ring is made with. The ring holds the frames ``[write_pos - capacity,
write_pos)`` at most (fewer at the start); the frame at position ``p`` lives in column
``p % capacity`` of a ``(channels, capacity)`` array. A *mirror* ring (a copy of another
process's output ring, relayed frame for frame) starts where its source is and jumps
over what the relay missed with :meth:`RingBuffer.skip_to`; readers count the frames
jumped over as lost, like a lap. Each :class:`RingReader` has its own cursor (the next
position it will read); REST pollers keep their cursor themselves and call
:meth:`RingBuffer.read_at`.

Overflow:

- ``"overwrite"`` (output rings): the writer never waits and never fails; a reader
  that falls more than ``capacity`` frames behind is *lapped*. Its next read skips
  ahead to the oldest frame still held, says how many frames it lost, and counts an
  overrun.
- ``"reject"`` and ``"drop_oldest"`` (input rings) protect one reader, the *guard*
  (the processing task): ``"reject"`` raises :class:`RingOverflow` and writes nothing
  if the guard's unread frames plus the block would exceed the capacity;
  ``"drop_oldest"`` writes anyway, and the frames the guard had not read are lost to
  it and counted as dropped.

Thread safety: one ``threading.Lock`` per ring; every public method takes it, and the
copies in and out (small memcpy's) happen under it. Nothing ever waits for data:
callers (asyncio tasks) are woken by their own events and then read what is there.
Reads return copies, so a caller may keep or modify them.

The PCM wire format that producers and consumers speak is :mod:`fxhost.audio.pcm`.
"""

from __future__ import annotations

import mmap
import operator
import threading
from typing import Literal

import msgspec
import numpy as np

__all__ = ["Overflow", "ReaderStats", "RingBuffer", "RingOverflow", "RingReader", "RingStats"]

Overflow = Literal["overwrite", "reject", "drop_oldest"]
_OVERFLOWS = ("overwrite", "reject", "drop_oldest")


class RingOverflow(Exception):
    """A block did not fit (``overflow="reject"``); nothing of it was written."""

    def __init__(self, needed: int, free: int, capacity: int) -> None:
        self.needed = needed
        self.free = free
        self.capacity = capacity
        super().__init__(
            f"the ring buffer is full: a block of {needed} frames does not fit in the {free} frames "
            f"free (capacity {capacity})"
        )


class ReaderStats(msgspec.Struct, frozen=True, kw_only=True):
    """One registered reader, now."""

    name: str
    #: The next position it will read.
    cursor: int
    #: ``write_pos - cursor`` (above the capacity when lapped and not yet told).
    lag: int
    #: Frames it skipped because it was lapped (reported by its reads so far).
    lost: int
    #: Times it was lapped.
    overruns: int


class RingStats(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of a ring's counters (since creation) and fill (now)."""

    channels: int
    capacity: int
    #: Frames held that the furthest-behind reader has not read yet (``write_pos`` minus
    #: the oldest unread position among the readers, at most ``capacity``); with no
    #: reader, the frames held.
    fill: int
    #: Frames accepted by ``write`` (``write_pos`` less the ``start`` and the frames
    #: jumped over by ``skip_to``).
    frames_written: int
    #: Frames returned by all reads (readers' and ``read_at``).
    frames_read: int
    #: Reads that found their cursor lapped (older than the oldest frame held).
    overruns: int
    #: Frames those lapped reads skipped.
    frames_lost: int
    #: Reads that asked for at least one frame and found none available.
    underruns: int
    #: Frames refused by ``overflow="reject"``.
    rejected_frames: int
    #: Frames accepted but gone before the guard read them (``"drop_oldest"``), and, with
    #: no guard to protect, the frames of a block longer than the capacity that never
    #: fitted.
    dropped_frames: int
    readers: list[ReaderStats]


class RingReader:
    """A cursor into a :class:`RingBuffer`; made by :meth:`RingBuffer.reader`.

    A reader is meant for one consumer; it may be used from any thread (the ring's lock
    guards it). After :meth:`RingBuffer.remove_reader` its reads raise ``RuntimeError``.
    """

    __slots__ = ("_active", "_cursor", "_lost", "_overruns", "_ring", "name")

    def __init__(self, ring: RingBuffer, cursor: int, name: str) -> None:
        self._ring = ring
        self._cursor = cursor
        self._lost = 0
        self._overruns = 0
        self._active = True
        self.name = name

    def __repr__(self) -> str:
        return f"RingReader(name={self.name!r}, cursor={self.cursor}, lag={self.lag})"

    @property
    def ring(self) -> RingBuffer:
        return self._ring

    @property
    def active(self) -> bool:
        """False once removed from its ring."""
        return self._active

    @property
    def cursor(self) -> int:
        """The next position this reader will read."""
        with self._ring._lock:
            return self._cursor

    @property
    def available(self) -> int:
        """Frames readable now (``0..capacity``), lapped frames excluded."""
        ring = self._ring
        with ring._lock:
            return ring._write_pos - max(self._cursor, ring._write_pos - ring._capacity, ring._floor)

    @property
    def lag(self) -> int:
        """``write_pos - cursor``; above the capacity when lapped (and not yet told)."""
        with self._ring._lock:
            return self._ring._write_pos - self._cursor

    @property
    def lost(self) -> int:
        """Frames skipped so far because this reader was lapped."""
        with self._ring._lock:
            return self._lost

    def read(self, max_frames: int | None = None) -> tuple[np.ndarray, int]:
        """``(block, lost)``: a copy of up to ``max_frames`` frames (all available if
        None), shaped ``(channels, k)``. If the reader was lapped it first skips ahead
        to the oldest frame held and ``lost`` says how many frames it missed."""
        return self._ring._read(self, max_frames, exact=False)

    def read_exact(self, frames: int) -> tuple[np.ndarray | None, int]:
        """``(block, lost)`` with exactly ``frames`` frames, or ``(None, lost)`` if fewer
        are available (nothing is consumed then, but a lapped reader still skips ahead
        and is told of it once). ``frames`` must be ``0..capacity``."""
        return self._ring._read(self, operator.index(frames), exact=True)

    def skip_to_end(self) -> int:
        """Move the cursor to ``write_pos``; returns how many frames were skipped (the
        lag, lapped frames included). Skipped frames are neither read nor lost."""
        ring = self._ring
        with ring._lock:
            self._check_active()
            skipped = ring._write_pos - self._cursor
            self._cursor = ring._write_pos
            return skipped

    def _check_active(self) -> None:
        if not self._active:
            raise RuntimeError(f"reader {self.name!r} was removed from its ring buffer")


def _mapped_zeros(channels: int, capacity: int) -> np.ndarray:
    """A zeroed ``(channels, capacity)`` float32 array in an anonymous mapping of its own:
    its pages take memory only once written, and go back to the system when the ring is
    dropped. (``np.zeros`` of a few MiB, once malloc has raised its mmap threshold, comes
    from the heap, is touched whole, and stays with the process after it is freed.)"""
    region = mmap.mmap(-1, channels * capacity * 4)
    return np.frombuffer(region, dtype=np.float32).reshape(channels, capacity)


class RingBuffer:
    """``capacity`` frames of ``channels`` float32 samples; see the module docstring."""

    def __init__(self, channels: int, capacity: int, *, start: int = 0) -> None:
        channels = operator.index(channels)
        capacity = operator.index(capacity)
        start = operator.index(start)
        if channels < 1:
            raise ValueError(f"channels must be >= 1, not {channels}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, not {capacity}")
        if start < 0:
            raise ValueError(f"start must be >= 0, not {start}")
        self._channels = channels
        self._capacity = capacity
        self._buf = _mapped_zeros(channels, capacity)
        self._lock = threading.Lock()
        self._write_pos = start
        #: No frame below this position was ever written here (the start, or where
        #: ``skip_to`` last jumped): the oldest frame held is never older.
        self._floor = start
        #: Positions not written by ``write``: the start, and the jumps of ``skip_to``.
        self._skipped = start
        self._readers: dict[int, RingReader] = {}
        self._names = 0
        self._frames_read = 0
        self._overruns = 0
        self._frames_lost = 0
        self._underruns = 0
        self._rejected = 0
        self._dropped = 0

    def __repr__(self) -> str:
        return (
            f"RingBuffer(channels={self._channels}, capacity={self._capacity}, "
            f"write_pos={self.write_pos}, readers={len(self._readers)})"
        )

    @property
    def channels(self) -> int:
        return self._channels

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def write_pos(self) -> int:
        """Frames written since creation; the position the next frame will have."""
        with self._lock:
            return self._write_pos

    @property
    def oldest_pos(self) -> int:
        """The position of the oldest frame held: ``write_pos - capacity``, or the start
        (or the last ``skip_to``) when that is later."""
        with self._lock:
            return max(self._floor, self._write_pos - self._capacity)

    # -- writing ---------------------------------------------------------------------

    def write(
        self, block: np.ndarray, *, overflow: Overflow = "overwrite", guard: RingReader | None = None
    ) -> int:
        """Append ``block`` (``(channels, n)``, any float dtype, any ``n >= 0``); returns
        ``n``. ``overflow`` and ``guard`` are explained in the module docstring; with no
        guard, ``"reject"`` refuses only a block longer than the capacity and
        ``"drop_oldest"`` is ``"overwrite"``. A block longer than the capacity leaves only
        its last ``capacity`` frames (``"reject"`` refuses it)."""
        block = np.asarray(block)
        if block.dtype.kind != "f":
            raise TypeError(f"audio blocks must hold floating-point samples, not {block.dtype}")
        if block.ndim != 2 or block.shape[0] != self._channels:
            raise ValueError(
                f"expected a block shaped (channels={self._channels}, frames), got {block.shape}"
            )
        if overflow not in _OVERFLOWS:
            raise ValueError(f"overflow must be one of {', '.join(_OVERFLOWS)}, not {overflow!r}")
        n = block.shape[1]
        cap = self._capacity
        with self._lock:
            if guard is not None and (guard._ring is not self or not guard._active):
                raise ValueError("the guard is not a reader of this ring buffer")
            wp = self._write_pos
            oldest = wp - cap
            if oldest < self._floor:
                oldest = self._floor
            if overflow == "overwrite" or guard is None:
                if overflow == "reject" and n > cap:
                    self._rejected += n
                    raise RingOverflow(n, cap, cap)
                if n > cap:
                    self._dropped += n - cap
            else:
                unread_from = max(guard._cursor, oldest)
                if overflow == "reject":
                    free = cap - (wp - unread_from)
                    if n > free:
                        self._rejected += n
                        raise RingOverflow(n, free, cap)
                else:
                    new_oldest = wp + n - cap
                    if new_oldest > unread_from:
                        self._dropped += new_oldest - unread_from
            if n == 0:
                return 0
            if n > cap:
                block = block[:, n - cap :]
                k = cap
            else:
                k = n
            buf = self._buf
            start = (wp + n - k) % cap
            first = cap - start
            if k <= first:
                buf[:, start : start + k] = block
            else:
                buf[:, start:] = block[:, :first]
                buf[:, : k - first] = block[:, first:]
            self._write_pos = wp + n
            return n

    def write_silence(self, frames: int) -> None:
        """Append ``frames`` frames of silence (the stream's answer to input frames it
        never processed, so that output positions stay input positions). Zeroes at most
        ``capacity`` columns in place: no block is made."""
        frames = operator.index(frames)
        if frames < 0:
            raise ValueError(f"frames must be >= 0, not {frames}")
        cap = self._capacity
        with self._lock:
            wp = self._write_pos
            k = min(frames, cap)
            start = (wp + frames - k) % cap
            first = cap - start
            if k <= first:
                self._buf[:, start : start + k] = 0.0
            else:
                self._buf[:, start:] = 0.0
                self._buf[:, : k - first] = 0.0
            self._write_pos = wp + frames

    def skip_to(self, pos: int) -> int:
        """Jump ``write_pos`` forward to ``pos`` over frames that never came (a mirror
        ring whose relay missed some); returns how many were jumped over. The ring holds
        nothing older than ``pos`` afterwards: a reader behind ``pos`` is told on its next
        read that it lost the frames up to ``pos`` (those it had not read yet before the
        jump included), like a lapped reader."""
        pos = operator.index(pos)
        with self._lock:
            jump = pos - self._write_pos
            if jump < 0:
                raise ValueError(f"cannot skip back to {pos}: {self._write_pos} frames were written")
            if jump:
                self._write_pos = self._floor = pos
                self._skipped += jump
            return jump

    # -- readers -----------------------------------------------------------------------

    def reader(self, *, start: Literal["now", "oldest"] | int = "now", name: str = "") -> RingReader:
        """Register a reader whose cursor starts at ``write_pos`` (``"now"``: only new
        frames), at the oldest frame held (``"oldest"``), or at an absolute position
        ``0..write_pos`` (a consumer resuming; one older than the oldest frame held is
        lapped, and its first read says how many frames it lost). An empty name is
        replaced by ``reader-<n>``."""
        if start not in ("now", "oldest") and not isinstance(start, int):
            raise ValueError(f"start must be 'now', 'oldest' or a position, not {start!r}")
        with self._lock:
            if isinstance(start, int) and not 0 <= start <= self._write_pos:
                raise ValueError(
                    f"position {start} is not in 0..{self._write_pos} (write_pos: the frames written so far)"
                )
            self._names += 1
            if start == "now":
                cursor = self._write_pos
            elif start == "oldest":
                cursor = max(self._floor, self._write_pos - self._capacity)
            else:
                cursor = start
            reader = RingReader(self, cursor, name or f"reader-{self._names}")
            self._readers[id(reader)] = reader
            return reader

    def remove_reader(self, reader: RingReader) -> None:
        """Unregister ``reader`` (idempotent); its later reads raise ``RuntimeError``."""
        if reader._ring is not self:
            raise ValueError("that reader belongs to another ring buffer")
        with self._lock:
            self._readers.pop(id(reader), None)
            reader._active = False

    # -- reading -----------------------------------------------------------------------

    def read_at(self, cursor: int, max_frames: int) -> tuple[np.ndarray, int, int]:
        """A stateless read for pollers: ``(block, next_cursor, lost)``, ``block`` a copy
        of up to ``max_frames`` frames from ``cursor``. A cursor older than the oldest
        frame held moves up to it and ``lost`` says how many frames were skipped. Counted
        in the stats like a reader's read."""
        cursor = operator.index(cursor)
        max_frames = operator.index(max_frames)
        if max_frames < 0:
            raise ValueError(f"max_frames must be >= 0, not {max_frames}")
        if cursor < 0:
            raise ValueError(f"cursor must be >= 0, not {cursor}")
        with self._lock:
            wp = self._write_pos
            if cursor > wp:
                raise ValueError(
                    f"cursor {cursor} is ahead of the ring buffer: only {wp} frames were written so far "
                    f"(a cursor is at most write_pos, {wp})"
                )
            lost = 0
            oldest = wp - self._capacity
            if oldest < self._floor:
                oldest = self._floor
            if cursor < oldest:
                lost = oldest - cursor
                cursor = oldest
                self._overruns += 1
                self._frames_lost += lost
            k = min(max_frames, wp - cursor)
            if k == 0 and max_frames > 0:
                self._underruns += 1
            self._frames_read += k
            return self._copy_out(cursor, k), cursor + k, lost

    def _read(self, reader: RingReader, frames: int | None, exact: bool) -> tuple[np.ndarray | None, int]:
        if frames is not None:
            frames = operator.index(frames)
            if frames < 0:
                raise ValueError(f"the number of frames must be >= 0, not {frames}")
            if exact and frames > self._capacity:
                raise ValueError(
                    f"cannot read {frames} frames at once from a ring buffer of capacity {self._capacity}"
                )
        with self._lock:
            reader._check_active()
            wp = self._write_pos
            cursor = reader._cursor
            lost = 0
            oldest = wp - self._capacity
            if oldest < self._floor:
                oldest = self._floor
            if cursor < oldest:
                lost = oldest - cursor
                cursor = reader._cursor = oldest
                reader._lost += lost
                reader._overruns += 1
                self._overruns += 1
                self._frames_lost += lost
            available = wp - cursor
            k = available if frames is None else min(frames, available)
            if available == 0 and k != frames:
                self._underruns += 1
            if exact and k < frames:
                return None, lost
            reader._cursor = cursor + k
            self._frames_read += k
            return self._copy_out(cursor, k), lost

    def _copy_out(self, cursor: int, k: int) -> np.ndarray:
        # Under the lock; [cursor, cursor + k) is held.
        cap = self._capacity
        start = cursor % cap
        first = cap - start
        if k <= first:
            return self._buf[:, start : start + k].copy()
        out = np.empty((self._channels, k), dtype=np.float32)
        out[:, :first] = self._buf[:, start:]
        out[:, first:] = self._buf[:, : k - first]
        return out

    # -- stats -------------------------------------------------------------------------

    @property
    def stats(self) -> RingStats:
        with self._lock:
            wp = self._write_pos
            oldest = max(self._floor, wp - self._capacity)
            readers = list(self._readers.values())
            fill = wp - min((max(r._cursor, oldest) for r in readers), default=oldest)
            return RingStats(
                channels=self._channels,
                capacity=self._capacity,
                fill=fill,
                frames_written=wp - self._skipped,
                frames_read=self._frames_read,
                overruns=self._overruns,
                frames_lost=self._frames_lost,
                underruns=self._underruns,
                rejected_frames=self._rejected,
                dropped_frames=self._dropped,
                readers=[
                    ReaderStats(
                        name=r.name, cursor=r._cursor, lag=wp - r._cursor, lost=r._lost, overruns=r._overruns
                    )
                    for r in readers
                ],
            )
