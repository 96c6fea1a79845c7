"""Standard errors from the information, batched over replicates.

Expected (n I(θ̂)), observed (−H(θ̂)) and sandwich (H⁻¹ B H⁻¹) standard errors, and
the rule for estimates of infinite information — on the edge of the parameter space
(p̂ = 0, λ̂ = 0) or where n I(θ̂) diverges — which get SE 0 rather than NaN
(:func:`pinned_se`). Shapes: ``theta`` (R, p), ``x`` (R, n), results (R, k) for the
k free parameters.
"""

from __future__ import annotations

import numpy as np

from mlesim.families import Family
from mlesim.optimize import minors_adjugate


def at_boundary(family: Family, theta: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Which free estimates lie on the edge of their parameter space, shape (R, k).

    ``theta`` (R, p); ``free`` (p,) bool. The edge is p̂ ∈ {0, 1} for a probability and
    0 or +inf for a positive parameter (p̂ = 0 when no success was seen, λ̂ = 0 when all
    counts are zero, ν̂ = ∞ at the normal limit of a t): the maximum sits on the
    closure of the open parameter space, the
    score need not vanish there, and the curvature of the log-likelihood tends to
    infinity as the estimate approaches the edge (−ℓ″(p̂) = n / (p̂(1 − p̂))).
    """
    cols = []
    for j, name in enumerate(family.params):
        if not free[j]:
            continue
        v, kind = theta[:, j], family.domains[name].kind
        if kind == "unit":
            cols.append((v <= 0) | (v >= 1))
        elif kind == "positive":
            cols.append((v <= 0) | np.isposinf(v))
        else:
            cols.append(np.zeros(v.shape, dtype=bool))
    return np.column_stack(cols) if cols else np.zeros((theta.shape[0], 0), dtype=bool)


#: where an infinite estimate is held while the others' information is computed
#: (e^30 ≈ 1e13: the model there differs from its limit by ~1e-13)
FAR = float(np.exp(30.0))


def stand_in(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``theta`` (R, p) with +inf entries replaced by :data:`FAR`, and the mask (R, p) of
    those entries: the information of the other parameters at an estimate on the edge
    ν̂ = ∞ is their limit there (the normal's for a t's μ, σ)."""
    infinite = np.isposinf(theta)
    return np.where(infinite, FAR, theta), infinite


def pinned_se(info: np.ndarray, edge: np.ndarray, meat: np.ndarray | None = None) -> np.ndarray:
    """Standard errors sqrt(diag(A⁻¹)) — or of the sandwich A⁻¹ B A⁻¹ — with the
    parameters of infinite information pinned.

    Parameters
    ----------
    info : (R, k, k) information A (n I(θ̂), or −H(θ̂) for the observed one).
    edge : (R, k) bool, estimates on the edge of the parameter space (:func:`at_boundary`).
    meat : (R, k, k) or None, B = Σ_i s_i s_iᵀ for the sandwich.

    Returns
    -------
    (R, k). A parameter whose information is +∞ (A_jj = ∞) or whose estimate is on the
    edge is known exactly in the limit: its SE is 0, and the others are computed from
    the block of A (and B) without it — the limit of A⁻¹ as A_jj → ∞ with the other
    entries bounded. So a boundary estimate keeps an SE (0, the degenerate Wald
    interval) instead of NaN, and never leaves the coverage count unnoticed. NaN where
    the remaining block is not finite or not positive definite.
    """
    a = np.array(info, dtype=float)
    with np.errstate(invalid="ignore"):
        pin = edge | (np.diagonal(a, axis1=1, axis2=2) == np.inf)
    pinned = bool(pin.any())
    if pinned:  # (the usual chunk has none: no indexing then)
        rows, cols = np.nonzero(pin)
        a[rows, cols, :] = 0.0
        a[rows, :, cols] = 0.0
        a[rows, cols, cols] = 1.0
    with np.errstate(all="ignore"):
        if meat is None:
            var = 1.0 / a[:, :, 0] if a.shape[-1] == 1 else None
            var = np.diagonal(inverse(a), axis1=1, axis2=2) if var is None else var
        else:
            b = np.array(meat, dtype=float)
            if pinned:
                b[rows, cols, :] = 0.0
                b[rows, :, cols] = 0.0
            a_inv = inverse(a)
            var = np.diagonal(a_inv @ b @ a_inv, axis1=1, axis2=2)
        se = np.sqrt(var)
    if pinned:
        se[pin] = 0.0
    return se


def information_se(family: Family, theta: np.ndarray, n: int, free: np.ndarray) -> np.ndarray:
    """Standard errors from the expected information, sqrt(diag((n I(θ̂))⁻¹)).

    Parameters
    ----------
    theta : (R, p) estimates; ``free`` : (p,) bool mask of estimated parameters.

    Returns
    -------
    (R, k) with k = free.sum(): inverse of the free block of n·I(θ̂) (Cramér–Rao;
    Casella & Berger 2002, Thm 10.1.12). Infinite information or an estimate on the
    edge of the parameter space gives SE 0 (:func:`pinned_se`), NaN information NaN.
    """
    far, infinite = stand_in(theta)
    with np.errstate(all="ignore"):
        info = n * free_block(family.fisher(far), free)
    return _infinite_se(pinned_se(info, at_boundary(family, theta, free)), infinite[:, free])


def free_block(m: np.ndarray, free: np.ndarray) -> np.ndarray:
    """The (R, k, k) block of the free parameters of ``m`` (R, p, p) (``m`` itself when
    every parameter is free)."""
    return m if free.all() else m[:, free][:, :, free]


def inverse(a: np.ndarray) -> np.ndarray:
    """Batched inverse of (R, k, k) matrices; rows with non-finite entries → NaN.

    For k ≤ 3 the adjugate formula (no per-matrix LAPACK call); rows whose determinant
    is tiny relative to the product of the diagonal, and every row for k > 3, use
    ``np.linalg.pinv``.
    """
    ok = np.all(np.isfinite(a), axis=(1, 2))
    out = np.full(a.shape, np.nan)
    rest = ok.copy()
    if 1 < a.shape[-1] <= 3 and ok.any():
        every = bool(ok.all())
        sub = a if every else a[ok]  # (the usual case: no indexing by rows)
        minors, adj = minors_adjugate(sub)
        det = minors[-1]
        scale = np.abs(np.prod(np.diagonal(sub, axis1=1, axis2=2), axis=1))
        good = np.abs(det) > 1e-12 * scale
        with np.errstate(all="ignore"):
            if every and good.all():
                return adj / det[:, None, None]
            idx = np.flatnonzero(ok)
            out[idx[good]] = adj[good] / det[good, None, None]
        rest[idx[good]] = False
    if rest.any():
        out[rest] = np.linalg.pinv(a[rest])
    return out


def observed_se(family: Family, x: np.ndarray, theta: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Standard errors from the observed information, sqrt(diag((−H(θ̂))⁻¹)).

    Parameters
    ----------
    x : (R, n) data; theta : (R, p) estimates; free : (p,) bool mask of estimated
    parameters. H is the Hessian of the log-likelihood Σ_i log f(x_i; θ) in the
    family's own parameters (analytic for the named families, numerical otherwise;
    Efron & Hinkley 1978, Biometrika 65:457).

    Returns
    -------
    (R, k), k = free.sum(); 0 for an estimate on the edge of the parameter space
    (:func:`pinned_se`); NaN where −H is not finite or not positive definite.
    """
    far, infinite = stand_in(theta)
    with np.errstate(all="ignore"):
        h = free_block(family.hessian(x, far), free)
    return _infinite_se(pinned_se(-h, at_boundary(family, theta, free)), infinite[:, free])


def sandwich_se(family: Family, x: np.ndarray, theta: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Robust (sandwich) standard errors, sqrt(diag(H⁻¹ B H⁻¹)) with B = Σ_i s_i s_iᵀ.

    s_i is the score of observation i at θ̂ and H the Hessian of the log-likelihood
    (Huber 1967; White 1982, Econometrica 50:1) — valid when the model is
    wrong, the estimand then being the pseudo-true value. No small-sample correction
    (statsmodels' ``cov_type="HC0"``). Shapes as :func:`observed_se`; an estimate on
    the edge of the parameter space gets SE 0 (:func:`pinned_se`; e.g. the Poisson's
    sandwich variance Σ(x − x̄)²/n² tends to 0 with λ̂).
    """
    far, infinite = stand_in(theta)
    with np.errstate(all="ignore"):
        h = free_block(family.hessian(x, far), free)
        s = family.score(x, far)[:, :, free]
        b = np.einsum("rni,rnj->rij", s, s)
    se = pinned_se(-h, at_boundary(family, theta, free), meat=b)
    return _infinite_se(se, infinite[:, free])


def _infinite_se(se: np.ndarray, infinite: np.ndarray) -> np.ndarray:
    """SE inf for an infinite estimate (R, k): it has no finite precision, and its Wald
    interval covers no finite true value."""
    se[infinite] = np.inf
    return se
