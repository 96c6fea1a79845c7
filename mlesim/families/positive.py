"""Families on (0, ∞) and (0, 1): gamma, weibull, lognormal, beta.

Densities (x > 0; for the beta 0 < x < 1):

- gamma(shape α, rate β): f = β^α x^(α−1) e^(−βx) / Γ(α);
- weibull(shape k, scale λ): f = (k/λ) (x/λ)^(k−1) exp(−(x/λ)^k);
- lognormal(mu, sigma2): log X ~ normal(mu, sigma2);
- beta(a, b): f = x^(a−1) (1−x)^(b−1) / B(a, b).

The gamma and weibull MLEs reduce to one equation in the shape (the other parameter
has a closed form given it), solved by batched Newton on log-shape; the lognormal's
is closed; the beta's is a two-parameter Newton (= Fisher scoring: its Hessian is
not random). Observations must lie strictly inside the support (log x is needed).
"""

from __future__ import annotations

import numpy as np

from mlesim.families.base import Domain
from mlesim.families.closed_form import Normal
from mlesim.families.smooth import SmoothFamily, check_fixed, fit_rows, newton_1d
from mlesim.lazy import lazy_module

sc = lazy_module("scipy.special")
st = lazy_module("scipy.stats")
elementwise = lazy_module("scipy.optimize.elementwise")

EULER = np.euler_gamma
ALL_EQUAL = "all observations equal: the shape estimate is infinite"


def _spread(x: np.ndarray) -> np.ndarray:
    """(m,) True where a row holds at least two distinct values."""
    return x.max(axis=1) > x.min(axis=1)


def _sums(x: np.ndarray) -> dict[str, np.ndarray]:
    """Per-row n, Σx, Σ log x as (m,) arrays."""
    n = np.full(x.shape[0], float(x.shape[1]))
    return {"n": n, "sx": x.sum(axis=1), "slog": np.log(x).sum(axis=1)}


class Gamma(SmoothFamily):
    """Gamma(shape, rate): f = β^α x^(α−1) e^(−βx) / Γ(α), x > 0.

    I = [[ψ′(α), −1/β], [−1/β, α/β²]] (DESIGN.md). MLE: β̂ = α̂/x̄ and α̂ solves
    log α − ψ(α) = s = log x̄ − mean(log x) (Choi & Wette 1969, Technometrics 11:683),
    by batched Newton on log α from Minka's (2002) start
    α₀ = (3 − s + √((s − 3)² + 24 s)) / (12 s). With the rate fixed α̂ solves
    ψ(α) = log β + mean(log x); with the shape fixed β̂ = α/x̄. All-equal data
    (s = 0) fail with a reason. ``scipy.stats.gamma.fit(x, floc=0)`` is the same
    estimator with scale = 1/rate.
    """

    provides = frozenset({"moments"})
    name = "gamma"
    params = ("shape", "rate")
    domains = {"shape": Domain("positive"), "rate": Domain("positive")}

    def sample(self, rng, theta, size):
        return rng.gamma(theta[0], 1.0 / theta[1], size=size)

    def logpdf(self, x, theta):
        a, b = self.column(theta, "shape"), self.column(theta, "rate")
        with np.errstate(all="ignore"):
            out = sc.xlogy(a - 1, x) + a * np.log(b) - b * x - sc.gammaln(a)
        return np.where(x > 0, out, -np.inf)

    def in_support(self, x):
        return x > 0

    def prepare(self, x):
        return _sums(x)

    def score(self, x, theta):
        theta = np.broadcast_to(np.asarray(theta, dtype=float), (x.shape[0], 2))
        a, b = theta[:, 0, None], theta[:, 1, None]
        return np.stack(
            np.broadcast_arrays(np.log(b) + np.log(x) - sc.digamma(a), a / b - x), axis=-1
        )

    def derivs(self, data, theta):
        n, sx, slog = data["n"], data["sx"], data["slog"]
        a, b = theta[:, 0], theta[:, 1]
        f = n * (a * np.log(b) - sc.gammaln(a)) + (a - 1) * slog - b * sx
        g = np.column_stack([n * (np.log(b) - sc.digamma(a)) + slog, n * a / b - sx])
        h = -n[:, None, None] * self.fisher(theta)
        return f, g, h

    def fisher(self, theta):
        theta = np.asarray(theta, dtype=float)
        a, b = theta[..., 0], theta[..., 1]
        out = np.empty(theta.shape[:-1] + (2, 2))
        with np.errstate(all="ignore"):
            out[..., 0, 0] = sc.polygamma(1, a)
            out[..., 0, 1] = out[..., 1, 0] = -1 / b
            out[..., 1, 1] = a / b**2
        return out

    def mle(self, x, fixed=None):
        fixed = check_fixed(self, fixed)
        return fit_rows(self, x, fixed, self._profile)

    def _profile(self, x, fixed):
        m = x.shape[0]
        xbar, mlog = x.mean(axis=1), np.log(x).mean(axis=1)
        zero = np.zeros(m, dtype=int)
        if "shape" in fixed:
            a = np.full(m, fixed["shape"])
            return np.column_stack([a, a / xbar]), np.ones(m, bool), zero, np.full(m, "", object)
        if "rate" in fixed:
            y = np.log(fixed["rate"]) + mlog  # solve psi(a) = y
            a0 = np.where(y >= -2.22, np.exp(y) + 0.5, -1 / (y + EULER))

            def fun(a, rows):
                return a * y[rows] - sc.gammaln(a), y[rows] - sc.digamma(a), -sc.polygamma(1, a)

            a, res = newton_1d(fun, a0)
            theta = np.column_stack([a, np.full(m, fixed["rate"])])
            return theta, res.converged, res.n_iter, res.reasons()
        s = np.log(xbar) - mlog
        with np.errstate(all="ignore"):
            a0 = (3 - s + np.sqrt((s - 3) ** 2 + 24 * s)) / (12 * s)

        def fun(a, rows):
            sr = s[rows]
            f = a * np.log(a) - a - sc.gammaln(a) - (a - 1) * sr - sr
            return f, np.log(a) - sc.digamma(a) - sr, 1 / a - sc.polygamma(1, a)

        spread = _spread(x) & (s > 0)
        a, res = newton_1d(fun, np.where(spread, a0, 1.0))
        conv, reason = res.converged & spread, res.reasons()
        reason[~spread] = ALL_EQUAL
        return np.column_stack([a, a / xbar]), conv, res.n_iter, reason

    def moments_estimate(self, x):
        """shape = x̄²/s², rate = x̄/s² (s² with divisor n); shape (R, 2)."""
        m, v = x.mean(axis=1), x.var(axis=1)
        with np.errstate(all="ignore"):
            return np.column_stack([m**2 / v, m / v])

    def mean_var(self, theta):
        theta = np.asarray(theta, dtype=float)
        a, b = theta[..., 0], theta[..., 1]
        return a / b, a / b**2

    def scipy_dist(self, theta):
        return st.gamma(theta[0], scale=1.0 / theta[1])


class Weibull(SmoothFamily):
    """Weibull(shape k, scale λ): f = (k/λ)(x/λ)^(k−1) exp(−(x/λ)^k), x > 0.

    I = [[((1−γ)² + π²/6)/k², −(1−γ)/λ], [−(1−γ)/λ, k²/λ²]] (DESIGN.md).
    MLE: λ̂^k = mean(x^k), and k̂ maximises the profile log-likelihood
    log k − log mean(x^k) + (k − 1) mean(log x), which is concave in k
    (Cohen 1965, Technometrics 7:579); batched Newton on log k from the
    log-moment start k₀ = π / (√6 sd(log x)) (Var log X = π²/(6k²)). Computed with
    y = log x − max log x, so x^k never overflows. With the scale fixed the same
    Newton runs on the full log-likelihood in k; with the shape fixed λ̂ is closed.
    ``scipy.stats.weibull_min.fit(x, floc=0)`` is the same estimator (c = k).
    """

    provides = frozenset({"moments"})
    name = "weibull"
    params = ("shape", "scale")
    domains = {"shape": Domain("positive"), "scale": Domain("positive")}

    def sample(self, rng, theta, size):
        return theta[1] * rng.weibull(theta[0], size=size)

    def logpdf(self, x, theta):
        k, lam = self.column(theta, "shape"), self.column(theta, "scale")
        with np.errstate(all="ignore"):
            z = x / lam
            out = np.log(k / lam) + sc.xlogy(k - 1, z) - z**k
        return np.where(x > 0, out, -np.inf)

    def in_support(self, x):
        return x > 0

    def _parts(self, x, theta):
        k, lam = theta[:, 0, None], theta[:, 1, None]
        y = np.log(x) - np.log(lam)
        u = np.exp(k * y)
        return k, lam, y, u

    def score(self, x, theta):
        theta = np.broadcast_to(np.asarray(theta, dtype=float), (x.shape[0], 2))
        k, lam, y, u = self._parts(x, theta)
        return np.stack([1 / k + y - u * y, k / lam * (u - 1)], axis=-1)

    def derivs(self, data, theta):
        x = data["x"]
        n = x.shape[1]
        k, lam, y, u = self._parts(x, theta)
        k1, l1 = k[:, 0], lam[:, 0]
        su, sy, suy, suy2 = u.sum(1), y.sum(1), (u * y).sum(1), (u * y * y).sum(1)
        f = n * np.log(k1 / l1) + (k1 - 1) * sy - su
        g = np.column_stack([n / k1 + sy - suy, k1 / l1 * (su - n)])
        h = np.empty((x.shape[0], 2, 2))
        h[:, 0, 0] = -n / k1**2 - suy2
        h[:, 0, 1] = h[:, 1, 0] = (-n + k1 * suy + su) / l1
        h[:, 1, 1] = -(k1 / l1**2) * (su - n) - (k1 / l1) ** 2 * su
        return f, g, h

    def fisher(self, theta):
        theta = np.asarray(theta, dtype=float)
        k, lam = theta[..., 0], theta[..., 1]
        out = np.empty(theta.shape[:-1] + (2, 2))
        with np.errstate(all="ignore"):
            out[..., 0, 0] = ((1 - EULER) ** 2 + np.pi**2 / 6) / k**2
            out[..., 0, 1] = out[..., 1, 0] = -(1 - EULER) / lam
            out[..., 1, 1] = k**2 / lam**2
        return out

    def mle(self, x, fixed=None):
        fixed = check_fixed(self, fixed)
        return fit_rows(self, x, fixed, self._profile)

    def _profile(self, x, fixed):
        m = x.shape[0]
        logx = np.log(x)
        if "scale" in fixed:
            return self._shape_given_scale(logx - np.log(fixed["scale"]), fixed["scale"])
        c = logx.max(axis=1)
        yc = logx - c[:, None]
        if "shape" in fixed:
            k = np.full(m, fixed["shape"])
            lam = np.exp(c + np.log(np.exp(k[:, None] * yc).mean(axis=1)) / k)
            return np.column_stack([k, lam]), np.ones(m, bool), np.zeros(m, int), _blank(m)
        my = yc.mean(axis=1)
        sd = yc.std(axis=1)

        def fun(k, rows):
            y = yc[rows]
            e = np.exp(k[:, None] * y)
            a, b, cc = e.mean(1), (e * y).mean(1), (e * y * y).mean(1)
            ba = b / a
            f = np.log(k) - np.log(a) + (k - 1) * my[rows]
            return f, 1 / k - ba + my[rows], -1 / k**2 - (cc / a - ba * ba)

        with np.errstate(divide="ignore"):
            k0 = np.where(sd > 0, np.pi / (np.sqrt(6) * sd), 1.0)
        k, res = newton_1d(fun, k0)
        lam = np.exp(c + np.log(np.exp(k[:, None] * yc).mean(axis=1)) / k)
        spread = _spread(x)
        conv, reason = res.converged & spread, res.reasons()
        reason[~spread] = ALL_EQUAL
        return np.column_stack([k, lam]), conv, res.n_iter, reason

    def _shape_given_scale(self, y, scale):
        m = y.shape[0]
        my = y.mean(axis=1)

        def fun(k, rows):
            yr = y[rows]
            e = np.exp(k[:, None] * yr)
            f = np.log(k) + (k - 1) * my[rows] - e.mean(1)
            return f, 1 / k + my[rows] - (e * yr).mean(1), -1 / k**2 - (e * yr * yr).mean(1)

        sd = y.std(axis=1)
        with np.errstate(divide="ignore"):
            k0 = np.where(sd > 0, np.pi / (np.sqrt(6) * sd), 1.0)
        k, res = newton_1d(fun, k0)
        return np.column_stack([k, np.full(m, scale)]), res.converged, res.n_iter, res.reasons()

    def moments_estimate(self, x):
        """Match mean and variance: Γ(1+2/k)/Γ(1+1/k)² = 1 + s²/x̄² solved for k by
        ``scipy.optimize.elementwise.find_root`` on log k (the ratio falls with k),
        then λ = x̄ / Γ(1 + 1/k); shape (R, 2)."""
        m, v = x.mean(axis=1), x.var(axis=1)
        with np.errstate(all="ignore"):
            target = np.log1p(v / m**2)

            def eq(logk, t):
                k = np.exp(logk)
                return sc.gammaln(1 + 2 / k) - 2 * sc.gammaln(1 + 1 / k) - t

            res = elementwise.find_root(eq, (np.log(0.02), np.log(1000.0)), args=(target,))
            k = np.where(res.success, np.exp(res.x), np.nan)
            return np.column_stack([k, m / sc.gamma(1 + 1 / k)])

    def mean_var(self, theta):
        theta = np.asarray(theta, dtype=float)
        k, lam = theta[..., 0], theta[..., 1]
        g1, g2 = sc.gamma(1 + 1 / k), sc.gamma(1 + 2 / k)
        return lam * g1, lam**2 * (g2 - g1**2)

    def scipy_dist(self, theta):
        return st.weibull_min(theta[0], scale=theta[1])


def _blank(m: int) -> np.ndarray:
    return np.full(m, "", dtype=object)


class Lognormal(SmoothFamily):
    """Lognormal(mu, sigma2): log X ~ normal(mu, sigma2), x > 0.

    I = diag(1/σ², 1/(2σ⁴)) as the normal's, on log x (DESIGN.md). MLE in closed form:
    μ̂ = mean(log x), σ̂² = mean((log x − μ̂)²) (the normal MLE on log x); with μ fixed
    σ̂² = mean((log x − μ)²). No mean/median/unbiased-variance shortcuts apply
    (``location``, ``center`` and ``variance`` are None): the mean of X is
    exp(μ + σ²/2), not a parameter. ``scipy.stats.lognorm.fit(x, floc=0)`` is the same
    estimator with s = σ, scale = e^μ.
    """

    provides = frozenset({"moments"})
    name = "lognormal"
    params = ("mu", "sigma2")
    domains = {"mu": Domain("real"), "sigma2": Domain("positive")}

    def sample(self, rng, theta, size):
        return rng.lognormal(theta[0], np.sqrt(theta[1]), size=size)

    def logpdf(self, x, theta):
        mu, s2 = self.column(theta, "mu"), self.column(theta, "sigma2")
        with np.errstate(all="ignore"):
            y = np.log(x)
            out = -0.5 * (np.log(2 * np.pi * s2) + (y - mu) ** 2 / s2) - y
        return np.where(x > 0, out, -np.inf)

    def in_support(self, x):
        return x > 0

    def prepare(self, x):
        return {"y": np.log(x)}

    def score(self, x, theta):
        theta = np.broadcast_to(np.asarray(theta, dtype=float), (x.shape[0], 2))
        mu, s2 = theta[:, 0, None], theta[:, 1, None]
        r = np.log(x) - mu
        return np.stack([r / s2, (r * r / s2 - 1) / (2 * s2)], axis=-1)

    def derivs(self, data, theta):
        y = data["y"]
        n = y.shape[1]
        mu, s2 = theta[:, 0], theta[:, 1]
        r = y - mu[:, None]
        sr, sr2 = r.sum(1), (r * r).sum(1)
        f = -0.5 * (n * np.log(2 * np.pi * s2) + sr2 / s2) - y.sum(1)
        g = np.column_stack([sr / s2, -n / (2 * s2) + sr2 / (2 * s2**2)])
        h = np.empty((y.shape[0], 2, 2))
        h[:, 0, 0] = -n / s2
        h[:, 0, 1] = h[:, 1, 0] = -sr / s2**2
        h[:, 1, 1] = n / (2 * s2**2) - sr2 / s2**3
        return f, g, h

    def fisher(self, theta):
        """The normal's information at (mu, sigma2): the parameters act on log x."""
        return Normal().fisher(np.asarray(theta, dtype=float))

    def mle(self, x, fixed=None):
        fixed = check_fixed(self, fixed)
        return fit_rows(self, x, fixed, self._closed_form)

    def _closed_form(self, x, fixed):
        m = x.shape[0]
        y = np.log(x)
        mu = np.full(m, fixed["mu"]) if "mu" in fixed else y.mean(axis=1)
        s2 = np.full(m, fixed["sigma2"]) if "sigma2" in fixed else ((y - mu[:, None]) ** 2).mean(1)
        conv = (s2 > 0) & (_spread(x) | ("sigma2" in fixed))
        reason = np.where(conv, "", "all observations equal (sigma2_hat = 0)").astype(object)
        return np.column_stack([mu, s2]), conv, np.zeros(m, int), reason

    def moments_estimate(self, x):
        """σ² = log(1 + s²/x̄²), μ = log x̄ − σ²/2 (matching E X and Var X); shape (R, 2)."""
        m, v = x.mean(axis=1), x.var(axis=1)
        with np.errstate(all="ignore"):
            s2 = np.log1p(v / m**2)
            return np.column_stack([np.log(m) - s2 / 2, s2])

    def mean_var(self, theta):
        theta = np.asarray(theta, dtype=float)
        mu, s2 = theta[..., 0], theta[..., 1]
        return np.exp(mu + s2 / 2), np.expm1(s2) * np.exp(2 * mu + s2)

    def scipy_dist(self, theta):
        return st.lognorm(np.sqrt(theta[1]), scale=np.exp(theta[0]))


class Beta(SmoothFamily):
    """Beta(a, b): f = x^(a−1)(1−x)^(b−1)/B(a, b), 0 < x < 1.

    I = [[ψ′(a)−ψ′(a+b), −ψ′(a+b)], [−ψ′(a+b), ψ′(b)−ψ′(a+b)]] (DESIGN.md). The
    Hessian of the log-likelihood is −n I (an exponential family), so Newton is Fisher
    scoring; batched on (log a, log b) from the method-of-moments start
    a₀ = x̄ c, b₀ = (1 − x̄) c, c = x̄(1 − x̄)/s² − 1 (a = b = 1 if c ≤ 0).
    ``scipy.stats.beta.fit(x, floc=0, fscale=1)`` is the same estimator.
    """

    provides = frozenset({"moments"})
    name = "beta"
    params = ("a", "b")
    domains = {"a": Domain("positive"), "b": Domain("positive")}

    def sample(self, rng, theta, size):
        return rng.beta(theta[0], theta[1], size=size)

    def logpdf(self, x, theta):
        a, b = self.column(theta, "a"), self.column(theta, "b")
        with np.errstate(all="ignore"):
            out = sc.xlogy(a - 1, x) + sc.xlog1py(b - 1, -x) - sc.betaln(a, b)
        return np.where((x > 0) & (x < 1), out, -np.inf)

    def in_support(self, x):
        return (x > 0) & (x < 1)

    def prepare(self, x):
        n = np.full(x.shape[0], float(x.shape[1]))
        return {"n": n, "sl": np.log(x).sum(1), "sl1": np.log1p(-x).sum(1), "x": x}

    def score(self, x, theta):
        theta = np.broadcast_to(np.asarray(theta, dtype=float), (x.shape[0], 2))
        a, b = theta[:, 0, None], theta[:, 1, None]
        dab = sc.digamma(a + b)
        return np.stack(
            [np.log(x) - sc.digamma(a) + dab, np.log1p(-x) - sc.digamma(b) + dab], axis=-1
        )

    def derivs(self, data, theta):
        n, sl, sl1 = data["n"], data["sl"], data["sl1"]
        a, b = theta[:, 0], theta[:, 1]
        dab = sc.digamma(a + b)
        f = (a - 1) * sl + (b - 1) * sl1 - n * sc.betaln(a, b)
        g = np.column_stack([sl - n * (sc.digamma(a) - dab), sl1 - n * (sc.digamma(b) - dab)])
        return f, g, -n[:, None, None] * self.fisher(theta)

    def fisher(self, theta):
        theta = np.asarray(theta, dtype=float)
        a, b = theta[..., 0], theta[..., 1]
        out = np.empty(theta.shape[:-1] + (2, 2))
        with np.errstate(all="ignore"):
            tab = sc.polygamma(1, a + b)
            out[..., 0, 0] = sc.polygamma(1, a) - tab
            out[..., 0, 1] = out[..., 1, 0] = -tab
            out[..., 1, 1] = sc.polygamma(1, b) - tab
        return out

    def start(self, data, fixed):
        theta = self.moments_estimate(data["x"])
        ok = np.all(np.isfinite(theta) & (theta > 0), axis=1)
        return np.where(ok[:, None], theta, 1.0)

    def moments_estimate(self, x):
        """a = x̄ c, b = (1 − x̄) c with c = x̄(1 − x̄)/s² − 1; shape (R, 2)."""
        m, v = x.mean(axis=1), x.var(axis=1)
        with np.errstate(all="ignore"):
            c = m * (1 - m) / v - 1
            return np.column_stack([m * c, (1 - m) * c])

    def mean_var(self, theta):
        theta = np.asarray(theta, dtype=float)
        a, b = theta[..., 0], theta[..., 1]
        s = a + b
        return a / s, a * b / (s**2 * (s + 1))

    def scipy_dist(self, theta):
        return st.beta(theta[0], theta[1])


__all__ = ["Beta", "Gamma", "Lognormal", "Weibull"]
