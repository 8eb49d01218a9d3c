"""Command line: ``choicemarket demo``, ``run``, ``bench``, ``datasets`` and ``options``."""

from __future__ import annotations

import argparse
import ast
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from choicemarket.envs.market.config import MarketConfig


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc


def _seeds(text: str) -> list[int]:
    """``5`` means seeds 0..4; ``3,7,11`` lists them."""
    try:
        if "," in text:
            return [int(v) for v in text.split(",") if v.strip()]
        return list(range(int(text)))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected a count or comma-separated seeds: {text!r}"
        ) from exc


def _assignment(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = value
    return key.strip(), parsed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="choicemarket", description="Markets of learners under user choice."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo", help="peer probing vs overspecialization on the embedded census market"
    )
    demo.add_argument("--out", default="choicemarket-out", help="output folder")
    demo.add_argument("--steps", type=int, default=4000)
    demo.add_argument("--seeds", type=_seeds, default=list(range(5)), help="count or list")
    demo.add_argument("--probe-weights", type=_floats, default=[0.0, 0.1, 0.2, 0.4, 0.8])
    demo.add_argument(
        "--prober", default="auto", help="probing learner index, or 'auto' (worst at start)"
    )
    demo.add_argument("--eta", type=float, default=0.01)
    demo.add_argument("--no-plot", action="store_true")
    demo.add_argument("--no-progress", action="store_true")

    run = sub.add_parser("run", help="one simulation with options on the command line")
    run.add_argument("--dataset", default="acs-income")
    run.add_argument("--n-learners", type=int, default=5)
    run.add_argument("--tau", type=float, default=0.7, help="preference weight")
    run.add_argument(
        "--init", default="partition_erm", choices=["partition_erm", "published", "random", "zeros"]
    )
    run.add_argument("--preferences", default="kmeans")
    run.add_argument("--steps", type=int, default=1000)
    run.add_argument("--eval-every", type=int, default=100)
    run.add_argument("--seeds", type=_seeds, default=[0], help="count or list")
    run.add_argument("--eta", type=float, default=0.01)
    run.add_argument("--schedule", default="constant", choices=["constant", "inv_sqrt"])
    run.add_argument("--prober", type=int, default=None, help="learner that runs MSGD-P")
    run.add_argument("--p", type=float, default=0.4, help="probing weight of the prober")
    run.add_argument(
        "--scenario",
        default="preference_aware",
        choices=["preference_aware", "market_leader", "majority_good", "partial"],
    )
    run.add_argument("--peers", type=str, default=None, help="peers for --scenario partial: 1,3")
    run.add_argument(
        "--set",
        type=_assignment,
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="any market option, e.g. --set probe_noise=0.2 --set reward=global",
    )
    run.add_argument(
        "--out",
        default=None,
        help="write the history to this .csv or .json; with CONFIG: the folder of the results "
        "(default: results), which go to OUT/NAME/SETTINGS",
    )
    run.add_argument("--no-progress", action="store_true")
    from .sweep_cli import CONFIG_FIELDS, add_run_config_arguments, add_sweep_commands

    _RUN_DEFAULTS.update(_unset_unless_given(run, CONFIG_FIELDS))
    add_run_config_arguments(run)
    add_sweep_commands(sub)

    sub.add_parser("datasets", help="list the registered datasets")
    sub.add_parser(
        "options", help="list the market options and their defaults, by the component owning them"
    )
    _add_bench_parser(sub)
    return parser


_RUN_DEFAULTS: dict[str, object] = {}  # single-simulation options of `run` and their defaults


def _unset_unless_given(parser: argparse.ArgumentParser, dests) -> dict[str, object]:
    """Make the options ``dests`` of ``parser`` absent from the parsed arguments unless given
    (``run CONFIG`` applies the given ones to the config); returns their defaults."""
    defaults = {}
    for action in parser._actions:
        if action.dest in dests:
            defaults[action.dest] = action.default
            action.default = argparse.SUPPRESS
            shown = "none" if defaults[action.dest] is None else defaults[action.dest]
            action.help = f"{action.help + '; ' if action.help else ''}default: {shown}"
    return defaults


def _run_command(args: argparse.Namespace) -> int:
    """``run``: a config's sweep (``run CONFIG``, the single-simulation options that were given
    applied to the config) or one simulation (the ``run CONFIG`` options are then an error)."""
    from .sweep_cli import CONFIG_ONLY, fill_config_defaults, option_name, run_config

    if args.config is not None:
        fill_config_defaults(args)
        return run_config(args)
    given = [option_name(d) for d in CONFIG_ONLY if hasattr(args, d)]
    if given:
        raise ValueError(
            f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} only to `run CONFIG` "
            "(a config sweep); without a config "
            "`run` is one simulation"
        )
    for dest, default in _RUN_DEFAULTS.items():
        if not hasattr(args, dest):
            setattr(args, dest, default)
    return _run(args)


def _add_bench_parser(sub) -> None:
    bench = sub.add_parser("bench", help="score every registered baseline on the market suite")
    bench.add_argument("--markets", default=None, help="comma-separated suite markets (all)")
    bench.add_argument("--baselines", default=None, help="comma-separated baselines (all)")
    bench.add_argument("--seeds", type=_seeds, default=None, help="count or list (0..4)")
    bench.add_argument(
        "--steps-scale", type=float, default=1.0, help="multiply every episode length"
    )
    bench.add_argument("--out", default="choicemarket-bench", help="output folder")
    bench.add_argument("--list", action="store_true", help="list the suite and the baselines")
    bench.add_argument("--no-progress", action="store_true")


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; bad input is a one-line error (exit 2), a failed read or write too (exit
    1), and files skipped by ``plot``/``report`` are one-line warnings."""
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return _command(args)
        except ValueError as exc:
            print(f"choicemarket: error: {exc}", file=sys.stderr)
            return 2
        except BrokenPipeError:  # the reader of the output went away (`| head`)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
        except OSError as exc:
            print(f"choicemarket: error: {_os_error(exc)}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("choicemarket: interrupted", file=sys.stderr)
            return 130


def _os_error(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    if exc.filename is not None:
        text += f": {exc.filename}"
    return " ".join(text.split())


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"choicemarket: warning: {message}", file=sys.stderr)


def _command(args: argparse.Namespace) -> int:
    if args.command == "demo":
        return _demo(args)
    if args.command == "run":
        return _run_command(args)
    if args.command == "bench":
        return _bench(args)
    if args.command in ("plot", "report", "configs"):
        from .sweep_cli import COMMANDS

        return COMMANDS[args.command](args)
    if args.command == "datasets":
        from choicemarket.envs.data import dataset_names

        print("\n".join(dataset_names()))
        return 0
    for group, values in MarketConfig().grouped().items():
        print(f"[{group}]")
        for key, value in values.items():
            print(f"{key} = {value!r}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    prober = None if args.prober == "auto" else int(args.prober)
    start = time.perf_counter()
    result = run_demo(
        steps=args.steps,
        seeds=args.seeds,
        probe_weights=args.probe_weights,
        prober=prober,
        eta=args.eta,
        out=args.out,
        plot=not args.no_plot,
        progress=not args.no_progress,
    )
    print(result["table"])
    print(f"\nwrote {result['csv']}" + (f" and {result['png']}" if result["png"] else ""))
    print(f"finished in {time.perf_counter() - start:.1f} s")
    return 0


def _run(args: argparse.Namespace) -> int:
    from .experiment import POLICY_DEFAULTS, build_policy
    from .runner import simulate
    from .sweep_cli import int_list

    market = dict(
        dataset=args.dataset,
        n_learners=args.n_learners,
        preference_weight=args.tau,
        init=args.init,
        preferences=args.preferences,
        max_steps=args.steps,
        eval_every=args.eval_every,
    )
    market.update(dict(args.set))
    config = MarketConfig.from_kwargs(**market)
    if args.prober is not None and not 0 <= args.prober < config.n_learners:
        raise ValueError(f"--prober must be in 0..{config.n_learners - 1}, got {args.prober}")

    policy = {
        **POLICY_DEFAULTS,
        "eta": args.eta,
        "schedule": args.schedule,
        "p": args.p,
        "scenario": args.scenario,
        "peers": int_list(args.peers) if args.peers else None,
    }
    probers = [] if args.prober is None else [args.prober]

    def factory(spec, k):
        return build_policy(spec, policy, k, probers)

    bar = None
    if not args.no_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(args.seeds) * config.max_steps, unit="step", unit_scale=True)
    history = simulate(
        config.to_dict(),
        policies=factory,
        seeds=args.seeds,
        progress=bar.update if bar else None,
        out=args.out,
    )
    if bar:
        bar.close()
    print(_summary_table(history))
    if args.out:
        print(f"wrote {Path(args.out)}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from choicemarket.baselines.registry import baseline_names, get_baseline

    from .bench import BENCH_SEEDS, SUITE, run_bench

    if args.list:
        for m in SUITE:
            print(f"market   {m.name:<18} {m.steps:>5} steps  {m.description}")
        for name in baseline_names():
            print(f"baseline {name:<18} {get_baseline(name).description}")
        return 0
    start = time.perf_counter()
    result = run_bench(
        baselines=args.baselines.split(",") if args.baselines else None,
        markets=args.markets.split(",") if args.markets else None,
        seeds=BENCH_SEEDS if args.seeds is None else args.seeds,
        steps_scale=args.steps_scale,
        progress=not args.no_progress,
    )
    print(result.table())
    paths = result.save(args.out)
    print(f"\nwrote {', '.join(str(p) for p in paths.values())}")
    print(f"finished in {time.perf_counter() - start:.1f} s")
    return 0


def _summary_table(history) -> str:
    base = history.meta["baseline"]
    metrics = ["global_loss", "gap", "share"]
    if base.get("accuracy") is not None:
        metrics[1:1] = ["global_accuracy"]
    stats = {m: history.summary(m) for m in metrics}
    lines = [
        f"baseline loss {base['loss']:.4f}"
        + (f", accuracy {base['accuracy']:.4f}" if base.get("accuracy") is not None else ""),
        f"{'agent':<12}" + "".join(f"{m:>22}" for m in metrics),
    ]
    for agent in stats["global_loss"]:
        cells = []
        for m in metrics:
            mean, se = stats[m][agent]
            cells.append(f"{mean:>12.4f} +- {se:6.4f}" if se == se else f"{mean:>22.4f}")
        lines.append(f"{agent:<12}" + "".join(f"{c:>22}" for c in cells))
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
