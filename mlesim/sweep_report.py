"""``sweep_report.md`` and its figures: each measure against the swept factors.

Conditions — the combinations of the swept keys, the runs' design factors and n — are laid
along the x axis in lexicographic order (the first swept key varying slowest, n fastest)
in a nested-loop plot (Rücker & Schwarzer 2014, BMC Med Res Methodol 14:129;
:func:`mlesim.plots.nested_loop_plot`); each estimator is one step line with ± 2 MCSE
bars, one figure per measure and parameter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mlesim import plots
from mlesim.analysis import rmse_mcse
from mlesim.metrics import SUMMARY_COLUMNS
from mlesim.storage import markdown_table, write_text

LABELS = {"bias": "bias", "rmse": "RMSE", "coverage": "coverage"}
REFERENCE = {"bias": 0.0}


def _text(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def factors(summary: pd.DataFrame, keys: list[str]) -> list[str]:
    """The condition columns of a sweep table, outermost first: the swept keys, then any
    design-factor columns of the runs, then n — those with more than one value."""
    standard = set(SUMMARY_COLUMNS) | {"job", "n", "estimator", "param", "rmse_mcse"}
    extra = [c for c in summary.columns if c not in standard and c not in keys]
    cols = [k for k in keys if k in summary.columns and k != "n"] + extra
    return [c for c in cols if summary[c].nunique(dropna=False) > 1] + ["n"]


#: a nested-loop plot of more conditions than this is not drawn (the table has them)
MAX_CONDITIONS = 64


def measure_figures(
    out: Path, summary: pd.DataFrame, keys: list[str], measure: str, skipped: list[str]
) -> list:
    """Nested-loop plots of ``measure`` (± 2 MCSE) over the sweep's conditions, one per
    parameter (:func:`mlesim.plots.nested_loop_plot`); returns [(path, param)]. A
    parameter whose runs span more than :data:`MAX_CONDITIONS` conditions (a sweep over
    unrelated presets) is listed in ``skipped`` instead."""
    table = summary.copy()
    if measure == "rmse":
        table["rmse_mcse"] = rmse_mcse(table["mse"], table["mse_mcse"])
    out_paths = []
    for param in dict.fromkeys(table["param"]):
        rows = table[table["param"] == param].copy()
        cols = factors(rows, keys)
        if rows.duplicated(subset=[*cols, "estimator"]).any():  # jobs alike in every key
            cols = ["job", *cols]
        for col in cols:  # a factor some runs do not have: a level of its own
            if rows[col].isna().any():
                rows[col] = rows[col].map(lambda v: "—" if pd.isna(v) else _text(v))
        size = int(np.prod([rows[c].nunique(dropna=False) for c in cols]))  # the full product
        if size > MAX_CONDITIONS:
            skipped.append(f"{LABELS[measure]} of {param}: {size} conditions")
            continue
        fig = plots.nested_loop_plot(rows, measure, factors=cols)
        fig.suptitle(f"{LABELS[measure]} of {param}", fontsize=11)
        path = plots.save(fig, out / "figures" / f"sweep_{measure}_{param}.png")
        out_paths.append((path, param))
    return out_paths


def write_sweep_report(
    out: Path, jobs: list, keys: list[str], summary: pd.DataFrame, failures: pd.DataFrame
) -> Path:
    """Write ``out/sweep_report.md`` (jobs, figures, the summary's main columns)."""
    lines = [
        "# Sweep report",
        "",
        f"{len(jobs)} runs, {sum(j.ok for j in jobs)} finished; swept: "
        + (", ".join(f"`{k}`" for k in keys) or "nothing (the runs share their overrides)")
        + ". Every job's rows are in `sweep_summary.csv` (one column per swept key), its "
        "failed fits in `sweep_failures.csv`.",
        "",
        "| " + " | ".join(["job", *keys, "status"]) + " |",
        "|---" * (len(keys) + 2) + "|",
    ]
    for job in jobs:
        values = [_text(job.overrides.get(k, "—")) for k in keys]
        if job.ok:
            status = "finished"
        elif job.error:
            status = f"**failed**: {job.error.replace('|', '/')}"
        else:
            status = "**failed: no summary.csv** (see its log)"
        lines.append("| " + " | ".join([job.name, *values, status]) + " |")
    lines.append("")
    for stale in (out / "figures").glob("sweep_*.png"):  # an earlier build's
        stale.unlink()
    skipped: list[str] = []
    if len(summary):
        for measure in MEASURES_ORDER:
            for path, param in measure_figures(out, summary, keys, measure, skipped):
                rel = path.relative_to(out).as_posix()
                caption = (
                    f"{LABELS[measure]} of {param} for each estimator over the swept "
                    "conditions (nested-loop plot; ± 2 Monte Carlo SE)"
                )
                lines += [f"![{caption}]({rel})", "", f"*{caption}.*", ""]
        if skipped:
            lines += [
                "Not drawn (too many conditions for one nested-loop plot; the rows are in "
                "`sweep_summary.csv`): " + "; ".join(skipped) + ".",
                "",
            ]
        shown = [
            c
            for c in [
                *keys,
                "n",
                "estimator",
                "param",
                "true_value",
                "n_rep",
                "bias",
                "bias_mcse",
                "rmse",
                "coverage",
                "coverage_mcse",
            ]
            if c in summary
        ]
        lines += ["## Summary", "", markdown_table(summary[shown]), ""]
    if len(failures):
        lines += [f"{len(failures)} failed fits in all; see `sweep_failures.csv`.", ""]
    return write_text(out / "sweep_report.md", "\n".join(lines))


MEASURES_ORDER = ("bias", "rmse", "coverage")
