"""Command-line pieces for configs: ``run CONFIG``, ``plot``, ``report`` and ``configs``."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def add_run_config_arguments(run: argparse.ArgumentParser) -> None:
    """``choicemarket run [CONFIG]``: a config path or shipped name runs its sweep."""
    run.add_argument(
        "config",
        nargs="?",
        default=None,
        help="an experiment config (YAML path or shipped name, e.g. expt2-census); without it "
        "the options below describe one simulation",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=min(os.cpu_count() or 1, 8),
        help="processes (or Ray tasks at once) for a config sweep",
    )
    run.add_argument("--backend", default="process", choices=["process", "ray"])
    run.add_argument(
        "--real", action="store_true", help="use the config's real_data section (published data)"
    )
    run.add_argument("--max-batch", type=int, default=64, help="markets advanced together")


def add_sweep_commands(sub) -> None:
    plot = sub.add_parser("plot", help="draw the figures of a results folder")
    plot.add_argument("results", help="folder written by `choicemarket run CONFIG`")
    plot.add_argument("--out", default=None, help="folder for the PNGs (default: RESULTS)")
    plot.add_argument("--metric", default=None, help="e.g. global_accuracy, global_loss, share")
    report = sub.add_parser("report", help="a Markdown results document from results folders")
    report.add_argument("results", nargs="+", help="results folders")
    report.add_argument("--out", default="results.md")
    report.add_argument("--no-figures", action="store_true")
    sub.add_parser("configs", help="list the shipped experiment configs")


def run_config(args: argparse.Namespace) -> int:
    from .experiment import load_experiment
    from .sweep import run_sweep

    exp = load_experiment(args.config, overrides=args.set, real=args.real)
    out = Path(args.out) if args.out else Path("results") / exp.name
    start = time.perf_counter()
    result = run_sweep(
        exp,
        out,
        workers=args.workers,
        backend=args.backend,
        progress=not args.no_progress,
        max_batch=args.max_batch,
    )
    print(
        f"{exp.name}: {len(result['computed'])} runs computed, {len(result['skipped'])} already "
        f"finished, in {time.perf_counter() - start:.1f} s; results in {out}"
    )
    return 0


def plot(args: argparse.Namespace) -> int:
    from .figures import plot_results

    for path in plot_results(args.results, args.out, args.metric):
        print(f"wrote {path}")
    return 0


def report(args: argparse.Namespace) -> int:
    from .report import write_report

    print(f"wrote {write_report(args.results, args.out, figures=not args.no_figures)}")
    return 0


def configs(args: argparse.Namespace) -> int:
    import yaml

    from .experiment import config_dir, config_names

    for name in config_names():
        raw = yaml.safe_load((config_dir() / f"{name.replace('-', '_')}.yaml").read_text())
        print(f"{name:<26}{raw.get('figure', ''):<11}{raw.get('title', '')}")
    return 0


COMMANDS = {"plot": plot, "report": report, "configs": configs}
