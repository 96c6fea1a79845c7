"""Families with smooth likelihoods fitted by batched Newton iterations.

:class:`SmoothFamily` turns a family's analytic log-likelihood derivatives into a
batched maximum likelihood fit: the free parameters are mapped to the real line
(log for scales and shapes, logit for probabilities — :class:`~mlesim.families.base.Domain`),
the chain rule carries gradient and Hessian over, and :func:`mlesim.optimize.newton_maximise`
iterates on every replicate of the chunk at once with step-halving, an iteration cap
and a per-replicate convergence mask. A replicate whose fit fails is returned with
``converged=False`` and a reason; the fit never raises for bad data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from mlesim import optimize
from mlesim.families.base import (
    Domain,
    Family,
    FitResult,
    estimable,
    fixed_mask,
    from_free,
    to_free,
)

Data = dict[str, np.ndarray]


def check_fixed(family: Family, fixed: Mapping[str, float] | None) -> dict[str, float]:
    """Validate ``fixed`` (names must be parameters, at least one left free)."""
    fixed = {k: float(v) for k, v in (fixed or {}).items()}
    bad = sorted(set(fixed) - set(family.params))
    if bad:
        raise ValueError(f"{family.name}: cannot hold {bad[0]} fixed; allowed: {family.params}")
    if len(fixed) == family.p:
        raise ValueError(f"{family.name}: at least one parameter must stay free")
    return fixed


def subset(data: Data, rows: np.ndarray) -> Data:
    """Rows ``rows`` of every array in ``data`` (no copy when all rows are asked for)."""
    first = next(iter(data.values()))
    if rows.size == first.shape[0] and np.array_equal(rows, np.arange(rows.size)):
        return data
    return {k: v[rows] for k, v in data.items()}


def transform_derivs(
    theta: np.ndarray, g: np.ndarray, h: np.ndarray, kinds: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and Hessian on the unconstrained scale z, where θ_j = T_j(z_j).

    g_z = J g_θ and H_z = J H_θ J + diag(T″ g_θ), with J = diag(T′) — the chain rule.
    T = exp (positive: T′ = T″ = θ), expit (unit: T′ = θ(1−θ), T″ = T′(1−2θ)) or
    the identity (real).

    Shapes: theta, g (m, k); h (m, k, k); ``kinds`` the k domain kinds.
    """
    d1 = np.ones_like(theta)
    d2 = np.zeros_like(theta)
    for j, kind in enumerate(kinds):
        if kind == "positive":
            d1[:, j] = d2[:, j] = theta[:, j]
        elif kind == "unit":
            d1[:, j] = theta[:, j] * (1 - theta[:, j])
            d2[:, j] = d1[:, j] * (1 - 2 * theta[:, j])
    gz = d1 * g
    hz = d1[:, :, None] * h * d1[:, None, :]
    idx = np.arange(theta.shape[1])
    hz[:, idx, idx] += d2 * g
    return gz, hz


class SmoothFamily(Family):
    """A family whose MLE is found by batched Newton iterations on log-likelihood derivatives.

    Subclasses implement :meth:`derivs` (value, gradient, Hessian of the log-likelihood
    summed over each row; it also gives :meth:`hessian` for observed-information SEs) and,
    unless they override :meth:`mle` with a closed form or a profile, :meth:`start`
    (starting values); they may override
    :meth:`prepare` (per-row transforms computed once, e.g. log x), :meth:`limits`
    (where an iterate counts as having run to a boundary) and :meth:`finish`
    (what a boundary means for the family).
    """

    #: Newton iteration cap per replicate
    maxiter: int = 200

    # ----- to implement -----------------------------------------------------------
    def derivs(self, data: Data, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Log-likelihood (m,), gradient (m, p) and Hessian (m, p, p) in θ, summed over rows."""
        raise NotImplementedError

    def start(self, data: Data, fixed: dict[str, float]) -> np.ndarray:
        """Starting values (m, p) for the rows of ``data`` (fixed values may be ignored)."""
        raise NotImplementedError

    # ----- hooks with defaults ----------------------------------------------------
    def prepare(self, x: np.ndarray) -> Data:
        """Per-row arrays the derivatives need; default ``{"x": x}``."""
        return {"x": x}

    def limits(self, free: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper limits (k,) of the free parameters on the z scale."""
        k = int(free.sum())
        return np.full(k, -np.inf), np.full(k, np.inf)

    def finish(
        self, data: Data, theta: np.ndarray, res: optimize.NewtonResult, fixed: dict
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Post-process a fit: returns (theta (m, p), converged (m,), reason (m,))."""
        return theta, res.converged, res.reasons()

    # ----- shared -----------------------------------------------------------------
    def hessian(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Analytic Hessian of the log-likelihood, (R, p, p)."""
        theta = np.broadcast_to(np.asarray(theta, dtype=float), (x.shape[0], self.p))
        with np.errstate(all="ignore"):
            return self.derivs(self.prepare(x), theta)[2]

    def kinds(self, free: np.ndarray) -> list[str]:
        """Domain kinds of the free parameters (``free`` a (p,) mask)."""
        return [self.domains[n].kind for n, f in zip(self.params, free, strict=True) if f]

    def to_z(self, theta: np.ndarray, free: np.ndarray) -> np.ndarray:
        """Free columns of ``theta`` (m, p) on the unconstrained scale, (m, k)."""
        return to_free(self, theta, free)

    def from_z(self, z: np.ndarray, free: np.ndarray, fixed: dict[str, float]) -> np.ndarray:
        """Full θ (m, p) from free coordinates ``z`` (m, k) and the fixed values."""
        return from_free(self, z, free, fixed)

    def objective(self, data: Data, free: np.ndarray, fixed: dict) -> optimize.Objective:
        """The log-likelihood as a function of the free coordinates z, for the optimiser."""
        kinds = self.kinds(free)

        def fun(z, rows):
            theta = self.from_z(z, free, fixed)
            f, g, h = self.derivs(subset(data, rows), theta)
            return (f, *transform_derivs(theta[:, free], g[:, free], h[:, free][:, :, free], kinds))

        return fun

    def newton(
        self, data: Data, theta0: np.ndarray, fixed: dict[str, float]
    ) -> tuple[np.ndarray, optimize.NewtonResult]:
        """Run the batched Newton fit from ``theta0`` (m, p); returns (θ̂ (m, p), result)."""
        free = fixed_mask(self, fixed)
        lo, hi = self.limits(free)
        with np.errstate(all="ignore"):
            z0 = self.to_z(theta0, free)
            res = optimize.newton_maximise(
                self.objective(data, free, fixed), z0, lower=lo, upper=hi, maxiter=self.maxiter
            )
            return self.from_z(res.z, free, fixed), res

    def mle(self, x: np.ndarray, fixed: Mapping[str, float] | None = None) -> FitResult:
        """Batched MLE of every row of ``x`` (R, n).

        Rows with data outside the support fail with that reason; the others are
        fitted together by :meth:`newton` from :meth:`start`, then :meth:`finish`.
        """
        fixed = check_fixed(self, fixed)
        return fit_rows(self, x, fixed, self._fit_good_rows)

    def _fit_good_rows(self, x: np.ndarray, fixed: dict) -> tuple[np.ndarray, ...]:
        data = self.prepare(x)
        with np.errstate(all="ignore"):
            theta0 = self.start(data, fixed)
        theta, res = self.newton(data, theta0, fixed)
        theta, conv, reason = self.finish(data, theta, res, fixed)
        return theta, conv, res.n_iter, reason


def fit_rows(family: Family, x: np.ndarray, fixed: dict, fit: Callable) -> FitResult:
    """Apply ``fit(x_good, fixed) -> (theta, converged, n_iter, reason)`` to the rows of
    ``x`` whose data lie in the family's support; the other rows fail with a reason."""
    r = x.shape[0]
    theta = np.full((r, family.p), np.nan)
    conv = np.zeros(r, dtype=bool)
    n_iter = np.zeros(r, dtype=int)
    reason = np.full(r, optimize.MESSAGES[optimize.BAD_DATA], dtype=object)
    with np.errstate(invalid="ignore"):
        good = np.all(family.in_support(x), axis=1)
    if good.any():
        t, c, it, why = fit(x[good] if not good.all() else x, fixed)
        theta[good], conv[good], n_iter[good], reason[good] = t, c, it, why
    for name, value in fixed.items():
        theta[:, family.index(name)] = value
    with np.errstate(invalid="ignore"):
        bad = conv & ~estimable(family, theta)
    conv &= ~bad
    reason[bad] = "non-finite estimate"
    reason[conv] = ""
    return FitResult(theta, conv, n_iter, reason)


#: one-dimensional objective: (theta (m,), rows (m,)) -> value, first, second derivative (m,)
Objective1D = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, ...]]


def newton_1d(
    fun: Objective1D,
    theta0: np.ndarray,
    kind: str = "positive",
    lower: float = -np.inf,
    upper: float = np.inf,
    maxiter: int = 200,
) -> tuple[np.ndarray, optimize.NewtonResult]:
    """Maximise R one-parameter objectives at once (e.g. a profile log-likelihood).

    ``fun`` works on the natural scale θ; the iterations run on z = T⁻¹(θ) for the
    domain ``kind`` (log for "positive"), with ``lower``/``upper`` limits on z.
    Returns (θ̂ (R,), the optimiser's result).
    """
    dom = Domain(kind)

    def obj(z, rows):
        theta = dom.from_free(z[:, 0])
        f, g, h = fun(theta, rows)
        gz, hz = transform_derivs(theta[:, None], g[:, None], h[:, None, None], [kind])
        return f, gz, hz

    with np.errstate(all="ignore"):
        z0 = dom.to_free(np.asarray(theta0, dtype=float))[:, None]
        res = optimize.newton_maximise(
            obj, z0, lower=np.array([lower]), upper=np.array([upper]), maxiter=maxiter
        )
        return dom.from_free(res.z[:, 0]), res
