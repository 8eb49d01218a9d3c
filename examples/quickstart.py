"""The market through the PettingZoo API, with a hand-written learner among MSGD incumbents.

Learner 0 follows its own rule: a gradient step on its users like MSGD, plus, every 500 steps,
a request to probe learners 1 and 2 (median of their predictions), whose answers it mixes in
with weight 0.5. Everyone else runs MSGD. At the end the script prints the market table.

    python examples/quickstart.py
"""

from __future__ import annotations

import numpy as np

from choicemarket.baselines import MSGD, act_all
from choicemarket.envs import market_v0
from choicemarket.envs.market.losses import mean_gradient

env = market_v0.parallel_env(dataset="acs-income", max_steps=2000, render_mode="ansi")
spec, layout = env.market_spec, env.action_layout
incumbents = {a: MSGD(spec, eta=0.01) for a in env.possible_agents[1:]}
rng = np.random.default_rng(0)


def my_learner(obs: dict) -> np.ndarray:
    theta = obs["params"].reshape(1, *spec.param_shape).astype(np.float64)
    g = mean_gradient(
        spec.family, theta, obs["covariates"][None], obs["targets"][None], obs["mask"][None]
    )[0]
    held = int(obs["probe_mask"].sum())
    if held:  # mix in the gradient on a resampled batch of the probe response
        rows = rng.integers(held, size=150)
        h = mean_gradient(
            spec.family,
            theta,
            obs["probe_covariates"][rows][None],
            obs["probe_targets"][rows][None],
        )[0]
        g = (g + 0.5 * h) / 1.5
    step = int(obs["step"][0])
    return layout.build(-0.01 * g, probe=step % 500 == 0, peers=[1, 2])


obs, infos = env.reset(seed=0)
while env.agents:
    actions = act_all(incumbents, {a: o for a, o in obs.items() if a != "learner_0"})
    actions["learner_0"] = my_learner(obs["learner_0"])
    obs, rewards, terminations, truncations, infos = env.step(actions)

print(env.render())
