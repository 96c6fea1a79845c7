"""Study ``variance_bias``: the MLE of a normal variance is biased by −σ²/n.

Draws the simulated bias and MSE of each variance estimator against n beside the
exact finite-sample theory of :mod:`mlesim.theory`, and reports what n = 1 does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlesim import plots
from mlesim.errors import ConfigError
from mlesim.theory import variance_estimator_bias_mse

if TYPE_CHECKING:
    from mlesim.studies import Rendered, StudyContext

OPTIONS: dict = {}
PARAM = "sigma2"


def check(config: dict) -> None:
    """The study needs normal data, a normal model and no design factors (its figure
    is one curve per estimator against n at one σ²)."""
    model = config.get("model") or config["truth"]["family"]
    if config["truth"]["family"] != "normal" or model != "normal":
        raise ConfigError("truth", "study variance_bias needs truth=normal and a normal model")
    if config.get("design"):
        raise ConfigError(
            "design",
            "study variance_bias takes no design factors; compare values of σ² with a "
            "sweep instead, e.g. -m truth.params.sigma2=1,4",
        )


def _theory_kind(spec: dict) -> tuple[str, dict | None]:
    """Which exact theory applies to an estimator spec ("none" if no formula does).

    The formulas assume μ is estimated: an MLE with a fixed parameter, or a MAP with a
    prior on μ or none on σ², has none here.
    """
    kind = spec["kind"]
    prior = (spec.get("prior") or {}).get(PARAM)
    if kind == "map" and ((spec.get("prior") or {}).get("mu") or prior is None):
        return "none", None
    if kind == "mle" and spec.get("fixed"):
        return "none", None
    return kind, prior


def _theory(kind: str, prior, n, sigma2):
    if kind not in ("mle", "unbiased_variance", "map"):
        return None
    return variance_estimator_bias_mse(kind, n, sigma2, prior)


def render(ctx: StudyContext) -> Rendered:
    """Bias and MSE figures; a note on n = 1 and a bias-vs-theory table."""
    sigma2 = ctx.spec["truth"]["params"][PARAM]
    groups = plots.by_estimator(ctx.summary, PARAM)
    ns = np.asarray(sorted(ctx.summary["n"].unique()), dtype=float)
    fig, axes = plots.new_figure(ncols=3, width=4.8, height=4.2)
    rows_note = []
    for i, (label, rows) in enumerate(groups.items()):
        kind, prior = _theory_kind(ctx.spec["estimators"][label])
        theory = _theory(kind, prior, ns, sigma2)
        _draw_estimator(axes[0], label, f"C{i}", rows, kind, theory, ns)
        if theory is not None:
            rows_note.append(_comparison(label, rows, theory, ns))
    _label_panels(axes[0], sigma2)
    _annotate_n1(axes[0, 0], _own_n1(ctx), groups)
    path = plots.save(fig, ctx.figdir / "variance_bias.png")
    caption = f"Bias, n × bias and MSE of the σ² estimators against n; {plots.mcse_note()}"
    notes = [_n1_note(_own_n1(ctx)), _table_note(pd.concat(rows_note) if rows_note else None)]
    return [(path, caption)], [n for n in notes if n]


def _draw_estimator(axes, label: str, color: str, rows, kind: str, theory, ns) -> None:
    """One estimator on the three panels (bias, n × bias, MSE): simulated ± 2 MCSE
    where it has at least two replicates, and its exact theory when there is one."""
    ok = rows["n_rep"] > 1
    n = rows["n"][ok]
    bias, bias_mcse = rows["bias"][ok], rows["bias_mcse"][ok]
    simulated = [
        (bias, bias_mcse),
        (n * bias, n * bias_mcse),
        (rows["mse"][ok], rows["mse_mcse"][ok]),
    ]
    for ax, (y, mcse) in zip(axes, simulated, strict=True):
        plots.errorbars(ax, n, y, mcse, f"{label}: simulated", color=color)
    if theory is None:
        return
    good = ns >= (2 if kind == "unbiased_variance" else 1)
    tag = {"mle": "−σ²/n", "unbiased_variance": "0", "map": "exact"}[kind]
    curves = [theory[0], ns * theory[0], theory[1]]
    names = [f"{label}: theory ({tag})", f"{label}: theory", f"{label}: theory"]
    for ax, y, name in zip(axes, curves, names, strict=True):
        ax.plot(ns[good], y[good], "-", color=color, lw=1.2, label=name)


def _label_panels(axes, sigma2: float) -> None:
    """Zero lines, axis labels and titles of the three panels."""
    for ax in axes[:2]:
        ax.axhline(0, color="k", lw=0.6)
    title = f"Bias of σ² estimators (σ² = {sigma2:g}): MLE on −σ²/n"
    plots.label_axes(axes[0], "sample size n", "bias  E[σ̂²] − σ²", title, logx=True)
    title = "Scaled bias: the MLE's n·bias stays at −σ²"
    plots.label_axes(axes[1], "sample size n", "n × bias", title, logx=True)
    title = "MSE (log–log): the biased MLE beats s²"
    plots.label_axes(axes[2], "sample size n", "MSE of σ² estimate", title, logx=True, logy=True)


def _comparison(label, rows, theory, ns) -> pd.DataFrame:
    bias_theory = pd.Series(theory[0], index=ns)
    r = rows[(rows["n_rep"] > 1) & (rows["n"] > 1)]  # n = 1 is deterministic: see its note
    expect = bias_theory.loc[r["n"].astype(float)].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (r["bias"].to_numpy() - expect) / r["bias_mcse"].to_numpy()
    return pd.DataFrame(
        {
            "estimator": label,
            "n": r["n"].to_numpy(),
            "bias": r["bias"].to_numpy(),
            "bias_mcse": r["bias_mcse"].to_numpy(),
            "theory": expect,
            "z": z,
        }
    )


def _n1_rows(summary):
    return summary[(summary["n"] == 1) & (summary["param"] == PARAM)]


def _own_n1(ctx):
    """The n = 1 summary rows with ``n_rep``, ``n_failed``, ``mean`` and ``empse`` from each
    estimator's own fits (with ``compare: common`` the summary's rest on the replicates
    every estimator fitted, none at n = 1 where s² is 0/0)."""
    one = _n1_rows(ctx.summary).copy()
    reps = ctx.replicates
    for i, row in one.iterrows():
        mine = reps[(reps["n"] == 1) & (reps["estimator"] == row["estimator"])]
        mine = mine[mine["param"] == PARAM]
        ok = mine["converged"].astype(bool)
        one.loc[i, "n_rep"] = int(ok.sum())
        one.loc[i, "n_failed"] = int((~ok).sum())
        values = mine.loc[ok, "estimate"].to_numpy(float)
        one.loc[i, "mean"] = values.mean() if values.size else np.nan
        one.loc[i, "empse"] = np.ptp(values) and values.std(ddof=1) if values.size > 1 else np.nan
    return one


def _annotate_n1(ax, summary, groups) -> None:
    one = _n1_rows(summary)
    if one.empty:
        return
    text = []
    for _, row in one.iterrows():
        if row["n_rep"] == 0:
            text.append(f"{row['estimator']}: undefined (0/0) in all {row['n_failed']}")
        else:
            text.append(f"{row['estimator']}: mean {row['mean']:.3g}")
    ax.text(
        0.98,
        0.02,
        "n = 1:\n" + "\n".join(text),
        transform=ax.transAxes,
        ha="right",
        va="bottom",
        fontsize=7,
        bbox={"facecolor": "white", "alpha": 0.8},
    )


def _n1_note(summary) -> str:
    one = _n1_rows(summary)
    if one.empty:
        return ""
    parts = []
    for _, row in one.iterrows():
        if row["n_rep"] == 0:
            parts.append(
                f"`{row['estimator']}` is 0/0 and failed in all {row['n_failed']} "
                "replicates (left out, counted in n_failed)"
            )
        else:
            spread = (
                "no spread: every replicate gives the same value, so its empirical SE is 0, "
                "with no Monte Carlo error"
                if not row["empse"] > 1e-12
                else f"empirical SE {row['empse']:.3g}"
            )
            parts.append(
                f"`{row['estimator']}` has mean {row['mean']:.4g} over {row['n_rep']} "
                f"replicates ({spread})"
            )
    return (
        "**n = 1.** With one observation the MLE σ̂² = (x − x̄)² = 0 in every replicate — "
        "the absurd answer the seeds warn about: " + "; ".join(parts) + "."
    )


def _table_note(df: pd.DataFrame | None) -> str:
    if df is None or df.empty:
        return ""
    from mlesim.storage import markdown_table

    worst = np.nanmax(np.abs(df["z"].to_numpy()))
    return (
        "**Bias against exact theory** (z = (simulated − theory) / MCSE; |z| < 4 is "
        f"agreement; largest |z| here: {worst:.2f}). At each n the estimators' z are "
        "equal (or opposite): every one of them is c·S + d of the same sum of squares "
        "S = Σ(x − x̄)² of the same data sets (common random numbers), so their errors "
        "against theory are the same multiple of one Monte Carlo error — not "
        "independent checks:\n\n" + markdown_table(df)
    )
