"""Assembly: the chunks' results put into the replicates table and the failures table,
in grid order, whatever order the chunks finished in."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlesim.chunks import Task
from mlesim.config import Condition, StudySpec
from mlesim.failures import FAILURE_COLUMNS

REPLICATE_COLUMNS = ("estimator", "replicate", "param", "estimate", "se", "converged")


@dataclass(frozen=True)
class _Cell:
    """Where one condition's rows go in the replicates table.

    Row of (estimator e, replicate r, model parameter j):
    ``offset + reps·before[e] + r·k[e] + jpos[e, j]`` (condition, estimator in
    configuration order, replicate, parameter in model order).
    """

    offset: int
    reps: int
    k: np.ndarray  # (E,) parameters per estimator
    before: np.ndarray  # (E,) parameters of the earlier estimators
    jpos: np.ndarray  # (E, p) position of model parameter j among estimator e's
    pcode: np.ndarray  # (p,) code of model parameter j in the table's param categories


def _layout(tasks: list[Task], params: list[str]) -> tuple[dict[int, _Cell], list[Condition], int]:
    """Cells of the conditions in ``tasks`` (grid order), the conditions, total rows.

    ``params`` collects the parameter names (categories of the ``param`` column).
    """
    reps: dict[int, int] = {}
    top: dict[int, int] = {}
    conds: dict[int, Condition] = {}
    for t in tasks:
        i = t.condition.index
        conds[i] = t.condition
        reps[i] = reps.get(i, 0) + t.stop - t.start
        top[i] = max(top.get(i, 0), t.stop)
    cells, offset = {}, 0
    for i in sorted(conds):
        if top[i] != reps[i]:
            raise ValueError(f"the chunks of condition {i} do not cover replicates 0..R-1")
        scen = conds[i].scenario
        ests = scen.estimators()
        k = np.array([len(e.param_names_) for e in ests])
        jpos = np.zeros((len(ests), scen.model.p), dtype=np.int64)
        for e, est in enumerate(ests):
            mine = sorted(scen.model.index(name) for name in est.param_names_)
            jpos[e, mine] = np.arange(len(mine))
        for name in scen.model.params:
            if name not in params:
                params.append(name)
        pcode = np.array([params.index(name) for name in scen.model.params])
        before = np.concatenate([[0], np.cumsum(k)[:-1]])
        cells[i] = _Cell(offset, reps[i], k, before, jpos, pcode)
        offset += reps[i] * int(k.sum())
    return cells, [conds[i] for i in sorted(conds)], offset


def _factor_columns(conds: list[Condition], rows: np.ndarray) -> dict[str, np.ndarray]:
    """Design-factor columns: each condition's values repeated over its ``rows``."""
    names = list(conds[0].factors)
    return {name: np.repeat(np.asarray([c.factors[name] for c in conds]), rows) for name in names}


def collect(
    spec: StudySpec, tasks: list[Task], results: Iterable[dict]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The replicates table and the failures table of ``tasks``.

    Parameters
    ----------
    tasks : any order; results : their results in the same order (a list, or a lazy
        iterator such as :meth:`ChunkStore.results`, read one chunk at a time)

    Returns
    -------
    replicates : design factors, then REPLICATE_COLUMNS, sorted by condition (grid
        order), estimator (configuration order), replicate, parameter (model order);
        ``estimator`` and ``param`` are categorical
    failures : design factors, then FAILURE_COLUMNS, one row per failed fit, sorted
        the same way
    """
    labels = list(spec["estimators"])
    params: list[str] = []
    cells, conds, total = _layout(tasks, params)
    est = np.empty(total, np.int16)
    par = np.empty(total, np.int16)
    rep = np.empty(total, np.int64)
    value, se = np.empty(total), np.empty(total)
    conv = np.empty(total, bool)
    filled = 0
    fails = []
    for task, res in zip(tasks, results, strict=True):
        cell = cells[task.condition.index]
        e = res["est"].astype(np.intp)
        j = res["param"].astype(np.intp)
        pos = cell.offset + cell.reps * cell.before[e] + res["replicate"] * cell.k[e]
        pos += cell.jpos[e, j]
        est[pos], par[pos], rep[pos] = e, cell.pcode[j], res["replicate"]
        value[pos], se[pos], conv[pos] = res["estimate"], res["se"], res["converged"]
        filled += pos.size
        if res["fail_est"].size:
            fails.append((task, res["fail_est"], res["fail_row"], res["fail_reason"]))
    if filled != total:
        raise ValueError(f"the chunks filled {filled} of {total} rows of the table")
    rows = np.array([cells[c.index].reps * int(cells[c.index].k.sum()) for c in conds])
    table = _factor_columns(conds, rows)
    table.update(
        estimator=pd.Categorical.from_codes(est, categories=labels),
        replicate=rep,
        param=pd.Categorical.from_codes(par, categories=params),
        estimate=value,
        se=se,
        converged=conv,
    )
    replicates = pd.DataFrame(table, copy=False)
    return replicates, _failures_table(conds, labels, fails)


def _failures_table(conds: list[Condition], labels: list[str], fails: list) -> pd.DataFrame:
    """One row per failed fit (see :mod:`mlesim.failures`)."""
    names = list(conds[0].factors)
    if not fails:
        return pd.DataFrame(columns=[*names, *FAILURE_COLUMNS])
    counts = np.array([f[1].size for f in fails])
    order = pd.DataFrame(
        {
            "_cond": np.repeat([f[0].condition.index for f in fails], counts),
            "_est": np.concatenate([f[1] for f in fails]),
        }
    )
    factors = _factor_columns([f[0].condition for f in fails], counts)
    rows = np.concatenate([f[2] for f in fails])
    out = pd.DataFrame(
        {
            **factors,
            "estimator": np.asarray(labels, dtype=object)[np.concatenate([f[1] for f in fails])],
            "replicate": np.repeat([f[0].start for f in fails], counts) + rows,
            "reason": np.concatenate([f[3] for f in fails]).astype(object),
            "seed": np.repeat([f[0].seed for f in fails], counts),
            "condition_key": np.repeat([f[0].key for f in fails], counts).astype(np.int64),
            "chunk": np.repeat([f[0].chunk for f in fails], counts),
            "row": rows,
        }
    )
    out = pd.concat([order, out], axis=1)
    out = out.sort_values(["_cond", "_est", "replicate"], kind="stable")
    return out.drop(columns=["_cond", "_est"]).reset_index(drop=True)


def assemble(spec: StudySpec, tasks: list[Task], results: Iterable[dict]) -> pd.DataFrame:
    """The replicates table of ``tasks`` (see :func:`collect`)."""
    return collect(spec, tasks, results)[0]
