"""Tests of mlesim.engine: seeding, chunking, parallel reproducibility, the replicates table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import study_spec
from hypothesis import given
from hypothesis import strategies as hs

from mlesim import engine
from mlesim.engine import REPLICATE_COLUMNS, chunk_size, condition_key, plan, simulate
from mlesim.estimators import Mean

BASE = {
    "truth": {"family": "normal", "params": {"mu": 1.0, "sigma2": 2.0}},
    "n": [5, 10],
    "replications": 30,
    "estimators": {"mle": {"kind": "mle"}},
    "runner": {"chunk_size": 8},
}


def make_spec(runner=None, **changes):
    """A validated StudySpec: BASE with top-level keys replaced (runner merged)."""
    return study_spec(BASE, runner, **changes)


def rows(df: pd.DataFrame, **where) -> pd.DataFrame:
    """The rows matching ``where``; categorical columns as plain strings, so that
    tables with different category sets compare by value."""
    mask = np.ones(len(df), dtype=bool)
    for key, value in where.items():
        mask &= (df[key] == value).to_numpy()
    out = df[mask].reset_index(drop=True)
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = out[col].astype(str)
    return out


# -------------------------------------------------------------------- seeding
def test_condition_key_is_pinned():
    """The key is a hash of the values, stable across processes and versions: changing
    it would silently change every stored result."""
    assert condition_key({"n": 10}) == 961232678544601393
    assert condition_key({"n": 100, "truth.params.p": 0.3}) == 1151799303632065916


@given(
    hs.dictionaries(
        hs.text(min_size=1, max_size=8),
        hs.one_of(hs.integers(), hs.floats(allow_nan=False), hs.text(max_size=5)),
        min_size=1,
        max_size=5,
    )
)
def test_condition_key_ignores_the_order_of_factors(factors):
    reordered = dict(reversed(list(factors.items())))
    key = condition_key(factors)
    assert key == condition_key(reordered)
    assert 0 <= key < 2**63


def test_condition_key_separates_values():
    keys = {
        condition_key({"n": 10}),
        condition_key({"n": 11}),
        condition_key({"n": 10, "truth.params.mu": 0.0}),
        condition_key({"n": 10, "truth.params.mu": 1.0}),
    }
    assert len(keys) == 4


def test_adding_a_sample_size_leaves_the_other_cells_unchanged():
    small = simulate(make_spec(n=[5, 10]), progress=False)
    large = simulate(make_spec(n=[5, 7, 10]), progress=False)
    for n in (5, 10):
        pd.testing.assert_frame_equal(rows(small, n=n), rows(large, n=n), check_exact=True)
    assert len(rows(large, n=7)) == len(rows(large, n=5))


def test_raising_replications_extends_the_run():
    """Chunks of 8: 30 replicates end in a partial chunk that 50 replicates complete."""
    short = simulate(make_spec(replications=30), progress=False)
    long = simulate(make_spec(replications=50), progress=False)
    assert long["replicate"].max() == 49
    head = long[long["replicate"] < 30].reset_index(drop=True)
    pd.testing.assert_frame_equal(head, short, check_exact=True)


def test_the_seed_fixes_everything():
    a = simulate(make_spec(seed=1), progress=False)
    pd.testing.assert_frame_equal(a, simulate(make_spec(seed=1), progress=False))
    b = simulate(make_spec(seed=2), progress=False)
    assert not np.array_equal(a["estimate"], b["estimate"])


@pytest.mark.parametrize(("backend", "n_jobs"), [("loky", 2), ("threading", 2)])
def test_parallel_runs_are_identical_to_the_serial_run(backend, n_jobs, helpers):
    serial = simulate(make_spec(runner={"n_jobs": 1}), progress=False)
    parallel = simulate(make_spec(runner={"n_jobs": n_jobs, "backend": backend}), progress=False)
    assert helpers  # the helpers had chunks to compute
    pd.testing.assert_frame_equal(serial, parallel, check_exact=True)


# --------------------------------------------------------------------- chunks
@pytest.mark.parametrize("n", [1, 10, 1000, 10**5, 10**7])
@pytest.mark.parametrize("mb", [0.5, 8.0, 64.0])
def test_chunk_size_honours_max_chunk_mb(n, mb):
    size = chunk_size(n, {"chunk_size": None, "max_chunk_mb": mb})
    budget = mb * 2**20
    assert 1 <= size <= engine.DEFAULT_CHUNK
    if size > 1:  # a single replicate is the least a chunk can hold
        assert size * n * engine.WORKING_BYTES <= budget
    if size < engine.DEFAULT_CHUNK:  # as large as the budget allows
        assert (size + 1) * n * engine.WORKING_BYTES > budget


def test_explicit_chunk_size_wins():
    assert chunk_size(10**6, {"chunk_size": 7, "max_chunk_mb": 0.001}) == 7


def test_plan_covers_every_replicate_once():
    spec = make_spec(replications=30)
    tasks = plan(spec)
    assert len(tasks) == 2 * 4  # two sample sizes, ceil(30 / 8) chunks each
    for cond in spec.conditions:
        mine = [t for t in tasks if t.condition is cond]
        assert [t.chunk for t in mine] == [0, 1, 2, 3]
        covered = np.concatenate([np.arange(t.start, t.stop) for t in mine])
        np.testing.assert_array_equal(covered, np.arange(30))


# ------------------------------------------------------------- replicates table
def test_replicates_table_columns_and_order():
    spec = make_spec(
        design={"truth.params.mu": [0.0, 5.0]},
        estimators={"mle": {"kind": "mle"}, "s2": {"kind": "unbiased_variance"}},
        replications=6,
    )
    df = simulate(spec, progress=False)
    assert list(df.columns) == ["n", "truth.params.mu", *REPLICATE_COLUMNS]
    assert list(REPLICATE_COLUMNS) == [
        "estimator",
        "replicate",
        "param",
        "estimate",
        "se",
        "converged",
    ]
    assert len(df) == 4 * 6 * (2 + 1)  # cells × replicates × (mle: 2 params, s2: 1)
    first = df.iloc[:5]
    assert first["estimator"].tolist() == ["mle"] * 5
    assert first["replicate"].tolist() == [0, 0, 1, 1, 2]
    assert first["param"].tolist() == ["mu", "sigma2", "mu", "sigma2", "mu"]
    assert df["converged"].dtype == bool
    cells = df[["n", "truth.params.mu"]].drop_duplicates().to_numpy().tolist()
    assert cells == [[5, 0.0], [5, 5.0], [10, 0.0], [10, 5.0]]
    mu_hat = df[(df.estimator == "mle") & (df.param == "mu")].groupby("truth.params.mu")
    assert mu_hat["estimate"].mean().diff().iloc[-1] > 3  # the design value reached the data


# ---------------------------------------------------- common random numbers
def test_estimators_of_a_condition_see_the_same_data():
    spec = make_spec(
        estimators={
            "mle": {"kind": "mle"},
            "mean": {"kind": "mean"},
            "s2": {"kind": "unbiased_variance"},
        }
    )
    df = simulate(spec, progress=False)
    mle_mu = rows(df, estimator="mle", param="mu")
    mean = rows(df, estimator="mean", param="mu")
    np.testing.assert_array_equal(mean["estimate"], mle_mu["estimate"])
    mle_s2 = rows(df, estimator="mle", param="sigma2")
    s2 = rows(df, estimator="s2", param="sigma2")
    factor = mle_s2["n"] / (mle_s2["n"] - 1)
    np.testing.assert_allclose(s2["estimate"], mle_s2["estimate"] * factor, rtol=1e-12)
    alone = simulate(make_spec(), progress=False)
    pd.testing.assert_frame_equal(
        rows(df, estimator="mle"), rows(alone, estimator="mle"), check_exact=True
    )


def test_an_estimator_that_raises_fails_its_replicates_only(monkeypatch):
    def boom(self, x):
        raise FloatingPointError("simulated failure")

    monkeypatch.setattr(Mean, "_fit", boom)
    spec = make_spec(estimators={"mle": {"kind": "mle"}, "mean": {"kind": "mean"}})
    df = simulate(spec, progress=False)
    failed = rows(df, estimator="mean")
    assert len(failed) == 2 * 30
    assert failed["estimate"].isna().all() and not failed["converged"].any()
    assert rows(df, estimator="mle")["converged"].all()
