"""One study from validated spec to run directory: generate and analyse (the engine),
summarise (metrics), then the study's figures and the run's report."""

from __future__ import annotations

import logging
from pathlib import Path

from mlesim.config import StudySpec
from mlesim.engine import simulate
from mlesim.report import write_report
from mlesim.storage import write_csv, write_parquet
from mlesim.studies import render_study
from mlesim.summarise import failure_counts, summarise

log = logging.getLogger("mlesim")


def run_pipeline(spec: StudySpec, outdir: Path, progress: bool | None = None) -> dict:
    """Run the study and write replicates.parquet, summary.csv, figures/ and report.md.

    Returns
    -------
    dict with the ``replicates`` and ``summary`` tables and the ``figures`` written.
    """
    outdir = Path(outdir)
    progress = spec["runner"]["progress"] if progress is None else progress
    replicates = simulate(spec, progress=progress)
    summary = summarise(spec, replicates)
    extended = summarise(spec, replicates, extended=True)
    write_parquet(outdir / "replicates.parquet", replicates)
    write_csv(outdir / "summary.csv", summary)
    write_csv(outdir / "summary_extended.csv", extended)
    failed, empty = failure_counts(summary)
    if failed:
        log.warning(
            "%d replicate fits failed and were left out of the measures (n_failed)%s",
            failed,
            f"; {empty} cell(s) had no successful fit and show NaN measures" if empty else "",
        )
    figures, notes = render_study(spec, replicates, summary, outdir / "figures")
    write_report(outdir / "report.md", spec, summary, figures, notes)
    log.info("results in %s", outdir)
    return {"replicates": replicates, "summary": summary, "figures": figures}
