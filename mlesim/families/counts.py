"""Count families with a batched numerical MLE: the negative binomial."""

from __future__ import annotations

import numpy as np
import scipy.special as sc
import scipy.stats as st

from mlesim import optimize
from mlesim.families.base import Domain
from mlesim.families.smooth import SmoothFamily, check_fixed, fit_rows, newton_1d

#: iterates of size beyond this stop as boundary cases
SIZE_MAX = 1e8
SIZE_INFINITE = (
    "boundary: size_hat = inf, the sample is not over-dispersed (variance <= mean) and "
    "the likelihood increases towards the Poisson limit"
)
ALL_ZERO = "all counts zero: mu_hat = 0 is on the boundary"


class NegativeBinomial(SmoothFamily):
    """Negative binomial in the (mean, size) parameterisation of R's ``dnbinom(mu=, size=)``.

    P(X = x) = Γ(x + r) / (Γ(r) x!) · (r/(r + μ))^r · (μ/(r + μ))^x, x = 0, 1, …,
    with mean μ (``mu``) and size r > 0 (``size``): Var X = μ + μ²/r (the NB2 model of
    Cameron & Trivedi 2013, ch. 3, with α = 1/r). In scipy it is
    ``nbinom(n=size, p=size/(size + mu))``; size → ∞ is the Poisson(μ).

    Fisher information per observation: μ and r are orthogonal, I_μμ = r/(μ(μ + r)) and
    I_rr = Σ_{j≥0} P(X > j)/(r + j)² − μ/(r(r + μ)) (from ψ′(r) − ψ′(r + x) =
    Σ_{j<x} 1/(r + j)²), summed numerically until P(X > j) < 1e-16.

    MLE: μ̂ = x̄ whatever r (the μ-score vanishes there); r̂ maximises the profile
    log-likelihood, by batched Newton on log r from the moment start r₀ = x̄²/(s² − x̄).

    Boundary (r̂ = ∞). The derivative of the log-likelihood in 1/r at the Poisson limit
    is ½ Σ[(x − μ̂)² − x], so when the sample variance (divisor n) does not exceed the
    mean the likelihood increases all the way to the Poisson limit (and the finite
    maximum exists and is unique otherwise; Aragón, Eberly & Eberly 1992, Stat. Probab.
    Lett. 15:375). Such a
    replicate is reported as a **failure** with the reason "boundary: size_hat = inf …"
    (μ̂ = x̄, r̂ = inf), as is one whose Newton iterate passes ``SIZE_MAX``. All-zero
    samples fail too (μ̂ = 0).
    """

    name = "negative_binomial"
    params = ("mu", "size")
    domains = {"mu": Domain("positive"), "size": Domain("positive")}
    location = "mu"
    discrete = True

    def sample(self, rng, theta, size):
        mu, r = theta[0], theta[1]
        return rng.negative_binomial(r, r / (r + mu), size=size).astype(float)

    def logpdf(self, x, theta):
        mu, r = self.column(theta, "mu"), self.column(theta, "size")
        with np.errstate(all="ignore"):
            out = (
                sc.gammaln(x + r)
                - sc.gammaln(r)
                - sc.gammaln(x + 1)
                - r * np.log1p(mu / r)
                + sc.xlogy(x, mu)
                - sc.xlogy(x, r + mu)
            )
        return np.where(self.in_support(x), out, -np.inf)

    def in_support(self, x):
        return (x >= 0) & (x == np.floor(x))

    def score(self, x, theta):
        theta = np.broadcast_to(np.asarray(theta, dtype=float), (x.shape[0], 2))
        mu, r = theta[:, 0, None], theta[:, 1, None]
        s_mu = x / mu - (x + r) / (mu + r)
        s_r = sc.digamma(x + r) - sc.digamma(r) - np.log1p(mu / r) + (mu - x) / (r + mu)
        return np.stack([s_mu, s_r], axis=-1)

    def derivs(self, data, theta):
        x = data["x"]
        mu, r = theta[:, 0, None], theta[:, 1, None]
        f = self.logpdf(x, theta).sum(1)
        s = self.score(x, theta)
        g = s.sum(axis=1)
        h = np.empty((x.shape[0], 2, 2))
        h[:, 0, 0] = (-x / mu**2 + (x + r) / (mu + r) ** 2).sum(1)
        h[:, 0, 1] = h[:, 1, 0] = ((x - mu) / (mu + r) ** 2).sum(1)
        h[:, 1, 1] = (
            sc.polygamma(1, x + r)
            - sc.polygamma(1, r)
            + 1 / r
            - 1 / (r + mu)
            - (mu - x) / (r + mu) ** 2
        ).sum(1)
        return f, g, h

    def fisher(self, theta):
        theta = np.asarray(theta, dtype=float)
        mu, r = theta[..., 0], theta[..., 1]
        out = np.zeros(theta.shape[:-1] + (2, 2))
        with np.errstate(all="ignore"):
            out[..., 0, 0] = 1 / (mu * (1 + mu / r))
            flat = _info_size(mu.reshape(-1), r.reshape(-1))
        out[..., 1, 1] = flat.reshape(mu.shape)
        return out

    def mle(self, x, fixed=None):
        fixed = check_fixed(self, fixed)
        return fit_rows(self, x, fixed, self._profile)

    def _profile(self, x, fixed):
        m = x.shape[0]
        xbar = x.mean(axis=1)
        mu = np.full(m, fixed["mu"]) if "mu" in fixed else xbar
        reason = np.full(m, "", dtype=object)
        if "size" in fixed:
            conv = mu > 0
            reason[~conv] = ALL_ZERO
            return np.column_stack([mu, np.full(m, fixed["size"])]), conv, np.zeros(m, int), reason
        v = ((x - mu[:, None]) ** 2).mean(axis=1)
        over = (v > xbar) & (mu > 0)
        r = np.full(m, np.inf)
        status = np.full(m, optimize.BOUNDARY)
        n_iter = np.zeros(m, dtype=int)
        if over.any():
            xo, muo = x[over], mu[over]
            with np.errstate(all="ignore"):
                r0 = muo**2 / (v[over] - xbar[over])

            def fun(size, rows):
                theta = np.column_stack([muo[rows], size])
                f, g, h = self.derivs({"x": xo[rows]}, theta)
                return f, g[:, 1], h[:, 1, 1]

            r[over], res = newton_1d(fun, r0, upper=np.log(SIZE_MAX))
            status[over], n_iter[over] = res.status, res.n_iter
            reason[over] = res.reasons()
        boundary = status == optimize.BOUNDARY
        r[boundary] = np.inf
        reason[boundary] = SIZE_INFINITE
        reason[mu <= 0] = ALL_ZERO
        conv = (status == optimize.CONVERGED) & (mu > 0)
        return np.column_stack([mu, r]), conv, n_iter, reason

    def moments_estimate(self, x):
        """μ = x̄, size = x̄²/(s² − x̄) (s² with divisor n); shape (R, 2)."""
        m, v = x.mean(axis=1), x.var(axis=1)
        with np.errstate(all="ignore"):
            return np.column_stack([m, np.where(v > m, m**2 / (v - m), np.inf)])

    def mean_var(self, theta):
        theta = np.asarray(theta, dtype=float)
        mu, r = theta[..., 0], theta[..., 1]
        return mu, mu + mu**2 / r

    def scipy_dist(self, theta):
        mu, r = theta[0], theta[1]
        return st.nbinom(r, r / (r + mu))


def _info_size(mu: np.ndarray, r: np.ndarray, block: int = 2048) -> np.ndarray:
    """I_rr = Σ_j P(X > j)/(r + j)² − μ/(r(r + μ)) for (m,) arrays, summed in blocks of j."""
    out = np.full(mu.shape, np.nan)
    ok = np.isfinite(mu) & np.isfinite(r) & (mu > 0) & (r > 0)
    out[np.isinf(r) & (mu > 0)] = 0.0
    if not ok.any():
        return out
    mu_o, r_o = mu[ok], r[ok]
    p = r_o / (r_o + mu_o)
    top = int(min(np.nanmax(st.nbinom.isf(1e-17, r_o, p)) + 1, 1e7))
    acc = np.zeros(mu_o.shape)
    cdf = np.zeros(mu_o.shape)
    base = sc.gammaln(r_o)
    for start in range(0, top + 1, block):  # loop over blocks of the support
        j = np.arange(start, min(start + block, top + 1), dtype=float)
        logpmf = (
            sc.gammaln(j + r_o[:, None])
            - base[:, None]
            - sc.gammaln(j + 1)
            + r_o[:, None] * np.log(p[:, None])
            + j * np.log1p(-p[:, None])
        )
        c = cdf[:, None] + np.cumsum(np.exp(logpmf), axis=1)
        sf = np.clip(1 - c, 0, None)
        acc += (sf / (r_o[:, None] + j) ** 2).sum(axis=1)
        cdf = c[:, -1]
    out[ok] = acc - mu_o / (r_o * (r_o + mu_o))
    return out
