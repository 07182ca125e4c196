"""The byte-bounded LRU cache: against a reference model step by step, then eviction
order, counters, oversize values, concurrent loads, discard/clear and a zero budget."""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import pytest
from fxhost.store.cache import CacheStats, LRUCache, default_sizeof
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from waiting import wait_until


def size_of(value: tuple[str, int]) -> int:
    """Test values are ``(tag, size)``: distinct objects of a chosen size."""
    return value[1]


keys = st.integers(min_value=0, max_value=8)
sizes = st.integers(min_value=0, max_value=40)


class LRUMachine(RuleBasedStateMachine):
    """The cache against a plain OrderedDict model (least recent first)."""

    @initialize(max_bytes=st.integers(min_value=0, max_value=100))
    def setup(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.cache: LRUCache[int, tuple[str, int]] = LRUCache(max_bytes, sizeof=size_of)
        self.model: OrderedDict[int, tuple[str, int]] = OrderedDict()
        self.counts = dict(hits=0, misses=0, loads=0, evictions=0, rejected=0)
        self.serial = 0

    def new_value(self, size: int) -> tuple[str, int]:
        self.serial += 1
        return (f"v{self.serial}", size)

    def model_put(self, key: int, value: tuple[str, int]) -> None:
        self.model.pop(key, None)
        if value[1] > self.max_bytes:
            self.counts["rejected"] += 1
            return
        self.model[key] = value
        while sum(v[1] for v in self.model.values()) > self.max_bytes:
            self.model.popitem(last=False)
            self.counts["evictions"] += 1

    @rule(key=keys, size=sizes)
    def put(self, key: int, size: int) -> None:
        value = self.new_value(size)
        self.cache.put(key, value)
        self.model_put(key, value)

    @rule(key=keys)
    def get(self, key: int) -> None:
        expected = self.model.get(key)
        if expected is None:
            self.counts["misses"] += 1
        else:
            self.counts["hits"] += 1
            self.model.move_to_end(key)
        assert self.cache.get(key) is expected

    @rule(key=keys, size=sizes)
    def get_or_load(self, key: int, size: int) -> None:
        expected = self.model.get(key)
        loaded = self.new_value(size)
        got = self.cache.get_or_load(key, lambda: loaded)
        if expected is None:
            self.counts["misses"] += 1
            self.counts["loads"] += 1
            self.model_put(key, loaded)
            assert got is loaded
        else:
            self.counts["hits"] += 1
            self.model.move_to_end(key)
            assert got is expected

    @rule(key=keys)
    def contains(self, key: int) -> None:
        assert (key in self.cache) is (key in self.model)  # no counting, no recency change

    @rule(key=keys)
    def discard(self, key: int) -> None:
        assert self.cache.discard(key) is (self.model.pop(key, None) is not None)

    @rule()
    def clear(self) -> None:
        self.cache.clear()
        self.model.clear()

    @invariant()
    def matches_model(self) -> None:
        stats = self.cache.stats
        held = sum(v[1] for v in self.model.values())
        assert stats.bytes == held <= self.max_bytes
        assert self.cache.keys() == list(self.model)
        assert len(self.cache) == stats.entries == len(self.model)
        assert stats.max_bytes == self.max_bytes
        for name, count in self.counts.items():
            assert getattr(stats, name) == count, name
        assert stats.coalesced == 0
        assert stats.load_errors == 0


LRUMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=50)
TestLRUModel = LRUMachine.TestCase


def blob(size: int, tag: str = "") -> tuple[str, int]:
    return (tag or f"blob{size}", size)


def test_eviction_order_is_least_recently_used() -> None:
    cache: LRUCache[str, tuple[str, int]] = LRUCache(30, sizeof=size_of)
    for key in "abc":
        cache.put(key, blob(10, key))
    assert cache.keys() == ["a", "b", "c"]
    assert cache.get("a") == ("a", 10)  # a is now the most recent
    assert "b" in cache  # membership does not refresh b
    cache.put("d", blob(10, "d"))  # evicts b
    assert cache.keys() == ["c", "a", "d"]
    cache.put("e", blob(20, "e"))  # evicts c and a
    assert cache.keys() == ["d", "e"]
    cache.put("d", blob(5, "d2"))  # a replacement refreshes and resizes
    assert cache.keys() == ["e", "d"]
    assert cache.stats.bytes == 25
    assert cache.stats.evictions == 3


def test_counters() -> None:
    cache: LRUCache[str, tuple[str, int]] = LRUCache(100, sizeof=size_of)
    assert cache.stats == CacheStats(
        hits=0, misses=0, loads=0, coalesced=0, load_errors=0, evictions=0, rejected=0,
        entries=0, bytes=0, max_bytes=100,
    )  # fmt: skip
    assert cache.stats.hit_ratio == 0.0
    cache.put("a", blob(10))
    cache.get("a")
    cache.get("a")
    cache.get("b")
    assert cache.get("b", "default") == "default"
    assert cache.get_or_load("a", lambda: pytest.fail("a is cached")) == blob(10)
    assert cache.get_or_load("c", lambda: blob(20)) == blob(20)
    _ = "a" in cache
    _ = "zz" in cache
    stats = cache.stats
    assert (stats.hits, stats.misses, stats.loads) == (3, 3, 1)
    assert (stats.entries, stats.bytes) == (2, 30)
    assert stats.hit_ratio == 0.5


def test_oversize_values_are_rejected_and_drop_the_old_value() -> None:
    cache: LRUCache[str, tuple[str, int]] = LRUCache(50, sizeof=size_of)
    cache.put("small", blob(10))
    cache.put("a", blob(20))
    cache.put("a", blob(51))  # too big: not cached, and the older value of "a" is gone
    assert "a" not in cache
    assert cache.keys() == ["small"]
    stats = cache.stats
    assert (stats.rejected, stats.evictions, stats.bytes) == (1, 0, 10)
    cache.put("exact", blob(50))  # exactly max_bytes fits, evicting everything else
    assert cache.keys() == ["exact"]
    # get_or_load still returns an oversize value; it is just not kept.
    big = blob(500)
    assert cache.get_or_load("big", lambda: big) is big
    assert "big" not in cache
    assert cache.stats.rejected == 2


def test_zero_max_bytes() -> None:
    cache: LRUCache[str, Any] = LRUCache(0)
    cache.put("a", np.zeros(4, dtype=np.float32))
    assert len(cache) == 0
    assert cache.get("a") is None
    assert cache.get_or_load("a", lambda: "value") == "value"
    assert "a" not in cache
    sized: LRUCache[str, tuple[str, int]] = LRUCache(0, sizeof=size_of)
    sized.put("empty", blob(0))  # a zero-byte value does fit
    assert sized.keys() == ["empty"]
    stats = cache.stats
    assert (stats.rejected, stats.entries, stats.bytes, stats.misses) == (2, 0, 0, 2)
    with pytest.raises(ValueError):
        LRUCache(-1)


def test_discard_and_clear() -> None:
    cache: LRUCache[str, tuple[str, int]] = LRUCache(100, sizeof=size_of)
    cache.put("a", blob(10))
    cache.put("b", blob(20))
    assert cache.discard("a") is True
    assert cache.discard("a") is False
    assert cache.keys() == ["b"]
    assert cache.stats.bytes == 20
    cache.clear()
    assert len(cache) == 0
    assert cache.stats.bytes == 0
    assert cache.stats.evictions == 0  # discards and clears are not evictions


def test_default_sizeof() -> None:
    audio = np.zeros((2, 44100), dtype=np.float32)
    assert default_sizeof(audio) == audio.nbytes == 2 * 44100 * 4
    assert default_sizeof(b"x" * 1000) == sys.getsizeof(b"x" * 1000)
    assert default_sizeof((audio, 44100)) >= audio.nbytes + sys.getsizeof(44100)
    cache: LRUCache[str, np.ndarray] = LRUCache(audio.nbytes * 2)
    cache.put("one", audio)
    cache.put("two", audio.copy())
    cache.put("three", audio.copy())
    assert cache.keys() == ["two", "three"]
    assert cache.stats.bytes == 2 * audio.nbytes


def test_get_or_load_from_8_threads_loads_once() -> None:
    cache: LRUCache[str, np.ndarray] = LRUCache(10_000_000)
    calls = 0
    calls_lock = threading.Lock()
    barrier = threading.Barrier(8)

    def load() -> np.ndarray:
        nonlocal calls
        with calls_lock:
            calls += 1
        # Returns once the other seven threads are waiting for this load.
        wait_until(lambda: cache.stats.coalesced == 7, what="7 threads coalesced")
        return np.ones(1000, dtype=np.float32)

    results: list[np.ndarray] = []

    def worker() -> None:
        barrier.wait()
        value = cache.get_or_load("asset", load)
        with calls_lock:
            results.append(value)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert calls == 1
    assert len(results) == 8
    assert all(r is results[0] for r in results)
    stats = cache.stats
    assert stats.loads == 1
    assert stats.hits == 0 and stats.misses == 8
    assert stats.coalesced == 7
    assert cache.get("asset") is results[0]


def test_get_or_load_error_reaches_every_waiter_and_is_not_cached() -> None:
    cache: LRUCache[str, str] = LRUCache(1000)
    barrier = threading.Barrier(4)
    started = threading.Event()

    def failing() -> str:
        started.set()
        wait_until(lambda: cache.stats.coalesced == 3, what="3 threads coalesced")
        raise OSError("cannot decode")

    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            cache.get_or_load("bad", failing)
        except OSError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(errors) == 4
    assert "bad" not in cache
    assert cache.stats.load_errors == 1 and cache.stats.coalesced == 3
    assert cache.get_or_load("bad", lambda: "fixed") == "fixed"  # the next call loads again
    assert cache.stats.loads == 2


def test_discard_during_a_load_keeps_the_stale_result_out() -> None:
    cache: LRUCache[str, str] = LRUCache(1000)
    loading = threading.Event()
    proceed = threading.Event()

    def slow() -> str:
        loading.set()
        proceed.wait(5)
        return "old contents"

    result: list[str] = []
    t = threading.Thread(target=lambda: result.append(cache.get_or_load("asset", slow)))
    t.start()
    assert loading.wait(5)
    cache.discard("asset")  # the asset was replaced while it was being decoded
    proceed.set()
    t.join(5)
    assert result == ["old contents"]
    assert "asset" not in cache


def test_reentrant_load_of_the_same_key_is_an_error() -> None:
    cache: LRUCache[str, str] = LRUCache(1000)

    def load() -> str:
        return cache.get_or_load("k", lambda: "inner")

    with pytest.raises(RuntimeError, match="inside its own load"):
        cache.get_or_load("k", load)
    assert cache.get_or_load("k", lambda: "ok") == "ok"
