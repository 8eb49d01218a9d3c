"""Paper-style figures of a sweep's results (matplotlib, Agg backend).

- final metric against the swept value x (mean +- standard error over seeds, probing learners
  as triangles, the baseline as a dashed black line);
- trajectories: the metric of every learner over time (mean over seeds, +- s.e. band), one
  panel per swept point.
"""

from __future__ import annotations

import io
import itertools
import math
from pathlib import Path

import numpy as np

from .runner import atomic_write, mean_se
from .sweep import inside, load_runs

LABELS = {
    "global_accuracy": "test accuracy",
    "global_loss": "full-population loss",
    "accuracy_gap": "accuracy gap to baseline",
    "gap": "loss gap to baseline",
    "local_loss": "local loss",
    "share": "market share",
    "social_cost": "social cost",
}


MAX_PANELS = 12  # trajectory panels in one figure
NOT_METRICS = ("seed", "step", "agent", "learner")


def default_metric(meta: dict, runs: list[dict]) -> str:
    metric = (meta.get("plot") or {}).get("metric")
    if metric:
        return check_metric(runs, metric)
    acc = [r.get("global_accuracy") for run in runs for r in run["rows"][:1]]
    return "global_accuracy" if acc and not math.isnan(acc[0] or math.nan) else "global_loss"


def available_metrics(runs: list[dict]) -> list[str]:
    """The numeric columns of the runs' rows: the metrics that can be plotted."""
    keys: dict[str, None] = {}
    for run in runs:
        for row in run["rows"][:1]:
            keys.update((k, None) for k, v in row.items() if isinstance(v, (int, float)))
    return [k for k in keys if k not in NOT_METRICS]


def check_metric(runs: list[dict], metric: str) -> str:
    """``metric``, or a ValueError listing the metrics the runs hold."""
    available = available_metrics(runs)
    if metric not in available:
        raise ValueError(f"unknown metric {metric!r}; the runs hold {available}")
    return metric


def x_key(meta: dict) -> str | None:
    """The swept field on the x axis: ``plot.x``, else the first swept field (None: none)."""
    swept = [k for k in meta.get("sweep", {}) if k != "seeds"]
    x = (meta.get("plot") or {}).get("x")
    return x if x in swept else (swept[0] if swept else None)


def baseline_value(runs: list[dict], metric: str) -> float | None:
    base = runs[0]["baseline"]
    if metric == "global_accuracy":
        return base.get("accuracy")
    if metric == "global_loss":
        return base.get("loss")
    if metric in ("gap", "accuracy_gap"):
        return 0.0
    return None


def final_stats(
    runs: list[dict], metric: str, x: str | None
) -> dict[tuple, dict[int, tuple[float, float]]]:
    """``{(x value, other swept values...): {learner: (mean, se)}}`` of the metric at the last
    evaluation of each run, over seeds. The key's first entry is x (None without x)."""
    groups: dict[tuple, dict[int, list[float]]] = {}
    for run in runs:
        key = _point_key(run, x)
        last = max(r["step"] for r in run["rows"])
        for r in run["rows"]:
            if r["step"] == last:
                groups.setdefault(key, {}).setdefault(r["learner"], []).append(r[metric])
    return {
        key: {k: mean_se(v) for k, v in sorted(by.items())}
        for key, by in sorted(groups.items(), key=lambda kv: [_order(v) for v in kv[0]])
    }


def _order(v):
    return (0, v) if isinstance(v, (int, float)) else (1, str(v))


def _point_key(run: dict, x: str | None) -> tuple:
    point = run["point"]
    rest = tuple(_hashable(point[k]) for k in point if k != x)
    return (_hashable(point[x]) if x else None, *rest)


def _hashable(v):
    return tuple(v) if isinstance(v, list) else v


def probers_of(runs: list[dict]) -> set[int]:
    return {k for run in runs for k in run.get("probers", [])}


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return atomic_write(path, buf.getvalue())


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_final(meta: dict, runs: list[dict], metric: str, path: Path) -> Path | None:
    """Final metric against x for every learner (x the swept field); None without a sweep."""
    x = x_key(meta)
    if x is None:
        return None
    plt = _pyplot()
    stats = final_stats(runs, metric, x)
    probers = probers_of(runs)
    others = sorted({key[1:] for key in stats}, key=lambda t: [_order(v) for v in t])
    rest_names = [k for k in meta["sweep"] if k not in ("seeds", x)]
    learners = sorted({k for by in stats.values() for k in by})
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    scale = 100.0 if metric == "global_accuracy" else 1.0
    many = len(others) > 1
    for rest, k in itertools.product(others, learners):
        if many and probers and k not in probers:
            continue  # with a second swept field, only the probers' lines (one per value)
        xs = [key[0] for key in stats if key[1:] == rest and k in stats[key]]
        if not all(isinstance(v, (int, float)) for v in xs):
            xs_plot = list(range(len(xs)))
        else:
            xs_plot = xs
        mean = np.array([stats[(v, *rest)][k][0] for v in xs])
        se = np.nan_to_num(np.array([stats[(v, *rest)][k][1] for v in xs]))
        label = f"learner {k}" + (" (probes)" if k in probers else "")
        if many:
            label += " " + ", ".join(f"{n}={v}" for n, v in zip(rest_names, rest))
        ax.errorbar(
            xs_plot,
            scale * mean,
            yerr=scale * se,
            marker="^" if k in probers else "o",
            capsize=3,
            label=label,
        )
    base = baseline_value(runs, metric)
    if base is not None:
        ax.axhline(scale * base, color="black", ls="--", label="baseline (full ERM)")
    ax.set_xlabel(x)
    ax.set_ylabel(LABELS.get(metric, metric) + (" (%)" if scale == 100.0 else ""))
    ax.set_title(meta.get("title", ""), fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def points_of(runs: list[dict]) -> list[dict]:
    """The distinct swept points of the runs, in the order of :func:`final_stats`."""
    seen: dict[str, dict] = {}
    for run in runs:
        seen.setdefault(repr(run["point"]), run["point"])
    return sorted(seen.values(), key=lambda p: [_order(_hashable(v)) for v in p.values()])


def trajectories_figure(meta: dict, runs: list[dict], metric: str):
    """The figure of :func:`plot_trajectories`: one panel per swept point (the first
    ``MAX_PANELS``), each with every learner's mean over seeds and a +- s.e. band."""
    plt = _pyplot()
    points = points_of(runs)
    shown = points[:MAX_PANELS]
    cols = min(3, len(shown))
    rows = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(3.6 * cols + 0.6, 2.8 * rows + 0.8),
        dpi=120,
        sharey=True,
        squeeze=False,
    )
    scale = 100.0 if metric == "global_accuracy" else 1.0
    ylabel = LABELS.get(metric, metric) + (" (%)" if scale == 100.0 else "")
    base = baseline_value(runs, metric)
    probers = probers_of(runs)  # the sweep's probers, marked alike in every panel
    for ax, point in zip(axes.flat, shown):
        chosen = [run for run in runs if run["point"] == point]
        series: dict[int, dict[int, list[float]]] = {}
        for run in chosen:
            for r in run["rows"]:
                series.setdefault(r["learner"], {}).setdefault(r["step"], []).append(r[metric])
        for k, by_step in sorted(series.items()):
            steps = sorted(by_step)
            stats = [mean_se(by_step[t]) for t in steps]
            mean = scale * np.array([m for m, _ in stats])
            se = scale * np.nan_to_num(np.array([s for _, s in stats]))
            label = f"learner {k}" + (" (probes)" if k in probers else "")
            (line,) = ax.plot(steps, mean, label=label, ls="-" if k not in probers else "-.")
            ax.fill_between(steps, mean - se, mean + se, color=line.get_color(), alpha=0.2)
        if base is not None:
            ax.axhline(scale * base, color="black", ls="--", label="baseline (full ERM)")
        where = ", ".join(f"{k}={_short(v)}" for k, v in point.items())
        ax.set_title(where or "all runs", fontsize=8)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(shown) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel, fontsize=8)
    axes.flat[0].legend(fontsize=6)
    seeds = len({run["seed"] for run in runs})
    more = (
        f"; the first {len(shown)} of {len(points)} swept points"
        if len(shown) < len(points)
        else ""
    )
    fig.suptitle(
        f"{meta.get('name', 'results')}: {ylabel} over time, mean +- s.e. over {seeds} "
        f"seed{'s' if seeds != 1 else ''}{more}",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def _short(v) -> str:
    return format(v, "g") if isinstance(v, float) else str(v)


def plot_trajectories(meta: dict, runs: list[dict], metric: str, path: Path) -> Path:
    """Every learner's metric over time, mean over seeds with a +- s.e. band, one panel per
    swept point."""
    return _save(trajectories_figure(meta, runs, metric), path)


def plot_results(
    results: str | Path,
    out: str | Path | None = None,
    metric: str | None = None,
    stem: str | None = None,
) -> list[Path]:
    """Draw the figures of a results folder into ``out`` (default: the folder itself), named
    ``<stem>_final.png`` and ``<stem>_trajectories.png`` (default stem: the config's name)."""
    meta, runs = load_runs(results)
    if not runs:
        raise ValueError(f"{results} holds no finished runs yet")
    out = Path(out) if out is not None else Path(results)
    metric = check_metric(runs, metric) if metric else default_metric(meta, runs)
    name = str(stem or meta.get("name", "results"))
    # a results folder may come from elsewhere: its name must not lead out of ``out``
    final_path = inside(out, out / f"{name}_final.png")
    trajectories_path = inside(out, out / f"{name}_trajectories.png")
    paths = []
    final = plot_final(meta, runs, metric, final_path)
    if final is not None:
        paths.append(final)
    paths.append(plot_trajectories(meta, runs, metric, trajectories_path))
    return paths
