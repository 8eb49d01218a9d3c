"""``Layout``: a flat float32 vector made of named blocks with finite bounds.

The flat observations and the global states of the environments are each one ``Layout``: a
list of blocks ``(name, size, low, high)``. The layout gives the ``Box`` space, the slice of
every block, and clips assembled vectors into the box (so finite inputs always give an
observation inside its space).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

__all__ = ["OBSERVATIONS", "Block", "Layout"]

OBSERVATIONS = ("dict", "flat")  # the ``observation`` option of the PettingZoo envs


@dataclass(frozen=True)
class Block:
    """``size`` consecutive entries bounded by ``[low, high]`` (finite)."""

    name: str
    size: int
    low: float
    high: float
    doc: str = ""


class Layout:
    """Named blocks laid end to end: ``vector = [block_0 | block_1 | ...]``."""

    def __init__(self, blocks: Sequence[Block]) -> None:
        blocks = [b for b in blocks if b.size > 0]
        names = [b.name for b in blocks]
        if len(set(names)) != len(names):
            raise ValueError(f"block names must be distinct, got {names}")
        self.blocks = tuple(blocks)
        self.slices: dict[str, slice] = {}
        start = 0
        for b in blocks:
            self.slices[b.name] = slice(start, start + b.size)
            start += b.size
        self.size = start
        self.low = np.concatenate([np.full(b.size, b.low, np.float32) for b in blocks])
        self.high = np.concatenate([np.full(b.size, b.high, np.float32) for b in blocks])
        if not (np.isfinite(self.low).all() and np.isfinite(self.high).all()):
            raise ValueError("every block needs finite bounds")
        self.space = spaces.Box(self.low, self.high, dtype=np.float32)

    def empty(self, *lead: int) -> np.ndarray:
        """An uninitialised float64 array of shape ``(*lead, size)`` to fill block by block."""
        return np.empty((*lead, self.size), np.float64)

    def finish(self, v: np.ndarray) -> np.ndarray:
        """``v`` clipped into the bounds (NaN to the lower bound) as float32."""
        v = np.where(np.isnan(v), self.low, v)
        return np.clip(v, self.low, self.high).astype(np.float32)

    def table(self) -> str:
        """The layout as a Markdown table (entry, size, bounds, meaning)."""
        rows = ["| entry | size | bounds | value |", "|---|---:|---|---|"]
        for b in self.blocks:
            rows.append(f"| {b.name} | {b.size} | [{b.low:g}, {b.high:g}] | {b.doc} |")
        return "\n".join(rows)
