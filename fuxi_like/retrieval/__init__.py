"""Retrieval indexes: exact brute force and ScaNN, one API (build / search / save / load)."""

from .index import ExactIndex, ScaNNIndex, load_index, make_index

__all__ = ["ExactIndex", "ScaNNIndex", "load_index", "make_index"]
