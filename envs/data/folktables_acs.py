"""folktables prediction tasks on ACS PUMS person files you supply (read offline).

``acs-employment`` is folktables' ``ACSEmployment``: the 16 raw features AGEP, SCHL, MAR, RELP,
DIS, ESP, CIT, MIG, MIL, ANC, NATIVITY, DEAR, DEYE, DREM, SEX, RAC1P, label ``ESR == 1``
(employed civilian at work), every person in the file (no filter). Also available, with
folktables' definitions: ``acs-income-folk`` (ACSIncome), ``acs-public-coverage``
(ACSPublicCoverage), ``acs-mobility`` (ACSMobility) and ``acs-travel-time`` (ACSTravelTime).

The file is the Census Bureau's person CSV in folktables' layout,
``<root>/<year>/<horizon>/psam_p<FIPS>.csv`` (``ss<yy>p<state>.csv`` before 2017), e.g.
``<root>/2018/1-Year/psam_p01.csv`` for Alabama. ``root`` is the ``root`` dataset option, else
the environment variable ``CHOICEMARKET_ACS_ROOT``. A missing file raises ``MissingDataFile``
(a ``FileNotFoundError`` and a ``ValueError``) naming the path and where to get it.

The CSV is read directly (the standard library's ``csv``), with the same feature/label
definitions as folktables, so folktables itself is not needed: missing values (blank cells)
become 0, exactly as folktables' postprocess ``np.nan_to_num(x, -1)`` does (its -1 is the
``copy`` argument, so NaN becomes 0); a comparison with a missing value is false, as in
pandas. Each feature column is then standardised over the kept persons (mean 0, std 1; a
constant column becomes 0), no intercept unless ``intercept=True``. ``min_age``/``max_age``
optionally restrict to persons with ``min_age <= AGEP <= max_age``.
"""

from __future__ import annotations

import functools
import numbers
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .acs import MAX_ABS_VALUE
from .datafile import read_csv_columns
from .preprocess import MissingDataFile, check_bool, design_matrix
from .registry import Dataset, register_dataset

ENV_VAR = "CHOICEMARKET_ACS_ROOT"
HORIZONS: tuple[str, ...] = ("1-Year", "5-Year")
STATE_CODES: dict[str, str] = {
    "AL": "01", "AK": "02", "AZ": "04", "AR": "05", "CA": "06", "CO": "08", "CT": "09",
    "DE": "10", "FL": "12", "GA": "13", "HI": "15", "ID": "16", "IL": "17", "IN": "18",
    "IA": "19", "KS": "20", "KY": "21", "LA": "22", "ME": "23", "MD": "24", "MA": "25",
    "MI": "26", "MN": "27", "MS": "28", "MO": "29", "MT": "30", "NE": "31", "NV": "32",
    "NH": "33", "NJ": "34", "NM": "35", "NY": "36", "NC": "37", "ND": "38", "OH": "39",
    "OK": "40", "OR": "41", "PA": "42", "RI": "44", "SC": "45", "SD": "46", "TN": "47",
    "TX": "48", "UT": "49", "VT": "50", "VA": "51", "WA": "53", "WV": "54", "WI": "55",
    "WY": "56", "PR": "72",
}  # fmt: skip
Table = dict[str, np.ndarray]


@dataclass(frozen=True)
class Task:
    """One folktables task: features, label rule and row filter on a column table."""

    name: str
    folktables_name: str
    features: tuple[str, ...]
    target: str
    label: Callable[[np.ndarray], np.ndarray]
    keep: Callable[[Table], np.ndarray] | None
    what: str
    filter_columns: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the task reads (AGEP is a feature of every task)."""
        return tuple(dict.fromkeys((*self.features, self.target, *self.filter_columns)))


def _all(*conds: np.ndarray) -> np.ndarray:
    return np.logical_and.reduce(conds)


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task(
            "acs-employment",
            "ACSEmployment",
            ("AGEP", "SCHL", "MAR", "RELP", "DIS", "ESP", "CIT", "MIG", "MIL", "ANC",
             "NATIVITY", "DEAR", "DEYE", "DREM", "SEX", "RAC1P"),
            "ESR",
            lambda v: v == 1,
            None,
            "employed (ESR == 1), every person",
        ),
        Task(
            "acs-income-folk",
            "ACSIncome",
            ("AGEP", "COW", "SCHL", "MAR", "OCCP", "POBP", "RELP", "WKHP", "SEX", "RAC1P"),
            "PINCP",
            lambda v: v > 50000,
            lambda t: _all(t["AGEP"] > 16, t["PINCP"] > 100, t["WKHP"] > 0, t["PWGTP"] >= 1),
            "income above $50,000 (PINCP > 50000), persons over 16 with income > 100, working",
            ("PWGTP",),
        ),
        Task(
            "acs-public-coverage",
            "ACSPublicCoverage",
            ("AGEP", "SCHL", "MAR", "SEX", "DIS", "ESP", "CIT", "MIG", "MIL", "ANC",
             "NATIVITY", "DEAR", "DEYE", "DREM", "PINCP", "ESR", "ST", "FER", "RAC1P"),
            "PUBCOV",
            lambda v: v == 1,
            lambda t: _all(t["AGEP"] < 65, t["PINCP"] <= 30000),
            "public health coverage (PUBCOV == 1), persons under 65 with income <= 30,000",
        ),
        Task(
            "acs-mobility",
            "ACSMobility",
            ("AGEP", "SCHL", "MAR", "SEX", "DIS", "ESP", "CIT", "MIL", "ANC", "NATIVITY",
             "RELP", "DEAR", "DEYE", "DREM", "RAC1P", "GCL", "COW", "ESR", "WKHP", "JWMNP",
             "PINCP"),
            "MIG",
            lambda v: v == 1,
            lambda t: ~((t["AGEP"] <= 18) | (t["AGEP"] >= 35)),
            "same residence a year ago (MIG == 1), persons aged 19-34",
        ),
        Task(
            "acs-travel-time",
            "ACSTravelTime",
            ("AGEP", "SCHL", "MAR", "SEX", "DIS", "ESP", "MIG", "RELP", "RAC1P", "PUMA", "ST",
             "CIT", "OCCP", "JWTR", "POWPUMA", "POVPIP"),
            "JWMNP",
            lambda v: v > 20,
            lambda t: _all(t["AGEP"] > 16, t["PWGTP"] >= 1, t["ESR"] == 1),
            "commute over 20 minutes (JWMNP > 20), employed persons over 16",
            ("PWGTP", "ESR"),
        ),
    )
}  # fmt: skip


def state_code(state: str) -> tuple[str, str]:
    """(abbreviation, FIPS code) from ``"AL"``/``"al"`` or ``"01"``; else ValueError."""
    if isinstance(state, str):
        s = state.strip().upper()
        if s in STATE_CODES:
            return s, STATE_CODES[s]
        for abbrev, code in STATE_CODES.items():
            if s == code:
                return abbrev, code
    raise ValueError(
        f"state must be a state abbreviation or 2-digit FIPS code, one of "
        f"{tuple(STATE_CODES)}, got {state!r}"
    )


def pums_path(root: str | os.PathLike, state: str, year: int, horizon: str = "1-Year") -> Path:
    """Where folktables keeps the person file of ``state`` and ``year``."""
    abbrev, code = state_code(state)
    name = f"psam_p{code}.csv" if year >= 2017 else f"ss{str(year)[-2:]}p{abbrev.lower()}.csv"
    return Path(root).expanduser() / str(year) / horizon / name


def _download_hint(state: str, year: int, horizon: str) -> str:
    abbrev, _ = state_code(state)
    return (
        f"Get it from https://www2.census.gov/programs-surveys/acs/data/pums/{year}/{horizon}/"
        f"csv_p{abbrev.lower()}.zip (unzip the psam_p*.csv / ss*p*.csv inside into that "
        "folder), or with folktables: ACSDataSource(survey_year='"
        f"{year}', horizon='{horizon}', survey='person', root_dir=ROOT).get_data(states=["
        f"'{abbrev}'], download=True)."
    )


@functools.lru_cache(maxsize=8)
def read_pums(path: str, columns: tuple[str, ...]) -> Table:
    """Float columns (blank -> NaN) of a PUMS person CSV, cached per file and column set.

    A short row (or a file cut mid-row), NUL bytes, text that is not UTF-8, a cell that is not
    a number, non-finite or beyond ``MAX_ABS_VALUE`` in magnitude raises ``DataFileError`` (a
    ValueError) naming the file, line and column.
    """
    return read_csv_columns(path, columns, null="", strip=True, max_abs=MAX_ABS_VALUE)


def _check_age(option: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value <= 99:
        raise ValueError(f"{option} must be None or an integer in [0, 99], got {value!r}")
    return int(value)


def load_folktables_task(
    task: str,
    root: str | None = None,
    state: str | Sequence[str] = "AL",
    year: int = 2018,
    horizon: str = "1-Year",
    min_age: int | None = None,
    max_age: int | None = None,
    intercept: bool = False,
) -> Dataset:
    """folktables task ``task`` for ``state`` (or a list of states) from PUMS files in ``root``."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {tuple(TASKS)}, got {task!r}")
    spec = TASKS[task]
    if isinstance(year, bool) or not isinstance(year, numbers.Integral) or year < 2014:
        raise ValueError(f"year must be an integer >= 2014, got {year!r}")
    year = int(year)
    if horizon not in HORIZONS:
        raise ValueError(f"horizon must be one of {HORIZONS}, got {horizon!r}")
    states = [state] if isinstance(state, str) else list(state)
    if not states:
        raise ValueError("state must name at least one state")
    abbrevs = [state_code(s)[0] for s in states]
    min_age, max_age = _check_age("min_age", min_age), _check_age("max_age", max_age)
    if min_age is not None and max_age is not None and max_age < min_age:
        raise ValueError(f"max_age must be >= min_age ({min_age}), got {max_age!r}")
    intercept = check_bool("intercept", intercept)
    if root is None:
        root = os.environ.get(ENV_VAR)
        if not root:
            example = pums_path("ROOT", abbrevs[0], year, horizon)
            raise MissingDataFile(
                f"{task} needs ACS PUMS person files: pass dataset_options={{'root': ROOT}} or "
                f"set {ENV_VAR}; the file is read from {example}. "
                + _download_hint(abbrevs[0], year, horizon)
            )
    if not isinstance(root, (str, os.PathLike)):
        raise ValueError(f"root must be a folder path, got {root!r}")
    parts = []
    for abbrev in abbrevs:
        file = pums_path(root, abbrev, year, horizon)
        if not file.is_file():
            raise MissingDataFile(
                f"{task}: ACS PUMS person file not found: {file}. "
                + _download_hint(abbrev, year, horizon)
            )
        parts.append(read_pums(str(file.resolve()), spec.columns))
    table = {c: np.concatenate([p[c] for p in parts]) for c in spec.columns}
    keep = np.ones(len(table["AGEP"]), bool) if spec.keep is None else spec.keep(table)
    if min_age is not None:
        keep &= table["AGEP"] >= min_age
    if max_age is not None:
        keep &= table["AGEP"] <= max_age
    if keep.sum() < 2:
        raise ValueError(f"dataset {task!r}: fewer than 2 persons pass the task's filter")
    raw = np.column_stack([np.nan_to_num(table[c][keep], nan=0.0) for c in spec.features])
    X, names = design_matrix(raw, spec.features, intercept)
    y = spec.label(table[spec.target][keep])
    return Dataset(
        name=task,
        X=X,
        y=y.astype(np.int64),
        task="binary",
        feature_names=names,
        description=(
            f"folktables {spec.folktables_name} ({spec.what}) from ACS PUMS {year} {horizon} "
            f"person records of {', '.join(abbrevs)}; {len(spec.features)} standardised "
            "features."
        ),
        extra={"states": tuple(abbrevs), "year": year, "source": "ACS PUMS via folktables"},
    )


def _register(task: str) -> None:
    # the registry reads the options (root, state, ...) from the partial's signature
    loader = functools.partial(load_folktables_task, task)
    loader.__doc__ = f"folktables {TASKS[task].folktables_name} ({TASKS[task].what})."
    register_dataset(task, loader)


for _name in TASKS:
    _register(_name)


def load_acs_employment(**options) -> Dataset:
    """folktables ACSEmployment (see the module docstring for the options)."""
    return load_folktables_task("acs-employment", **options)
