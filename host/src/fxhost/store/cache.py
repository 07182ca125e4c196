"""A least-recently-used cache bounded in bytes, safe to share between threads.

The host keeps decoded audio (numpy arrays) here: analysis, pictures, transcoding and
effects' asset parameters decode in worker threads, and several of them may ask for the
same asset at once; :meth:`LRUCache.get_or_load`
decodes it once and hands the same array to all of them. Cached values are shared,
so callers must not modify them in place.

Every operation is ``O(1)`` (a dict in recency order, ``collections.OrderedDict``)
under one lock, except evictions, which are ``O(1)`` each. ``sizeof`` and ``load``
run outside the lock.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar, overload

import msgspec

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
D = TypeVar("D")

__all__ = ["CacheStats", "LRUCache", "default_sizeof"]


def default_sizeof(value: object) -> int:
    """Bytes a value holds: ``.nbytes`` (numpy arrays) if it has one, else
    ``sys.getsizeof``. A tuple or list (say ``(audio, sample_rate)``) counts its
    items too, one level deep."""
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    if isinstance(value, tuple | list):
        return sys.getsizeof(value) + sum(
            n if isinstance(n := getattr(item, "nbytes", None), int) else sys.getsizeof(item)
            for item in value
        )
    return sys.getsizeof(value)


class CacheStats(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of a cache's counters (since creation) and occupancy (now)."""

    #: Lookups answered from the cache (``get``, ``get_or_load``).
    hits: int
    #: Lookups not answered from the cache: ``get`` returning its default, and
    #: ``get_or_load`` calls that loaded or waited for another thread's load.
    misses: int
    #: ``load`` functions called by ``get_or_load`` (one per key at a time).
    loads: int
    #: ``get_or_load`` calls that waited for a load already running in another thread.
    coalesced: int
    #: ``load`` functions that raised (the error goes to every waiter; nothing is cached).
    load_errors: int
    #: Entries removed to make room (not those discarded, replaced or cleared).
    evictions: int
    #: Values not cached because they alone exceed ``max_bytes``.
    rejected: int
    #: Entries held now.
    entries: int
    #: Bytes held now (by ``sizeof``); never above ``max_bytes``.
    bytes: int
    max_bytes: int

    @property
    def hit_ratio(self) -> float:
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0


class _Flight:
    """A load in progress: waiters block on ``done`` and then read the outcome."""

    __slots__ = ("done", "error", "owner", "stale", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self.owner = threading.get_ident()
        # Set when the key is put, discarded or cleared during the load: its result is
        # then returned to the callers but not cached (it may be out of date).
        self.stale = False


class LRUCache(Generic[K, V]):
    """Keys to values, evicting the least recently used once the values' total size
    (by ``sizeof``) would exceed ``max_bytes``."""

    def __init__(self, max_bytes: int, sizeof: Callable[[V], int] = default_sizeof) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, not {max_bytes}")
        self._max_bytes = max_bytes
        self._sizeof = sizeof
        self._lock = threading.Lock()
        # key -> (value, size), least recently used first.
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._inflight: dict[K, _Flight] = {}
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._loads = 0
        self._coalesced = 0
        self._load_errors = 0
        self._evictions = 0
        self._rejected = 0

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is cached; neither a hit nor a miss, and no change of recency."""
        with self._lock:
            return key in self._entries

    def __repr__(self) -> str:
        s = self.stats
        return f"{type(self).__name__}(entries={s.entries}, bytes={s.bytes}, max_bytes={s.max_bytes})"

    def keys(self) -> list[K]:
        """The cached keys, least recently used first (a snapshot)."""
        with self._lock:
            return list(self._entries)

    @property
    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                hits=self._hits,
                misses=self._misses,
                loads=self._loads,
                coalesced=self._coalesced,
                load_errors=self._load_errors,
                evictions=self._evictions,
                rejected=self._rejected,
                entries=len(self._entries),
                bytes=self._bytes,
                max_bytes=self._max_bytes,
            )

    @overload
    def get(self, key: K) -> V | None: ...
    @overload
    def get(self, key: K, default: D) -> V | D: ...
    def get(self, key: K, default: Any = None) -> Any:
        """The cached value (now the most recently used) or ``default``; counts a hit or a miss."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self._misses += 1
                return default
            self._entries.move_to_end(key)
            self._hits += 1
            return entry[0]

    def put(self, key: K, value: V) -> None:
        """Cache ``value`` as the most recently used, evicting the least recently used
        entries until it fits. A value larger than ``max_bytes`` is not cached (and any
        older value of ``key`` is dropped, being out of date)."""
        size = self._sizeof(value)
        if size < 0:
            raise ValueError(f"sizeof returned a negative size ({size}) for key {key!r}")
        with self._lock:
            flight = self._inflight.get(key)
            if flight is not None:
                flight.stale = True
            self._store(key, value, size)

    def _store(self, key: K, value: V, size: int) -> None:
        # Called with the lock held.
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old[1]
        if size > self._max_bytes:
            self._rejected += 1
            return
        self._entries[key] = (value, size)
        self._bytes += size
        entries = self._entries
        while self._bytes > self._max_bytes:
            _, (_, evicted_size) = entries.popitem(last=False)
            self._bytes -= evicted_size
            self._evictions += 1

    def get_or_load(self, key: K, load: Callable[[], V]) -> V:
        """The cached value of ``key``, or ``load()``'s result, cached (if it fits) and
        returned. While one thread loads a key, other threads asking for it wait for
        that load instead of starting their own. If ``load`` raises, every waiter
        gets the exception and nothing is cached; the next call loads again.

        Blocking: call it from a worker thread, not from the event loop.
        """
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self._hits += 1
                return entry[0]
            self._misses += 1
            flight = self._inflight.get(key)
            if flight is None:
                flight = self._inflight[key] = _Flight()
                self._loads += 1
                owner = True
            else:
                if flight.owner == threading.get_ident():
                    raise RuntimeError(f"get_or_load({key!r}) called again from inside its own load")
                self._coalesced += 1
                owner = False
        if not owner:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return flight.value
        try:
            value = load()
            size = self._sizeof(value)
            if size < 0:
                raise ValueError(f"sizeof returned a negative size ({size}) for key {key!r}")
        except BaseException as exc:
            with self._lock:
                self._load_errors += 1
                del self._inflight[key]
            flight.error = exc
            flight.done.set()
            raise
        with self._lock:
            del self._inflight[key]
            if not flight.stale:
                self._store(key, value, size)
        flight.value = value
        flight.done.set()
        return value

    def discard(self, key: K) -> bool:
        """Drop ``key``; True if it was cached. A load of ``key`` in progress will not
        be cached."""
        with self._lock:
            flight = self._inflight.get(key)
            if flight is not None:
                flight.stale = True
            entry = self._entries.pop(key, None)
            if entry is None:
                return False
            self._bytes -= entry[1]
            return True

    def clear(self) -> None:
        """Drop every entry (counters are kept). Loads in progress will not be cached."""
        with self._lock:
            for flight in self._inflight.values():
                flight.stale = True
            self._entries.clear()
            self._bytes = 0
