"""Families whose MLE has a closed form: bernoulli, poisson, exponential, normal.

Parameterisations and Fisher information per observation follow DESIGN.md (the
textbook ones, e.g. Casella & Berger 2002, *Statistical Inference*, ch. 7).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mlesim.families.base import Domain, Family, FitResult, fill_fixed
from mlesim.lazy import lazy_module
from mlesim.sufficient import mean_ss

sc = lazy_module("scipy.special")
st = lazy_module("scipy.stats")


def _done(theta: np.ndarray) -> FitResult:
    r = theta.shape[0]
    return FitResult(theta, np.all(np.isfinite(theta), axis=1), np.zeros(r, dtype=int))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 / 0 = 0 (a term whose count is zero contributes nothing)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(num == 0, 0.0, num / den)


def _check_fixed(family: Family, fixed: Mapping[str, float] | None, allowed: tuple) -> dict:
    fixed = dict(fixed or {})
    bad = sorted(set(fixed) - set(allowed))
    if bad:
        raise ValueError(f"{family.name}: cannot hold {bad[0]} fixed; allowed: {allowed}")
    return fixed


class Bernoulli(Family):
    """Bernoulli(p): P(X = 1) = p.  I(p) = 1 / (p (1 − p));  p̂ = x̄."""

    provides = frozenset({"moments", "projection"})
    name = "bernoulli"
    params = ("p",)
    domains = {"p": Domain("unit")}
    location = "p"
    discrete = True

    def sample(self, rng, theta, size):
        return rng.binomial(1, theta[0], size=size).astype(float)

    def logpdf(self, x, theta):
        p = self.column(theta, "p")
        return sc.xlogy(x, p) + sc.xlog1py(1.0 - x, -p)

    def fisher(self, theta):
        p = np.asarray(theta)[..., 0]
        with np.errstate(divide="ignore"):
            return (1.0 / (p * (1.0 - p)))[..., None, None]

    def score(self, x, theta):
        """x/p − (1 − x)/(1 − p) per observation, (R, n, 1); 0/0 terms are 0."""
        p = np.broadcast_to(np.asarray(theta, dtype=float), (x.shape[0], 1))
        return (_ratio(x, p) - _ratio(1.0 - x, 1.0 - p))[..., None]

    def hessian(self, x, theta):
        """−Σx/p² − Σ(1 − x)/(1 − p)², (R, 1, 1); infinite at p ∈ {0, 1} with data there
        (0/0 terms, a count of zero, are 0)."""
        p = np.broadcast_to(np.asarray(theta, dtype=float), (x.shape[0], 1))[:, 0]
        k = x.sum(axis=1)
        return -(_ratio(k, p**2) + _ratio(x.shape[1] - k, (1.0 - p) ** 2))[:, None, None]

    def mle(self, x, fixed=None):
        _check_fixed(self, fixed, ())
        return _done(x.mean(axis=1)[:, None])

    def moments_estimate(self, x):
        return x.mean(axis=1)[:, None]

    def mean_var(self, theta):
        p = np.asarray(theta)[..., 0]
        return p, p * (1.0 - p)

    def scipy_dist(self, theta):
        return st.bernoulli(theta[0])

    def project_moments(self, mean, var):
        """KL projection: p* = E[X]."""
        return [mean]

    def in_support(self, x):
        return (x == 0) | (x == 1)


class Poisson(Family):
    """Poisson(lam): P(X = k) = lam^k e^(−lam) / k!.  I(lam) = 1 / lam;  lam̂ = x̄."""

    provides = frozenset({"moments", "projection"})
    name = "poisson"
    params = ("lam",)
    domains = {"lam": Domain("positive")}
    location = "lam"
    discrete = True

    def sample(self, rng, theta, size):
        return rng.poisson(theta[0], size=size).astype(float)

    def logpdf(self, x, theta):
        lam = self.column(theta, "lam")
        return sc.xlogy(x, lam) - lam - sc.gammaln(x + 1.0)

    def fisher(self, theta):
        lam = np.asarray(theta)[..., 0]
        with np.errstate(divide="ignore"):
            return (1.0 / lam)[..., None, None]

    def score(self, x, theta):
        """x/λ − 1 per observation, (R, n, 1); 0/0 terms are 0."""
        lam = np.broadcast_to(np.asarray(theta, dtype=float), (x.shape[0], 1))
        return (_ratio(x, lam) - 1.0)[..., None]

    def hessian(self, x, theta):
        """−Σx/λ², (R, 1, 1) (0 when Σx = 0)."""
        lam = np.broadcast_to(np.asarray(theta, dtype=float), (x.shape[0], 1))[:, 0]
        return -_ratio(x.sum(axis=1), lam**2)[:, None, None]

    def mle(self, x, fixed=None):
        _check_fixed(self, fixed, ())
        return _done(x.mean(axis=1)[:, None])

    def moments_estimate(self, x):
        return x.mean(axis=1)[:, None]

    def mean_var(self, theta):
        lam = np.asarray(theta)[..., 0]
        return lam, lam

    def scipy_dist(self, theta):
        return st.poisson(theta[0])

    def project_moments(self, mean, var):
        """KL projection: lam* = E[X]."""
        return [mean]

    def in_support(self, x):
        return (x >= 0) & (x == np.floor(x))


class Exponential(Family):
    """Exponential(rate): f(x) = rate e^(−rate x), x > 0.  I = 1 / rate²;  ratê = 1 / x̄."""

    provides = frozenset({"moments", "projection"})
    name = "exponential"
    params = ("rate",)
    domains = {"rate": Domain("positive")}

    def sample(self, rng, theta, size):
        return rng.exponential(1.0 / theta[0], size=size)

    def logpdf(self, x, theta):
        rate = self.column(theta, "rate")
        return np.where(x >= 0, np.log(rate) - rate * x, -np.inf)

    def fisher(self, theta):
        rate = np.asarray(theta)[..., 0]
        with np.errstate(divide="ignore"):
            return (1.0 / rate**2)[..., None, None]

    def score(self, x, theta):
        """1/rate − x per observation, (R, n, 1)."""
        rate = np.broadcast_to(np.asarray(theta, dtype=float), (x.shape[0], 1))
        with np.errstate(divide="ignore"):
            return (1.0 / rate - x)[..., None]

    def hessian(self, x, theta):
        """−n/rate², (R, 1, 1)."""
        rate = np.broadcast_to(np.asarray(theta, dtype=float), (x.shape[0], 1))[:, 0]
        with np.errstate(divide="ignore"):
            return (-x.shape[1] / rate**2)[:, None, None]

    def mle(self, x, fixed=None):
        _check_fixed(self, fixed, ())
        with np.errstate(divide="ignore"):
            return _done(1.0 / x.mean(axis=1)[:, None])

    def moments_estimate(self, x):
        with np.errstate(divide="ignore"):
            return 1.0 / x.mean(axis=1)[:, None]

    def mean_var(self, theta):
        rate = np.asarray(theta)[..., 0]
        return 1.0 / rate, 1.0 / rate**2

    def scipy_dist(self, theta):
        return st.expon(scale=1.0 / theta[0])

    def project_moments(self, mean, var):
        """KL projection: rate* = 1 / E[X]."""
        return [1.0 / mean]

    def in_support(self, x):
        return x >= 0


class Normal(Family):
    """Normal(mu, sigma2).  I = diag(1/σ², 1/(2σ⁴));  μ̂ = x̄,  σ̂² = Σ(x − x̄)²/n."""

    provides = frozenset({"moments", "projection"})
    name = "normal"
    params = ("mu", "sigma2")
    domains = {"mu": Domain("real"), "sigma2": Domain("positive")}
    location = "mu"
    center = "mu"
    variance = "sigma2"

    def sample(self, rng, theta, size):
        return rng.normal(theta[0], np.sqrt(theta[1]), size=size)

    def logpdf(self, x, theta):
        mu, s2 = self.column(theta, "mu"), self.column(theta, "sigma2")
        return -0.5 * (np.log(2.0 * np.pi * s2) + (x - mu) ** 2 / s2)

    def fisher(self, theta):
        s2 = np.asarray(theta)[..., 1]
        out = np.zeros(s2.shape + (2, 2))
        with np.errstate(divide="ignore"):
            out[..., 0, 0] = 1.0 / s2
            out[..., 1, 1] = 1.0 / (2.0 * s2**2)
        return out

    def score(self, x, theta):
        """((x − μ)/σ², ((x − μ)² − σ²)/(2σ⁴)) per observation, (R, n, 2)."""
        theta = np.broadcast_to(np.asarray(theta, dtype=float), (x.shape[0], 2))
        mu, s2 = theta[:, 0, None], theta[:, 1, None]
        r = x - mu
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.stack([r / s2, (r**2 - s2) / (2.0 * s2**2)], axis=-1)

    def hessian(self, x, theta):
        """[[−n/σ², −Σ(x − μ)/σ⁴], [·, n/(2σ⁴) − Σ(x − μ)²/σ⁶]], (R, 2, 2), from each
        row's x̄ and SS (:func:`mlesim.sufficient.mean_ss`): Σ(x − μ) = n (x̄ − μ) and
        Σ(x − μ)² = SS + n (x̄ − μ)²."""
        theta = np.broadcast_to(np.asarray(theta, dtype=float), (x.shape[0], 2))
        mu, s2 = theta[:, 0], theta[:, 1]
        n = x.shape[1]
        xbar, ss = mean_ss(x)
        h = np.empty((x.shape[0], 2, 2))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            shift = xbar - mu
            h[:, 0, 0] = -n / s2
            h[:, 0, 1] = h[:, 1, 0] = -n * shift / s2**2
            h[:, 1, 1] = n / (2.0 * s2**2) - (ss + n * shift**2) / s2**3
        return h

    def mle(self, x, fixed=None):
        fixed = _check_fixed(self, fixed, self.params)
        if "mu" in fixed:
            mu = np.full(x.shape[0], fixed["mu"])
            s2 = ((x - mu[:, None]) ** 2).mean(axis=1)
        else:
            mu, ss = mean_ss(x)
            s2 = ss / x.shape[1]
        theta = fill_fixed(self, np.column_stack([mu, s2]), fixed)
        return _done(theta)

    def moments_estimate(self, x):
        return np.column_stack([x.mean(axis=1), x.var(axis=1)])

    def mean_var(self, theta):
        theta = np.asarray(theta)
        return theta[..., 0], theta[..., 1]

    def scipy_dist(self, theta):
        return st.norm(theta[0], np.sqrt(theta[1]))

    def project_moments(self, mean, var):
        """KL projection: (mu*, sigma2*) = (E[X], Var[X])."""
        return [mean, var]
