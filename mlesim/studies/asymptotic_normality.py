"""Study ``asymptotic_normality``: the standardised estimates
z = (θ̂ − θ) / sqrt(CRLB) = √(n / [I(θ)⁻¹]_jj) (θ̂ − θ) approach N(0, 1).

Figures (per design cell):

- ``normality_qq_<param>.png``: QQ plots of z against N(0, 1) at several n, with the
  line y = x and the ±2 MCSE band within which the quantiles of an exactly normal
  sample of the same size fall (:func:`mlesim.analysis.qq_envelope`);
- ``normality_distance.png``: the Kolmogorov–Smirnov (or Anderson–Darling) distance
  of z to N(0, 1) against n, ±2 bootstrap MCSE, beside the distance expected from
  Monte Carlo noise alone (median and 5–95% range for an exactly normal sample of
  the same size; median ≈ 0.83/√R for KS) and a reference slope n^(−1/2) (the
  Berry–Esseen rate of a skewed statistic), anchored at the smallest n.

Every estimator is standardised by the same bound, so a non-efficient estimator's z
has variance 1 / efficiency rather than 1.

Options (``analysis.*``): ``distance`` (``ks`` | ``ad``), ``qq_n`` (sample sizes of the
QQ panels; null: up to four spread over the grid), ``n_boot`` (bootstrap resamples of
the distance's MCSE, 200).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from mlesim import analysis, plots
from mlesim.errors import ConfigError
from mlesim.studies._common import (
    cell_scenario,
    check_choice,
    first_to_last,
    merged_options,
    misspecified_note,
    studied_params,
)

if TYPE_CHECKING:
    from mlesim.studies import Rendered, StudyContext

OPTIONS: dict = {"distance": "ks", "qq_n": None, "n_boot": 200}

NAMES = {"ks": "Kolmogorov–Smirnov distance", "ad": "Anderson–Darling A²"}
QQ_PANELS = 4
#: plotting positions kept in a QQ panel (all of them when R is at most this)
QQ_POINTS = 400


def check(config: dict) -> None:
    """``distance`` known, ``n_boot`` ≥ 2, ``qq_n`` a sub-list of ``n``."""
    opts = merged_options(config, OPTIONS)
    check_choice(opts["distance"], "distance", analysis.DISTANCES)
    boot = opts["n_boot"]
    if isinstance(boot, bool) or not isinstance(boot, int) or boot < 2:
        raise ConfigError("analysis.n_boot", f"must be an integer >= 2, got {boot!r}")
    qq = opts["qq_n"]
    if qq is not None:
        if not isinstance(qq, list) or not qq or any(v not in config["n"] for v in qq):
            raise ConfigError(
                "analysis.qq_n",
                f"must be a non-empty list of values of n {config['n']}, got {qq!r}",
            )


def qq_sizes(ns: Iterable, chosen: list | None) -> list:
    """The n of the QQ panels: ``chosen``, or up to four spread over the sorted grid."""
    ns = sorted(ns)
    if chosen:
        return sorted(chosen)
    idx = np.unique(np.round(np.linspace(0, len(ns) - 1, min(QQ_PANELS, len(ns)))).astype(int))
    return [ns[i] for i in idx]


def _qq_panel(ax, reps, n, param, estimators, distance: str) -> None:
    """QQ plot of every estimator's z at sample size ``n``."""
    from scipy import stats

    title = [f"n = {n:g}"]
    r = 0
    for est in estimators:
        z = reps.loc[(reps["n"] == n) & (reps["estimator"] == est), "z"].to_numpy(float)
        z = np.sort(z[np.isfinite(z)])
        if z.size < 2:
            continue
        r = max(r, z.size)
        probs = (np.arange(1, z.size + 1) - 0.5) / z.size
        keep = np.unique(np.linspace(0, z.size - 1, min(z.size, QQ_POINTS)).astype(int))
        ax.plot(stats.norm.ppf(probs[keep]), z[keep], ".", ms=3, label=est)
        title.append(f"{distance.upper()} {float(analysis.normality_distance(z, distance)):.3f}")
    if r:
        probs = np.linspace(0.5 / r, 1 - 0.5 / r, 200)
        q, mcse = analysis.qq_envelope(probs, r)
        ax.plot(q, q, "k-", lw=1, label="N(0, 1): y = x")
        plots.band(ax, q, q, mcse, f"±2 MCSE, R = {r}", color="k")
    plots.label_axes(ax, "N(0, 1) quantile", f"quantile of z for {param}", title="; ".join(title))


def _distance_panel(ax, table, param, distance: str) -> list[str]:
    """Distance against n per estimator, with the Monte Carlo noise floor."""
    rows_all = table[table["param"] == param]
    ns = np.sort(rows_all["n"].unique()).astype(float)
    r = int(rows_all["n_rep"].max())
    lo, mid, hi = analysis.null_distance(r, [0.05, 0.5, 0.95], distance)
    fragments = []
    groups = list(dict.fromkeys(rows_all["estimator"]))
    for i, est in enumerate(groups):
        rows = rows_all[rows_all["estimator"] == est].sort_values("n")
        x = plots.dodge(rows["n"], i, len(groups))
        plots.errorbars(ax, x, rows["distance"], rows["distance_mcse"], est)
        first, last = rows.iloc[0], rows.iloc[-1]
        fragments.append(
            f"{est}: {first_to_last(rows, 'distance', 'distance_mcse', 4)} "
            f"(noise median {last['noise_median']:.4f})"
        )
        if i == 0 and first["distance"] > hi:  # a guide only where noise does not dominate
            d0, n0 = first["distance"], first["n"]
            grid = np.geomspace(rows["n"].min(), rows["n"].max(), 50)
            ax.plot(grid, d0 * np.sqrt(n0 / grid), ":", color="grey", label="∝ n^(−1/2) guide")
    ax.axhline(mid, color="k", lw=1.2, label=f"noise only: median, R = {r}")
    ax.fill_between(ns, lo, hi, color="k", alpha=0.12, lw=0, label="noise only: 5–95%")
    plots.label_axes(ax, "sample size n", NAMES[distance], title=param, logx=True, logy=True)
    return fragments


def render(ctx: StudyContext) -> Rendered:
    """QQ figures per parameter and one distance figure per design cell."""
    figures, notes = [], []
    opts = ctx.options
    distance = opts["distance"]
    keys = ctx.spec.factor_names
    for cell, summary in analysis.design_cells(ctx.summary, ctx.design_keys):
        reps = analysis.attach_targets(analysis.cell_rows(ctx.replicates, cell), summary, keys)
        reps = reps[reps["converged"].astype(bool)].copy()
        reps["z"] = analysis.standardise(reps["estimate"], reps["true_value"], reps["crlb"])
        notes.append(misspecified_note(cell_scenario(ctx.spec, cell), cell))
        params = studied_params(summary)
        estimators = list(dict.fromkeys(summary["estimator"]))
        sizes = qq_sizes(summary["n"].unique(), opts["qq_n"])
        suffix, title = plots.cell_suffix(cell), plots.cell_title(cell)
        for param in params:
            fig, axes = plots.new_figure(ncols=len(sizes), width=3.8, height=3.8)
            ests = [
                e for e in estimators if ((reps["param"] == param) & (reps["estimator"] == e)).any()
            ]
            for ax, n in zip(axes[0], sizes, strict=True):
                _qq_panel(ax, reps[reps["param"] == param], n, param, ests, distance)
            fig.suptitle(f"QQ plots of z = (θ̂ − θ)/√CRLB for {param}{title}", fontsize=11)
            path = plots.save(fig, ctx.figdir / f"normality_qq_{param}{suffix}.png")
            figures.append(
                (
                    path,
                    f"QQ plots of the standardised estimates of {param}{title} against "
                    "N(0, 1) at several n; band: ±2 MCSE of the quantiles of an exactly "
                    "normal sample of the same size",
                )
            )
        table = analysis.normality_table(
            reps,
            by=("n", "estimator", "param"),
            method=distance,
            n_boot=opts["n_boot"],
            seed=ctx.spec["seed"],
        )
        fig, axes = plots.new_figure(ncols=len(params))
        for ax, param in zip(axes[0], params, strict=True):
            fragments = _distance_panel(ax, table, param, distance)
            notes.append(
                f"**{param}**{title}, {NAMES[distance]} of z to N(0, 1) ± bootstrap MCSE: "
                + "; ".join(fragments)
                + "."
            )
        fig.suptitle(f"Distance of z to N(0, 1) against n{title}", fontsize=11)
        path = plots.save(fig, ctx.figdir / f"normality_distance{suffix}.png")
        figures.append(
            (
                path,
                f"{NAMES[distance]} of the standardised estimates to N(0, 1) against n{title}"
                f", ±2 bootstrap MCSE; black: what Monte Carlo noise alone gives; dotted: "
                "slope n^(−1/2) for reference",
            )
        )
    return figures, [n for n in notes if n]
