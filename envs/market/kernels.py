"""Compiled loops of the market step: segment sums over users, and the best learner per user.

These are the steps that numpy can only do with a padded or one-hot copy of the batch (a sum
per learner of its users' rows) or with one call per tiny row (an argmax over a handful of
learners): as loops over the users they read each user once. Each function is compiled by
numba on its first call and cached on disk (``cache=True``, beside this file or in numba's
user cache folder), so importing the library compiles nothing; numba itself is imported on
that first call. Every caller goes through these functions: there is no numpy twin.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np


def _numba():
    try:
        import numba
    except ImportError as err:  # pragma: no cover - numba is a dependency of the package
        raise ImportError(
            "the market step needs numba (pip install numba); numba publishes wheels for "
            "x86_64 and arm64 on Linux, macOS and Windows and CPython 3.10-3.13. Import failed "
            f"with: {err}"
        ) from err
    return numba


def compiled(fn: Callable) -> Callable:
    """``fn`` compiled by numba (``nopython``, ``cache=True``) on its first call."""
    jitted = None

    @functools.wraps(fn)
    def call(*args):
        nonlocal jitted
        if jitted is None:
            jitted = _numba().njit(cache=True, nogil=True)(fn)
        return jitted(*args)

    call.py_func = fn
    return call


@compiled
def argmax_rows(a: np.ndarray) -> np.ndarray:
    """``argmax_k a[i, k]`` for each row of ``a`` (R, n); ties go to the lowest index."""
    R, n = a.shape
    out = np.empty(R, np.int64)
    for i in range(R):
        best, value = 0, a[i, 0]
        for k in range(1, n):
            if a[i, k] > value:
                best, value = k, a[i, k]
        out[i] = best
    return out


@compiled
def margin_argmax(z: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``argmax_k (2 q_i - 1) z[i, k]`` for logits ``z`` (R, n) and 0/1 targets ``q`` (R,):
    the largest logit where ``q_i = 1``, the smallest where ``q_i = 0`` (ties: lowest index),
    without forming the (R, n) margins."""
    R, n = z.shape
    out = np.empty(R, np.int64)
    for i in range(R):
        best, value = 0, z[i, 0]
        if q[i] > 0.5:
            for k in range(1, n):
                if z[i, k] > value:
                    best, value = k, z[i, k]
        else:
            for k in range(1, n):
                if z[i, k] < value:
                    best, value = k, z[i, k]
        out[i] = best
    return out


@compiled
def segment_sums(seg: np.ndarray, w: np.ndarray, n_seg: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows per segment and their summed weights: ``count_k = #{i: seg_i = k}``,
    ``sum_k = sum_{i: seg_i = k} w_i`` for ``seg`` (R,) in ``-1..n_seg-1`` (-1: no segment)."""
    counts = np.zeros(n_seg, np.int64)
    sums = np.zeros(n_seg)
    for i in range(seg.shape[0]):
        k = seg[i]
        if k >= 0:
            counts[k] += 1
            sums[k] += w[i]
    return counts, sums


@compiled
def segment_outer_sums(
    r: np.ndarray, X: np.ndarray, seg: np.ndarray, w: np.ndarray, n_seg: int
) -> tuple[np.ndarray, np.ndarray]:
    """``G_k = sum_{i: seg_i = k} w_i r_i x_i^T`` (n_seg, o, d) and ``W_k = sum w_i`` (n_seg,)
    over the rows i = (s, b) of residuals ``r`` (S, b, o), covariates ``X`` (S, b, d),
    segments ``seg`` (S, b) (-1: none) and weights ``w`` (S, b) (an empty ``w``: every
    weight 1); any strides (a broadcast ``seg`` or a strided view of ``X`` is read in place).
    Rows of weight 0 are skipped."""
    S, B, o = r.shape
    d = X.shape[2]
    G = np.zeros((n_seg, o, d), r.dtype)
    W = np.zeros(n_seg)
    weighted = w.size > 0
    for s in range(S):
        for b in range(B):
            k = seg[s, b]
            if k < 0:
                continue
            wi = w[s, b] if weighted else 1.0
            if wi == 0.0:
                continue
            W[k] += wi
            for j in range(o):
                c = wi * r[s, b, j]
                for f in range(d):
                    G[k, j, f] += c * X[s, b, f]
    return G, W


@compiled
def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function ``1 / (1 + exp(-z))`` of a C-contiguous array, elementwise (the
    same arithmetic as scipy's ``expit``: no overflow warning, 0 below about -745)."""
    out = np.empty_like(z)
    flat, res = z.ravel(), out.ravel()
    for i in range(flat.size):
        res[i] = 1.0 / (1.0 + math.exp(-flat[i]))
    return out
