"""A newcomer enters the census market halfway: does it survive, and how good is it?

Market: 5 MSGD learners on ``acs-income`` (tau = 0.7, partition-ERM start, B = 150,
eta = 0.01). At step T/2 a sixth learner enters with ``env.add_learner``:

- ``fresh``: zero parameters and no loyal users;
- ``fresh+10%``: zero parameters, 10% of all users become loyal to it (``fresh_share``);
- ``clone``: a copy of learner 0 that takes half of learner 0's loyal users.

A learner leaves once its batch share stays below ``--exit-share`` for ``--patience``
consecutive steps. For each newcomer kind the script prints, over seeds, how often it
survives to step T (and the median step it left at), its mean share over the last 500 steps
it was present, and the test loss and accuracy of its final model (for a leaver, the model it
left with) next to the mean of the incumbents present at T (and, for the clone, its parent's).

    python examples/entry_exit.py [--steps 4000] [--seeds 5]
"""

from __future__ import annotations

import argparse

import numpy as np

from choicemarket.baselines import MSGD, act_all
from choicemarket.envs.market_v0 import parallel_env
from choicemarket.experiments.runner import mean_se

KINDS = {
    "fresh": dict(kind="fresh", fresh_share=0.0),
    "fresh+10%": dict(kind="fresh", fresh_share=0.1),
    "clone": dict(kind="clone", parent=0),
}


def run(kind: str, seed: int, steps: int, exit_share: float, patience: int) -> dict:
    spec = dict(KINDS[kind])
    env = parallel_env(
        dataset="acs-income",
        preference_weight=0.7,
        max_steps=steps,
        eval_every=steps,
        max_learners=6,
        exit_share=exit_share,
        exit_patience=patience,
        fresh_share=spec.pop("fresh_share", 0.0),
    )
    pols = {a: MSGD(env.market_spec, eta=0.01) for a in env.possible_agents}
    obs, _ = env.reset(seed=seed)
    newcomer, shares = None, []
    while env.agents:
        if env.state_arrays.step == steps // 2 - 1:  # it enters at the next step, T/2
            newcomer = env.add_learner(**spec)
        obs, _, term, _, infos = env.step(act_all(pols, obs, env.active_mask))
        obs = {a: obs[a] for a in env.agents}
        if newcomer in infos:
            shares.append(infos[newcomer]["share"])
    k = env.possible_agents.index(newcomer)
    s, pop = env.state_arrays, env.population
    incumbents = [j for j in range(5) if env.active_mask[j]]
    exits = [e for e in env.events if e["kind"] == "exit"]
    return dict(
        survived=float(env.active_mask[k]),
        share=float(np.mean(shares[-500:])),
        loss=float(s.global_loss[0, k]),
        acc=float(s.global_accuracy[0, k]),
        inc_loss=float(s.global_loss[0, incumbents].mean()),
        inc_acc=float(s.global_accuracy[0, incumbents].mean()),
        parent_acc=float(s.global_accuracy[0, 0]),
        baseline_acc=pop.baseline_accuracy,
        incumbent_exits=sum(e["agent"] != newcomer for e in exits),
        exit_step=next((e["step"] for e in exits if e["agent"] == newcomer), None),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--exit-share", type=float, default=0.05)
    parser.add_argument("--patience", type=int, default=50)
    args = parser.parse_args()
    print(
        f"acs-income, 5 MSGD incumbents, newcomer at step {args.steps // 2} of {args.steps}; "
        f"exit below share {args.exit_share} for {args.patience} steps; "
        f"mean +- s.e. over {args.seeds} seeds (accuracy in %)"
    )
    header = (
        f"{'newcomer':<10}{'survives':>9}{'exit step':>11}{'share':>15}{'test loss':>17}"
        f"{'incumb. loss':>14}{'accuracy':>15}{'incumb. acc':>13}{'parent acc':>12}"
    )
    print(header)
    print("-" * len(header))
    baseline = None
    for kind in KINDS:
        rows = [
            run(kind, seed, args.steps, args.exit_share, args.patience)
            for seed in range(args.seeds)
        ]
        baseline = rows[0]["baseline_acc"]

        def ms(key, scale=1.0, rows=rows):
            m, se = mean_se([r[key] * scale for r in rows])
            return f"{m:.3f}+-{se:.3f}" if scale == 1.0 else f"{m:.1f}+-{se:.1f}"

        exit_steps = [r["exit_step"] for r in rows if r["exit_step"] is not None]
        exit_col = f"{np.median(exit_steps):.0f}" if exit_steps else "-"
        parent = ms("parent_acc", 100) if kind == "clone" else "-"
        print(
            f"{kind:<10}{np.mean([r['survived'] for r in rows]):>9.0%}{exit_col:>11}"
            f"{ms('share'):>15}{ms('loss'):>17}{ms('inc_loss'):>14}{ms('acc', 100):>15}"
            f"{ms('inc_acc', 100):>13}{parent:>12}"
        )
        if any(r["incumbent_exits"] for r in rows):
            print(f"{'':<10}(incumbent exits: {[r['incumbent_exits'] for r in rows]})")
    print(f"baseline accuracy (regularised ERM on all training users): {100 * baseline:.1f}%")


if __name__ == "__main__":
    main()
