"""Determinism: the replicates table does not depend on n_jobs, on the order in which
chunks finish, or on the backend (loky or dask)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import study_spec

from mlesim.engine import assemble, collect, execute, plan, simulate

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
