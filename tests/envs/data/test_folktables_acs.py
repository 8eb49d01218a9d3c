"""folktables tasks read from ACS PUMS person files in the Census layout (written here)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from choicemarket.envs.data import load_dataset
from choicemarket.envs.data.folktables_acs import ENV_VAR, TASKS, pums_path, state_code
from choicemarket.envs.data.preprocess import standardise_columns

# a realistic subset of the 2018 person-file columns, in the Census order (strings included)
HEADER = (
    "RT,SERIALNO,DIVISION,SPORDER,PUMA,REGION,ST,ADJINC,PWGTP,AGEP,CIT,CITWP,COW,DDRS,DEAR,"
    "DEYE,DOUT,DPHY,DRAT,DRATX,DREM,ENG,FER,GCL,GCM,GCR,HINS1,HINS2,INTP,JWMNP,JWRIP,JWTR,"
    "LANX,MAR,MIG,MIL,NWAB,RELP,RETP,SCH,SCHG,SCHL,SEMP,SEX,SSP,WAGP,WKHP,WKL,WKW,WRK,ANC,"
    "ANC1P,DIS,ESP,ESR,HICOV,HISP,INDP,MSP,NAICSP,NATIVITY,OCCP,PERNP,PINCP,POBP,POVPIP,"
    "POWPUMA,POWSP,PRIVCOV,PUBCOV,RAC1P,SOCP,PWGTP1,PWGTP2"
).split(",")


def write_pums(path, n: int = 300, seed: int = 0) -> None:
    """A person file shaped like psam_pXX.csv: blanks where the Census leaves N/A."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for i in range(n):
            age = int(rng.integers(0, 96))
            gq = rng.random() < 0.05
            works = age >= 16 and rng.random() < 0.6
            row = dict.fromkeys(HEADER, "")

            def r(lo, hi):
                return str(int(rng.integers(lo, hi + 1)))

            row.update(
                RT="P",
                SERIALNO=f"2018{'GQ' if gq else 'HU'}{i // 3:07d}",
                DIVISION="6",
                SPORDER=str(i % 3 + 1),
                PUMA=f"{int(rng.integers(100, 2800)):05d}",
                REGION="3",
                ST="01",
                ADJINC="1013097",
                PWGTP=str(int(rng.integers(0, 300))),  # some 0 weights, as in GQ records
                AGEP=str(age),
                CIT=r(1, 5),
                DEAR=r(1, 2),
                DEYE=r(1, 2),
                HINS1=r(1, 2),
                HINS2=r(1, 2),
                MIG="" if age < 1 else r(1, 3),
                NATIVITY=r(1, 2),
                RELP=r(16, 17) if gq else r(0, 15),
                SEX=r(1, 2),
                ANC=r(1, 4),
                ANC1P=r(1, 999),
                DIS=r(1, 2),
                HICOV=r(1, 2),
                HISP=r(1, 24),
                NAICSP="4MS" if works else "",
                RAC1P=r(1, 9),
                POBP=r(1, 554),
                PRIVCOV=r(1, 2),
                PUBCOV=r(1, 2),
                PWGTP1=r(0, 300),
                PWGTP2=r(0, 300),
            )
            if age >= 3:
                row["SCHL"] = r(1, 24)
                row["SCH"] = r(1, 3)
            if age >= 5:
                row.update(DREM=r(1, 2), DPHY=r(1, 2), ENG=r(1, 4), LANX=r(1, 2))
            if age >= 15:
                row.update(MAR=r(1, 5), MSP=r(1, 6), INTP=r(0, 20000))
                row["PINCP"] = str(int(rng.integers(-5000, 150000)))
                row["PERNP"] = row["PINCP"]
                row["POVPIP"] = r(0, 501)
            if age >= 17:
                row["MIL"] = r(1, 4)
            if age < 18:
                row["ESP"] = r(1, 8)
            if age >= 16:
                row["ESR"] = "1" if works else r(3, 6)
                row["WKL"] = r(1, 3)
            if 15 <= age <= 50 and row["SEX"] == "2":
                row["FER"] = r(1, 2)
            if age >= 30:
                row["GCL"] = r(1, 2)
            if works:
                row.update(
                    COW=r(1, 8),
                    WKHP=r(1, 99),
                    WKW=r(1, 6),
                    OCCP=f"{int(rng.integers(10, 9830)):04d}",
                    INDP=r(170, 9870),
                    SOCP="119XXX",  # SOC codes in PUMS files do carry X placeholders
                    WAGP=r(0, 200000),
                    JWTR=r(1, 12),
                    POWSP="001",
                    POWPUMA=f"{int(rng.integers(100, 2800)):05d}",
                )
                if row["JWTR"] != "11":  # worked at home: no commute time
                    row["JWMNP"] = r(1, 150)
            w.writerow([row[c] for c in HEADER])


@pytest.fixture(scope="module")
def pums_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("pums")
    write_pums(pums_path(root, "AL", 2018), n=300, seed=0)
    write_pums(pums_path(root, "MA", 2018), n=120, seed=1)
    return root


def test_path_layout_is_folktables():
    assert pums_path("r", "AL", 2018).as_posix() == "r/2018/1-Year/psam_p01.csv"
    assert pums_path("r", "01", 2019, "5-Year").as_posix() == "r/2019/5-Year/psam_p01.csv"
    assert pums_path("r", "tx", 2016).as_posix() == "r/2016/1-Year/ss16ptx.csv"
    assert state_code("pr") == ("PR", "72")


def test_acs_employment_definition(pums_root):
    ds = load_dataset("acs-employment", root=str(pums_root), state="AL", year=2018)
    assert ds.task == "binary" and ds.n_users == 300  # no filter: every person
    assert ds.feature_names == TASKS["acs-employment"].features and ds.n_features == 16
    with open(pums_path(pums_root, "AL", 2018)) as f:
        rows = list(csv.DictReader(f))
    esr = np.array([r["ESR"] == "1" for r in rows])
    np.testing.assert_array_equal(ds.y, esr)
    raw = np.array(
        [[float(r[c]) if r[c] else 0.0 for c in ds.feature_names] for r in rows]
    )  # blank (N/A) -> 0
    np.testing.assert_allclose(ds.X, standardise_columns(raw), atol=1e-12)
    for j in range(16):
        assert abs(ds.X[:, j].mean()) < 1e-9 and abs(ds.X[:, j].std() - 1) < 1e-9


@pytest.mark.parametrize(
    ("task", "problem"),
    [
        ("acs-employment", "ACSEmployment"),
        ("acs-income-folk", "ACSIncome"),
        ("acs-public-coverage", "ACSPublicCoverage"),
        ("acs-mobility", "ACSMobility"),
        ("acs-travel-time", "ACSTravelTime"),
    ],
)
def test_same_as_folktables(pums_root, task, problem):
    folktables = pytest.importorskip("folktables")
    source = folktables.ACSDataSource(
        survey_year="2018", horizon="1-Year", survey="person", root_dir=str(pums_root)
    )
    frame = source.get_data(states=["AL"], download=False)
    features, label, _ = getattr(folktables, problem).df_to_numpy(frame)
    ds = load_dataset(task, root=str(pums_root), state="AL")
    assert ds.n_users == len(label) > 10
    np.testing.assert_array_equal(ds.y, label.astype(int))
    np.testing.assert_allclose(ds.X, standardise_columns(features.astype(float)), atol=1e-12)


def test_several_states_age_window_and_intercept(pums_root):
    both = load_dataset("acs-employment", root=str(pums_root), state=["AL", "MA"])
    assert both.n_users == 420 and both.extra["states"] == ("AL", "MA")
    adults = load_dataset(
        "acs-employment", root=str(pums_root), min_age=16, max_age=90, intercept=True
    )
    with open(pums_path(pums_root, "AL", 2018)) as f:
        ages = np.array([int(r["AGEP"]) for r in csv.DictReader(f)])
    assert adults.n_users == int(((ages >= 16) & (ages <= 90)).sum())
    assert adults.feature_names[-1] == "intercept" and np.all(adults.X[:, -1] == 1)


def test_environment_variable_root(pums_root, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(pums_root))
    assert load_dataset("acs-employment").n_users == 300


def test_missing_file_names_the_exact_path_and_the_source(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("acs-employment", root=str(tmp_path), state="AL", year=2018)
    message = str(info.value)
    assert str(tmp_path / "2018" / "1-Year" / "psam_p01.csv") in message
    assert "https://www2.census.gov/programs-surveys/acs/data/pums/2018/1-Year/csv_pal.zip" in (
        message
    )
    assert "download=True" in message
    with pytest.raises(ValueError, match=ENV_VAR):  # MissingDataFile is both
        load_dataset("acs-employment")


def test_command_line_reports_a_missing_file(tmp_path, monkeypatch, capsys):
    from choicemarket.experiments.cli import main

    monkeypatch.delenv(ENV_VAR, raising=False)
    rc = main(["run", "--dataset", "acs-employment", "--steps", "2", "--no-progress"])
    assert rc == 2
    assert "psam_p01.csv" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"state": "ZZ"}, "state must be"),
        ({"state": []}, "state must name"),
        ({"year": 2010}, "year must be"),
        ({"horizon": "3-Year"}, "horizon must be"),
        ({"min_age": -1}, "min_age"),
        ({"min_age": 40, "max_age": 30}, "max_age"),
        ({"intercept": 1}, "intercept"),
        ({"root": 5}, "root must be"),
        ({"colour": "red"}, "not accepted"),
    ],
)
def test_options_are_validated(pums_root, options, match):
    opts = {"root": str(pums_root), **options}
    with pytest.raises(ValueError, match=match):
        load_dataset("acs-employment", **opts)


def test_file_without_a_needed_column(tmp_path):
    path = pums_path(tmp_path, "AL", 2018)
    path.parent.mkdir(parents=True)
    path.write_text("RT,SERIALNO,AGEP\nP,2018HU0000001,30\nP,2018HU0000002,40\n")
    with pytest.raises(ValueError, match="lacks the column"):
        load_dataset("acs-employment", root=str(tmp_path))
