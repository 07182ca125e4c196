"""Benchmark: the asset index (our AVL tree) against ``sortedcontainers.SortedDict``, and
an LRU cache hit against a cold decode of the same asset; one run, side by side in one
process.

    uv run python bench/index_cache.py [--size 1000000] [--seed 0]

Index: ``size`` keys ``(name, id)`` with realistic, repeating names
(``take-000123.wav``, ``vox-004711.flac`` …), loaded from sorted rows as at server
start-up; then cursor pages of 50 after random keys, single lookups, prefix pages of 50,
and an insert followed by a delete of a new key. Cache: a 30 s stereo 44.1 kHz 16-bit
WAV read with ``soundfile.read(dtype="float32")`` (the file sits in the OS page cache,
so this is decode time, not disk time) against ``LRUCache.get`` of the decoded array.

Per-operation times are medians: single timings for pages and decodes, blocks of
1,000 (10,000 for cache hits) divided by the block size for the fast operations.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from itertools import islice, takewhile
from operator import itemgetter
from pathlib import Path

import numpy as np
import soundfile as sf
from fxhost.store.avl import AVLTree
from fxhost.store.cache import LRUCache
from sortedcontainers import SortedDict

KINDS = ["take", "take", "take", "kick", "snare", "vox", "gtr", "bass", "pad", "fx-riser", "room-mic"]
EXTS = ["wav", "wav", "wav", "flac", "ogg"]
PAGE = 50
first = itemgetter(0)


def asset_names(n: int, rng: random.Random) -> list[str]:
    # Numbers drawn from a range smaller than n: many names repeat (with distinct ids).
    top = max(n // 2, 10)
    return [f"{rng.choice(KINDS)}-{rng.randrange(top):06d}.{rng.choice(EXTS)}" for _ in range(n)]


def median_single(fn: Callable[[object], object], args: Sequence[object]) -> float:
    times = []
    for arg in args:
        start = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def median_block(fn: Callable[[Sequence[object]], object], blocks: Sequence[Sequence[object]]) -> float:
    times = []
    for block in blocks:
        start = time.perf_counter()
        fn(block)
        times.append((time.perf_counter() - start) / len(block))
    return statistics.median(times)


def fmt(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:8.2f} s "
    if seconds >= 1e-3:
        return f"{seconds * 1e3:8.2f} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:8.2f} µs"
    return f"{seconds * 1e9:8.1f} ns"


def row(label: str, ours: float, base: float) -> str:
    return f"  {label:<34}{fmt(ours)}  {fmt(base)}  {ours / base:9.2f}x"


def bench_index(size: int, rng: random.Random) -> list[str]:
    names = asset_names(size, rng)
    items = sorted(((name, i), i) for i, name in enumerate(names, start=1))
    keys = [k for k, _ in items]

    start = time.perf_counter()
    tree: AVLTree[tuple[str, int], int] = AVLTree.from_sorted(items)
    t_tree = time.perf_counter() - start
    start = time.perf_counter()
    sdict: SortedDict = SortedDict(items)
    t_sdict = time.perf_counter() - start
    # Both structures are long-lived: keep the collector from rescanning them (as a
    # server would after start-up).
    gc.collect()
    gc.freeze()

    lines = [
        f"index: {size:,} keys (name, id), {len(set(names)):,} distinct names, AVL height {tree.height()}",
        f"  {'operation':<34}{'AVL tree':>11}  {'SortedDict':>11}  {'AVL/SD':>10}",
        row("build from sorted rows", t_tree, t_sdict),
    ]

    cursors = rng.sample(keys, 3000)

    def avl_page(cursor: object) -> object:
        return tree.page(cursor, PAGE)

    def sd_page(cursor: object) -> object:
        i = sdict.bisect_right(cursor)
        return sdict.items()[i : i + PAGE]

    assert avl_page(cursors[0]) == sd_page(cursors[0])
    lines.append(row(f"page of {PAGE} after a random cursor", *compare(avl_page, sd_page, cursors)))

    lookup_blocks = [rng.sample(keys, 1000) for _ in range(60)]

    def avl_lookups(block: Sequence[object]) -> None:
        get = tree.__getitem__
        for k in block:
            get(k)

    def sd_lookups(block: Sequence[object]) -> None:
        get = sdict.__getitem__
        for k in block:
            get(k)

    lines.append(row("lookup (per key)", *compare_blocks(avl_lookups, sd_lookups, lookup_blocks)))

    # Prefixes such as "vox-012": hundreds of names each, so a full page of 50.
    prefixes = [name[: name.index("-") + 4] for name in rng.sample(names, 3000)]

    def avl_prefix(prefix: object) -> object:
        return list(islice(tree.prefix_items(prefix, key=first), PAGE))  # type: ignore[arg-type]

    def sd_prefix(prefix: object) -> object:
        matching = takewhile(lambda k: k[0].startswith(prefix), sdict.irange(minimum=(prefix,)))
        return [(k, sdict[k]) for k in islice(matching, PAGE)]

    assert avl_prefix(prefixes[0]) == sd_prefix(prefixes[0])
    assert all(len(avl_prefix(p)) == PAGE for p in prefixes[:200])
    lines.append(row(f"prefix search, page of {PAGE}", *compare(avl_prefix, sd_prefix, prefixes)))

    new_blocks = [[(rng.choice(names), size + b * 1000 + i + 1) for i in range(1000)] for b in range(40)]

    def avl_insert_delete(block: Sequence[object]) -> None:
        for k in block:
            tree.insert(k, 0)
        for k in block:
            tree.delete(k)

    def sd_insert_delete(block: Sequence[object]) -> None:
        for k in block:
            sdict[k] = 0
        for k in block:
            del sdict[k]

    lines.append(
        row("insert + delete (per key)", *compare_blocks(avl_insert_delete, sd_insert_delete, new_blocks))
    )
    tree.check_invariants()
    assert len(tree) == len(sdict) == size
    gc.unfreeze()
    return lines


def compare(ours: Callable[[object], object], base: Callable[[object], object], args: Sequence[object]):
    # Interleaved halves, so that drift (frequency scaling, caches) hits both alike.
    half = len(args) // 2
    a1 = median_single(ours, args[:half])
    b1 = median_single(base, args[:half])
    b2 = median_single(base, args[half:])
    a2 = median_single(ours, args[half:])
    return (a1 + a2) / 2, (b1 + b2) / 2


def compare_blocks(ours: Callable, base: Callable, blocks: Sequence[Sequence[object]]):
    half = len(blocks) // 2
    a1 = median_block(ours, blocks[:half])
    b1 = median_block(base, blocks[:half])
    b2 = median_block(base, blocks[half:])
    a2 = median_block(ours, blocks[half:])
    return (a1 + a2) / 2, (b1 + b2) / 2


def bench_cache(decodes: int) -> list[str]:
    sr, seconds = 44100, 30
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal((sr * seconds, 2)) * 0.1).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "asset.wav"
        sf.write(path, audio, sr, subtype="PCM_16")
        decoded, _ = sf.read(path, dtype="float32")  # warm the page cache
        times = []
        for _ in range(decodes):
            start = time.perf_counter()
            sf.read(path, dtype="float32")
            times.append(time.perf_counter() - start)
        t_decode = statistics.median(times)

    cache: LRUCache[str, np.ndarray] = LRUCache(256 * 1024 * 1024)
    cache.put("asset-1", decoded)
    for i in range(2, 200):  # other entries, so the hit is not on a one-entry dict
        cache.put(f"asset-{i}", np.zeros(1000, dtype=np.float32))
    cache.get("asset-1")
    blocks = [["asset-1"] * 10_000 for _ in range(30)]

    def hits(block: Sequence[str]) -> None:
        get = cache.get
        for k in block:
            get(k)

    t_hit = median_block(hits, blocks)
    assert cache.get("asset-1") is decoded
    stats = cache.stats
    return [
        f"cache: 30 s stereo 44.1 kHz 16-bit WAV, decoded float32 = {decoded.nbytes / 2**20:.1f} MiB; "
        f"cache holds {stats.entries} entries, {stats.bytes / 2**20:.1f} MiB, {stats.hits:,} hits",
        f"  {'operation':<34}{'time':>11}  {'vs cache hit':>11}",
        f"  {f'cold decode (sf.read, median of {decodes})':<34}{fmt(t_decode)}  {t_decode / t_hit:10,.0f}x",
        f"  {'LRUCache.get hit':<34}{fmt(t_hit)}  {1:10,.0f}x",
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--decodes", type=int, default=15)
    args = parser.parse_args()
    start = time.perf_counter()
    lines = bench_index(args.size, random.Random(args.seed))
    lines.append("")
    lines += bench_cache(args.decodes)
    lines.append(f"\n(total {time.perf_counter() - start:.1f} s)")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
