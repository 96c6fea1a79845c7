"""Generic study: bias and RMSE against n for every estimator and parameter."""

from __future__ import annotations

import numpy as np

from mlesim import plots

OPTIONS: dict = {}


def render(ctx):
    """One figure per parameter: bias (with 0 line) and RMSE against √CRLB."""
    figures = []
    summary = ctx.summary
    if ctx.design_keys:  # first design cell only; the table has every cell
        first = summary[ctx.design_keys].iloc[0]
        for k in ctx.design_keys:
            summary = summary[summary[k] == first[k]]
    for param in dict.fromkeys(summary["param"]):
        fig, axes = plots.new_figure(ncols=2)
        groups = plots.by_estimator(summary, param)
        for est, rows in groups.items():
            plots.errorbars(axes[0, 0], rows["n"], rows["bias"], rows["bias_mcse"], est)
            plots.errorbars(
                axes[0, 1], rows["n"], rows["rmse"], rows["mse_mcse"] / (2 * rows["rmse"]), est
            )
        ns = summary["n"].unique()
        axes[0, 0].axhline(0.0, color="k", lw=1, label="unbiased")
        crlb = summary[summary["param"] == param].drop_duplicates("n").sort_values("n")
        if np.isfinite(crlb["crlb"]).any():
            axes[0, 1].plot(crlb["n"], np.sqrt(crlb["crlb"]), "k-", label="√CRLB")
        plots.label_axes(axes[0, 0], "sample size n", f"bias of {param}", logx=len(ns) > 1)
        plots.label_axes(
            axes[0, 1], "sample size n", f"RMSE of {param}", logx=len(ns) > 1, logy=True
        )
        path = plots.save(fig, ctx.figdir / f"summary_{param}.png")
        figures.append((path, f"Bias and RMSE of {param} against n; {plots.mcse_note()}"))
    return figures, []
