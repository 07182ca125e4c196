"""An ordered map as an AVL tree: balanced after every insert and delete.

Keys are any totally ordered values; only ``<`` is used to compare them (two keys are
equal when neither is less than the other). The asset index keys entries by
``(tenant, name, id)`` so that names may repeat while keys stay unique.

Costs, for ``n`` keys (the height of an AVL tree is below ``1.44 * log2(n + 2)``):

- ``get`` / ``in`` / ``[]``, ``insert``, ``delete``, ``rank``, ``select``: ``O(log n)``;
- ``items_from``, ``prefix_items``: ``O(log n)`` to the first item, then ``O(1)``
  amortised per item, produced lazily;
- ``page(cursor, limit)``: ``O(log n + limit)``;
- ``bulk_load``: ``O(n)``, a perfectly balanced tree from sorted items;
- ``len``: ``O(1)``. Every node also keeps the size of its subtree (for ``rank`` and
  ``select``).

Insert and delete are iterative (an explicit path, at most ~1.44 log2 n nodes long),
so no operation recurses; ``check_invariants`` recurses on the height only.

Not thread-safe: the owner serialises mutations (reads may run concurrently with each
other). Iterators are invalidated by an insert of a new key or a delete, like a
``dict``'s: the next step raises ``RuntimeError``. Replacing the value of an existing
key is not a structural change and does not invalidate them.

One module, though long: the tree's invariants (heights and subtree sizes) are kept by
the rotations, ``insert``, ``delete`` and ``bulk_load`` together, and the ordered walks
read the same nodes; apart, each part would reach into the others' nodes.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar, overload

K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")

__all__ = ["AVLTree"]


class _Node:
    __slots__ = ("height", "key", "left", "right", "size", "value")

    def __init__(self, key: Any, value: Any, left: _Node, right: _Node, height: int, size: int) -> None:
        self.key = key
        self.value = value
        self.left = left
        self.right = right
        self.height = height
        self.size = size


#: The empty subtree: height 0, size 0. Leaves point at it, so that heights and sizes
#: of children are read without ``None`` checks. Never mutated.
NIL = _Node(None, None, None, None, 0, 0)  # type: ignore[arg-type]


def _rotate_right(y: _Node) -> _Node:
    x = y.left
    b = x.right
    y.left = b
    x.right = y
    yl = b.height
    yr = y.right.height
    y.height = (yl if yl > yr else yr) + 1
    y.size = b.size + y.right.size + 1
    xl = x.left.height
    x.height = (xl if xl > y.height else y.height) + 1
    x.size = x.left.size + y.size + 1
    return x


def _rotate_left(x: _Node) -> _Node:
    y = x.right
    b = y.left
    x.right = b
    y.left = x
    xl = x.left.height
    xr = b.height
    x.height = (xl if xl > xr else xr) + 1
    x.size = x.left.size + b.size + 1
    yr = y.right.height
    y.height = (x.height if x.height > yr else yr) + 1
    y.size = x.size + y.right.size + 1
    return y


def _rebalance(n: _Node) -> _Node:
    """Recompute ``n``'s height and size from its children, rotating if it is out of
    balance (children's heights differ by 2); return the new root of the subtree."""
    left = n.left
    right = n.right
    hl = left.height
    hr = right.height
    if hl - hr > 1:
        if left.left.height < left.right.height:
            n.left = _rotate_left(left)
        return _rotate_right(n)
    if hr - hl > 1:
        if right.right.height < right.left.height:
            n.right = _rotate_right(right)
        return _rotate_left(n)
    n.height = (hl if hl > hr else hr) + 1
    n.size = left.size + right.size + 1
    return n


def _build(items: list[tuple[Any, Any]], lo: int, hi: int) -> _Node:
    """A perfectly balanced tree of ``items[lo:hi]`` (``hi > lo``)."""
    size = hi - lo
    if size == 1:
        key, value = items[lo]
        return _Node(key, value, NIL, NIL, 1, 1)
    mid = (lo + hi) >> 1
    key, value = items[mid]
    left = _build(items, lo, mid)
    right = _build(items, mid + 1, hi) if mid + 1 < hi else NIL
    # Subtrees of sizes floor((s-1)/2) and ceil((s-1)/2): the height is bit_length(s).
    return _Node(key, value, left, right, size.bit_length(), size)


class AVLTree(Generic[K, V]):
    """An ordered map ``key -> value``, iterated in key order."""

    __slots__ = ("_root", "_version")

    def __init__(self, items: Iterable[tuple[K, V]] = ()) -> None:
        self._root: _Node = NIL
        # Bumped by structural changes (a new key, a deleted key, a bulk load, clear).
        self._version = 0
        for key, value in items:
            self.insert(key, value)

    @classmethod
    def from_sorted(cls, sorted_items: Iterable[tuple[K, V]]) -> AVLTree[K, V]:
        """A new tree built by :meth:`bulk_load`."""
        tree: AVLTree[K, V] = cls()
        tree.bulk_load(sorted_items)
        return tree

    # -- size and membership -------------------------------------------------------

    def __len__(self) -> int:
        return self._root.size

    def __bool__(self) -> bool:
        return self._root is not NIL

    def __contains__(self, key: object) -> bool:
        return self._find(key) is not None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={len(self)}, height={self.height()})"

    def height(self) -> int:
        """Height of the tree: 0 when empty, 1 for a single key."""
        return self._root.height

    # -- lookups -------------------------------------------------------------------

    def _find(self, key: Any) -> _Node | None:
        node = self._root
        while node is not NIL:
            k = node.key
            if key < k:
                node = node.left
            elif k < key:
                node = node.right
            else:
                return node
        return None

    @overload
    def get(self, key: K) -> V | None: ...
    @overload
    def get(self, key: K, default: D) -> V | D: ...
    def get(self, key: K, default: Any = None) -> Any:
        node = self._root
        while node is not NIL:
            k = node.key
            if key < k:
                node = node.left
            elif k < key:
                node = node.right
            else:
                return node.value
        return default

    def __getitem__(self, key: K) -> V:
        node = self._find(key)
        if node is None:
            raise KeyError(key)
        return node.value

    def __setitem__(self, key: K, value: V) -> None:
        self.insert(key, value)

    def __delitem__(self, key: K) -> None:
        if not self.delete(key):
            raise KeyError(key)

    def min(self) -> tuple[K, V]:
        """The item with the smallest key; ``KeyError`` if the tree is empty."""
        node = self._root
        if node is NIL:
            raise KeyError("min() of an empty AVLTree")
        while node.left is not NIL:
            node = node.left
        return node.key, node.value

    def max(self) -> tuple[K, V]:
        """The item with the largest key; ``KeyError`` if the tree is empty."""
        node = self._root
        if node is NIL:
            raise KeyError("max() of an empty AVLTree")
        while node.right is not NIL:
            node = node.right
        return node.key, node.value

    def rank(self, key: K) -> int:
        """How many keys are less than ``key`` (whether or not ``key`` is present)."""
        node = self._root
        rank = 0
        while node is not NIL:
            if node.key < key:
                rank += node.left.size + 1
                node = node.right
            else:
                node = node.left
        return rank

    def select(self, index: int) -> tuple[K, V]:
        """The item at position ``index`` in key order (negative counts from the end);
        ``IndexError`` if out of range."""
        n = self._root.size
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("AVLTree index out of range")
        node = self._root
        while True:
            left_size = node.left.size
            if index < left_size:
                node = node.left
            elif index == left_size:
                return node.key, node.value
            else:
                index -= left_size + 1
                node = node.right

    # -- mutation ------------------------------------------------------------------

    def insert(self, key: K, value: V) -> bool:
        """Map ``key`` to ``value``. True if the key is new, False if its value was replaced."""
        node = self._root
        path: list[_Node] = []
        while node is not NIL:
            path.append(node)
            k = node.key
            if key < k:
                node = node.left
            elif k < key:
                node = node.right
            else:
                node.value = value
                return False
        self._version += 1
        new = _Node(key, value, NIL, NIL, 1, 1)
        if not path:
            self._root = new
            return True
        parent = path[-1]
        if key < parent.key:
            parent.left = new
        else:
            parent.right = new
        # Walk up: sizes grow by one all the way; heights only until one is unchanged
        # or a rotation (at most one per insert) restores the height of the subtree.
        i = len(path) - 1
        while i >= 0:
            n = path[i]
            n.size += 1
            hl = n.left.height
            hr = n.right.height
            if hl - hr > 1 or hr - hl > 1:
                self._relink(path[i - 1] if i else None, n, _rebalance(n))
                i -= 1
                break
            h = (hl if hl > hr else hr) + 1
            i -= 1
            if h == n.height:
                break
            n.height = h
        while i >= 0:
            path[i].size += 1
            i -= 1
        return True

    def delete(self, key: K) -> bool:
        """Remove ``key``. True if it was present, False if not."""
        node = self._root
        path: list[_Node] = []
        while node is not NIL:
            k = node.key
            if key < k:
                path.append(node)
                node = node.left
            elif k < key:
                path.append(node)
                node = node.right
            else:
                break
        else:
            return False
        self._version += 1
        if node.left is not NIL and node.right is not NIL:
            # Two children: move the successor's item here and unlink the successor,
            # which has no left child.
            path.append(node)
            target = node.right
            while target.left is not NIL:
                path.append(target)
                target = target.left
            node.key = target.key
            node.value = target.value
            replacement = target.right
        else:
            target = node
            replacement = node.left if node.left is not NIL else node.right
        self._relink(path[-1] if path else None, target, replacement)
        # Walk up: every ancestor loses one from its size; heights change, and rotations
        # (possibly several) happen, only until a subtree keeps its height.
        i = len(path) - 1
        while i >= 0:
            n = path[i]
            old_height = n.height
            sub = _rebalance(n)
            if sub is not n:
                self._relink(path[i - 1] if i else None, n, sub)
            i -= 1
            if sub.height == old_height:
                break
        while i >= 0:
            path[i].size -= 1
            i -= 1
        return True

    def _relink(self, parent: _Node | None, old: _Node, new: _Node) -> None:
        """Hang ``new`` where ``old`` hung: under ``parent``, or as the root (``parent`` None)."""
        if parent is None:
            self._root = new
        elif parent.left is old:
            parent.left = new
        else:
            parent.right = new

    def pop(self, key: K, *default: Any) -> Any:
        """Remove ``key`` and return its value (or ``default``; ``KeyError`` without one)."""
        node = self._find(key)
        if node is None:
            if default:
                return default[0]
            raise KeyError(key)
        value = node.value
        self.delete(key)
        return value

    def clear(self) -> None:
        self._root = NIL
        self._version += 1

    def bulk_load(self, sorted_items: Iterable[tuple[K, V]]) -> None:
        """Replace the contents with ``sorted_items`` (keys strictly increasing, else
        ``ValueError``), built as a perfectly balanced tree in ``O(n)``."""
        items = sorted_items if isinstance(sorted_items, list) else list(sorted_items)
        for i in range(1, len(items)):
            if not items[i - 1][0] < items[i][0]:
                raise ValueError(
                    f"bulk_load needs strictly increasing keys: item {i} ({items[i][0]!r}) "
                    f"does not follow {items[i - 1][0]!r}"
                )
        # Building a million nodes with the cyclic GC on costs ~5x as much (it rescans the
        # growing heap); nodes form no cycles, so it is paused for the build.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            self._root = _build(items, 0, len(items)) if items else NIL
        finally:
            if gc_was_enabled:
                gc.enable()
        self._version += 1

    # -- ordered iteration ---------------------------------------------------------

    def _seek(self, key: Any, inclusive: bool) -> list[_Node]:
        """The stack of an in-order walk positioned at the first key ``>= key``
        (``> key`` when not inclusive): the ancestors still to be visited."""
        stack: list[_Node] = []
        node = self._root
        if inclusive:
            while node is not NIL:
                if node.key < key:
                    node = node.right
                else:
                    stack.append(node)
                    node = node.left
        else:
            while node is not NIL:
                if key < node.key:
                    stack.append(node)
                    node = node.left
                else:
                    node = node.right
        return stack

    def _seek_first(self) -> list[_Node]:
        stack: list[_Node] = []
        node = self._root
        while node is not NIL:
            stack.append(node)
            node = node.left
        return stack

    def _walk(self, stack: list[_Node]) -> Iterator[_Node]:
        version = self._version
        while stack:
            node = stack.pop()
            yield node
            if self._version != version:
                raise RuntimeError("AVLTree changed size during iteration")
            node = node.right
            while node is not NIL:
                stack.append(node)
                node = node.left

    def __iter__(self) -> Iterator[K]:
        for node in self._walk(self._seek_first()):
            yield node.key

    def keys(self) -> Iterator[K]:
        return iter(self)

    def values(self) -> Iterator[V]:
        for node in self._walk(self._seek_first()):
            yield node.value

    def items(self) -> Iterator[tuple[K, V]]:
        for node in self._walk(self._seek_first()):
            yield node.key, node.value

    def items_from(self, key: K | None = None, *, inclusive: bool = True) -> Iterator[tuple[K, V]]:
        """Items in key order from the first key ``>= key`` (``> key`` if not
        inclusive), or from the first key when ``key`` is None; lazily."""
        stack = self._seek_first() if key is None else self._seek(key, inclusive)
        for node in self._walk(stack):
            yield node.key, node.value

    def page(self, start_after: K | None, limit: int) -> list[tuple[K, V]]:
        """Up to ``limit`` items in key order strictly after the cursor ``start_after``
        (from the first key when None). The next page's cursor is the last key returned,
        which stays valid even if that key is deleted meanwhile."""
        if limit <= 0:
            return []
        stack = self._seek_first() if start_after is None else self._seek(start_after, False)
        out: list[tuple[K, V]] = []
        while stack:
            node = stack.pop()
            out.append((node.key, node.value))
            if len(out) >= limit:
                break
            node = node.right
            while node is not NIL:
                stack.append(node)
                node = node.left
        return out

    def prefix_items(
        self,
        prefix: str,
        *,
        key: Callable[[K], str] | None = None,
        start_after: K | None = None,
    ) -> Iterator[tuple[K, V]]:
        """Items, in key order, whose key (or ``key(k)``, e.g. ``operator.itemgetter(0)``
        for ``(name, id)`` keys) starts with ``prefix``; lazily, ``O(log n + m)``.

        ``key`` must be monotone in the tree's order (``k1 < k2`` implies
        ``key(k1) <= key(k2)``), as the first element of a tuple key is. Strings that
        start with ``prefix`` form one contiguous run in that order, so the walk seeks
        its start and stops at its end. ``start_after`` resumes after a cursor (a key
        from a previous page). The prefix ``""`` matches every key.
        """
        proj = key
        if proj is None:
            if start_after is not None and not start_after < prefix:  # type: ignore[operator]
                stack = self._seek(start_after, False)
            else:
                stack = self._seek(prefix, True)
            for node in self._walk(stack):
                k = node.key
                if not k.startswith(prefix):  # type: ignore[attr-defined]
                    return
                yield k, node.value
            return
        if start_after is not None and not proj(start_after) < prefix:
            stack = self._seek(start_after, False)
        else:
            stack = []
            node = self._root
            while node is not NIL:
                if proj(node.key) < prefix:
                    node = node.right
                else:
                    stack.append(node)
                    node = node.left
        for node in self._walk(stack):
            k = node.key
            if not proj(k).startswith(prefix):
                return
            yield k, node.value

    # -- checking ------------------------------------------------------------------

    def check_invariants(self) -> None:
        """Check the BST order, stored heights and sizes, and AVL balance (balance factor
        in -1..1) of every node; raise ``AssertionError`` naming the first failure."""
        if NIL.height != 0 or NIL.size != 0 or NIL.left is not None or NIL.right is not None:
            raise AssertionError("the empty-subtree sentinel was modified")
        previous: list[Any] = []

        def check(node: _Node, depth: int) -> tuple[int, int]:
            if node is NIL:
                return 0, 0
            if node is None:
                raise AssertionError(f"None child at depth {depth} (expected the sentinel)")
            hl, sl = check(node.left, depth + 1)
            if previous and not previous[0] < node.key:
                raise AssertionError(f"order: key {node.key!r} follows {previous[0]!r}")
            if previous:
                previous[0] = node.key
            else:
                previous.append(node.key)
            hr, sr = check(node.right, depth + 1)
            if not -1 <= hl - hr <= 1:
                raise AssertionError(
                    f"balance: node {node.key!r} has balance factor {hl - hr} (left {hl}, right {hr})"
                )
            height = max(hl, hr) + 1
            if node.height != height:
                raise AssertionError(f"height: node {node.key!r} stores {node.height}, actual {height}")
            size = sl + sr + 1
            if node.size != size:
                raise AssertionError(f"size: node {node.key!r} stores {node.size}, actual {size}")
            return height, size

        check(self._root, 0)
