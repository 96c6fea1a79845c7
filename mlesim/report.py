"""The run's ``report.md``: what was run, the figures, notes and the summary table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlesim.config import StudySpec
from mlesim.storage import write_text

SHOWN = [
    "estimator",
    "param",
    "true_value",
    "n_rep",
    "n_failed",
    "bias",
    "bias_mcse",
    "empse",
    "rmse",
    "coverage",
    "efficiency",
]


def markdown_table(df: pd.DataFrame, digits: int = 4) -> str:
    """A DataFrame as a GitHub Markdown table (no extra dependency)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        cells = [f"{v:.{digits}g}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(
    path: Path,
    spec: StudySpec,
    summary: pd.DataFrame,
    figures: list[tuple[Path, str]],
    notes: list[str],
) -> Path:
    """Write report.md beside the figures."""
    cfg = spec.config
    truth = cfg["truth"]
    design = cfg["design"] or {}
    params = ", ".join(
        f"{k} ∈ {design[f'truth.params.{k}']}" if f"truth.params.{k}" in design else f"{k}={v}"
        for k, v in (truth["params"] or {}).items()
    )
    head = [
        f"# {cfg['name']}: study `{cfg['study']}`",
        "",
        f"Truth: {truth['family']}({params}); model: {cfg['model'] or truth['family']}; "
        f"contamination: {cfg['contamination'] or 'none'}; "
        f"{cfg['replications']} replications per cell; seed {cfg['seed']}; "
        f"n = {cfg['n']}" + (f"; design: {cfg['design']}" if cfg["design"] else "") + ".",
        "",
    ]
    body = []
    for fig, caption in figures:
        rel = Path(fig).relative_to(Path(path).parent)
        body += [f"![{caption}]({rel.as_posix()})", "", f"*{caption}*", ""]
    body += [n + "\n" for n in notes]
    keys = [k for k in spec.factor_names]
    table = summary[keys + [c for c in SHOWN if c in summary.columns]]
    body += [
        "## Summary",
        "",
        markdown_table(table),
        "",
        "All columns, with Monte Carlo SEs, are in `summary.csv`.",
        "",
    ]
    return write_text(path, "\n".join(head + body))
