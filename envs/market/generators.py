"""Random numbers of M markets: one ``numpy.random.Generator`` shared by all, or one each.

``reset(seed)`` gives every market one shared generator (a lone market: *the* generator);
``reset(seeds=[...])`` gives market m its own generator seeded by ``seeds[m]``. Every
component of a step draws through this object, market by market in the same order, so market
m with its own seed s follows exactly the trajectory of a lone market reset with s.

The uniforms of every arrival (``block``) are drawn ``BLOCK`` steps at a time: each market
fills its block with one call, so a step makes no per-market call. A block is a fixed number
of steps whatever M, so market m still draws the same numbers in the same order alone or
batched; other draws of the step (probes, components) come between blocks. ``adopt(m, r)``
gives market m generator ``r`` mid-episode: its next step starts a fresh block from ``r``
(the other markets keep theirs), as in a lone market just reset on ``r``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from ..checks import is_integer

BLOCK = 16  # steps of arrival uniforms drawn at once (the same for every M)


class MarketGenerators:
    """The generators of M markets (see the module docstring)."""

    def __init__(self, n_markets: int) -> None:
        self.n_markets = n_markets
        self.shared = np.random.default_rng()
        self.per_market: list[np.random.Generator] | None = None
        self.seeded = False
        self._block: np.ndarray | None = None  # (M, BLOCK, *shape) arrival uniforms
        # steps of its block each market has used: one count while the markets are in step
        # (``_aligned``), an array once a market was adopted mid-block (``_aligned`` None)
        self._aligned: int | None = BLOCK
        self._used = np.full(n_markets, BLOCK)

    def reset(self, seed: int | None = None, seeds: Sequence[int] | None = None) -> None:
        """A ``seed`` restarts the shared generator; ``None`` keeps the current one (Gymnasium's
        convention); ``seeds`` (one integer >= 0 per market) gives each market its own."""
        if seeds is not None:
            seeds = list(seeds)
            if len(seeds) != self.n_markets or not all(is_integer(v) and v >= 0 for v in seeds):
                raise ValueError(
                    f"seeds must be {self.n_markets} integers >= 0 (one per market), got {seeds!r}"
                )
            self.per_market = [np.random.default_rng(int(v)) for v in seeds]
            self.shared = self.per_market[0]
        elif seed is not None or not self.seeded:
            self.per_market = None
            self.shared = np.random.default_rng(seed)
        self.seeded = True
        self._block, self._aligned = None, BLOCK

    def adopt(self, m: int, generator: np.random.Generator) -> None:
        """Market ``m`` draws from ``generator`` from now on, exactly as a lone market just
        reset on it: its next :meth:`block` is a fresh one (the other markets keep theirs).
        Markets that shared one generator keep sharing it, each drawing its own blocks."""
        if self.per_market is None:
            self.per_market = [self.shared] * self.n_markets
        self.per_market[m] = generator
        self.shared = self.per_market[0]
        self.seeded = True
        if self._aligned is not None:
            self._used[:] = self._aligned
            self._aligned = None
        self._used[m] = BLOCK

    def block(self, shape: tuple[int, ...]) -> np.ndarray:
        """The next step's uniforms (M, *shape) from the blocks of ``BLOCK`` steps: market
        m's block is ``BLOCK`` consecutive draws of ``shape`` from its generator (from the
        shared one, steps outermost, when markets share it)."""
        buf, M = self._block, self.n_markets
        if buf is None or buf.shape[2:] != shape:
            self._aligned = BLOCK
        if self._aligned == BLOCK:  # every market starts a new block
            if self.per_market is None:
                buf = self.shared.random((BLOCK, M, *shape)).swapaxes(0, 1)
            else:
                buf = np.empty((M, BLOCK, *shape))
                for m, r in enumerate(self.per_market):
                    r.random(out=buf[m])
            self._block, self._aligned = buf, 0
        u = self._aligned
        if u is not None:
            self._aligned = u + 1
            return buf[:, u]
        used = self._used  # markets out of step: those at the end of theirs draw a new block
        for m in np.flatnonzero(used == BLOCK).tolist():
            buf[m] = self.per_market[m].random((BLOCK, *shape))
            used[m] = 0
        out = buf[np.arange(M), used]
        used += 1
        if (used == used[0]).all():  # in step again
            self._aligned = int(used[0])
        return out

    def market(self, m: int) -> np.random.Generator:
        """Market ``m``'s generator."""
        return self.shared if self.per_market is None else self.per_market[m]

    def random(self, shape: tuple[int, ...]) -> np.ndarray:
        """Uniform draws of shape (M, *shape), market m's from its generator."""
        if self.per_market is None:
            return self.shared.random((self.n_markets, *shape))
        out = np.empty((self.n_markets, *shape))
        for m, r in enumerate(self.per_market):
            r.random(out=out[m])
        return out

    def integers(self, high: int, shape: tuple[int, ...]) -> np.ndarray:
        """Integers uniform on ``0..high-1`` of shape (M, *shape)."""
        if self.per_market is None:
            return self.shared.integers(high, size=(self.n_markets, *shape))
        return np.stack([r.integers(high, size=shape) for r in self.per_market])

    def by_market(self, markets: np.ndarray) -> Iterator[tuple[np.random.Generator, slice]]:
        """For rows that belong to ``markets`` (sorted), each generator with its run of rows:
        one shared generator takes every row at once, in the same order."""
        R = len(markets)
        if self.per_market is None:
            yield self.shared, slice(0, R)
            return
        if R == 0:
            return
        starts = np.flatnonzero(np.r_[True, markets[1:] != markets[:-1]])
        ends = np.r_[starts[1:], R]
        for a, b in zip(starts.tolist(), ends.tolist()):
            yield self.per_market[int(markets[a])], slice(a, b)
