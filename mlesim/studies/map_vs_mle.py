"""Study ``map_vs_mle``: a prior is a regulariser. Bias, MSE and exact zeros of MAP
estimates against the MLE's as n grows, with the exact finite-sample theory.

- Normal mean, σ² known: a normal(m, τ²) prior is ridge / weight decay,
  μ̂ = c x̄ + (1 − c) m with c = nτ²/(nτ² + σ²): bias (1 − c)(m − μ), variance c²σ²/n —
  less variance for some bias, and MAP → MLE as n grows (c → 1). A Laplace(m, b)
  prior is the lasso: μ̂ = m + S(x̄ − m, σ²/(nb)), exactly m with probability
  Φ((m + t − μ)/s) − Φ((m − t − μ)/s), t = σ²/(nb), s = σ/√n (:mod:`mlesim.theory`).
- Bernoulli p: a Beta(a, b) prior smooths, p̂ = (k + a − 1)/(n + a + b − 2) (Beta(2, 2)
  is Laplace's add-one rule); the MLE says p̂ = 1 after all heads — certainty from three
  flips — with probability pⁿ + (1 − p)ⁿ of an estimate on the edge, the MAP never.
  Exact by enumeration of the binomial.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from mlesim import analysis, plots
from mlesim.errors import ConfigError
from mlesim.studies._common import cell_scenario, check_min_sizes
from mlesim.theory import beta_map_moments, shrinkage_moments, soft_threshold_moments

if TYPE_CHECKING:
    from mlesim.studies import Rendered, StudyContext

OPTIONS: dict = {"data": [1, 1, 1]}
MODELS = ("normal", "bernoulli")
#: line styles of the exact curves, so that equal curves stay visible
LINESTYLES = ("-", "--", ":", "-.")


def check(config: dict) -> None:
    """Needs a normal or bernoulli model, two sample sizes and estimators of kinds mle
    and map only."""
    check_min_sizes(config, "map_vs_mle")
    model = config.get("model") or config["truth"].get("family")
    if model not in MODELS:
        raise ConfigError(
            "model", f"study map_vs_mle has exact theory for {', '.join(MODELS)}, not {model}"
        )
    for label, spec in config["estimators"].items():
        if spec.get("kind") not in ("mle", "map"):
            raise ConfigError(
                f"estimators.{label}.kind",
                f"study map_vs_mle compares MAP with the MLE; got {spec.get('kind')!r}; "
                "allowed: mle, map",
            )
    data = (config.get("analysis") or {}).get("data", OPTIONS["data"])
    if not isinstance(data, list) or not data or any(v not in (0, 1) for v in data):
        raise ConfigError("analysis.data", f"must be a non-empty list of 0/1 flips, got {data!r}")


# ------------------------------------------------------------------ exact theory
def exact(spec: dict, scen, n: np.ndarray) -> dict[str, np.ndarray] | None:
    """Exact bias, MSE and P(edge or exact zero) of one estimator at sample sizes ``n``,
    or None where there is none (a normal model with σ² estimated)."""
    prior = spec.get("prior") or {}
    truth = scen.model.as_dict(scen.theta)
    n = np.asarray(n)
    if scen.model.name == "bernoulli":
        h = prior.get("p") or {"a": 1.0, "b": 1.0}
        rows = [beta_map_moments(int(k), truth["p"], h["a"], h["b"]) for k in n]
        return dict(zip(("bias", "mse", "special"), np.array(rows).T, strict=True))
    fixed = spec.get("fixed") or {}
    if "sigma2" not in fixed or "mu" in fixed:
        return None
    mu, s2, s0 = truth["mu"], truth["sigma2"], float(fixed["sigma2"])
    h = prior.get("mu")
    if h is not None and h.get("dist") == "laplace":
        rows = [_soft_threshold(int(k), mu, s2, h["loc"], h["scale"], s0) for k in n]
        return dict(zip(("bias", "mse", "special"), np.array(rows).T, strict=True))
    mean, var = (h["mean"], h["var"]) if h is not None else (0.0, np.inf)
    bias, _, mse = shrinkage_moments(n, mu, s2, mean, var, s0)
    return {"bias": bias, "mse": mse, "special": None}


@functools.lru_cache(maxsize=4096)
def _soft_threshold(*args) -> tuple[float, float, float]:
    """:func:`mlesim.theory.soft_threshold_moments` (a few quadratures each) computed once
    per argument tuple: both figures and the note ask for the same sample sizes."""
    return soft_threshold_moments(*args)


def special_share(reps, label: str, model: str, spec: dict) -> tuple[np.ndarray, ...]:
    """Per n: the share of replicates with an exact zero (a Laplace prior's μ̂ = loc) or
    an estimate on the edge (p̂ ∈ {0, 1}), and its binomial MCSE."""
    rows = reps[(reps["estimator"] == label) & reps["converged"]]
    if model == "bernoulli":
        hit = (rows["estimate"] <= 0) | (rows["estimate"] >= 1)
    else:
        loc = ((spec.get("prior") or {}).get("mu") or {}).get("loc", 0.0)
        hit = rows["estimate"] == loc
    share = hit.groupby(rows["n"]).mean()
    count = rows.groupby("n").size()
    return share.index.to_numpy(), share.to_numpy(), np.sqrt(share * (1 - share) / count).to_numpy()


def _grid(ns) -> np.ndarray:
    return np.unique(np.round(np.geomspace(min(ns), max(ns), 60)).astype(int))


# ------------------------------------------------------------------------ figures
def _moments_figure(ctx, cell, summary, scen, param):
    fig, axes = plots.new_figure(ncols=2, width=5.4)
    groups = plots.by_estimator(summary, param)
    grid = _grid(summary["n"])
    for i, (label, rows) in enumerate(groups.items()):
        spec = ctx.spec["estimators"][label]
        x = plots.dodge(rows["n"], i, len(groups))
        color = f"C{i}"
        plots.errorbars(axes[0, 0], x, rows["bias"], rows["bias_mcse"], label, color=color)
        plots.errorbars(axes[0, 1], x, rows["mse"], rows["mse_mcse"], label, color=color)
        theory = exact(spec, scen, grid)
        if theory is not None:
            style = {"color": color, "lw": 1.2, "ls": LINESTYLES[i % len(LINESTYLES)]}
            axes[0, 0].plot(grid, theory["bias"], **style)
            axes[0, 1].plot(grid, theory["mse"], **style)
    axes[0, 0].axhline(0.0, color="grey", lw=0.8, zorder=0)
    axes[0, 1].plot([], [], "-", color="grey", lw=1.2, label="lines: exact\n(estimator's colour)")
    title = ", ".join(f"{k} = {v}" for k, v in cell.items()) or None
    plots.label_axes(axes[0, 0], "sample size n", f"bias of {param}", title, logx=True)
    plots.label_axes(axes[0, 1], "sample size n", f"MSE of {param}", title, logx=True, logy=True)
    plots.legend_outside(axes[0, 1])
    axes[0, 0].get_legend().remove()
    path = plots.save(fig, ctx.figdir / f"map_vs_mle_{param}{plots.cell_suffix(cell)}.png")
    caption = (
        f"Bias and MSE of {param}{plots.cell_title(cell)} for each prior against n; lines: exact "
        f"finite-sample values; points: simulation ± 2 Monte Carlo SE."
    )
    return path, caption


def _share_figure(ctx, cell, reps, scen, labels):
    model = scen.model.name
    fig, axes = plots.new_figure(width=6.4)
    ax = axes[0, 0]
    grid = _grid(reps["n"])
    for i, label in enumerate(labels):
        spec = ctx.spec["estimators"][label]
        n, share, mcse = special_share(reps, label, model, spec)
        plots.errorbars(ax, plots.dodge(n, i, len(labels)), share, mcse, label, color=f"C{i}")
        theory = exact(spec, scen, grid)
        if theory is not None and theory["special"] is not None:
            ax.plot(grid, theory["special"], color=f"C{i}", lw=1.2, ls=LINESTYLES[i % 4])
    what = "p̂ ∈ {0, 1}" if model == "bernoulli" else "μ̂ = prior centre (exact zero)"
    title = ", ".join(f"{k} = {v}" for k, v in cell.items()) or None
    ax.plot([], [], "-", color="grey", lw=1.2, label="lines: exact\n(estimator's colour)")
    plots.label_axes(ax, "sample size n", f"share with {what}", title, logx=True)
    plots.legend_outside(ax)
    path = plots.save(fig, ctx.figdir / f"map_vs_mle_zeros{plots.cell_suffix(cell)}.png")
    caption = (
        f"Share of replicates with {what}{plots.cell_title(cell)}; lines: exact; points: "
        "simulation ± 2 Monte Carlo SE."
    )
    return path, caption


# -------------------------------------------------------------------------- notes
def _num(value: float) -> str:
    """A theory value to 4 significant digits, rounding noise (|v| < 1e-12) shown as 0."""
    return "0" if abs(value) < 1e-12 else f"{value:.4g}"


def _pm(value: float, mcse: float) -> str:
    """``v ± m`` to the MCSE's second significant digit (MSEs span decades)."""
    if not np.isfinite(mcse) or mcse == 0:
        return plots.pm(value, mcse, 4)
    digits = max(0, 1 - int(np.floor(np.log10(mcse))))
    return f"{value:.{digits}f} ± {mcse:.{digits}f}"


def _note(ctx, summary, reps, scen) -> str:
    model = scen.model.name
    param = scen.model.params[0]
    last_n = int(summary["n"].max())
    first_n = int(summary["n"].min())
    lines = []
    if model == "normal":
        lines.append(
            "**Seed claim: MAP with a Gaussian prior is weight decay (ridge), with a Laplace "
            "prior the lasso.** Each prior trades bias for variance; as n grows every MAP "
            "tends to the MLE. Simulated against exact values:"
        )
    else:
        k, m = sum(ctx.options["data"]), len(ctx.options["data"])
        lines.append(
            f"**Seed claim: the MLE fails on small samples; a prior smooths it.** After "
            f"{k} heads in {m} flips the MLE is p̂ = {k / m:.3g}"
            + (" — certainty" if k in (0, m) else "")
            + "; under a Beta(a, b) prior the MAP after k heads in n flips is "
            f"(k + a − 1)/(n + a + b − 2), here {(k + 1) / (m + 2):.3g} for Beta(2, 2) "
            "(Laplace's add-one rule). "
            "Simulated against exact values (enumeration of the binomial):"
        )
    for label, rows in plots.by_estimator(summary, param).items():
        spec = ctx.spec["estimators"][label]
        theory = exact(spec, scen, rows["n"].to_numpy())
        parts = []
        for pos in (0, len(rows) - 1):
            r = rows.iloc[pos]
            text = f"n = {r['n']:g}: bias {_pm(r['bias'], r['bias_mcse'])}"
            text += f", MSE {_pm(r['mse'], r['mse_mcse'])}"
            if theory is not None:
                text += f" (exact {_num(theory['bias'][pos])}, {_num(theory['mse'][pos])})"
            parts.append(text)
        lines.append(f"- {label}: " + "; ".join(parts) + ".")
        if theory is not None and theory["special"] is not None:
            n, share, mcse = special_share(reps, label, model, spec)
            lines[-1] += (
                f" Share of {'p̂ ∈ {0, 1}' if model == 'bernoulli' else 'exact zeros'} at n = "
                f"{first_n}: {_pm(share[0], mcse[0])} (exact {theory['special'][0]:.3f});"
                f" at n = {last_n}: {_pm(share[-1], mcse[-1])} "
                f"(exact {theory['special'][-1]:.3f})."
            )
    if model == "normal" and all(
        exact(ctx.spec["estimators"][lab], scen, np.array([first_n])) is None
        for lab in ctx.spec["estimators"]
    ):
        lines.append(
            "No exact lines: they need σ² known (`fixed: {sigma2: ...}` on each estimator)."
        )
    return "\n".join(lines)


def render(ctx: StudyContext) -> Rendered:
    """Per design cell: bias and MSE against n with exact lines; the share of exact
    zeros (Laplace priors) or of certain estimates (Bernoulli); a note with the numbers."""
    figures, notes = [], []
    for cell, summary in analysis.design_cells(ctx.summary, ctx.design_keys):
        scen = cell_scenario(ctx.spec, {**cell, "n": int(summary["n"].min())})
        reps = analysis.cell_rows(ctx.replicates, cell)
        param = scen.model.params[0]
        figures.append(_moments_figure(ctx, cell, summary[summary["param"] == param], scen, param))
        special = [
            label
            for label, spec in ctx.spec["estimators"].items()
            if scen.model.name == "bernoulli"
            or ((spec.get("prior") or {}).get("mu") or {}).get("dist") == "laplace"
        ]
        if special:
            figures.append(_share_figure(ctx, cell, reps, scen, special))
        notes.append(_note(ctx, summary[summary["param"] == param], reps, scen))
    return figures, notes
