"""Analyses of a run's tables: rates of convergence, exceedance probabilities,
efficiency against the Cramér–Rao bound and normality of the sampling distribution.

Pure functions on arrays and tables (no plotting, no state). They feed the studies
``consistency``, ``crlb_efficiency`` and ``asymptotic_normality`` but work on any
long table of estimates with the replicates.parquet / summary.csv columns.

References
----------
- Draper & Smith (1998), *Applied Regression Analysis*, 3rd ed., §9.2 (weighted least
  squares with known variances).
- Morris, White & Crowther (2019), *Statistics in Medicine* 38:2074–2102, Table 6
  (Monte Carlo SE of a proportion and of the MSE).
- Serfling (1980), *Approximation Theorems of Mathematical Statistics*, §2.3.3
  (asymptotic variance of a sample quantile) and §2.4.1 (order statistics).
- Anderson & Darling (1954), JASA 49:765–769; Stephens (1974), JASA 69:730–737
  (the A² statistic against a fully specified distribution).
- Marsaglia, Tsang & Wang (2003), J. Stat. Software 8(18) — the exact distribution of
  the Kolmogorov–Smirnov distance (``scipy.stats.kstwo``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from mlesim.families import Family
from mlesim.lazy import lazy_module
from mlesim.metrics import first_rows, group_ids

integrate = lazy_module("scipy.integrate")
special = lazy_module("scipy.special")
stats = lazy_module("scipy.stats")

__all__ = [
    "DELTA_SCALES",
    "DISTANCES",
    "RateFit",
    "attach_targets",
    "bootstrap_se",
    "cell_rows",
    "design_cells",
    "exceedance",
    "exceedance_normal",
    "mean_efficiency",
    "median_efficiency",
    "median_efficiency_exact",
    "median_variance",
    "normality_distance",
    "normality_table",
    "null_distance",
    "qq_envelope",
    "rate_slope",
    "rmse_mcse",
    "standardise",
    "threshold",
]

DELTA_SCALES = ("information", "relative", "absolute")
DISTANCES = ("ks", "ad")


# ------------------------------------------------------------------ design cells


def design_cells(table: pd.DataFrame, keys: Sequence[Hashable]) -> list[tuple[dict, pd.DataFrame]]:
    """Split a table by design factors other than n.

    Parameters
    ----------
    table : DataFrame with the columns ``keys``.
    keys : design factor names (may be empty).

    Returns
    -------
    list of (values, rows): ``values`` maps each key to the cell's value (empty when
    there are no keys), ``rows`` the cell's rows, cells in order of first appearance.
    """
    keys = list(keys)
    if not keys:
        return [({}, table)]
    out = []
    for values, rows in table.groupby(keys, sort=False, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        out.append((dict(zip(keys, values, strict=True)), rows))
    return out


def cell_rows(table: pd.DataFrame, cell: dict) -> pd.DataFrame:
    """Rows of ``table`` whose columns equal the values of ``cell`` (all rows if empty)."""
    mask = np.ones(len(table), dtype=bool)
    for key, value in cell.items():
        mask &= (table[key] == value).to_numpy()
    return table[mask]


def attach_targets(
    replicates: pd.DataFrame,
    summary: pd.DataFrame,
    keys: Sequence[Hashable],
    groups: tuple[np.ndarray, int] | None = None,
) -> pd.DataFrame:
    """The replicates with their cell's ``true_value`` and ``crlb`` from ``summary``.

    ``keys`` are the factor columns (``n`` and design factors); rows are matched on
    keys + ``estimator`` + ``param``. Each row's group is numbered once (``groups``,
    :func:`~mlesim.metrics.group_ids` over those columns, computed if None) and only
    the small table of groups is merged with ``summary``, so the replicates are never
    merged or copied row-wise (pandas' copy-on-write shares their columns).
    """
    on = [*keys, "estimator", "param"]
    gid, count = group_ids(replicates, on) if groups is None else groups
    first = first_rows(gid, count)
    heads = replicates[on].iloc[first].reset_index(drop=True)
    heads = heads.astype({k: object for k in on if isinstance(heads[k].dtype, pd.CategoricalDtype)})
    found = heads.merge(
        summary[[*on, "true_value", "crlb"]], on=on, how="left", validate="one_to_one"
    )
    return replicates.assign(
        true_value=found["true_value"].to_numpy()[gid], crlb=found["crlb"].to_numpy()[gid]
    )


# ------------------------------------------------------------------ consistency


class RateFit(NamedTuple):
    """A fitted power law ``rmse ≈ exp(intercept) · n**slope``."""

    slope: float
    se: float
    ci_low: float
    ci_high: float
    intercept: float


def rmse_mcse(mse: npt.ArrayLike, mse_mcse: npt.ArrayLike) -> np.ndarray:
    """Monte Carlo SE of the RMSE by the delta method.

    ``MCSE(√mse) = MCSE(mse) / (2 √mse)`` (first-order Taylor expansion of the square
    root; the MSE's MCSE is Morris Table 6). Shapes broadcast; NaN where mse ≤ 0.
    """
    mse = np.asarray(mse, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(mse > 0, np.asarray(mse_mcse, dtype=float) / (2.0 * np.sqrt(mse)), np.nan)


def rate_slope(
    n: npt.ArrayLike, rmse: npt.ArrayLike, rmse_mcse: npt.ArrayLike, level: float = 0.95
) -> RateFit:
    """Rate of convergence: weighted least-squares slope of log RMSE on log n.

    Parameters
    ----------
    n, rmse, rmse_mcse : array_like, shape (k,)
        Sample sizes, RMSEs and their Monte Carlo SEs (see :func:`rmse_mcse`).
    level : float
        Confidence level of the interval.

    Returns
    -------
    RateFit
        With ``x = log n``, ``y = log rmse`` and the delta-method SE of ``y``,
        ``s = rmse_mcse / rmse`` (= mse_mcse / (2 mse)), weights ``w = 1 / s²``:
        ``slope = Σ w (x − x̄_w)(y − ȳ_w) / Σ w (x − x̄_w)²``, ``intercept = ȳ_w −
        slope · x̄_w`` and, treating the weights as known variances (Draper & Smith
        1998, §9.2), ``se = (Σ w (x − x̄_w)²)^{-1/2}``; the interval is ``slope ± z se``
        with ``z = Φ⁻¹((1 + level) / 2)``. A √n-consistent estimator has slope −1/2.
        Points with a non-finite or non-positive RMSE or MCSE are left out; with fewer
        than two distinct n left every field is NaN.
    """
    x, y, s = (np.asarray(a, dtype=float) for a in (n, rmse, rmse_mcse))
    keep = np.isfinite(x) & np.isfinite(y) & np.isfinite(s) & (x > 0) & (y > 0) & (s > 0)
    x, y, s = np.log(x[keep]), np.log(y[keep]), s[keep] / y[keep]
    if np.unique(x).size < 2:
        return RateFit(*[math.nan] * 5)
    w = 1.0 / s**2
    xm, ym = np.sum(w * x) / w.sum(), np.sum(w * y) / w.sum()
    sxx = float(np.sum(w * (x - xm) ** 2))
    slope = float(np.sum(w * (x - xm) * (y - ym)) / sxx)
    se = 1.0 / math.sqrt(sxx)
    z = float(special.ndtri(0.5 + level / 2.0))  # = stats.norm.ppf, bit for bit
    return RateFit(slope, se, slope - z * se, slope + z * se, float(ym - slope * xm))


def threshold(
    true: npt.ArrayLike,
    crlb: npt.ArrayLike,
    n: npt.ArrayLike,
    delta: float,
    scale: str = "information",
) -> np.ndarray:
    """The tolerance δ of :func:`exceedance` for each row.

    Parameters
    ----------
    true, crlb, n : array_like, broadcastable
        True values θ_j, Cramér–Rao variance bounds [I(θ)⁻¹]_jj / n and sample sizes.
    delta : float
        The size of δ in the units set by ``scale``.
    scale : {"information", "relative", "absolute"}
        ``information``: δ = delta · sqrt([I(θ)⁻¹]_jj) = delta · sqrt(n · crlb), the
        asymptotic SD of θ̂_j from one observation, so that for an efficient estimator
        P(|θ̂ − θ| > δ) ≈ 2 Φ(−delta √n) for every parameter of every family; defined
        at θ = 0 too. ``relative``: δ = delta · |θ_j| (NaN where θ_j = 0).
        ``absolute``: δ = delta.

    Returns
    -------
    ndarray, the broadcast shape of the inputs.
    """
    true, crlb, n = (np.asarray(a, dtype=float) for a in (true, crlb, n))
    shape = np.broadcast_shapes(true.shape, crlb.shape, n.shape)
    if scale == "information":
        return delta * np.sqrt(n * crlb) * np.ones(shape)
    if scale == "relative":
        with np.errstate(invalid="ignore"):
            return np.where(true != 0, delta * np.abs(true), np.nan) * np.ones(shape)
    if scale == "absolute":
        return np.full(shape, float(delta))
    raise ValueError(f"unknown scale {scale!r}; allowed: {', '.join(DELTA_SCALES)}")


def _usable(df: pd.DataFrame, estimate: Hashable, converged: Hashable | None) -> np.ndarray:
    ok = np.isfinite(df[estimate].to_numpy(dtype=float, na_value=np.nan))
    if converged is not None and converged in df.columns:
        ok &= df[converged].astype("boolean").fillna(False).to_numpy(dtype=bool)
    return ok


def _values(df: pd.DataFrame, spec: float | Hashable) -> np.ndarray:
    if isinstance(spec, int | float) and not isinstance(spec, bool):
        return np.full(len(df), float(spec))
    return df[spec].to_numpy(dtype=float, na_value=np.nan)


def exceedance(
    df: pd.DataFrame,
    true: float | Hashable,
    delta: float | Hashable,
    by: Sequence[Hashable] = ("n", "estimator", "param"),
    estimate: Hashable = "estimate",
    converged: Hashable | None = "converged",
) -> pd.DataFrame:
    """P(|θ̂ − θ| > δ) per group, with its binomial Monte Carlo SE.

    Parameters
    ----------
    df : DataFrame, one row per replicate (and group)
    true, delta : number or column name
        θ and δ (columns must be constant within a group).
    by : grouping columns.
    estimate, converged : columns. Failed rows (not converged, or a NaN estimate) are
        left out, except estimates that ran to ±inf (a boundary such as ν̂ = ∞, reported
        as a failure with estimate inf): they certainly exceed any δ and are counted as
        exceeding.

    Returns
    -------
    DataFrame, one row per group (sorted): the ``by`` columns, ``delta``, ``n_rep``
    (replicates counted, the infinite ones included), ``n_inf`` (of those, estimates at
    ±inf), ``exceed`` = (1/R) Σ 1{|θ̂_i − θ| > δ} and ``exceed_mcse`` = sqrt(p (1 − p) / R)
    (Morris Table 6, the MCSE of a proportion). Weak consistency is exceed → 0.
    """
    by = list(by)
    est = df[estimate].to_numpy(dtype=float, na_value=np.nan)
    infinite = np.isinf(est)
    ok = _usable(df, estimate, converged) | infinite
    work = df.loc[ok, by].copy()
    work["delta"] = _values(df, delta)[ok]
    with np.errstate(invalid="ignore"):
        work["_hit"] = (np.abs(est - _values(df, true)) > _values(df, delta))[ok] | infinite[ok]
    work["_inf"] = infinite[ok]
    out = work.groupby(by, sort=True, dropna=False).agg(
        delta=("delta", "first"),
        n_rep=("_hit", "size"),
        n_inf=("_inf", "sum"),
        exceed=("_hit", "mean"),
    )
    out = out.reset_index()
    out["exceed_mcse"] = np.sqrt(out["exceed"] * (1.0 - out["exceed"]) / out["n_rep"])
    return out


def exceedance_normal(delta: npt.ArrayLike, sd: npt.ArrayLike) -> np.ndarray:
    """Normal approximation P(|θ̂ − θ| > δ) ≈ 2 Φ(−δ / sd) for θ̂ ~ N(θ, sd²)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.asarray(delta, dtype=float) / np.asarray(sd, dtype=float)
        return 2.0 * special.ndtr(-ratio)  # = 2 stats.norm.sf(ratio), bit for bit


# ------------------------------------------------------------------ efficiency


def _inverse_information(family: Family, theta: np.ndarray) -> np.ndarray:
    """[I(θ)⁻¹], shape (p, p), for θ of shape (p,)."""
    return np.linalg.pinv(family.fisher(np.asarray(theta, dtype=float)[None])[0])


def median_efficiency(family: Family, theta: npt.ArrayLike) -> float:
    """Asymptotic efficiency of the sample median for the family's centre.

    The sample median m̂ of a density f with median m has asymptotic variance
    1 / (4 n f(m)²) (Serfling 1980, §2.3.3), and the Cramér–Rao bound for the centre
    is [I(θ)⁻¹]_jj / n, so

        eff = 4 f(m)² [I(θ)⁻¹]_jj,

    with f from ``family.logpdf`` and I from ``family.fisher``: 2/π at the normal,
    8/π² at the Cauchy, 1 at the Laplace. NaN if the family has no ``center``.
    """
    if family.center is None:
        return math.nan
    theta = np.asarray(theta, dtype=float)
    j = family.index(family.center)
    f = math.exp(float(family.logpdf(np.array([[theta[j]]]), theta[None])[0, 0]))
    return 4.0 * f**2 * float(_inverse_information(family, theta)[j, j])


def mean_efficiency(family: Family, theta: npt.ArrayLike) -> float:
    """Asymptotic efficiency of the sample mean for the family's ``location`` parameter.

    Var(x̄) = Var(X) / n exactly, so eff = [I(θ)⁻¹]_jj / Var(X) (1 for the normal,
    Poisson and Bernoulli means; 1/2 at the Laplace; 0 when Var(X) is infinite).
    NaN if the family has no ``location``.
    """
    if family.location is None:
        return math.nan
    theta = np.asarray(theta, dtype=float)
    j = family.index(family.location)
    _, var = family.mean_var(theta)
    var = float(var)
    if not var > 0:
        return math.nan
    return float(_inverse_information(family, theta)[j, j]) / var


def median_variance(dist: Any, n: int, points: int = 4097) -> float:
    """Exact variance of the median of ``n`` (odd) draws from a continuous distribution.

    The median is the order statistic X_(k), k = (n + 1)/2, and X_(k) = Q(U_(k)) with
    U_(k) ~ Beta(k, n − k + 1) and Q the quantile function (Serfling 1980, §2.4.1),
    so Var X_(k) = E[Q(U)²] − E[Q(U)]². The expectations are integrated by Simpson's
    rule on ``points`` equally spaced values of t = logit(U) (du = u (1 − u) dt keeps
    heavy tails and the narrow peak of large n smooth) between the ε and 1 − ε
    quantiles of U, with ε = 1e-14 and 1e-10; if the two differ by more than 1% the
    variance is taken to be infinite (heavy tails: the median of 1 or 3 Cauchy draws
    has none) and ``inf`` is returned.

    Parameters
    ----------
    dist : frozen ``scipy.stats`` continuous distribution (vectorised ``ppf``).
    n : odd int ≥ 1.
    points : odd int, grid size of Simpson's rule.
    """
    if n < 1 or n % 2 == 0:
        raise ValueError(f"n must be odd and >= 1, got {n}")
    k = (n + 1) // 2
    beta = stats.beta(k, n - k + 1)
    centre = float(dist.median())

    def variance(eps: float) -> float:
        t = np.linspace(special.logit(beta.ppf(eps)), special.logit(beta.isf(eps)), points)
        u = special.expit(t)
        weight = np.exp(beta.logpdf(u) + special.log_expit(t) + special.log_expit(-t))
        q = dist.ppf(u) - centre
        m1 = integrate.simpson(q * weight, x=t)
        return float(integrate.simpson(q**2 * weight, x=t) - m1**2)

    fine, coarse = variance(1e-14), variance(1e-10)
    if not abs(fine - coarse) <= 1e-2 * abs(fine):
        return math.inf
    return fine


def median_efficiency_exact(family: Family, theta: npt.ArrayLike, n: int) -> float:
    """Finite-n efficiency of the sample median, crlb / Var(median), for odd ``n``.

    ``crlb = [I(θ)⁻¹]_jj / n`` for the centre parameter j and Var(median) from
    :func:`median_variance` on ``family.scipy_dist(θ)``; tends to
    :func:`median_efficiency` as n → ∞. NaN if the family has no centre or is discrete.
    """
    if family.center is None or family.discrete:
        return math.nan
    theta = np.asarray(theta, dtype=float)
    j = family.index(family.center)
    crlb = float(_inverse_information(family, theta)[j, j]) / n
    return crlb / median_variance(family.scipy_dist(theta), n)


# ------------------------------------------------------------------ normality


def standardise(estimate: npt.ArrayLike, true: npt.ArrayLike, crlb: npt.ArrayLike) -> np.ndarray:
    """Standardised estimates z = (θ̂ − θ) / sqrt(crlb) = √(n / [I(θ)⁻¹]_jj) (θ̂ − θ).

    For an efficient, asymptotically normal estimator z → N(0, 1) in distribution
    (Casella & Berger 2002, Thm 10.1.12). Shapes broadcast.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return (np.asarray(estimate, dtype=float) - np.asarray(true, dtype=float)) / np.sqrt(
            np.asarray(crlb, dtype=float)
        )


def _ks(z: np.ndarray) -> np.ndarray:
    """KS distance to N(0, 1) along the last axis of ``z`` (..., R)."""
    r = z.shape[-1]
    cdf = stats.norm.cdf(np.sort(z, axis=-1))
    i = np.arange(1, r + 1)
    return np.maximum(np.max(i / r - cdf, axis=-1), np.max(cdf - (i - 1) / r, axis=-1))


def _ad(z: np.ndarray) -> np.ndarray:
    """Anderson–Darling A² against N(0, 1) along the last axis of ``z`` (..., R).

    A² = −R − (1/R) Σ_i (2i − 1) [log Φ(z_(i)) + log(1 − Φ(z_(R+1−i)))]
    (Stephens 1974, eq. 2), with log Φ and log(1 − Φ) evaluated stably.
    """
    r = z.shape[-1]
    zs = np.sort(z, axis=-1)
    i = np.arange(1, r + 1)
    terms = (2 * i - 1) * (stats.norm.logcdf(zs) + stats.norm.logsf(zs[..., ::-1]))
    return -r - terms.sum(axis=-1) / r


def normality_distance(z: npt.ArrayLike, method: str = "ks") -> np.ndarray:
    """Distance between the empirical distribution of ``z`` and N(0, 1).

    Parameters
    ----------
    z : array_like, shape (..., R)
        Standardised estimates; the last axis is the sample (must be finite).
    method : {"ks", "ad"}
        ``ks``: Kolmogorov–Smirnov sup_t |F_R(t) − Φ(t)| (as
        ``scipy.stats.kstest(z, "norm")``); ``ad``: Anderson–Darling A² against the
        fully specified N(0, 1) (Anderson & Darling 1954).

    Returns
    -------
    ndarray of shape (...) (a 0-d array for 1-D input).
    """
    z = np.asarray(z, dtype=float)
    if method == "ks":
        return _ks(z)
    if method == "ad":
        return _ad(z)
    raise ValueError(f"unknown method {method!r}; allowed: {', '.join(DISTANCES)}")


def bootstrap_se(
    z: npt.ArrayLike,
    statistic: Callable[[np.ndarray], np.ndarray],
    n_boot: int = 200,
    seed: int = 0,
    max_cells: int = 4_000_000,
) -> float:
    """Bootstrap SE of ``statistic`` over the replicates ``z`` (R,).

    ``statistic`` maps (B, R) resamples to (B,) values; resamples are drawn in batches
    of at most ``max_cells`` numbers, with a fixed ``seed`` (Efron & Tibshirani 1993,
    ch. 6). Returns the SD (ddof 1) of the B bootstrap values; NaN if R < 2.
    """
    z = np.asarray(z, dtype=float)
    r = z.size
    if r < 2:
        return math.nan
    rng = np.random.default_rng(seed)
    per = max(1, max_cells // r)
    values = [
        statistic(z[rng.integers(0, r, size=(min(per, n_boot - b), r))])
        for b in range(0, n_boot, per)
    ]
    return float(np.std(np.concatenate(values), ddof=1))


def null_distance(
    r: int, quantiles: npt.ArrayLike, method: str = "ks", n_sim: int = 2000, seed: int = 0
) -> np.ndarray:
    """Quantiles of the distance of an exactly N(0, 1) sample of size ``r``.

    The Monte Carlo noise floor of :func:`normality_distance`: what a study of ``r``
    replicates would show if the estimator were exactly normal. ``ks``: exact, from
    the distribution of the one-sample KS statistic (``scipy.stats.kstwo``; its median
    is ≈ 0.83 / √r); ``ad``: simulated from ``n_sim`` normal samples with ``seed``.
    Returns an array shaped like ``quantiles``.
    """
    q = np.asarray(quantiles, dtype=float)
    if method == "ks":
        return stats.kstwo(r).ppf(q)
    if method == "ad":
        rng = np.random.default_rng(seed)
        per = max(1, 4_000_000 // r)
        sims = np.concatenate(
            [_ad(rng.standard_normal((min(per, n_sim - b), r))) for b in range(0, n_sim, per)]
        )
        return np.quantile(sims, q)
    raise ValueError(f"unknown method {method!r}; allowed: {', '.join(DISTANCES)}")


def normality_table(
    df: pd.DataFrame,
    by: Sequence[Hashable] = ("n", "estimator", "param"),
    z: Hashable = "z",
    method: str = "ks",
    n_boot: int = 200,
    seed: int = 0,
) -> pd.DataFrame:
    """Distance to N(0, 1) of the standardised estimates of each group.

    Returns
    -------
    DataFrame, one row per group (sorted): the ``by`` columns, ``n_rep`` (finite z),
    ``distance`` (:func:`normality_distance`), ``distance_mcse`` (:func:`bootstrap_se`)
    and ``noise_median`` (the median distance of an exactly normal sample of the same
    size, :func:`null_distance`).
    """
    rows = []
    for key, group in df.groupby(list(by), sort=True, dropna=False):
        values = group[z].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key, strict=True))
        row["n_rep"] = values.size
        if values.size >= 2:
            stat = lambda a: normality_distance(a, method)  # noqa: E731
            row["distance"] = float(stat(values))
            row["distance_mcse"] = bootstrap_se(values, stat, n_boot, seed)
            row["noise_median"] = float(null_distance(values.size, 0.5, method, seed=seed))
        else:
            row.update(distance=math.nan, distance_mcse=math.nan, noise_median=math.nan)
        rows.append(row)
    return pd.DataFrame(rows, columns=[*by, "n_rep", "distance", "distance_mcse", "noise_median"])


def qq_envelope(probs: npt.ArrayLike, r: int) -> tuple[np.ndarray, np.ndarray]:
    """N(0, 1) quantiles and the Monte Carlo SE of a sample quantile at ``probs``.

    The p-quantile of R draws from N(0, 1) has asymptotic SD
    sqrt(p (1 − p) / R) / φ(Φ⁻¹(p)) (Serfling 1980, §2.3.3): the band a QQ plot of an
    exactly normal sample stays within. Returns (quantiles, mcse), each shaped like probs.
    """
    p = np.asarray(probs, dtype=float)
    q = stats.norm.ppf(p)
    return q, np.sqrt(p * (1.0 - p) / r) / stats.norm.pdf(q)
