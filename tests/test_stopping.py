"""Sequential stopping (replications: auto): every cell meets the MCSE target or stops at
the cap and the run says so; the result does not depend on n_jobs, and each cell holds
exactly the rows of a fixed-size run with its number of replicates."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from conftest import study_spec

from mlesim.checkpoint import ChunkStore
from mlesim.engine import run_study, simulate
from mlesim.errors import ConfigError
from mlesim.pipeline import run_pipeline
from mlesim.stopping import Rule, next_goal, worst_mcse
from mlesim.summarise import summarise

TARGET = 0.02
BASE = {
    "truth": {"family": "normal", "params": {"mu": 0.0, "sigma2": 1.0}},
    "n": [10, 40],
    "replications": "auto",
    "study": "summary",
    "estimators": {"mle": {"kind": "mle"}, "mean": {"kind": "mean"}},
    "stopping": {"target_mcse": TARGET, "min_replications": 100, "max_replications": 5000},
    "runner": {"chunk_size": 50, "progress": False},
}


def make_spec(stopping=None, runner=None, **changes):
    return study_spec(BASE, runner, stopping={**BASE["stopping"], **(stopping or {})}, **changes)


def cell_rows(table: pd.DataFrame, n: int) -> pd.DataFrame:
    return table[table["n"] == n].reset_index(drop=True)


def test_every_cell_meets_the_target_with_whole_chunks():
    spec = make_spec()
    sim = run_study(spec)
    summary = summarise(spec, sim.replicates)
    assert (summary["bias_mcse"] <= TARGET).all()  # every estimator and parameter
    report = sim.stopping
    assert report.rounds >= 2 and not report.capped
    for cell in report.cells:
        rows = summary[summary["n"] == cell.factors["n"]]
        assert (rows["n_rep"] + rows["n_failed"] == cell.replications).all()
        assert cell.replications % 50 == 0 and cell.met
        assert cell.worst == rows["bias_mcse"].max()
    reps = {c.factors["n"]: c.replications for c in report.cells}
    assert reps[10] > reps[40]  # σ̂² varies more at n = 10: that cell needed more


def test_a_cell_holds_the_rows_of_a_fixed_run_of_its_size():
    spec = make_spec()
    sim = run_study(spec)
    for cell in sim.stopping.cells:
        n = cell.factors["n"]
        fixed = simulate(
            make_spec(replications=cell.replications, stopping={"target_mcse": None}, n=[n]),
            progress=False,
        )
        pd.testing.assert_frame_equal(cell_rows(sim.replicates, n), fixed, check_exact=True)


def test_the_result_does_not_depend_on_n_jobs(helpers):
    one = run_study(make_spec(runner={"n_jobs": 1}))
    two = run_study(make_spec(runner={"n_jobs": 2, "backend": "loky"}))
    assert helpers
    pd.testing.assert_frame_equal(one.replicates, two.replicates, check_exact=True)
    assert one.stopping == two.stopping


def test_cells_stop_at_the_cap_and_the_run_says_so(tmp_path, caplog):
    """A target out of reach: every cell stops at max_replications (120: two full chunks
    and a partial one) and the run warns, naming the cells."""
    spec = make_spec(stopping={"target_mcse": 1e-4, "max_replications": 120})
    with caplog.at_level(logging.INFO, logger="mlesim"):
        out = run_pipeline(spec, tmp_path)
    summary = out["summary"]
    assert (summary["n_rep"] == 120).all()
    assert (summary["bias_mcse"] > 1e-4).all()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    (line,) = [w for w in warnings if "max_replications" in w]
    assert "2 cell(s) stopped at stopping.max_replications=120" in line
    assert "n=10" in line and "n=40" in line
    assert "sequential stopping (bias_mcse <= 0.0001): 0 of 2 cell(s)" in caplog.text


def test_a_sequential_run_resumes_from_its_chunks(tmp_path):
    spec = make_spec()
    first = run_study(spec, ChunkStore(tmp_path))
    again = run_study(spec, ChunkStore(tmp_path))
    assert again.resumed == again.chunks == first.chunks
    pd.testing.assert_frame_equal(first.replicates, again.replicates, check_exact=True)


def test_other_measures_can_be_targeted():
    spec = make_spec(stopping={"measure": "coverage", "target_mcse": 0.02})
    sim = run_study(spec)
    summary = summarise(spec, sim.replicates)
    assert (summary.loc[summary["estimator"] == "mle", "coverage_mcse"] <= 0.02).all()
    assert not sim.stopping.capped


def test_the_next_goal_follows_the_mcse_rate():
    rule = Rule(target=0.01, measure="bias", min_replications=100, max_replications=10_000)
    assert next_goal(400, 0.02, rule, 50) == 1600  # MCSE ∝ R^(-1/2): 4 × R
    assert next_goal(400, 0.011, rule, 50) == 500  # 484 rounded up to whole chunks
    assert next_goal(400, 0.5, rule, 50) == 1600  # at most 4 × R per round
    assert next_goal(4000, 0.02, rule, 50) == 10_000  # never past the cap
    assert next_goal(400, float("nan"), rule, 50) == 1600


def test_worst_mcse_ignores_cells_with_no_successful_fit():
    rows = pd.DataFrame({"n_rep": [0, 50, 50], "bias_mcse": [np.nan, 0.01, 0.03]})
    assert worst_mcse(rows, "bias_mcse") == 0.03
    rows.loc[1, "bias_mcse"] = np.nan  # undefined with replicates: not met
    assert np.isnan(worst_mcse(rows, "bias_mcse"))


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"stopping": {"target_mcse": None}}, "stopping.target_mcse"),
        ({"stopping": {"target_mcse": -1.0}}, "stopping.target_mcse"),
        ({"stopping": {"measure": "power"}}, "stopping.measure"),
        ({"stopping": {"max_replications": 50}}, "stopping.max_replications"),
        ({"stopping": {"min_replications": 1}}, "stopping.min_replications"),
        ({"replications": 100}, "stopping.target_mcse"),  # a target without auto
        ({"runner": {"dask": {"n_workers": 0, "address": None}}}, "runner.dask.n_workers"),
    ],
)
def test_bad_stopping_settings_name_the_key(changes, key):
    with pytest.raises(ConfigError) as err:
        make_spec(**changes)
    assert err.value.key == key
    if key == "stopping.measure":
        assert "bias, empse, mse, coverage, efficiency" in str(err.value)
