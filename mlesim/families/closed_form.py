"""Families whose MLE has a closed form: bernoulli, poisson, exponential, normal.

Parameterisations and Fisher information per observation follow DESIGN.md (the
textbook ones, e.g. Casella & Berger 2002, *Statistical Inference*, ch. 7).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.special as sc
import scipy.stats as st

from mlesim.families.base import Domain, Family, FitResult, fill_fixed


def _done(theta: np.ndarray) -> FitResult:
    r = theta.shape[0]
    return FitResult(theta, np.all(np.isfinite(theta), axis=1), np.zeros(r, dtype=int))


def _check_fixed(family: Family, fixed: Mapping[str, float] | None, allowed: tuple) -> dict:
    fixed = dict(fixed or {})
    bad = sorted(set(fixed) - set(allowed))
    if bad:
        raise ValueError(f"{family.name}: cannot hold {bad[0]} fixed; allowed: {allowed}")
    return fixed


class Bernoulli(Family):
    """Bernoulli(p): P(X = 1) = p.  I(p) = 1 / (p (1 − p));  p̂ = x̄."""

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

    def mle(self, x, fixed=None):
        fixed = _check_fixed(self, fixed, self.params)
        mu = np.full(x.shape[0], fixed["mu"]) if "mu" in fixed else x.mean(axis=1)
        s2 = ((x - mu[:, None]) ** 2).mean(axis=1)
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
