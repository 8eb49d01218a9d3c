"""The one seeding rule of policies: learner k of an episode seeded s gets ``SeedSequence([s, k])``.

``simulate``, the single-learner views and the vector environments all seed policies here, so a
policy plays the same game whichever of them runs it.
"""

from __future__ import annotations

import numpy as np


def policy_seed(seed: int, k: int, unseeded_episodes: int = 0) -> int:
    """Seed of learner ``k``'s policy in the episode reset with ``seed``: from
    ``SeedSequence([seed, k])``, or ``SeedSequence([seed, k, e])`` in the e-th episode reset
    without a seed after it (Gymnasium's ``reset()`` continuing a seeded run)."""
    entropy = (
        [int(seed), int(k)] if unseeded_episodes == 0 else [int(seed), int(k), unseeded_episodes]
    )
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])
