"""Study ``robustness``: outliers wreck the mean but not the median. Bias, RMSE and
coverage of location estimators against the contamination fraction ε, their efficiency
at ε = 0 and their breakdown points, each beside its asymptotic theory.

The data law is Tukey's contamination model F_ε = (1 − ε) N(μ, σ²) + ε G with G normal
(``contamination``); the estimand is the clean μ, so the bias is the damage the outliers
do. Theory (:mod:`mlesim.robust_theory`): the bias T(F_ε) − μ of each estimator's
functional, the RMSE √(bias² + V(F_ε)/n) where the asymptotic variance is known, the
efficiency relative to the mean at the clean normal (Huber k = 1.345: 0.95; median
2/π; Hodges–Lehmann 3/π), and the breakdown point (mean 0, median 1/2, a γ-trimmed
mean γ; Huber & Ronchetti 2009, *Robust Statistics*, ch. 1–3).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlesim import analysis, plots, robust_theory
from mlesim.config import flatten
from mlesim.errors import ConfigError
from mlesim.studies._common import cell_scenario

if TYPE_CHECKING:
    from mlesim.studies import Rendered, StudyContext

OPTIONS: dict = {}
FRACTION = "contamination.fraction"


def check(config: dict) -> None:
    """Needs normal truth and normal contamination. Its fraction ε is best a design
    factor (``design.contamination.fraction: [0, 0.05, ...]``, the figures' x-axis); a
    single ε (one job of a ``-m contamination.fraction=...`` sweep) gives one point."""
    if config["truth"].get("family") != "normal":
        raise ConfigError("truth", "study robustness needs truth=normal (its theory is normal)")
    others = [k for k in flatten(config.get("design") or {}) if k != FRACTION]
    if others:
        raise ConfigError(
            f"design.{others[0]}",
            f"study robustness draws against {FRACTION} alone; allowed: a design over "
            f"{FRACTION} only — sweep other settings with -m",
        )
    cont = config.get("contamination")
    if cont is None or cont.get("family") != "normal":
        raise ConfigError(
            "contamination",
            "study robustness needs normal contamination; allowed: contamination=outliers "
            "or contamination=gross_errors",
        )


def theory_name(spec: dict, model: str) -> tuple[str | None, dict]:
    """The :mod:`mlesim.robust_theory` functional of an estimator spec and its options,
    or (None, {}) when there is none (a t-model MLE, a plugin)."""
    kind = spec.get("kind")
    if kind == "mle" and model == "normal":
        return "mean", {}
    if kind in ("mean", "median", "hodges_lehmann"):
        return kind, {}
    options = {"huber": ("k",), "tukey": ("c",), "trimmed_mean": ("proportion",)}
    options["winsorized_mean"] = ("proportion",)
    if kind in options:
        return kind, {o: spec[o] for o in options[kind] if spec.get(o) is not None}
    return None, {}


def _outliers(ctx: StudyContext, scen) -> tuple[float, float]:
    """(centre, variance) of the contaminating normal: the cell's, or at ε = 0 (where the
    scenario has none) the configured one."""
    if scen.contamination is not None:
        return tuple(float(v) for v in scen.contamination.theta)
    params = ctx.spec["contamination"]["params"]
    return float(params["mu"]), float(params["sigma2"])


def _standardised(ctx: StudyContext, scen) -> tuple[float, float, float, float]:
    """(μ, σ, m, s²): the clean law's centre and scale, and the contamination's centre and
    variance in units of the clean law (the theory is for a N(0, 1) bulk)."""
    mu, s2 = scen.theta
    cm, cs2 = _outliers(ctx, scen)
    sigma = float(np.sqrt(s2))
    return float(mu), sigma, (cm - mu) / sigma, cs2 / s2


def _scenario(ctx: StudyContext, eps: float, n: int):
    """The scenario of the cell with contamination fraction ``eps`` at sample size n."""
    cell = {FRACTION: eps, "n": n} if FRACTION in ctx.design_keys else {"n": n}
    return cell_scenario(ctx.spec, cell)


def _with_fraction(ctx: StudyContext, table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with the ε column, filled with the run's one fraction if ε is not a
    design factor."""
    if FRACTION in table.columns:
        return table
    return table.assign(**{FRACTION: float(ctx.spec["contamination"]["fraction"])})


def theory_rows(ctx: StudyContext, summary: pd.DataFrame, param: str) -> pd.DataFrame:
    """Per estimator and ε of ``summary``: the asymptotic bias and RMSE (NaN where none)."""
    out = []
    for (label, eps, n), _ in summary.groupby(["estimator", FRACTION, "n"], observed=True):
        scen = _scenario(ctx, eps, int(n))
        bias, rmse = _curves(ctx, scen, label, np.array([float(eps)]), int(n))
        out.append(
            {
                "estimator": label,
                FRACTION: eps,
                "n": n,
                "theory_bias": bias[0],
                "theory_rmse": rmse[0],
            }
        )
    return pd.DataFrame(out)


def _curves(ctx, scen, label: str, eps: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The asymptotic bias T(F_ε) − μ and RMSE √(bias² + V/n) of an estimator at the
    fractions ``eps`` (NaN where there is no theory, or no variance)."""
    name, opts = theory_name(ctx.spec["estimators"][label], scen.model.name)
    if name is None:
        return np.full(eps.shape, np.nan), np.full(eps.shape, np.nan)
    mu, sigma, m, s2 = _standardised(ctx, scen)
    bias = np.array([sigma * robust_theory.functional(name, e, m, s2, **opts) for e in eps])
    var = []
    for e in eps:
        try:
            var.append(sigma**2 * robust_theory.asymptotic_variance(name, e, m, s2, **opts))
        except (NotImplementedError, ValueError):
            var.append(np.nan)
    return bias, np.sqrt(bias**2 + np.array(var) / n)


def _figure(ctx, summary, param: str, n: int, level: float):
    fig, axes = plots.new_figure(ncols=3, width=4.6)
    groups = _by_label(ctx, summary)
    eps_all = np.sort(summary[FRACTION].unique().astype(float))
    grid = np.linspace(0.0, eps_all.max(), 41)
    scen = _scenario(ctx, eps_all[0], n)
    for i, (label, rows) in enumerate(groups.items()):
        color = f"C{i}"
        x = rows[FRACTION].to_numpy(float) + (i - (len(groups) - 1) / 2) * 0.002
        shown = _display(ctx, label)
        plots.errorbars(axes[0, 0], x, rows["bias"], rows["bias_mcse"], shown, color=color)
        rmse_mcse = analysis.rmse_mcse(rows["mse"], rows["mse_mcse"])
        plots.errorbars(axes[0, 1], x, rows["rmse"], rmse_mcse, shown, color=color)
        plots.errorbars(axes[0, 2], x, rows["coverage"], rows["coverage_mcse"], shown, color=color)
        bias, rmse = _curves(ctx, scen, label, grid, n)
        axes[0, 0].plot(grid, bias, color=color, lw=1.2)
        axes[0, 1].plot(grid, rmse, color=color, lw=1.2)
    axes[0, 0].axhline(0.0, color="k", lw=0.8)
    axes[0, 2].axhline(level, color="k", lw=1, ls="--", label=f"nominal {level:g}")
    axes[0, 2].plot(
        [],
        [],
        "-",
        color="grey",
        lw=1.2,
        label="lines in the bias and RMSE\npanels: asymptotic theory",
    )
    title = f"n = {n}; outliers ~ {_law(ctx, scen)}"
    plots.label_axes(axes[0, 0], "contamination fraction ε", f"bias of {param}", title)
    plots.label_axes(axes[0, 1], "contamination fraction ε", f"RMSE of {param}", title, logy=True)
    plots.label_axes(
        axes[0, 2],
        "contamination fraction ε",
        f"coverage of the {level:.0%} interval for {param}",
        title,
    )
    for ax in axes[0, :2]:
        ax.get_legend().remove()
    plots.legend_outside(axes[0, 2])
    path = plots.save(fig, ctx.figdir / f"robustness_{param}_n={n}.png")
    caption = (
        f"Bias, RMSE and coverage of {param} against the contamination fraction ε at "
        f"n = {n}; lines: asymptotic theory (the estimator's functional at F_ε); "
        "points: simulation ± 2 Monte Carlo SE."
    )
    return path, caption


def _law(ctx: StudyContext, scen) -> str:
    m, s2 = _outliers(ctx, scen)
    return f"N({m:g}, {s2:g})"


def _display(ctx: StudyContext, label: str) -> str:
    """An estimator's label for legends: the label, and what an MLE of a non-normal
    model is (the t₃-MLE is not the mean)."""
    spec = ctx.spec["estimators"].get(label, {})
    model = ctx.spec.conditions[0].scenario.model
    if spec.get("kind") != "mle" or model.name == "normal":
        return label
    fixed = ", ".join(f"{k} = {v:g}" for k, v in (spec.get("fixed") or {}).items())
    return f"{label} ({model.name} MLE{', ' + fixed if fixed else ''})"


def relative_efficiency(reps: pd.DataFrame, label: str, reference: str) -> tuple[float, float]:
    """Var(reference) / Var(label) over the replicates both estimated, and its MCSE by
    the delta method on log Var ratio with the covariance of the squared deviations
    (the two estimators share their data sets)."""
    wide = reps.pivot_table(
        index="replicate", columns="estimator", values="estimate", observed=True
    )[[reference, label]].dropna()
    a, b = wide[reference].to_numpy(), wide[label].to_numpy()
    u, v = (a - a.mean()) ** 2, (b - b.mean()) ** 2
    r = len(u)
    ratio = u.mean() / v.mean()
    cov = np.cov(u / u.mean(), v / v.mean())
    var_log = (cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]) / r
    return float(ratio), float(ratio * np.sqrt(var_log))


def _efficiency_figure(ctx, reps, param, n, reference):
    fig, axes = plots.new_figure(width=6.4)
    ax = axes[0, 0]
    labels = [lab for lab in ctx.spec["estimators"] if (reps["estimator"] == lab).any()]
    scen = _scenario(ctx, 0.0, n)
    rows = []
    for i, label in enumerate(labels):
        eff, mcse = relative_efficiency(reps, label, reference)
        name, opts = theory_name(ctx.spec["estimators"][label], scen.model.name)
        theory = robust_theory.efficiency(name, **opts) if name else np.nan
        rows.append((label, eff, mcse, theory))
        plots.errorbars(ax, [i], [eff], [mcse], "simulation" if i == 0 else None, color="C0")
        ax.plot([i], [theory], "k_", ms=22, mew=2, label="asymptotic theory" if i == 0 else None)
    ax.set_xticks(
        range(len(labels)), [_display(ctx, lab) for lab in labels], rotation=30, ha="right"
    )
    ax.axhline(1.0, color="grey", lw=0.8)
    plots.label_axes(
        ax,
        "estimator",
        f"efficiency relative to {reference}",
        f"clean normal data (ε = 0), n = {n}",
    )
    path = plots.save(fig, ctx.figdir / f"robustness_efficiency_n={n}.png")
    caption = (
        f"Efficiency of each estimator of {param} relative to {reference} "
        f"(Var {reference} / Var estimator) at ε = 0, n = {n}; points: simulation ± 2 "
        "Monte Carlo SE (delta method); ticks: asymptotic relative efficiency at the "
        "normal."
    )
    return (path, caption), rows


def _breakdown_figure(ctx, summary, param: str, n: int):
    """Theory: the bias T(F_ε) − μ as the outliers move away (their centre m from 2σ to
    10³σ) at two contamination fractions; an estimator past its breakdown point follows
    the outliers (bias ∝ m), the others stay bounded. Points: the simulated bias at the
    configured outliers."""
    eps = np.sort(summary[FRACTION].unique().astype(float))
    below = [e for e in eps if 0 < e < 0.25]
    chosen = sorted({*(below[-1:]), float(eps.max())} - {0.0})
    if not chosen:
        return None
    fig, axes = plots.new_figure(ncols=len(chosen), width=4.8)
    scen = _scenario(ctx, chosen[-1], n)
    mu, sigma, m0, s2 = _standardised(ctx, scen)
    far = np.geomspace(2.0, 1e3, 60)
    groups = _by_label(ctx, summary)
    for ax, e in zip(axes[0], chosen, strict=True):
        for i, (label, rows) in enumerate(groups.items()):
            name, opts = theory_name(ctx.spec["estimators"][label], scen.model.name)
            if name is not None:
                bias = [robust_theory.functional(name, e, m, s2, **opts) for m in far]
                ax.plot(far, sigma * np.abs(bias), color=f"C{i}", lw=1.2, label=label)
            row = rows[rows[FRACTION] == e]
            if len(row) and m0 > 0:
                alone = f"{_display(ctx, label)} (simulated)" if name is None else None
                plots.errorbars(
                    ax, [m0], np.abs(row["bias"]), row["bias_mcse"], alone, color=f"C{i}"
                )
        plots.label_axes(
            ax,
            "outlier centre m (in σ of the clean data)",
            f"|bias| of {param}",
            f"ε = {e:g}",
            logx=True,
            logy=True,
        )
        ax.set_ylim(1e-3 * sigma, None)
        ax.get_legend().remove()
    plots.legend_outside(axes[0, -1])
    path = plots.save(fig, ctx.figdir / f"robustness_breakdown_n={n}.png")
    caption = (
        "Breakdown: the asymptotic |bias| as the outliers move away, at "
        + " and ".join(f"ε = {e:g}" for e in chosen)
        + "; an estimator whose breakdown point is below ε follows the outliers (|bias| grows "
        "with m), the others stay bounded (Tukey's redescends to 0). Points: simulation at "
        "the configured outliers ± 2 Monte Carlo SE."
    )
    return path, caption


def _note(ctx, summary, param, n, eff_rows, reference) -> str:
    eps = np.sort(summary[FRACTION].unique().astype(float))
    scen = _scenario(ctx, eps[0], n)
    shown = [e for e in eps if e > 0] or list(eps)
    theory = theory_rows(ctx, summary, param).set_index(["estimator", FRACTION])
    lines = [
        f"**Seed claim: outliers wreck the mean but not the median** (n = {n}, outliers "
        f"~ {_law(ctx, scen)}, estimand the clean {param}). Bias (simulation ± MCSE; asymptotic "
        "theory in brackets), efficiency at ε = 0 relative to the "
        f"{reference}, and the breakdown point:",
        "",
        "| estimator | "
        + " | ".join(f"bias at ε = {e:g}" for e in shown)
        + " | efficiency at ε = 0 | breakdown point |",
        "|---" * (len(shown) + 3) + "|",
    ]
    effs = {row[0]: row for row in eff_rows}
    for label, rows in _by_label(ctx, summary).items():
        rows = rows.set_index(FRACTION)
        cells = []
        for e in shown:
            r = rows.loc[e]
            t = theory.loc[(label, e), "theory_bias"]
            cells.append(
                plots.pm(r["bias"], r["bias_mcse"]) + (f" [{t:.3f}]" if np.isfinite(t) else "")
            )
        _, eff, mcse, teff = effs.get(label, (label, np.nan, np.nan, np.nan))
        name, opts = theory_name(ctx.spec["estimators"][label], scen.model.name)
        bp = f"{robust_theory.breakdown_point(name, **opts):.3g}" if name else "—"
        etext = "—" if not np.isfinite(eff) else plots.pm(eff, mcse)
        etext = "1 (the reference)" if label == reference else etext
        etext += f" [{teff:.3f}]" if np.isfinite(teff) else ""
        lines.append(f"| {_display(ctx, label)} | " + " | ".join(cells) + f" | {etext} | {bp} |")
    lines += ["", _verdict(ctx, summary, shown, reference)]
    return "\n".join(lines)


def _verdict(ctx, summary, shown, reference) -> str:
    """The claim in numbers: the mean's and the median's bias at the largest ε below 1/2,
    and where the asymptotic theory is to be read with care."""
    kinds = {lab: spec.get("kind") for lab, spec in ctx.spec["estimators"].items()}
    medians = [lab for lab, k in kinds.items() if k == "median"]
    e = max(shown)
    at = summary[summary[FRACTION] == e].set_index("estimator")
    text = ""
    if medians and reference in at.index:
        mean, med = at.loc[reference], at.loc[medians[0]]
        text = (
            f"At ε = {e:g} the {reference}'s bias is {plots.pm(mean['bias'], mean['bias_mcse'])}"
            f", the median's {plots.pm(med['bias'], med['bias_mcse'])}. "
        )
    return text + (
        "The bracketed values are asymptotic (n → ∞); near an estimator's breakdown point "
        "a finite sample departs from them, because the number of outliers in a sample is "
        "binomial and some samples hold more than the estimator can resist."
    )


def _by_label(ctx: StudyContext, summary: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Rows per estimator, in the configuration's order, sorted by ε."""
    return {
        lab: summary[summary["estimator"] == lab].sort_values(FRACTION)
        for lab in ctx.spec["estimators"]
        if (summary["estimator"] == lab).any()
    }


def render(ctx: StudyContext) -> Rendered:
    """Per n: bias, RMSE and coverage against ε; the efficiency at ε = 0; a note with
    the table of biases, efficiencies and breakdown points."""
    figures, notes = [], []
    level = float(ctx.spec["confidence"])
    scen = ctx.spec.conditions[0].scenario
    param = scen.model.center
    labels = list(ctx.spec["estimators"])
    names = [theory_name(ctx.spec["estimators"][lab], scen.model.name)[0] for lab in labels]
    reference = labels[names.index("mean")] if "mean" in names else labels[0]
    summary = _with_fraction(ctx, ctx.summary[ctx.summary["param"] == param])
    replicates = _with_fraction(ctx, ctx.replicates)
    for n, rows in summary.groupby("n"):
        figures.append(_figure(ctx, rows, param, int(n), level))
        broken = _breakdown_figure(ctx, rows, param, int(n))
        if broken is not None:
            figures.append(broken)
        reps = replicates[
            (replicates["n"] == n)
            & (replicates["param"] == param)
            & (replicates[FRACTION] == 0.0)
            & replicates["converged"]
        ]
        eff_rows = []
        if len(reps):
            fig, eff_rows = _efficiency_figure(ctx, reps, param, int(n), reference)
            figures.append(fig)
        notes.append(_note(ctx, rows, param, int(n), eff_rows, reference))
    return figures, notes
