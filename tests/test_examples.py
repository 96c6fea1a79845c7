"""The example study of examples/skewed_study (the README's "Your own estimator"), run as
a user would: ``python -m mlesim --config-dir conf experiment=skewed_location`` from its
directory. Its plugins — a batched trimmed mean, a per-replicate Huber estimator and a
skew-normal generator — give the same replicate table with one worker, two loky workers
and a dask LocalCluster, and a killed run resumes to that table."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from mlesim.chunkfiles import saved_chunks

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "skewed_study"
SMALL = ["n=[10,30]", "replications=300", "runner.chunk_size=100", "runner.progress=false"]


def run(where: Path, run_dir: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "mlesim",
        "--config-dir",
        "conf",
        "experiment=skewed_location",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]
    proc = subprocess.run(cmd, cwd=where, capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture
def study(tmp_path) -> Path:
    """A copy of the example directory: the user's working directory."""
    where = tmp_path / "skewed_study"
    shutil.copytree(EXAMPLE, where)
    return where


def test_the_example_is_identical_on_any_number_of_workers_and_on_dask(study, tmp_path):
    run(study, tmp_path / "one", *SMALL, "runner.n_jobs=1")
    run(study, tmp_path / "two", *SMALL, "runner.n_jobs=2")
    run(study, tmp_path / "dask", *SMALL, "runner.backend=dask", "runner.dask.n_workers=2")
    one = pd.read_parquet(tmp_path / "one" / "replicates.parquet")
    assert set(one["estimator"]) == {"mle", "mean", "tmean", "huber"}
    assert len(one) == 2 * 300 * 5 and one["converged"].all()
    for other in ("two", "dask"):
        pd.testing.assert_frame_equal(one, pd.read_parquet(tmp_path / other / "replicates.parquet"))
    summary = pd.read_csv(tmp_path / "one" / "summary.csv")
    assert summary["crlb"].isna().all()  # a generator has no family: no theory columns
    assert (summary["true_value"][summary["param"] == "mu"] == 0.7740617226446519).all()


def test_the_example_resumes_after_a_kill_and_an_edited_plugin_is_recomputed(study, tmp_path):
    big = ["n=[30]", "replications=6000", "runner.chunk_size=50", "runner.progress=false"]
    whole = tmp_path / "whole"
    run(study, whole, *big)
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "mlesim", "--config-dir", "conf", "experiment=skewed_location"]
    proc = subprocess.Popen(
        [*cmd, f"hydra.run.dir={killed}", *big],
        cwd=study,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while saved_chunks(killed / "chunks") < 10:
        assert proc.poll() is None and time.monotonic() < deadline, "ended before the kill"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    kept = saved_chunks(killed / "chunks")
    assert 10 <= kept < 120 and not (killed / "replicates.parquet").exists()
    again = run(study, killed, *big)
    assert f"resumed {kept} of 120 chunks" in again.stdout
    want = pd.read_parquet(whole / "replicates.parquet")
    pd.testing.assert_frame_equal(want, pd.read_parquet(killed / "replicates.parquet"))
    # an edited plugin module changes every chunk's fingerprint: nothing is resumed
    with open(study / "mystudy.py", "a") as fh:
        fh.write("\n# edited\n")
    third = run(study, killed, *big)
    assert "resumed" not in third.stdout


def test_a_plugin_with_the_wrong_shape_stops_the_run_in_one_line(study, tmp_path):
    (study / "mystudy.py").write_text(
        (study / "mystudy.py").read_text() + "\n\ndef broken(x):\n    return x[:, :2]\n"
    )
    proc = run(
        study,
        tmp_path / "broken",
        *SMALL,
        "+estimators.bad={_target_:mystudy.broken,params:[mu]}",
        "runner.n_jobs=2",
        check=False,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("mlesim: error: estimators.bad: mystudy.broken the estimate has")
    assert "Traceback" not in proc.stderr
