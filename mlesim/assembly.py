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


class Assembly:
    """The replicates and failures tables of ``tasks``, filled one chunk at a time as
    results arrive, in any order: the columns are allocated once, up front, and each
    chunk is written into its rows and then let go (:meth:`add`), so a run holds its
    results once (:func:`mlesim.engine.run_study` adds each as it is computed).
    """

    def __init__(self, spec: StudySpec, tasks: list[Task]):
        self.labels = list(spec["estimators"])
        self.params: list[str] = []
        self.cells, self.conds, self.total = _layout(tasks, self.params)
        self.columns = (
            np.empty(self.total, np.int16),  # estimator code
            np.empty(self.total, np.int16),  # parameter code
            np.empty(self.total, np.int64),  # replicate
            np.empty(self.total),  # estimate
            np.empty(self.total),  # se
            np.empty(self.total, bool),  # converged
        )
        self.filled = 0
        self.fails: list[tuple] = []
        self.added: set[tuple[int, int]] = set()

    def add(self, task: Task, res: dict[str, np.ndarray]) -> None:
        """Write ``task``'s result (the arrays of :func:`mlesim.work.run_task`) into its
        rows; a chunk added again is ignored."""
        ident = (task.key, task.chunk)
        if ident in self.added:
            return
        self.added.add(ident)
        self.filled += _place(self.cells[task.condition.index], task, res, self.columns)
        if res["fail_est"].size:
            self.fails.append((task, res["fail_est"], res["fail_row"], res["fail_reason"]))

    def tables(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The replicates and failures tables (see :func:`collect`), once every chunk
        is in; ValueError otherwise."""
        if self.filled != self.total:
            raise ValueError(f"the chunks filled {self.filled} of {self.total} rows of the table")
        est, par, rep, value, se, conv = self.columns
        cells = self.cells
        rows = np.array([cells[c.index].reps * int(cells[c.index].k.sum()) for c in self.conds])
        table = _factor_columns(self.conds, rows)
        table.update(
            estimator=pd.Categorical.from_codes(est, categories=self.labels),
            replicate=rep,
            param=pd.Categorical.from_codes(par, categories=self.params),
            estimate=value,
            se=se,
            converged=conv,
        )
        replicates = pd.DataFrame(table, copy=False)
        return replicates, _failures_table(self.conds, self.labels, self.fails)


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
    assembly = Assembly(spec, tasks)
    for task, res in zip(tasks, results, strict=True):
        assembly.add(task, res)
    return assembly.tables()


def _place(cell: _Cell, task: Task, res: dict, columns: tuple) -> int:
    """Write one chunk's result into the table's ``columns`` (est, param, replicate,
    estimate, se, converged); returns the rows written.

    A chunk of :func:`mlesim.work.run_task` is a run of its replicates ``start..stop``
    for each estimator and parameter in turn, and each run lands on a strided slice of
    the table (every k[e]-th row of the estimator's block); anything else is scattered
    row by row."""
    est, par, rep, value, se, conv = columns
    rows = task.stop - task.start
    runs = _runs(res, task.start, rows)
    if runs is None:
        e = res["est"].astype(np.intp)
        j = res["param"].astype(np.intp)
        pos = cell.offset + cell.reps * cell.before[e] + res["replicate"] * cell.k[e]
        pos += cell.jpos[e, j]
        est[pos], par[pos], rep[pos] = e, cell.pcode[j], res["replicate"]
        value[pos], se[pos], conv[pos] = res["estimate"], res["se"], res["converged"]
        return pos.size
    reps = res["replicate"][:rows]
    for b, (e, j) in enumerate(runs):
        k = int(cell.k[e])
        first = cell.offset + cell.reps * int(cell.before[e]) + task.start * k
        at = slice(first + int(cell.jpos[e, j]), first + rows * k, k)
        part = slice(b * rows, (b + 1) * rows)
        est[at], par[at], rep[at] = e, cell.pcode[j], reps
        value[at], se[at], conv[at] = res["estimate"][part], res["se"][part], res["converged"][part]
    return rows * len(runs)


def _runs(res: dict, start: int, rows: int) -> list[tuple[int, int]] | None:
    """The (estimator, parameter) of each run when ``res`` is runs of ``rows`` entries,
    each one (estimator, parameter) over replicates ``start, …, start + rows − 1``;
    else None."""
    size = res["est"].size
    if rows == 0 or size % rows:
        return None
    est, par = res["est"].reshape(-1, rows), res["param"].reshape(-1, rows)
    reps = res["replicate"].reshape(-1, rows)
    if not ((est == est[:, :1]).all() and (par == par[:, :1]).all()):
        return None
    first = reps[0]
    if first[0] != start or not (np.diff(first) == 1).all() or not (reps == first).all():
        return None
    return [(int(e), int(j)) for e, j in zip(est[:, 0], par[:, 0], strict=True)]


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
