"""Command-line pieces for configs: ``run CONFIG``, ``plot``, ``report`` and ``configs``."""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path


def int_list(text: str) -> list[int]:
    """``"1,3"`` -> ``[1, 3]`` (empty entries skipped)."""
    return [int(v) for v in text.split(",") if v.strip()]


# single-simulation options of `run` that set a config field with `run CONFIG`:
# option dest -> (field, how the option's value becomes the field's)
CONFIG_FIELDS = {
    "dataset": ("dataset", None),
    "n_learners": ("n_learners", None),
    "tau": ("preference_weight", None),
    "init": ("init", None),
    "preferences": ("preferences", None),
    "steps": ("max_steps", None),
    "eval_every": ("eval_every", None),
    "seeds": ("seeds", None),
    "eta": ("eta", None),
    "schedule": ("schedule", None),
    "prober": ("probers", lambda k: [k]),
    "p": ("p", None),
    "scenario": ("scenario", None),
    "peers": ("peers", int_list),
}
# options of `run CONFIG` only, and their defaults (workers: the CPUs, at most 8)
CONFIG_ONLY = {
    "workers": min(os.cpu_count() or 1, 8),
    "backend": "process",
    "real": False,
    "max_batch": 64,
}


def add_run_config_arguments(run: argparse.ArgumentParser) -> None:
    """``choicemarket run [CONFIG]``: a config path or shipped name runs its sweep."""
    run.add_argument(
        "config",
        nargs="?",
        default=None,
        help="an experiment config (YAML path or shipped name, e.g. expt2-census); without it "
        "the options below describe one simulation, with it those given set the config's fields "
        "(--steps: max_steps, --tau: preference_weight, --prober K: probers [K], ...)",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=argparse.SUPPRESS,
        help="with CONFIG: processes (or Ray tasks at once); default: CPUs, at most 8",
    )
    run.add_argument(
        "--backend",
        default=argparse.SUPPRESS,
        choices=["process", "ray"],
        help="with CONFIG (default: process)",
    )
    run.add_argument(
        "--real",
        action="store_true",
        default=argparse.SUPPRESS,
        help="with CONFIG: use the config's real_data section (published data)",
    )
    run.add_argument(
        "--max-batch",
        type=int,
        default=argparse.SUPPRESS,
        help="with CONFIG: markets advanced together (default 64)",
    )


def fill_config_defaults(args: argparse.Namespace) -> None:
    """Set the ``CONFIG_ONLY`` options that were not given to their defaults."""
    for dest, default in CONFIG_ONLY.items():
        if not hasattr(args, dest):
            setattr(args, dest, default)


def config_overrides(args: argparse.Namespace) -> list[tuple[str, object]]:
    """The single-simulation options given with ``run CONFIG``, as config overrides (applied
    before ``--set``): ``--steps 10`` fixes ``max_steps``, ``--seeds 3`` the seeds, ..."""
    out = []
    for dest, (field, convert) in CONFIG_FIELDS.items():
        if hasattr(args, dest):
            value = getattr(args, dest)
            out.append((field, convert(value) if convert else value))
    return out


def option_name(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def add_sweep_commands(sub) -> None:
    plot = sub.add_parser("plot", help="draw the figures of a results folder")
    plot.add_argument("results", help="folder written by `choicemarket run CONFIG`")
    plot.add_argument(
        "--out",
        default=None,
        help="folder for the PNGs (default: each results folder itself; with several settings "
        "under RESULTS, one subfolder per setting)",
    )
    plot.add_argument("--metric", default=None, help="e.g. global_accuracy, global_loss, share")
    report = sub.add_parser("report", help="a Markdown results document from results folders")
    report.add_argument(
        "results", nargs="+", help="results folders (or results/NAME: every setting run)"
    )
    report.add_argument(
        "--out",
        default=None,
        help="the Markdown file, figures beside it (default: report.md in the folder holding "
        "all RESULTS)",
    )
    report.add_argument("--no-figures", action="store_true")
    sub.add_parser("configs", help="list the shipped experiment configs")


def run_config(args: argparse.Namespace) -> int:
    """``run CONFIG``: the sweep into ``OUT/<name>/<settings hash>/`` (``OUT`` default
    ``results``); SIGTERM stops it, and its workers, like Ctrl-C."""
    from .experiment import load_experiment
    from .sweep import results_dir, run_sweep

    applied = config_overrides(args)
    exp = load_experiment(args.config, overrides=[*applied, *args.set], real=args.real)
    if applied:
        shown = ", ".join(f"{field}={value!r}" for field, value in applied)
        print(f"{exp.name}: applied to the config: {shown}")
    out = results_dir(exp, args.out or "results")
    start = time.perf_counter()
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        result = run_sweep(
            exp,
            out,
            workers=args.workers,
            backend=args.backend,
            progress=not args.no_progress,
            max_batch=args.max_batch,
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(
        f"{exp.name}: {len(result['computed'])} runs computed, {len(result['skipped'])} already "
        f"finished, in {time.perf_counter() - start:.1f} s; results in {out}"
    )
    return 0


def _terminated(signum, frame) -> None:
    raise SystemExit(128 + signum)


def plot(args: argparse.Namespace) -> int:
    from .figures import plot_results
    from .sweep import results_folders

    folders = results_folders(args.results)
    for folder in folders:
        out = args.out
        if out is not None and len(folders) > 1:
            out = Path(out) / folder.relative_to(args.results)
        for path in plot_results(folder, out, args.metric):
            print(f"wrote {path}")
    return 0


def report(args: argparse.Namespace) -> int:
    from .report import write_report

    print(f"wrote {write_report(args.results, args.out, figures=not args.no_figures)}")
    return 0


def configs(args: argparse.Namespace) -> int:
    from .experiment import config_dir, config_names, read_config

    for name in config_names():
        raw = read_config(config_dir() / f"{name.replace('-', '_')}.yaml")
        print(f"{name:<26}{raw.get('figure', ''):<11}{raw.get('title', '')}")
    return 0


COMMANDS = {"plot": plot, "report": report, "configs": configs}
