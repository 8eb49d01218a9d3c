"""``run_sweep``: every run of an experiment, batched, in parallel, resumable.

Runs that share market settings are advanced together on the batched engine in chunks of
markets; chunks go to worker processes (``backend="process"``), to Ray tasks
(``backend="ray"``) or run in this process (``workers=1``). Each finished run is written to
``OUT/runs/<run id>.json`` atomically as soon as its chunk finishes; a rerun skips runs whose
file exists with the same settings, so an interrupted sweep resumes where it stopped. Because
every market has its own generator, a run's result does not depend on how runs were chunked.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from choicemarket.baselines import FixedCollective
from choicemarket.envs.market.config import MarketConfig
from choicemarket.envs.market.core import MarketCore

from .experiment import Experiment, Run, build_policies
from .runner import _json_value, atomic_write, run_markets

BACKENDS = ("process", "ray")
MAX_BATCH = 64  # markets per chunk: beyond this the arrays outgrow the caches


def resolve_probers(market: dict, policy: dict) -> list[int]:
    """The learners that run MSGD-P: the listed ones, or with ``"worst"`` the ``n_probers``
    learners with the lowest test accuracy (highest loss) at the start of seed 0."""
    if policy["p"] == 0:
        return []
    if policy["probers"] != "worst":
        return list(policy["probers"])
    from .demo import worst_start_learners

    return worst_start_learners(market, policy["n_probers"])


_PROBERS: dict[str, list[int]] = {}  # resolve_probers results of this process


def _probers_of(run: Run) -> list[int]:
    """``resolve_probers`` of a run, computed once per process for equal settings."""
    if run.policy["p"] == 0:
        return []
    key = json.dumps([run.market, run.policy["probers"], run.policy["n_probers"]], default=str)
    if key not in _PROBERS:
        if len(_PROBERS) >= 256:
            _PROBERS.pop(next(iter(_PROBERS)))
        _PROBERS[key] = resolve_probers(run.market, run.policy)
    return list(_PROBERS[key])


def _one_thread():
    """A context with one BLAS/OpenMP thread: the matrices are small (population build
    included), so threads only contend with the other workers; results are the same."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1)


def _chunk(market: dict, runs: list[Run], snapshot_every: int | None, progress=None) -> list:
    """Run one chunk of markets with the same market settings; returns the run payloads."""
    with _one_thread():
        return _run_chunk(market, runs, snapshot_every, progress)


def _run_chunk(market: dict, runs: list[Run], snapshot_every: int | None, progress) -> list:
    cfg = MarketConfig.from_kwargs(**market)
    core = MarketCore(cfg)
    spec = core.spec
    pols, probers = [], []
    for run in runs:
        who = _probers_of(run)
        probers.append(who)
        pols.append(build_policies(spec, run.policy, who))
    collective = None
    if cfg.collective_fraction:  # the scripted planting collective, as simulate plays it
        collective = [FixedCollective(n_learners=spec.n_learners) for _ in runs]
    results = run_markets(cfg, pols, [r.seed for r in runs], progress, snapshot_every, collective)
    out = []
    for run, res, who in zip(runs, results, probers):
        payload = {
            "id": run.run_id,
            "point": run.point,
            "seed": run.seed,
            "market": run.market,
            "policy": run.policy,
            "probers": who,
            "baseline": res.baseline,
            "rows": [{k: _json_value(v) for k, v in r.items()} for r in res.rows],
        }
        if snapshot_every:
            payload["snapshots"] = {str(k): v for k, v in res.snapshots.items()}
        out.append(payload)
    return out


def _done(path: Path, run: Run) -> bool:
    """A finished run: its file exists, parses, and holds the same settings."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    same = json.dumps([data.get("market"), data.get("policy")], sort_keys=True, default=str)
    return same == json.dumps([run.market, run.policy], sort_keys=True, default=str)


def plan_chunks(runs: Sequence[Run], workers: int, max_batch: int = MAX_BATCH) -> list[list[Run]]:
    """Group runs by market settings, then split each group into chunks so that there are at
    least ``workers`` chunks and none holds more than ``max_batch`` markets."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(json.dumps(run.market, sort_keys=True, default=str), []).append(run)
    per = max(1, min(max_batch, math.ceil(len(runs) / max(1, workers))))
    chunks = []
    for group in groups.values():
        n_chunks = math.ceil(len(group) / per)
        size = math.ceil(len(group) / n_chunks)
        chunks += [group[i : i + size] for i in range(0, len(group), size)]
    return chunks


def run_sweep(
    exp: Experiment,
    out: str | os.PathLike,
    workers: int = 1,
    backend: str = "process",
    progress: bool = True,
    max_batch: int = MAX_BATCH,
    on_chunk: Callable[[list[str]], None] | None = None,
) -> dict[str, Any]:
    """Run every unfinished run of ``exp`` and write it under ``out``.

    Returns ``{"out": Path, "runs": total, "skipped": [...ids], "computed": [...ids]}``.
    ``on_chunk`` is called with the ids of each chunk right after they were written.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    out = Path(out)
    runs_dir = out / "runs"
    atomic_write(out / "sweep.json", json.dumps(exp.to_dict(), indent=1, default=str))
    runs = exp.runs()
    todo = [r for r in runs if not _done(runs_dir / f"{r.run_id}.json", r)]
    skipped = [r.run_id for r in runs if r not in todo]
    snap = exp.output.get("snapshot_every")
    chunks = plan_chunks(todo, workers, max_batch)
    steps = {id(r): r.market.get("max_steps", MarketConfig().max_steps) for r in todo}
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        total = sum(steps.values())
        bar = tqdm(total=total, unit="market-step", unit_scale=True, desc=exp.name)
    computed: list[str] = []

    def finish(payloads: list[dict]) -> None:
        ids = []
        for payload in payloads:
            atomic_write(runs_dir / f"{payload['id']}.json", json.dumps(payload, allow_nan=False))
            ids.append(payload["id"])
        computed.extend(ids)
        if on_chunk is not None:
            on_chunk(ids)

    try:
        if backend == "ray":
            _run_ray(chunks, snap, finish, bar, steps)
        elif workers == 1 or len(chunks) <= 1:
            for chunk in chunks:
                finish(_chunk(chunk[0].market, chunk, snap, bar.update if bar else None))
        else:
            with ProcessPoolExecutor(
                max_workers=min(workers, len(chunks)), mp_context=_worker_context()
            ) as pool:
                pending = {pool.submit(_chunk, c[0].market, c, snap): c for c in chunks}
                while pending:
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        chunk = pending.pop(fut)
                        finish(fut.result())
                        if bar:
                            bar.update(sum(steps[id(r)] for r in chunk))
    finally:
        if bar:
            bar.close()
    return {"out": out, "runs": len(runs), "skipped": skipped, "computed": computed}


def _run_ray(chunks, snap, finish, bar, steps) -> None:
    """Chunks as Ray tasks (``ray.init()`` is called if Ray is not running yet)."""
    try:
        import ray
    except ImportError as exc:
        raise ValueError("backend 'ray' needs Ray: pip install 'choicemarket[ray]'") from exc
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)
    task = ray.remote(_chunk)
    pending = {task.remote(c[0].market, c, snap): c for c in chunks}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            chunk = pending.pop(ref)
            finish(ray.get(ref))
            if bar:
                bar.update(sum(steps[id(r)] for r in chunk))


def _worker_context() -> multiprocessing.context.BaseContext:
    """Fresh worker processes (``spawn``): forking a process whose BLAS/OpenMP thread pools
    are running (e.g. after scikit-learn's k-means) can deadlock the child, and a fresh
    process sees the current environment variables (data locations)."""
    return multiprocessing.get_context("spawn")


def load_runs(out: str | os.PathLike) -> tuple[dict, list[dict]]:
    """(the sweep's config dict, the finished runs) of a results folder."""
    out = Path(out)
    meta_path = out / "sweep.json"
    if not meta_path.exists():
        raise ValueError(f"{out} is not a results folder of `choicemarket run` (no sweep.json)")
    meta = json.loads(meta_path.read_text())
    runs = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]
    for run in runs:
        for row in run["rows"]:
            for k, v in row.items():
                if v is None:
                    row[k] = math.nan
    return meta, runs
