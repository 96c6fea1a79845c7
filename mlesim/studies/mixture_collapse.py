"""Study ``mixture_collapse``: the Gaussian-mixture likelihood is unbounded, so its MLE
does not exist; EM can run into the singularity, and a variance floor or a prior on the
variances removes it.

A component centred on one observation x_i with σ²_k → 0 sends the likelihood to +∞
(w_k φ(x_i; x_i, σ²_k) = w_k / √(2πσ²_k); Kiefer & Wolfowitz 1956; Day 1969; McLachlan &
Peel 2000, §3.8.1). :func:`mlesim.mixture.em` stops a run there and reports it
(``converged`` False, reason starting ``"collapsed"``); with several starts the one of
highest log-likelihood is kept, a diverged one counting as +∞, so a replicate whose best
start collapsed is collapsed — it is never silently restarted. A floor
σ²_k ≥ c (Hathaway 1985) or an inverse-gamma(a, b) prior on each σ²_k (the MAP of
Ciuperca, Ridolfi & Idier 2003) bounds the objective, so those fits cannot collapse.

Shown: the share of fits that collapsed against n per estimator, with its binomial
Monte Carlo SE √(s(1 − s)/R) (exactly 0 for the floor and the prior — no theory line
is needed there: their objective is bounded), the other failure reasons counted
separately, and the bias of every parameter over each estimator's successful fits. The
local MLE at the true components is consistent (Redner & Walker 1984), so its bias → 0,
at the rate O(1/n) of a smooth M-estimator; the MAP's prior term is O(1) against the
O(n) log-likelihood, so its bias is O(1/n) too. No finite-sample bias formula exists
for EM's output, so the bias panels carry the 0 line only; the report says how far from
0 the largest n is, in MCSEs.

The number of components K is the truth's (``truth.params.weights``); vary it with a
sweep over truths, ``python -m mlesim -m experiment=mixture_collapse
truth=gaussian_mixture,gaussian_mixture_k3`` (one run per K, then sweep_report.md).

References
----------
Ciuperca, Ridolfi & Idier (2003) Scand J Statist 30:45–59. Day (1969) Biometrika
56:463–474. Hathaway (1985) Ann Statist 13:795–800. Kiefer & Wolfowitz (1956) Ann Math
Statist 27:887–906. McLachlan & Peel (2000) Finite Mixture Models, Wiley. Redner & Walker
(1984) SIAM Review 26:195–239.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlesim import plots
from mlesim.errors import ConfigError
from mlesim.failures import FAILURE_COLUMNS

if TYPE_CHECKING:
    from mlesim.studies import Rendered, StudyContext

OPTIONS: dict = {}
COLLAPSED = "collapsed"
#: what stands for the reason of a failed fit when failures.csv is not beside the figures
UNKNOWN = "reason unknown (failures.csv not found beside figures/)"


# ------------------------------------------------------------- failures with reasons
def fit_reasons(ctx: StudyContext) -> tuple[pd.DataFrame, bool]:
    """One row per fit (design factors, ``estimator`` as str, ``replicate``,
    ``converged``, ``reason``: '' for a success, the estimator's reason for a failure)
    and whether the reasons are known.

    The study context holds the replicates but not the failures table; the run's
    failures.csv is written beside ``figures/`` before the study renders
    (:func:`mlesim.pipeline.run_pipeline`), and is used when it lists exactly the failed
    fits of ``ctx.replicates``. Otherwise (figures drawn elsewhere, e.g.
    ``Results.figures(directory)``) every failure gets :data:`UNKNOWN`.
    """
    keys = ctx.spec.factor_names
    cols = [*keys, "estimator", "replicate"]
    fits = ctx.replicates.drop_duplicates(cols)[[*cols, "converged"]].copy()
    fits["estimator"] = fits["estimator"].astype(str)
    fits = fits.reset_index(drop=True)
    failures = _read_failures(Path(ctx.figdir).parent / "failures.csv", cols)
    if failures is not None:
        merged = fits.merge(failures[[*cols, "reason"]], on=cols, how="left")
        failed = ~merged["converged"].to_numpy(bool)
        if len(merged) == len(fits) and np.array_equal(failed, merged["reason"].notna()):
            merged["reason"] = merged["reason"].fillna("").astype(str)
            return merged, True
    fits["reason"] = np.where(fits["converged"], "", UNKNOWN)
    return fits, False


def _read_failures(path: Path, cols: list[str]) -> pd.DataFrame | None:
    """failures.csv with its key columns, or None (missing, empty or another layout)."""
    if not path.is_file():
        return None
    if path.stat().st_size == 0:
        return pd.DataFrame(columns=[*cols, *FAILURE_COLUMNS[2:]])
    table = pd.read_csv(path)
    if not set(cols) | {"reason"} <= set(table.columns):
        return None
    table["estimator"] = table["estimator"].astype(str)
    return table


def reason_share(fits: pd.DataFrame, keys: list[str], prefix: str | None) -> pd.DataFrame:
    """Per design cell (``keys``) and estimator: the share of fits whose reason starts
    with ``prefix`` (None: every failed fit), its binomial Monte Carlo SE
    √(s(1 − s)/R), the count and R."""
    hit = fits["reason"] != "" if prefix is None else fits["reason"].str.startswith(prefix)
    grouped = hit.groupby([fits[k] for k in [*keys, "estimator"]], sort=False)
    out = grouped.agg(count="sum", total="size").reset_index()
    out["share"] = out["count"] / out["total"]
    out["mcse"] = np.sqrt(out["share"] * (1 - out["share"]) / out["total"])
    return out


# --------------------------------------------------------------------------- checks
def check(config: dict) -> None:
    """Needs a Gaussian-mixture truth and no design factor besides n (K is varied by
    a sweep over truths)."""
    if config["truth"].get("family") != "gaussian_mixture":
        raise ConfigError("truth", "study mixture_collapse needs truth=gaussian_mixture")
    design = config.get("design") or {}
    if design:
        raise ConfigError(
            f"design.{next(iter(design))}",
            "study mixture_collapse draws against n alone; allowed: no design factor — vary "
            "K with -m truth=gaussian_mixture,gaussian_mixture_k3",
        )


# ------------------------------------------------------------------------- figures
def failure_figure(ctx: StudyContext, collapsed: pd.DataFrame, other: pd.DataFrame, known):
    """Left: the share of fits that collapsed against n per estimator; right: the
    share that failed for another reason; ± 2 binomial MCSE."""
    fig, axes = plots.new_figure(ncols=2, width=4.8, height=4.0)
    labels = list(ctx.spec["estimators"])
    for ax, table in zip(axes[0], (collapsed, other), strict=True):
        for i, label in enumerate(labels):
            rows = table[table["estimator"] == label].sort_values("n")
            x = plots.dodge(rows["n"], i, len(labels))
            plots.errorbars(ax, x, rows["share"], rows["mcse"], label, color=f"C{i}")
        top = max(ax.get_ylim()[1], 0.01)
        ax.set_ylim(-0.05 * top, top)  # the zeros stay visible above the axis
    what = "collapsed (σ²_k → 0)" if known else "failed (reasons unknown)"
    plots.label_axes(axes[0, 0], "sample size n", "share of fits", what, logx=True)
    plots.label_axes(
        axes[0, 1], "sample size n", "share of fits", "failed for another reason", logx=True
    )
    axes[0, 0].get_legend().remove()
    plots.legend_outside(axes[0, 1])
    path = plots.save(fig, ctx.figdir / "mixture_collapse_failures.png")
    caption = (
        "Left: share of fits that collapsed — a component's variance went to 0 and the "
        "likelihood to +∞, so the MLE does not exist there (reason starting "
        '"collapsed") — against n per estimator; a floor or a prior bounds the '
        "likelihood, so theirs is exactly 0. Right: the share that failed for any other "
        "reason (e.g. EM not converged in its iterations). Points: simulation ± 2 "
        "binomial Monte Carlo SE."
    )
    return path, caption


def bias_figure(ctx: StudyContext, params: list[str], k: int):
    """Bias of every parameter against n per estimator over its successful fits: one
    row of panels per component, columns weight, mean, variance."""
    fig, axes = plots.new_figure(ncols=3, nrows=k, width=3.8, height=2.9)
    labels = list(ctx.spec["estimators"])
    for j, param in enumerate(params):
        ax = axes[j % k, j // k]
        for i, (label, rows) in enumerate(plots.by_estimator(ctx.summary, param).items()):
            x = plots.dodge(rows["n"], i, len(labels))
            color = f"C{labels.index(label)}"
            plots.errorbars(ax, x, rows["bias"], rows["bias_mcse"], label, color=color)
        ax.axhline(0.0, color="grey", lw=0.8, zorder=0)
        truth = float(ctx.summary.loc[ctx.summary["param"] == param, "true_value"].iloc[0])
        plots.label_axes(
            ax, "sample size n", f"bias of {param}", f"{param} (true {truth:g})", logx=True
        )
        ax.get_legend().remove()
    axes[0, -1].plot([], [], color="grey", lw=0.8, label="0: consistency")
    plots.legend_outside(axes[0, -1])
    path = plots.save(fig, ctx.figdir / "mixture_collapse_bias.png")
    caption = (
        "Bias of each parameter (components labelled by increasing mean) against n, per "
        "estimator over its successful fits — the MLE's leave out its collapsed fits, so "
        "its bias is conditional on a bounded likelihood. All tend to 0 (consistency); "
        "the prior pulls the variances towards its mode at small n. Points: simulation "
        "± 2 Monte Carlo SE."
    )
    return path, caption


# --------------------------------------------------------------------------- notes
def _share(row) -> str:
    if row["count"] == 0:
        return f"0 (0/{int(row['total'])})"
    return f"{plots.pm(row['share'], row['mcse'])} ({int(row['count'])}/{int(row['total'])})"


def failure_note(ctx, collapsed, fits, known, k) -> str:
    """The collapse claim in numbers, the other failures, and how failures are kept."""
    ns = sorted(collapsed["n"].unique())
    labels = list(ctx.spec["estimators"])
    lines = [
        f"**Seed claim: the Gaussian-mixture likelihood is unbounded (K = {k}), so EM can "
        "run into a collapsed component; a variance floor or a prior on the variances "
        "removes that.** Share of fits that "
        + ("collapsed" if known else "failed (reasons unknown: all failures)")
        + " ± binomial MCSE (count/R):",
        "",
        "| estimator | " + " | ".join(f"n = {n}" for n in ns) + " |",
        "|---" * (1 + len(ns)) + "|",
    ]
    for label in labels:
        rows = collapsed[collapsed["estimator"] == label].set_index("n")
        lines.append(f"| {label} | " + " | ".join(_share(rows.loc[n]) for n in ns) + " |")
    other = fits[(fits["reason"] != "") & ~fits["reason"].str.startswith(COLLAPSED)]
    lines.append("")
    if len(other):
        counts = other.groupby(["estimator", "reason"], sort=False).size()
        listed = "; ".join(f"{est}: '{why}' ×{c}" for (est, why), c in counts.items())
        lines.append(f"Other failures, counted apart from the collapses: {listed}.")
    else:
        lines.append("No fit failed for another reason.")
    starts = {lab: ctx.spec["estimators"][lab].get("n_init") or 1 for lab in labels}
    lines += [
        "",
        "A collapsed fit is a failure with its reason (failures.csv, reason starting "
        '"collapsed"): it is left out of every measure and counted in `n_failed`, never '
        "restarted to hide it. Each fit runs EM from its starts ("
        + ", ".join(f"{lab}: {s}" for lab, s in starts.items())
        + "); a replicate where the best start collapsed — a start that ran off to an "
        "infinite likelihood ranks best — is collapsed, because the MLE does not exist "
        "there (mlesim.mixture).",
        "",
        f"K is the truth's (here {k}); vary it with a sweep over truths, "
        "`python -m mlesim -m experiment=mixture_collapse "
        "truth=gaussian_mixture,gaussian_mixture_k3` (one run per K, gathered in "
        "sweep_report.md).",
    ]
    return "\n".join(lines)


def bias_note(ctx, params) -> str:
    """The bias at every n, its distance from 0 at the largest n, and which parameters
    are still more than 4 MCSE from 0 there."""
    ns = sorted(ctx.summary["n"].unique())
    last = ns[-1]
    lines = [
        "**Bias over each estimator's successful fits** (the MLE's conditional on not "
        f"collapsing) ± MCSE, and |bias|/MCSE at n = {last}:",
        "",
        "| estimator | parameter | " + " | ".join(f"n = {n}" for n in ns) + f" | z at {last} |",
        "|---" * (3 + len(ns)) + "|",
    ]
    far = []
    for label in ctx.spec["estimators"]:
        for param in params:
            rows = plots.by_estimator(ctx.summary, param).get(label)
            if rows is None or rows.empty:
                continue
            rows = rows.set_index("n")
            cells = [
                plots.pm(rows.loc[n, "bias"], rows.loc[n, "bias_mcse"]) if n in rows.index else "—"
                for n in ns
            ]
            end = rows.iloc[-1]
            z = abs(end["bias"]) / end["bias_mcse"] if end["bias_mcse"] > 0 else np.nan
            if z > 4:
                far.append(f"{label}'s {param} ({plots.pm(end['bias'], end['bias_mcse'])})")
            lines.append(f"| {label} | {param} | " + " | ".join(cells) + f" | {z:.1f} |")
    lines += [
        "",
        f"At n = {last} "
        + (
            "every bias is within 4 MCSE of 0"
            if not far
            else "every bias is within 4 MCSE of 0 except " + ", ".join(far)
        )
        + ". No finite-sample formula exists for the bias of EM's output; the local MLE "
        "at the true components is consistent (Redner & Walker 1984), and so is the MAP "
        "(its prior adds O(1) to an O(n) log-likelihood), so every bias tends to 0, at "
        "the rate 1/n. The inverse-gamma prior, whose mode is b/(a + 1), pulls the "
        "variances towards it, the more the fewer points a component holds.",
    ]
    return "\n".join(lines)


# -------------------------------------------------------------------------- render
def render(ctx: StudyContext) -> Rendered:
    """The collapse shares and other failures against n, the bias of every parameter,
    and the notes."""
    scen = ctx.spec.conditions[0].scenario
    params, k = list(scen.model.params), scen.model.K
    fits, known = fit_reasons(ctx)
    keys = ctx.spec.factor_names
    collapsed = reason_share(fits, keys, COLLAPSED if known else None)
    rest = fits.assign(
        reason=np.where(fits["reason"].str.startswith(COLLAPSED), "", fits["reason"])
    )
    other = reason_share(rest, keys, None)
    figures = [failure_figure(ctx, collapsed, other, known), bias_figure(ctx, params, k)]
    notes = [failure_note(ctx, collapsed, fits, known, k), bias_note(ctx, params)]
    return figures, notes
