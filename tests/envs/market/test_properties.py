"""Property-based checks (hypothesis) of the action layout and the loss families."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from choicemarket.envs.market.actions import ActionLayout
from choicemarket.envs.market.losses import LOSSES

LAYOUT = ActionLayout(n_params=6, n_learners=4, max_update=0.5)
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@given(arrays(np.float64, LAYOUT.size, elements=finite))
def test_validated_actions_lie_in_the_space_and_parse_like_split(a):
    clipped = LAYOUT.validate(a)
    assert LAYOUT.space().contains(clipped.astype(np.float32))
    update, request = LAYOUT.parse(a)
    updates, probe, peers, route = LAYOUT.split(clipped[None])
    np.testing.assert_array_equal(update, updates[0])
    assert request.probe == bool(probe[0])
    assert request.route_by_preference == bool(route[0])
    named = () if peers is None else tuple(np.flatnonzero(peers[0]))
    assert request.peers == named


@given(
    arrays(np.float64, 6, elements=st.floats(-3, 3)),
    st.booleans(),
    st.lists(st.integers(0, 3), max_size=4),
    st.booleans(),
)
def test_build_then_parse_round_trips(update, probe, peers, route):
    update_back, request = LAYOUT.parse(LAYOUT.build(update, probe, peers, route))
    np.testing.assert_allclose(update_back, np.clip(update, -0.5, 0.5), atol=1e-7)
    on = probe and (route or bool(peers))
    assert request.probe == on
    assert request.peers == (tuple(sorted(set(peers))) if on else ())
    assert request.route_by_preference == (on and route)


@settings(max_examples=50)
@given(arrays(np.float64, (7, 3), elements=st.floats(-30, 30)), st.integers(0, 2))
def test_softmax_loss_nonnegative_and_residual_sums_to_zero(z, label):
    family = LOSSES["multiclass"]
    T = np.eye(3)[np.full(7, label)]
    assert (family.loss(z, T) >= -1e-12).all()
    np.testing.assert_allclose(family.residual(z, T).sum(-1), 0.0, atol=1e-12)


@settings(max_examples=50)
@given(arrays(np.float64, (9, 1), elements=st.floats(-700, 700)), st.integers(0, 1))
def test_logistic_loss_is_stable_for_large_logits(z, label):
    family = LOSSES["binary"]
    T = np.full((9, 1), float(label))
    loss = family.loss(z, T)
    assert np.isfinite(loss).all() and (loss >= 0).all()
    expected = np.logaddexp(0.0, z[:, 0]) - label * z[:, 0]
    np.testing.assert_allclose(loss, expected, rtol=1e-10, atol=1e-10)
