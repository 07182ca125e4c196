"""The audio clock of one live connection: late blocks and underruns, counted in O(1)
per block with no allocation (two ``time.perf_counter()`` readings and a few float
updates), so that it can sit on the per-block path.

The clock runs at the sample rate from the arrival of a connection's first block: the
audio received so far "plays" until ``due``, the time its last frame is reached. Then:

- a block is **late** when its reply (processed and handed to the socket; for a
  stream's processing task, written to the output ring) comes after the clock reached
  the block's last frame: ``done > due`` with ``due`` counting the block. A client that
  sends in real time sees a late block exactly when the server took longer than the
  block lasts or had fallen behind; one that sends faster than real time builds up
  headroom and sees none unless the server falls behind the audio itself.
- an **underrun** is the other side's fault: a block arrived after the clock had run
  past all the audio received (the previous block would have finished playing) while
  the server had already answered everything and sat waiting. The clock restarts at
  that arrival. A server that is behind (its last reply after ``due``) does not count
  an underrun and does not restart the clock, so its backlog keeps counting as late.
"""

from __future__ import annotations

__all__ = ["AudioClock"]


class AudioClock:
    """One connection's audio clock; see the module docstring. Call :meth:`arrive` when
    a block comes in (before any work on it) and :meth:`done` when its answer is out,
    both with ``time.perf_counter()``."""

    __slots__ = ("_done", "_step", "blocks", "due", "frames", "late", "underruns")

    def __init__(self, sample_rate: int) -> None:
        #: Seconds per frame.
        self._step = 1.0 / sample_rate
        #: perf_counter time at which the audio received so far has played (0.0: not started).
        self.due = 0.0
        #: perf_counter time of the last answer.
        self._done = 0.0
        self.blocks = 0
        self.frames = 0
        self.late = 0
        self.underruns = 0

    def arrive(self, frames: int, now: float) -> None:
        due = self.due
        if now > due and self._done <= due:
            # Ran dry while the server waited for audio: the other side's gap.
            if self.blocks:
                self.underruns += 1
            due = now
        self.due = due + frames * self._step
        self.blocks += 1
        self.frames += frames

    def done(self, now: float) -> None:
        if now > self.due:
            self.late += 1
        self._done = now
