"""The AVL tree against a reference model (a dict, sorted on demand), step by step,
with every invariant checked after every step; then edge cases, bulk loading and
the height bound at scale."""

from __future__ import annotations

import bisect
import math
import random
from operator import itemgetter
from typing import Any

import pytest
from fxhost.store.avl import AVLTree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

# A small alphabet so that keys collide and share prefixes; unicode beyond the BMP,
# combining marks and the largest code point included.
ALPHABET = ["a", "b", "é", "e", "\u0301", "字", "🎵", "\U0010ffff", "-", "0"]
names = st.text(alphabet=st.sampled_from(ALPHABET), max_size=4)
prefixes = st.text(alphabet=st.sampled_from(ALPHABET), max_size=3)
first = itemgetter(0)


def make_machine(
    key_strategy: st.SearchStrategy[Any], projection: Any, *, prefix: bool = True
) -> type[RuleBasedStateMachine]:
    """A state machine for keys drawn from ``key_strategy``; prefix searches (if
    ``prefix``) use ``projection`` (None: the key itself is a string)."""
    proj = projection if projection is not None else (lambda k: k)
    with_prefix = prefix

    class AVLMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.tree: AVLTree[Any, int] = AVLTree()
            self.model: dict[Any, int] = {}
            self.counter = 0

        def sorted_items(self) -> list[tuple[Any, int]]:
            return sorted(self.model.items(), key=first)

        def value(self) -> int:
            self.counter += 1
            return self.counter

        def some_key(self, data: st.DataObject) -> Any:
            """A key: present in the tree half of the time when there are any."""
            if self.model and data.draw(st.booleans()):
                return data.draw(st.sampled_from(sorted(self.model)))
            return data.draw(key_strategy)

        @rule(key=key_strategy)
        def insert(self, key: Any) -> None:
            value = self.value()
            assert self.tree.insert(key, value) is (key not in self.model)
            self.model[key] = value

        @precondition(lambda self: self.model)
        @rule(data=st.data())
        def replace(self, data: st.DataObject) -> None:
            key = data.draw(st.sampled_from(sorted(self.model)))
            value = self.value()
            assert self.tree.insert(key, value) is False
            self.model[key] = value

        @rule(data=st.data())
        def delete(self, data: st.DataObject) -> None:
            key = self.some_key(data)
            assert self.tree.delete(key) is (key in self.model)
            self.model.pop(key, None)

        @precondition(lambda self: self.model)
        @rule()
        def delete_root(self) -> None:
            key = self.tree._root.key
            assert self.tree.delete(key)
            del self.model[key]

        @rule(data=st.data())
        def lookup(self, data: st.DataObject) -> None:
            key = self.some_key(data)
            assert (key in self.tree) is (key in self.model)
            assert self.tree.get(key) == self.model.get(key)
            assert self.tree.get(key, "missing") == self.model.get(key, "missing")
            if key in self.model:
                assert self.tree[key] == self.model[key]
            else:
                with pytest.raises(KeyError):
                    self.tree[key]

        @rule(data=st.data(), limit=st.integers(min_value=0, max_value=12))
        def page(self, data: st.DataObject, limit: int) -> None:
            cursor = None if data.draw(st.booleans()) else self.some_key(data)
            expected = [(k, v) for k, v in self.sorted_items() if cursor is None or cursor < k][:limit]
            assert self.tree.page(cursor, limit) == expected

        @rule(data=st.data(), inclusive=st.booleans(), count=st.integers(min_value=0, max_value=8))
        def items_from(self, data: st.DataObject, inclusive: bool, count: int) -> None:
            start = self.some_key(data)
            keys = [k for k, _ in self.sorted_items()]
            i = bisect.bisect_left(keys, start) if inclusive else bisect.bisect_right(keys, start)
            expected = [(k, self.model[k]) for k in keys[i : i + count]]
            it = self.tree.items_from(start, inclusive=inclusive)
            assert [next(it) for _ in range(len(expected))] == expected
            if len(expected) < count:
                assert next(it, None) is None

        @rule(prefix=prefixes, data=st.data())
        def prefix_search(self, prefix: str, data: st.DataObject) -> None:
            if not with_prefix:
                return
            matching = [(k, v) for k, v in self.sorted_items() if proj(k).startswith(prefix)]
            assert list(self.tree.prefix_items(prefix, key=projection)) == matching
            cursor = self.some_key(data)
            after = [(k, v) for k, v in matching if cursor < k]
            assert list(self.tree.prefix_items(prefix, key=projection, start_after=cursor)) == after

        @rule(data=st.data())
        def rank_and_select(self, data: st.DataObject) -> None:
            key = self.some_key(data)
            keys = sorted(self.model)
            assert self.tree.rank(key) == bisect.bisect_left(keys, key)
            if keys:
                i = data.draw(st.integers(min_value=-len(keys), max_value=len(keys) - 1))
                assert self.tree.select(i) == (keys[i], self.model[keys[i]])
            with pytest.raises(IndexError):
                self.tree.select(len(keys))

        @invariant()
        def matches_model(self) -> None:
            self.tree.check_invariants()
            items = self.sorted_items()
            assert len(self.tree) == len(items)
            assert list(self.tree.items()) == items
            if items:
                assert self.tree.min() == items[0]
                assert self.tree.max() == items[-1]
                assert self.tree.height() <= 1.45 * math.log2(len(items) + 2)

    return AVLMachine


machine_settings = settings(
    max_examples=150, stateful_step_count=50, suppress_health_check=[HealthCheck.too_slow]
)

IntKeys = make_machine(st.integers(min_value=-30, max_value=30), None, prefix=False)
IntKeys.TestCase.settings = machine_settings
StringKeys = make_machine(names, None)
StringKeys.TestCase.settings = machine_settings
TupleKeys = make_machine(st.tuples(names, st.integers(min_value=0, max_value=3)), first)
TupleKeys.TestCase.settings = machine_settings

TestIntKeys = IntKeys.TestCase
TestStringKeys = StringKeys.TestCase
TestTupleKeys = TupleKeys.TestCase


# -- edge cases ----------------------------------------------------------------------


def test_empty_tree() -> None:
    tree: AVLTree[str, int] = AVLTree()
    tree.check_invariants()
    assert len(tree) == 0
    assert not tree
    assert tree.height() == 0
    assert "a" not in tree
    assert tree.get("a") is None
    assert tree.get("a", 7) == 7
    with pytest.raises(KeyError):
        tree["a"]
    with pytest.raises(KeyError):
        tree.min()
    with pytest.raises(KeyError):
        tree.max()
    with pytest.raises(IndexError):
        tree.select(0)
    assert tree.delete("a") is False
    assert list(tree) == []
    assert list(tree.items_from("a")) == []
    assert list(tree.items_from()) == []
    assert tree.page(None, 10) == []
    assert tree.page("a", 10) == []
    assert list(tree.prefix_items("")) == []
    assert tree.rank("a") == 0


def test_mapping_dunders_and_pop() -> None:
    tree: AVLTree[int, str] = AVLTree([(2, "b"), (1, "a")])
    tree[3] = "c"
    assert list(tree.items()) == [(1, "a"), (2, "b"), (3, "c")]
    del tree[2]
    with pytest.raises(KeyError):
        del tree[2]
    assert tree.pop(1) == "a"
    assert tree.pop(1, None) is None
    with pytest.raises(KeyError):
        tree.pop(1)
    assert list(tree.keys()) == [3]
    assert list(tree.values()) == ["c"]
    tree.clear()
    assert len(tree) == 0
    tree.check_invariants()


def test_deleting_the_root_until_empty() -> None:
    tree = AVLTree.from_sorted([(i, i) for i in range(200)])
    remaining = set(range(200))
    while tree:
        root = tree._root.key
        assert tree.delete(root)
        remaining.remove(root)
        tree.check_invariants()
        assert list(tree) == sorted(remaining)
    assert tree.height() == 0


def test_page_cursor_walks_everything_and_survives_deleted_cursor() -> None:
    tree = AVLTree.from_sorted([(i, str(i)) for i in range(0, 100, 2)])
    seen: list[int] = []
    cursor = None
    while page := tree.page(cursor, 7):
        seen.extend(k for k, _ in page)
        cursor = page[-1][0]
    assert seen == list(range(0, 100, 2))
    assert tree.page(None, 0) == []
    assert tree.page(None, -1) == []
    # A cursor that is no longer (or never was) a key still resumes in the right place.
    tree.delete(10)
    assert [k for k, _ in tree.page(10, 3)] == [12, 14, 16]
    assert [k for k, _ in tree.page(11, 3)] == [12, 14, 16]
    assert tree.page(98, 5) == []
    assert [k for k, _ in tree.page(-5, 2)] == [0, 2]


def test_duplicate_names_with_distinct_ids() -> None:
    tree: AVLTree[tuple[str, int], str] = AVLTree()
    for asset_id in (5, 1, 3):
        assert tree.insert(("take.wav", asset_id), f"asset {asset_id}")
    assert tree.insert(("take.wav", 3), "replaced") is False
    tree.insert(("take.wav2", 0), "other")
    tree.insert(("take", 9), "shorter")
    tree.check_invariants()
    assert [k for k, _ in tree.prefix_items("take.wav", key=first)] == [
        ("take.wav", 1),
        ("take.wav", 3),
        ("take.wav", 5),
        ("take.wav2", 0),
    ]
    assert tree[("take.wav", 3)] == "replaced"
    # Cursor pages through equal names go by id.
    assert [k for k, _ in tree.page(("take.wav", 1), 2)] == [("take.wav", 3), ("take.wav", 5)]
    assert [k for k, _ in tree.prefix_items("take.wav", key=first, start_after=("take.wav", 3))] == [
        ("take.wav", 5),
        ("take.wav2", 0),
    ]
    assert tree.delete(("take.wav", 3))
    assert ("take.wav", 3) not in tree
    assert ("take.wav", 1) in tree


def test_unicode_names_and_prefixes() -> None:
    words = ["é", "e\u0301cole", "école", "字幕", "字", "🎵 song", "🎵", "\U0010ffff", "\U0010ffffz", "z"]
    tree = AVLTree.from_sorted([(w, i) for i, w in enumerate(sorted(words))])
    tree.check_invariants()
    for prefix in ["", "é", "e", "e\u0301", "字", "🎵", "\U0010ffff", "zz"]:
        expected = [w for w in sorted(words) if w.startswith(prefix)]
        assert [k for k, _ in tree.prefix_items(prefix)] == expected, prefix


def test_prefix_edge_cases() -> None:
    names_ = ["alpha", "beta", "beta-2", "betamax", "gamma"]
    tree = AVLTree.from_sorted([(n, i) for i, n in enumerate(names_)])
    assert [k for k, _ in tree.prefix_items("")] == names_  # "" matches everything
    assert list(tree.prefix_items("zzz")) == []  # past the end
    assert list(tree.prefix_items("0")) == []  # before the start
    assert list(tree.prefix_items("c")) == []  # between keys
    assert list(tree.prefix_items("gammas")) == []  # longer than the last key
    assert [k for k, _ in tree.prefix_items("beta")] == ["beta", "beta-2", "betamax"]
    assert [k for k, _ in tree.prefix_items("beta", start_after="beta-2")] == ["betamax"]
    assert [k for k, _ in tree.prefix_items("beta", start_after="alpha")] == ["beta", "beta-2", "betamax"]
    assert list(tree.prefix_items("beta", start_after="betamax")) == []
    tuples = AVLTree.from_sorted([((n, 0), i) for i, n in enumerate(names_)])
    assert len(list(tuples.prefix_items("", key=first))) == len(names_)
    assert list(tuples.prefix_items("zzz", key=first)) == []


def test_iterators_are_lazy_and_invalidated_by_structural_changes() -> None:
    tree = AVLTree.from_sorted([(i, i) for i in range(10)])
    it = tree.items_from(3)
    assert next(it) == (3, 3)
    tree.insert(4, 40)  # replacing a value is not a structural change
    assert next(it) == (4, 40)
    tree.insert(100, 100)
    with pytest.raises(RuntimeError):
        next(it)
    it = iter(tree)
    next(it)
    tree.delete(0)
    with pytest.raises(RuntimeError):
        next(it)


def test_check_invariants_detects_corruption() -> None:
    tree = AVLTree.from_sorted([(i, i) for i in range(15)])
    tree._root.left.key = 100
    with pytest.raises(AssertionError, match="order"):
        tree.check_invariants()
    tree = AVLTree.from_sorted([(i, i) for i in range(15)])
    tree._root.size += 1
    with pytest.raises(AssertionError, match="size"):
        tree.check_invariants()
    tree = AVLTree.from_sorted([(i, i) for i in range(15)])
    tree._root.height += 1
    with pytest.raises(AssertionError, match="height"):
        tree.check_invariants()
    tree = AVLTree.from_sorted([(i, i) for i in range(3)])
    # Hang the whole tree off a new root's left: balance factor 2.
    top = AVLTree.from_sorted([(10, 10)])
    top._root.left = tree._root
    top._root.height = 3
    top._root.size = 4
    with pytest.raises(AssertionError, match="balance"):
        top.check_invariants()


# -- bulk loading --------------------------------------------------------------------


@given(st.lists(st.tuples(names, st.integers(0, 5)), unique=True, max_size=200))
@settings(max_examples=60)
def test_bulk_load_equals_inserting(keys: list[tuple[str, int]]) -> None:
    items = sorted((k, i) for i, k in enumerate(keys))
    bulk = AVLTree.from_sorted(items)
    bulk.check_invariants()
    inserted: AVLTree[tuple[str, int], int] = AVLTree()
    for k, v in reversed(items):
        inserted.insert(k, v)
    assert list(bulk.items()) == list(inserted.items()) == items
    assert bulk.height() == len(items).bit_length()  # perfectly balanced
    # Still a working tree afterwards.
    for k, _ in items[::3]:
        assert bulk.delete(k)
    bulk.insert(("new", 0), -1)
    bulk.check_invariants()


def test_bulk_load_sizes_and_errors() -> None:
    for n in range(70):
        tree = AVLTree.from_sorted((i, i) for i in range(n))
        tree.check_invariants()
        assert list(tree) == list(range(n))
        assert tree.height() == n.bit_length()
    tree = AVLTree.from_sorted([(1, 1)])
    tree.bulk_load([(5, 5), (6, 6)])  # replaces the contents
    assert list(tree) == [5, 6]
    with pytest.raises(ValueError, match="strictly increasing"):
        tree.bulk_load([(2, 2), (1, 1)])
    with pytest.raises(ValueError, match="strictly increasing"):
        tree.bulk_load([(("a", 1)), ("a", 1)])
    assert list(tree) == [5, 6]  # unchanged by a failed load


# -- scale ---------------------------------------------------------------------------


def test_height_bound_with_100k_keys() -> None:
    n = 100_000
    rng = random.Random(42)
    keys = list(range(n))
    rng.shuffle(keys)
    tree: AVLTree[int, int] = AVLTree()
    for k in keys:
        tree.insert(k, k)
    assert len(tree) == n
    assert tree.height() <= 1.45 * math.log2(n + 2)
    tree.check_invariants()
    # Ascending insertion (the worst case for an unbalanced tree) and deletions.
    ascending: AVLTree[int, int] = AVLTree()
    for k in range(n):
        ascending.insert(k, k)
    assert ascending.height() <= 1.45 * math.log2(n + 2)
    for k in keys[: n // 2]:
        ascending.delete(k)
    m = len(ascending)
    assert m == n - n // 2
    assert ascending.height() <= 1.45 * math.log2(m + 2)
    ascending.check_invariants()


def test_a_million_keys_without_deep_recursion() -> None:
    n = 1_000_000
    tree = AVLTree.from_sorted([((f"take-{i:07d}.wav", i), i) for i in range(n)])
    assert len(tree) == n
    assert tree.height() == n.bit_length()
    assert tree.page(("take-0500000.wav", 500_000), 2) == [
        (("take-0500001.wav", 500_001), 500_001),
        (("take-0500002.wav", 500_002), 500_002),
    ]
    assert len(list(tree.prefix_items("take-000001", key=first))) == 10
    assert tree.delete(("take-0000000.wav", 0))
    assert tree.insert(("a", -1), -1)
    assert tree.min() == (("a", -1), -1)
    assert tree.select(-1) == (("take-0999999.wav", 999_999), 999_999)
