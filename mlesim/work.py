"""The work of one chunk, as a helper process runs it: draw the chunk's data from its
own seed and fit every estimator (see :mod:`mlesim.engine` for the rest of a run).

This module imports only what that needs (numpy, the families and estimators), so a
spawned helper (where helpers are not forked, :mod:`mlesim.helpers`) is ready to work a
fraction of a second after it starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mlesim.failures import fit_safely
from mlesim.plugins import add_search_path, adopt
from mlesim.sufficient import freeze, shared_statistics

if TYPE_CHECKING:
    from mlesim.chunks import Task
    from mlesim.scenarios import Data, Scenario


def chunk_data(task: Task) -> tuple[Scenario, Data]:
    """The condition's scenario and the chunk's data: named arrays with the replicate
    axis first, ``{"x": (stop − start, n)}`` for a family."""
    scen = task.condition.scenario
    add_search_path(scen.search_path)  # a worker imports the user's plugins from there
    adopt(scen.local)  # and knows the objects handed over in Python
    ss = np.random.SeedSequence(task.seed, spawn_key=(task.key, task.chunk))
    return scen, scen.sample(ss, task.stop - task.start)


def run_task(task: Task) -> dict[str, np.ndarray]:
    """Simulate and estimate one chunk; returns long-format arrays.

    Returns
    -------
    dict with, one entry per estimator × parameter × replicate of the chunk: ``est``
    (estimator position), ``replicate``, ``param`` (parameter position in the model),
    ``estimate``, ``se``, ``converged``; and, one entry per failed (estimator,
    replicate): ``fail_est``, ``fail_row`` (row within the chunk), ``fail_reason``.
    """
    scen, data = chunk_data(task)
    freeze(data)  # estimators share the chunk's statistics (mlesim.sufficient)
    rows = task.stop - task.start
    reps = np.arange(task.start, task.stop, dtype=np.int64)
    parts, fails = [], []
    estimators = scen.estimators()
    with shared_statistics():  # (a user's estimator gets its own writable copy)
        fits = [fit_safely(est, data) for est in estimators]
    for e, (est, (values, ses, ok, reason)) in enumerate(zip(estimators, fits, strict=True)):
        bad = np.flatnonzero(~ok)
        fails.append((np.full(bad.size, e, np.int16), bad, reason[bad]))
        for j, name in enumerate(est.param_names_):
            parts.append(
                {
                    "est": np.full(rows, e, np.int16),
                    "replicate": reps,
                    "param": np.full(rows, scen.model.index(name), np.int16),
                    "estimate": values[:, j],
                    "se": ses[:, j],
                    "converged": ok,
                }
            )
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    out["fail_est"] = np.concatenate([f[0] for f in fails])
    out["fail_row"] = np.concatenate([f[1] for f in fails]).astype(np.int64)
    out["fail_reason"] = np.concatenate([f[2] for f in fails]).astype(str)
    return out
