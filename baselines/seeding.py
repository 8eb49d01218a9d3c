"""The one seeding rule of policies: learner k of an episode seeded s gets ``SeedSequence([s, k])``.

``simulate``, the single-learner views and the vector environments all seed policies here, so a
policy plays the same game whichever of them runs it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def policy_seed(seed: int, k: int, unseeded_episodes: int = 0) -> int:
    """Seed of learner ``k``'s policy in the episode reset with ``seed``: from
    ``SeedSequence([seed, k])``, or ``SeedSequence([seed, k, e])`` in the e-th episode reset
    without a seed after it (Gymnasium's ``reset()`` continuing a seeded run)."""
    entropy = (
        [int(seed), int(k)] if unseeded_episodes == 0 else [int(seed), int(k), unseeded_episodes]
    )
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


@dataclass
class EpisodeSeeds:
    """The seeds of one market's episodes, as Gymnasium's ``reset`` rules them: ``reset(seed=s)``
    starts afresh from s; ``reset()`` draws a base seed from fresh entropy the first time, and
    otherwise continues, counting the unseeded episodes since the last seed."""

    base: int | None = None
    unseeded: int = 0
    generator: np.random.Generator | None = None  # the market's generator, when it keeps one

    def start(self, seed: int | None) -> None:
        """Begin an episode reset with ``seed`` (None: continue)."""
        if seed is not None:
            self.base, self.unseeded = int(seed), 0
            self.generator = np.random.default_rng(seed)
        elif self.base is None:
            self.base = int(np.random.SeedSequence().generate_state(1)[0])
            self.generator = np.random.default_rng()
        else:
            self.unseeded += 1  # the market's generator continues

    def policy(self, k: int) -> int:
        """The seed of learner ``k``'s policy (``k = n``: the collective's) this episode."""
        return policy_seed(self.base, k, self.unseeded)
