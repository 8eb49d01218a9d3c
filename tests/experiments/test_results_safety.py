"""`run CONFIG`, `plot` and `report` against hostile configs, broken result files, full disks,
concurrent and killed runs, and flags that do not fit: clear errors, contained writes."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import yaml

import choicemarket.experiments.sweep as sweep
from choicemarket.experiments.cli import main
from choicemarket.experiments.experiment import MAX_ID_PREFIX, Run, parse_experiment
from choicemarket.experiments.figures import trajectories_figure
from choicemarket.experiments.sweep import (
    SkippedRunWarning,
    folder_lock,
    load_runs,
    results_dir,
    run_sweep,
)
from tests.experiments import test_sweep as sweep_tests

TINY = {**sweep_tests.TINY, "sweep": {"seeds": 2, "p": [0.0, 1.0]}}


def _config(folder: Path, config: dict | str, name: str = "tiny.yaml") -> Path:
    path = folder / name
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    return path


def _run_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("**/runs/*.json"))


def _one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("choicemarket: error: "), err
    return lines[0]


# config names and written paths


@pytest.mark.parametrize("name", ["../../x", "/abs/x", "a/b", ".hidden", "", "x" * 65])
def test_config_name_must_be_a_plain_folder_name(name):
    with pytest.raises(ValueError, match="config name .* plain folder name"):
        parse_experiment({**TINY, "name": name})


def test_a_downloaded_config_never_writes_outside_the_chosen_folder(tmp_path, capsys):
    (tmp_path / "work").mkdir()
    config = _config(tmp_path / "work", {**TINY, "name": "../../escaped"})
    out = tmp_path / "work" / "res"
    assert main(["run", str(config), "--out", str(out), "--no-progress"]) == 2
    assert "plain folder name" in _one_line_error(capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]
    assert not out.exists()


def test_results_folder_linked_outside_is_refused(tmp_path):
    exp = parse_experiment(TINY)
    (tmp_path / "res").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "res" / "tiny").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="outside"):
        results_dir(exp, tmp_path / "res")


# YAML


def test_yaml_aliases_are_rejected_before_they_expand(tmp_path, capsys):
    """Nested aliases grow exponentially once the config is copied or written (the title is
    not validated: it is only turned into text); a small one here, 10^5 items, the real bomb
    is a few levels more."""
    levels = ["- &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"- &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 5)]
    text = yaml.safe_dump(TINY) + "title:\n  " + "\n  ".join(levels) + "\n"
    config = _config(tmp_path, text)
    assert main(["run", str(config), "--out", str(tmp_path / "res"), "--no-progress"]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert "anchors and aliases" in line and str(config) in line and "line " in line
    assert not (tmp_path / "res").exists()


def test_yaml_python_tag_is_a_one_line_error(tmp_path, capsys):
    config = _config(tmp_path, "!!python/object/apply:os.system ['echo pwned']\n")
    assert main(["run", str(config), "--out", str(tmp_path / "res"), "--no-progress"]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert "python/object" in line and str(config) in line


def test_a_huge_config_file_is_refused(tmp_path, capsys):
    config = _config(tmp_path, yaml.safe_dump(TINY) + "#" * (1 << 21) + "\n")
    assert main(["run", str(config), "--no-progress"]) == 2
    assert "at most" in _one_line_error(capsys.readouterr().err)


# run ids


def test_run_ids_stay_short_for_list_valued_sweeps(tmp_path):
    long = list(range(300))
    runs = [
        Run({"peers": long, "entries": [[20, "clone", 1]] * 40}, seed, {"a": 1}, {"b": s})
        for seed, s in ((0, 1), (0, 2), (1, 1))
    ]
    ids = [run.run_id for run in runs]
    assert len(set(ids)) == 3
    for run_id in ids:
        assert len(f"{run_id}.json".encode()) <= MAX_ID_PREFIX + 16
        assert all(c.isalnum() or c in "._=+-" for c in run_id)
        (tmp_path / f"{run_id}.json").write_text("{}")  # a valid file name


def test_the_run_count_is_bounded_before_expansion():
    many = {"seeds": 1000, **{k: [0.1] * 10 for k in ("p", "eta")}, "probe_noise": [0.0] * 100}
    with pytest.raises(ValueError, match="at most"):
        parse_experiment({**TINY, "sweep": many})


# full disk


def test_full_disk_stops_at_the_first_failed_write(tmp_path, monkeypatch, capsys):
    real_write, calls = sweep.atomic_write, []
    real_chunk = sweep._chunk

    def counting_chunk(*args, **kwargs):
        calls.append(1)
        return real_chunk(*args, **kwargs)

    def full_for_runs(path, content):
        if Path(path).parent.name == "runs" and not Path(path).name.startswith("."):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(path, content)

    monkeypatch.setattr(sweep, "_chunk", counting_chunk)
    monkeypatch.setattr(sweep, "atomic_write", full_for_runs)
    config = _config(tmp_path, TINY)
    argv = ["run", str(config), "--out", str(tmp_path / "res"), "--workers", "1"]
    assert main([*argv, "--max-batch", "1", "--no-progress"]) == 1
    line = _one_line_error(capsys.readouterr().err)
    assert "No space left on device" in line and "runs" in line
    assert calls == [1]  # 4 chunks planned, computing stopped after the first

    def full(path, content):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(sweep, "atomic_write", full)
    calls.clear()
    assert main([*argv, "--no-progress", "--out", str(tmp_path / "res2")]) == 1
    assert "No space left" in _one_line_error(capsys.readouterr().err)
    assert calls == []  # nothing computed: sweep.json is written first

    def names_too_long(path, content):
        if Path(path).parent.name == "runs":
            raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG))
        return real_write(path, content)

    monkeypatch.setattr(sweep, "atomic_write", names_too_long)
    assert main([*argv, "--no-progress", "--out", str(tmp_path / "res3")]) == 1
    assert "File name too long" in _one_line_error(capsys.readouterr().err)
    assert calls == []  # a run file name that cannot be written is found before computing


def test_too_little_free_space_is_refused_before_computing(tmp_path, monkeypatch, capsys):
    class Usage:
        total, used, free = 10**9, 10**9 - 1000, 1000

    monkeypatch.setattr(sweep.shutil, "disk_usage", lambda path: Usage)
    monkeypatch.setattr(sweep, "_chunk", lambda *a: pytest.fail("computed on a full disk"))
    config = _config(tmp_path, TINY)
    assert main(["run", str(config), "--out", str(tmp_path / "res"), "--no-progress"]) == 1
    assert "not enough free space" in _one_line_error(capsys.readouterr().err)


# broken run files


def test_report_and_plot_skip_broken_run_files_and_run_redoes_them(tmp_path, capsys):
    config = _config(tmp_path, TINY)
    root = tmp_path / "res"
    assert main(["run", str(config), "--out", str(root), "--no-progress", "--workers", "1"]) == 0
    files = _run_files(root)
    truncated, rowless = files[0], files[1]
    truncated.write_text(truncated.read_text()[:100])
    data = json.loads(rowless.read_text())
    del data["rows"]
    rowless.write_text(json.dumps(data))
    capsys.readouterr()
    for argv in (["plot"], ["report", "--out", str(tmp_path / "doc" / "r.md")]):
        assert main([*argv, str(root / "tiny")]) == 0
        err = capsys.readouterr().err
        for broken in (truncated, rowless):  # named once by each command
            assert err.count(f"choicemarket: warning: skipping {broken}") == 1, err
        assert "`choicemarket run` will redo it" in err and "no rows" in err
    assert "2 runs, 2 seeds" in (tmp_path / "doc" / "r.md").read_text()
    assert main(["run", str(config), "--out", str(root), "--no-progress"]) == 0
    assert "2 runs computed, 2 already finished" in capsys.readouterr().out
    with warnings.catch_warnings():
        warnings.simplefilter("error", SkippedRunWarning)
        _, runs = load_runs(results_dir(parse_experiment(TINY), root))
    assert len(runs) == 4


# concurrent and killed runs


def _cli(*args: str, cwd: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "choicemarket", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_a_second_run_into_the_same_folder_is_refused(tmp_path):
    config = _config(tmp_path, TINY)
    folder = results_dir(parse_experiment(TINY), tmp_path / "res")
    with folder_lock(folder):  # this process is the first `run`
        second = _cli("run", "tiny.yaml", "--out", "res", "--no-progress", cwd=tmp_path)
        out, err = second.communicate(timeout=120)
        assert second.returncode == 2, err
        line = _one_line_error(err)
        assert f"being written by another `choicemarket run` (process {os.getpid()})" in line
        assert not _run_files(tmp_path / "res")
    after = _cli("run", str(config), "--out", "res", "--no-progress", cwd=tmp_path)
    out, err = after.communicate(timeout=120)
    assert after.returncode == 0, err
    assert "4 runs computed" in out, out


def _children(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
def test_killing_run_ends_its_workers_and_resource_tracker(tmp_path, how):
    market = {**TINY["market"], "max_steps": 200_000, "eval_every": 50_000}
    long = {**TINY, "market": market, "sweep": {"seeds": 4, "p": [0.0, 1.0]}}
    _config(tmp_path, long)
    run = _cli("run", "tiny.yaml", "--out", "res", "--workers", "2", "--no-progress", cwd=tmp_path)
    deadline = time.monotonic() + 120
    children: set[int] = set()
    while time.monotonic() < deadline and run.poll() is None:
        children = _children(run.pid)
        if len(children) >= 3:  # two workers and the resource tracker
            break
        time.sleep(0.2)
    assert run.poll() is None and len(children) >= 3, run.communicate()[1]
    time.sleep(1.0)  # the workers are computing
    children = _children(run.pid)
    os.kill(run.pid, how)
    run.communicate(timeout=60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(p) for p in children):
        time.sleep(0.2)
    assert not [p for p in children if _alive(p)]
    # the lock went with the process: a new run may use the folder
    with folder_lock(results_dir(parse_experiment(long), tmp_path / "res")):
        pass


def _thread_settings() -> dict:
    """In a worker: the thread variables and the thread counts of the loaded libraries."""
    from threadpoolctl import threadpool_info

    env = {k: os.environ.get(k) for k in sweep.THREAD_VARIABLES}
    import sklearn.cluster  # noqa: F401  (loads OpenMP)

    return {"env": env, "threads": {i["internal_api"]: i["num_threads"] for i in threadpool_info()}}


def test_workers_start_with_one_blas_and_openmp_thread():
    before = {k: os.environ.get(k) for k in sweep.THREAD_VARIABLES}
    with sweep.single_thread_environment():
        pool = sweep.worker_pool(1)
        future = pool.submit(_thread_settings)
    try:
        got = future.result(timeout=120)
    finally:
        pool.shutdown()
    assert got["env"] == dict.fromkeys(sweep.THREAD_VARIABLES, "1")
    assert got["threads"] and set(got["threads"].values()) == {1}, got
    assert {k: os.environ.get(k) for k in sweep.THREAD_VARIABLES} == before


# flags of `run` and the results layout


def test_run_config_applies_single_simulation_flags(tmp_path, capsys):
    config = _config(tmp_path, TINY)
    root = tmp_path / "res"
    argv = ["run", str(config), "--out", str(root), "--no-progress", "--workers", "1"]
    assert main([*argv, "--seeds", "1", "--steps", "10", "--dataset", "two-slopes"]) == 0
    out = capsys.readouterr().out
    assert "applied to the config: dataset='two-slopes', max_steps=10, seeds=[0]" in out
    assert "2 runs computed" in out
    (folder,) = {p.parent.parent for p in _run_files(root)}
    meta, runs = load_runs(folder)
    assert meta["market"]["max_steps"] == 10 and meta["sweep"]["seeds"] == [0]
    assert {max(r["step"] for r in run["rows"]) for run in runs} == {10}


def test_config_only_flags_without_a_config_are_an_error(capsys):
    assert main(["run", "--workers", "2", "--real", "--no-progress"]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert "--workers, --real" in line and "run CONFIG" in line


def test_each_setting_has_its_own_folder_and_is_reported_apart(tmp_path, capsys):
    config = _config(tmp_path, TINY)
    root = tmp_path / "res"
    argv = ["run", str(config), "--out", str(root), "--no-progress", "--workers", "1"]
    assert main([*argv, "--seeds", "1", "--steps", "20"]) == 0  # a smoke test
    assert main(argv) == 0  # the full run
    out = capsys.readouterr().out
    assert "4 runs computed, 0 already finished" in out
    folders = sorted(p.parent for p in (root / "tiny").glob("*/sweep.json"))
    assert len(folders) == 2
    for folder in folders:
        meta = json.loads((folder / "sweep.json").read_text())
        assert meta["settings"] == folder.name
        _, runs = load_runs(folder)
        assert {len(r["rows"]) for r in runs} == {2 * (meta["market"]["max_steps"] // 20 + 1)}
    doc = tmp_path / "doc" / "r.md"
    assert main(["report", str(root / "tiny"), "--out", str(doc)]) == 0
    text = doc.read_text()
    assert text.count("## tiny") == 2
    assert "2 runs, 1 seeds, 20 steps" in text and "4 runs, 2 seeds, 60 steps" in text
    for folder in folders:
        assert f"settings `{folder.name}`" in text
        assert (doc.parent / f"tiny-{folder.name}_final.png").exists()
    assert main(["plot", str(root / "tiny"), "--out", str(tmp_path / "figs")]) == 0
    for folder in folders:
        assert (tmp_path / "figs" / folder.name / "tiny_trajectories.png").exists()


def test_run_sweep_refuses_a_folder_of_other_settings(tmp_path):
    run_sweep(parse_experiment(TINY), tmp_path, progress=False)
    changed = parse_experiment(TINY, overrides=[("eta", 0.02)])
    with pytest.raises(ValueError, match="other settings .*policy differ"):
        run_sweep(changed, tmp_path, progress=False)
    assert json.loads((tmp_path / "sweep.json").read_text())["policy"]["eta"] == 0.05


def test_runs_of_other_settings_in_an_old_folder_are_not_pooled(tmp_path):
    exp = parse_experiment(TINY)
    run_sweep(exp, tmp_path, progress=False)
    other = parse_experiment(TINY, overrides=[("eta", 0.02)])
    run_sweep(other, tmp_path / "other", progress=False)
    for path in _run_files(tmp_path / "other"):  # mixed in, as the old layout allowed
        path.rename(tmp_path / "runs" / path.name)
    with pytest.warns(SkippedRunWarning, match="other settings \\(policy.eta is 0.02"):
        _, runs = load_runs(tmp_path)
    assert len(runs) == 4 and {r["policy"]["eta"] for r in runs} == {0.05}


# plot and report outputs


def test_plot_with_an_unknown_metric_lists_the_metrics(tmp_path, capsys):
    run_sweep(parse_experiment(TINY), tmp_path, progress=False)
    assert main(["plot", str(tmp_path), "--metric", "acc"]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert "unknown metric 'acc'" in line and "'global_loss'" in line and "'share'" in line


def test_trajectories_show_every_swept_point_and_say_so(tmp_path):
    title = "Final loss against the probing weight p"
    exp = parse_experiment({**TINY, "title": title, "sweep": {"seeds": 2, "p": [0.0, 0.5, 1.0]}})
    run_sweep(exp, tmp_path, progress=False)
    meta, runs = load_runs(tmp_path)
    fig = trajectories_figure(meta, runs, "global_loss")
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in shown] == ["p=0", "p=0.5", "p=1"]
    shown_title = fig._suptitle.get_text()
    assert "tiny" in shown_title and "over time" in shown_title and "2 seeds" in shown_title
    assert title not in shown_title  # not the sweep's "final against p" title


def test_report_without_out_writes_beside_the_results(tmp_path, monkeypatch, capsys):
    run_sweep(parse_experiment(TINY), tmp_path / "res", progress=False)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    assert main(["report", str(tmp_path / "res")]) == 0
    assert f"wrote {tmp_path / 'res' / 'report.md'}" in capsys.readouterr().out
    assert (tmp_path / "res" / "report.md").exists() and (
        tmp_path / "res" / "tiny_final.png"
    ).exists()
    assert list(cwd.iterdir()) == []


def test_load_runs_takes_a_name_folder_of_one_setting_and_refuses_several(tmp_path):
    exp = parse_experiment(TINY)
    run_sweep(exp, results_dir(exp, tmp_path), progress=False)
    assert len(load_runs(tmp_path / "tiny")[1]) == 4
    other = parse_experiment(TINY, overrides=[("seeds", [5])])
    run_sweep(other, results_dir(other, tmp_path), progress=False)
    with pytest.raises(ValueError, match="results of 2 settings") as info:
        load_runs(tmp_path / "tiny")
    for e in (exp, other):
        assert e.settings_hash in str(info.value)


def test_plot_of_a_downloaded_results_folder_stays_in_its_folder(tmp_path, capsys):
    folder = tmp_path / "down" / "res"
    run_sweep(parse_experiment(TINY), folder, progress=False)
    meta = json.loads((folder / "sweep.json").read_text())
    (folder / "sweep.json").write_text(json.dumps({**meta, "name": "../../escaped"}))
    assert main(["plot", str(folder)]) == 2
    assert "outside" in _one_line_error(capsys.readouterr().err)
    assert not list(tmp_path.glob("*.png")) and not list(tmp_path.glob("**/*escaped*"))
