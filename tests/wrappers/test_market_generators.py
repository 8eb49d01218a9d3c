"""``MarketGenerators.adopt``: a market given a new generator mid-block draws what a lone market
reset on that generator draws, the other markets what they drew before."""

import numpy as np
import pytest

from choicemarket.envs.market.generators import BLOCK, MarketGenerators

SHAPE = (2, 3)


def _steps(gens: MarketGenerators, steps: int, m: int | None = None) -> list[np.ndarray]:
    """Each step's arrival uniforms, then a draw of market ``m``'s generator between blocks."""
    out = []
    for _ in range(steps):
        out.append(gens.block(SHAPE).copy())
        if m is not None:
            out.append(gens.market(m).random(2)[None])
    return out


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("done", [0, 5, BLOCK - 1, BLOCK + 7])
def test_adopted_market_draws_as_a_lone_market_reset_with_its_seed(shared, done):
    gens, plain = MarketGenerators(3), MarketGenerators(3)
    for g in (gens, plain):
        g.reset(seed=4) if shared else g.reset(seeds=[4, 5, 6])
        _steps(g, done)
    gens.adopt(1, np.random.default_rng(9))
    got = np.stack([gens.block(SHAPE) for _ in range(2 * BLOCK + 3)], 1)
    alone = MarketGenerators(1)
    alone.reset(seed=9)
    want = np.stack([alone.block(SHAPE)[0] for _ in range(2 * BLOCK + 3)])
    np.testing.assert_array_equal(got[1], want)
    if not shared:  # markets with their own generators draw on as before
        others = np.stack([plain.block(SHAPE) for _ in range(2 * BLOCK + 3)], 1)
        np.testing.assert_array_equal(got[[0, 2]], others[[0, 2]])
    assert gens.market(1) is not plain.market(1)


def test_adopted_market_with_draws_between_blocks():
    gens = MarketGenerators(2)
    gens.reset(seeds=[1, 2])
    _steps(gens, 3)
    gens.adopt(0, np.random.default_rng(7))
    got = _steps(gens, BLOCK + 4, m=0)
    alone = MarketGenerators(1)
    alone.reset(seed=7)
    want = _steps(alone, BLOCK + 4, m=0)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a[0], b[0])


def test_adopting_every_market_then_reset_continues_the_generators():
    gens = MarketGenerators(2)
    given = [np.random.default_rng(s) for s in (3, 8)]
    for m, r in enumerate(given):
        gens.adopt(m, r)
    gens.reset()  # no seed: keeps the adopted generators
    assert [gens.market(m) for m in range(2)] == given and gens.shared is given[0]
    got = gens.block(SHAPE)
    for m, s in enumerate((3, 8)):
        np.testing.assert_array_equal(got[m], np.random.default_rng(s).random((BLOCK, *SHAPE))[0])
