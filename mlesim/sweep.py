"""Sweeps seen together: one table, one failures table and one report from many runs.

A Hydra sweep (``python -m mlesim -m truth=normal,poisson n=[10,100],[20,200]``) leaves one
run directory per job. :func:`build` gathers them — from a sweep directory, or from any
set of run and sweep directories (a sweep resumed, or run on a cluster in pieces) — into

- ``sweep_summary.csv``: every job's summary rows, with one column per swept override key
  (``truth``, ``truth.params.p``, ``replications``, ...) holding the job's value, and
  ``job`` (the run directory's name);
- ``sweep_failures.csv``: every job's failed fits (failures.csv), with the same columns;
- ``sweep_report.md``: the jobs and their swept values — a job without results is listed
  as failed, never silently missing — and figures of bias, RMSE and coverage (± 2 MCSE)
  against the swept factors.

:class:`SweepReport` is the Hydra callback that runs :func:`build` at the end of every
multirun (so it also works with the SLURM and local launchers, which call it on the
submitting machine once all jobs are back); ``python -m mlesim.report DIR...`` runs it by
hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mlesim.storage import write_csv

#: override keys that never count as swept factors (they change nothing in the numbers)
NOT_FACTORS = ("runner.", "hydra.", "name")
#: the measures drawn against the swept factors, with their MCSE columns
MEASURES = {"bias": "bias_mcse", "rmse": None, "coverage": "coverage_mcse"}


@dataclass
class Job:
    """One run directory of a sweep: its overrides (key → parsed value) and tables."""

    path: Path
    overrides: dict[str, Any]
    summary: pd.DataFrame | None
    failures: pd.DataFrame | None
    error: str = ""
    name: str = ""

    @property
    def ok(self) -> bool:
        """True when the run finished (it wrote summary.csv) and was not refused (a job
        refused in a directory holding older results leaves error.txt beside them)."""
        return self.summary is not None and not self.error


def _parse(value: str) -> Any:
    """An override value as YAML would read it (``0.1`` → 0.1, ``[10,100]`` → a list)."""
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    return str(parsed) if isinstance(parsed, list | dict) else parsed


def read_job(path: Path) -> Job:
    """The overrides and tables of the run directory ``path``."""
    record = path / ".hydra" / "overrides.yaml"
    items = yaml.safe_load(record.read_text(encoding="utf-8")) if record.exists() else []
    overrides = {}
    for item in items or []:
        key, _, value = str(item).partition("=")
        overrides[key.lstrip("+~")] = _parse(value)
    summary = pd.read_csv(path / "summary.csv") if (path / "summary.csv").exists() else None
    fails = path / "failures.csv"
    failures = pd.read_csv(fails) if fails.exists() and fails.stat().st_size else None
    error = (
        (path / "error.txt").read_text(encoding="utf-8").strip()
        if (path / "error.txt").exists()
        else ""
    )
    return Job(path, overrides, summary, failures, error, path.name)


def find_jobs(dirs: list[Path]) -> list[Job]:
    """Every run directory under ``dirs`` (a directory holding ``.hydra/``), in order."""
    seen, jobs = set(), []
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise FileNotFoundError(f"{d}: not a directory")
        candidates = [d] if (d / ".hydra").is_dir() else []
        candidates += sorted(p.parent for p in d.rglob(".hydra") if p.parent != d)
        for path in candidates:
            if path.resolve() not in seen and (path / ".hydra" / "config.yaml").exists():
                seen.add(path.resolve())
                jobs.append(read_job(path))
    names = [j.name for j in jobs]
    for job in jobs:  # pieces from different sweeps: 0_x of each, told apart by their sweep
        if names.count(job.name) > 1:
            job.name = f"{job.path.parent.name}/{job.path.name}"
    return jobs


def swept_keys(jobs: list[Job]) -> list[str]:
    """Override keys whose value differs between jobs (the sweep's factors), in the order
    they first appear; run-only settings (``runner.*``, ``name``) excluded."""
    keys: dict[str, set] = {}
    for job in jobs:
        for key, value in job.overrides.items():
            if not key.startswith(NOT_FACTORS):
                keys.setdefault(key, set()).add(repr(value))
    present = {k for k in keys if all(k in j.overrides for j in jobs)}
    return [k for k, v in keys.items() if len(v) > 1 or (k not in present)]


def _tagged(job: Job, table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """``table`` with ``job`` and the swept keys in front; a key that is already a column
    (``n``, a design factor) keeps its per-row values."""
    front = {"job": job.name}
    front.update({k: job.overrides.get(k) for k in keys if k not in table.columns})
    out = table.copy()
    for i, (k, v) in enumerate(front.items()):
        out.insert(i, k, v)
    return out


def tables(jobs: list[Job], keys: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(sweep summary, sweep failures): the jobs' tables with ``job`` and the swept keys."""
    summaries = [_tagged(j, j.summary, keys) for j in jobs if j.ok]
    failures = [_tagged(j, j.failures, keys) for j in jobs if j.failures is not None]
    empty = pd.DataFrame(columns=["job", *keys])
    return (
        pd.concat(summaries, ignore_index=True) if summaries else empty,
        pd.concat(failures, ignore_index=True) if failures else empty,
    )


def build(dirs: list[Path], out: Path | None = None) -> Path:
    """Gather the runs under ``dirs`` into ``out`` (default: the one directory given):
    sweep_summary.csv, sweep_failures.csv, sweep_report.md and figures/. Returns the
    report's path.

    Raises
    ------
    ValueError
        No run directory found, or several directories and no ``out``.
    """
    dirs = [Path(d) for d in dirs]
    if out is None:
        if len(dirs) != 1:
            raise ValueError("several directories: say where to write with --out DIR")
        out = dirs[0]
    jobs = find_jobs(dirs)
    if not jobs:
        raise ValueError(
            f"no run directory (one holding .hydra/) under {', '.join(map(str, dirs))}"
        )
    keys = swept_keys(jobs)
    summary, failures = tables(jobs, keys)
    out = Path(out)
    write_csv(out / "sweep_summary.csv", summary)
    write_csv(out / "sweep_failures.csv", failures)
    from mlesim.sweep_report import write_sweep_report  # matplotlib only when drawing

    return write_sweep_report(out, jobs, keys, summary, failures)


try:  # the callback needs Hydra, which every mlesim install has
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover
    Callback = object


class SweepReport(Callback):
    """Hydra callback: at the end of a multirun, :func:`build` in the sweep directory.

    Registered in ``conf/config.yaml`` under ``hydra.callbacks``. A failure here is
    logged, not raised: the jobs' own results are already on disk.
    """

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        """The command paused Python's collector for its start-up; the jobs' process
        turns it on before a job runs, but with a launcher whose jobs run elsewhere
        (``hydra/launcher=local``, ``slurm``) this process only waits and then reports:
        its collector goes back on here (:mod:`mlesim.collector`)."""
        from mlesim import collector

        collector.resume()

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        import logging

        log = logging.getLogger("mlesim")
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            path = build([sweep_dir])
        except (OSError, ValueError) as err:
            log.warning("sweep report not written: %s", err)
            return
        log.info("sweep summary and report in %s", path.parent)
