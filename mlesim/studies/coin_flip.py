"""Study ``coin_flip``: the seeds' Heads, Heads, Tail example, then the sampling
distribution of p̂ and the coverage of the Wald interval across n and p.

Theory drawn beside simulation: the likelihood p^k (1 − p)^(m − k) of the observed
flips; the exact Binomial(n, p)/n law of p̂; the exact Wald coverage (Brown, Cai &
DasGupta 2001).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mlesim import plots
from mlesim.config import require_kind
from mlesim.errors import ConfigError
from mlesim.families import get_family
from mlesim.theory import binomial_proportion_pmf, wald_coverage_binomial

if TYPE_CHECKING:
    from mlesim.studies import Rendered, StudyContext

OPTIONS: dict = {"data": [1, 1, 0], "histogram_n": [3, 10, 100]}
P_KEY = "truth.params.p"


def check(config: dict) -> None:
    """Needs bernoulli truth and an estimator of kind mle; ``analysis.data`` must be a
    list of 0/1 flips."""
    if config["truth"]["family"] != "bernoulli":
        raise ConfigError("truth", "study coin_flip needs truth=bernoulli")
    require_kind(config, "mle", "coin_flip")
    if "confidence" in (config.get("design") or {}):
        raise ConfigError(
            "design.confidence",
            "study coin_flip draws one coverage figure at one level; allowed: set "
            "confidence=<level> and sweep it with -m confidence=0.9,0.95",
        )
    hist = (config.get("analysis") or {}).get("histogram_n", OPTIONS["histogram_n"])
    if (
        not isinstance(hist, list)
        or not hist
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in hist)
    ):
        raise ConfigError(
            "analysis.histogram_n",
            f"must be a non-empty list of sample sizes, got {hist!r}; allowed: e.g. [3, 10, 100]",
        )
    data = (config.get("analysis") or {}).get("data", OPTIONS["data"])
    if not isinstance(data, list) or not data or any(v not in (0, 1) for v in data):
        raise ConfigError("analysis.data", f"must be a non-empty list of 0/1 flips, got {data!r}")


def likelihood(data: list[int], p: np.ndarray) -> np.ndarray:
    """L(p) = Π p^x (1 − p)^(1 − x) for the flips ``data``, at each p (shape (m,))."""
    fam = get_family("bernoulli")
    x = np.broadcast_to(np.asarray(data, dtype=float), (len(p), len(data)))
    return np.exp(fam.loglik(x, np.asarray(p, dtype=float)[:, None]))


def render(ctx: StudyContext) -> Rendered:
    """Three figures: likelihood, sampling distribution of p̂, Wald coverage."""
    data = list(ctx.options["data"])
    fig1, note1 = _likelihood_figure(ctx, data)
    fig2 = _sampling_figure(ctx)
    fig3, note3 = _coverage_figure(ctx)
    return [fig1, fig2, fig3], [note1, note3]


def _likelihood_figure(ctx, data):
    k, m = sum(data), len(data)
    grid = np.linspace(0, 1, 401)
    fig, axes = plots.new_figure()
    ax = axes[0, 0]
    ax.plot(grid, likelihood(data, grid), "-", label=rf"$L(p) = p^{{{k}}}\,(1-p)^{{{m - k}}}$")
    phat = k / m
    marks = [(0.5, "C1", "p = 0.5"), (phat, "C3", f"p̂ = {k}/{m} (maximum)")]
    values = {}
    for p, color, text in marks:
        value = float(likelihood(data, np.array([p]))[0])
        values[p] = value
        ax.plot([p], [value], "o", color=color, label=f"{text}: L = {value:.4f}")
        ax.axvline(p, color=color, lw=0.6, ls=":")
    seq = ", ".join("H" if v else "T" for v in data)
    plots.label_axes(ax, "p = P(heads)", "likelihood L(p)", f"Likelihood of {seq}")
    path = plots.save(fig, ctx.figdir / "coin_likelihood.png")
    note = (
        f"**Coin flips {seq}.** L(0.5) = {values[0.5]:.4f} and L({k}/{m}) = "
        f"{values[phat]:.4f}: the likelihood is higher at p̂ = {k}/{m}, its maximum "
        f"(for H, H, T: 0.125 vs 4/27 ≈ {4 / 27:.4f})."
    )
    return (path, "The likelihood of the observed flips with its maximum marked"), note


def _design_ps(ctx) -> list[float]:
    if P_KEY in ctx.summary.columns:
        return sorted(ctx.summary[P_KEY].unique())
    return [ctx.spec["truth"]["params"]["p"]]


def _rows(df, p):
    return df[df[P_KEY] == p] if P_KEY in df.columns else df


def _sampling_figure(ctx):
    ps = _design_ps(ctx)
    wanted = [n for n in ctx.options["histogram_n"] if n in set(ctx.summary["n"])]
    wanted = wanted or sorted(ctx.summary["n"].unique())[:3]
    fig, axes = plots.new_figure(ncols=len(wanted), nrows=len(ps), width=3.6, height=2.8)
    reps = ctx.replicates
    label = require_kind(ctx.spec.config, "mle", "coin_flip")
    mle = reps[(reps["estimator"] == label) & (reps["param"] == "p")]
    for i, p in enumerate(ps):
        for j, n in enumerate(wanted):
            ax = axes[i, j]
            est = _rows(mle, p)
            est = est[est["n"] == n]["estimate"].to_numpy()
            support, pmf = binomial_proportion_pmf(n, p)
            counts = np.array([(np.isclose(est, s)).sum() for s in support])  # loop over k
            freq = counts / max(len(est), 1)
            mcse = np.sqrt(freq * (1 - freq) / max(len(est), 1))
            width = 0.8 / n
            ax.bar(support, freq, width=width, alpha=0.5, label="simulated")
            ax.errorbar(support, freq, yerr=2 * mcse, fmt="none", ecolor="C0", capsize=2)
            ax.plot(support, pmf, "k.", ms=5, label="Binomial(n, p)/n")
            ax.axvline(p, color="C3", lw=0.8, ls="--", label="true p")
            plots.label_axes(ax, "p̂", "probability", f"n = {n}, p = {p:g}")
            seen = support[(pmf > 1e-4) | (counts > 0)]  # where the law has its mass
            pad = max(1.5 / n, 0.02)
            ax.set_xlim(max(seen.min() - pad, -0.06), min(seen.max() + pad, 1.06))
            ax.get_legend().remove()
    plots.legend_outside(axes[0, -1])
    path = plots.save(fig, ctx.figdir / "coin_sampling_distribution.png")
    return (
        path,
        f"Sampling distribution of the MLE p̂ against the exact binomial law; {plots.mcse_note()}",
    )


def _coverage_figure(ctx):
    level = ctx.spec["confidence"]
    fig, axes = plots.new_figure()
    ax = axes[0, 0]
    notes = []
    label = require_kind(ctx.spec.config, "mle", "coin_flip")
    rows = ctx.summary[(ctx.summary["param"] == "p") & (ctx.summary["estimator"] == label)]
    for i, p in enumerate(_design_ps(ctx)):
        r = _rows(rows, p).sort_values("n")
        plots.errorbars(
            ax, r["n"], r["coverage"], r["coverage_mcse"], f"p = {p:g}: simulated", color=f"C{i}"
        )
        ns = np.arange(int(r["n"].min()), int(r["n"].max()) + 1)
        exact = [wald_coverage_binomial(int(n), p, level) for n in ns]  # loop over n
        ax.plot(ns, exact, "-", color=f"C{i}", lw=1, label=f"p = {p:g}: exact")
        worst = r.loc[r["coverage"].idxmin()]
        notes.append(
            f"p = {p:g}: {plots.pm(worst['coverage'], worst['coverage_mcse'])} "
            f"at n = {int(worst['n'])}"
        )
    ax.axhline(level, color="k", lw=0.8, ls="--", label=f"nominal {level:g}")
    plots.label_axes(
        ax,
        "sample size n",
        "coverage of the Wald interval",
        "Wald interval p̂ ± z·√(p̂(1 − p̂)/n)",
        logx=True,
    )
    path = plots.save(fig, ctx.figdir / "coin_wald_coverage.png")
    note = (
        "**Wald coverage** falls far below nominal when n·p(1 − p) is small — lowest: "
        + "; ".join(notes)
        + ". An all-tails sample gives p̂ = 0 and an interval of "
        "width zero that cannot cover p; such samples are kept, not dropped."
    )
    return (path, f"Coverage of the Wald interval against n; {plots.mcse_note()}"), note
