"""Shared fixtures, and the fuzzing profiles of ``tests/fuzz`` (``--fuzz-profile``)."""

import os
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, settings

from choicemarket.envs.data.array_cache import ENV_VAR

# profiles of the fuzz suite only (other property tests keep hypothesis' defaults):
# "fuzz-ci", the default, bounded for every run of the suite; "fuzz-long", a deeper search
FUZZ_PROFILES = {"ci": "fuzz-ci", "long": "fuzz-long"}
settings.register_profile(
    "fuzz-ci",
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "fuzz-long",
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-profile",
        default=None,
        choices=("ci", "long"),
        help="hypothesis profile of tests/fuzz: 'ci' (default, bounded) or 'long' "
        "(also selectable with HYPOTHESIS_PROFILE)",
    )


def pytest_configure(config: pytest.Config) -> None:
    # the population cache of this run lives in a folder of its own, never the user's cache;
    # set before any test imports the market, and inherited by the processes tests spawn
    if ENV_VAR not in os.environ:
        folder = tempfile.mkdtemp(prefix="choicemarket-test-cache-")
        os.environ[ENV_VAR] = folder
        config._choicemarket_cache = folder
    name = config.getoption("--fuzz-profile") or os.environ.get("HYPOTHESIS_PROFILE") or "ci"
    if name not in FUZZ_PROFILES:
        name = "ci"
    # tests/fuzz decorate with settings.get_profile("fuzz")
    settings.register_profile("fuzz", settings.get_profile(FUZZ_PROFILES[name]))


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = getattr(config, "_choicemarket_cache", None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(ENV_VAR, None)


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
