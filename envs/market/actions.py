"""The flat action vector of a learner, and helpers that build and parse it.

Layout (length ``n_params + n_learners + 2``)::

    [ update (n_params) | probe (1) | peers (n_learners) | route_by_preference (1) ]

``update`` is added to the learner's parameters (each coordinate clipped to
``[-max_update, max_update]``; the parameters themselves are kept within
``[-MAX_PARAM, MAX_PARAM]``, 1e6, so that every loss stays finite). The remaining coordinates
lie in ``[-1, 1]`` and are read as flags, *on* when > 0: ``probe`` requests a probe of peer
models this step; ``peers[j]`` includes learner j in the request (the pseudo-label is the
median of their predictions); ``route_by_preference`` instead sends each probed covariate to
the learner its user prefers. A probe request that names no peer and does not route by
preference makes no query.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

from ..checks import numeric_array


@dataclass(frozen=True)
class ProbeRequest:
    """A parsed probe request."""

    probe: bool
    peers: tuple[int, ...]
    route_by_preference: bool


@dataclass(frozen=True)
class ActionLayout:
    """Where each part of the action vector lies."""

    n_params: int
    n_learners: int
    max_update: float

    @functools.cached_property
    def size(self) -> int:
        return self.n_params + self.n_learners + 2

    @property
    def probe_index(self) -> int:
        return self.n_params

    @property
    def peers_slice(self) -> slice:
        return slice(self.n_params + 1, self.n_params + 1 + self.n_learners)

    @property
    def route_index(self) -> int:
        return self.size - 1

    def low(self) -> np.ndarray:
        low = -np.ones(self.size, dtype=np.float32)
        low[: self.n_params] = -self.max_update
        return low

    @functools.cached_property
    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        low = self.low().astype(np.float64)
        return low, -low

    def space(self) -> spaces.Box:
        low = self.low()
        return spaces.Box(low=low, high=-low, dtype=np.float32)

    def build(
        self,
        update: np.ndarray | None = None,
        probe: bool = False,
        peers: Iterable[int] = (),
        route_by_preference: bool = False,
    ) -> np.ndarray:
        """An action vector: parameter ``update`` (any shape with n_params entries) and a
        probe request. Off flags are -1, on flags +1."""
        a = np.full(self.size, -1.0, dtype=np.float32)
        if update is None:
            a[: self.n_params] = 0.0
        else:
            try:
                u = np.array(update, dtype=np.float64).reshape(-1)
            except (TypeError, ValueError, OverflowError) as exc:
                raise ValueError(f"update must hold {self.n_params} finite numbers") from exc
            if not np.isfinite(u).all():
                raise ValueError("update contains NaN or inf; all entries must be finite")
            if u.size != self.n_params:
                raise ValueError(f"update must have {self.n_params} entries, got {u.size}")
            a[: self.n_params] = np.clip(u, -self.max_update, self.max_update)
        if probe:
            a[self.probe_index] = 1.0
            for j in peers:
                if not 0 <= int(j) < self.n_learners:
                    raise ValueError(f"peers must be learner indices in 0..{self.n_learners - 1}")
                a[self.n_params + 1 + int(j)] = 1.0
            if route_by_preference:
                a[self.route_index] = 1.0
        return a

    def parse(self, action: np.ndarray) -> tuple[np.ndarray, ProbeRequest]:
        """(update (n_params,), probe request) of one validated action."""
        a = self.validate(action)
        flags = a[self.n_params :] > 0
        peers = tuple(int(j) for j in np.flatnonzero(flags[1:-1]))
        probe = bool(flags[0]) and (bool(flags[-1]) or bool(peers))
        return a[: self.n_params].astype(np.float64), ProbeRequest(
            probe=probe, peers=peers if probe else (), route_by_preference=probe and flags[-1]
        )

    def validate(self, action: object, name: str = "action") -> np.ndarray:
        """Check shape and finiteness, then clip to the bounds (float64 copy)."""
        a = numeric_array(action, (self.size,), name)
        low, high = self._bounds
        return np.clip(a, low, high)

    def validate_many(self, actions: list, names: Iterable[str]) -> np.ndarray:
        """Validate and clip several actions at once -> (K, size) float64; a bad one raises
        the same ``ValueError`` as :meth:`validate`, naming it."""
        try:
            a = np.array(actions, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            a = None
        # a sum is finite iff every entry is (barring overflow, which the slow path re-checks)
        if a is None or a.shape != (len(actions), self.size) or not np.isfinite(a.sum()):
            return np.stack([self.validate(x, name) for x, name in zip(actions, names)])
        low, high = self._bounds
        return np.minimum(np.maximum(a, low, out=a), high, out=a)

    def split(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Batched parse of clipped actions (..., size): updates (..., n_params), probe (...),
        peers (..., n_learners), route (...). A request with no peer and no routing is off.
        When no request is on, ``peers`` is None."""
        P = self.n_params
        requested = actions[..., P] > 0
        if not np.logical_or.reduce(requested, None):
            return actions[..., :P], requested, None, requested
        flags = actions[..., P:] > 0
        peers = flags[..., 1:-1]
        route = flags[..., -1]
        probe = flags[..., 0] & (route | peers.any(-1))
        return actions[..., : self.n_params], probe, peers & probe[..., None], route & probe
