"""Determinism: the replicates table does not depend on n_jobs, on the order in which
chunks finish, or on the backend (loky or dask)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import study_spec

from mlesim.engine import assemble, collect, execute, plan, simulate
from mlesim.work import ROW_KEYS

BASE = {
    "truth": {"family": "bernoulli", "params": {"p": 0.3}},
    "n": [4, 25],
    "replications": 40,
    "design": {"truth.params.p": [0.1, 0.5]},
    "estimators": {
        "mle": {"kind": "mle"},
        "map": {"kind": "map", "prior": {"p": {"dist": "beta", "a": 2.0, "b": 2.0}}},
    },
    "runner": {"chunk_size": 7},
}


def make_spec(**runner):
    return study_spec(BASE, runner)


def test_n_jobs_does_not_change_the_table(helpers):
    one = simulate(make_spec(n_jobs=1), progress=False)
    two = simulate(make_spec(n_jobs=2, backend="loky"), progress=False)
    assert helpers
    assert len(one) == 4 * 40 * 2  # 4 cells × 40 replicates × 2 estimators of p
    pd.testing.assert_frame_equal(one, two, check_exact=True)


@pytest.mark.parametrize("order", ["reversed", "shuffled"])
def test_the_order_in_which_chunks_finish_does_not_change_the_table(order):
    """Run the chunks in another order through the engine's own API: same table."""
    spec = make_spec()
    tasks = plan(spec)
    if order == "reversed":
        tasks = tasks[::-1]
    else:
        tasks = [tasks[i] for i in np.random.default_rng(5).permutation(len(tasks))]
    results = execute(tasks, spec["runner"], progress=False)
    table = assemble(spec, tasks, results)
    pd.testing.assert_frame_equal(table, simulate(spec, progress=False), check_exact=True)
    failures = collect(spec, tasks, results)[1]
    assert failures.empty  # nothing to misplace: the MLE of p never fails


def test_a_chunk_s_rows_in_any_order_give_the_same_table():
    """Assembly places a chunk laid out as run_task lays it out (a run of replicates per
    estimator and parameter) by strided slices, and any other layout row by row: the
    same table either way (normal model: estimators of 1 and 2 parameters)."""
    spec = study_spec(
        {
            "truth": {"family": "normal", "params": {"mu": 0.0, "sigma2": 1.0}},
            "n": [3, 8],
            "replications": 30,
            "estimators": {
                "mle": {"kind": "mle"},
                "s2": {"kind": "unbiased_variance"},
                "mean": {"kind": "mean"},
            },
            "runner": {"chunk_size": 7},
        },
        {},
    )
    tasks = plan(spec)
    results = execute(tasks, spec["runner"], progress=False)
    rng = np.random.default_rng(3)
    shuffled = []
    for res in results:
        order = rng.permutation(res["est"].size)
        shuffled.append({k: (v[order] if k in ROW_KEYS else v) for k, v in res.items()})
    table = assemble(spec, tasks, results)
    pd.testing.assert_frame_equal(assemble(spec, tasks, shuffled), table, check_exact=True)
    # the table's own layout: condition, estimator, replicate, parameter
    first = table[(table["n"] == 8) & (table["estimator"] == "mle")].head(4)
    assert list(first["replicate"]) == [0, 0, 1, 1]
    assert list(first["param"]) == ["mu", "sigma2", "mu", "sigma2"]


def test_loky_and_dask_give_the_same_table(alarm, helpers):
    """The dask backend on a (threaded, in-process: quick to start) LocalCluster that
    mlesim joins by address, against loky with two processes."""
    from dask.distributed import LocalCluster

    alarm(120)
    loky = simulate(make_spec(n_jobs=2, backend="loky"), progress=False)
    with LocalCluster(
        n_workers=2, processes=False, threads_per_worker=1, dashboard_address=None
    ) as cluster:
        dask = {"address": cluster.scheduler_address, "n_workers": 2}
        on_dask = simulate(make_spec(backend="dask", dask=dask), progress=False)
    pd.testing.assert_frame_equal(loky, on_dask, check_exact=True)
