"""Real census populations: the NIST ACS Data Excerpts (ACS PUMS person records, 2018 and 2019).

The data are the NIST Diverse Communities Data Excerpts (SDNist), derived from the U.S. Census
Bureau ACS PUMS: real person records from selected Public Use Microdata Areas (``national``: 20
PUMAs across the U.S., about 27k people a year; ``ma``: 5 PUMAs around Boston, about 7.5k;
``tx``: 6 PUMAs around Dallas-Fort Worth, about 9k). They ship gzipped in ``files/`` (see
``files/NOTICE.md`` for the source, commit, checksums and the NIST notice).

Two binary tasks are derived from them:

- ``acs-income`` (:func:`load_acs_income`): persons with ``AGEP >= min_age`` and a recorded
  income; ``y = 1`` iff total personal income ``PINCP > 50000`` (the folktables ACSIncome
  threshold).
- ``acs-work`` (:func:`load_acs_work`): persons with ``min_age <= AGEP <= max_age``; ``y = 1`` iff
  they worked in the last five years, i.e. an industry is recorded: ``INDP_CAT`` is not null and
  is not 18 ("UNEMPLOYED", which is ``INDP`` 9920, "unemployed, with no work experience in the
  last 5 years or earlier, or never worked").

Features: exactly these 16 demographic columns, in this order, categorical ones kept as their
integer codes (no one-hot encoding): AGEP, SEX, MSP, HISP, RAC1P, NOC, NPF, HOUSING_TYPE,
OWN_RENT, DENSITY, EDU, DVET, DREM, DPHY, DEYE, DEAR. Never used as features: PUMA (area id),
INDP and INDP_CAT (define the work label), PINCP, PINCP_DECILE and POVPIP (income: label leaks),
PWGTP and WGTP (sampling weights).

Nulls (the literal ``N`` in the CSVs), per feature column, following ``data_dictionary.json``:

- AGEP (age 0-99), SEX (1 male, 2 female), HISP (0-4), RAC1P (1-9), HOUSING_TYPE (1 housing unit,
  2 institutional, 3 non-institutional group quarters), OWN_RENT (0 group quarters, 1 own,
  2 rent), DENSITY (people per square mile of the PUMA), DEYE and DEAR (1 yes, 2 no): never
  null; a null there is an error.
- MSP (marital status 1-6): null = under 15 years old -> 0.
- NOC (number of own children): null = group quarters -> 0 (no own children in the household).
- NPF (persons in family, 2-20): null = group quarters or non-family household -> 0.
- EDU (educational attainment 1-12): null = under 3 years old -> 0 (below 1 "no schooling").
- DVET (veteran disability rating 1-6): null = no service-connected disability rating or never
  served -> 0.
- DREM, DPHY (cognitive / walking difficulty, 1 yes, 2 no): null = under 5 years old, question not
  asked -> 0 ("not asked").

After the rows are selected, each column is standardised to mean 0 and standard deviation 1 over
the kept rows (a constant column becomes all 0). ``intercept=True`` then appends a constant 1.0
column named ``intercept``.

Parsed tables are cached on disk (:func:`read_table`, cache kind ``tables`` of
:mod:`~choicemarket.envs.data.array_cache`): one ``.npz`` per packaged file, keyed by
blake2b-160 of the gzip file's bytes, the columns and reader options, the source of this module
and of ``datafile.py``, the numpy version and ``TABLE_FORMAT``, so that a new process skips the
CSV parse. ``CHOICEMARKET_CACHE_DIR=off`` parses every time; a broken file is re-parsed and
rewritten, with a warning.

``group_by`` (optional) fills ``Dataset.groups`` with one integer per person: ``"race"`` the
RAC1P code minus 1 (0 White alone, 1 Black alone, ..., 8 two or more races; names in
``extra["group_names"]``), ``"puma"`` the index of the person's PUMA (area) in sorted order of
the area codes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import numbers
import os
from importlib.resources import as_file, files
from pathlib import Path

import numpy as np

from . import array_cache, datafile
from .array_cache import ArrayCache
from .datafile import read_csv_columns
from .preprocess import check_bool, design_matrix
from .registry import Dataset, register_dataset

REGIONS: tuple[str, ...] = ("national", "ma", "tx")
YEARS: tuple[int, ...] = (2018, 2019)
FEATURES: tuple[str, ...] = (
    "AGEP",
    "SEX",
    "MSP",
    "HISP",
    "RAC1P",
    "NOC",
    "NPF",
    "HOUSING_TYPE",
    "OWN_RENT",
    "DENSITY",
    "EDU",
    "DVET",
    "DREM",
    "DPHY",
    "DEYE",
    "DEAR",
)
# Code that replaces a null in each feature column; None: the column must never be null.
NULL_CODES: dict[str, float | None] = {
    "AGEP": None,
    "SEX": None,
    "MSP": 0.0,
    "HISP": None,
    "RAC1P": None,
    "NOC": 0.0,
    "NPF": 0.0,
    "HOUSING_TYPE": None,
    "OWN_RENT": None,
    "DENSITY": None,
    "EDU": 0.0,
    "DVET": 0.0,
    "DREM": 0.0,
    "DPHY": 0.0,
    "DEYE": None,
    "DEAR": None,
}
# Largest magnitude accepted in a PUMS cell: codes and dollar amounts have at most 7 digits, so
# anything beyond is a corrupted file (and would overflow the standardisation).
MAX_ABS_VALUE = 1e9
INCOME_THRESHOLD = 50000.0
INDP_CAT_UNEMPLOYED = 18.0  # INDP 9920: no work experience in the last 5 years, or never worked
MAX_AGE = 99
SOURCE = "NIST ACS Data Excerpts"
CITATION = (
    "NIST Diverse Communities Data Excerpts (SDNist), derived from the U.S. Census Bureau ACS PUMS."
)
GROUP_BY: tuple[str, ...] = ("race", "puma")
# RAC1P codes 1..9 (group_by="race" uses code - 1)
RACE_NAMES: tuple[str, ...] = (
    "White",
    "Black",
    "American Indian",
    "Alaska Native",
    "American Indian and/or Alaska Native",
    "Asian",
    "Native Hawaiian/Pacific Islander",
    "Some other race",
    "Two or more races",
)
_COLUMNS: tuple[str, ...] = (*FEATURES, "PINCP", "INDP_CAT", "PUMA")
_DATA_PACKAGE = "choicemarket.envs.data"
# options of read_csv_columns for the excerpts (part of the table cache key)
_READER: dict = {"null": "N", "strings": ("PUMA",), "max_abs": MAX_ABS_VALUE}
TABLE_FORMAT = 1  # bump when the cached table's layout changes
_TABLES = ArrayCache("tables", "table", compress=False)


def data_file_name(region: str, year: int) -> str:
    """Name of the packaged gzip CSV for ``region`` and ``year`` (e.g. ``acs_ma2019.csv.gz``)."""
    return f"acs_{region}{year}.csv.gz"


@functools.lru_cache(maxsize=len(REGIONS) * len(YEARS))
def read_table(region: str, year: int) -> dict[str, np.ndarray]:
    """The packaged CSV of ``region`` and ``year`` parsed by :func:`read_table_file`, cached."""
    _check_region_year(region, year)
    with as_file(files(_DATA_PACKAGE) / "files" / data_file_name(region, year)) as path:
        return read_table_cached(path)


def read_table_cached(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """:func:`read_table_file` of ``path`` through the on-disk table cache (module docstring):
    the same read-only columns, dtypes and order, parsed once per file, reader and code."""
    if _TABLES.folder() is None:
        return read_table_file(path)
    key = table_key(path)
    table = _TABLES.load(key, _COLUMNS)
    if table is None:
        table = read_table_file(path)
        _TABLES.store(key, table, _COLUMNS)
        return table
    for values in table.values():
        values.flags.writeable = False
    return table


def table_key(path: str | os.PathLike) -> str:
    """Key of a parsed table: blake2b-160 of the file's bytes, columns, reader and code."""
    payload = json.dumps(
        {
            "format": TABLE_FORMAT,
            "file": hashlib.blake2b(Path(path).read_bytes(), digest_size=20).hexdigest(),
            "columns": _COLUMNS,
            "reader": _READER,
            "code": _table_code_version(),
        },
        sort_keys=True,
        default=repr,
    )
    return hashlib.blake2b(payload.encode(), digest_size=20).hexdigest()


def _table_code_version() -> str:
    """numpy's version and a hash of the parsing code (this module and ``datafile.py``)."""
    return array_cache.code_version((datafile.__file__, __file__), ("numpy",))


def read_table_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read-only float columns (null ``N`` -> NaN; ``PUMA`` as strings) of an ACS excerpt CSV.

    Only the 16 feature columns, the label sources ``PINCP`` and ``INDP_CAT`` and the area
    code ``PUMA`` (for ``group_by="puma"``) are kept. A short row, a cell that is not a number
    or ``N``, a non-finite cell or one beyond ``MAX_ABS_VALUE`` in magnitude raises
    ``DataFileError`` (a ValueError) naming the file, line and column.
    """
    return read_csv_columns(path, _COLUMNS, **_READER)


def _check_region_year(region: str, year: int) -> None:
    if not isinstance(region, str) or region not in REGIONS:
        raise ValueError(f"region must be one of {REGIONS}, got {region!r}")
    if isinstance(year, bool) or not isinstance(year, numbers.Integral) or int(year) not in YEARS:
        raise ValueError(f"year must be one of {YEARS}, got {year!r}")


def _check_group_by(group_by: str | None) -> None:
    if group_by is not None and group_by not in GROUP_BY:
        raise ValueError(f"group_by must be None or one of {GROUP_BY}, got {group_by!r}")


def _check_age(option: str, value: int) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or not 0 <= value <= MAX_AGE
    ):
        raise ValueError(f"{option} must be an integer in [0, {MAX_AGE}], got {value!r}")
    return int(value)


def _features(table: dict[str, np.ndarray], rows: np.ndarray, region: str, year: int) -> np.ndarray:
    """The 16 feature columns of ``rows`` with nulls coded as documented in the module."""
    X = np.empty((int(rows.sum()), len(FEATURES)), dtype=np.float64)
    for j, name in enumerate(FEATURES):
        values = table[name][rows]
        null = np.isnan(values)
        code = NULL_CODES[name]
        if code is None:
            if null.any():
                raise RuntimeError(f"ACS {region} {year}: unexpected null in column {name}")
        else:
            values = np.where(null, code, values)
        X[:, j] = values
    return X


def _build(
    name: str,
    table: dict[str, np.ndarray],
    rows: np.ndarray,
    y: np.ndarray,
    region: str,
    year: int,
    intercept: bool,
    what: str,
    group_by: str | None = None,
) -> Dataset:
    if rows.sum() < 2:
        raise ValueError(f"dataset {name!r}: fewer than 2 persons match the age options")
    X, names = design_matrix(_features(table, rows, region, year), FEATURES, intercept)
    return Dataset(
        name=name,
        X=X,
        y=y[rows].astype(np.int64),
        task="binary",
        groups=_groups(table, rows, group_by),
        feature_names=names,
        description=(
            f"{what} ACS PUMS persons, region {region}, year {year}; 16 standardised demographic "
            f"features. Source: {CITATION}"
        ),
        extra={"region": region, "year": int(year), "source": SOURCE, **_group_extra(group_by)},
    )


def _groups(table: dict[str, np.ndarray], rows: np.ndarray, group_by: str | None):
    """One integer group per kept person (see the module docstring), or None."""
    if group_by is None:
        return None
    if group_by == "race":
        return table["RAC1P"][rows].astype(np.int64) - 1
    if group_by == "puma":
        pumas = table["PUMA"][rows]
        if (pumas == "N").any():
            raise RuntimeError("ACS: unexpected null in column PUMA")
        return np.unique(pumas, return_inverse=True)[1].astype(np.int64)
    raise ValueError(f"group_by must be None or one of {GROUP_BY}, got {group_by!r}")


def _group_extra(group_by: str | None) -> dict:
    return {"group_names": RACE_NAMES} if group_by == "race" else {}


def load_acs_income(
    region: str = "national",
    year: int = 2018,
    min_age: int = 16,
    intercept: bool = False,
    group_by: str | None = None,
) -> Dataset:
    """ACS income task: ``y = PINCP > 50000`` for persons aged ``>= min_age`` with an income."""
    _check_region_year(region, year)
    _check_group_by(group_by)
    min_age = _check_age("min_age", min_age)
    intercept = check_bool("intercept", intercept)
    table = read_table(region, int(year))
    rows = (table["AGEP"] >= min_age) & ~np.isnan(table["PINCP"])
    y = np.nan_to_num(table["PINCP"], nan=0.0) > INCOME_THRESHOLD
    what = f"Income above $50,000 (PINCP > 50000) for persons aged >= {min_age} with an income;"
    return _build("acs-income", table, rows, y, region, int(year), intercept, what, group_by)


def load_acs_work(
    region: str = "national",
    year: int = 2018,
    min_age: int = 16,
    max_age: int = 90,
    intercept: bool = False,
    group_by: str | None = None,
) -> Dataset:
    """ACS work task: ``y = 1`` iff an industry is recorded (worked in the last five years)."""
    _check_region_year(region, year)
    _check_group_by(group_by)
    min_age = _check_age("min_age", min_age)
    max_age = _check_age("max_age", max_age)
    if max_age < min_age:
        raise ValueError(f"max_age must be >= min_age ({min_age}), got {max_age!r}")
    intercept = check_bool("intercept", intercept)
    table = read_table(region, int(year))
    age = table["AGEP"]
    rows = (age >= min_age) & (age <= max_age)
    indp_cat = table["INDP_CAT"]
    y = ~np.isnan(indp_cat) & (indp_cat != INDP_CAT_UNEMPLOYED)
    what = (
        f"Worked in the last five years (industry INDP_CAT recorded) for persons aged "
        f"{min_age}-{max_age};"
    )
    return _build("acs-work", table, rows, y, region, int(year), intercept, what, group_by)


register_dataset("acs-income", load_acs_income)
register_dataset("acs-work", load_acs_work)
