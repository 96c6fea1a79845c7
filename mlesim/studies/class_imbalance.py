"""Study ``class_imbalance``: rare events and the logistic MLE. As the prevalence falls
the MLE's bias grows, the MLE stops existing (separation), accuracy stops measuring
anything, and the usual remedies for imbalance (class weights, the focal loss) move the
predicted probabilities away from the truth.

Model: y ~ Bernoulli(p(z)), p(z) = expit(β0 + β1 z), one covariate z ~ N(0, 1); the
prevalence π = E p(z) is set by β0 (design factor ``truth.params.beta0``). Expectations
over z are by the trapezoidal rule of :func:`mlesim.learning_theory.covariate_nodes`.

Theory drawn beside the simulation (each derived below or in the cited function):

(a) Bias. The MLE's first-order bias b(β)/n = −(1/n) I⁻¹ E[½ p(1 − p)(1 − 2p)(xᵀI⁻¹x) x],
    I = E[p(1 − p) x xᵀ] (Cox & Snell 1968; McCullagh & Nelder 1989, §15.2; King & Zeng
    2001; :func:`mlesim.learning_theory.logistic_bias`). Firth's penalty (Jeffreys'
    prior) removes this O(1/n) term (Firth 1993), so its bias is O(n⁻²).
(b) Separation. The MLE exists iff no δ ≠ 0 has ỹ_i x_iᵀδ ≥ 0 for all i (Albert &
    Anderson 1984). With an intercept and one continuous covariate (no ties) that is:
    one class is empty, or every z of one class lies below every z of the other. Writing
    g₀ = (1 − p)φ, g₁ = pφ, G_c(t) = ∫_{−∞}^t g_c and Ḡ_c(t) = ∫_t^∞ g_c, the event "the
    largest z among the y = 0 is at t and every other point is a y = 0 below t or a
    y = 1 above t" has probability n g₀(t)(G₀(t) + Ḡ₁(t))^{n−1} dt; it covers "all
    y = 0", and its mirror (y = 1 below) covers "all y = 1", so exactly (derived here)

        P(no MLE) = ∫ n g₀ (G₀ + Ḡ₁)^{n−1} dt + ∫ n g₁ (G₁ + Ḡ₀)^{n−1} dt.

    Firth's estimate is finite under separation (Heinze & Schemper 2002).
(c) Accuracy. Always predicting the majority class scores max(π, 1 − π); the Bayes
    classifier 1{p(z) > ½} scores E max(p, 1 − p) (Devroye, Györfi & Lugosi 1996,
    §2.1). A fitted β̂ predicts 1 where β̂0 + β̂1 z > 0, i.e. z > t̂ = −β̂0/β̂1 when
    β̂1 > 0, and its accuracy on new data is exactly 1 − π + S(t̂), S(t) = E[(2p − 1)
    1{z > t}] (π − S(t̂) when β̂1 < 0) — computed per replicate (the Bayes accuracy is
    the same formula at β̂ = β).
(d) Calibration. The mean predicted probability m(β̂) = E_z expit(β̂0 + β̂1 z) tends to π
    for the MLE and Firth (consistent). Balanced weights n/(2n_c) give each class half
    the total weight; the weighted population has logit P̃(y = 1 | z) = logit p(z) +
    log((1 − π)/π), still linear in z, so the weighted MLE tends to (β0 + log((1 − π)/π),
    β1) (the prior correction of King & Zeng 2001, read backwards; Manski & Lerman
    1977) and m to E expit(β0 + log((1 − π)/π) + β1 z), pulled towards ½. The focal
    loss −(1 − p_t)^γ log p_t (Lin et al. 2017) is an M-estimator: β̂ tends to the
    minimiser β*_γ of its expectation (Huber 1967), found here by quadrature and BFGS;
    it is not β — the loss is not a proper scoring rule: it bounds KL(q ‖ p̂) − γ H(p̂)
    from above, so minimising it rewards the entropy of the predictions and pulls them
    towards ½ (Mukhoti et al. 2020).

References
----------
Albert & Anderson (1984) Biometrika 71:1–10. Cox & Snell (1968) JRSS B 30:248–275.
Devroye, Györfi & Lugosi (1996) A Probabilistic Theory of Pattern Recognition, Springer.
Firth (1993) Biometrika 80:27–38. Heinze & Schemper (2002) Stat Med 21:2409–2419.
Huber (1967) Proc. 5th Berkeley Symp. 1:221–233. King & Zeng (2001) Political Analysis
9:137–163. Lin, Goyal, Girshick, He & Dollár (2017) ICCV 2980–2988. Manski & Lerman (1977)
Econometrica 45:1977–1988. McCullagh & Nelder (1989) Generalized Linear Models, 2nd ed.
Puhr, Heinze, Nold, Lusa & Geroldinger (2017) Stat Med 36:2302–2317.
Mukhoti, Kulharia, Sanyal, Golodetz, Torr & Dokania (2020) Calibrating deep neural
networks using focal loss, NeurIPS 33. Trefethen & Weideman (2014) SIAM Review 56:385–458.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.special as sc

from mlesim import learning_theory as lt
from mlesim import plots
from mlesim.config import flatten
from mlesim.errors import ConfigError
from mlesim.families.learning import expand
from mlesim.studies._common import cell_scenario
from mlesim.studies.mixture_collapse import fit_reasons, reason_share

if TYPE_CHECKING:
    from mlesim.studies import Rendered, StudyContext

OPTIONS: dict = {}
BETA0 = "truth.params.beta0"
#: nodes of the trapezoidal rule for the cumulative integrals S(t) and G_c(t) (h ≈ 0.0022)
FINE = 8193
#: nodes of the rule for the smooth mean probability E expit(xᵀβ̂) (h ≈ 0.018)
MEDIUM = 1025
#: the roles an estimator can play here, in drawing order
ROLES = ("mle", "firth", "balanced", "focal")
SEPARATION = "separation"


# --------------------------------------------------------------------------- checks
def check(config: dict) -> None:
    """Needs a logistic truth with one normal covariate, an MLE, and a design over
    ``truth.params.beta0`` at most."""
    truth = config["truth"]
    if truth.get("family") != "logistic_regression":
        raise ConfigError(
            "truth", "study class_imbalance needs truth=logistic_regression (its theory is)"
        )
    params = expand(truth.get("params") or {})
    betas = sorted(k for k in params if k.startswith("beta"))
    if betas != ["beta0", "beta1"]:
        raise ConfigError(
            "truth.params",
            f"study class_imbalance draws one covariate (beta0, beta1), got {', '.join(betas)}",
        )
    dist = (truth.get("covariates") or {}).get("dist", "normal")
    if dist != "normal":
        raise ConfigError(
            "truth.covariates.dist",
            f"study class_imbalance's exact theory is for a normal covariate, got {dist!r}; "
            "allowed: normal",
        )
    others = [k for k in flatten(config.get("design") or {}) if k != BETA0]
    if others:
        raise ConfigError(
            f"design.{others[0]}",
            f"study class_imbalance draws against the prevalence; allowed: a design over "
            f"{BETA0} only — sweep other settings with -m",
        )
    if "mle" not in roles(config["estimators"]).values():
        raise ConfigError(
            "estimators",
            "study class_imbalance needs the logistic MLE; add one, e.g. "
            "+estimators.mle={kind:mle}",
        )


def roles(estimators: dict) -> dict[str, str]:
    """Label → role: ``mle`` (kind mle unweighted, or loss bce), ``balanced`` (kind mle
    with ``weights: balanced``), ``firth``, ``focal`` (loss focal) or ``other``."""
    out = {}
    for label, spec in estimators.items():
        kind, loss = spec.get("kind"), spec.get("loss")
        if kind == "mle":
            out[label] = "balanced" if spec.get("weights") == "balanced" else "mle"
        elif kind == "loss":
            out[label] = {"bce": "mle", "focal": "focal"}.get(loss, "other")
        else:
            out[label] = "firth" if kind == "firth" else "other"
    return out


# ------------------------------------------------------------------- exact theory
def _rule(covariates: dict, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes z (N,) and weights (N,) of the trapezoidal rule in z under its normal law
    (equally spaced on [−9, 9]; :func:`mlesim.learning_theory.covariate_nodes`)."""
    nodes, weights = lt.covariate_nodes(covariates, 2, order=order)
    return nodes[:, 1], weights


def _below(mass: np.ndarray) -> np.ndarray:
    """∫_{−∞}^{t_j} at the nodes of the trapezoidal rule whose node masses are ``mass``."""
    return np.cumsum(mass) - 0.5 * mass


def _above(mass: np.ndarray) -> np.ndarray:
    """∫_{t_j}^{∞} at the nodes, as :func:`_below`."""
    return np.cumsum(mass[::-1])[::-1] - 0.5 * mass


def separation_probability(beta: np.ndarray, covariates: dict, n: np.ndarray) -> np.ndarray:
    """P(the logistic MLE does not exist) for n observations with one continuous
    covariate, exactly (module docstring, (b)):

        ∫ n g₀ (G₀ + Ḡ₁)^{n−1} dt + ∫ n g₁ (G₁ + Ḡ₀)^{n−1} dt,

    g₀ = (1 − p)φ, g₁ = pφ, by the trapezoidal rule on :data:`FINE` nodes (the integrand
    is smooth). One value per entry of ``n`` (an array)."""
    z, w = _rule(covariates, FINE)
    p = sc.expit(beta[0] + beta[1] * z)
    g0, g1 = w * (1 - p), w * p
    up = np.log(_below(g0) + _above(g1))  # (N,): log(G₀ + Ḡ₁)
    down = np.log(_below(g1) + _above(g0))
    n = np.atleast_1d(np.asarray(n, dtype=float))
    out = [m * (g0 @ np.exp((m - 1) * up) + g1 @ np.exp((m - 1) * down)) for m in n]
    return np.minimum(np.array(out), 1.0)


@dataclass(frozen=True)
class AccuracyRule:
    """S(t) = E[(2p(z) − 1) 1{z > t}] on a fine grid of t, and π, for one β."""

    t: np.ndarray
    tail: np.ndarray
    prevalence: float

    @classmethod
    def of(cls, beta: np.ndarray, covariates: dict) -> AccuracyRule:
        """The rule for the true β (the trapezoidal rule on :data:`FINE` nodes)."""
        z, w = _rule(covariates, FINE)
        p = sc.expit(beta[0] + beta[1] * z)
        return cls(z, _above(w * (2 * p - 1)), float(w @ p))

    def accuracy(self, beta_hat: np.ndarray) -> np.ndarray:
        """Expected accuracy on new data of the classifiers 1{β̂0 + β̂1 z > 0}, one per
        row of ``beta_hat`` (R, 2): 1 − π + S(t̂) for β̂1 > 0, π − S(t̂) for β̂1 < 0
        (t̂ = −β̂0/β̂1), and π or 1 − π for a constant prediction (β̂1 = 0). Shape (R,).
        S is linear between the grid's nodes (spacing h): its error is at most
        h²/8 · max|S″|, with |S″| = |2p′φ + (2p − 1)φ′| ≤ |β1|φ(0)/2 + max|φ′|, about
        3e-7 for β1 = 1."""
        b0, b1 = beta_hat[:, 0], beta_hat[:, 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(b1 != 0, -b0 / np.where(b1 != 0, b1, 1.0), 0.0)
        s = np.interp(t, self.t, self.tail)
        pi = self.prevalence
        constant = np.where(b0 > 0, pi, 1 - pi)
        return np.where(b1 > 0, 1 - pi + s, np.where(b1 < 0, pi - s, constant))


def bayes_accuracy(beta: np.ndarray, covariates: dict) -> float:
    """E max(p, 1 − p): the accuracy of the classifier at β̂ = β."""
    return float(AccuracyRule.of(beta, covariates).accuracy(beta[None])[0])


def mean_probability(beta_hat: np.ndarray, covariates: dict) -> np.ndarray:
    """m(β̂) = E_z expit(β̂0 + β̂1 z) for each row of ``beta_hat`` (R, 2), shape (R,); the
    trapezoidal rule on :data:`MEDIUM` nodes (error ~exp(−2π²/(|β̂1| h)), Trefethen &
    Weideman 2014: below 1e-15 for |β̂1| ≤ 30)."""
    z, w = _rule(covariates, MEDIUM)
    return sc.expit(beta_hat[:, :1] + beta_hat[:, 1:] * z[None, :]) @ w


def balanced_limit(beta: np.ndarray, covariates: dict) -> np.ndarray:
    """The limit (β0 + log((1 − π)/π), β1) of the class-weighted MLE (module docstring)."""
    pi = lt.prevalence(beta, covariates)
    return np.array([beta[0] + np.log((1 - pi) / pi), beta[1]])


def _focal(m: np.ndarray, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """The focal loss f(m) = −(1 − a)^γ log a of the margin m (a = expit(m)) and its
    derivative f′(m) = γ a (1 − a)^γ log a − (1 − a)^{γ+1} (Lin et al. 2017;
    :func:`mlesim.regression.focal_loss`)."""
    log_a, log_b = sc.log_expit(m), sc.log_expit(-m)
    b_gam = np.exp(gamma * log_b)
    return -b_gam * log_a, gamma * sc.expit(m) * b_gam * log_a - b_gam * sc.expit(-m)


def focal_limit(beta: np.ndarray, covariates: dict, gamma: float) -> np.ndarray:
    """β*_γ = argmin_b E[p f(η) + (1 − p) f(−η)], η = b0 + b1 z, the limit of the focal
    estimate (Huber 1967), by BFGS from β with the exact gradient
    E[(p f′(η) − (1 − p) f′(−η)) x]; expectations by the trapezoidal rule on
    :data:`MEDIUM` nodes. Shape (2,)."""
    from scipy import optimize

    z, w = _rule(covariates, MEDIUM)
    x = np.column_stack([np.ones_like(z), z])
    p = sc.expit(x @ beta)

    def objective(b: np.ndarray) -> tuple[float, np.ndarray]:
        eta = x @ b
        (f1, d1), (f0, d0) = _focal(eta, gamma), _focal(-eta, gamma)
        return float(w @ (p * f1 + (1 - p) * f0)), x.T @ (w * (p * d1 - (1 - p) * d0))

    res = optimize.minimize(
        objective, np.asarray(beta, float), jac=True, method="BFGS", options={"gtol": 1e-12}
    )
    return res.x


def mean_probability_limit(role: str, beta: np.ndarray, covariates: dict, gamma: float) -> float:
    """The limit of m(β̂) for an estimator of ``role`` (NaN for ``other``)."""
    if role in ("mle", "firth"):
        return lt.prevalence(beta, covariates)
    if role == "balanced":
        return lt.prevalence(balanced_limit(beta, covariates), covariates)
    if role == "focal":
        return lt.prevalence(focal_limit(beta, covariates, gamma), covariates)
    return float("nan")


# ------------------------------------------------------------------------ the data
@dataclass(frozen=True)
class Cell:
    """One prevalence: its design values (without n), β, covariate law and π."""

    values: dict
    beta: np.ndarray
    covariates: dict
    prevalence: float

    @property
    def label(self) -> str:
        return f"π = {100 * self.prevalence:.3g}%"

    @cached_property
    def rule(self) -> AccuracyRule:
        """The accuracy of fitted classifiers in this cell."""
        return AccuracyRule.of(self.beta, self.covariates)

    @cached_property
    def bayes(self) -> float:
        """The Bayes classifier's accuracy E max(p, 1 − p)."""
        return float(self.rule.accuracy(self.beta[None])[0])


def cells(ctx: StudyContext) -> list[Cell]:
    """The design cells, commonest prevalence first."""
    n0 = int(ctx.summary["n"].min())
    keys = ctx.design_keys
    out = []
    for values in ctx.summary[keys].drop_duplicates().to_dict("records") if keys else [{}]:
        scen = cell_scenario(ctx.spec, {**values, "n": n0})
        beta = np.asarray(scen.theta, dtype=float)
        cov = dict(scen.model.covariates)
        out.append(Cell(values, beta, cov, lt.prevalence(beta, cov)))
    return sorted(out, key=lambda c: -c.prevalence)


def _mask(table: pd.DataFrame, cell: Cell) -> np.ndarray:
    """Which rows of ``table`` are in ``cell``."""
    mask = np.ones(len(table), dtype=bool)
    for key, value in cell.values.items():
        mask &= (table[key] == value).to_numpy()
    return mask


def _rows(table: pd.DataFrame, cell: Cell) -> pd.DataFrame:
    """The rows of ``table`` in ``cell``."""
    return table[_mask(table, cell)]


def labels_by_role(ctx: StudyContext) -> dict[str, str]:
    """Role → the first estimator label playing it (roles in :data:`ROLES` order)."""
    found = roles(ctx.spec["estimators"])
    out = {}
    for role in ROLES:
        mine = [lab for lab, r in found.items() if r == role]
        if mine:
            out[role] = mine[0]
    return out


def per_replicate(ctx: StudyContext, cell_list: list[Cell]) -> pd.DataFrame:
    """One row per successful fit of each estimator with a role: design factors,
    ``estimator``, ``replicate``, the expected ``accuracy`` of its classifier and its
    mean predicted probability ``mean_prob`` (module docstring (c), (d))."""
    keys = ctx.spec.factor_names
    reps = ctx.replicates[ctx.replicates["converged"]]
    parts = []
    for label in labels_by_role(ctx).values():
        rows = reps[reps["estimator"] == label]
        wide = rows.pivot_table(
            index=[*keys, "replicate"],
            columns="param",
            values="estimate",
            observed=True,
            aggfunc="first",
        ).reset_index()
        for cell in cell_list:
            mine = _rows(wide, cell)
            if mine.empty:
                continue
            beta_hat = mine[["beta0", "beta1"]].to_numpy(float)
            parts.append(
                mine[[*keys, "replicate"]].assign(
                    estimator=label,
                    accuracy=cell.rule.accuracy(beta_hat),
                    mean_prob=mean_probability(beta_hat, cell.covariates),
                )
            )
    columns = [*keys, "replicate", "estimator", "accuracy", "mean_prob"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def averages(table: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
    """Per (``keys``, estimator): the mean of ``value``, its Monte Carlo SE sd/√R and R."""
    grouped = table.groupby([*keys, "estimator"], sort=False)[value]
    out = grouped.agg(mean="mean", sd="std", count="size").reset_index()
    out["mcse"] = out["sd"] / np.sqrt(out["count"])
    return out


def attach(table: pd.DataFrame, cell_list: list[Cell]) -> pd.DataFrame:
    """``table`` with each row's cell's ``prevalence`` and Bayes accuracy ``bayes``."""
    out = table.assign(prevalence=np.nan, bayes=np.nan)
    for cell in cell_list:
        mask = _mask(out, cell)
        out.loc[mask, "prevalence"] = cell.prevalence
        out.loc[mask, "bayes"] = cell.bayes
    return out


def _pick(table: pd.DataFrame, cell: Cell, **equal) -> pd.DataFrame:
    """Rows of ``table`` in ``cell`` with the given column values, sorted by n."""
    rows = _rows(table, cell)
    for key, value in equal.items():
        rows = rows[rows[key] == value]
    return rows.sort_values("n")


def _n_grid(ns) -> np.ndarray:
    return np.unique(np.round(np.geomspace(min(ns), max(ns), 60)).astype(int))


def _prevalence_grid(cell_list: list[Cell]) -> tuple[np.ndarray, np.ndarray]:
    """A log grid of prevalences over the design's and the intercepts giving them (the
    slope and covariate law are the design's, which only varies β0): (π, β0) each (M,)."""
    pis = [c.prevalence for c in cell_list]
    lo = min(pis) / 1.3
    hi = max(pis) if max(pis) >= 0.4 else max(pis) * 1.3
    grid = np.geomspace(lo, hi, 40) if hi > lo else np.array([lo])
    ref = cell_list[0]
    b0 = np.array([lt.intercept_for_prevalence(p, ref.beta[1:], ref.covariates) for p in grid])
    return grid, b0


# ------------------------------------------------------------------------- figures
def _legend_proxies(ax, entries: list[tuple[str, dict]]) -> None:
    """Legend-only artists: (label, Line2D style)."""
    for label, style in entries:
        ax.plot([], [], label=label, **style)


MARKERS = {"mle": {"fmt": "o"}, "firth": {"fmt": "s", "mfc": "none"}}
NAMES = {"beta0": "β0 (intercept)", "beta1": "β1 (slope)"}


def bias_figure(ctx: StudyContext, cell_list: list[Cell], by_role: dict[str, str]):
    """(a) Bias of β0 and β1 against n per prevalence: MLE (filled) and Firth (open)
    ± 2 MCSE, the MLE's first-order bias b(β)/n as lines."""
    fig, axes = plots.new_figure(ncols=2, width=5.0, height=4.2)
    shown = [r for r in ("mle", "firth") if r in by_role]
    k = len(cell_list) * len(shown)
    grid = _n_grid(ctx.summary["n"])
    for j, param in enumerate(("beta0", "beta1")):
        ax = axes[0, j]
        for i, cell in enumerate(cell_list):
            first = lt.logistic_bias(cell.beta, cell.covariates, 1)
            ax.plot(grid, first[j] / grid, color=f"C{i}", lw=1.2, label=cell.label)
            for r, role in enumerate(shown):
                rows = _pick(ctx.summary, cell, estimator=by_role[role], param=param)
                x = plots.dodge(rows["n"], i * len(shown) + r, k, width=0.035)
                style = {**MARKERS[role], "color": f"C{i}"}
                plots.errorbars(ax, x, rows["bias"], rows["bias_mcse"], None, **style)
        ax.axhline(0.0, color="grey", lw=0.8, zorder=0)
        plots.label_axes(ax, "sample size n", f"bias of {NAMES[param]}", NAMES[param], logx=True)
    axes[0, 1].get_legend().remove()
    entries = [
        (
            f"{by_role[r]} ({'fits that exist' if r == 'mle' else 'all fits'})",
            {
                "marker": MARKERS[r]["fmt"],
                "ls": "none",
                "color": "k",
                "mfc": MARKERS[r].get("mfc", "k"),
            },
        )
        for r in shown
    ]
    entries.append(("line: first-order MLE bias\nb(β)/n (King & Zeng 2001)", {"color": "k"}))
    _legend_proxies(axes[0, 1], entries)
    axes[0, 0].get_legend().remove()
    plots.legend_outside(axes[0, 1])
    path = plots.save(fig, ctx.figdir / "class_imbalance_bias.png")
    caption = (
        "Bias of the intercept β0 and the slope β1 against n at each prevalence: the MLE "
        "(filled; over the fits where it exists) and Firth (open); lines: the MLE's "
        "first-order bias b(β)/n (Cox & Snell 1968; King & Zeng 2001), which Firth's "
        "penalty removes; points: simulation ± 2 Monte Carlo SE."
    )
    return path, caption


def separation_figure(ctx, cell_list, by_role, shares):
    """(b) Share of MLE fits that failed by separation against n, exact lines; Firth's
    share of failed fits (any reason)."""
    fig, axes = plots.new_figure(width=6.0, height=4.2)
    ax = axes[0, 0]
    grid = _n_grid(ctx.summary["n"])
    k = len(cell_list) * 2
    for i, cell in enumerate(cell_list):
        exact = separation_probability(cell.beta, cell.covariates, grid)
        ax.plot(grid, exact, color=f"C{i}", label=cell.label)
        rows = _pick(shares["separation"], cell, estimator=by_role["mle"])
        x = plots.dodge(rows["n"], 2 * i, k, width=0.035)
        plots.errorbars(ax, x, rows["share"], rows["mcse"], None, color=f"C{i}", fmt="o")
        if "firth" in by_role:
            rows = _pick(shares["failed"], cell, estimator=by_role["firth"])
            x = plots.dodge(rows["n"], 2 * i + 1, k, width=0.035)
            plots.errorbars(
                ax, x, rows["share"], rows["mcse"], None, color=f"C{i}", fmt="s", mfc="none"
            )
    entries = [
        (f"{by_role['mle']}: failed by separation", {"marker": "o", "ls": "none", "color": "k"})
    ]
    if "firth" in by_role:
        entries.append(
            (
                f"{by_role['firth']}: failed (any reason)",
                {"marker": "s", "ls": "none", "color": "k", "mfc": "none"},
            )
        )
    entries.append(("line: exact P(no MLE)", {"color": "k"}))
    _legend_proxies(ax, entries)
    plots.label_axes(ax, "sample size n", "share of fits", None, logx=True)
    plots.legend_outside(ax)
    path = plots.save(fig, ctx.figdir / "class_imbalance_separation.png")
    caption = (
        "Share of MLE fits that failed because the classes are separated (the MLE does "
        "not exist; Albert & Anderson 1984) against n at each prevalence, and Firth's "
        "share of failed fits; lines: the exact probability of separation for one normal "
        "covariate (derived in the module docstring); points: simulation ± 2 binomial "
        "Monte Carlo SE."
    )
    return path, caption


def accuracy_figure(ctx, cell_list, by_role, acc, pi_grid, b0_grid):
    """(c) Accuracy against the prevalence: the majority-class predictor, the Bayes
    classifier and the fitted MLE's expected accuracy; right, the gaps on a log scale."""
    fig, axes = plots.new_figure(ncols=2, width=5.0, height=4.2)
    ref = cell_list[0]
    bayes = np.array([bayes_accuracy(np.r_[b0, ref.beta[1:]], ref.covariates) for b0 in b0_grid])
    majority = np.maximum(pi_grid, 1 - pi_grid)
    left, right = axes[0]
    left.plot(pi_grid, majority, "--", color="grey", label="always the majority class")
    left.plot(pi_grid, bayes, color="k", label="Bayes classifier")
    right.plot(
        pi_grid,
        bayes - majority,
        ":",
        color="k",
        lw=2,
        label="line: Bayes − majority class\n(what the best classifier gains)",
    )
    mle = acc[acc["estimator"] == by_role["mle"]]
    ns = sorted(mle["n"].unique())
    for i, n in enumerate(ns):
        rows = mle[mle["n"] == n].sort_values("prevalence")
        x = plots.dodge(rows["prevalence"], i, len(ns), width=0.06)
        style = {"color": f"C{i + 4}"}
        plots.errorbars(left, x, rows["mean"], rows["mcse"], f"fitted {by_role['mle']}", **style)
        gap = rows["bayes"] - rows["mean"]
        label = f"Bayes − fitted {by_role['mle']}, n = {n}"
        plots.errorbars(right, x, gap, rows["mcse"], label, **style)
    plots.label_axes(left, "prevalence π", "accuracy on new data", "accuracy", logx=True)
    handles, labels = left.get_legend_handles_labels()
    keep = [labels.index(lab) for lab in dict.fromkeys(labels)]  # one entry per estimator
    left.legend([handles[i] for i in keep], [labels[i] for i in keep], fontsize=8)
    plots.label_axes(
        right, "prevalence π", "accuracy difference (log scale)", "the gaps", logx=True
    )
    right.set_yscale("log")
    plots.legend_outside(right)
    path = plots.save(fig, ctx.figdir / "class_imbalance_accuracy.png")
    caption = (
        "Left: accuracy on new data against the prevalence — always predicting the "
        "majority class, max(π, 1 − π) (dashed), the Bayes classifier 1{p > ½}, "
        "E max(p, 1 − p) (line), and the fitted MLE's classifier 1{p̂ > ½} (points: the "
        "mean, over the replicates where the MLE exists, of its exact expected accuracy; "
        "colours as on the right). Right, log scale: how much the Bayes classifier beats "
        "the majority class (dotted) and how much the fitted MLE loses to the Bayes "
        "classifier (points). Points: simulation ± 2 Monte Carlo SE."
    )
    return path, caption


def calibration_figure(ctx, cell_list, by_role, mp, pi_grid, b0_grid):
    """(d) Mean predicted probability E_z expit(β̂0 + β̂1 z) against π, one panel per n,
    with each estimator's limit."""
    ns = sorted(mp["n"].unique())
    fig, axes = plots.new_figure(ncols=len(ns), width=4.2, height=4.0)
    ref = cell_list[0]
    order = list(ctx.spec["estimators"])
    gamma = _gamma(ctx, by_role)
    shown = [r for r in ROLES if r in by_role]
    consistent = [by_role[r] for r in shown if r in ("mle", "firth")]
    limits = {
        role: np.array(
            [
                mean_probability_limit(role, np.r_[b0, ref.beta[1:]], ref.covariates, gamma)
                for b0 in b0_grid
            ]
        )
        for role in ("balanced", "focal")
        if role in by_role
    }
    for ax, n in zip(axes[0], ns, strict=True):
        ax.plot(pi_grid, pi_grid, color="k", lw=1.2, label=f"limit of {', '.join(consistent)}: π")
        for role, curve in limits.items():
            color = f"C{order.index(by_role[role])}"
            ax.plot(pi_grid, curve, color=color, lw=1.2, label=f"limit of {by_role[role]}")
        for r, role in enumerate(shown):
            label = by_role[role]
            rows = mp[(mp["estimator"] == label) & (mp["n"] == n)].sort_values("prevalence")
            x = plots.dodge(rows["prevalence"], r, len(shown), width=0.05)
            color = f"C{order.index(label)}"
            plots.errorbars(ax, x, rows["mean"], rows["mcse"], label, color=color)
        plots.label_axes(
            ax, "prevalence π", "mean predicted probability", f"n = {n}", logx=True, logy=True
        )
        ax.get_legend().remove()
    plots.legend_outside(axes[0, -1])
    path = plots.save(fig, ctx.figdir / "class_imbalance_calibration.png")
    caption = (
        "Mean predicted probability E_z expit(β̂0 + β̂1 z) against the prevalence π, one "
        "panel per n (log scales); lines: each estimator's limit — π for the MLE and "
        "Firth, E expit(β0 + log((1 − π)/π) + β1 z) for balanced class weights, the "
        f"minimiser of the expected focal loss (γ = {gamma:g}) for the focal loss; points: "
        "simulation (over each estimator's successful fits) ± 2 Monte Carlo SE."
    )
    return path, caption


def _gamma(ctx: StudyContext, by_role: dict[str, str]) -> float:
    """The focal estimator's γ (its default 2)."""
    if "focal" not in by_role:
        return 2.0
    gamma = ctx.spec["estimators"][by_role["focal"]].get("gamma")
    return 2.0 if gamma is None else float(gamma)


# --------------------------------------------------------------------------- notes
def _fmt(value: float) -> str:
    """A theory value to 3 significant digits (rounding noise as 0)."""
    return "0" if abs(value) < 1e-12 else f"{value:.3g}"


def _pm_g(value: float, mcse: float) -> str:
    """``v ± m`` in 3 significant digits (for differences spanning decades)."""
    return f"{value:.3g} ± {mcse:.2g}"


def bias_note(ctx, cell_list, by_role) -> str:
    """(a) in numbers: the MLE's and Firth's bias beside the first-order theory."""
    mle, firth = by_role["mle"], by_role.get("firth")
    head = ["prevalence", "n", f"{mle} fits"]
    for param in ("beta0", "beta1"):
        head += [f"{mle} bias of {param} [first order]"] + ([f"{firth} bias"] if firth else [])
    lines = [
        "**Seed claim (a): rare events bias the logistic MLE; Firth's penalty removes the "
        "first-order bias.** Bias ± MCSE of the MLE over the fits where it exists (its "
        "failed fits — separation — are left out), beside its first-order bias b(β)/n "
        "(King & Zeng 2001), and of Firth's estimate over all its fits:",
        "",
        "| " + " | ".join(head) + " |",
        "|---" * len(head) + "|",
    ]
    for cell in cell_list:
        first = lt.logistic_bias(cell.beta, cell.covariates, 1)
        for n in sorted(ctx.summary["n"].unique()):
            row = [cell.label, f"{n}"]
            m = _pick(ctx.summary, cell, estimator=mle, n=n).set_index("param")
            row.append(
                f"{int(m.loc['beta0', 'n_rep'])} of "
                f"{int(m.loc['beta0', 'n_rep'] + m.loc['beta0', 'n_failed'])}"
            )
            f = _pick(ctx.summary, cell, estimator=firth, n=n).set_index("param") if firth else None
            for j, param in enumerate(("beta0", "beta1")):
                row.append(
                    f"{plots.pm(m.loc[param, 'bias'], m.loc[param, 'bias_mcse'])} "
                    f"[{_fmt(first[j] / n)}]"
                )
                if f is not None:
                    row.append(plots.pm(f.loc[param, "bias"], f.loc[param, "bias_mcse"]))
            lines.append("| " + " | ".join(row) + " |")
    rare, n = cell_list[-1], int(ctx.summary["n"].max())
    m = _pick(ctx.summary, rare, estimator=mle, n=n, param="beta0").iloc[0]
    text = (
        f"At {rare.label} and n = {n} the MLE's intercept bias is "
        f"{plots.pm(m['bias'], m['bias_mcse'])} against the first-order "
        f"{_fmt(lt.logistic_bias(rare.beta, rare.covariates, n)[0])}"
    )
    if firth:
        f = _pick(ctx.summary, rare, estimator=firth, n=n, param="beta0").iloc[0]
        text += f"; Firth's is {plots.pm(f['bias'], f['bias_mcse'])}"
    lines += [
        "",
        text + ". The first-order formula is the bias of the MLE's expansion; where few "
        "events are expected (nπ small) higher-order terms and the conditioning on the "
        "MLE's existence move the simulated bias away from it.",
    ]
    if firth:
        lines[-1] += " " + _firth_far(ctx, cell_list, firth)
    return "\n".join(lines)


def _firth_far(ctx, cell_list, firth: str) -> str:
    """Where Firth's bias is more than 4 MCSE from 0, with the expected events nπ."""
    far = []
    for cell in cell_list:
        rows = _pick(ctx.summary, cell, estimator=firth)
        for r in rows[abs(rows["bias"]) > 4 * rows["bias_mcse"]].itertuples():
            far.append(
                f"{r.param} at {cell.label}, n = {r.n} (nπ = {r.n * cell.prevalence:.3g}): "
                f"{plots.pm(r.bias, r.bias_mcse)}"
            )
    if not far:
        return "Firth's bias is within 4 MCSE of 0 in every cell."
    return (
        "Firth's bias is within 4 MCSE of 0 in every cell but " + "; ".join(far) + " — "
        "its O(n⁻²) remainder is not small when a sample holds about one event."
    )


def separation_note(ctx, cell_list, by_role, fits, shares, known) -> str:
    """(b) in numbers: the share of MLE fits without an MLE, exact beside it; Firth's
    failures; the MLE's other failure reasons."""
    mle, firth = by_role["mle"], by_role.get("firth")
    what = "failed by separation" if known else "failed (reasons unknown: all failures)"
    lines = [
        "**Seed claim (b): at low prevalence the MLE often does not exist (separation); "
        "Firth's estimate always does.** Share of MLE fits that " + what + " ± binomial "
        "MCSE, [exact P(no MLE)]:",
        "",
        "| prevalence | "
        + " | ".join(f"n = {n}" for n in sorted(ctx.summary["n"].unique()))
        + " |",
        "|---" * (1 + ctx.summary["n"].nunique()) + "|",
    ]
    for cell in cell_list:
        rows = _pick(shares["separation"], cell, estimator=mle)
        exact = separation_probability(cell.beta, cell.covariates, rows["n"].to_numpy())
        cells_ = [
            (f"{r.share:.3f} ± {r.mcse:.3f} " if r.count else "0 ")
            + f"({int(r.count)}/{int(r.total)}) [{_fmt(e)}]"
            for r, e in zip(rows.itertuples(), exact, strict=True)
        ]
        lines.append(f"| {cell.label} | " + " | ".join(cells_) + " |")
    lines += ["", _largest_gap(ctx, cell_list, shares["separation"], mle)]
    mine = fits[fits["estimator"] == mle]
    other = mine[(mine["reason"] != "") & ~mine["reason"].str.startswith(SEPARATION)]
    text = (
        f"{mle}: {int((mine['reason'] != '').sum())} failed fits of {len(mine)}, "
        f"{len(other)} of them for another reason than separation"
        + (f" ({_reasons(other)})" if len(other) else "")
        + "."
    )
    if firth:
        failed = fits[(fits["estimator"] == firth) & (fits["reason"] != "")]
        total = int((fits["estimator"] == firth).sum())
        text += (
            f" {firth}: {len(failed)} failed fits of {total}"
            + (
                f" ({_reasons(failed)}; none by separation)"
                if len(failed)
                else " — it never failed"
            )
            + "."
        )
    if not known:
        text += " The reasons were not available (failures.csv not beside figures/)."
    return "\n".join([*lines, text])


def _largest_gap(ctx, cell_list, shares: pd.DataFrame, mle: str) -> str:
    """The largest |simulated − exact| share in binomial MCSEs √(e(1 − e)/R) at the
    exact e, and where."""
    worst = (0.0, "")
    for cell in cell_list:
        rows = _pick(shares, cell, estimator=mle)
        exact = separation_probability(cell.beta, cell.covariates, rows["n"].to_numpy())
        for r, e in zip(rows.itertuples(), exact, strict=True):
            sd = np.sqrt(e * (1 - e) / r.total)
            z = abs(r.share - e) / sd if sd > 0 else (np.inf if r.share != e else 0.0)
            if z > worst[0]:
                worst = (
                    z,
                    f"{cell.label}, n = {r.n}: {int(r.count)} where {e * r.total:.3g} "
                    "were expected",
                )
    if not worst[1]:
        return "Every simulated share equals its exact value."
    verdict = "within" if worst[0] < 4 else "NOT within"
    return (
        f"The simulated shares are {verdict} 4 binomial MCSE of the exact values in every "
        f"cell; the largest gap is {worst[0]:.1f} MCSE ({worst[1]})."
    )


def _reasons(rows: pd.DataFrame) -> str:
    """``'reason' ×k`` for each distinct reason of ``rows``, commonest first."""
    counts = rows["reason"].value_counts()
    return "; ".join(f"'{r}' ×{c}" for r, c in counts.items())


def accuracy_note(ctx, cell_list, by_role, acc) -> str:
    """(c) in numbers: the majority predictor, the Bayes classifier, the fitted MLE."""
    mle = by_role["mle"]
    ns = sorted(acc["n"].unique())
    lines = [
        "**Seed claim (c): under imbalance accuracy says little.** Always predicting the "
        "majority class scores max(π, 1 − π); the best possible classifier (Bayes) barely "
        "beats it when events are rare, and the fitted MLE's classifier (the mean over the "
        "replicates where the MLE exists of its exact expected accuracy on new data) "
        "loses more to the Bayes classifier than that, so it scores below the constant "
        "prediction (a negative entry below):",
        "",
        "| prevalence | majority | Bayes − majority | "
        + " | ".join(f"{mle} − majority, n = {n}" for n in ns)
        + " |",
        "|---" * (3 + len(ns)) + "|",
    ]
    for cell in cell_list:
        majority = max(cell.prevalence, 1 - cell.prevalence)
        row = [cell.label, f"{majority:.5f}", f"{cell.bayes - majority:.3g}"]
        for n in ns:
            r = _pick(acc, cell, estimator=mle, n=n)
            row.append(_pm_g(r["mean"].iloc[0] - majority, r["mcse"].iloc[0]) if len(r) else "—")
        lines.append("| " + " | ".join(row) + " |")
    rare = cell_list[-1]
    r = _pick(acc, rare, estimator=mle, n=ns[0]).iloc[0]
    maj = max(rare.prevalence, 1 - rare.prevalence)
    lines += [
        "",
        f"At {rare.label} the constant prediction scores {maj:.5f}, the Bayes classifier "
        f"{rare.bayes:.8f} and the fitted MLE at n = {ns[0]} "
        f"{r['mean']:.5f} ± {r['mcse']:.1g}: accuracy cannot tell a fitted model from "
        "one that never predicts an event.",
    ]
    return "\n".join(lines)


def calibration_note(ctx, cell_list, by_role, mp) -> str:
    """(d) in numbers: mean predicted probabilities against π at the largest n, and the
    balanced intercept against its limit."""
    n = int(mp["n"].max())
    shown = [r for r in ROLES if r in by_role]
    gamma = _gamma(ctx, by_role)
    lines = [
        f"**Seed claim (d): class weights and the focal loss shift the predicted "
        f"probabilities.** Mean predicted probability E_z expit(β̂0 + β̂1 z) ± MCSE at "
        f"n = {n} [its limit]:",
        "",
        "| prevalence π | " + " | ".join(by_role[r] for r in shown) + " |",
        "|---" * (1 + len(shown)) + "|",
    ]
    for cell in cell_list:
        row = [f"{cell.prevalence:.4f}"]
        for role in shown:
            r = _pick(mp, cell, estimator=by_role[role], n=n)
            limit = mean_probability_limit(role, cell.beta, cell.covariates, gamma)
            row.append(
                f"{plots.pm(r['mean'].iloc[0], r['mcse'].iloc[0], 4)} [{limit:.4f}]"
                if len(r)
                else "—"
            )
        lines.append("| " + " | ".join(row) + " |")
    rare, first = cell_list[-1], int(mp["n"].min())
    lifted = [
        f"{by_role[r]} {plots.pm(row['mean'].iloc[0], row['mcse'].iloc[0], 4)}"
        for r in ("mle", "firth")
        if r in by_role and len(row := _pick(mp, rare, estimator=by_role[r], n=first))
    ]
    lines += [
        "",
        f"At n = {first} and {rare.label} the mean predicted probability of the MLE (over "
        f"the fits that exist) and of Firth's estimate exceed π: {', '.join(lifted)} — "
        "Firth's penalty removes the coefficients' first-order bias, not that of the "
        "probabilities, which it pulls towards ½ (Puhr et al. 2017).",
        "",
        f"The limits are for n → ∞; at {rare.label} a sample of n = {n} holds about "
        f"{n * rare.prevalence:.3g} events, and the class-weighted and focal fits still "
        "carry a finite-sample bias of order 1/(nπ) there.",
    ]
    if "balanced" in by_role:
        b = _pick(ctx.summary, rare, estimator=by_role["balanced"], n=n, param="beta0").iloc[0]
        limit = balanced_limit(rare.beta, rare.covariates)[0]
        lines.append(
            f"\nBalanced weights n/(2n_c) give both classes half the weight: the fitted "
            f"model describes a population where the events are as common as the "
            f"non-events, so its intercept tends to β0 + log((1 − π)/π) (King & Zeng "
            f"2001, read backwards) — at {rare.label}, {rare.beta[0]:.4g} + "
            f"{np.log((1 - rare.prevalence) / rare.prevalence):.4g} = {limit:.4g}; the mean "
            f"of the fitted intercepts at n = {n} is {plots.pm(b['mean'], b['bias_mcse'])}. "
            f"The predicted probabilities are pulled towards ½."
        )
    if "focal" in by_role:
        lim = focal_limit(rare.beta, rare.covariates, gamma)
        lines.append(
            f"\nThe focal loss (γ = {gamma:g}) is not a proper scoring rule: its estimate tends "
            f"to the minimiser of the expected loss, at {rare.label} β*_γ = "
            f"({lim[0]:.4g}, {lim[1]:.4g}) instead of ({rare.beta[0]:.4g}, "
            f"{rare.beta[1]:.4g}) — a flatter, less confident model whose probabilities "
            "move towards ½."
        )
    return "\n".join(lines)


# -------------------------------------------------------------------------- render
def render(ctx: StudyContext) -> Rendered:
    """Four figures — bias, separation, accuracy, calibration — each with its note."""
    cell_list = cells(ctx)
    by_role = labels_by_role(ctx)
    keys = ctx.spec.factor_names
    fits, known = fit_reasons(ctx)
    shares = {
        "separation": attach(reason_share(fits, keys, SEPARATION if known else None), cell_list),
        "failed": attach(reason_share(fits, keys, None), cell_list),
    }
    per = per_replicate(ctx, cell_list)
    acc = attach(averages(per, keys, "accuracy"), cell_list)
    mp = attach(averages(per, keys, "mean_prob"), cell_list)
    pi_grid, b0_grid = _prevalence_grid(cell_list)
    figures = [
        bias_figure(ctx, cell_list, by_role),
        separation_figure(ctx, cell_list, by_role, shares),
        accuracy_figure(ctx, cell_list, by_role, acc, pi_grid, b0_grid),
        calibration_figure(ctx, cell_list, by_role, mp, pi_grid, b0_grid),
    ]
    notes = [
        bias_note(ctx, cell_list, by_role),
        separation_note(ctx, cell_list, by_role, fits, shares, known),
        accuracy_note(ctx, cell_list, by_role, acc),
        calibration_note(ctx, cell_list, by_role, mp),
    ]
    return figures, notes
