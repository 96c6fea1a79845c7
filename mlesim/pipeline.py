"""One study from validated spec to run directory: generate and analyse (the engine,
through the run's chunk checkpoints), summarise (metrics), record failures, then the
study's figures and the run's report."""

from __future__ import annotations

import json
import logging
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mlesim.checkpoint import ChunkStore
from mlesim.config import StudySpec
from mlesim.engine import run_study
from mlesim.failures import warning_line
from mlesim.lock import RunDirInUse, run_lock
from mlesim.report import caveats, write_report
from mlesim.storage import write_csv, write_parquet, write_text
from mlesim.studies import render_study
from mlesim.summarise import split_summary, summarise

log = logging.getLogger("mlesim")


def run_pipeline(
    spec: StudySpec, outdir: Path, progress: bool | None = None, startup: float | None = None
) -> dict:
    """Run the study and write replicates.parquet, summary.csv, summary_extended.csv,
    failures.csv, figures/ and report.md; finished chunks are kept in ``chunks/``, so
    running again into the same directory resumes (``runner.resume``). ``startup``: the
    seconds the command took to get here (interpreter, imports, composition, validation),
    reported in the run log's line of phase times.

    Returns
    -------
    dict with the ``replicates``, ``summary`` and ``failures`` tables, the ``figures``
    written and the :class:`~mlesim.engine.Simulation` as ``simulation``.

    Raises
    ------
    RunDirInUse
        Another run holds the directory (:func:`mlesim.lock.run_lock`).
    """
    outdir = Path(outdir)
    with run_lock(outdir):  # one run at a time in a run directory
        return _run(spec, outdir, progress, startup)


def keep_record(outdir: Path) -> None:
    """Copy Hydra's record of this run (``.hydra/``, written just before the run) to
    ``chunks/hydra``: a command refused later — by validation or by the lock, after its
    Hydra has already rewritten ``.hydra/`` — gets the run's own record put back."""
    if (outdir / ".hydra").is_dir():
        shutil.copytree(outdir / ".hydra", outdir / "chunks" / "hydra", dirs_exist_ok=True)


#: settings that may change between a run and its resumption (they leave every finished
#: replicate as it is: more replications extend the run, the rest is presentation)
RESUMABLE = ("runner", "replications", "stopping", "analysis", "name")


def check_same_study(outdir: Path, spec: StudySpec) -> None:
    """Refuse to write into a run directory that holds another study's results.

    The run's configuration is kept in ``chunks/config.json``; a directory whose record
    differs from ``spec`` in anything but :data:`RESUMABLE` holds another study, whose
    report and figures this run would mix with its own.

    Raises
    ------
    RunDirInUse
        At ``hydra.run.dir``, naming the first key that differs.
    """
    record = outdir / "chunks" / "config.json"
    if not record.exists():
        return
    try:
        before = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # unreadable: the chunks' own fingerprints still guard every number
    now = json.loads(json.dumps(spec.config, default=repr))
    first = ["study", "truth", "model", "contamination", "estimators", "n", "seed", "design"]
    keys = sorted(
        (set(before) | set(now)) - set(RESUMABLE),
        key=lambda k: (k not in first, first.index(k) if k in first else 0, k),
    )
    differ = [k for k in keys if before.get(k) != now.get(k)]
    if differ:
        raise RunDirInUse(
            "hydra.run.dir",
            f"{outdir} holds the results of another study ({differ[0]} was "
            f"{_short(before.get(differ[0]))}, now {_short(now.get(differ[0]))}); allowed: a new "
            "directory (the default gives every run its own), or the same configuration "
            "to resume it",
        )


def _short(value) -> str:
    text = json.dumps(value, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."


class PhaseClock:
    """Wall-clock seconds of a run's phases, for one log line (where the time goes)."""

    def __init__(self, startup: float | None = None) -> None:
        self.last = time.perf_counter()
        self.phases: list[tuple[str, float]] = [] if startup is None else [("start-up", startup)]

    def lap(self, name: str) -> None:
        """Close the phase ``name`` now."""
        now = time.perf_counter()
        self.phases.append((name, now - self.last))
        self.last = now

    def line(self) -> str:
        """``"start-up 0.91 s, set-up 0.01 s, simulation 2.34 s, ... (total 3.42 s)"``."""
        parts = [f"{name} {secs:.2f} s" for name, secs in self.phases]
        total = sum(secs for _, secs in self.phases)
        return ", ".join(parts) + f" (total {total:.2f} s)"


def _run(spec: StudySpec, outdir: Path, progress: bool | None, startup: float | None) -> dict:
    """:func:`run_pipeline` under the run directory's lock."""
    clock = PhaseClock(startup)
    progress = spec["runner"]["progress"] if progress is None else progress
    for tmp in [*outdir.glob(".*.tmp"), *outdir.glob("figures/.*.tmp")]:  # a killed writer's
        tmp.unlink(missing_ok=True)
    chunks = outdir / "chunks"
    check_same_study(outdir, spec)
    keep_record(outdir)
    store = ChunkStore(chunks, resume=spec["runner"]["resume"])
    write_text(chunks / "config.json", json.dumps(spec.config, indent=1, default=repr))
    clock.lap("set-up")
    sim = run_study(spec, store, progress=progress)
    clock.lap("simulation")
    if sim.resumed:
        log.info("resumed %d of %d chunks from %s", sim.resumed, sim.chunks, chunks)
    replicates = sim.replicates
    with ThreadPoolExecutor(1, thread_name_prefix="mlesim-parquet") as beside:
        # (pyarrow encodes without the GIL: the table is written while the summary is made)
        parquet = beside.submit(write_parquet, outdir / "replicates.parquet", replicates)
        extended = summarise(spec, replicates, extended=True)
        parquet.result()
    summary = split_summary(extended, spec.factor_names)
    write_csv(outdir / "summary.csv", summary)
    write_csv(outdir / "summary_extended.csv", extended)
    write_csv(outdir / "failures.csv", sim.failures)
    clock.lap("summary and tables")
    line = warning_line(sim.failures, summary, spec.factor_names)
    if line:
        log.warning(line)
    if sim.stopping is not None:
        log.info(sim.stopping.summary_line())
        if sim.stopping.capped:
            log.warning(sim.stopping.capped_line())
    figures, notes = render_study(spec, replicates, summary, outdir / "figures")
    clock.lap("figures")
    warned = caveats(extended, spec.factor_names, spec["compare"])
    for note in warned:  # (the failure line above already speaks of the replicate sets)
        if not note.startswith("**Estimators on different replicate sets"):
            log.warning(note.split("**")[1].rstrip(".") + ". See report.md.")
    write_report(outdir / "report.md", spec, summary, figures, notes + warned)
    if (chunks / "hydra").is_dir():  # this run's record, whatever a refused command wrote
        shutil.copytree(chunks / "hydra", outdir / ".hydra", dirs_exist_ok=True)
    clock.lap("report")
    log.info("time: %s", clock.line())
    log.info("results in %s", outdir)
    return {
        "replicates": replicates,
        "summary": summary,
        "failures": sim.failures,
        "figures": figures,
        "simulation": sim,
    }
