"""Sweeps seen together (sweep_summary.csv, sweep_failures.csv, sweep_report.md, by the
Hydra callback and by ``python -m mlesim.report``), and run directories that never mix
two studies."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mlesim.lock import RunDirInUse
from mlesim.pipeline import run_pipeline
from mlesim.study import validate
from mlesim.sweep import Job, build, swept_keys
from tests.conftest import compose_config


def cli(cwd: Path, *args: str, module: str = "mlesim") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A 2 × 2 sweep: coin_flip over p (replacing the preset's design) and replications."""
    tmp = tmp_path_factory.mktemp("sweep")
    out = cli(
        tmp,
        "-m",
        "experiment=coin_flip",
        "truth.params.p=0.2,0.5",
        "replications=40,60",
        "n=[5,10]",
        "runner.progress=false",
        f"hydra.sweep.dir={tmp / 'sw'}",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return tmp / "sw"


def test_a_2x2_sweep_has_one_table_with_the_swept_columns(sweep):
    table = pd.read_csv(sweep / "sweep_summary.csv")
    assert {"job", "truth.params.p", "replications"} <= set(table.columns)
    jobs = sorted(p for p in sweep.iterdir() if (p / "summary.csv").exists())
    assert len(jobs) == 4
    assert len(table) == sum(len(pd.read_csv(j / "summary.csv")) for j in jobs)
    combos = set(zip(table["truth.params.p"], table["replications"], strict=True))
    assert combos == {(0.2, 40), (0.2, 60), (0.5, 40), (0.5, 60)}
    # each job's rows carry that job's values: its n_rep is its replications
    assert (table["n_rep"] + table["n_failed"] == table["replications"]).all()
    assert (table["true_value"] == table["truth.params.p"]).all()
    assert (sweep / "sweep_failures.csv").exists()


def test_the_sweep_report_lists_every_job_and_draws_each_measure(sweep):
    report = (sweep / "sweep_report.md").read_text()
    assert "4 runs, 4 finished" in report and "`truth.params.p`, `replications`" in report
    for measure in ("bias", "rmse", "coverage"):
        path = sweep / "figures" / f"sweep_{measure}_p.png"
        assert path.stat().st_size > 10_000 and f"figures/sweep_{measure}_p.png" in report


def test_the_report_command_combines_pieces_and_lists_a_failed_job(sweep, tmp_path):
    pieces = [sweep / "0_coin_flip", sweep / "3_coin_flip"]
    broken = tmp_path / "broken"  # a job that died: its record, no results
    shutil.copytree(sweep / "1_coin_flip" / ".hydra", broken / ".hydra")
    out = cli(
        tmp_path,
        *map(str, pieces),
        str(broken),
        "--out",
        str(tmp_path / "combined"),
        module="mlesim.report",
    )
    assert out.returncode == 0, out.stderr
    table = pd.read_csv(tmp_path / "combined" / "sweep_summary.csv")
    assert sorted(set(table["job"])) == ["0_coin_flip", "3_coin_flip"]
    report = (tmp_path / "combined" / "sweep_report.md").read_text()
    assert "3 runs, 2 finished" in report
    assert "| broken |" in report and "failed: no summary.csv" in report


def test_the_report_command_refuses_in_one_line(tmp_path):
    out = cli(tmp_path, str(tmp_path / "nosuch"), module="mlesim.report")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.startswith("mlesim.report: error: ") and len(out.stderr.splitlines()) == 1
    empty = cli(tmp_path, str(tmp_path), module="mlesim.report")
    assert empty.returncode == 2 and "no run directory" in empty.stderr
    many = cli(tmp_path, str(tmp_path), str(tmp_path), module="mlesim.report")
    assert many.returncode == 2 and "--out" in many.stderr


def test_swept_keys_are_those_that_differ():
    def job(**overrides):
        return Job(Path("x"), overrides, None, None)

    jobs = [
        job(truth="normal", seed=1, **{"runner.n_jobs": 1}),
        job(truth="poisson", seed=1, **{"runner.n_jobs": 2}),
    ]
    assert swept_keys(jobs) == ["truth"]
    assert swept_keys([job(a=1), job(a=1, b=2)]) == ["b"]  # present in one job only


def test_build_needs_a_run(tmp_path):
    with pytest.raises(ValueError, match="no run directory"):
        build([tmp_path])


# ------------------------------------------------------------- run directories
def test_two_runs_started_together_get_their_own_directories(tmp_path):
    args = [
        sys.executable,
        "-m",
        "mlesim",
        "name=twin",
        "n=[5]",
        "replications=30",
        "runner.progress=false",
    ]
    procs = [
        subprocess.Popen(args, cwd=tmp_path, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()[-2000:]
    runs = sorted((tmp_path / "experiments" / "twin").iterdir())
    assert len(runs) == 2
    for run in runs:
        assert (run / "summary.csv").exists() and (run / "report.md").exists()


def test_the_default_run_directory_ends_in_the_process_id():
    """Two commands whose clocks read the same microsecond (started together by a shell
    loop or an array job) still get their own directory: the name ends in the pid."""
    import os

    from hydra import compose, initialize_config_dir
    from hydra.core.utils import setup_globals
    from omegaconf import OmegaConf

    from mlesim.__main__ import config_dir
    from mlesim.config import register_schema

    register_schema()
    setup_globals()  # Hydra's ${now:...}
    with initialize_config_dir(version_base="1.3", config_dir=config_dir()):
        cfg = compose("config", overrides=["name=twin"], return_hydra_config=True)
    run_dir = OmegaConf.select(cfg, "hydra.run.dir")
    parent, leaf = run_dir.rsplit("/", 1)
    assert parent == "experiments/twin"
    stamp, pid = leaf.rsplit("-", 1)
    assert pid == str(os.getpid()) and len(stamp) == len("2026-12-03_07-17-26-248126")


def test_a_directory_holding_another_study_is_refused_and_left_alone(tmp_path):
    run = tmp_path / "run"

    def spec(*overrides):
        return validate(compose_config(["runner.progress=false", "n=[5]", *overrides]))

    first = spec("replications=20")
    run_pipeline(first, run, progress=False)
    before = (run / "summary.csv").read_bytes()
    other = spec("replications=20", "truth.params.mu=2")
    with pytest.raises(RunDirInUse) as info:
        run_pipeline(other, run, progress=False)
    assert info.value.key == "hydra.run.dir" and "truth" in info.value.message
    assert (run / "summary.csv").read_bytes() == before
    # the same study with more replications resumes into it
    more = spec("replications=40")
    out = run_pipeline(more, run, progress=False)
    assert (out["summary"]["n_rep"] + out["summary"]["n_failed"] == 40).all()


def test_a_failed_job_is_listed_and_the_sweep_goes_on(tmp_path):
    out = cli(
        tmp_path,
        "-m",
        "truth.params.sigma2=-1,1",
        "n=[5]",
        "replications=30",
        "runner.progress=false",
        f"hydra.sweep.dir={tmp_path / 'sw'}",
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("mlesim: error: ")]
    assert errors[0] == "mlesim: error: truth.params.sigma2: must be > 0 for normal, got -1.0"
    assert errors[-1].startswith("mlesim: error: sweep: 1 job(s) failed (0_study)")
    sw = tmp_path / "sw"
    assert (sw / "1_study" / "summary.csv").exists()  # the other job ran
    assert (sw / "0_study" / "error.txt").read_text().startswith("truth.params.sigma2: must")
    report = (sw / "sweep_report.md").read_text()
    assert "2 runs, 1 finished" in report
    assert "| 0_study | -1 | **failed**: truth.params.sigma2: must be > 0" in report


def test_pieces_of_different_sweeps_keep_apart(sweep, tmp_path):
    other = tmp_path / "other_sweep"
    shutil.copytree(sweep / "0_coin_flip", other / "0_coin_flip")
    build([sweep / "0_coin_flip", other / "0_coin_flip"], tmp_path / "both")
    table = pd.read_csv(tmp_path / "both" / "sweep_summary.csv")
    assert sorted(set(table["job"])) == ["other_sweep/0_coin_flip", "sw/0_coin_flip"]


def test_a_job_refused_beside_older_results_is_listed_as_failed(sweep, tmp_path):
    job = tmp_path / "sw" / "0_coin_flip"
    shutil.copytree(sweep / "0_coin_flip", job)
    (job / "error.txt").write_text("hydra.run.dir: holds the results of another study\n")
    build([tmp_path / "sw"])
    report = (tmp_path / "sw" / "sweep_report.md").read_text()
    assert "1 runs, 0 finished" in report and "**failed**: hydra.run.dir" in report
    assert pd.read_csv(tmp_path / "sw" / "sweep_summary.csv").empty  # its old rows left out
