"""A Markdown results document from sweep results: final metric per learner (mean +- s.e.
over seeds), each learner's gap to the baseline, and for probing sweeps how much of the
prober's gap closes between the smallest and the largest swept value."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from .experiment import settings_hash
from .figures import (
    baseline_value,
    default_metric,
    final_stats,
    plot_results,
    probers_of,
    x_key,
)
from .runner import atomic_write
from .sweep import load_runs, results_folders


def _fmt(metric: str, value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{100 * value:.1f}" if metric == "global_accuracy" else f"{value:.4f}"


def _gap(metric: str, value: float, base: float) -> float:
    """Points (accuracy) or loss units by which a learner is worse than the baseline."""
    return base - value if metric == "global_accuracy" else value - base


def section(
    results: str | os.PathLike, figures: Path | None = None, stem: str | None = None
) -> str:
    """The Markdown section of one results folder (figures drawn into ``figures`` if given,
    named after ``stem``, default the config's name)."""
    meta, runs = load_runs(results)
    if not runs:
        return f"## {meta.get('title', results)}\n\nNo finished runs.\n"
    metric = default_metric(meta, runs)
    x = x_key(meta)
    stats = final_stats(runs, metric, x)
    base = baseline_value(runs, metric)
    probers = probers_of(runs)
    learners = sorted({k for by in stats.values() for k in by})
    seeds = len({run["seed"] for run in runs})
    market = runs[0]["market"]
    unit = "%" if metric == "global_accuracy" else ""
    lines = [
        f"## {meta.get('title', meta.get('name'))}",
        "",
        f"Config `{meta.get('name')}` ({meta.get('figure') or 'no figure'}), settings "
        f"`{meta.get('settings') or settings_hash(meta)}`; dataset "
        f"`{market.get('dataset')}`, {len(runs)} runs, {seeds} seeds, "
        f"{market.get('max_steps')} steps. Final {metric}{' (%)' if unit else ''}, mean +- s.e. "
        f"over seeds; in brackets the gap to the baseline"
        + (" (points)" if unit else "")
        + "."
        + (
            f" Baseline (regularised ERM on all training users): {_fmt(metric, base)}{unit}."
            if base is not None
            else ""
        ),
        "",
    ]
    rest_names = [k for k in meta.get("sweep", {}) if k not in ("seeds", x)]
    head = [x or "point", *rest_names] + [
        f"L{k}" + (" (probes)" if k in probers else "") for k in learners
    ]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, by in stats.items():
        cells = [str(v) for v in key if v is not None] or ["-"]
        for k in learners:
            mean, se = by.get(k, (math.nan, math.nan))
            cell = f"{_fmt(metric, mean)} +- {_fmt(metric, se)}" if se == se else _fmt(metric, mean)
            if base is not None:
                cell += f" ({_fmt(metric, _gap(metric, mean, base))})"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if base is not None:
        lines += _findings(stats, metric, base, probers, learners, x)
    if figures is not None:
        for path in plot_results(results, figures, metric, stem):
            lines.append(f"![{path.stem}]({path.name})")
        lines.append("")
    return "\n".join(lines)


def _findings(stats, metric, base, probers, learners, x) -> list[str]:
    keys = list(stats)
    unit = " points" if metric == "global_accuracy" else ""
    scale = 100 if metric == "global_accuracy" else 1
    out = []
    if x is None or not probers:
        by = stats[keys[0]]
        worst = max(learners, key=lambda k: _gap(metric, by[k][0], base))
        gaps = ", ".join(f"L{k} {scale * _gap(metric, by[k][0], base):.3g}" for k in learners)
        out.append(
            f"Overspecialization gaps at the end: {gaps}{unit}; the largest is learner {worst}'s."
        )
    else:
        for rest in dict.fromkeys(key[1:] for key in keys):
            row = [key for key in keys if key[1:] == rest]
            lo, hi = row[0], row[-1]
            for k in sorted(probers):
                g0 = _gap(metric, stats[lo][k][0], base)
                g1 = _gap(metric, stats[hi][k][0], base)
                closed = 100 * (g0 - g1) / g0 if g0 > 0 else math.nan
                where = f" ({', '.join(map(str, rest))})" if rest else ""
                out.append(
                    f"Prober learner {k}{where}: gap {scale * g0:.3g}{unit} at {x} = {lo[0]} -> "
                    f"{scale * g1:.3g}{unit} at {x} = {hi[0]}"
                    + (f", {closed:.0f}% of the gap closed." if closed == closed else ".")
                )
    return out + [""]


def write_report(
    results: Sequence[str | os.PathLike], out: str | os.PathLike | None = None, figures: bool = True
) -> Path:
    """Write one Markdown document with a section per results folder, figures beside it.

    Each of ``results`` is a results folder or ``results/NAME`` holding one folder per setting
    run; every setting gets its own section. ``out`` defaults to ``report.md`` in the folder
    that holds all of them (the results folder itself when there is one)."""
    folders = [f for given in results for f in results_folders(given)]
    if not folders:
        raise ValueError("no results folders given")
    metas = [load_runs(folder)[0] for folder in folders]
    given = out is not None
    if out is None:
        out = Path(os.path.commonpath([f.resolve() for f in folders])) / "report.md"
    out = Path(out)
    names = [meta.get("name", str(folder)) for meta, folder in zip(metas, folders)]
    unique = list(dict.fromkeys(names))
    commands = " && ".join(f"choicemarket run {name}" for name in unique)
    shown_folders = " ".join(f"results/{name}" for name in unique)
    shown = out if not out.is_absolute() else out.name
    parts = [
        "# Results",
        "",
        "Generated by `choicemarket report` from the results of `choicemarket run CONFIG`:",
        "",
        f"    {commands}",
        f"    choicemarket report {shown_folders}" + (f" --out {shown}" if given else ""),
        "",
    ]
    for folder, name in zip(folders, names):
        stem = name if names.count(name) == 1 else f"{name}-{folder.name}"
        parts.append(section(folder, out.parent if figures else None, stem))
    return atomic_write(out, "\n".join(parts).rstrip() + "\n")
