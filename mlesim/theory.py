"""Exact finite-sample theory to draw beside simulation.

Sources: the distribution of the sum of squares S = Σ(x − x̄)² ~ σ² χ²_{n−1} for normal
data (Casella & Berger 2002, Thm 5.3.1), and the binomial distribution of Σx for
Bernoulli data.
"""

from __future__ import annotations

import numpy as np

from mlesim.lazy import lazy_module

st = lazy_module("scipy.stats")


def quadratic_variance_moments(
    n: np.ndarray, sigma2: float, c: np.ndarray, d: np.ndarray = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of the estimator c·S + d with S = Σ(x − x̄)² ~ σ² χ²_{n−1}.

    E = c (n − 1) σ² + d,  Var = 2 c² (n − 1) σ⁴.  Arrays broadcast over n.
    """
    n = np.asarray(n, dtype=float)
    return c * (n - 1) * sigma2 + d, 2.0 * c**2 * (n - 1) * sigma2**2


def variance_estimator_coefficients(
    kind: str, n: np.ndarray, prior: dict | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(c, d) writing a normal-variance estimator as c·S + d.

    - ``mle``: σ̂² = S / n;
    - ``unbiased_variance``: s² = S / (n − 1) (undefined at n = 1: NaN);
    - ``map`` with an inverse-gamma(a, b) prior on σ² and a flat prior on μ:
      (b + S/2) / (a + n/2 + 1)  (see :mod:`mlesim.priors`).
    """
    n = np.asarray(n, dtype=float)
    if kind == "mle":
        return 1.0 / n, np.zeros_like(n)
    if kind == "unbiased_variance":
        with np.errstate(divide="ignore"):
            return np.where(n > 1, 1.0 / (n - 1), np.nan), np.zeros_like(n)
    if kind == "map" and prior is not None:
        denom = prior["shape"] + n / 2.0 + 1.0
        return 0.5 / denom, prior["scale"] / denom
    raise ValueError(f"no exact theory for {kind!r}")


def variance_estimator_bias_mse(
    kind: str, n: np.ndarray, sigma2: float, prior: dict | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact bias and MSE of a normal-variance estimator at sample sizes ``n``.

    For the MLE: bias = −σ²/n and MSE = (2n − 1) σ⁴ / n²; for s²: 0 and 2σ⁴/(n − 1).
    """
    c, d = variance_estimator_coefficients(kind, n, prior)
    mean, var = quadratic_variance_moments(n, sigma2, c, d)
    bias = mean - sigma2
    return bias, var + bias**2


def binomial_proportion_pmf(n: int, p: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact sampling distribution of p̂ = Σx / n: support k/n and Binomial(n, p) pmf."""
    k = np.arange(n + 1)
    return k / n, st.binom.pmf(k, n, p)


def wald_coverage_binomial(n: int, p: float, level: float = 0.95) -> float:
    """Exact coverage of the Wald interval p̂ ± z sqrt(p̂(1 − p̂)/n) for a proportion.

    C(n, p) = Σ_k Binom(k; n, p) · 1{|k/n − p| ≤ z sqrt((k/n)(1 − k/n)/n)}
    (Brown, Cai & DasGupta 2001, Statistical Science 16:101–133, eq. 2).
    """
    z = st.norm.ppf((1 + level) / 2)
    phat, pmf = binomial_proportion_pmf(n, p)
    half = z * np.sqrt(phat * (1 - phat) / n)
    covers = (phat - half <= p) & (p <= phat + half)
    return float(pmf[covers].sum())


def shrinkage_moments(
    n: np.ndarray, mu: float, sigma2: float, mean: float, var: float, assumed: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact bias, variance and MSE of the MAP of a normal mean, σ² known, under a
    normal(mean, var) prior: μ̂ = c x̄ + (1 − c) mean, c = n var / (n var + σ₀²), with
    σ₀² the variance the estimator assumes (``assumed``, default the true σ²).

    Bias = (1 − c)(mean − μ), Var = c² σ²/n, MSE = Bias² + Var; c = 1 (var = ∞) is
    the MLE x̄. Arrays broadcast over n.
    """
    n = np.asarray(n, dtype=float)
    s0 = sigma2 if assumed is None else assumed
    c = np.ones_like(n) if np.isinf(var) else n * var / (n * var + s0)
    bias, v = (1.0 - c) * (mean - mu), c**2 * sigma2 / n
    return bias, v, bias**2 + v


def soft_threshold_moments(
    n: int, mu: float, sigma2: float, loc: float, scale: float, assumed: float | None = None
) -> tuple[float, float, float]:
    """Exact bias, MSE and P(μ̂ = loc) of the MAP of a normal mean, σ² known, under a
    Laplace(loc, scale) prior: μ̂ = loc + S(x̄ − loc, t), t = σ₀²/(n scale), S the soft
    threshold, with x̄ ~ N(μ, σ²/n) and σ₀² the assumed variance (default σ²).

    P(μ̂ = loc) = Φ((loc + t − μ)/s) − Φ((loc − t − μ)/s), s = σ/√n; the moments by
    quadrature of the two linear pieces over the normal law of x̄ (scipy's ``expect``).
    """
    s = np.sqrt(sigma2 / n)
    t = (sigma2 if assumed is None else assumed) / (n * scale)
    law = st.norm(mu, s)
    upper = law.expect(lambda x: x - t - mu, lb=loc + t)
    lower = law.expect(lambda x: x + t - mu, ub=loc - t)
    p_zero = float(law.cdf(loc + t) - law.cdf(loc - t))
    bias = upper + lower + p_zero * (loc - mu)
    sq = law.expect(lambda x: (x - t - mu) ** 2, lb=loc + t)
    sq += law.expect(lambda x: (x + t - mu) ** 2, ub=loc - t)
    return float(bias), float(sq + p_zero * (loc - mu) ** 2), p_zero


def beta_map_moments(n: int, p: float, a: float, b: float) -> tuple[float, float, float]:
    """Exact bias, MSE and P(p̂ ∈ {0, 1}) of the MAP (k + a − 1)/(n + a + b − 2) of a
    Bernoulli p under a Beta(a, b) prior, by enumeration of k ~ Binomial(n, p); a = b = 1
    is the MLE k/n, and a = b = 2 is Laplace's add-one smoothing (k + 1)/(n + 2)."""
    k = np.arange(n + 1)
    pmf = st.binom.pmf(k, n, p)
    est = (k + a - 1.0) / (n + a + b - 2.0)
    bias = float(pmf @ est - p)
    mse = float(pmf @ (est - p) ** 2)
    return bias, mse, float(pmf[(est <= 0.0) | (est >= 1.0)].sum())
