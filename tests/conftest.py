"""Shared fixtures."""

import pytest


@pytest.fixture
def two_slopes() -> dict:
    """The Appendix C instance: w = 0.6 of users y = a x (prefer learner 0), the rest y = b x."""
    return dict(
        dataset="two-slopes",
        dataset_options={"a": 1.0, "b": -1.0, "w": 0.6},
        n_learners=2,
        preferences="category",
        l2=0.0,
        users_per_step=150,
    )
