"""In-memory ordered indexes (the asset index is an :class:`AVLTree` keyed by ``(name, id)``)."""

from fxhost.index.avl import AVLTree

__all__ = ["AVLTree"]
