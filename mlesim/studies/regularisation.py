"""Study ``regularisation``: weight decay is a Gaussian prior, the lasso a Laplace one; both
trade bias for variance, and ridge's prior fades as n grows while the lasso's does not.

In y = xᵀβ + ε, Var ε = σ², x = (1, z) (``truth=linear_regression``), with
Σ = E[xxᵀ] (:func:`mlesim.learning_theory.covariate_second_moment`) and
D = diag(0, 1, …, 1) (the intercept is never penalised):

- **Ridge** β̂ = (XᵀX + αD)⁻¹Xᵀy minimises ‖y − Xβ‖² + α‖Dβ‖², which is −2σ² times the
  log posterior under β_j ~ N(0, τ²), τ² = σ²/α (flat on β₀): weight decay is a Gaussian
  prior (Hoerl & Kennard 1970). Given X, its bias is −α(XᵀX + αD)⁻¹Dβ and its variance
  σ²(XᵀX + αD)⁻¹XᵀX(XᵀX + αD)⁻¹, exactly. Replacing XᵀX by its mean nΣ gives the
  **first-order** values drawn here,

      bias ≈ −α(nΣ + αD)⁻¹Dβ,   Var ≈ σ²[(nΣ + αD)⁻¹ nΣ (nΣ + αD)⁻¹]_jj,

  accurate to first order in 1/n for a random design: XᵀX/n − Σ = O_p(n^−½), and
  E[(XᵀX)⁻¹] exceeds (nΣ)⁻¹ by a relative O(d/n). For the MLE (α = 0) under a Gaussian
  design the exact variance is known: Z̃ᵀZ̃ ~ Wishart(n − 1, Σ_z) and E[W⁻¹] =
  Σ_z⁻¹/(n − p − 2) for p = d − 1 covariates (Anderson 2003, *An Introduction to
  Multivariate Statistical Analysis*, 3rd ed., Lemma 7.7.1), so Var β̂_j = σ²[Σ_z⁻¹]_jj/
  (n − p − 2) for the slopes and σ²(n − 2)/(n(n − p − 2)) for the intercept (z̄
  independent of Z̃ᵀZ̃, E z̄z̄ᵀ = Σ_z/n): the first-order value times n/(n − p − 2).
- **MAP → MLE.** With α fixed the ridge prior is fixed, its weight fades:
  β̂_ridge − β̂_mle = −α(XᵀX + αD)⁻¹Dβ̂_mle = −(α/n)Σ⁻¹Dβ + O_p(n^−3/2), so the mean
  |β̂_ridge,j − β̂_mle,j| falls like 1/n.
- **The lasso** of scikit-learn's scaling minimises (1/2n)‖y − Xβ‖² + α‖Dβ‖₁, the MAP
  under Laplace(0, b) priors with α = σ²/(n b) (Tibshirani 1996): a fixed α is a prior
  that *tightens* as n grows, so the lasso does **not** tend to the MLE. It converges to
  the population lasso β*(α) = argmin ½(b − β)ᵀC(b − β) + α‖b‖₁ over the slopes,
  C = Cov z, with β₀* = β₀ + E[z]ᵀ(β − b*) (Knight & Fu 2000, Ann. Statist. 28:1356,
  Thm 1 with λ_n/n → 2α in their scaling). Its bias tends to β*(α) − β, and the share of
  replicates with β̂_j = 0 exactly tends to 1 where β*_j = 0 with |[C(b* − β)]_j| < α
  (strict complementarity: the active set is locally constant) and to 0 where β*_j ≠ 0.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlesim import analysis, plots, regression
from mlesim import learning_theory as lt
from mlesim.config import flatten, labels_of_kind
from mlesim.engine import chunk_data, locate
from mlesim.errors import ConfigError
from mlesim.studies._common import cell_scenario, check_min_sizes

if TYPE_CHECKING:
    from mlesim.studies import Rendered, StudyContext

OPTIONS: dict = {}
#: the estimator kinds that regularise
REGULARISERS = ("ridge", "lasso")
#: the population lasso is solved to this step size
LASSO_TOL = 1e-15
#: the Gaussian-prior MAP must reproduce ridge to this (max abs difference)
MAP_TOL = 1e-6
#: the distance-to-MLE figure draws its theory this many times beyond the largest n
EXTEND = 20


# ----------------------------------------------------------------------- checking
def check(config: dict) -> None:
    """Needs ``truth=linear_regression``, two sample sizes, the Gaussian MLE (OLS) to
    compare with and at least one ridge or lasso.

    Raises
    ------
    ConfigError
        Naming ``truth`` or ``estimators``, in one line.
    """
    check_min_sizes(config, "regularisation")
    family = config["truth"].get("family")
    if family != "linear_regression":
        raise ConfigError(
            "truth",
            f"study regularisation needs truth=linear_regression (ridge and lasso fit "
            f"y = xᵀβ + ε), got {family!r}",
        )
    if gaussian_mle(config["estimators"], reference_noise(config)) is None:
        raise ConfigError(
            "estimators",
            "study regularisation needs the Gaussian MLE (OLS) to compare with: "
            "{kind: mle, noise: normal}, or {kind: mle} when truth.noise is normal (and not "
            "a design factor)",
        )
    if not regularisers(config["estimators"]):
        raise ConfigError(
            "estimators", "study regularisation needs an estimator of kind ridge or lasso"
        )


def reference_noise(config: dict) -> str | None:
    """The noise an estimator of kind mle without its own ``noise`` assumes: the
    truth's (normal by default), or None when the design varies it."""
    if "truth.noise" in flatten(config.get("design") or {}):
        return None
    return config["truth"].get("noise") or "normal"


def gaussian_mle(estimators: dict, truth_noise: str | None) -> str | None:
    """The first estimator of kind mle whose noise — its own, else the truth's
    (``truth_noise``; None when the design varies it) — is normal: OLS, the MLE whose
    likelihood ridge's posterior is built on."""
    for label in labels_of_kind(estimators, "mle"):
        if (estimators[label].get("noise") or truth_noise) == "normal":
            return label
    return None


def regularisers(estimators: dict) -> list[str]:
    """Labels of the ridge and lasso estimators, in configuration order."""
    return [lab for lab, s in estimators.items() if s.get("kind") in REGULARISERS]


# ------------------------------------------------------------------------- theory
def second_moment(scen) -> np.ndarray:
    """Σ = E[xxᵀ] (d, d) of the scenario's covariate law, intercept first."""
    return lt.covariate_second_moment(scen.truth.covariates, scen.truth.d)


def penalty_matrix(d: int) -> np.ndarray:
    """D = diag(0, 1, …, 1), (d, d): the intercept is not penalised."""
    return np.diag(np.r_[0.0, np.ones(d - 1)])


def ridge_bias(sigma: np.ndarray, beta: np.ndarray, alpha: float, n: float) -> np.ndarray:
    """First-order bias of ridge, −α(nΣ + αD)⁻¹Dβ, shape (d,), for Σ (d, d), β (d,)."""
    d = beta.size
    pen = penalty_matrix(d)
    return -alpha * np.linalg.solve(n * sigma + alpha * pen, pen @ beta)


def ridge_variance(sigma: np.ndarray, sigma2: float, alpha: float, n: float) -> np.ndarray:
    """First-order variances of ridge, σ²[(nΣ + αD)⁻¹ nΣ (nΣ + αD)⁻¹]_jj, shape (d,);
    α = 0 gives the MLE's σ²[Σ⁻¹]_jj/n."""
    a_inv = np.linalg.inv(n * sigma + alpha * penalty_matrix(sigma.shape[0]))
    return sigma2 * np.diag(a_inv @ (n * sigma) @ a_inv)


def ols_exact_variance(scen, n: int) -> np.ndarray | None:
    """The MLE's exact variances (d,) under a Gaussian design: σ²(n − 2)/(n(n − p − 2))
    for the intercept, σ²[Σ_z⁻¹]_jj/(n − p − 2) for the slopes (module docstring); None
    for other covariate laws, NaN where n ≤ p + 2 (the mean of W⁻¹ is infinite)."""
    if scen.truth.covariates["dist"] != "normal":
        return None
    sigma2, d = float(scen.theta[-1]), scen.truth.d
    p = d - 1
    if n <= p + 2:
        return np.full(d, np.nan)
    slopes = np.diag(np.linalg.inv(second_moment(scen)[1:, 1:]))
    return sigma2 * np.r_[(n - 2) / (n * (n - p - 2)), slopes / (n - p - 2)]


def lasso_limit(sigma: np.ndarray, beta: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """The population lasso β*(α) (d,) and its gradient g = C(b* − β) (d − 1,) over the
    slopes, by cyclic coordinate descent on ½(b − β)ᵀC(b − β) + α‖b‖₁,
    b_j ← S(b_j − g_j/C_jj, α/C_jj) (S the soft threshold), to a step of 1e-15;
    C = Cov z = Σ_zz − μμᵀ, μ = E z; β₀* = β₀ + μᵀ(β − b*) (Knight & Fu 2000)."""
    mu = sigma[0, 1:]
    cov = sigma[1:, 1:] - np.outer(mu, mu)
    target = np.asarray(beta[1:], dtype=float)
    b = target.copy()
    for _ in range(100_000):
        step = 0.0
        for j in range(b.size):
            r = b[j] - cov[j] @ (b - target) / cov[j, j]
            new = math.copysign(max(abs(r) - alpha / cov[j, j], 0.0), r)
            step = max(step, abs(new - b[j]))
            b[j] = new
        if step <= LASSO_TOL:
            break
    return np.r_[beta[0] + mu @ (target - b), b], cov @ (b - target)


def zero_limits(bstar: np.ndarray, grad: np.ndarray, alpha: float) -> np.ndarray:
    """Limit of P(β̂_j = 0) for the slopes (d − 1,): 1 where β*_j = 0 with |g_j| < α,
    0 where β*_j ≠ 0, NaN on the boundary |g_j| = α (to 1e-9)."""
    out = np.where(bstar[1:] != 0, 0.0, 1.0)
    edge = (bstar[1:] == 0) & (np.abs(np.abs(grad) - alpha) < 1e-9)
    return np.where(edge, np.nan, out)


def zero_share_approx(
    sigma: np.ndarray, beta: np.ndarray, sigma2: float, alpha: float, n: float
) -> np.ndarray:
    """Large-n normal approximation of P(β̂_j = 0) for the slopes j with β*_j = 0 (NaN
    for the others), shape (d − 1,), Gaussian covariates.

    With the active set A of β*(α) held fixed, the lasso solves the restricted problem
    b̂_A − β_A = Ĉ_AA⁻¹(X̃_Aᵀε/n − α s_A), s_A = sign β*_A, and j ∉ A stays at 0 iff its
    KKT residual ĝ_j = −α γ̂ᵀs_A − (x̃_j − X̃_A γ̂)ᵀε/n lies in [−α, α], γ̂ = Ĉ_AA⁻¹Ĉ_Aj
    the sample regression of z_j on z_A. Its mean is g*_j = −α γᵀs_A = [C(β* − β)]_j and,
    the two terms being uncorrelated (ε is independent of X), its variance is
    v_j (σ² + α² s_AᵀC_AA⁻¹s_A)/n with v_j = C_jj − C_jA C_AA⁻¹ C_Aj (the residual variance
    of z_j on z_A; Cov γ̂ = v_j C_AA⁻¹/n for a Gaussian design). So
    P ≈ Φ((α − g*_j)/s_j) − Φ((−α − g*_j)/s_j), s_j² that variance: it ignores the
    coupling of several inactive coordinates and the moves of A at small n, and tends to
    1 like the normal tail, as the share does.
    """
    import scipy.stats as st

    mu = sigma[0, 1:]
    cov = sigma[1:, 1:] - np.outer(mu, mu)
    bstar, grad = lasso_limit(sigma, beta, alpha)
    active = bstar[1:] != 0
    sign = np.sign(bstar[1:][active])
    c_aa = cov[np.ix_(active, active)]
    boost = float(sign @ np.linalg.solve(c_aa, sign)) if active.any() else 0.0
    out = np.full(beta.size - 1, np.nan)
    for j in np.flatnonzero(~active):
        c_ja = cov[j, active]
        v = cov[j, j] - (c_ja @ np.linalg.solve(c_aa, c_ja) if active.any() else 0.0)
        sd = math.sqrt(v * (sigma2 + alpha**2 * boost) / n)
        out[j] = st.norm.cdf((alpha - grad[j]) / sd) - st.norm.cdf((-alpha - grad[j]) / sd)
    return out


# ------------------------------------------------------------------------- tables
def _wide(reps: pd.DataFrame, label: str) -> pd.DataFrame:
    """Converged estimates of one estimator: index (n, replicate), a column per
    parameter (the coefficients of a regulariser; the MLE's σ² dropped)."""
    rows = reps[(reps["estimator"] == label) & reps["converged"]]
    rows = rows[rows["param"].astype(str).str.startswith("beta")]
    wide = rows.pivot_table(
        index=["n", "replicate"], columns="param", values="estimate", observed=True
    )
    return wide[[c for c in wide.columns if str(c).startswith("beta")]]


def distance_to_mle(reps: pd.DataFrame, label: str, mle: str) -> pd.DataFrame:
    """Per n: the mean over replicates of m = mean over the slopes j ≥ 1 of
    |β̂_label,j − β̂_mle,j| (replicates both fitted), its MCSE sd(m)/√R, and R."""
    a, b = _wide(reps, label), _wide(reps, mle)
    slopes = [c for c in a.columns if str(c) != "beta0"]
    both = a[slopes].join(b[slopes].add_suffix("_mle"), how="inner").dropna()
    gap = np.abs(both[slopes].to_numpy() - both[[f"{s}_mle" for s in slopes]].to_numpy())
    per = pd.Series(gap.mean(axis=1), index=both.index)
    grouped = per.groupby(level="n")
    return pd.DataFrame(
        {
            "mean": grouped.mean(),
            "mcse": grouped.std(ddof=1) / np.sqrt(grouped.size()),
            "count": grouped.size(),
        }
    )


def zero_shares(reps: pd.DataFrame, label: str) -> pd.DataFrame:
    """Per n and coefficient: the share of replicates with β̂_j == 0.0 exactly and its
    binomial MCSE √(s(1 − s)/R) (Morris, White & Crowther 2019, Table 6); long table
    with columns n, param, share, mcse, count."""
    wide = _wide(reps, label)
    out = []
    for n, rows in wide.groupby(level="n"):
        for param in rows.columns:
            hits = (rows[param] == 0.0).to_numpy()
            share = float(hits.mean())
            out.append(
                {
                    "n": int(n),
                    "param": str(param),
                    "share": share,
                    "mcse": math.sqrt(share * (1 - share) / hits.size),
                    "count": hits.size,
                }
            )
    return pd.DataFrame(out)


def theory_rows(scen, spec: dict, n: int) -> dict[str, np.ndarray | None]:
    """For one estimator at sample size n: ``bias`` and ``var`` (d,) — first order for
    ridge and the MLE (α = 0), the lasso's limit bias β*(α) − β (no variance) — and
    ``exact_var`` for the MLE under a Gaussian design; None where there is none."""
    sigma, beta = second_moment(scen), np.asarray(scen.theta[: scen.truth.d], dtype=float)
    sigma2 = float(scen.theta[-1])
    kind = spec.get("kind")
    if kind in ("ridge", "mle"):
        alpha = float(spec.get("alpha") or 0.0) if kind == "ridge" else 0.0
        return {
            "bias": ridge_bias(sigma, beta, alpha, n),
            "var": ridge_variance(sigma, sigma2, alpha, n),
            "exact_var": ols_exact_variance(scen, n) if kind == "mle" else None,
        }
    if kind == "lasso":
        bstar, _ = lasso_limit(sigma, beta, float(spec["alpha"]))
        return {"bias": bstar - beta, "var": None, "exact_var": None}
    return {"bias": None, "var": None, "exact_var": None}


# ------------------------------------------------------------- weight decay = prior
def gaussian_prior_map(X: np.ndarray, y: np.ndarray, sigma2: float, alpha: float) -> np.ndarray:
    """The MAP of β under y_i ~ N(x_iᵀβ, σ²) (σ² known) and β_j ~ N(0, τ²) for j ≥ 1,
    τ² = σ²/α, flat on β₀: maximises

        Σ_i log φ(y_i; x_iᵀβ, σ²) + Σ_{j≥1} log φ(β_j; 0, τ²)

    (written with ``scipy.stats.norm.logpdf``) by BFGS with its exact gradient
    Xᵀ(y − Xβ)/σ² − Dβ/τ², from β = 0. X (n, d), y (n,) → β (d,).
    """
    import scipy.stats as st
    from scipy import optimize

    tau = math.sqrt(sigma2 / alpha)
    pen = penalty_matrix(X.shape[1])

    def negative(beta: np.ndarray) -> tuple[float, np.ndarray]:
        resid = y - X @ beta
        logpost = st.norm.logpdf(y, X @ beta, math.sqrt(sigma2)).sum()
        logpost += st.norm.logpdf(beta[1:], 0.0, tau).sum()
        grad = X.T @ resid / sigma2 - pen @ beta / tau**2
        return -logpost, -grad

    res = optimize.minimize(
        negative,
        np.zeros(X.shape[1]),
        jac=True,
        method="BFGS",
        options={"gtol": 1e-11, "maxiter": 10_000},
    )
    return res.x


def weight_decay_check(ctx: StudyContext, cell: dict, label: str) -> dict:
    """Regenerate the first replicate of the cell's smallest n (as :mod:`mlesim.replay`
    does, from the seed) and compare the run's ridge estimate with the Gaussian-prior
    MAP at σ² = the truth's; returns n, replicate, α, τ², both vectors, the refit on the
    regenerated data and the largest differences."""
    reps = analysis.cell_rows(ctx.replicates, cell)
    n = int(reps["n"].min())
    table = _wide(reps, label).loc[n]
    replicate = int(table.index.min())
    task, row = locate(ctx.spec, {**cell, "n": n}, replicate)
    scen, data = chunk_data(task)
    X, y = data["X"][row], data["y"][row]
    alpha, sigma2 = float(ctx.spec["estimators"][label]["alpha"]), float(scen.theta[-1])
    ridge = table.loc[replicate].to_numpy(dtype=float)
    refit = regression.ridge(X[None], y[None], alpha).beta[0]
    posterior = gaussian_prior_map(X, y, sigma2, alpha)
    return {
        "label": label,
        "n": n,
        "replicate": replicate,
        "alpha": alpha,
        "tau2": sigma2 / alpha,
        "sigma2": sigma2,
        "ridge": ridge,
        "map": posterior,
        "refit_gap": float(np.max(np.abs(refit - ridge))),
        "gap": float(np.max(np.abs(posterior - ridge))),
    }


# ------------------------------------------------------------------------ figures
def _coefficients(summary: pd.DataFrame) -> list[str]:
    return [p for p in dict.fromkeys(summary["param"].astype(str)) if p.startswith("beta")]


def _style_legend(ax, exact: bool, lasso: bool) -> None:
    ax.plot([], [], "-", color="grey", lw=1.2, label="first-order theory\n(ridge; MLE at α = 0)")
    if exact:
        ax.plot([], [], "--", color="grey", lw=1.2, label="MLE exact\n(Gaussian design)")
    if lasso:
        ax.plot([], [], "-.", color="grey", lw=1.2, label="lasso limit β*(α) − β")


def _bias_variance_figure(ctx, cell, scen, summary):
    coefs = _coefficients(summary)
    labels = list(plots.by_estimator(summary, coefs[0]))
    fig, axes = plots.new_figure(ncols=len(coefs), nrows=2, width=3.3, height=3.3)
    ns = np.sort(summary["n"].unique())
    grid = np.unique(np.round(np.geomspace(ns.min(), ns.max(), 60)).astype(int))
    beta = scen.theta[: scen.truth.d]
    for j, coef in enumerate(coefs):
        groups = plots.by_estimator(summary, coef)
        for i, label in enumerate(labels):
            rows, colour = groups[label], f"C{i}"
            x = plots.dodge(rows["n"], i, len(labels))
            nvar = rows["n"] * rows["empse"] ** 2
            nvar_mcse = rows["n"] * 2 * rows["empse"] * rows["empse_mcse"]
            plots.errorbars(axes[0, j], x, rows["bias"], rows["bias_mcse"], label, color=colour)
            plots.errorbars(axes[1, j], x, nvar, nvar_mcse, label, color=colour)
            spec = ctx.spec["estimators"][label]
            curves = [theory_rows(scen, spec, int(k)) for k in grid]
            if curves[0]["var"] is not None:
                axes[0, j].plot(grid, [c["bias"][j] for c in curves], color=colour, lw=1.2)
                axes[1, j].plot(
                    grid,
                    [k * c["var"][j] for k, c in zip(grid, curves, strict=True)],
                    color=colour,
                    lw=1.2,
                )
            elif curves[0]["bias"] is not None:
                axes[0, j].plot(grid, [c["bias"][j] for c in curves], color=colour, lw=1.2, ls="-.")
            if curves[0]["exact_var"] is not None:
                exact = [k * c["exact_var"][j] for k, c in zip(grid, curves, strict=True)]
                axes[1, j].plot(grid, exact, color=colour, lw=1.2, ls="--")
        axes[0, j].axhline(0.0, color="k", lw=0.6, zorder=0)
        plots.label_axes(
            axes[0, j], "sample size n", f"bias of {coef}", f"{coef} (true {beta[j]:g})", logx=True
        )
        plots.label_axes(axes[1, j], "sample size n", f"n × variance of {coef}", logx=True)
        axes[0, j].get_legend().remove()
        axes[1, j].get_legend().remove()
    kinds = {ctx.spec["estimators"][lab].get("kind") for lab in labels}
    exact = ols_exact_variance(scen, int(ns.max())) is not None
    _style_legend(axes[0, -1], exact and "mle" in kinds, "lasso" in kinds)
    plots.legend_outside(axes[0, -1])
    path = plots.save(
        fig, ctx.figdir / f"regularisation_bias_variance{plots.cell_suffix(cell)}.png"
    )
    caption = (
        f"The bias–variance trade-off{plots.cell_title(cell)}: bias (top) and n × variance "
        "(bottom) of each coefficient against n. Solid: ridge's first-order theory "
        "−α(nΣ + αD)⁻¹Dβ and σ²[(nΣ + αD)⁻¹nΣ(nΣ + αD)⁻¹]_jj (the MLE's at α = 0), first order "
        "in 1/n for a random design; dashed: the MLE's exact variance under the Gaussian design, "
        "the first-order value times n/(n − p − 2); dash-dot: the lasso's limit bias "
        f"β*(α) − β (Knight & Fu 2000); {plots.mcse_note()}."
    )
    return path, caption


def _map_to_mle_figure(ctx, cell, scen, reps, mle):
    fig, axes = plots.new_figure(width=6.4)
    ax = axes[0, 0]
    labels = regularisers(ctx.spec["estimators"])
    ns = np.sort(reps["n"].unique())
    grid = np.geomspace(ns.min(), EXTEND * ns.max(), 80)
    for i, label in enumerate(labels):
        colour = f"C{list(ctx.spec['estimators']).index(label)}"
        dist = distance_to_mle(reps, label, mle)
        x = plots.dodge(dist.index.to_numpy(), i, len(labels))
        plots.errorbars(ax, x, dist["mean"], dist["mcse"], label, color=colour)
        line = _distance_theory(scen, ctx.spec["estimators"][label], grid)
        ax.plot(
            grid,
            line,
            color=colour,
            lw=1.2,
            ls="-" if ctx.spec["estimators"][label]["kind"] == "ridge" else "-.",
        )
        if ctx.spec["estimators"][label]["kind"] == "lasso":
            ax.axhline(
                lasso_distance_limit(scen, ctx.spec["estimators"][label]),
                color=colour,
                lw=0.8,
                ls=":",
            )
    ax.axvspan(
        ns.max() * 1.3, grid[-1], color="0.93", zorder=0, label="theory only (n beyond the run)"
    )
    ax.plot([], [], "-", color="grey", label="ridge: first order\nmean_j |α[(nΣ+αD)⁻¹Dβ]_j| ∝ 1/n")
    ax.plot([], [], "-.", color="grey", label="lasso: large n, active set of β*(α)")
    ax.plot([], [], ":", color="grey", label="lasso: limit mean_j |β*_j(α) − β_j|")
    plots.label_axes(
        ax,
        "sample size n",
        f"mean over slopes of |β̂_j − β̂_{mle},j|",
        f"MAP → MLE?{plots.cell_title(cell)}",
        logx=True,
        logy=True,
    )
    plots.plain_log_ticks(ax.xaxis, subs=(1.0,))  # decades: 10 … 10⁴ fit
    plots.legend_outside(ax)
    path = plots.save(fig, ctx.figdir / f"regularisation_map_to_mle{plots.cell_suffix(cell)}.png")
    caption = (
        f"Distance of each regularised estimate from the MLE{plots.cell_title(cell)}, replicate "
        "by replicate (mean over the slopes, then over replicates) against n, on log axes. "
        "Ridge's prior is fixed (τ² = σ²/α), so it fades and the distance falls like 1/n "
        "(solid: first order); the lasso's α in the mean-loss scaling is a prior that tightens "
        "with n (b = σ²/(nα)), so the distance levels off at the population lasso's "
        "mean_j |β*_j − β_j| (dotted; dash-dot: its large-n value, where the MLE's true zeros "
        f"add E|β̂_mle,j| ∝ n^−½). The theory runs on {EXTEND}× past the largest simulated n "
        f"(shaded) to show where each goes; {plots.mcse_note()}."
    )
    return path, caption


def _distance_theory(scen, spec: dict, grid: np.ndarray) -> np.ndarray:
    """Large-n mean over the slopes of E|β̂_j − β̂_mle,j| at the sample sizes ``grid``.

    Ridge (first order; the difference concentrates at the bias):
    mean_j |[α(nΣ + αD)⁻¹Dβ]_j|. Lasso, with its active set at the limit's: |β*_j − β_j|
    where β*_j ≠ 0, and where β*_j = 0 the lasso is exactly 0, so the term is
    E|β̂_mle,j| = E|N(β_j, v_j/n)| = s√(2/π) e^{−β_j²/(2s²)} + β_j(1 − 2Φ(−β_j/s)),
    s² = v_j/n, v_j = σ²[Σ⁻¹]_jj (a folded normal): it tends to mean_j |β*_j − β_j|
    like n^−½.
    """
    import scipy.stats as st

    sigma, beta = second_moment(scen), np.asarray(scen.theta[: scen.truth.d], dtype=float)
    alpha = float(spec["alpha"])
    if spec["kind"] == "ridge":
        return np.array([np.mean(np.abs(ridge_bias(sigma, beta, alpha, k)[1:])) for k in grid])
    bstar, _ = lasso_limit(sigma, beta, alpha)
    v = ridge_variance(sigma, float(scen.theta[-1]), 0.0, 1.0)[1:]
    out = []
    for k in grid:
        s = np.sqrt(v / k)
        folded = s * np.sqrt(2 / np.pi) * np.exp(-(beta[1:] ** 2) / (2 * s**2)) + beta[1:] * (
            1 - 2 * st.norm.cdf(-beta[1:] / s)
        )
        out.append(np.mean(np.where(bstar[1:] != 0, np.abs(bstar[1:] - beta[1:]), folded)))
    return np.array(out)


def lasso_distance_limit(scen, spec: dict) -> float:
    """mean_j |β*_j(α) − β_j| over the slopes: where the lasso's distance to the MLE
    levels off."""
    sigma, beta = second_moment(scen), np.asarray(scen.theta[: scen.truth.d], dtype=float)
    bstar, _ = lasso_limit(sigma, beta, float(spec["alpha"]))
    return float(np.mean(np.abs(bstar[1:] - beta[1:])))


def _zeros_figure(ctx, cell, scen, reps, lassos):
    fig, axes = plots.new_figure(ncols=len(lassos), width=5.0, height=4.6)
    sigma, beta = second_moment(scen), np.asarray(scen.theta[: scen.truth.d], dtype=float)
    for ax, label in zip(axes[0], lassos, strict=True):
        alpha = float(ctx.spec["estimators"][label]["alpha"])
        bstar, grad = lasso_limit(sigma, beta, alpha)
        limits = zero_limits(bstar, grad, alpha)
        shares = zero_shares(reps, label)
        slopes = [p for p in dict.fromkeys(shares["param"]) if p != "beta0"]
        normal = scen.truth.covariates["dist"] == "normal"
        grid = np.geomspace(shares["n"].min(), shares["n"].max(), 60)
        approx = np.array(
            [zero_share_approx(sigma, beta, float(scen.theta[-1]), alpha, k) for k in grid]
        )
        for i, param in enumerate(slopes):
            j = int(param.removeprefix("beta"))
            rows = shares[shares["param"] == param]
            if normal and np.isfinite(approx[0, j - 1]):
                ax.plot(grid, approx[:, j - 1], color=f"C{i}", lw=1.2, ls="--")
            truth = "true 0" if beta[j] == 0 else f"true {beta[j]:g}"
            marker = "o" if beta[j] == 0 else "s"
            plots.errorbars(
                ax,
                plots.dodge(rows["n"], i, len(slopes)),
                rows["share"],
                rows["mcse"],
                f"{param} ({truth}; β* = {bstar[j]:.3g}) → {limits[j - 1]:g}",
                color=f"C{i}",
                fmt=marker,
            )
        if normal and np.isfinite(approx).any():
            ax.plot([], [], "--", color="grey", label="large-n normal approximation")
        ax.axhline(1.0, color="grey", lw=0.6, zorder=0)
        ax.axhline(0.0, color="grey", lw=0.6, zorder=0)
        plots.label_axes(
            ax,
            "sample size n",
            "share of replicates with β̂_j = 0 exactly",
            f"{label} (α = {alpha:g})",
            logx=True,
        )
        ax.set_ylim(-0.05, 1.05)
        ax.legend(
            fontsize=7,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.2),
            ncols=2,
            title="coefficient (truth; population lasso β*) → limit of the share",
            title_fontsize=7,
        )
    path = plots.save(fig, ctx.figdir / f"regularisation_zeros{plots.cell_suffix(cell)}.png")
    caption = (
        f"The lasso's exact zeros{plots.cell_title(cell)}: share of replicates with β̂_j == 0.0 "
        "for each slope against n (circles: true zeros; squares: true non-zeros), ± 2 binomial "
        "Monte Carlo SE. With α fixed the shares tend to 1 where the population lasso β*(α) "
        "is 0 strictly inside its KKT interval and to 0 where it is not (legend: the limit); "
        "dashed: the large-n normal approximation of the KKT residual with the active set of "
        "β*(α) fixed (for the coefficients with β*_j = 0). Ridge and the MLE never give an "
        "exact zero."
    )
    return path, caption


# -------------------------------------------------------------------------- notes
def _fmt(value: float, mcse: float | None = None) -> str:
    if value != value:
        return "—"
    if abs(value) < 1e-12:  # rounding noise of an exact 0 (no "-0")
        value = 0.0
    if mcse is None:
        return f"{value:.4g}"
    digits = max(0, 1 - int(np.floor(np.log10(mcse)))) if mcse > 0 and np.isfinite(mcse) else 4
    return f"{value:.{digits}f} ± {mcse:.{digits}f}"


def _tradeoff_note(ctx, scen, summary, reps) -> str:
    coefs = _coefficients(summary)
    ns = np.sort(summary["n"].unique())
    lo, hi = int(ns.min()), int(ns.max())
    lines = [
        "**Seed claim: regularisation trades bias for variance; weight decay is a Gaussian "
        "prior.** Bias and n × variance (± MCSE) at the smallest and largest n; theory in "
        "brackets — first order for ridge and the MLE (α = 0; the MLE's exact Gaussian-design "
        "variance after the slash), the population-lasso limit β*(α) − β for the lasso's bias:",
        "",
        f"| estimator | coef | bias n = {lo} | bias n = {hi} | n·var n = {lo} | n·var n = {hi} |",
        "|---|---|---|---|---|---|",
    ]
    z_hi, rel_lo, z_lasso = [], [], {}
    for label in plots.by_estimator(summary, coefs[0]):
        spec = ctx.spec["estimators"][label]
        theory = {n: theory_rows(scen, spec, n) for n in (lo, hi)}
        for j, coef in enumerate(coefs):
            rows = plots.by_estimator(summary, coef)[label].set_index("n")
            cells = []
            for what in ("bias", "var"):
                for n in (lo, hi):
                    r = rows.loc[n]
                    if what == "bias":
                        sim, mc = r["bias"], r["bias_mcse"]
                    else:
                        sim, mc = n * r["empse"] ** 2, n * 2 * r["empse"] * r["empse_mcse"]
                    t = theory[n][what]
                    text = _fmt(sim, mc)
                    if t is not None:
                        text += f" [{_fmt(n * t[j] if what == 'var' else t[j])}"
                        exact = theory[n]["exact_var"]
                        if what == "var" and exact is not None:
                            text += f" / {_fmt(n * exact[j])}"
                        text += "]"
                        value = n * t[j] if what == "var" else t[j]
                        if spec.get("kind") == "ridge":
                            if n == hi:
                                z_hi.append(abs(sim - value) / mc)
                            elif what == "var":
                                rel_lo.append(sim / value)
                        if spec.get("kind") == "lasso" and n == hi:
                            z_lasso.setdefault(label, []).append(abs(sim - value) / mc)
                    cells.append(text)
            lines.append(f"| {label} | {coef} | " + " | ".join(cells) + " |")
    lines.append("")
    p = scen.truth.d - 1

    def inflation(n: int) -> float:
        return n / (n - p - 2) if n > p + 2 else float("nan")

    if z_hi:
        lines.append(
            f"Ridge's first-order values are within {max(z_hi):.1f} MCSE of the simulation at "
            f"n = {hi} (largest |sim − theory|/MCSE over its coefficients, bias and variance); "
            f"at n = {lo} its simulated variances are {min(rel_lo):.2f}–{max(rel_lo):.2f} times "
            "the first-order ones. That gap is the random design, not the prior: first order "
            "replaces XᵀX by nΣ, and for the MLE the exact Gaussian-design variance is the "
            f"first-order one times n/(n − p − 2) = {inflation(lo):.3g} at n = {lo} "
            f"(p = {p}) and {inflation(hi):.4g} at n = {hi}."
        )
    for label, zs in z_lasso.items():
        kept = _still_selected(ctx, scen, reps, label, hi)
        lines.append(
            f"{label}'s bias at n = {hi} is up to {max(zs):.1f} MCSE from its limit "
            "β*(α) − β: the limit holds once the active set has settled"
            + (
                f", and at n = {hi} {kept:.0%} of its replicates still select a true zero"
                if kept is not None
                else ""
            )
            + "."
        )
    return "\n".join(lines)


def _still_selected(ctx, scen, reps, label: str, n: int) -> float | None:
    """The share of a cell's replicates (``reps``) at sample size n where the lasso keeps
    (β̂_j ≠ 0) some slope whose population-lasso value β*_j is 0; None if there is none."""
    sigma, beta = second_moment(scen), np.asarray(scen.theta[: scen.truth.d], dtype=float)
    bstar, _ = lasso_limit(sigma, beta, float(ctx.spec["estimators"][label]["alpha"]))
    zeros = [f"beta{j}" for j in range(1, beta.size) if bstar[j] == 0]
    if not zeros:
        return None
    wide = _wide(reps[reps["n"] == n], label)
    return float((wide[zeros] != 0).any(axis=1).mean())


def _map_to_mle_note(ctx, scen, reps, mle) -> str:
    parts = []
    for label in regularisers(ctx.spec["estimators"]):
        spec = ctx.spec["estimators"][label]
        dist = distance_to_mle(reps, label, mle)
        n = dist.index.to_numpy(float)
        slope = np.polyfit(np.log(n[-2:]), np.log(dist["mean"].to_numpy()[-2:]), 1)[0]
        theory = _distance_theory(scen, spec, n)
        pairs = "; ".join(
            f"n = {k:g}: {_fmt(m, s)} [{_fmt(t)}]"
            for k, m, s, t in zip(n, dist["mean"], dist["mcse"], theory, strict=True)
        )
        if spec["kind"] == "ridge":
            tail = f"between the two largest n it falls like n^{slope:.2f}"
        else:
            tail = (
                f"between the two largest n its log-log slope is only {slope:.2f}: it levels "
                f"off towards mean_j |β*_j − β_j| = {lasso_distance_limit(scen, spec):.4g}"
            )
        parts.append(f"- {label}: {pairs}; {tail}.")
    return (
        f"**MAP → MLE.** Mean over the slopes of |β̂_j − β̂_{mle},j|, replicate by replicate "
        "(± MCSE; in brackets ridge's first-order value, the lasso's large-n value). "
        "Ridge's prior is fixed (τ² = σ²/α) and fades: the distance falls like 1/n. The "
        "lasso's α is on the mean loss (scikit-learn), i.e. a Laplace prior of scale "
        "b = σ²/(nα) that tightens with n: it does not tend to the MLE but to the "
        "population lasso β*(α) (Knight & Fu "
        "2000).\n" + "\n".join(parts)
    )


def _zeros_note(ctx, scen, reps, lassos) -> str:
    sigma, beta = second_moment(scen), np.asarray(scen.theta[: scen.truth.d], dtype=float)
    lines = [
        "**The lasso's exact zeros** (share of replicates with β̂_j == 0.0, ± binomial MCSE; "
        "the limit as n → ∞ in brackets):"
    ]
    for label in lassos:
        alpha = float(ctx.spec["estimators"][label]["alpha"])
        bstar, grad = lasso_limit(sigma, beta, alpha)
        limits = zero_limits(bstar, grad, alpha)
        shares = zero_shares(reps, label)
        parts = []
        for param, rows in shares[shares["param"] != "beta0"].groupby("param", sort=False):
            j = int(param.removeprefix("beta"))
            first, last = rows.iloc[0], rows.iloc[-1]
            approx = zero_share_approx(sigma, beta, float(scen.theta[-1]), alpha, last["n"])
            near = (
                f", normal approximation {approx[j - 1]:.3f}"
                if np.isfinite(approx[j - 1]) and scen.truth.covariates["dist"] == "normal"
                else ""
            )
            parts.append(
                f"{param} (true {beta[j]:g}, β* = {bstar[j]:.4g}): "
                f"{plots.pm(first['share'], first['mcse'])} at n = {first['n']} → "
                f"{plots.pm(last['share'], last['mcse'])} at n = {last['n']}{near} "
                f"[limit {limits[j - 1]:g}]"
            )
        lines.append(f"- {label} (α = {alpha:g}): " + "; ".join(parts) + ".")
    others = []
    for label in ctx.spec["estimators"]:
        if label in lassos:
            continue
        shares = zero_shares(reps, label)
        others.append(f"{label} {int(round((shares['share'] * shares['count']).sum()))}")
    lines.append(
        "Exact zeros among the other estimators (all coefficients, n and replicates): "
        + ", ".join(others)
        + "."
    )
    return "\n".join(lines)


def _weight_decay_note(checks: list[dict]) -> str:
    lines = [
        "**Weight decay is a Gaussian prior, numerically.** For the first replicate of the "
        "smallest n, its data regenerated from the seed (as `mlesim.replay` does), the log "
        "posterior Σ log φ(y_i; x_iᵀβ, σ²) + Σ_{j≥1} log φ(β_j; 0, τ²), σ² fixed at the "
        "truth, τ² = σ²/α, flat on β₀, maximised by scipy's BFGS, against the run's ridge "
        "estimate:",
        "",
    ]
    for c in checks:
        vec = lambda v: "[" + ", ".join(f"{x:.10f}" for x in v) + "]"  # noqa: E731
        ok = "agree" if c["gap"] < MAP_TOL else "DISAGREE"
        lines += [
            f"- {c['label']} (α = {c['alpha']:g}, τ² = σ²/α = {c['tau2']:.4g}; n = {c['n']}, "
            f"replicate {c['replicate']}):",
            f"  - ridge (run):  `{vec(c['ridge'])}`",
            f"  - Gaussian MAP: `{vec(c['map'])}`",
            f"  - they {ok}: max |Δ| = {c['gap']:.2g} (tolerance {MAP_TOL:g}); ridge refitted "
            f"on the regenerated data matches the run to {c['refit_gap']:.2g}.",
        ]
    return "\n".join(lines)


def render(ctx: StudyContext) -> Rendered:
    """Per design cell: the bias–variance figure with ridge's first-order theory, the
    distance to the MLE against n, the lasso's exact zeros; notes with the numbers and
    the Gaussian-prior MAP of one regenerated data set beside ridge's estimate."""
    figures, notes = [], []
    mle = gaussian_mle(ctx.spec["estimators"], reference_noise(ctx.spec.config))
    lassos = labels_of_kind(ctx.spec["estimators"], "lasso")
    ridges = labels_of_kind(ctx.spec["estimators"], "ridge")
    for cell, summary in analysis.design_cells(ctx.summary, ctx.design_keys):
        scen = cell_scenario(ctx.spec, {**cell, "n": int(summary["n"].min())})
        reps = analysis.cell_rows(ctx.replicates, cell)
        if cell:  # the notes of each design cell under its own heading
            notes.append("### " + ", ".join(f"{k} = {v}" for k, v in cell.items()))
        figures.append(_bias_variance_figure(ctx, cell, scen, summary))
        figures.append(_map_to_mle_figure(ctx, cell, scen, reps, mle))
        notes.append(_tradeoff_note(ctx, scen, summary, reps))
        notes.append(_map_to_mle_note(ctx, scen, reps, mle))
        if lassos:
            figures.append(_zeros_figure(ctx, cell, scen, reps, lassos))
            notes.append(_zeros_note(ctx, scen, reps, lassos))
        if ridges:
            notes.append(_weight_decay_note([weight_decay_check(ctx, cell, r) for r in ridges]))
    return figures, notes
