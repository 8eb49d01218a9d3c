"""How well does a model trained on one review site serve the others? (UCI sentiment market)

For each random train/test split the script fits the L2-regularised logistic ERM on all training
sentences (what the market's baseline is) and on each site's training sentences alone (what a
learner starts from under ``preferences="category"`` and ``init="partition_erm"``), and prints
their test accuracy on every site and on the whole test population (mean +- s.e. over splits).

    python examples/uci_sentiment_niche.py --splits 5
"""

from __future__ import annotations

import argparse

import numpy as np

from choicemarket.envs.data import load_dataset
from choicemarket.envs.data.uci_sentiment import SOURCES
from choicemarket.envs.market.losses import LOSSES, fit_erm, logits


def accuracies(split: int, l2: float, test_fraction: float) -> dict[str, np.ndarray]:
    """Test accuracy (per site, then overall) of the pooled ERM and each single-site ERM."""
    data = load_dataset("uci-sentiment")
    family = LOSSES[data.task]
    rng = np.random.default_rng(split)
    test = np.zeros(data.n_users, dtype=bool)
    test[rng.permutation(data.n_users)[: round(test_fraction * data.n_users)]] = True
    T = family.targets(data.y, data.n_classes)
    train_sets = {"all sites (ERM)": ~test}
    train_sets.update({f"{s} only": ~test & (data.groups == k) for k, s in enumerate(SOURCES)})
    out = {}
    for name, rows in train_sets.items():
        theta = fit_erm(family, data.X[rows], T[rows], l2, 1)
        correct = family.predict(logits(theta[None], data.X[test])[0]) == data.y[test]
        site = data.groups[test]
        per_site = [correct[site == k].mean() for k in range(len(SOURCES))]
        out[name] = np.array([*per_site, correct.mean()])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--l2", type=float, default=1e-4)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    args = parser.parse_args()
    runs = [accuracies(s, args.l2, args.test_fraction) for s in range(args.splits)]
    print(f"test accuracy (%), mean +- s.e. over {args.splits} splits, l2 = {args.l2}")
    print(f"{'model':<18}" + "".join(f"{c:>15}" for c in (*SOURCES, "whole pop.")))
    for name in runs[0]:
        acc = 100 * np.array([r[name] for r in runs])
        se = acc.std(axis=0, ddof=1) / np.sqrt(len(runs)) if len(runs) > 1 else 0 * acc[0]
        cells = "".join(f"{m:>8.1f} +-{s:4.1f}" for m, s in zip(acc.mean(axis=0), se, strict=True))
        print(f"{name:<18}{cells}")


if __name__ == "__main__":
    main()
