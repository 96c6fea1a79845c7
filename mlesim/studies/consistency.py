"""Study ``consistency``: the RMSE of every parameter falls as n^(−1/2), and
P(|θ̂ − θ| > δ) falls to 0 (weak consistency).

For each parameter of the model (generic over ``family.params``) one figure with two
panels:

- RMSE against n on log–log axes, ±2 MCSE, with the Cramér–Rao line √CRLB ∝ n^(−1/2)
  and, per estimator, the weighted least-squares power law fitted over n ≥
  ``analysis.fit_min_n`` (slope and its confidence interval in the legend and notes);
- P(|θ̂ − θ| > δ) against n with binomial ±2 MCSE bars and the normal approximation
  2 Φ(−δ / √CRLB).

Options (``analysis.*``):

- ``delta`` (0.1) and ``delta_scale`` (``information``): the tolerance δ of parameter j
  is ``delta · sqrt([I(θ)⁻¹]_jj)`` — in units of the one-observation asymptotic SD, so
  defined at θ = 0 and P ≈ 2 Φ(−delta √n) for every efficient estimator —, or
  ``delta · |θ_j|`` (``relative``), or ``delta`` itself (``absolute``). See
  :func:`mlesim.analysis.threshold`.
- ``fit_min_n`` (100): smallest n used in the slope fit, so that O(1/n) terms of small
  samples (e.g. the bias of 1/x̄) do not tilt the asymptotic rate; all n are used when
  fewer than two are this large.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlesim import analysis, plots
from mlesim.studies._common import (
    check_choice,
    check_min_sizes,
    check_positive,
    first_to_last,
    merged_options,
    reference_rows,
    studied_params,
)

if TYPE_CHECKING:
    from mlesim.studies import Rendered, StudyContext

OPTIONS: dict = {"delta": 0.1, "delta_scale": "information", "fit_min_n": 100}

DELTA_TEXT = {
    "information": "δ = {d:g}·√[I(θ)⁻¹]ⱼⱼ = {v:.4g}",
    "relative": "δ = {d:g}·|θ| = {v:.4g}",
    "absolute": "δ = {v:.4g}",
}


def check(config: dict) -> None:
    """At least two sample sizes; delta > 0; a known delta_scale; fit_min_n ≥ 1."""
    opts = merged_options(config, OPTIONS)
    check_min_sizes(config, "consistency")
    check_positive(opts["delta"], "delta")
    check_choice(opts["delta_scale"], "delta_scale", analysis.DELTA_SCALES)
    check_positive(opts["fit_min_n"], "fit_min_n")


def _sd_one(ref: pd.DataFrame) -> float:
    """sqrt([I(θ)⁻¹]_jj) = sqrt(n · crlb), the asymptotic SD from one observation."""
    values = np.sqrt(ref["n"].to_numpy(float) * ref["crlb"].to_numpy(float))
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else math.nan


def _fit_range(summary: pd.DataFrame, fit_min_n: float) -> str:
    """Which n the slope fit uses, in words (all of them when fewer than two reach
    ``fit_min_n``, as :func:`_fit` does)."""
    ns = np.unique(summary["n"].to_numpy())
    return f"n ≥ {fit_min_n:g}" if (ns >= fit_min_n).sum() >= 2 else "all n"


def _fit(rows: pd.DataFrame, fit_min_n: float, level: float) -> tuple[analysis.RateFit, list]:
    """Slope fit over n ≥ fit_min_n (all n if fewer than two qualify)."""
    mcse = analysis.rmse_mcse(rows["mse"], rows["mse_mcse"])
    use = rows["n"].to_numpy() >= fit_min_n
    if use.sum() < 2:
        use[:] = True
    n = rows["n"].to_numpy(float)[use]
    return analysis.rate_slope(n, rows["rmse"].to_numpy(float)[use], mcse[use], level), n


def _rmse_panel(ax, groups, ref, sd1, opts, level) -> list[str]:
    """RMSE with fitted slopes and √CRLB; returns one note fragment per estimator."""
    fragments = []
    ns = ref["n"].to_numpy(float)
    if math.isfinite(sd1):
        plots.theory_curve(ax, ns, lambda m: sd1 / np.sqrt(m), "√CRLB ∝ n^(−1/2)", color="k")
    for i, (est, rows) in enumerate(groups.items()):
        mcse = analysis.rmse_mcse(rows["mse"], rows["mse_mcse"])
        plots.errorbars(ax, plots.dodge(rows["n"], i, len(groups)), rows["rmse"], mcse, est)
        if np.isinf(rows["rmse"].to_numpy(float)).any():
            at = ", ".join(f"{n:g}" for n in rows.loc[np.isinf(rows["rmse"]), "n"])
            fragments.append(
                f"{est} infinite at n = {at} (estimates at the edge, e.g. ν̂ = ∞: no slope)"
            )
            ax.text(
                0.5,
                0.9,
                f"{est}: RMSE infinite at n = {at}\n(estimates at the edge)",
                ha="center",
                va="top",
                transform=ax.transAxes,
                fontsize=9,
            )
            continue
        fit, used = _fit(rows, opts["fit_min_n"], level)
        if math.isfinite(fit.slope):
            grid = np.geomspace(used.min(), used.max(), 50)
            ax.plot(
                grid,
                np.exp(fit.intercept) * grid**fit.slope,
                "--",
                lw=2,
                zorder=3,
                label=f"{est} fit: slope {fit.slope:.3f} [{fit.ci_low:.3f}, {fit.ci_high:.3f}]",
            )
        fragments.append(
            f"{est} slope {fit.slope:.3f} ± {fit.se:.3f} (SE), {100 * level:g}% CI "
            f"[{fit.ci_low:.3f}, {fit.ci_high:.3f}] over n = {used.min():g}–{used.max():g}"
        )
    return fragments


def _exceed_panel(ax, table, groups, delta, sd1) -> list[str]:
    """P(|θ̂ − θ| > δ) per estimator with the normal approximation at the CRLB."""
    fragments = []
    for i, est in enumerate(groups):
        rows = table[table["estimator"] == est].sort_values("n")
        x = plots.dodge(rows["n"], i, len(groups))
        plots.errorbars(ax, x, rows["exceed"], rows["exceed_mcse"], est)
        text = f"{est} P(|θ̂−θ|>δ) {first_to_last(rows, 'exceed', 'exceed_mcse', 3)}"
        if rows["n_inf"].any():
            counts = ", ".join(
                f"{int(k)} of {int(m)} at n = {n:g}"
                for n, k, m in rows[["n", "n_inf", "n_rep"]].itertuples(index=False)
                if k
            )
            text += f" (estimates at ±inf, counted as exceeding: {counts})"
            first = rows.iloc[0]
            ax.plot(
                [],
                [],
                " ",
                label=f"{est}: θ̂ = ±inf counted as > δ ({int(first['n_inf'])} of "
                f"{int(first['n_rep'])} at n = {first['n']:g})",
            )
        fragments.append(text)
    if math.isfinite(sd1):
        plots.theory_curve(
            ax,
            table["n"],
            lambda m: analysis.exceedance_normal(delta, sd1 / np.sqrt(m)),
            "normal approx. 2Φ(−δ/√CRLB)",
            color="k",
        )
    ax.axhline(0.0, color="grey", lw=0.8)
    return fragments


def _param_figure(ctx, cell, summary, reps, param):
    """One parameter's figure and its report note."""
    opts, level = ctx.options, cell.get("confidence", ctx.spec["confidence"])
    groups = plots.by_estimator(summary, param)
    ref = reference_rows(groups, ctx.spec)
    sd1 = _sd_one(ref)
    true = float(ref["true_value"].iloc[0])
    delta = float(analysis.threshold(true, sd1**2, 1, opts["delta"], opts["delta_scale"]))
    fig, axes = plots.new_figure(ncols=2)
    rmse_notes = _rmse_panel(axes[0, 0], groups, ref, sd1, opts, level)
    label = DELTA_TEXT[opts["delta_scale"]].format(d=opts["delta"], v=delta)
    plots.label_axes(axes[0, 0], "sample size n", f"RMSE of {param}", logx=True, logy=True)
    exceed_notes = []
    if math.isfinite(delta):
        rows = reps[reps["param"] == param]
        table = analysis.exceedance(rows, "true_value", delta, by=("n", "estimator", "param"))
        exceed_notes = _exceed_panel(axes[0, 1], table, groups, delta, sd1)
    else:
        axes[0, 1].text(
            0.5, 0.5, f"δ undefined ({label})", ha="center", transform=axes[0, 1].transAxes
        )
    plots.label_axes(
        axes[0, 1], "sample size n", f"P(|θ̂ − θ| > δ) for {param}", title=label, logx=True
    )
    fig.suptitle(f"Consistency of {param}{plots.cell_title(cell)}", fontsize=11)
    path = plots.save(fig, ctx.figdir / f"consistency_{param}{plots.cell_suffix(cell)}.png")
    caption = (
        f"Consistency of {param}{plots.cell_title(cell)}: RMSE against n (log–log) with "
        f"fitted power law ({_fit_range(summary, opts['fit_min_n'])}) and √CRLB; "
        "P(|θ̂−θ| > δ) with "
        f"{label}; {plots.mcse_note()}"
    )
    note = f"**{param}**{plots.cell_title(cell)}: RMSE " + "; ".join(rmse_notes)
    note += (
        " (expected −0.5)."
        if any("slope" in f and "no slope" not in f for f in rmse_notes)
        else "."
    )
    if exceed_notes:
        note += f" With {label}: " + "; ".join(exceed_notes) + "."
    return (path, caption), note


def render(ctx: StudyContext) -> Rendered:
    """Figures ``consistency_<param>[_<cell>].png``; notes with the fitted slopes."""
    figures, notes = [], []
    keys = ctx.spec.factor_names
    for cell, summary in analysis.design_cells(ctx.summary, ctx.design_keys):
        reps = analysis.attach_targets(analysis.cell_rows(ctx.replicates, cell), summary, keys)
        for param in studied_params(summary):
            figure, note = _param_figure(ctx, cell, summary, reps, param)
            figures.append(figure)
            notes.append(note)
    return figures, notes
