"""The engine: generate and analyse each chunk of the plan (:mod:`mlesim.chunks`), run
the chunks on a backend, save each to the checkpoint store, and assemble the tables
(:mod:`mlesim.assembly`).

Seeding (DESIGN.md): chunk ``c`` of the condition with factor values ``f`` draws from
``SeedSequence(seed, spawn_key=(condition_key(f), c))``. The key hashes the factor
values, not the position in the grid, and the chunk size depends on the
configuration only, so the replicate table is the same for any ``n_jobs``, backend
or completion order, and raising ``replications`` extends a run.

Each finished chunk goes to a :class:`~mlesim.checkpoint.ChunkStore` (the run
directory's ``chunks/``, or memory) as soon as it arrives, so a killed run resumes, and
(a study of fixed size) into the replicates table's preallocated columns at once
(:class:`~mlesim.assembly.Assembly`), so no result is held twice; resumed chunks are
read back from the store, and a study of ``replications: auto`` is assembled from the
store at the end.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass

import pandas as pd
from tqdm.auto import tqdm

from mlesim.assembly import REPLICATE_COLUMNS, Assembly, assemble, collect
from mlesim.backends import Pool
from mlesim.checkpoint import ChunkStore
from mlesim.chunks import (
    DEFAULT_CHUNK,
    WORKING_BYTES,
    Task,
    cell_tasks,
    chunk_size,
    condition_key,
    locate,
    plan,
)
from mlesim.config import StudySpec
from mlesim.interrupt import raise_if_requested
from mlesim.stopping import StopReport, sequential
from mlesim.work import bundles, chunk_data, run_bundle, run_task, warm_up

__all__ = [
    "DEFAULT_CHUNK",
    "REPLICATE_COLUMNS",
    "WORKING_BYTES",
    "Simulation",
    "Task",
    "assemble",
    "cell_tasks",
    "chunk_data",
    "chunk_size",
    "collect",
    "compute",
    "condition_key",
    "execute",
    "locate",
    "plan",
    "run_study",
    "run_task",
    "simulate",
]


# ------------------------------------------------------------------ execution
def compute(
    tasks: list[Task],
    store: ChunkStore,
    pool: Pool,
    bar: Progress | None = None,
    assembly: Assembly | None = None,
) -> int:
    """Run the tasks that ``store`` does not hold yet and save each as it finishes.

    Returns the number of chunks computed (the rest were resumed). ``bar``
    (:func:`progress_bar`) grows by ``tasks`` and counts the resumed chunks as done.
    With an ``assembly``, each result also goes into its tables at once (and the store
    need not keep it in memory).
    """
    todo = store.pending(tasks)
    if bar is not None:
        bar.add(tasks, todo)
    groups = bundles(todo)  # (chunks of small data sets fitted together)
    warm_up(todo)  # (imported once, before the helpers are forked)
    try:
        for i, results in pool.imap_unordered(run_bundle, groups):
            for task, result in zip(groups[i], results, strict=True):
                store.save(task, result, keep=assembly is None)
                if assembly is not None:
                    assembly.add(task, result)
                if bar is not None:
                    bar.done(task)
            raise_if_requested()  # a Ctrl-C that landed in a finaliser is honoured here
    finally:  # (also on Ctrl-C: what is finished is written, for a resume)
        store.flush()
    return len(todo)


#: with progress as log lines, one line about every this share of the chunks
LOG_EVERY = 0.1


def _duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Progress:
    """The progress of a run over its chunks: a tqdm bar, or log lines, or nothing.

    ``progress`` True shows the bar, False nothing; None (auto) the bar when stderr is a
    terminal and otherwise (nohup, a SLURM log) an INFO line on the ``mlesim`` logger
    about every :data:`LOG_EVERY` of the chunks: replicates done of the total, the share
    of the work done (replicates × n, so that a cell of large n weighs what it costs), the
    rate (replicates per second computed in this run) and the time left at the pace of
    the work computed in this run. Chunks
    resumed from an earlier run count as done. A context manager, like a tqdm bar.
    """

    def __init__(self, progress: bool | None, total: int = 0):
        show = sys.stderr.isatty() if progress is None else progress
        self.bar = tqdm(total=total, disable=not show, desc="chunks", unit="chunk")
        self.log = logging.getLogger("mlesim") if progress is None and not show else None
        self.chunks, self.chunks_done = total, 0
        self.replicates = self.replicates_done = 0
        self.computed = 0  # replicates computed in this run (the rate's numerator)
        self.work = self.work_done = self.work_computed = 0  # data points: replicates × n
        self.started: float | None = None
        self.logged = -1  # the last step logged (a multiple of LOG_EVERY of the chunks)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.bar.close()

    @property
    def total(self) -> int:
        """Chunks planned so far."""
        return self.chunks

    def add(self, tasks: list[Task], todo: list[Task]) -> None:
        """``tasks`` join the run; those not in ``todo`` are done already (resumed)."""
        pending = {id(t) for t in todo}  # (a subset of tasks: the same objects)
        resumed = [t for t in tasks if id(t) not in pending]
        self.chunks += len(tasks)
        self.replicates += sum(t.stop - t.start for t in tasks)
        self.chunks_done += len(resumed)
        self.replicates_done += sum(t.stop - t.start for t in resumed)
        self.work += sum(_work(t) for t in tasks)
        self.work_done += sum(_work(t) for t in resumed)
        self.bar.total = self.chunks
        self.bar.update(len(resumed))
        if resumed and self.log is not None:  # said before the progress lines, not after
            self.log.info(
                "%d of %d chunks saved by an earlier run: resumed", len(resumed), len(tasks)
            )
        if todo and self.started is None:
            self.started = time.monotonic()
        if todo:  # the step reached so far, so that the next line is a step further
            self.logged = self._step() if self.chunks_done else -1

    def done(self, task: Task) -> None:
        """``task`` has been computed and saved."""
        self.chunks_done += 1
        self.replicates_done += task.stop - task.start
        self.computed += task.stop - task.start
        self.work_done += _work(task)
        self.work_computed += _work(task)
        self.bar.update()
        if self.log is not None and (self._step() > self.logged or self._finished()):
            self.logged = self._step()
            self.log.info(self.line())

    def _finished(self) -> bool:
        return self.chunks_done == self.chunks

    def _step(self) -> int:
        """How many whole LOG_EVERY shares of the chunks are done."""
        return int(self.chunks_done / max(self.chunks, 1) / LOG_EVERY + 1e-9)

    def line(self) -> str:
        """``progress: 1200/12000 replicates (10%), 8/80 chunks, 350 replicates/s, ETA 31 s``."""
        elapsed = time.monotonic() - (self.started or time.monotonic())
        rate = self.computed / elapsed if elapsed > 0 else float("inf")
        left = self.work - self.work_done
        share = self.work_done / max(self.work, 1)  # of the work: replicates × n
        pace = self.work_computed / elapsed if elapsed > 0 else float("inf")
        text = (
            f"progress: {self.replicates_done}/{self.replicates} replicates ({share:.0%}), "
            f"{self.chunks_done}/{self.chunks} chunks, "
            f"{f'{rate:,.0f}' if rate >= 10 else f'{rate:.2g}'} replicates/s"
        )
        if left == 0:
            return f"{text}, took {_duration(elapsed)}"
        return f"{text}, ETA {_duration(left / pace) if pace > 0 else '?'}"


def _work(task: Task) -> int:
    """A chunk's work: its replicates times the sample size (data points drawn and fitted)."""
    return (task.stop - task.start) * int(task.condition.factors.get("n", 1))


def progress_bar(progress: bool | None, total: int = 0) -> Progress:
    """The run's :class:`Progress` over ``total`` chunks (more join as they are planned):
    a tqdm bar when ``progress``, or on a terminal if None; log lines if None elsewhere."""
    return Progress(progress, total)


def execute(tasks: list[Task], runner: dict, progress: bool | None = None) -> list[dict]:
    """Run ``tasks`` and return their results in task order, whatever the schedule."""
    store = ChunkStore(None)
    with Pool(runner) as pool, progress_bar(progress) as bar:
        compute(tasks, store, pool, bar)
    return list(store.results(tasks))


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
        if spec["replications"] == "auto":  # planned round by round: assembled at the end

            def run(tasks: list[Task]) -> None:
                nonlocal computed
                computed += compute(tasks, store, pool, bar)

            tasks, report = sequential(spec, store, run)
            replicates, failures = collect(spec, tasks, store.results(tasks))
        else:  # each chunk goes into the tables as it arrives, resumed ones after
            tasks = plan(spec)
            assembly = Assembly(spec, tasks)
            computed = compute(tasks, store, pool, bar, assembly)
            resumed = [t for t in tasks if (t.key, t.chunk) not in assembly.added]
            for task in store.by_file(resumed):  # (each file read once)
                assembly.add(task, store.load(task))
            store.forget_read()
            replicates, failures = assembly.tables()
    return Simulation(replicates, failures, len(tasks), len(tasks) - computed, report)


def simulate(spec: StudySpec, progress: bool | None = None) -> pd.DataFrame:
    """Run the whole study in memory and return the replicates table."""
    return run_study(spec, progress=progress).replicates
