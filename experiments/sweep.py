"""``run_sweep``: every run of an experiment, batched, in parallel, resumable.

Runs that share market settings are advanced together on the batched engine in chunks of
markets; chunks go to worker processes (``backend="process"``), to Ray tasks
(``backend="ray"``) or run in this process (``workers=1``). Each finished run is written to
``OUT/runs/<run id>.json`` atomically as soon as its chunk finishes; a rerun skips runs whose
file holds a complete result with the same settings, so an interrupted sweep resumes where it
stopped. Because every market has its own generator, a run's result does not depend on how runs
were chunked. The command line puts each sweep in ``ROOT/<name>/<settings hash>/``
(:func:`results_dir`), so different settings never share a folder; one folder is written by one
process at a time (a lock file), and worker processes end with the process that started them.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import multiprocessing
import os
import shutil
import signal
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from choicemarket.baselines import FixedCollective
from choicemarket.envs.market.config import MarketConfig
from choicemarket.envs.market.core import MarketCore

from .experiment import SETTINGS, Experiment, Run, build_policies, settings_hash
from .runner import _json_value, atomic_write, run_markets

BACKENDS = ("process", "ray")
MAX_BATCH = 64  # markets per chunk: beyond this the arrays outgrow the caches
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
RUN_KEYS = ("id", "point", "seed", "market", "policy", "probers", "baseline", "rows")
LOCK_NAME = ".lock"
BYTES_PER_ROW = 400  # a history row in a run file (about 360 measured), for the space check


class SkippedRunWarning(UserWarning):
    """A run file that cannot be used (truncated, incomplete, or of other settings)."""


def results_dir(exp: Experiment, root: str | os.PathLike) -> Path:
    """``root/<name>/<settings hash>``: the folder of this config's results under ``root``,
    checked to lie inside ``root``."""
    return inside(root, Path(root) / exp.name / exp.settings_hash)


def inside(root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """``path``, after checking that it resolves (links followed) to a place inside ``root``."""
    base = Path(root).resolve()
    if not Path(path).resolve().is_relative_to(base):
        raise ValueError(f"refusing to write {path}: it lies outside {root}")
    return Path(path)


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


def _chunk(
    market: dict, runs: list[Run], snapshot_every: int | None, progress=None
) -> list[tuple[str, str]]:
    """Run one chunk of markets with the same market settings; returns ``(run id, run file
    text)`` pairs, the JSON made here (in the worker, beside the other workers) so that the
    parent only writes the files."""
    with _one_thread():
        payloads = _run_chunk(market, runs, snapshot_every, progress)
        return [(p["id"], json.dumps(p, allow_nan=False)) for p in payloads]


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


def read_run(path: Path) -> dict:
    """A run file's content; ValueError saying what is wrong with it (unreadable, truncated,
    or missing one of ``RUN_KEYS``)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"unreadable or truncated ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict):
        raise ValueError("not a run (a JSON object expected)")
    missing = [k for k in RUN_KEYS if k not in data]
    if missing:
        raise ValueError(f"incomplete: no {', '.join(missing)}")
    if not isinstance(data["rows"], list) or not all(isinstance(r, dict) for r in data["rows"]):
        raise ValueError("incomplete: 'rows' is not a list of rows")
    return data


def _done(path: Path, run: Run) -> bool:
    """A finished run: its file holds a complete result with the same settings."""
    try:
        data = read_run(path)
    except ValueError:
        return False
    same = json.dumps([data["market"], data["policy"], data["seed"]], sort_keys=True, default=str)
    return same == json.dumps([run.market, run.policy, run.seed], sort_keys=True, default=str)


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

    ``out`` holds one setting: a folder whose ``sweep.json`` has other settings is refused, and
    so is a folder another process is writing. The config and the free space are checked
    before anything is computed; the first failed write stops the sweep (and its workers).
    Returns ``{"out": Path, "runs": total, "skipped": [...ids], "computed": [...ids]}``.
    ``on_chunk`` is called with the ids of each chunk right after they were written.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    out = Path(out)
    runs_dir = out / "runs"
    runs = exp.runs()
    with folder_lock(out):
        _check_settings(out, exp)
        _write(out, out / "sweep.json", json.dumps(sweep_meta(exp), indent=1, default=str))
        todo = [r for r in runs if not _done(runs_dir / f"{r.run_id}.json", r)]
        skipped = [r.run_id for r in runs if r not in todo]
        snap = exp.output.get("snapshot_every")
        _check_space(out, todo)
        if todo:  # the longest run file name can be written here (before any computing)
            check = runs_dir / f".{max((r.run_id for r in todo), key=len)}.json.check"
            _write(out, check, "")
            check.unlink()
        chunks = plan_chunks(todo, workers, max_batch)
        steps = {id(r): r.market.get("max_steps", MarketConfig().max_steps) for r in todo}
        bar = None
        if progress and todo:
            from tqdm.auto import tqdm

            bar = tqdm(
                total=sum(steps.values()), unit="market-step", unit_scale=True, desc=exp.name
            )
        computed: list[str] = []

        def finish(files: list[tuple[str, str]]) -> None:
            ids = []
            for run_id, text in files:
                _write(out, runs_dir / f"{run_id}.json", text)
                ids.append(run_id)
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
                _run_pool(chunks, snap, finish, bar, steps, min(workers, len(chunks)))
        finally:
            if bar:
                bar.close()
    return {"out": out, "runs": len(runs), "skipped": skipped, "computed": computed}


def sweep_meta(exp: Experiment) -> dict:
    """What ``sweep.json`` holds: the resolved config and its settings hash."""
    return {**exp.to_dict(), "settings": exp.settings_hash}


def _check_settings(out: Path, exp: Experiment) -> None:
    """Refuse a folder whose ``sweep.json`` records other settings than ``exp``'s."""
    path = out / "sweep.json"
    if not path.exists():
        return
    try:
        old = json.loads(path.read_text())
    except ValueError:
        return  # a truncated sweep.json is rewritten
    if isinstance(old, dict) and settings_hash(old) != exp.settings_hash:
        new = json.loads(json.dumps(exp.to_dict(), default=str))
        changed = [k for k in SETTINGS if old.get(k) != new[k]]
        raise ValueError(
            f"{out} holds results of other settings (settings {settings_hash(old)}, these are "
            f"{exp.settings_hash}; {', '.join(changed) or 'settings'} differ); choose another "
            "folder (`choicemarket run` keeps each setting in its own folder)"
        )


def _write(out: Path, path: Path, text: str) -> None:
    """``atomic_write`` of a file that must lie inside ``out``; a failed write names it."""
    inside(out, path)
    try:
        atomic_write(path, text)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from exc


def _check_space(out: Path, todo: Sequence[Run]) -> None:
    """Refuse to start when the run files (their history rows, a lower bound on their size)
    will not fit on the disk of ``out``."""
    need = 0
    for market, count in Counter(json.dumps(r.market, sort_keys=True) for r in todo).items():
        cfg = MarketConfig.from_kwargs(**json.loads(market))
        agents = (cfg.max_learners or cfg.n_learners) + 1  # + a collective's row
        need += count * BYTES_PER_ROW * agents * (cfg.max_steps // max(1, cfg.eval_every) + 1)
    free = shutil.disk_usage(out).free
    if need > free:
        raise OSError(
            errno.ENOSPC,
            f"not enough free space in {out}: the {len(todo)} run files need at least "
            f"{need / 1e6:.0f} MB, {free / 1e6:.0f} MB are free",
        )


@contextlib.contextmanager
def folder_lock(out: Path) -> Iterator[None]:
    """Hold ``out/.lock`` for the sweep: a second process writing the same folder is refused
    (the operating system releases the lock when its holder ends, however it ends)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            _lock_file(fd)
        except OSError:
            other = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise ValueError(
                f"{out} is being written by another `choicemarket run` (process {other}); "
                "wait for it to finish or choose another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _lock_file(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        return
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _run_pool(chunks, snap, finish, bar, steps, workers: int) -> None:
    """Chunks in ``workers`` spawned processes; any error or interrupt here (a failed write,
    Ctrl-C, SIGTERM turned into an exception) terminates the workers at once."""
    with single_thread_environment():  # the workers start in the submits and inherit it
        pool = worker_pool(workers)
        try:
            pending = {pool.submit(_chunk, c[0].market, c, snap): c for c in chunks}
        except BaseException:
            _stop_pool(pool)
            raise
    try:
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                chunk = pending.pop(fut)
                finish(fut.result())
                if bar:
                    bar.update(sum(steps[id(r)] for r in chunk))
    except BaseException:
        _stop_pool(pool)
        raise
    pool.shutdown(wait=True)


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """The sweep's pool: ``workers`` spawned processes with :func:`_worker_init` (start them,
    by submitting, inside :func:`single_thread_environment`)."""
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_worker_context(),
        initializer=_worker_init,
        initargs=(os.getpid(),),
    )


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel what is queued and terminate the workers (``shutdown`` alone waits for the
    chunks being computed)."""
    # the executor offers no public way to end running workers: take them from its table
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.join(timeout=5)


@contextlib.contextmanager
def single_thread_environment() -> Iterator[None]:
    """``THREAD_VARIABLES`` set to 1 in this process's environment (restored after), so that
    processes started meanwhile load their BLAS and OpenMP libraries with one thread."""
    old = {k: os.environ.get(k) for k in THREAD_VARIABLES}
    os.environ.update(dict.fromkeys(THREAD_VARIABLES, "1"))
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _worker_init(parent: int) -> None:
    """A worker: one BLAS/OpenMP thread (before scikit-learn is imported here), Ctrl-C left to
    the parent (which stops the pool), and an exit as soon as the parent is gone."""
    os.environ.update(dict.fromkeys(THREAD_VARIABLES, "1"))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int, every: float = 0.2) -> None:
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)


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
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                chunk = pending.pop(ref)
                finish(ray.get(ref))
                if bar:
                    bar.update(sum(steps[id(r)] for r in chunk))
    finally:
        for ref in pending:  # after an error or interrupt: nothing more is computed
            ray.cancel(ref, force=True)


def _worker_context() -> multiprocessing.context.BaseContext:
    """Fresh worker processes (``spawn``): forking a process whose BLAS/OpenMP thread pools
    are running (e.g. after scikit-learn's k-means) can deadlock the child, and a fresh
    process sees the current environment variables (data locations)."""
    return multiprocessing.get_context("spawn")


def results_folders(path: str | os.PathLike) -> list[Path]:
    """The results folders (each with a ``sweep.json``) that ``path`` names: itself, or the
    folders one or two levels down (``results/NAME`` holds one per setting run, ``results``
    one folder per name)."""
    path = Path(path)
    if (path / "sweep.json").is_file():
        return [path]
    found = sorted(p.parent for p in path.glob("*/sweep.json"))
    found += sorted(p.parent for p in path.glob("*/*/sweep.json"))  # results: every name
    if not found:
        raise ValueError(
            f"{path} is not a results folder of `choicemarket run` (no sweep.json in it or in "
            "its subfolders)"
        )
    return found


def load_runs(out: str | os.PathLike) -> tuple[dict, list[dict]]:
    """(the sweep's config dict, the finished runs) of a results folder (or of a folder above
    it holding one setting's results only, as ``results/NAME`` after one ``run``).

    A run file that is truncated or incomplete, or holds other settings than ``sweep.json``,
    is skipped with a :class:`SkippedRunWarning` naming it (``choicemarket run`` redoes it)."""
    out = Path(out)
    folders = results_folders(out)
    if len(folders) > 1:
        raise ValueError(
            f"{out} holds the results of {len(folders)} settings "
            f"({', '.join(f.name for f in folders)}); name one of them"
        )
    out = folders[0]
    meta_path = out / "sweep.json"
    try:
        meta = json.loads(meta_path.read_text())
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        raise ValueError(
            f"{meta_path} is unreadable ({' '.join(str(exc).split())}); `choicemarket run` "
            "rewrites it"
        ) from None
    runs = []
    for path in sorted((out / "runs").glob("*.json")):
        try:
            run = read_run(path)
            _check_belongs(meta, run)
        except ValueError as exc:
            warnings.warn(
                f"skipping {path}: {exc}; `choicemarket run` will redo it",
                SkippedRunWarning,
                stacklevel=1,  # one place: a file skipped by several readers is named once
            )
            continue
        for row in run["rows"]:
            for k, v in row.items():
                if v is None:
                    row[k] = math.nan
        runs.append(run)
    return meta, runs


def _check_belongs(meta: dict, run: dict) -> None:
    """ValueError unless ``run`` is a run of the sweep that ``meta`` describes: its settings
    are the sweep's outside the swept fields, and its swept values and seed are listed."""
    sweep = meta.get("sweep") or {}
    swept = {k for k in sweep if k != "seeds"}
    for section in ("market", "policy"):
        mine, theirs = run.get(section) or {}, meta.get(section) or {}
        for key in (set(mine) | set(theirs)) - swept:
            if mine.get(key) != theirs.get(key):
                raise ValueError(
                    f"of other settings ({section}.{key} is {mine.get(key)!r}, the sweep's "
                    f"{theirs.get(key)!r})"
                )
    point = run.get("point") or {}
    if set(point) != swept or any(point[k] not in sweep[k] for k in swept):
        raise ValueError(f"of other settings (swept values {point})")
    if run.get("seed") not in sweep.get("seeds", [run.get("seed")]):
        raise ValueError(f"of other settings (seed {run.get('seed')} is not swept)")
