"""The generic path: any continuous ``scipy.stats`` distribution as a family.

``get_family("scipy:<name>")`` wraps ``scipy.stats.<name>``. Its parameters are the
distribution's shape names followed by ``loc`` and ``scale`` (scipy's order; ``loc``
and ``scale`` default to 0 and 1 when a configuration leaves them out). It is slower
than the named families but correct: sampling uses ``rvs`` with the study's
Generator, the MLE is scipy's own ``fit`` (with a tight Nelder–Mead) **looped over the
replicates** — the one place where mlesim loops over replicates, because scipy's fit
is one data set at a time — and the Fisher information is computed numerically.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from mlesim.errors import ConfigError
from mlesim.families.base import Domain, Family, FitResult
from mlesim.families.smooth import check_fixed
from mlesim.lazy import lazy_module

so = lazy_module("scipy.optimize")
st = lazy_module("scipy.stats")
integrate = lazy_module("scipy.integrate")

PREFIX = "scipy:"


def scipy_continuous(name: str, key: str = "truth.family") -> st.rv_continuous:
    """The ``scipy.stats`` continuous distribution called ``name``, or ConfigError."""
    dist = getattr(st, name, None)
    if not isinstance(dist, st.rv_continuous):
        what = "is discrete" if isinstance(dist, st.rv_discrete) else "is not in scipy.stats"
        raise ConfigError(
            key,
            f"{PREFIX}{name} {what}; the generic path takes the name of a continuous "
            "scipy.stats distribution (e.g. scipy:skewnorm, scipy:gumbel_r)",
        )
    return dist


def _domain(info) -> Domain:
    lo, hi = info.domain
    if lo >= 0 and hi == np.inf:
        return Domain("positive")
    if lo >= 0 and hi == 1:
        return Domain("unit")
    return Domain("real")


class ScipyFamily(Family):
    """A family built from ``scipy.stats.<name>`` (see the module docstring).

    Parameters are ``(*shapes, "loc", "scale")``. ``mle`` loops ``dist.fit`` over the
    replicates (slow: milliseconds per data set); ``fixed`` parameters map to scipy's
    ``f<shape>``, ``floc`` and ``fscale``. A fit that raises or does not converge
    fails its replicate with the reason. ``fisher`` is E[s sᵀ], the score s by central
    differences of ``logpdf`` and the expectation by tanh-sinh quadrature over the
    support (``scipy.integrate.tanhsinh``, vectorised over parameter values). It is
    meaningful only for regular families: where the support depends on a parameter
    (e.g. ``loc`` of ``gamma``) the information is not defined and the result is not
    a variance bound — hold such a parameter fixed.
    """

    def __init__(self, dist_name: str, key: str = "truth.family"):
        self.dist = scipy_continuous(dist_name, key)
        self.name = f"{PREFIX}{dist_name}"
        infos = self.dist._shape_info() if self.dist.shapes else []
        self.shapes = tuple(i.name for i in infos)
        self.params = (*self.shapes, "loc", "scale")
        self.domains = {i.name: _domain(i) for i in infos}
        self.domains.update(loc=Domain("real"), scale=Domain("positive"))

    def __repr__(self) -> str:
        return f"ScipyFamily({self.name!r})"

    def __reduce__(self):
        return (ScipyFamily, (self.name[len(PREFIX) :],))

    def check(self, params: Mapping[str, Any], key: str = "truth.params") -> np.ndarray:
        """As :meth:`Family.check`, with ``loc`` = 0 and ``scale`` = 1 by default and
        scipy's own argument check."""
        params = {"loc": 0.0, "scale": 1.0, **params}
        theta = super().check(params, key)
        if np.isnan(self.dist.support(*theta)).any():
            raise ConfigError(key, f"{self.as_dict(theta)} are not valid parameters of {self.name}")
        return theta

    def _cols(self, theta: np.ndarray) -> list[np.ndarray]:
        theta = np.asarray(theta, dtype=float)
        if theta.ndim == 1:
            return list(theta)
        return [theta[..., j, None] for j in range(self.p)]

    def sample(self, rng, theta, size):
        return self.dist.rvs(*theta, size=size, random_state=rng)

    def logpdf(self, x, theta):
        with np.errstate(all="ignore"):
            return self.dist.logpdf(x, *self._cols(theta))

    def in_support(self, x):
        return np.isfinite(x)

    def mean_var(self, theta):
        theta = np.asarray(theta, dtype=float)
        m, v = self.dist.stats(*[theta[..., j] for j in range(self.p)], moments="mv")
        return np.asarray(m, dtype=float), np.asarray(v, dtype=float)

    def scipy_dist(self, theta):
        return self.dist(*theta)

    def _steps(self, theta, c):
        steps = super()._steps(theta, c)
        scale = np.abs(theta[:, -1])
        steps[:, -2] = c * np.maximum(np.abs(theta[:, -2]), scale)  # loc in units of scale
        return steps

    # ----- estimation -------------------------------------------------------------
    def fit_kwargs(self, fixed: Mapping[str, float]) -> dict[str, float]:
        """scipy ``fit`` keywords holding ``fixed`` parameters (``f<shape>``, floc, fscale)."""
        return {f"f{name}": float(v) for name, v in fixed.items()}

    def mle(self, x, fixed=None):
        """``dist.fit`` on each row of ``x`` (R, n) — a loop over replicates, by design."""
        fixed = check_fixed(self, fixed)
        r = x.shape[0]
        theta = np.full((r, self.p), np.nan)
        conv = np.zeros(r, dtype=bool)
        reason = np.full(r, "", dtype=object)
        kw = self.fit_kwargs(fixed)
        for i in range(r):  # the generic path loops; see the module docstring
            theta[i], reason[i] = self._fit_one(x[i], kw)
        with np.errstate(all="ignore"):
            ll = self.loglik(x, theta)
        conv = (reason == "") & np.isfinite(ll)
        reason[(reason == "") & ~conv] = "non-finite log-likelihood at scipy's fit"
        return FitResult(theta, conv, np.zeros(r, dtype=int), reason)

    def _fit_one(self, row: np.ndarray, kw: dict) -> tuple[np.ndarray, str]:
        flag = []

        def optimizer(func, x0, args=(), disp=0):
            out = so.fmin(
                func, x0, args=args, xtol=1e-10, ftol=1e-12, maxiter=20000, maxfun=40000,
                full_output=True, disp=0,
            )  # fmt: skip
            flag.append(out[4])
            return out[0]

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est = self.dist.fit(row, optimizer=optimizer, **kw)
        except Exception as err:  # scipy's FitError and friends fail the replicate
            return np.full(self.p, np.nan), f"scipy fit failed: {err}"
        if flag and flag[-1]:
            return np.asarray(est, dtype=float), "Nelder-Mead hit its iteration cap"
        return np.asarray(est, dtype=float), ""

    # ----- information ------------------------------------------------------------
    def fisher(self, theta):
        """E[s sᵀ] per observation by quadrature (see the class docstring); (..., p, p)."""
        theta = np.asarray(theta, dtype=float)
        flat = theta.reshape(-1, self.p)
        out = np.full((flat.shape[0], self.p, self.p), np.nan)
        with np.errstate(all="ignore"):
            lo, hi = self.dist.support(*flat.T)
            ok = np.all(np.isfinite(flat), axis=1) & ~np.isnan(lo) & ~np.isnan(hi)
        if ok.any():
            uniq, inverse = np.unique(flat[ok], axis=0, return_inverse=True)
            out[ok] = self._expected_outer_score(uniq)[inverse.reshape(-1)]
        return out.reshape(theta.shape[:-1] + (self.p, self.p))

    def _expected_outer_score(self, thetas: np.ndarray) -> np.ndarray:
        u, p = thetas.shape
        steps = self._steps(thetas, np.finfo(float).eps ** (1 / 3))
        ii, jj = np.triu_indices(p)
        rows = np.repeat(np.arange(u), ii.size)
        pi, pj = np.tile(ii, u), np.tile(jj, u)
        lo, hi = self.dist.support(*thetas[rows, :-2].T)  # standardised: loc 0, scale 1
        eye = np.eye(p)
        unit = np.minimum(thetas[:, -1], 1.0) ** 2

        def integrand(t, row, i, j):
            t, row, i, j = np.broadcast_arrays(t, row, i, j)
            th = thetas[row]
            x = th[..., -2] + th[..., -1] * t

            def score(k):
                h = steps[row, k][..., None] * eye[k]
                up = self.dist.logpdf(x, *np.moveaxis(th + h, -1, 0))
                dn = self.dist.logpdf(x, *np.moveaxis(th - h, -1, 0))
                return (up - dn) / (2 * steps[row, k])

            dens = self.dist.pdf(t, *np.moveaxis(th[..., :-2], -1, 0)) * unit[row]
            val = dens * score(i) * score(j)
            return np.where(dens > 0, val, 0.0)

        # integrate over the standardised t = (x − loc)/scale, and min(scale, 1)²·f·s_i·s_j
        # (of order one) so that an absolute tolerance settles the entries that vanish
        # (e.g. loc–scale of a symmetric law)
        with np.errstate(all="ignore"):
            res = integrate.tanhsinh(integrand, lo, hi, args=(rows, pi, pj), rtol=1e-10, atol=1e-13)
        info = np.full((u, p, p), np.nan)
        # accept a piece that stopped at the iteration cap with a negligible error estimate:
        # the finite-difference scores make the integrand noisy at the 1e-13 level, so an
        # entry that vanishes (loc–scale of a symmetric law) may never meet atol exactly
        settled = res.success | (res.error <= 1e-10 + 1e-8 * np.abs(res.integral))
        info[rows, pi, pj] = np.where(settled, res.integral / unit[rows], np.nan)
        info[rows, pj, pi] = info[rows, pi, pj]
        return info
