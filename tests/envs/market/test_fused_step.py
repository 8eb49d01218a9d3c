"""The fused batched step: the best learner is the lowest-loss one, own-user gradients from
the choice's segments equal the padded ones, and the blocked random streams are the per-step
streams."""

from __future__ import annotations

import numpy as np
import pytest

from choicemarket.baselines import MSGDP
from choicemarket.envs import MarketConfig, MarketCore
from choicemarket.envs.market.generators import BLOCK, MarketGenerators
from choicemarket.envs.market.losses import LOSSES, batch_logits, mean_gradient


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_best_learner_is_the_lowest_loss(task):
    rng = np.random.default_rng(0)
    family = LOSSES[task]
    o = 3 if task == "multiclass" else 1
    z = rng.normal(size=(4, 50, 6, o))
    z[:, :, 4] = z[:, :, 1]  # exact ties: the lowest index wins either way
    if task == "multiclass":
        T = np.eye(o)[rng.integers(0, o, (4, 50))]
    else:
        T = rng.integers(0, 2, (4, 50, 1)).astype(float)
    L = family.loss(z, T[:, :, None, :])
    np.testing.assert_array_equal(family.best(z, T, hard=task == "binary"), L.argmin(-1))
    if task == "binary":  # the margin's order is the losses' order
        np.testing.assert_array_equal(family.best(z, T, hard=False), L.argmin(-1))


@pytest.mark.parametrize("dataset", ["acs-income", "digits", "synthetic-ratings"])
def test_user_gradients_equal_padded_mean_gradients(dataset):
    core = MarketCore(MarketConfig.from_kwargs(dataset=dataset, n_learners=3), n_markets=2)
    core.reset(seeds=[1, 2])
    s, spec = core.state, core.spec
    X, T, mask = core.padded_users()
    K = 2 * spec.n_learners
    padded = mean_gradient(
        spec.family,
        s.theta.reshape(K, *spec.param_shape),
        X.reshape(K, *X.shape[2:]),
        T.reshape(K, *T.shape[2:]),
        mask.reshape(K, -1),
    ).reshape(s.theta.shape)
    np.testing.assert_allclose(core.user_gradients(), padded, rtol=1e-10, atol=1e-13)
    z = batch_logits(s.theta, s.batch_X)
    chosen = np.take_along_axis(z, s.choice[:, :, None, None], 2)[:, :, 0]
    np.testing.assert_array_equal(s.served_logits, chosen)


def test_arrival_blocks_are_each_markets_own_stream():
    gens = MarketGenerators(3)
    gens.reset(seeds=[5, 6, 7])
    got = np.stack([gens.block((2, 4)) for _ in range(BLOCK + 3)], 1)  # (M, steps, 2, 4)
    for m, seed in enumerate([5, 6, 7]):
        r = np.random.default_rng(seed)
        want = r.random((2 * BLOCK, 2, 4))[: BLOCK + 3]
        np.testing.assert_array_equal(got[m], want)
    alone = MarketGenerators(1)
    alone.reset(seed=6)
    np.testing.assert_array_equal(
        np.stack([alone.block((2, 4))[0] for _ in range(BLOCK + 3)]), got[1]
    )


def test_probe_batch_uniforms_are_one_draw_per_batch():
    spec = MarketCore(MarketConfig.from_kwargs(dataset="acs-income")).spec
    pol = MSGDP(spec, 0, p=0.5, probe_batch_size=7, seed=3)
    r = np.random.default_rng(3)
    for _ in range(BLOCK + 2):
        np.testing.assert_array_equal(pol.uniforms(7), r.random(7))
    pol.reset(3)  # a new generator starts a new block
    np.testing.assert_array_equal(pol.uniforms(7), np.random.default_rng(3).random(7))


def test_uniforms_of_policies_in_step_are_their_own_streams():
    """Policies drawing together share one array of blocks and still get exactly their own
    generators' numbers, also when one of them drew alone in between (out of step)."""
    from choicemarket.baselines.msgd import stream_uniforms

    spec = MarketCore(MarketConfig.from_kwargs(dataset="acs-income")).spec
    pols = [MSGDP(spec, 0, p=0.5, seed=s) for s in (3, 4, 5)]
    refs = [np.random.default_rng(s) for s in (3, 4, 5)]
    for t in range(3 * BLOCK + 5):
        if t == BLOCK + 2:  # one policy draws alone: the group falls back to each stream
            np.testing.assert_array_equal(pols[1].uniforms(7), refs[1].random(7))
        got = stream_uniforms(pols, 7)
        np.testing.assert_array_equal(got, np.stack([r.random(7) for r in refs]))
        if t <= BLOCK + 1:  # in step: one slice of the group's blocks
            assert got.base is pols[0]._group.array


@pytest.mark.parametrize("b", [5, 2000])
def test_probe_batch_by_counts_is_the_mean_over_the_batch(b):
    """Counts over a held set of 600 points give the probe batch's mean gradient whether the
    batch is small (only the drawn points are used) or large (every held point is)."""
    from choicemarket.baselines.msgd import msgd_update, probe_counts

    rng = np.random.default_rng(1)
    family = LOSSES["binary"]
    theta = rng.normal(size=(3, 1, 4))
    PX = rng.normal(size=(2, 600, 4))
    PT = (rng.random((2, 600, 1)) < 0.5).astype(float)
    idx = rng.integers(0, 600, (2, b))
    own = np.zeros_like(theta)
    rows = np.array([0, 2])
    probes = [(rows, PX, PT, np.array([1.0, 1.0]), probe_counts(idx, 600))]
    u = msgd_update(family, theta, None, None, None, probes, 0.0, -1.0, own)
    batch_X = np.take_along_axis(PX, idx[..., None], 1)
    batch_T = np.take_along_axis(PT, idx[..., None], 1)
    h = mean_gradient(family, theta[rows], batch_X, batch_T)
    np.testing.assert_allclose(u[rows], -h / 2.0, rtol=1e-12)  # -eta (0 + 1 h) / (1 + 1)
    np.testing.assert_array_equal(u[1], 0.0)
