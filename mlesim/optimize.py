"""Batched maximisation: Newton's method on many small likelihood problems at once.

:func:`newton_maximise` maximises R objective functions of k ≤ ~5 unconstrained
variables simultaneously (one per replicate, DESIGN.md "the one rule for speed").
Each iteration takes a Newton step with the Hessian's eigenvalues replaced by their
absolute values (so the step always points uphill, even where the objective is not
concave; Nocedal & Wright 2006, *Numerical Optimization*, §3.4), caps its length, and
halves it until the objective does not decrease (step-halving line search). Rows
stop independently: a per-row status records convergence, the iteration cap, a failed
line search, non-finite values, a run to a boundary or a saddle point.

Why not ``scipy.optimize.elementwise``: ``find_root`` / ``find_minimum`` solve
one-dimensional problems by bracketing, which needs ~10–40 evaluations; the likelihoods
here have analytic derivatives, so Newton needs 3–8, and it also handles the two- and
three-parameter problems (cauchy, beta, Student-t) that the elementwise solvers cannot.
``find_root`` is still used where a derivative-free bracketed root fits best (the
weibull moment equation in :mod:`mlesim.families.positive`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: status codes of :class:`NewtonResult`
CONVERGED, MAXITER, LINE_SEARCH, NONFINITE, BOUNDARY, NOT_MAXIMUM, BAD_DATA = range(7)

#: human-readable reason for every non-zero status
MESSAGES = {
    CONVERGED: "",
    MAXITER: "iteration cap reached before convergence",
    LINE_SEARCH: "step-halving could not increase the log-likelihood",
    NONFINITE: "non-finite log-likelihood or derivatives",
    BOUNDARY: "estimate ran to the boundary of the parameter space",
    NOT_MAXIMUM: "stationary point is not a maximum (Hessian not negative definite)",
    BAD_DATA: "data outside the support of the family",
}

#: objective(z (m, k), rows (m,)) -> value (m,), gradient (m, k), Hessian (m, k, k)
Objective = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


@dataclass
class NewtonResult:
    """Result of :func:`newton_maximise`.

    Attributes
    ----------
    z : (R, k) final iterates; value : (R,) objective there;
    status : (R,) int, one of the codes above (0 = converged);
    converged : (R,) bool, ``status == CONVERGED``; n_iter : (R,) iterations used.
    """

    z: np.ndarray
    value: np.ndarray
    status: np.ndarray
    n_iter: np.ndarray

    @property
    def converged(self) -> np.ndarray:
        """(R,) bool, True where the status is CONVERGED."""
        return self.status == CONVERGED

    def reasons(self) -> np.ndarray:
        """(R,) object array of reason strings ('' where converged)."""
        table = np.array([MESSAGES[k] for k in range(len(MESSAGES))], dtype=object)
        return table[self.status]


def ascent_direction(g: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Newton step where H is negative definite, else the modified step V |Λ|⁻¹ Vᵀ g.

    Parameters
    ----------
    g : (m, k) gradients; h : (m, k, k) Hessians.

    Returns
    -------
    d : (m, k) ascent direction (gᵀd > 0 unless g = 0): −H⁻¹g where −H is positive
        definite (checked by Sylvester's criterion), otherwise with −H = V Λ Vᵀ
        replaced by V |Λ| Vᵀ;
    negdef : (m,) bool, True where H is negative definite.
    """
    a = -h
    k = g.shape[1]
    if k > 3:
        return _modified(g, a)
    minors, adj = minors_adjugate(a)
    negdef = np.all(minors > 0, axis=0)
    with np.errstate(all="ignore"):
        d = np.einsum("mij,mj->mi", adj, g) / minors[-1][:, None]
    bad = ~negdef
    if bad.any():
        d[bad] = _modified(g[bad], a[bad])[0]
    return d, negdef


def minors_adjugate(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Leading principal minors (k, m) and adjugate (m, k, k) of k×k matrices, k ≤ 3,
    in closed form (a batched LAPACK call costs more than the arithmetic here)."""
    k = a.shape[1]
    if k == 1:
        return a[None, :, 0, 0], np.ones_like(a)
    if k == 2:
        det = a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]
        adj = np.empty_like(a)
        adj[:, 0, 0], adj[:, 1, 1] = a[:, 1, 1], a[:, 0, 0]
        adj[:, 0, 1], adj[:, 1, 0] = -a[:, 0, 1], -a[:, 1, 0]
        return np.stack([a[:, 0, 0], det]), adj
    adj = np.empty_like(a)
    for i in range(3):  # cofactor C_ij, adj = Cᵀ
        i1, i2 = (i + 1) % 3, (i + 2) % 3
        for j in range(3):
            j1, j2 = (j + 1) % 3, (j + 2) % 3
            adj[:, j, i] = a[:, i1, j1] * a[:, i2, j2] - a[:, i1, j2] * a[:, i2, j1]
    det = np.einsum("mj,mj->m", a[:, 0, :], adj[:, :, 0])
    m2 = a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]
    return np.stack([a[:, 0, 0], m2, det]), adj


def _modified(g: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """d = V |Λ|⁻¹ Vᵀ g for a = V Λ Vᵀ (eigenvalues floored at 1e-10·max|Λ|)."""
    a = np.where(np.isfinite(a), a, 0.0)
    w, v = np.linalg.eigh(a)
    absw = np.abs(w)
    floor = 1e-10 * absw.max(axis=1, keepdims=True) + 1e-300
    coef = np.einsum("mji,mj->mi", v, g) / np.maximum(absw, floor)
    return np.einsum("mij,mj->mi", v, coef), np.all(w > 0, axis=1)


def _finite(f: np.ndarray, g: np.ndarray, h: np.ndarray) -> np.ndarray:
    return np.isfinite(f) & np.all(np.isfinite(g), axis=1) & np.all(np.isfinite(h), axis=(1, 2))


def newton_maximise(
    objective: Objective,
    z0: np.ndarray,
    *,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    maxiter: int = 100,
    xtol: float = 1e-10,
    ftol: float = 1e-14,
    max_halving: int = 40,
    max_step: float = 4.0,
) -> NewtonResult:
    """Maximise R objectives of k variables at once by safeguarded Newton iterations.

    Parameters
    ----------
    objective : callable ``(z (m, k), rows (m,)) -> (f (m,), g (m, k), H (m, k, k))``
        Value, gradient and Hessian for the problems ``rows`` (indices into 0..R−1)
        at ``z``; called only on rows still iterating.
    z0 : (R, k) starting values (unconstrained scale).
    lower, upper : (k,) optional limits; a row whose iterate leaves them stops with
        status ``BOUNDARY`` (the caller decides what the boundary means).
    maxiter : iteration cap per row.
    xtol : converged when every |Newton step| ≤ xtol·(1 + |z|) ...
    ftol : ... or the Newton decrement gᵀd/2 ≤ ftol·(1 + |f|) (Boyd & Vandenberghe
        2004, §9.5.1), provided H is negative definite there; the final Newton step
        is then applied.
    max_halving : step-halvings per iteration before status ``LINE_SEARCH``.
    max_step : largest |step| in any coordinate (the direction is shortened to it).

    Returns
    -------
    NewtonResult
    """
    z = np.array(z0, dtype=float, copy=True)
    r, k = z.shape
    lower = np.full(k, -np.inf) if lower is None else np.asarray(lower, dtype=float)
    upper = np.full(k, np.inf) if upper is None else np.asarray(upper, dtype=float)
    status = np.full(r, MAXITER)
    n_iter = np.zeros(r, dtype=int)
    value = np.full(r, np.nan)
    act = np.arange(r)
    with np.errstate(all="ignore"):
        f, g, h = objective(z, act)
        good = _finite(f, g, h)
        status[~good] = NONFINITE
        value[:] = f
        act, f, g, h = act[good], f[good], g[good], h[good]
        for _ in range(maxiter):
            if act.size == 0:
                break
            n_iter[act] += 1
            zc = z[act]
            d, negdef = ascent_direction(g, h)
            small = np.all(np.abs(d) <= xtol * (1 + np.abs(zc)), axis=1)
            small |= np.einsum("mk,mk->m", g, d) <= 2 * ftol * (1 + np.abs(f))
            stop = small & negdef
            z[act[stop]] = zc[stop] + d[stop]
            status[act[stop]] = CONVERGED
            status[act[small & ~negdef]] = NOT_MAXIMUM
            keep = ~small
            act, zc, d, f, g, h = act[keep], zc[keep], d[keep], f[keep], g[keep], h[keep]
            if act.size == 0:
                break
            d *= np.minimum(1.0, max_step / np.abs(d).max(axis=1))[:, None]
            zn, fn, gn, hn, ok = _halve(objective, act, zc, d, f, max_halving)
            status[act[~ok]] = LINE_SEARCH
            z[act[ok]] = zn[ok]
            value[act[ok]] = fn[ok]
            out = ok & np.any((zn < lower) | (zn > upper), axis=1)
            status[act[out]] = BOUNDARY
            keep = ok & ~out
            act, f, g, h = act[keep], fn[keep], gn[keep], hn[keep]
    return NewtonResult(z, value, status, n_iter)


def _halve(
    objective: Objective,
    rows: np.ndarray,
    z: np.ndarray,
    d: np.ndarray,
    f: np.ndarray,
    max_halving: int,
) -> tuple[np.ndarray, ...]:
    """Try z + t·d for t = 1, ½, ¼, … per row until f does not decrease.

    Returns the new (z, f, g, H) for every row and a mask of rows that succeeded.
    A decrease at the level of rounding (8 ε |f|) is accepted.
    """
    m, k = z.shape
    zn, fn = z.copy(), f.copy()
    gn, hn = np.zeros((m, k)), np.zeros((m, k, k))
    ok = np.zeros(m, dtype=bool)
    pend = np.arange(m)
    t = 1.0
    for _ in range(max_halving + 1):
        zt = z[pend] + t * d[pend]
        ft, gt, ht = objective(zt, rows[pend])
        good = _finite(ft, gt, ht) & (ft >= f[pend] - 8 * np.finfo(float).eps * np.abs(f[pend]))
        idx = pend[good]
        zn[idx], fn[idx], gn[idx], hn[idx], ok[idx] = zt[good], ft[good], gt[good], ht[good], True
        pend = pend[~good]
        if pend.size == 0:
            break
        t *= 0.5
    return zn, fn, gn, hn, ok
