"""Failed fits are counted per cell, left out of the measures, written to failures.csv with
what replays them, and reported in one warning line; the run finishes. Boundary estimates
are not failures."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from conftest import study_spec
from scipy import stats

from mlesim import estimators
from mlesim.engine import simulate
from mlesim.estimators import Estimator, Mean
from mlesim.failures import FAILURE_COLUMNS
from mlesim.pipeline import run_pipeline
from mlesim.replay import replay
from mlesim.study import validate
from mlesim.summarise import summarise

Z = 4.0
REASON = "first observation above 1.5"


class Fragile(Estimator):
    """The sample mean, failing (NaN, with its own reason) where x[0] > 1.5."""

    kind = "fragile"
    register = False  # the tests put it in the registry themselves (monkeypatch)

    @property
    def param_names_(self):
        return (self.model.location,)

    def _fit(self, x):
        bad = x[:, 0] > 1.5
        self._reason = np.where(bad, REASON, "").astype(object)
        mean = np.where(bad, np.nan, x.mean(axis=1))
        return mean[:, None], np.full((x.shape[0], 1), 0.5), np.zeros(x.shape[0], int)


BASE = {
    "truth": {"family": "normal", "params": {"mu": 0.0, "sigma2": 1.0}},
    "n": [4, 8],
    "replications": 60,
    "study": "summary",
    "estimators": {"mle": {"kind": "mle"}, "fragile": {"kind": "fragile"}},
    "runner": {"chunk_size": 16, "progress": False},
}


def make_spec(**changes):
    return study_spec(BASE, **changes)


@pytest.fixture
def fragile(monkeypatch):
    monkeypatch.setitem(estimators.ESTIMATORS, "fragile", Fragile)


def mlesim_warnings(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "mlesim" and r.levelno == logging.WARNING
    ]


def test_failures_are_counted_recorded_and_reported_once(tmp_path, fragile, caplog):
    with caplog.at_level(logging.INFO, logger="mlesim"):
        out = run_pipeline(make_spec(), tmp_path)
    reps, summary = out["replicates"], out["summary"]
    failures = pd.read_csv(tmp_path / "failures.csv")
    assert list(failures.columns) == ["n", *FAILURE_COLUMNS]
    failed = reps[(reps["estimator"] == "fragile") & ~reps["converged"]]
    assert 0 < len(failures) == len(failed) < 2 * 60  # P(x0 > 1.5) = 0.067: a few per cell
    assert failures[["n", "replicate"]].to_numpy().tolist() == (
        failed[["n", "replicate"]].to_numpy().tolist()
    )
    assert set(failures["reason"]) == {REASON} and set(failures["estimator"]) == {"fragile"}
    assert (failures["chunk"] == failures["replicate"] // 16).all()
    assert (failures["row"] == failures["replicate"] % 16).all()

    for n in (4, 8):
        row = summary[(summary["n"] == n) & (summary["estimator"] == "fragile")].iloc[0]
        mine = failures[failures["n"] == n]
        assert (row["n_failed"], row["n_rep"]) == (len(mine), 60 - len(mine))
        ok = reps[(reps["n"] == n) & (reps["estimator"] == "fragile") & reps["converged"]]
        assert row["mean"] == pytest.approx(ok["estimate"].mean(), rel=1e-12)
    assert (summary.loc[summary["estimator"] == "mle", "n_failed"] == 0).all()

    lines = mlesim_warnings(caplog)
    assert len(lines) == 1 and "\n" not in lines[0]
    assert f"{len(failures)} replicate fit(s) failed" in lines[0] and "failures.csv" in lines[0]
    assert REASON in lines[0]


def test_replay_regenerates_the_failed_data_set(tmp_path, fragile):
    out = run_pipeline(make_spec(), tmp_path)
    failures = pd.read_csv(tmp_path / "failures.csv")
    first = failures.iloc[0]
    again = replay(tmp_path, {"n": int(first["n"])}, "fragile", int(first["replicate"]))
    assert again.reason == REASON and again.x[0] > 1.5  # the very data set that failed
    assert (again.seed, again.condition_key, again.chunk, again.row) == (
        first["seed"],
        first["condition_key"],
        first["chunk"],
        first["row"],
    )
    assert np.isnan(again.estimate).all()
    # a replicate that did not fail gives back its estimate and data exactly
    reps = out["replicates"]
    good = reps[(reps["n"] == 8) & (reps["estimator"] == "fragile") & reps["converged"]].iloc[-1]
    back = replay(tmp_path, {"n": 8}, "fragile", int(good["replicate"]))
    assert back.reason == "" and back.x.shape == (8,)
    assert back.estimate[0] == good["estimate"] == back.x.mean()


def test_a_cell_where_every_fit_fails_is_kept_with_nan_measures(tmp_path, monkeypatch, caplog):
    """A raising estimator, and the unbiased variance at n = 1 (0/0): every replicate
    fails, the cells still appear, and the run finishes and says so."""

    def boom(self, x):
        raise ValueError("singular matrix\nmore detail")

    monkeypatch.setattr(Mean, "_fit", boom)
    spec = make_spec(
        n=[1, 3],
        estimators={
            "mle": {"kind": "mle"},
            "s2": {"kind": "unbiased_variance"},
            "mean": {"kind": "mean"},
        },
    )
    with caplog.at_level(logging.INFO, logger="mlesim"):
        out = run_pipeline(spec, tmp_path)
    summary = out["summary"]
    assert (tmp_path / "report.md").is_file()
    empty = summary[summary["n_rep"] == 0]
    cells = sorted(zip(empty["n"], empty["estimator"], strict=True))
    assert cells == [(1, "mean"), (1, "s2"), (3, "mean")]
    assert empty[["mean", "bias", "bias_mcse", "empse", "coverage"]].isna().all().all()
    assert (empty["n_failed"] == 60).all()
    mle = summary[summary["estimator"] == "mle"]
    assert (mle["n_failed"] == 0).all()  # σ̂² = 0 at n = 1 is a boundary estimate, kept
    reasons = pd.read_csv(tmp_path / "failures.csv").groupby("estimator")["reason"].unique()
    assert reasons["mean"].tolist() == ["raised ValueError: singular matrix"]
    assert reasons["s2"].tolist() == ["non-finite estimate"]
    (line,) = mlesim_warnings(caplog)
    assert "No successful fit in 3 cell(s)" in line and "n=1 s2/sigma2" in line


def wald_coverage(n: int, p: float, level: float = 0.95) -> float:
    """Exact coverage of the Wald interval p̂ ± z sqrt(p̂(1 − p̂)/n) for Binomial(n, p)."""
    z = stats.norm.ppf((1 + level) / 2)
    k = np.arange(n + 1)
    phat = k / n
    covers = np.abs(phat - p) <= z * np.sqrt(phat * (1 - phat) / n)
    return float(stats.binom.pmf(k, n, p) @ covers)


def test_boundary_estimates_are_kept_and_lower_the_coverage():
    """All-zero Bernoulli samples: p̂ = 0, SE 0, an interval that misses p. Kept, they pull
    the coverage down to its exact value (dropping them would give about 1)."""
    n, p, reps = 5, 0.05, 4000
    spec = validate(
        {
            "truth": {"family": "bernoulli", "params": {"p": p}},
            "n": [n],
            "replications": reps,
            "estimators": {"mle": {"kind": "mle"}},
        }
    )
    table = simulate(spec, progress=False)
    zeros = table[table["estimate"] == 0]
    assert zeros["converged"].all() and (zeros["se"] == 0).all()
    share = len(zeros) / reps
    mcse = np.sqrt(share * (1 - share) / reps)
    assert abs(share - (1 - p) ** n) < Z * mcse
    row = summarise(spec, table).iloc[0]
    assert (row["n_rep"], row["n_failed"]) == (reps, 0)
    exact = wald_coverage(n, p)
    assert exact < 0.3
    assert abs(row["coverage"] - exact) < Z * row["coverage_mcse"]
