"""fxhost.engine.ring: the ring buffers against a plain reference model (hypothesis
stateful), one writer and four readers in threads; and fxhost.audio.pcm, the interleaved
PCM wire conversions."""

from __future__ import annotations

import random
import struct
import sys
import threading
import time

import numpy as np
import pytest
from fxhost.audio.pcm import from_interleaved, to_interleaved
from fxhost.engine.ring import RingBuffer, RingOverflow, RingReader
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

POLICIES = ["overwrite", "reject", "drop_oldest"]

# -- the reference model ------------------------------------------------------------------


class ModelReader:
    def __init__(self, name: str, cursor: int) -> None:
        self.name = name
        self.cursor = cursor
        self.lost = 0
        self.overruns = 0


class RingMachine(RuleBasedStateMachine):
    """Every frame ever written is kept (``history[p]`` is the frame at position ``p``, a
    tuple of channel values), so each read is checked against what was written, not
    against the ring's own bookkeeping."""

    @initialize(
        channels=st.integers(1, 3), capacity=st.integers(1, 64), start=st.sampled_from([0, 0, 1, 100, 2**40])
    )
    def setup(self, channels: int, capacity: int, start: int) -> None:
        self.ring = RingBuffer(channels, capacity, **({"start": start} if start else {}))
        self.channels = channels
        self.cap = capacity
        # Positions never written (before the start, jumped over by skip_to) are absent:
        # a dict, so that a start of 2**40 costs nothing.
        self.history: dict[int, tuple[float, ...]] = {}
        self.wp = self.floor = start
        self.readers: list[tuple[RingReader, ModelReader]] = []  # creation order
        self.removed: list[RingReader] = []
        self.made = 0
        self.counters = dict.fromkeys(
            ["frames_read", "overruns", "frames_lost", "underruns", "rejected_frames", "dropped_frames"], 0
        )

    # helpers

    @property
    def oldest(self) -> int:
        return max(self.floor, self.wp - self.cap)

    def expect_block(self, block: np.ndarray | None, start: int, k: int) -> None:
        assert block is not None
        assert block.dtype == np.float32
        assert block.shape == (self.channels, k)
        frames = [self.history.get(p) for p in range(start, start + k)]
        assert None not in frames, "a read returned a position that was never written"
        expected = np.array(frames, dtype=np.float32).reshape(k, self.channels).T
        np.testing.assert_array_equal(block, expected)

    def catch_up(self, m: ModelReader) -> int:
        """A model read's first step: a lapped cursor skips to the oldest frame held."""
        if m.cursor >= self.oldest:
            return 0
        lost = self.oldest - m.cursor
        m.cursor = self.oldest
        m.lost += lost
        m.overruns += 1
        self.counters["overruns"] += 1
        self.counters["frames_lost"] += lost
        return lost

    # writing

    @rule(
        data=st.data(),
        policy=st.sampled_from(POLICIES),
        seed=st.integers(0, 2**32 - 1),
        float64=st.booleans(),
    )
    def write(self, data: st.DataObject, policy: str, seed: int, float64: bool) -> None:
        n = data.draw(st.integers(0, 3 * self.cap), label="n")
        pair = data.draw(st.sampled_from([None, *self.readers]), label="guard")
        guard_ring, guard = (None, None) if pair is None else pair
        values = np.random.default_rng(seed).standard_normal((self.channels, n))
        block = values if float64 else values.astype(np.float32)
        frames = [tuple(col) for col in values.astype(np.float32).T.tolist()]

        # Frames the guard has not read yet (all positions, lapped ones excluded).
        unread = set(range(max(guard.cursor, self.oldest), self.wp)) if guard else set()
        if policy == "reject":
            free = self.cap - len(unread)
            if n > free:
                with pytest.raises(RingOverflow) as info:
                    self.ring.write(block, overflow=policy, guard=guard_ring)
                assert (info.value.needed, info.value.free) == (n, free)
                self.counters["rejected_frames"] += n
                return
        assert self.ring.write(block, overflow=policy, guard=guard_ring) == n
        new_positions = set(range(self.wp, self.wp + n))
        self.history.update(zip(range(self.wp, self.wp + n), frames, strict=True))
        self.wp += n
        held = set(range(self.oldest, self.wp))
        if guard is not None and policy != "overwrite":
            self.counters["dropped_frames"] += len((unread | new_positions) - held)
        else:
            self.counters["dropped_frames"] += len(new_positions - held)

    @rule(n=st.integers(0, 200))
    def write_silence(self, n: int) -> None:
        """Silence for frames never processed: ``n`` zero frames, no guard, no counters."""
        self.ring.write_silence(n)
        self.history.update(dict.fromkeys(range(self.wp, self.wp + n), (0.0,) * self.channels))
        self.wp += n

    @rule(jump=st.integers(-2, 100))
    def skip_to(self, jump: int) -> None:
        if jump < 0:
            with pytest.raises(ValueError, match="cannot skip back"):
                self.ring.skip_to(self.wp + jump)
            return
        assert self.ring.skip_to(self.wp + jump) == jump
        if jump:
            self.wp = self.floor = self.wp + jump

    @rule(data=st.data())
    def write_with_removed_guard(self, data: st.DataObject) -> None:
        if not self.removed:
            return
        guard = data.draw(st.sampled_from(self.removed))
        with pytest.raises(ValueError, match="not a reader of this ring"):
            self.ring.write(np.zeros((self.channels, 1), np.float32), overflow="reject", guard=guard)

    # readers

    @rule(start=st.sampled_from(["now", "oldest"]), named=st.booleans())
    def add_reader(self, start: str, named: bool) -> None:
        self.made += 1
        name = f"listener-{self.made}" if named else ""
        reader = self.ring.reader(start=start, name=name)
        model = ModelReader(name or f"reader-{self.made}", self.wp if start == "now" else self.oldest)
        assert reader.name == model.name
        self.readers.append((reader, model))

    @rule(data=st.data())
    def add_reader_at(self, data: st.DataObject) -> None:
        """A consumer resuming from a position: any of 0..write_pos (an old one is lapped),
        and none beyond."""
        position = data.draw(st.integers(0, self.wp + 3), label="position")
        if position > self.wp:
            with pytest.raises(ValueError, match=f"position {position} is not in 0..{self.wp}"):
                self.ring.reader(start=position)
            return
        self.made += 1
        reader = self.ring.reader(start=position)
        assert reader.cursor == position
        self.readers.append((reader, ModelReader(f"reader-{self.made}", position)))

    @precondition(lambda self: self.readers)
    @rule(data=st.data())
    def remove_reader(self, data: st.DataObject) -> None:
        i = data.draw(st.integers(0, len(self.readers) - 1))
        reader, _ = self.readers.pop(i)
        self.ring.remove_reader(reader)
        self.ring.remove_reader(reader)  # idempotent
        self.removed.append(reader)
        with pytest.raises(RuntimeError, match="was removed"):
            reader.read()

    @precondition(lambda self: self.readers)
    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        reader, m = data.draw(st.sampled_from(self.readers))
        max_frames = data.draw(st.none() | st.integers(0, 2 * self.cap), label="max_frames")
        block, lost = reader.read(max_frames)
        assert lost == self.catch_up(m)
        available = self.wp - m.cursor
        k = available if max_frames is None else min(max_frames, available)
        if available == 0 and max_frames != 0:
            self.counters["underruns"] += 1
        self.expect_block(block, m.cursor, k)
        m.cursor += k
        self.counters["frames_read"] += k

    @precondition(lambda self: self.readers)
    @rule(data=st.data())
    def read_exact(self, data: st.DataObject) -> None:
        reader, m = data.draw(st.sampled_from(self.readers))
        frames = data.draw(st.integers(0, self.cap + 2), label="frames")
        if frames > self.cap:
            with pytest.raises(ValueError, match="capacity"):
                reader.read_exact(frames)
            return
        block, lost = reader.read_exact(frames)
        assert lost == self.catch_up(m)
        available = self.wp - m.cursor
        if available == 0 and frames > 0:
            self.counters["underruns"] += 1
        if available < frames:
            assert block is None
            return
        self.expect_block(block, m.cursor, frames)
        m.cursor += frames
        self.counters["frames_read"] += frames

    @precondition(lambda self: self.readers)
    @rule(data=st.data())
    def skip_to_end(self, data: st.DataObject) -> None:
        reader, m = data.draw(st.sampled_from(self.readers))
        assert reader.skip_to_end() == self.wp - m.cursor
        m.cursor = self.wp

    @rule(data=st.data(), kind=st.sampled_from(["valid", "too_old", "too_new", "negative"]))
    def read_at(self, data: st.DataObject, kind: str) -> None:
        max_frames = data.draw(st.integers(0, 2 * self.cap), label="max_frames")
        if kind == "too_old" and self.oldest == 0:
            kind = "valid"
        if kind == "too_new":
            cursor = data.draw(st.integers(self.wp + 1, self.wp + 5), label="cursor")
            with pytest.raises(ValueError, match=f"cursor {cursor} is ahead of the ring buffer"):
                self.ring.read_at(cursor, max_frames)
            return
        if kind == "negative":
            with pytest.raises(ValueError, match="cursor must be >= 0"):
                self.ring.read_at(-1, max_frames)
            return
        lo, hi = (0, self.oldest - 1) if kind == "too_old" else (self.oldest, self.wp)
        cursor = data.draw(st.integers(lo, hi), label="cursor")
        block, next_cursor, lost = self.ring.read_at(cursor, max_frames)
        expected_lost = max(0, self.oldest - cursor)
        assert lost == expected_lost
        if lost:
            self.counters["overruns"] += 1
            self.counters["frames_lost"] += lost
        start = cursor + lost
        k = min(max_frames, self.wp - start)
        if k == 0 and max_frames > 0:
            self.counters["underruns"] += 1
        self.expect_block(block, start, k)
        assert next_cursor == start + k
        self.counters["frames_read"] += k

    # checks after every step

    @invariant()
    def positions_and_readers(self) -> None:
        if not hasattr(self, "ring"):
            return
        assert self.ring.write_pos == self.wp
        assert self.ring.oldest_pos == self.oldest
        for reader, m in self.readers:
            assert reader.cursor == m.cursor
            assert reader.lag == self.wp - m.cursor
            assert reader.available == self.wp - max(m.cursor, self.oldest)
            assert 0 <= reader.available <= self.cap

    @invariant()
    def stats(self) -> None:
        if not hasattr(self, "ring"):
            return
        s = self.ring.stats
        assert (s.channels, s.capacity, s.frames_written) == (self.channels, self.cap, len(self.history))
        for key, value in self.counters.items():
            assert getattr(s, key) == value, key
        if self.readers:
            expected_fill = max(self.wp - max(m.cursor, self.oldest) for _, m in self.readers)
        else:
            expected_fill = self.wp - self.oldest
        assert s.fill == expected_fill
        assert [(r.name, r.cursor, r.lag, r.lost, r.overruns) for r in s.readers] == [
            (m.name, m.cursor, self.wp - m.cursor, m.lost, m.overruns) for _, m in self.readers
        ]


RingMachine.TestCase.settings = settings(
    max_examples=250,
    stateful_step_count=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestRingModel = RingMachine.TestCase


# -- a few cases spelled out ------------------------------------------------------------


def ramp(start: int, n: int, channels: int = 2) -> np.ndarray:
    return np.tile(np.arange(start, start + n, dtype=np.float32), (channels, 1))


def test_lapped_reader_is_told_and_skips_ahead() -> None:
    ring = RingBuffer(2, 8)
    reader = ring.reader()
    ring.write(ramp(0, 5))
    ring.write(ramp(5, 7))  # 12 written, 8 held: frames 4..11
    assert (reader.lag, reader.available) == (12, 8)
    block, lost = reader.read(3)
    assert lost == 4
    np.testing.assert_array_equal(block, ramp(4, 3))
    block, lost = reader.read()
    assert lost == 0
    np.testing.assert_array_equal(block, ramp(7, 5))
    block, lost = reader.read()
    assert block.shape == (2, 0) and lost == 0
    s = ring.stats
    assert (s.overruns, s.frames_lost, s.underruns, s.frames_read, s.fill) == (1, 4, 1, 8, 0)


def test_input_ring_policies() -> None:
    ring = RingBuffer(1, 4)
    guard = ring.reader(name="processor")
    ring.write(ramp(0, 3, 1), overflow="reject", guard=guard)
    with pytest.raises(RingOverflow, match="a block of 2 frames does not fit in the 1 frames free") as info:
        ring.write(ramp(3, 2, 1), overflow="reject", guard=guard)
    assert (info.value.needed, info.value.free) == (2, 1)
    assert ring.write_pos == 3
    ring.write(ramp(3, 3, 1), overflow="drop_oldest", guard=guard)  # frames 0, 1 are lost to the guard
    block, lost = guard.read()
    assert lost == 2
    np.testing.assert_array_equal(block, ramp(2, 4, 1))
    s = ring.stats
    assert (s.rejected_frames, s.dropped_frames, s.frames_lost) == (2, 2, 2)


def test_block_longer_than_capacity() -> None:
    ring = RingBuffer(1, 4)
    reader = ring.reader(start="oldest")
    assert ring.write(ramp(0, 10, 1)) == 10
    assert (ring.write_pos, ring.oldest_pos) == (10, 6)
    with pytest.raises(RingOverflow):
        ring.write(ramp(10, 5, 1), overflow="reject")
    block, lost = reader.read()
    assert lost == 6
    np.testing.assert_array_equal(block, ramp(6, 4, 1))
    assert ring.stats.dropped_frames == 6


def test_mirror_ring_starts_at_its_source_position_and_counts_a_jump_as_lost() -> None:
    """A mirror of another ring starts where its source is and jumps over what its relay
    missed: readers behind the jump are told, once, like lapped readers."""
    ring = RingBuffer(2, 8, start=1000)
    early = ring.reader(name="early")
    assert (ring.write_pos, ring.oldest_pos, early.cursor) == (1000, 1000, 1000)
    ring.write(ramp(1000, 3))
    assert ring.read_at(990, 8)[2] == 10  # never here: lost, like a lap
    assert ring.skip_to(1003) == 0  # no-op
    assert ring.skip_to(1010) == 7
    late = ring.reader(start="oldest", name="late")
    assert late.cursor == ring.oldest_pos == 1010
    ring.write(ramp(1010, 2))
    block, lost = early.read()
    assert lost == 10  # the 3 unread frames before the jump and the 7 jumped over
    np.testing.assert_array_equal(block, ramp(1010, 2))
    block, lost = late.read()
    assert lost == 0
    np.testing.assert_array_equal(block, ramp(1010, 2))
    stats = ring.stats
    assert (stats.frames_written, stats.frames_lost, stats.overruns) == (5, 20, 2)
    with pytest.raises(ValueError, match="cannot skip back to 1011: 1012 frames were written"):
        ring.skip_to(1011)
    with pytest.raises(ValueError, match="start must be >= 0"):
        RingBuffer(2, 8, start=-1)


def test_validation_messages() -> None:
    with pytest.raises(ValueError, match="channels must be >= 1"):
        RingBuffer(0, 8)
    with pytest.raises(ValueError, match="capacity must be >= 1"):
        RingBuffer(2, 0)
    ring = RingBuffer(2, 8)
    with pytest.raises(ValueError, match=r"expected a block shaped \(channels=2, frames\), got \(3, 4\)"):
        ring.write(np.zeros((3, 4), np.float32))
    with pytest.raises(TypeError, match="floating-point"):
        ring.write(np.zeros((2, 4), np.int16))
    with pytest.raises(ValueError, match="overflow must be one of"):
        ring.write(np.zeros((2, 4), np.float32), overflow="wait")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="another ring buffer"):
        ring.remove_reader(RingBuffer(2, 8).reader())
    with pytest.raises(ValueError, match=r"cursor 5 is ahead of the ring buffer: only 0 frames were written"):
        ring.read_at(5, 1)
    with pytest.raises(ValueError, match="max_frames must be >= 0"):
        ring.read_at(0, -1)


# -- threads -------------------------------------------------------------------------------

HI = 4096  # frame p carries (p % HI, p // HI): exact in float32 for any realistic p


def encoded(start: int, n: int) -> np.ndarray:
    pos = np.arange(start, start + n, dtype=np.int64)
    return np.stack([pos % HI, pos // HI]).astype(np.float32)


def decoded(block: np.ndarray) -> np.ndarray:
    return block[1].astype(np.int64) * HI + block[0].astype(np.int64)


def test_one_writer_four_readers_in_threads() -> None:
    ring = RingBuffer(2, 4096)
    done = threading.Event()
    errors: list[BaseException] = []
    results: dict[str, tuple[int, int, int]] = {}  # name -> (next position, frames read, frames lost)

    def check(name: str, expected: int, block: np.ndarray, lost: int) -> int:
        expected += lost
        got = decoded(block)
        if not np.array_equal(got, np.arange(expected, expected + got.size)):
            raise AssertionError(f"{name}: a gap or a wrong frame at position {expected}")
        return expected + got.size

    def consume(name: str, mode: str, seed: int, reader: RingReader | None) -> None:
        rng = random.Random(seed)
        expected = read = lost_total = 0
        cursor = 0
        try:
            while True:
                finished = done.is_set()  # read before the last drain
                while True:
                    if mode == "read":
                        block, lost = reader.read(rng.choice([None, rng.randint(1, 1500)]))
                    elif mode == "exact":
                        block, lost = reader.read_exact(rng.randint(1, 512))
                        if block is None:
                            block = np.empty((2, 0), np.float32)
                            if finished and reader.available:  # the tail, smaller than the block
                                block, more = reader.read()
                                lost += more
                    else:
                        block, cursor, lost = ring.read_at(cursor, rng.randint(1, 1500))
                    expected = check(name, expected, block, lost)
                    read += block.shape[1]
                    lost_total += lost
                    if not block.shape[1] and not lost:
                        break
                if finished:
                    break
                time.sleep(rng.choice([0, 0, 0, 1e-4]))  # jitter for varied interleavings, not a wait
            results[name] = (expected, read, lost_total)
        except BaseException as exc:
            errors.append(exc)

    modes = ["read", "read", "exact", "poll"]
    readers = [ring.reader(name=f"t{i}") if mode != "poll" else None for i, mode in enumerate(modes)]
    threads = [
        threading.Thread(target=consume, args=(f"t{i}", mode, i, reader))
        for i, (mode, reader) in enumerate(zip(modes, readers, strict=True))
    ]
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        for t in threads:
            t.start()
        rng = random.Random(99)
        written = 0
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            n = rng.randint(0, 700)
            assert ring.write(encoded(written, n)) == n
            written += n
            if rng.random() < 0.2:
                time.sleep(0)
        done.set()
        for t in threads:
            t.join(timeout=10)
    finally:
        sys.setswitchinterval(old_interval)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)
    assert written > 10 * ring.capacity
    for name, (end, read, lost) in results.items():
        assert end == written, name
        assert read + lost == written, name
        assert read > 0, name
    s = ring.stats
    assert s.frames_written == written
    assert s.frames_read == sum(r for _, r, _ in results.values())
    assert s.frames_lost == sum(lost for _, _, lost in results.values())


# -- wire formats --------------------------------------------------------------------------

shapes = st.tuples(st.integers(1, 4), st.integers(0, 64))


@given(hnp.arrays(np.float32, shapes, elements=st.floats(width=32, allow_nan=False, allow_infinity=False)))
def test_f32le_round_trip_is_exact(block: np.ndarray) -> None:
    data = to_interleaved(block, "f32le")
    assert len(data) == block.size * 4
    back = from_interleaved(data, block.shape[0], "f32le")
    assert back.dtype == np.float32 and back.flags.c_contiguous and back.flags.writeable
    np.testing.assert_array_equal(back, block)


@given(hnp.arrays(np.float32, shapes, elements=st.floats(-1.0, 1.0, width=32)))
def test_s16le_round_trip_within_one_step(block: np.ndarray) -> None:
    data = to_interleaved(block, "s16le")
    assert len(data) == block.size * 2
    back = from_interleaved(data, block.shape[0], "s16le")
    assert back.dtype == np.float32 and back.shape == block.shape
    assert np.all(np.abs(back - block) <= 1 / 32768)
    assert to_interleaved(back, "s16le") == data  # int16 -> float -> int16 is exact


def test_interleaved_layout_and_clipping() -> None:
    block = np.array([[1.0, 2.0, 3.0], [-1.0, -2.0, -3.0]], dtype=np.float32)
    assert to_interleaved(block, "f32le") == struct.pack("<6f", 1, -1, 2, -2, 3, -3)
    assert to_interleaved(block.astype(np.float64), "f32le") == struct.pack("<6f", 1, -1, 2, -2, 3, -3)
    np.testing.assert_array_equal(
        from_interleaved(struct.pack("<6f", 1, -1, 2, -2, 3, -3), 2, "f32le"), block
    )
    loud = np.array([[2.0, 1.0, -1.0, -7.0, 0.5]], dtype=np.float32)
    assert to_interleaved(loud, "s16le") == struct.pack("<5h", 32767, 32767, -32768, -32768, 16384)
    np.testing.assert_array_equal(
        from_interleaved(struct.pack("<4h", -32768, 16384, 0, 32767), 2, "s16le"),
        np.array([[-1.0, 0.0], [0.5, 32767 / 32768]], dtype=np.float32),
    )
    assert from_interleaved(b"", 3, "s16le").shape == (3, 0)
    assert from_interleaved(bytearray(8), 2, "f32le").shape == (2, 1)


def test_interleaved_errors() -> None:
    with pytest.raises(ValueError, match="7 bytes is not a whole number of frames: a frame of 2 channel"):
        from_interleaved(bytes(7), 2, "s16le")
    with pytest.raises(ValueError, match=r"a frame of 2 channel\(s\) in s16le has 4 bytes"):
        from_interleaved(bytes(6), 2, "s16le")
    with pytest.raises(ValueError, match=r"a frame of 3 channel\(s\) in f32le has 12 bytes"):
        from_interleaved(bytes(16), 3, "f32le")
    for bad in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(ValueError, match="the audio contains NaN or infinite samples"):
            from_interleaved(struct.pack("<4f", 0.1, 0.2, bad, 0.3), 2, "f32le")
    with pytest.raises(ValueError, match="unknown sample format 'u8'"):
        from_interleaved(bytes(4), 1, "u8")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown sample format"):
        to_interleaved(np.zeros((1, 1), np.float32), "s24le")  # type: ignore[arg-type]
