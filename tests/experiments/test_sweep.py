"""Batched engine, experiment configs, resumable sweeps, backends, figures and reports."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from choicemarket import simulate
from choicemarket.baselines import MSGD, MSGDP
from choicemarket.envs import MarketConfig, MarketCore
from choicemarket.envs.data import dataset_names
from choicemarket.envs.market_v0 import raw_env
from choicemarket.experiments.experiment import (
    build_policies,
    config_names,
    load_experiment,
    parse_experiment,
)
from choicemarket.experiments.runner import run_markets
from choicemarket.experiments.sweep import load_runs, plan_chunks, results_dir, run_sweep

# datasets that shipped configs name and that other parts of the library provide
DATASETS_ADDED_ELSEWHERE: set[str] = set()


def _rows_equal(a: list[dict], b: list[dict]) -> bool:
    """Row lists equal exactly, NaN equal to NaN."""
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b):
        if ra.keys() != rb.keys():
            return False
        for k in ra:
            x, y = ra[k], rb[k]
            both_nan = (
                isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)
            )
            if not (x == y or both_nan):
                return False
    return True


def _policies(spec, p, probers, scenario="preference_aware", every=None):
    return [
        MSGDP(spec, k, p=p, scenario=scenario, probe_every=every) if k in probers else MSGD(spec)
        for k in range(spec.n_learners)
    ]


@pytest.mark.parametrize(
    "market, probers, scenario, every",
    [
        # random start, routing noise, online probing: every random stream in play
        (
            dict(
                dataset="acs-income", max_steps=150, eval_every=50, probe_noise=0.3, init="random"
            ),
            (2,),
            "preference_aware",
            60,
        ),
        # two probers in a market (the float64 mixing path), median of all peers
        (dict(dataset="acs-income", max_steps=100, eval_every=50), (1, 3), "majority_good", None),
        # regression, global reward and probe cost, inverse-sqrt-free squared loss
        (
            dict(
                dataset="two-slopes",
                n_learners=2,
                preferences="category",
                max_steps=120,
                eval_every=40,
                reward="global",
                probe_cost=0.01,
            ),
            (0,),
            "preference_aware",
            None,
        ),
        # Su & Dean's uniform rule draws integers per market
        (
            dict(
                dataset="diabetes",
                n_learners=3,
                max_steps=60,
                eval_every=30,
                choice_rule="loss_or_uniform",
                uniform_weight=0.2,
            ),
            (1,),
            "market_leader",
            None,
        ),
    ],
)
def test_batched_markets_equal_each_market_alone(market, probers, scenario, every):
    """4 markets with different seeds and p in one batch reproduce, row for row, the market
    simulated alone through the PettingZoo environment."""
    spec = raw_env(**market).market_spec
    seeds, ps = [3, 5, 8, 11], [0.0, 0.2, 0.8, 1.5]
    runs = run_markets(market, [_policies(spec, p, probers, scenario, every) for p in ps], seeds)
    for run, seed, p in zip(runs, seeds, ps):
        alone = simulate(
            market,
            policies=lambda sp, k, p=p: _policies(sp, p, probers, scenario, every)[k],
            seeds=[seed],
        )
        assert _rows_equal(alone.rows, run.rows), (seed, p)


def test_markets_with_different_probers_and_scenarios_share_a_batch():
    market = dict(dataset="acs-income", max_steps=60, eval_every=30)
    spec = raw_env(**market).market_spec
    setups = [
        ((1, 3), 0.5, "majority_good"),
        ((2,), 0.8, "preference_aware"),
        ((), 0.0, "preference_aware"),
        ((0, 4), 1.0, "market_leader"),
    ]
    seeds = [1, 2, 3, 4]
    runs = run_markets(market, [_policies(spec, p, who, sc) for who, p, sc in setups], seeds)
    for run, seed, (who, p, sc) in zip(runs, seeds, setups):
        alone = simulate(
            market,
            policies=lambda sp, k, who=who, p=p, sc=sc: _policies(sp, p, who, sc)[k],
            seeds=[seed],
        )
        assert _rows_equal(alone.rows, run.rows), (who, p, sc)


def test_batched_theta_equals_single_market_step_for_step():
    """theta of each batched market equals the lone market's after every step."""
    cfg = MarketConfig(dataset="acs-income", init="random", max_steps=30, probe_noise=0.2)
    seeds = [4, 9, 1]
    batch = MarketCore(cfg, n_markets=3)
    batch.reset(seeds=seeds)
    alone = [MarketCore(cfg) for _ in seeds]
    for core, seed in zip(alone, seeds):
        core.reset(seed=seed)
    layout = batch.spec.actions
    rng = np.random.default_rng(0)
    for t in range(30):
        actions = np.stack(
            [
                [
                    layout.build(
                        0.01 * rng.normal(size=16), probe=t % 7 == 0, route_by_preference=True
                    )
                    for _ in range(5)
                ]
                for _ in seeds
            ]
        ).astype(np.float64)
        s = batch.step(actions)
        for m, core in enumerate(alone):
            one = core.step(actions[m : m + 1])
            np.testing.assert_array_equal(s.theta[m], one.theta[0])
            np.testing.assert_array_equal(s.choice[m], one.choice[0])
            np.testing.assert_array_equal(s.probe_T[m], one.probe_T[0])


def test_engine_rejects_policies_it_cannot_batch():
    market = dict(dataset="two-slopes", n_learners=2, preferences="category", max_steps=5)
    spec = raw_env(**market).market_spec
    shared = MSGD(spec)
    with pytest.raises(ValueError, match="distinct objects"):
        run_markets(market, [[shared, MSGD(spec)], [shared, MSGD(spec)]], [0, 1])
    with pytest.raises(ValueError, match="one policy per learner"):
        run_markets(market, [[MSGD(spec)]], [0])
    with pytest.raises(ValueError, match="act\\(observation\\)"):
        run_markets(market, [[object(), MSGD(spec)]], [0])


def test_one_market_with_its_own_seed_draws_as_the_shared_generator():
    cfg = MarketConfig(dataset="breast-cancer", n_learners=3, init="random")
    a, b = MarketCore(cfg), MarketCore(cfg)
    a.reset(seed=12)
    b.reset(seeds=[12])
    np.testing.assert_array_equal(a.state.theta, b.state.theta)
    np.testing.assert_array_equal(a.state.batch, b.state.batch)
    with pytest.raises(ValueError, match="seeds must be 1 integers"):
        a.reset(seeds=[1, 2])


TINY = {
    "name": "tiny",
    "market": dict(
        dataset="two-slopes",
        n_learners=2,
        preferences="category",
        l2=0.0,
        max_steps=60,
        eval_every=20,
    ),
    "policy": {"probers": [0], "eta": 0.05},
    "sweep": {"seeds": 3, "p": [0.0, 0.5], "preference_weight": [0.5, 0.9]},
}


def test_sweep_expansion_and_overrides():
    exp = parse_experiment(TINY)
    runs = exp.runs()
    assert len(runs) == 2 * 2 * 3
    assert [r.seed for r in runs[:3]] == [0, 1, 2]  # seeds innermost
    assert runs[0].point == {"p": 0.0, "preference_weight": 0.5}
    assert runs[-1].policy["p"] == 0.5 and runs[-1].market["preference_weight"] == 0.9
    assert len({r.run_id for r in runs}) == len(runs)
    fixed = parse_experiment(TINY, overrides=[("p", 0.3), ("seeds", [7]), ("market.l2", 0.1)])
    assert fixed.swept == ["preference_weight"]
    assert {r.policy["p"] for r in fixed.runs()} == {0.3}
    assert {r.seed for r in fixed.runs()} == {7} and fixed.market["l2"] == 0.1
    swept = parse_experiment(TINY, overrides=[("sweep.probe_noise", [0.0, 0.1])])
    assert len(swept.runs()) == 2 * 2 * 2 * 3


@pytest.mark.parametrize(
    "change, names",
    [
        ({"markets": {}}, ["'markets'", "'market'", "'sweep'"]),
        ({"market": {**TINY["market"], "tua": 0.3}}, ["'tua'", "'preference_weight'"]),
        ({"policy": {"probers": [0], "pp": 1}}, ["'pp'", "'probe_every'"]),
        ({"sweep": {"seeds": 2, "kapa": [0.1]}}, ["'kapa'", "'probe_noise'", "'p'"]),
        ({"sweep": {"seeds": 2, "p": 0.3}}, ["sweep.p", "list"]),
        ({"sweep": {"seeds": 0}}, ["sweep.seeds"]),
        ({"sweep": {"seeds": 2, "preference_weight": [0.5, 2.0]}}, ["preference_weight", "[0, 1]"]),
        ({"policy": {"probers": [5]}}, ["policy.probers", "0..1"]),
        ({"policy": {"probers": [0], "scenario": "leader"}}, ["policy.scenario", "market_leader"]),
    ],
)
def test_config_errors_name_the_key_and_the_allowed_values(change, names):
    with pytest.raises(ValueError) as info:
        parse_experiment({**TINY, **change})
    for name in names:
        assert name in str(info.value)


def test_set_with_an_unknown_key_names_the_allowed_keys():
    with pytest.raises(ValueError, match="unknown key 'tau' in --set.*preference_weight"):
        parse_experiment(TINY, overrides=[("tau", 0.3)])
    with pytest.raises(ValueError, match="'market'"):
        parse_experiment(TINY, overrides=[("markt.l2", 0.3)])


def test_every_shipped_config_is_valid():
    names = config_names()
    assert {"expt1-census", "expt2-census", "expt3-census", "expt4-census", "expt5-census"} <= set(
        names
    )
    known = set(dataset_names()) | DATASETS_ADDED_ELSEWHERE
    for name in names:
        exp = load_experiment(name)
        assert exp.market["dataset"] in known, name
        assert exp.runs()
        real = load_experiment(name, real=True)
        assert real.market["dataset"] in known, name
        assert exp.figure.startswith("Figure"), name


def _files(folder):
    return {p.name: json.loads(p.read_text()) for p in sorted((folder / "runs").glob("*.json"))}


def test_interrupted_sweep_resumes_without_redoing_finished_runs(tmp_path):
    exp = parse_experiment(TINY)
    full = run_sweep(exp, tmp_path / "full", progress=False, max_batch=4)
    # two market settings (preference_weight) of 6 runs each, in chunks of at most 4 markets
    assert len(full["computed"]) == 12
    assert [len(c) for c in plan_chunks(exp.runs(), 1, 4)] == [3, 3, 3, 3]

    class Crash(Exception):
        pass

    done = []

    def crash_after_first_chunk(ids):
        done.extend(ids)
        raise Crash

    with pytest.raises(Crash):
        run_sweep(
            exp, tmp_path / "cut", progress=False, max_batch=4, on_chunk=crash_after_first_chunk
        )
    assert len(_files(tmp_path / "cut")) == len(done) == 3
    assert not list((tmp_path / "cut" / "runs").glob(".*tmp"))  # atomic: no partial files
    # a half-written file (e.g. from a copy interrupted elsewhere) does not count as finished
    broken = tmp_path / "cut" / "runs" / f"{exp.runs()[-1].run_id}.json"
    broken.write_text('{"rows": [')
    again = run_sweep(exp, tmp_path / "cut", progress=False, max_batch=4)
    assert set(again["skipped"]) == set(done)
    assert set(again["computed"]) == {r.run_id for r in exp.runs()} - set(done)
    assert _files(tmp_path / "cut") == _files(tmp_path / "full")
    rerun = run_sweep(exp, tmp_path / "cut", progress=False)
    assert rerun["computed"] == [] and len(rerun["skipped"]) == 12


def test_parameter_snapshots_are_strided_and_optional(tmp_path):
    exp = parse_experiment({**TINY, "sweep": {"seeds": 1}, "output": {"snapshot_every": 20}})
    run_sweep(exp, tmp_path, progress=False)
    (data,) = _files(tmp_path).values()
    assert sorted(data["snapshots"], key=int) == ["0", "20", "40", "60"]
    assert np.asarray(data["snapshots"]["60"]).shape == (2, 1, 1)
    assert sorted({r["step"] for r in data["rows"]}) == [0, 20, 40, 60]  # eval points only
    plain = parse_experiment({**TINY, "sweep": {"seeds": 1}})
    run_sweep(plain, tmp_path / "plain", progress=False)
    assert "snapshots" not in next(iter(_files(tmp_path / "plain").values()))


def test_changed_settings_are_recomputed_in_their_own_folder(tmp_path):
    exp = parse_experiment(TINY)
    run_sweep(exp, results_dir(exp, tmp_path), progress=False)
    changed = parse_experiment(TINY, overrides=[("eta", 0.02)])
    assert results_dir(changed, tmp_path) != results_dir(exp, tmp_path)
    assert results_dir(changed, tmp_path).parent == tmp_path / "tiny"
    assert len(run_sweep(changed, results_dir(changed, tmp_path), progress=False)["computed"]) == 12
    retitled = parse_experiment({**TINY, "title": "another title"})  # not a setting
    assert results_dir(retitled, tmp_path) == results_dir(exp, tmp_path)


def test_process_pool_gives_the_serial_results(tmp_path):
    exp = parse_experiment(TINY)
    run_sweep(exp, tmp_path / "serial", progress=False, workers=1)
    run_sweep(exp, tmp_path / "pool", progress=False, workers=2)
    assert _files(tmp_path / "pool") == _files(tmp_path / "serial")


def test_ray_backend_local(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    # Ray puts the driver's working directory on its workers' path; in a source checkout that
    # directory's choicemarket/ folder would shadow the installed package
    monkeypatch.chdir(tmp_path)
    small = {**TINY, "sweep": {"seeds": 2, "p": [0.0, 0.5]}}
    exp = parse_experiment(small)
    run_sweep(exp, tmp_path / "serial", progress=False)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        res = run_sweep(exp, tmp_path / "ray", progress=False, backend="ray", max_batch=2)
    finally:
        ray.shutdown()
    assert len(res["computed"]) == 4
    assert _files(tmp_path / "ray") == _files(tmp_path / "serial")


def test_plot_and_report(tmp_path):
    from choicemarket.experiments.figures import plot_results
    from choicemarket.experiments.report import write_report

    exp = parse_experiment({**TINY, "sweep": {"seeds": 2, "p": [0.0, 0.5, 1.0]}})
    run_sweep(exp, tmp_path / "res", progress=False)
    meta, runs = load_runs(tmp_path / "res")
    assert len(runs) == 6 and meta["name"] == "tiny"
    paths = plot_results(tmp_path / "res", tmp_path / "figs")
    assert [p.name for p in paths] == ["tiny_final.png", "tiny_trajectories.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
    doc = write_report([tmp_path / "res"], tmp_path / "doc" / "results.md").read_text()
    assert "| p | L0 (probes) | L1 |" in doc and "Prober learner 0: gap" in doc
    assert (tmp_path / "doc" / "tiny_final.png").exists()


def test_cli_runs_a_config_file_and_resumes(tmp_path, capsys):
    import yaml

    from choicemarket.experiments.cli import main

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "sweep": {"seeds": 2, "p": [0.0, 1.0]}}))
    cmd = [sys.executable, "-m", "choicemarket", "run", "tiny.yaml", "--out", "res"]
    first = subprocess.run([*cmd, "--workers", "1"], cwd=tmp_path, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "4 runs computed, 0 already finished" in first.stdout
    out = str(tmp_path / "res")
    assert main(["run", str(config), "--out", out, "--no-progress"]) == 0
    assert "0 runs computed, 4 already finished" in capsys.readouterr().out
    assert main(["run", str(config), "--out", out, "--set", "market.tua=0.1"]) == 2
    err = capsys.readouterr().err
    assert "'tua'" in err and "preference_weight" in err
    (folder,) = (tmp_path / "res" / "tiny").iterdir()  # res/NAME/SETTINGS
    assert main(["plot", out]) == 0 and (folder / "tiny_final.png").exists()


def test_resolved_probers_are_cached():
    from choicemarket.experiments import sweep

    exp = parse_experiment({**TINY, "policy": {"probers": "worst", "eta": 0.05}})
    sweep._PROBERS.clear()
    probing = [r for r in exp.runs() if r.policy["p"] > 0]
    assert probing and all(len(sweep._probers_of(r)) == 1 for r in probing)
    assert len(sweep._PROBERS) == 2  # resolved once per market setting (TINY has two)
    assert sweep._probers_of(probing[0]) == sweep.resolve_probers(
        probing[0].market, probing[0].policy
    )


@pytest.mark.parametrize(
    "extension",
    [
        {"choice_rule": "logit", "temperature": 0.2},
        {"max_learners": 3, "entries": ((20, "clone", 0),), "exit_share": 0.05},
    ],
    ids=["logit", "entry"],
)
def test_sweep_runs_extended_markets_batched(tmp_path, extension):
    """Every market variant runs batched in a sweep, equal to ``simulate``, snapshots too."""
    market = {**TINY["market"], **extension}
    exp = parse_experiment({**TINY, "market": market, "sweep": {"seeds": 2, "p": [0.0, 0.5]}})
    run_sweep(exp, tmp_path, progress=False, workers=1)
    _, runs = load_runs(tmp_path)
    assert len(runs) == 4
    for run in runs:
        cfg = MarketConfig.from_kwargs(**run["market"])
        spec = MarketCore(cfg).spec
        pols = build_policies(spec, run["policy"], run["probers"])
        h = simulate(
            cfg.to_dict(), policies=lambda spec, k, pols=pols: pols[k], seeds=[run["seed"]]
        )
        assert _rows_equal(run["rows"], [dict(r) for r in h.rows])
    run_sweep(
        parse_experiment({**TINY, "market": market, "output": {"snapshot_every": 10}}),
        tmp_path / "snap",
        progress=False,
        workers=1,
    )
    _, runs = load_runs(tmp_path / "snap")
    assert runs and all(sorted(map(int, r["snapshots"])) == list(range(0, 61, 10)) for r in runs)


def test_worker_imports_leave_out_heavy_libraries(tmp_path):
    """A sweep worker (and the parent that plans the sweep) imports the runner and the sweep
    without scipy, scikit-learn, matplotlib, pandas or torch: each would add a fraction of a
    second to every worker's start."""
    code = (
        "import sys\n"
        "import choicemarket.experiments.sweep, choicemarket.experiments.runner\n"
        "import choicemarket.experiments.cli\n"
        "heavy = ('scipy', 'sklearn', 'matplotlib', 'pandas', 'torch')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
