"""Generic study: bias and RMSE against n for every estimator and parameter."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mlesim import analysis, plots
from mlesim.studies._common import cell_scenario, reference_rows, replicate_sets

if TYPE_CHECKING:
    from mlesim.studies import Rendered, StudyContext

OPTIONS: dict = {}


def check(config: dict) -> None:
    """No requirements: any family, model and estimators."""


def _figure(ctx, cell: dict, summary, param: str):
    """Bias (with the 0 line) and RMSE (with √CRLB) of ``param`` in one design cell."""
    from matplotlib.ticker import NullLocator

    fig, axes = plots.new_figure(ncols=2)
    groups = plots.by_estimator(summary, param)
    for i, (est, rows) in enumerate(groups.items()):
        x = plots.dodge(rows["n"], i, len(groups))
        plots.errorbars(axes[0, 0], x, rows["bias"], rows["bias_mcse"], est)
        mcse = analysis.rmse_mcse(rows["mse"], rows["mse_mcse"])
        plots.errorbars(axes[0, 1], x, rows["rmse"], mcse, est)
    logx = summary["n"].nunique() > 1
    axes[0, 0].axhline(0.0, color="k", lw=1, label="unbiased")
    rows = summary[summary["param"] == param]
    crlb = reference_rows(groups, ctx.spec).groupby("n", sort=True)["crlb"].first()
    if np.isfinite(crlb).any():
        wrong = cell_scenario(ctx.spec, {**cell, "n": int(crlb.index[0])}).misspecified
        label = "√CRLB of the assumed model at θ*" if wrong else "√CRLB"
        style = "k-" if len(crlb) > 1 else "k_"  # one n: a tick mark, not an empty line
        axes[0, 1].plot(crlb.index, np.sqrt(crlb.to_numpy()), style, ms=20, label=label)
    title = ", ".join(f"{k} = {v}" for k, v in cell.items()) or None
    plots.label_axes(axes[0, 0], "sample size n", f"bias of {param}", title=title, logx=logx)
    plots.label_axes(
        axes[0, 1], "sample size n", f"RMSE of {param}", title=title, logx=logx, logy=True
    )
    ns = sorted(rows["n"].unique())
    for ax in axes[0]:  # ticks at the simulated n only, set after the log scale (which resets
        ax.set_xticks(ns, [f"{v:g}" for v in ns])  # them), the points dodged around them
        ax.xaxis.set_minor_locator(NullLocator())  # no 3×10¹, 4×10¹, … labels
    path = plots.save(fig, ctx.figdir / f"summary_{param}{plots.cell_suffix(cell)}.png")
    caption = (
        f"Bias and RMSE of {param}{plots.cell_title(cell)} against n; {plots.mcse_note()}."
        + replicate_sets(rows)
    )
    return path, caption


def render(ctx: StudyContext) -> Rendered:
    """One figure per parameter and design cell: bias and RMSE against n. A parameter
    with no RMSE anywhere (its estimand at the edge, ν* = ∞, or no successful fit) has
    no figure; the report's notes say why."""
    figures = []
    for cell, summary in analysis.design_cells(ctx.summary, ctx.design_keys):
        for param in dict.fromkeys(summary["param"]):
            if np.isfinite(summary.loc[summary["param"] == param, "rmse"]).any():
                figures.append(_figure(ctx, cell, summary, param))
    return figures, []
