"""End-to-end tests of the command line (``python -m mlesim`` and the ``mlesim`` script),
each in a temporary working directory. Subprocesses cost ~2 s each: keep them few."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

SUMMARY_COLUMNS = [
    "n",
    "estimator",
    "param",
    "true_value",
    "n_rep",
    "n_failed",
    "n_se",
    "mean",
    "bias",
    "bias_mcse",
    "rel_bias",
    "empse",
    "empse_mcse",
    "mse",
    "mse_mcse",
    "rmse",
    "modse",
    "coverage",
    "coverage_mcse",
    "crlb",
    "efficiency",
    "efficiency_mcse",
]
REPLICATE_COLUMNS = ["n", "estimator", "replicate", "param", "estimate", "se", "converged"]
RESULT_FILES = ("summary.csv", "replicates.parquet", "report.md")
SMALL = ["replications=20", "n=[5,10]"]


def run(command: list[str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["MPLBACKEND"] = "Agg"
    return subprocess.run(
        [*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


PYTHON_M = [sys.executable, "-m", "mlesim"]


def console_script() -> list[str]:
    """The installed ``mlesim`` script, beside this interpreter or on PATH."""
    beside = Path(sys.executable).with_name("mlesim")
    found = str(beside) if beside.exists() else shutil.which("mlesim")
    assert found, "the console script `mlesim` is not installed (pip install -e .)"
    return [found]


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    tmp = tmp_path_factory.mktemp("cli")
    proc = run(PYTHON_M, tmp, f"hydra.run.dir={tmp / 'run'}", *SMALL)
    return proc, tmp / "run"


def test_run_writes_every_output(good_run):
    proc, outdir = good_run
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    for name in RESULT_FILES:
        assert (outdir / name).is_file(), name
    assert (outdir / ".hydra" / "config.yaml").is_file()
    figures = sorted((outdir / "figures").glob("*.png"))
    assert figures and all(f.stat().st_size > 1000 for f in figures)
    report = (outdir / "report.md").read_text()
    assert all(f"figures/{f.name}" in report for f in figures)


def test_run_tables_have_the_public_columns(good_run):
    _, outdir = good_run
    summary = pd.read_csv(outdir / "summary.csv")
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert summary[["n", "param"]].values.tolist() == [
        [5, "mu"],
        [5, "sigma2"],
        [10, "mu"],
        [10, "sigma2"],
    ]
    assert (summary["n_rep"] + summary["n_failed"] == 20).all()
    reps = pd.read_parquet(outdir / "replicates.parquet")
    assert list(reps.columns) == REPLICATE_COLUMNS
    assert len(reps) == 2 * 20 * 2
    mean = reps.groupby(["n", "param"], sort=True)["estimate"].mean().to_numpy()
    pd.testing.assert_series_equal(
        summary.sort_values(["n", "param"])["mean"].reset_index(drop=True),
        pd.Series(mean, name="mean"),
    )


def test_console_script_is_the_same_program(good_run, tmp_path):
    _, outdir = good_run
    proc = run(console_script(), tmp_path, f"hydra.run.dir={tmp_path / 'run'}", *SMALL)
    assert proc.returncode == 0, proc.stderr
    for name, read in [("replicates.parquet", pd.read_parquet), ("summary.csv", pd.read_csv)]:
        pd.testing.assert_frame_equal(read(tmp_path / "run" / name), read(outdir / name))


@pytest.mark.parametrize(
    ("override", "names"),
    [
        ("truth.params.sigma2=-1", ["truth.params.sigma2"]),
        ("n=[]", ["n:"]),
        ("replications=1", ["replications"]),
        ("truth=nosuch", ["truth", "nosuch"]),  # a Hydra group error
    ],
)
def test_bad_input_fails_cleanly(override, names, tmp_path):
    proc = run(PYTHON_M, tmp_path, f"hydra.run.dir={tmp_path / 'run'}", "replications=20", override)
    assert proc.returncode != 0
    assert all(name in proc.stderr for name in names), proc.stderr
    assert "Traceback" not in proc.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not [p for p in written if p.name in RESULT_FILES or p.suffix == ".png"], written
    assert not (tmp_path / "run").exists()
