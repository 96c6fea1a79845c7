"""Symmetric location–scale families: Student-t, Cauchy, Laplace.

All three are symmetric about ``mu`` (``center = "mu"``, so the sample median is an
estimator of it). Densities, with z = (x − μ)/σ:

- student_t(mu, sigma, nu): f = Γ((ν+1)/2) / (Γ(ν/2) √(νπ) σ) · (1 + z²/ν)^(−(ν+1)/2);
- cauchy(mu, sigma): f = σ / (π (σ² + (x − μ)²))  (the t with ν = 1);
- laplace(mu, b): f = exp(−|x − μ|/b) / (2b).
"""

from __future__ import annotations

import numpy as np

from mlesim import optimize
from mlesim.families.base import Domain
from mlesim.families.smooth import Data, SmoothFamily, check_fixed, fit_rows, subset
from mlesim.lazy import lazy_module

sc = lazy_module("scipy.special")
st = lazy_module("scipy.stats")

#: iterates of nu beyond these limits stop as boundary cases (see StudentT)
NU_MAX = 1e6
NU_MIN = 1e-3
NU_ZERO = "boundary: nu_hat -> 0, degenerate fit"


#: above this x the asymptotic series of _half_ratio and its derivatives are used
_SERIES_FROM = 25.0


def _half_ratio(x: np.ndarray, order: int = 0) -> np.ndarray:
    """c(x) = log Γ(x + ½) − log Γ(x) − ½ log x and its first two derivatives.

    The t log-density is c(ν/2) − ½ log 2π − log σ − (ν+1)/2 log(1 + z²/ν). Direct
    evaluation loses ~1e-11 at large ν (a difference of two large log-gammas, which
    would make the likelihood look noisy in ν); for x ≥ 25 the asymptotic series
    c(x) = −1/(8x) + 1/(192x³) − 1/(640x⁵) + 17/(14336x⁷) + O(x⁻⁹) is used instead
    (from Stirling's series; remainder < 5e-16 there). ``order`` 0, 1, 2 gives c, c′, c″.
    """
    x = np.asarray(x, dtype=float)
    big = x >= _SERIES_FROM
    xs = np.where(big, x, _SERIES_FROM)
    xd = np.where(big, 1.0, x)
    if order == 0:
        series = -1 / (8 * xs) + 1 / (192 * xs**3) - 1 / (640 * xs**5) + 17 / (14336 * xs**7)
        direct = sc.gammaln(xd + 0.5) - sc.gammaln(xd) - 0.5 * np.log(xd)
    elif order == 1:
        series = 1 / (8 * xs**2) - 1 / (64 * xs**4) + 1 / (128 * xs**6) - 119 / (14336 * xs**8)
        direct = sc.digamma(xd + 0.5) - sc.digamma(xd) - 1 / (2 * xd)
    else:
        series = -1 / (4 * xs**3) + 1 / (16 * xs**5) - 3 / (64 * xs**7) + 119 / (1792 * xs**9)
        direct = sc.polygamma(1, xd + 0.5) - sc.polygamma(1, xd) + 1 / (2 * xd**2)
    return np.where(big, series, direct)


def _mad(x: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Median absolute deviation of each row about ``center`` (m,), shape (m,)."""
    return np.median(np.abs(x - center[:, None]), axis=1)


def _robust_scale(x: np.ndarray, center: np.ndarray, quantile: np.ndarray) -> np.ndarray:
    """MAD / quantile, falling back to the standard deviation when the MAD is 0."""
    mad = _mad(x, center)
    sd = np.sqrt(((x - center[:, None]) ** 2).mean(axis=1))
    return np.where(mad > 0, mad / quantile, sd)


class StudentT(SmoothFamily):
    """Student-t with location ``mu``, scale ``sigma`` and degrees of freedom ``nu``.

    Fisher information per observation (Lange, Little & Taylor 1989, JASA 84:881;
    Fonseca, Ferreira & Migon 2008, Biometrika 95:325): with μ orthogonal
    to (σ, ν),
    I_μμ = (ν+1)/((ν+3)σ²), I_σσ = 2ν/((ν+3)σ²), I_σν = −2/((ν+1)(ν+3)σ),
    I_νν = ¼[ψ′(ν/2) − ψ′((ν+1)/2)] − (ν+5)/(2ν(ν+1)(ν+3)).

    MLE: batched Newton on (μ, log σ, log ν) from (median, MAD-based scale, ν from the
    sample kurtosis b₂ as 4 + 6/(b₂ − 3), clipped to [1.5, 50]), with a second start at
    ν = 1 for the replicates that fail from the first. Any parameter may be held fixed.

    Boundary (ν̂ = ∞) — an estimate on the edge, not a failure and not redrawn. In small
    samples the likelihood often increases all the way to the normal limit ν → ∞, so
    there is no finite maximum (about 45 % of samples of n = 20 from t₅; ~7 % at n = 100).
    The local test: at the normal fit ∂ℓ/∂(1/ν) = (n/4)(b₂ − 3), so the likelihood rises
    towards ν = ∞ whenever the sample kurtosis b₂ (divisor n) is below 3. With the
    iterates on log ν such a replicate drifts upwards; when ν passes ``NU_MAX`` = 1e6, or
    when a finite stationary point has a lower likelihood than the normal limit, the
    estimate is ν̂ = inf with (μ̂, σ̂) the normal-limit MLE (mean and divisor-n SD),
    converged — the supremum of the likelihood, as p̂ = 0 is for an all-tails coin. Its
    μ̂ and σ̂ count in every measure; ν's row has infinite bias and MSE and reports the
    share at the edge (summary_extended's ``n_inf``). (R's ``MASS::fitdistr`` errors on
    these samples; SimDesign redraws them, which biases what it keeps.) A drift to
    ν < ``NU_MIN`` = 1e-3 is a failure ("nu_hat -> 0, degenerate fit"). Hold ν fixed
    (``fixed: {nu: 5}``) to avoid the boundary altogether.

    Numerics: log Γ((ν+1)/2) − log Γ(ν/2) is evaluated through its asymptotic series for
    large ν (:func:`_half_ratio`), so the likelihood stays smooth in ν up to ``NU_MAX``.
    """

    name = "student_t"
    params = ("mu", "sigma", "nu")
    domains = {"mu": Domain("real"), "sigma": Domain("positive"), "nu": Domain("positive")}
    location = "mu"  # the mean estimates mu when nu > 1
    center = "mu"

    def sample(self, rng, theta, size):
        return theta[0] + theta[1] * rng.standard_t(theta[2], size=size)

    def logpdf(self, x, theta):
        mu, sigma, nu = (self.column(theta, n) for n in self.params)
        z2 = ((x - mu) / sigma) ** 2
        with np.errstate(all="ignore"):
            nuf = np.where(np.isinf(nu), 1.0, nu)
            t = (
                _half_ratio(nuf / 2)
                - 0.5 * np.log(2 * np.pi)
                - np.log(sigma)
                - (nuf + 1) / 2 * np.log1p(z2 / nuf)
            )
            normal = -np.log(sigma) - 0.5 * np.log(2 * np.pi) - z2 / 2
        return np.where(np.isinf(nu), normal, t)

    def _score_obs(self, data: Data, theta: np.ndarray):
        x = data["x"]
        mu, sigma, nu = (theta[:, j, None] for j in range(3))
        r = x - mu
        r2 = r * r
        s2 = sigma * sigma
        dd = nu * s2 + r2
        a = (nu + 1) / dd
        l1p = np.log1p(r2 / (nu * s2))
        dig = _half_ratio(nu / 2, 1)  # ψ((ν+1)/2) − ψ(ν/2) − 1/ν
        s_mu = a * r
        s_sigma = (a * r2 - 1) / sigma
        s_nu = 0.5 * (dig - l1p + a * r2 / nu)
        return (s_mu, s_sigma, s_nu), (r, r2, s2, dd, l1p)

    def score(self, x, theta):
        theta = np.broadcast_to(np.asarray(theta, dtype=float), (x.shape[0], 3))
        with np.errstate(all="ignore"):
            return np.stack(self._score_obs({"x": x}, theta)[0], axis=-1)

    def derivs(self, data, theta):
        """Value, gradient and Hessian from six row sums (identities r² = D − νσ² reduce
        every Hessian entry to Σ 1/D, Σ 1/D², Σ r/D, Σ r/D², Σ r²/D and
        Σ log(1 + r²/(νσ²)), with D = νσ² + r²), so one evaluation costs about ten passes
        over the data."""
        x = data["x"]
        n = x.shape[1]
        mu, sigma, nu = (theta[:, j] for j in range(3))
        s2 = sigma * sigma
        c = nu * s2
        n1 = nu + 1
        r = x - mu[:, None]
        r2 = r * r
        dd = r2 + c[:, None]
        inv = 1 / dd
        inv2 = inv * inv
        a0, a2 = inv.sum(1), inv2.sum(1)
        b1, b2 = (r * inv).sum(1), (r * inv2).sum(1)
        c1 = (r2 * inv).sum(1)
        l1p = np.log1p(r2 / c[:, None]).sum(1)  # Σ log(1 + z²/ν), accurate at large ν
        c2 = a0 - c * a2  # Σ r²/D²
        d3 = b1 - c * b2  # Σ r³/D²
        e4 = n - 2 * c * a0 + c * c * a2  # Σ r⁴/D²
        f = n * (_half_ratio(nu / 2) - 0.5 * np.log(2 * np.pi) - np.log(sigma)) - n1 / 2 * l1p
        dig = _half_ratio(nu / 2, 1)  # ψ((ν+1)/2) − ψ(ν/2) − 1/ν
        g = np.column_stack([n1 * b1, (n1 * c1 - n) / sigma, 0.5 * (n * dig - l1p + n1 * c1 / nu)])
        h = np.empty((theta.shape[0], 3, 3))
        h[:, 0, 0] = n1 * (a0 - 2 * c * a2)
        h[:, 0, 1] = h[:, 1, 0] = -2 * n1 * nu * sigma * b2
        h[:, 0, 2] = h[:, 2, 0] = d3 - s2 * b2
        h[:, 1, 1] = n / s2 - n1 * (c1 / s2 + 2 * nu * c2)
        h[:, 1, 2] = h[:, 2, 1] = (e4 - s2 * c2) / sigma
        # ¼ c″(ν/2) = ¼[ψ′((ν+1)/2) − ψ′(ν/2)] + 1/(2ν²)
        const = 0.25 * _half_ratio(nu / 2, 2)
        h[:, 2, 2] = n * const + 0.5 * (n / nu - s2 * a0 - (c1 + nu * n1 * s2 * c2) / nu**2)
        return f, g, h

    def fisher(self, theta):
        theta = np.asarray(theta, dtype=float)
        sigma, nu = theta[..., 1], theta[..., 2]
        out = np.zeros(theta.shape[:-1] + (3, 3))
        with np.errstate(all="ignore"):
            out[..., 0, 0] = (nu + 1) / ((nu + 3) * sigma**2)
            out[..., 1, 1] = 2 * nu / ((nu + 3) * sigma**2)
            out[..., 1, 2] = out[..., 2, 1] = -2 / ((nu + 1) * (nu + 3) * sigma)
            # ¼[ψ′(ν/2) − ψ′((ν+1)/2)] = 1/(2ν²) − ¼ c″(ν/2), smooth for large ν
            out[..., 2, 2] = (
                1 / (2 * nu**2)
                - 0.25 * _half_ratio(nu / 2, 2)
                - (nu + 5) / (2 * nu * (nu + 1) * (nu + 3))
            )
        return out

    def start(self, data, fixed):
        x = data["x"]
        mu = np.full(x.shape[0], fixed["mu"]) if "mu" in fixed else np.median(x, axis=1)
        if "nu" in fixed:
            nu = np.full(x.shape[0], fixed["nu"])
        else:
            c = x - x.mean(axis=1, keepdims=True)
            b2 = (c**4).mean(axis=1) / (c**2).mean(axis=1) ** 2
            nu = np.where(b2 > 3, np.clip(4 + 6 / (b2 - 3), 1.5, 50.0), 50.0)
        sigma = _robust_scale(x, mu, sc.stdtrit(nu, 0.75))
        return np.column_stack([mu, sigma, nu])

    def limits(self, free):
        lo, hi = super().limits(free)
        if free[2]:
            lo[-1], hi[-1] = np.log(NU_MIN), np.log(NU_MAX)
        return lo, hi

    def finish(self, data, theta, res, fixed):
        conv, reason = res.converged, res.reasons()
        if "nu" in fixed:
            return theta, conv, reason
        retry = np.flatnonzero(~conv)
        if retry.size:  # second start at nu = 1 (Cauchy-like) for the failures
            sub = subset(data, retry)
            x = sub["x"]
            mu = np.full(retry.size, fixed["mu"]) if "mu" in fixed else np.median(x, axis=1)
            t0 = np.column_stack([mu, _robust_scale(x, mu, np.ones_like(mu)), np.ones_like(mu)])
            t2, r2 = self.newton(sub, t0, fixed)
            better = r2.converged | (
                (r2.status == optimize.BOUNDARY) & (res.status[retry] != optimize.BOUNDARY)
            )
            idx = retry[better]
            theta[idx], conv[idx] = t2[better], r2.converged[better]
            reason[idx] = r2.reasons()[better]
            res.status[idx] = r2.status[better]
            res.value[idx] = r2.value[better]
        return self._boundary(data, theta, res.status, res.value, conv, reason, fixed)

    def _boundary(self, data, theta, status, value, conv, reason, fixed):
        """Mark ν̂ = ∞ replicates (see the class docstring); returns (θ, converged, reason)."""
        x = data["x"]
        mu_n = np.full(x.shape[0], fixed["mu"]) if "mu" in fixed else x.mean(axis=1)
        if "sigma" in fixed:
            sigma_n = np.full(x.shape[0], fixed["sigma"])
        else:
            sigma_n = np.sqrt(((x - mu_n[:, None]) ** 2).mean(axis=1))
        normal = np.column_stack([mu_n, sigma_n, np.full(x.shape[0], np.inf)])
        with np.errstate(all="ignore"):
            ll_normal = self.loglik(x, normal)
            ll_hat = self.loglik(x, theta)
        up = (status == optimize.BOUNDARY) & (theta[:, 2] > 1)
        down = (status == optimize.BOUNDARY) & ~up
        worse = conv & (ll_normal > ll_hat + 1e-10 * (1 + np.abs(ll_hat)))
        inf = (up | worse) & (sigma_n > 0)
        theta[inf] = normal[inf]
        conv = (conv | inf) & ~down
        reason[inf] = ""
        reason[down] = NU_ZERO
        return theta, conv, reason

    def mean_var(self, theta):
        theta = np.asarray(theta, dtype=float)
        mu, sigma, nu = theta[..., 0], theta[..., 1], theta[..., 2]
        with np.errstate(all="ignore"):
            mean = np.where(nu > 1, mu, np.nan)
            var = np.where(nu > 2, sigma**2 * nu / (nu - 2), np.inf)
        return mean, var

    def scipy_dist(self, theta):
        return st.t(theta[2], loc=theta[0], scale=theta[1])


class Cauchy(SmoothFamily):
    """Cauchy(mu, sigma): f = σ / (π (σ² + (x − μ)²)).

    I = diag(1/(2σ²), 1/(2σ²)) (DESIGN.md's table; the t information above at ν = 1).
    MLE: batched Newton on (μ, log σ) from (median, IQR/2). For n ≥ 3 with no value
    repeated n/2 times or more, the joint likelihood has a unique maximum (Copas 1975,
    Biometrika 62:701), so the local search is global. The mean estimates nothing
    (the Cauchy has no mean); the median estimates μ with efficiency 8/π².
    """

    name = "cauchy"
    params = ("mu", "sigma")
    domains = {"mu": Domain("real"), "sigma": Domain("positive")}
    center = "mu"

    def sample(self, rng, theta, size):
        return theta[0] + theta[1] * rng.standard_cauchy(size=size)

    def logpdf(self, x, theta):
        mu, sigma = self.column(theta, "mu"), self.column(theta, "sigma")
        return np.log(sigma) - np.log(np.pi) - np.log(sigma**2 + (x - mu) ** 2)

    def score(self, x, theta):
        theta = np.broadcast_to(np.asarray(theta, dtype=float), (x.shape[0], 2))
        mu, sigma = theta[:, 0, None], theta[:, 1, None]
        r = x - mu
        dd = sigma**2 + r**2
        return np.stack([2 * r / dd, 1 / sigma - 2 * sigma / dd], axis=-1)

    def derivs(self, data, theta):
        x = data["x"]
        n = x.shape[1]
        mu, sigma = theta[:, 0, None], theta[:, 1, None]
        r = x - mu
        r2 = r * r
        s2 = sigma * sigma
        dd = s2 + r2
        dd2 = dd * dd
        f = n * (np.log(theta[:, 1]) - np.log(np.pi)) - np.log(dd).sum(1)
        g = np.column_stack([(2 * r / dd).sum(1), n / theta[:, 1] - (2 * sigma / dd).sum(1)])
        h = np.empty((x.shape[0], 2, 2))
        h[:, 0, 0] = (2 * (r2 - s2) / dd2).sum(1)
        h[:, 0, 1] = h[:, 1, 0] = -(4 * r * sigma / dd2).sum(1)
        h[:, 1, 1] = -n / theta[:, 1] ** 2 - (2 / dd - 4 * s2 / dd2).sum(1)
        return f, g, h

    def fisher(self, theta):
        sigma = np.asarray(theta, dtype=float)[..., 1]
        out = np.zeros(sigma.shape + (2, 2))
        with np.errstate(divide="ignore"):
            out[..., 0, 0] = out[..., 1, 1] = 1 / (2 * sigma**2)
        return out

    def start(self, data, fixed):
        x = data["x"]
        mu = np.full(x.shape[0], fixed["mu"]) if "mu" in fixed else np.median(x, axis=1)
        q1, q3 = np.percentile(x, [25, 75], axis=1)
        iqr = (q3 - q1) / 2
        sigma = np.where(iqr > 0, iqr, _robust_scale(x, mu, np.ones_like(mu)))
        return np.column_stack([mu, sigma])

    def mean_var(self, theta):
        shape = np.asarray(theta).shape[:-1]
        return np.full(shape, np.nan), np.full(shape, np.inf)

    def scipy_dist(self, theta):
        return st.cauchy(theta[0], theta[1])


class Laplace(SmoothFamily):
    """Laplace(mu, b): f = exp(−|x − μ|/b) / (2b).  I = diag(1/b², 1/b²).

    MLE in closed form (Norton 1984, Am. Stat. 38:135): μ̂ = median, b̂ = mean |x − μ̂|
    (for even n any point between the middle order statistics maximises; all give the
    same b̂); with μ fixed b̂ = mean |x − μ|, with b fixed μ̂ = median.

    The log-likelihood is not twice differentiable in μ (its second derivative is 0
    almost everywhere), so the observed information has no μ entry: ``hessian`` uses
    the expected curvature −n/b² there, which the ``observed`` and ``sandwich`` SEs of
    the MLE then use (the usual choice for the median's variance).
    """

    provides = frozenset({"moments"})
    name = "laplace"
    params = ("mu", "b")
    domains = {"mu": Domain("real"), "b": Domain("positive")}
    location = "mu"
    center = "mu"

    def sample(self, rng, theta, size):
        return rng.laplace(theta[0], theta[1], size=size)

    def logpdf(self, x, theta):
        mu, b = self.column(theta, "mu"), self.column(theta, "b")
        return -np.log(2 * b) - np.abs(x - mu) / b

    def score(self, x, theta):
        theta = np.broadcast_to(np.asarray(theta, dtype=float), (x.shape[0], 2))
        mu, b = theta[:, 0, None], theta[:, 1, None]
        r = x - mu
        return np.stack([np.sign(r) / b, np.abs(r) / b**2 - 1 / b], axis=-1)

    def derivs(self, data, theta):
        x = data["x"]
        n = x.shape[1]
        mu, b = theta[:, 0, None], theta[:, 1]
        r = x - mu
        a = np.abs(r).sum(1)
        f = -n * np.log(2 * b) - a / b
        g = np.column_stack([np.sign(r).sum(1) / b, a / b**2 - n / b])
        h = np.empty((x.shape[0], 2, 2))
        h[:, 0, 0] = -n / b**2  # expected curvature; see the class docstring
        h[:, 0, 1] = h[:, 1, 0] = -np.sign(r).sum(1) / b**2
        h[:, 1, 1] = n / b**2 - 2 * a / b**3
        return f, g, h

    def fisher(self, theta):
        b = np.asarray(theta, dtype=float)[..., 1]
        out = np.zeros(b.shape + (2, 2))
        with np.errstate(divide="ignore"):
            out[..., 0, 0] = out[..., 1, 1] = 1 / b**2
        return out

    def mle(self, x, fixed=None):
        fixed = check_fixed(self, fixed)
        return fit_rows(self, x, fixed, self._closed_form)

    def _closed_form(self, x, fixed):
        r = x.shape[0]
        mu = np.full(r, fixed["mu"]) if "mu" in fixed else np.median(x, axis=1)
        b = np.full(r, fixed["b"]) if "b" in fixed else np.abs(x - mu[:, None]).mean(axis=1)
        theta = np.column_stack([mu, b])
        spread = (x.max(axis=1) > x.min(axis=1)) | ("b" in fixed)
        conv = np.all(np.isfinite(theta), axis=1) & (b > 0) & spread
        reason = np.where(conv, "", "all observations equal (b_hat = 0)").astype(object)
        return theta, conv, np.zeros(r, dtype=int), reason

    def moments_estimate(self, x):
        """μ = x̄, b = √(s²/2) (Var = 2b²); shape (R, 2)."""
        return np.column_stack([x.mean(axis=1), np.sqrt(x.var(axis=1) / 2)])

    def mean_var(self, theta):
        theta = np.asarray(theta, dtype=float)
        return theta[..., 0], 2 * theta[..., 1] ** 2

    def scipy_dist(self, theta):
        return st.laplace(theta[0], theta[1])


__all__ = ["Cauchy", "Laplace", "StudentT"]
