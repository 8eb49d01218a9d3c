"""The reference-style loop the benchmark scripts measure against: where it lies, how it is
loaded and timed (``../shared/bench/refloop.py`` beside the repository, the same per-step work
as the published code)."""

from __future__ import annotations

import importlib.util
import statistics
import time
import types
from collections.abc import Callable
from pathlib import Path

REFLOOP = Path(__file__).resolve().parents[2] / "shared" / "bench" / "refloop.py"


def load_refloop(path: Path = REFLOOP) -> types.ModuleType | None:
    """The reference loop as a module, or None where it is not at ``path``."""
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("refloop", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference_rate(
    path: Path = REFLOOP,
    repeats: int = 1,
    steps: int = 2000,
    clock: Callable[[], float] = time.perf_counter,
) -> float | None:
    """Steps per second of the reference loop, the median of ``repeats`` runs of ``steps``
    steps (one run alone moves with whatever else the machine does), timed on ``clock`` (the
    clock of the figure it is compared with), or None where it is not at ``path``."""
    module = load_refloop(path)
    if module is None:
        return None
    module.time = types.SimpleNamespace(perf_counter=clock)
    return statistics.median(module.steps_per_second(T=steps) for _ in range(repeats))


def reference_seconds(path: Path, steps: int, chunk: int = 4000) -> float | None:
    """Elapsed seconds of ``steps`` steps of the reference loop (runs of ``chunk`` steps, as a
    sweep's markets, on one BLAS thread), or None where it is not at ``path``."""
    module = load_refloop(path)
    if module is None:
        return None
    import numpy as np
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)  # the data of refloop.steps_per_second
    X = rng.normal(size=(38221, 16))
    Y = (X @ rng.normal(size=16) + rng.normal(size=38221) > 0).astype(float)
    pref = rng.integers(0, 5, 38221)
    with threadpool_limits(1, user_api="blas"):
        start = time.perf_counter()
        for seed, left in enumerate(range(steps, 0, -chunk)):
            module.run(X, Y, pref, T=min(chunk, left), seed=seed)
        return time.perf_counter() - start


def note_if_missing(path: Path = REFLOOP) -> None:
    """Say that the ratios are left out where the reference loop is not at ``path``."""
    if not path.exists():
        print(f"(no reference loop at {path}: ratios left out)")
