"""Vectorised environments for RL: environment steps per second, and the environment's share
of PPO's wall time.

Market: the census market of ``examples/shared_policy_ppo.py`` (acs-income, n = 5 learners,
B = 150 users per step, tau = 0.7), ``--markets`` M markets (default 8), strategy-knob actions
drawn uniformly. Measured:

- ``shared policy, one core``: ``shared_policy_vec_env`` (``MarketVecEnv``): every learner of
  M markets is one sub-env; all markets advance in one core call;
- ``shared policy, loop``: the same sub-envs stepped the way ``MarketVecEnv`` did before, a loop
  over M single ``market_v0`` environments with per-learner knobs and flat features (kept
  below as :class:`LoopVecEnv`, the yardstick);
- ``make_vec, one core``: ``gymnasium.make_vec("choicemarket/PlatformStrategy-v0",
  num_envs=M)`` (one ego per market, scripted MSGD opponents), and ``make_vec, sync``: the
  same through ``SyncVectorEnv`` over M single environments;
- PPO (``n_steps`` 128 per sub-env, 2 epochs, batch 256) on each shared-policy env: training
  steps per second and the share of ``learn``'s wall time spent inside the environment.

Rates are sub-env steps per second (learner-steps for the shared policy, ego steps for
make_vec), medians of ``--repeats`` runs, each also as a ratio to the reference loop
``../shared/bench/refloop.py`` (beside the repository) timed in the same process. Torch runs on
one thread: the policy networks are tiny, and on a few shared cores more threads only add
synchronisation (they make PPO slower, not faster).

    python benchmarks/bench_vec.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecEnv
from yardstick import REFLOOP, note_if_missing, reference_rate  # beside this script

import choicemarket  # noqa: F401  (registers the ids)
from choicemarket.baselines.seeding import policy_seed
from choicemarket.envs.market_v0 import raw_env
from choicemarket.wrappers import MarketVecEnv, ObservationFeatures, StrategyKnobs

MARKET = dict(dataset="acs-income", n_learners=5, users_per_step=150, preference_weight=0.7)


class LoopVecEnv(VecEnv):
    """The shared-policy VecEnv as a loop over M single markets (the former implementation,
    kept as the yardstick): learner k of market m is entry ``m * n + k``."""

    def __init__(self, n_markets: int, **market_kwargs: Any) -> None:
        self.markets = [raw_env(**market_kwargs) for _ in range(n_markets)]
        first = self.markets[0]
        spec = first.market_spec
        self.n = n = spec.n_learners
        self.features = ObservationFeatures(spec, first.config.max_steps)
        self.knobs = [StrategyKnobs(spec, k) for k in range(n)]
        self.render_mode = None
        super().__init__(n_markets * n, self.features.space, self.knobs[0].space)
        self._obs: list[dict] = [{} for _ in self.markets]
        self._rngs: list[list[np.random.Generator]] = [[] for _ in self.markets]
        self._seeds_next: list[int | None] = [None] * n_markets
        self._actions = None

    def seed(self, seed: int | None = None):
        if seed is not None:
            self._seeds_next = [seed + m for m in range(len(self.markets))]
        return self._seeds_next

    def _reset_market(self, m: int, seed: int | None) -> None:
        self._obs[m], _ = self.markets[m].reset(seed=seed)
        base = 0 if seed is None else seed
        self._rngs[m] = [np.random.default_rng(policy_seed(base, k)) for k in range(self.n)]

    def _vector(self, m: int, k: int) -> np.ndarray:
        market = self.markets[m]
        obs = self._obs[m][market.possible_agents[k]]
        return self.features.vector(obs, market.population.baseline_loss)

    def reset(self) -> np.ndarray:
        for m in range(len(self.markets)):
            self._reset_market(m, self._seeds_next[m])
        return np.stack(
            [self._vector(m, k) for m in range(len(self.markets)) for k in range(self.n)]
        )

    def step_async(self, actions) -> None:
        self._actions = actions

    def step_wait(self):
        n, actions = self.n, self._actions
        obs_out = np.empty((self.num_envs, self.features.size), np.float32)
        rewards = np.empty(self.num_envs, np.float32)
        dones = np.zeros(self.num_envs, bool)
        infos: list[dict] = []
        for m, market in enumerate(self.markets):
            obs = self._obs[m]
            step = {
                a: self.knobs[k].action(actions[m * n + k], obs[a], self._rngs[m][k])
                for k, a in enumerate(market.possible_agents)
            }
            self._obs[m], r, _, trunc, info = market.step(step)
            done = any(trunc.values())
            for k, a in enumerate(market.possible_agents):
                i = m * n + k
                rewards[i] = r[a]
                infos.append(dict(info[a]))
                obs_out[i] = self._vector(m, k)
                if done:
                    dones[i] = True
                    infos[i]["TimeLimit.truncated"] = True
                    infos[i]["terminal_observation"] = obs_out[i].copy()
            if done:
                self._reset_market(m, None)
                for k in range(n):
                    obs_out[m * n + k] = self._vector(m, k)
        return obs_out, rewards, dones, infos

    def get_attr(self, attr_name, indices=None):
        return [getattr(self, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name, value, indices=None):
        setattr(self, attr_name, value)

    def env_method(self, method_name, *args, indices=None, **kwargs):
        return [getattr(self, method_name)(*args, **kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None):
        return [False] * len(list(self._get_indices(indices)))

    def close(self) -> None:
        pass


class StepTimer:
    """Accumulates the wall time of a VecEnv's ``step_wait`` and ``reset``."""

    def __init__(self, venv: VecEnv) -> None:
        self.seconds = 0.0
        for name in ("step_wait", "reset"):
            setattr(venv, name, self._timed(getattr(venv, name)))

    def _timed(self, fn):
        def call(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        return call


def time_shared(make, steps: int) -> float:
    """Learner-steps per second of a shared-policy VecEnv under random knobs."""
    venv = make()
    venv.seed(0)
    venv.reset()
    acts = np.random.default_rng(0).uniform(-1, 1, (steps, venv.num_envs, 4)).astype(np.float32)
    start = time.perf_counter()
    for t in range(steps):
        venv.step(acts[t])
    return steps * venv.num_envs / (time.perf_counter() - start)


def time_make_vec(mode: str, M: int, market: dict, steps: int) -> float:
    """Ego steps per second of ``make_vec`` of PlatformStrategy-v0."""
    env = gym.make_vec(
        "choicemarket:choicemarket/PlatformStrategy-v0",
        num_envs=M,
        vectorization_mode=mode,
        **market,
    )
    env.reset(seed=0)
    acts = np.random.default_rng(0).uniform(-1, 1, (steps, M, 4)).astype(np.float32)
    start = time.perf_counter()
    for t in range(steps):
        env.step(acts[t])
    return steps * M / (time.perf_counter() - start)


def time_ppo(make, timesteps: int) -> tuple[float, float]:
    """(training steps per second, the environment's share of ``learn``'s wall time)."""
    venv = make()
    timer = StepTimer(venv)
    model = PPO("MlpPolicy", venv, seed=0, n_steps=128, batch_size=256, n_epochs=2, device="cpu")
    timer.seconds = 0.0
    start = time.perf_counter()
    model.learn(timesteps)
    wall = time.perf_counter() - start
    return model.num_timesteps / wall, timer.seconds / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markets", type=int, default=8)
    parser.add_argument("--steps", type=int, default=60, help="vector steps per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ppo-timesteps", type=int, default=8192)
    parser.add_argument("--refloop", type=Path, default=REFLOOP)
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny networks: more threads only synchronise on few cores
    M = args.markets
    market = dict(MARKET, max_steps=50)
    makers = {  # the yardstick first
        "shared policy, loop": lambda: LoopVecEnv(M, **market),
        "shared policy, one core": lambda: MarketVecEnv(n_markets=M, **market),
    }
    print(f"acs-income, n = 5, B = 150, M = {M} markets; medians of {args.repeats} runs")
    print(f"{'environment':<28}{'sub-env steps/s':>16}{'x loop':>8}{'x refloop':>11}")
    rates: dict[str, float] = {}
    runs = [(name, lambda mk=mk: time_shared(mk, args.steps)) for name, mk in makers.items()]
    runs += [
        (f"make_vec, {label}", lambda mode=mode: time_make_vec(mode, M, market, args.steps))
        for label, mode in (("sync", "sync"), ("one core", "vector_entry_point"))
    ]
    for name, fn in runs:
        samples, ratios = [], []
        for _ in range(args.repeats):
            ref = reference_rate(args.refloop, steps=300)
            samples.append(fn())
            if ref:
                ratios.append(samples[-1] / ref)
        rates[name] = statistics.median(samples)
        base = "shared policy, loop" if name.startswith("shared") else "make_vec, sync"
        vs_loop = f"{rates[name] / rates[base]:>8.2f}" if base in rates else f"{'':>8}"
        ratio = f"{statistics.median(ratios):>11.3f}" if ratios else f"{'-':>11}"
        print(f"{name:<28}{rates[name]:>16,.0f}{vs_loop}{ratio}")
    print(f"PPO on the shared-policy env, {args.ppo_timesteps} learner-steps:")
    print(f"{'environment':<28}{'train steps/s':>16}{'env share':>11}")
    for name, mk in makers.items():
        speed, share = time_ppo(mk, args.ppo_timesteps)
        print(f"{name:<28}{speed:>16,.0f}{share:>11.0%}")
    note_if_missing(args.refloop)


if __name__ == "__main__":
    main()
