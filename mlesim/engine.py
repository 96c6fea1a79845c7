"""The engine: design grid × replicate chunks, seeding, parallel execution, checkpoints.

Seeding (DESIGN.md): chunk ``c`` of the condition with factor values ``f`` draws from
``SeedSequence(seed, spawn_key=(condition_key(f), c))``. The key hashes the factor
values, not the position in the grid, and the chunk size depends on the
configuration only, so the replicate table is the same for any ``n_jobs``, backend
or completion order, and raising ``replications`` extends a run.

Each finished chunk goes to a :class:`~mlesim.checkpoint.ChunkStore` (the run
directory's ``chunks/``, or memory) as soon as it arrives, so no result is held twice
and a killed run resumes; the replicates table is then assembled from the store into
preallocated columns, one chunk at a time.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mlesim.backends import Pool
from mlesim.checkpoint import ChunkStore
from mlesim.config import Condition, StudySpec
from mlesim.failures import FAILURE_COLUMNS, fit_safely
from mlesim.plugins import add_search_path
from mlesim.scenarios import Data, Scenario

if TYPE_CHECKING:
    from mlesim.stopping import StopReport

#: replicates per chunk unless memory asks for fewer (never depends on the machine)
DEFAULT_CHUNK = 1000
#: bytes held per observation while a chunk is simulated and estimated (data and
#: temporaries): an upper bound, checked with tracemalloc for every family and estimator
#: in tests/test_memory.py (closed forms peak at 8–41 bytes, iterative MLEs at up to 73)
WORKING_BYTES = 8 * 12

REPLICATE_COLUMNS = ("estimator", "replicate", "param", "estimate", "se", "converged")


def condition_key(factors: dict) -> int:
    """Stable 63-bit key of a condition's factor values (independent of grid order)."""
    canon = json.dumps({k: factors[k] for k in sorted(factors)}, sort_keys=True, default=repr)
    return int.from_bytes(hashlib.sha256(canon.encode()).digest()[:8], "big") >> 1


def chunk_size(n: int, runner: dict) -> int:
    """Replicates per chunk for sample size ``n``: ``runner.chunk_size`` if set, else
    DEFAULT_CHUNK capped so a chunk's working set stays under ``runner.max_chunk_mb``."""
    if runner.get("chunk_size"):
        return int(runner["chunk_size"])
    cap = int(runner["max_chunk_mb"] * 2**20 // (WORKING_BYTES * n))
    return max(1, min(DEFAULT_CHUNK, cap))


@dataclass(frozen=True)
class Task:
    """Replicates ``start`` to ``stop`` (exclusive) of one condition: chunk ``chunk``."""

    condition: Condition
    chunk: int
    start: int
    stop: int
    seed: int

    @property
    def key(self) -> int:
        """The condition key of :func:`condition_key` (part of the chunk's seed)."""
        return condition_key(self.condition.factors)


#: runs chunk tasks to completion (into the store): what mlesim.stopping is given
RunChunks = Callable[[list[Task]], None]


def cell_tasks(spec: StudySpec, cond: Condition, stop: int, start: int = 0) -> list[Task]:
    """The chunks of ``cond`` holding replicates ``start`` to ``stop`` (exclusive).

    Chunk ``c`` holds replicates ``c·size`` to ``min((c + 1)·size, stop)``; ``start``
    must be a chunk boundary.
    """
    size = chunk_size(cond.factors["n"], spec["runner"])
    if start % size:
        raise ValueError(f"start={start} is not a multiple of the chunk size {size}")
    return [
        Task(cond, c, c * size, min(c * size + size, stop), spec["seed"])
        for c in range(start // size, -(-stop // size))
    ]


def plan(spec: StudySpec, replications: int | None = None) -> list[Task]:
    """Every (condition, chunk) task of a fixed-size study, in grid order."""
    reps = spec["replications"] if replications is None else replications
    if reps == "auto":
        raise ValueError("replications=auto is planned round by round: see mlesim.stopping")
    return [t for cond in spec.conditions for t in cell_tasks(spec, cond, reps)]


def chunk_data(task: Task) -> tuple[Scenario, Data]:
    """The condition's scenario and the chunk's data: named arrays with the replicate
    axis first, ``{"x": (stop − start, n)}`` for a family."""
    scen = task.condition.scenario
    add_search_path(scen.search_path)  # a worker imports the user's plugins from there
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
    rows = task.stop - task.start
    reps = np.arange(task.start, task.stop, dtype=np.int64)
    parts, fails = [], []
    for e, est in enumerate(scen.estimators()):
        values, ses, ok, reason = fit_safely(est, data)
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


# ------------------------------------------------------------------ execution
def compute(tasks: list[Task], store: ChunkStore, pool: Pool, bar: tqdm | None = None) -> int:
    """Run the tasks that ``store`` does not hold yet and save each as it finishes.

    Returns the number of chunks computed (the rest were resumed). ``bar`` (tqdm)
    grows by ``len(tasks)`` and counts the resumed chunks as done.
    """
    todo = store.pending(tasks)
    if bar is not None:
        bar.total += len(tasks)
        bar.update(len(tasks) - len(todo))
    for i, result in pool.imap_unordered(run_task, todo):
        store.save(todo[i], result)
        if bar is not None:
            bar.update()
    return len(todo)


def progress_bar(progress: bool | None, total: int = 0) -> tqdm:
    """A tqdm bar over chunks (shown when ``progress``, or on a terminal if None)."""
    show = sys.stderr.isatty() if progress is None else progress
    return tqdm(total=total, disable=not show, desc="chunks", unit="chunk")


def execute(tasks: list[Task], runner: dict, progress: bool | None = None) -> list[dict]:
    """Run ``tasks`` and return their results in task order, whatever the schedule."""
    store = ChunkStore(None)
    with Pool(runner) as pool, progress_bar(progress) as bar:
        compute(tasks, store, pool, bar)
    return list(store.results(tasks))


# ------------------------------------------------------------------- assembly
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


# ------------------------------------------------------------------- the study
@dataclass
class Simulation:
    """A finished simulation.

    Attributes
    ----------
    replicates, failures : the tables of :func:`collect`
    chunks : chunks in the study;  resumed : chunks reused from an earlier run
    stopping : the sequential-stopping report (``replications: auto``), else None
    """

    replicates: pd.DataFrame
    failures: pd.DataFrame
    chunks: int
    resumed: int
    stopping: StopReport | None = None


def run_study(
    spec: StudySpec, store: ChunkStore | None = None, progress: bool | None = None
) -> Simulation:
    """Run the whole study through ``store`` (memory when None), resuming saved chunks."""
    store = ChunkStore(None) if store is None else store
    computed = 0
    report = None
    with Pool(spec["runner"]) as pool, progress_bar(progress) as bar:

        def run(tasks: list[Task]) -> None:
            nonlocal computed
            computed += compute(tasks, store, pool, bar)

        if spec["replications"] == "auto":
            from mlesim.stopping import sequential

            tasks, report = sequential(spec, store, run)
        else:
            tasks = plan(spec)
            run(tasks)
    replicates, failures = collect(spec, tasks, store.results(tasks))
    return Simulation(replicates, failures, len(tasks), len(tasks) - computed, report)


def simulate(spec: StudySpec, progress: bool | None = None) -> pd.DataFrame:
    """Run the whole study in memory and return the replicates table."""
    return run_study(spec, progress=progress).replicates


def locate(spec: StudySpec, factors: dict, replicate: int) -> tuple[Task, int]:
    """The chunk task holding ``replicate`` of the cell with ``factors``, and its row."""
    plain = {k: v.item() if isinstance(v, np.generic) else v for k, v in factors.items()}
    wanted = condition_key(plain)
    conds = [c for c in spec.conditions if condition_key(c.factors) == wanted]
    if not conds:
        have = [c.factors for c in spec.conditions]
        raise KeyError(f"no condition with factors {factors}; the study has {have}")
    cond = conds[0]
    reps = spec["replications"]
    if reps == "auto":  # chunks are full except at the cap
        reps = cond.config["stopping"]["max_replications"]
    if not 0 <= replicate < reps:
        raise IndexError(f"replicate {replicate} is outside 0..{reps - 1}")
    size = chunk_size(cond.factors["n"], spec["runner"])
    chunk = replicate // size
    task = Task(cond, chunk, chunk * size, min(chunk * size + size, reps), spec["seed"])
    return task, replicate - task.start
