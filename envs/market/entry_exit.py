"""Learners entering and leaving a market: learner slots, an active mask, entries and exits.

A market has ``max_learners`` slots; slot k is learner k (agent ``learner_k``). The first
``n_learners`` are active from the start. Scheduled entry j (``entries`` sorted by step) takes
slot ``n_learners + j``; learners added with :meth:`EntryExit.add_learner` take the slots after
those, in the order they are asked for. A slot is used at most once per episode.

Inactive slots take no part: they are never chosen (their loss is +inf for the lowest-loss
choice, a uniform choice is uniform over the active learners), no user is loyal to one (a
leaver's loyal users are reassigned when it leaves), their actions are ignored, and probe
queries never reach one (peer flags naming an inactive learner are dropped; noisy routing
picks a uniformly random *active* other learner).

Within step t, after the actions are applied and before the batch arrives:

- **entry** (``(t, kind, parent)`` in ``entries``, or asked for before the step): a
  ``"clone"`` copies ``theta_parent`` (plus ``N(0, clone_noise^2)`` noise per coordinate) and
  takes a uniformly random ``round(clone_share * |U_parent|)`` of the parent's loyal users
  ``U_parent``; a ``"fresh"`` learner starts as the config's ``init`` (``"random"``:
  ``N(0, init_scale^2)``; ``"published"``: the same draw, a fresh learner having no partition
  to descend on; ``"zeros"`` and ``"partition_erm"``, the regularised ERM of an empty
  partition: zeros) and each user becomes loyal to it with probability ``fresh_share``. A
  scheduled clone whose parent has left is skipped in that market (event ``"skip"``).

After the batch of step t has chosen:

- **exit**: a learner whose batch share ``c_k / B`` was below ``exit_share`` on
  ``exit_patience`` consecutive steps leaves (a newcomer's first batch does not count). Its
  loyal users move to their lowest-loss active learner (``exit_reassign="best"``) or to a
  uniformly random active one (``"uniform"``). A market keeps at least one learner: if every
  active learner would leave, the one with the largest share (lowest index on ties) stays.

All randomness comes from each market's own generator, and only when the feature is on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..checks import MAX_LEARNERS, MAX_PARAM, int_at_least, is_integer, nonneg, one_of, unit
from .component import Component
from .config import RANDOM_INITS
from .losses import logits

if TYPE_CHECKING:
    from .config import MarketConfig
    from .core import MarketCore

ENTRY_KINDS = ("clone", "fresh")
EXIT_REASSIGN = ("best", "uniform")


# --------------------------------------------------------------------------- config
def slot_count(config: MarketConfig) -> int:
    """Number of learner slots: ``max_learners``, or ``n_learners`` when it is None."""
    return config.n_learners if config.max_learners is None else config.max_learners


def is_enabled(config: MarketConfig) -> bool:
    """Whether the learner set can change (spare slots, scheduled entries or exits)."""
    return slot_count(config) > config.n_learners or bool(config.entries) or config.exit_share > 0


def check_fields(cfg: MarketConfig) -> None:
    """Validate (and normalise) the entry/exit fields of ``cfg``; raise ``ValueError``."""
    n = cfg.n_learners
    if cfg.max_learners is not None:
        v = cfg.max_learners
        if not is_integer(v) or not n <= v <= MAX_LEARNERS:
            raise ValueError(
                f"max_learners must be None or an integer >= n_learners ({n}) "
                f"(at most {MAX_LEARNERS}), got {v!r}"
            )
        object.__setattr__(cfg, "max_learners", int(v))
    entries = _normalise_entries(cfg)
    slots = slot_count(cfg)
    if n + len(entries) > slots:
        raise ValueError(
            f"max_learners must be at least n_learners + len(entries) = {n + len(entries)} "
            f"(one slot per entering learner), got {cfg.max_learners!r}"
        )
    for j, (step, kind, parent) in enumerate(entries):
        if kind == "clone":
            # a parent is an initial learner or one that entered at an earlier step
            earlier = [n + i for i, e in enumerate(entries) if e[0] < step]
            allowed = list(range(n)) + earlier
            if parent not in allowed:
                raise ValueError(
                    f"entries[{j}]: a clone's parent must be a learner present before step "
                    f"{step}, one of {allowed}, got {parent!r}"
                )
    object.__setattr__(cfg, "entries", entries)
    unit(cfg, "exit_share")
    int_at_least(cfg, "exit_patience", 1)
    one_of(cfg, "exit_reassign", EXIT_REASSIGN)
    nonneg(cfg, "clone_noise")
    unit(cfg, "clone_share")
    unit(cfg, "fresh_share")


def _normalise_entries(cfg: MarketConfig) -> tuple[tuple[int, str, int | None], ...]:
    """``entries`` as a tuple of ``(step, kind, parent)`` sorted by step (stable)."""
    raw = cfg.entries
    form = "a sequence of (step, 'clone' | 'fresh', parent index or None)"
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence):
        raise ValueError(f"entries must be {form}, got {raw!r}")
    out = []
    for j, e in enumerate(raw):
        if isinstance(e, (str, bytes)) or not isinstance(e, Sequence) or len(e) != 3:
            raise ValueError(f"entries[{j}] must be (step, kind, parent), got {e!r}")
        step, kind, parent = e
        if not is_integer(step) or not 1 <= step < cfg.max_steps:
            raise ValueError(
                f"entries[{j}]: step must be an integer in 1..max_steps-1 "
                f"(1..{cfg.max_steps - 1}), got {step!r}"
            )
        if not isinstance(kind, str) or kind not in ENTRY_KINDS:
            raise ValueError(f"entries[{j}]: kind must be one of {ENTRY_KINDS}, got {kind!r}")
        if kind == "fresh" and parent is not None:
            raise ValueError(f"entries[{j}]: a 'fresh' entry takes parent None, got {parent!r}")
        if kind == "clone" and not is_integer(parent):
            raise ValueError(f"entries[{j}]: a 'clone' needs an integer parent, got {parent!r}")
        out.append((int(step), str(kind), None if parent is None else int(parent)))
    return tuple(sorted(out, key=lambda e: e[0]))


# --------------------------------------------------------------------------- the dynamics
class EntryExit(Component):
    """Per-episode bookkeeping of who is active in each of M markets, and the entry/exit steps.

    Attributes (after ``reset``): ``active`` (M, n) bool; ``pref`` (M, N) each training
    user's preferred learner per market; ``streak`` (M, n) consecutive steps below
    ``exit_share``; ``events`` every entry/exit so far and ``step_events`` those of the last
    step, each a dict ``{step, market, kind, learner, parent, users}`` with ``kind`` one of
    ``"clone"``, ``"fresh"``, ``"exit"``, ``"skip"`` and ``users`` the loyal users gained or
    handed on.
    """

    def __init__(self, config: MarketConfig, n_markets: int) -> None:
        self.config = config
        self.n_slots = slot_count(config)
        self.n_markets = n_markets
        self.active = np.zeros((n_markets, self.n_slots), bool)
        self.pref = np.zeros((n_markets, 0), np.int64)
        self.streak = np.zeros((n_markets, self.n_slots), np.int64)
        self.events: list[dict[str, Any]] = []
        self.step_events: list[dict[str, Any]] = []
        self._pending: list[tuple[int, str, int | None]] = []
        self._next_manual = config.n_learners + len(config.entries)
        self._masks: tuple | None = None  # derived from ``active``; None: recompute

    # ----------------------------------------------------------------- episode start
    def reset(self, core: MarketCore) -> None:
        """All markets start with learners ``0..n_learners-1`` and the population's loyalty."""
        M, n0 = self.n_markets, self.config.n_learners
        self.active = np.zeros((M, self.n_slots), bool)
        self.active[:, :n0] = True
        self.pref = np.repeat(core.population.pref[None], M, 0)
        self.streak = np.zeros((M, self.n_slots), np.int64)
        self.events, self.step_events, self._pending = [], [], []
        self._next_manual = n0 + len(self.config.entries)
        self._masks = None
        core.active, core.loyalty = self.active, self.pref

    def with_slots(self, theta: np.ndarray) -> np.ndarray:
        """Pad initial parameters (M, n_learners, o, d) with zero rows for the empty slots."""
        M, n0, o, d = theta.shape
        out = np.zeros((M, self.n_slots, o, d))
        out[:, :n0] = theta
        return out

    # ----------------------------------------------------------------- hooks of a step
    def _derived(self, size: int, n_params: int) -> tuple:
        """(all active?, keep (M, n, A) bool, off (A,), active (M, n, 1)), rebuilt only
        after the active set changed."""
        if self._masks is None or self._masks[1].shape[-1] != size:
            keep = np.ones((self.n_markets, self.n_slots, size), bool)
            keep[~self.active] = False  # inactive rows: no update, no probe
            peers = keep[..., n_params + 1 : n_params + 1 + self.n_slots]
            peers &= self.active[:, None, :]  # nobody names an inactive peer
            off = np.full(size, -1.0)
            off[:n_params] = 0.0
            self._masks = (bool(self.active.all()), keep, off, self.active[:, :, None].copy())
        return self._masks

    def mask_actions(self, core: MarketCore, actions: np.ndarray) -> np.ndarray:
        """Actions (M, n, A) with inactive learners' rows switched off (no update, no probe)
        and every peer flag naming an inactive learner dropped; a new array if any is off."""
        every, keep, off, _ = self._derived(actions.shape[-1], core.spec.n_params)
        return actions if every else np.where(keep, actions, off)

    def exclude_inactive(self, L: np.ndarray) -> np.ndarray:
        """Losses (M, n, B) with +inf for inactive learners, so argmin never picks one."""
        if self._masks is None:
            return L if self.active.all() else np.where(self.active[:, :, None], L, np.inf)
        every, _, _, on = self._masks
        return L if every else np.where(on, L, np.inf)

    # ----------------------------------------------------------------- entry and exit
    def add_learner(self, kind: str = "clone", parent: int | None = None) -> int:
        """Ask for a learner to enter at the start of the next step; returns its slot."""
        if not isinstance(kind, str) or kind not in ENTRY_KINDS:
            raise ValueError(f"kind must be one of {ENTRY_KINDS}, got {kind!r}")
        if kind == "fresh" and parent is not None:
            raise ValueError(f"parent must be None for kind='fresh', got {parent!r}")
        if kind == "clone":
            present = is_integer(parent) and 0 <= parent < self.n_slots
            if not present or not self.active[:, parent].all():
                active = [int(k) for k in np.flatnonzero(self.active.all(0))]
                raise ValueError(
                    f"parent must be an active learner, one of {active}, got {parent!r}"
                )
        if self._next_manual >= self.n_slots:
            raise ValueError(
                f"no free learner slot: all max_learners={self.n_slots} slots are used or "
                "reserved by entries; raise max_learners"
            )
        slot = self._next_manual
        self._next_manual += 1
        self._pending.append((slot, kind, None if parent is None else int(parent)))
        return slot

    def before_arrival(self, core: MarketCore) -> None:
        """Bring in the learners due at the current step (scheduled, then asked for)."""
        t = core.state.step
        self.step_events = []
        n0 = self.config.n_learners
        entries = enumerate(self.config.entries)
        due = [(n0 + j, kind, parent) for j, (step, kind, parent) in entries if step == t]
        due += self._pending
        self._pending = []
        for slot, kind, parent in due:
            for m in range(self.n_markets):
                self._enter_one(core, m, slot, kind, parent)

    def _enter_one(self, core: MarketCore, m: int, slot: int, kind: str, parent: int | None):
        cfg, s, rng = self.config, core.state, core.gens.market(m)
        if kind == "clone" and not self.active[m, parent]:
            self._event(s.step, m, "skip", slot, parent, 0)
            return
        pref = self.pref[m]
        if kind == "clone":
            theta = s.theta[m, parent].copy()
            if cfg.clone_noise > 0:
                theta += cfg.clone_noise * rng.standard_normal(theta.shape)
            users = np.flatnonzero(pref == parent)
            moved = rng.choice(users, size=round(cfg.clone_share * len(users)), replace=False)
        else:
            if cfg.init in RANDOM_INITS:
                theta = cfg.init_scale * rng.standard_normal(s.theta.shape[2:])
            else:
                theta = np.zeros(s.theta.shape[2:])
            moved = (
                np.flatnonzero(rng.random(len(pref)) < cfg.fresh_share) if cfg.fresh_share else []
            )
        pref[moved] = slot
        s.theta[m, slot] = np.clip(theta, -MAX_PARAM, MAX_PARAM)  # parameters stay bounded
        self.active[m, slot] = True
        self._masks = None
        self.streak[m, slot] = -1  # the entry step's batch does not count toward an exit
        self._event(s.step, m, kind, slot, parent, len(moved))

    def after_step(self, core: MarketCore) -> None:
        """Update the below-threshold streaks with the current batch and retire learners."""
        cfg, s = self.config, core.state
        if cfg.exit_share <= 0:
            return
        below = self.active & (s.counts / s.batch.shape[1] < cfg.exit_share)
        self.streak = np.where(below, self.streak + 1, 0)
        leaving = self.active & (self.streak >= cfg.exit_patience)
        for m in np.flatnonzero(leaving.any(1)):
            go = leaving[m]
            if not (self.active[m] & ~go).any():  # keep the largest share (lowest index)
                go[np.argmax(np.where(self.active[m], s.counts[m], -1))] = False
            if go.any():
                self._retire(core, m, np.flatnonzero(go))

    def _retire(self, core: MarketCore, m: int, slots: np.ndarray) -> None:
        cfg, s, pop = self.config, core.state, core.population
        self.active[m, slots] = False
        self._masks = None
        self.streak[m, slots] = 0
        pref = self.pref[m]
        users = np.flatnonzero(np.isin(pref, slots))
        stays = np.flatnonzero(self.active[m])
        if len(users):
            if cfg.exit_reassign == "best":
                z = logits(s.theta[m, stays], pop.X_train[users])  # (n_active, U, o)
                new = stays[pop.family.loss(z, pop.T_train[users]).argmin(0)]
            else:
                u = core.gens.market(m).random(len(users))
                new = stays[(u * len(stays)).astype(np.intp)]
            moved_from = pref[users]
            pref[users] = new
        else:
            moved_from = np.zeros(0, np.int64)
        for k in slots:
            self._event(s.step, m, "exit", int(k), None, int((moved_from == k).sum()))

    def reported(self) -> np.ndarray:
        """(M, n) bool: the learners a record of this step covers, those present and those
        that left at this step."""
        out = self.active.copy()
        for e in self.step_events:
            if e["kind"] == "exit":
                out[e["market"], e["learner"]] = True
        return out

    def _event(self, step: int, m: int, kind: str, slot: int, parent: int | None, users: int):
        e = {
            "step": int(step),
            "market": int(m),
            "kind": kind,
            "learner": int(slot),
            "parent": parent,
            "users": int(users),
        }
        self.events.append(e)
        self.step_events.append(e)


def agent_event(e: dict) -> dict:
    """An entry/exit event with agent names: ``{step, kind, agent, parent, users}``."""
    parent = None if e["parent"] is None else f"learner_{e['parent']}"
    return dict(
        step=e["step"],
        kind=e["kind"],
        agent=f"learner_{e['learner']}",
        parent=parent,
        users=e["users"],
    )
