"""The Python API (mlesim.run, mlesim.testing) and the README's "From Python" example."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mlesim
from mlesim.testing import assert_coverage, assert_unbiased

README = Path(__file__).resolve().parent.parent / "README.md"
SMALL = ["n=[5,10]", "replications=300", "runner.progress=false"]


def test_python_gives_the_command_lines_numbers(tmp_path):
    """variance_bias from Python and from `python -m mlesim`, same seed: the same
    summary.csv numbers."""
    cmd = [sys.executable, "-m", "mlesim", "experiment=variance_bias", *SMALL]
    proc = subprocess.run(
        [*cmd, f"hydra.run.dir={tmp_path / 'cli'}"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    cli = pd.read_csv(tmp_path / "cli" / "summary.csv")
    res = mlesim.run("variance_bias", overrides=SMALL)
    pd.testing.assert_frame_equal(
        res.summary.reset_index(drop=True), cli, check_dtype=False, rtol=1e-14
    )
    assert res.run_dir is None and len(res.replicates) == 2 * 300 * 5
    assert "<table" in res._repr_html_() and "variance_bias" in repr(res)


def test_a_run_dir_holds_the_command_lines_files(tmp_path):
    res = mlesim.run("variance_bias", overrides=SMALL, run_dir=tmp_path / "run")
    for name in ("summary.csv", "replicates.parquet", "report.md", "summary_extended.csv"):
        assert (tmp_path / "run" / name).is_file()
    assert res.figures() and all(p.is_file() for p in res.figures())


def trimmed(x: np.ndarray, cut: int = 1) -> np.ndarray:
    """A callable handed over in Python: the mean without the extremes, rows of x (R, n)."""
    xs = np.sort(x, axis=1)
    return xs[:, cut:-cut].mean(axis=1)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_callable_from_the_session_is_an_estimator(n_jobs):
    config = {
        "estimators": {"tm": {"_target_": trimmed, "params": ["mu"], "cut": 2}},
        "n": [10],
        "replications": 200,
        "runner": {"n_jobs": n_jobs, "chunk_size": 50, "progress": False},
    }
    res = mlesim.run(config=config)
    row = res.summary.iloc[0]
    assert row["estimator"] == "tm" and row["n_rep"] == 200
    assert abs(row["bias"]) < 4 * row["bias_mcse"]  # symmetric law: unbiased


def test_testing_catches_the_biased_variance_mle_and_passes_s2():
    """σ̂² = Σ(x − x̄)²/n has bias −σ²/n = −0.2 at n = 5: caught, with the value, its
    MCSE and the tolerance in the message; s² passes."""
    assert_unbiased(lambda x: x.var(axis=1, ddof=1), "normal", params=["sigma2"], n=5)
    with pytest.raises(AssertionError) as info:
        assert_unbiased(lambda x: x.var(axis=1), "normal", params=["sigma2"], n=5)
    text = str(info.value)
    assert re.search(r"bias = -0\.[12]\d+ ± 0\.0\d+ \(MCSE\)", text), text
    assert "≥ 4·MCSE" in text


def test_testing_checks_interval_coverage():
    def mean_se(x):
        return x.mean(axis=1), x.std(axis=1, ddof=1) / np.sqrt(x.shape[1])

    assert_coverage(mean_se, "normal", 0.95, params=["mu"], n=200)
    with pytest.raises(AssertionError, match="coverage of mu"):  # SEs half too small
        assert_coverage(lambda x: (mean_se(x)[0], mean_se(x)[1] / 2), "normal", params=["mu"])


def test_the_readme_from_python_example_runs():
    text = README.read_text(encoding="utf-8")
    section = text.split("## From Python", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "no python block in the README's 'From Python' section"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - our own README
