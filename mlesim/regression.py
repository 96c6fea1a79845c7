"""Regression estimators, batched over replicates.

Every function takes a chunk of R independent data sets at once, replicate axis first:
a design ``X`` of shape (R, n, d) whose column 0 is the intercept (``X[..., 0] == 1``;
the penalties of :func:`ridge` and :func:`lasso` never touch it, and those two check
it) and responses ``y`` of shape (R, n) — real for the linear models, 0/1 for the binary
ones, the class labels 0, …, K − 1 (as floats) for :func:`softmax`. Nothing here loops
over replicates in Python: the loops are over iterations (all rows still iterating, as
one array), coordinates (:func:`lasso`) or observations (the choice of a LAD basis).
A row that has converged stops iterating, so each row is the result of the same
iteration run on it alone: a row's result does not depend on the rest of the chunk.

Results
-------
The estimators return NamedTuples whose first five fields are always

- ``beta`` : (R, d) coefficients ((R, K − 1, d) for :func:`softmax`), the last iterate
  also where a row failed;
- ``converged`` : (R,) bool;
- ``n_iter`` : (R,) int, iterations used (0 for the closed forms; sweeps for
  :func:`lasso`; IRLS steps plus simplex pivots for :func:`lad`);
- ``reason`` : (R,) object array of str, ``''`` where converged, else why not —
  ``"singular design (rank < d)"``, ``"non-finite data"``,
  ``"separation: …"`` (the MLE does not exist), ``"no convergence in … iterations"``, …;
- ``info`` : (R, q, q) the information matrix at the estimate (which one is stated by
  each function; the negative Hessian of the maximised log-likelihood, or the Hessian
  of the minimised objective), or ``None`` where it does not exist.

Bad rows never raise and never warn: they keep their last iterate and are flagged.
Only malformed input (wrong shapes, labels outside their range, bad options) raises
``ValueError``.

Convergence
-----------
The iterative fits stop a row when its step is small,
max_j |Δβ_j| ≤ tol · (1 + max_j |β_j|) (for :func:`t_regression` the parameter is
(β, log s)); a Newton step that cannot decrease the objective by more than its rounding
level also counts as converged. :func:`lasso` stops by the change of the fit and the
duality gap, :func:`lad` by an optimality certificate (an exact subgradient condition).

References
----------
Albert, A. & Anderson, J. A. (1984). On the existence of maximum likelihood estimates in
logistic regression models. *Biometrika* 71, 1–10.
Barrodale, I. & Roberts, F. D. K. (1973). An improved algorithm for discrete l1 linear
approximation. *SIAM J. Numer. Anal.* 10, 839–848.
Firth, D. (1993). Bias reduction of maximum likelihood estimates. *Biometrika* 80, 27–38.
Friedman, J., Hastie, T. & Tibshirani, R. (2010). Regularization paths for generalized
linear models via coordinate descent. *J. Statist. Software* 33(1).
Heinze, G. & Schemper, M. (2002). A solution to the problem of separation in logistic
regression. *Statist. Med.* 21, 2409–2419.
Hoerl, A. E. & Kennard, R. W. (1970). Ridge regression: biased estimation for
nonorthogonal problems. *Technometrics* 12, 55–67.
Huber, P. J. (1964). Robust estimation of a location parameter. *Ann. Math. Statist.*
35, 73–101.
Huber, P. J. (1967). The behavior of maximum likelihood estimates under nonstandard
conditions. *Proc. Fifth Berkeley Symp.* 1, 221–233.
Huber, P. J. (1981). *Robust Statistics*. Wiley (§7.8 the IRLS algorithm).
Koenker, R. (2005). *Quantile Regression*. Cambridge University Press (§6.2 the simplex
method, §2.2 the optimality conditions).
Lange, K. L., Little, R. J. A. & Taylor, J. M. G. (1989). Robust statistical modeling
using the t distribution. *J. Amer. Statist. Assoc.* 84, 881–896.
Lin, T.-Y., Goyal, P., Girshick, R., He, K. & Dollár, P. (2017). Focal loss for dense
object detection. *ICCV*, 2980–2988.
Nocedal, J. & Wright, S. J. (2006). *Numerical Optimization*, 2nd ed., Springer (§3.4
Hessian modification).
Santner, T. J. & Duffy, D. E. (1986). A note on A. Albert and J. A. Anderson's
conditions for the existence of maximum likelihood estimates in logistic regression
models. *Biometrika* 73, 755–758.
Schlossmacher, E. J. (1973). An iterative technique for absolute deviations curve
fitting. *J. Amer. Statist. Assoc.* 68, 857–859.
Tibshirani, R. (1996). Regression shrinkage and selection via the lasso. *J. R. Statist.
Soc. B* 58, 267–288.
White, H. (1980). A heteroskedasticity-consistent covariance matrix estimator and a
direct test for heteroskedasticity. *Econometrica* 48, 817–838.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple, ParamSpec, TypeVar

import numpy as np
from scipy.special import expit, gammaln, log_expit, logsumexp

_EPS = float(np.finfo(float).eps)
#: a step direction δ "separates" when every margin ỹ_i x_i'δ ≥ −SEPARATION_TOL · max|x_i'δ|
SEPARATION_TOL = 1e-8
#: the number of times a Newton step is halved before giving up
MAX_HALVING = 60
#: the IRLS step of :func:`huber_regression` is tried at up to 2**this times its length
HUBER_EXTRAPOLATION = 10

SINGULAR_DESIGN = "singular design (rank < d)"
NONFINITE_DATA = "non-finite data"
SEPARATION = (
    "separation: the Newton direction separates the classes, so the MLE does not exist "
    "(Albert & Anderson 1984)"
)

#: f(rows (m,), beta (m, q), derivs) → value (m,), gradient (m, q), Hessian (m, q, q)
#: of an objective to minimise (gradient and Hessian None when ``derivs`` is False)
Objective = Callable[
    [np.ndarray, np.ndarray, bool], tuple[np.ndarray, np.ndarray | None, np.ndarray | None]
]
#: witness(rows (m,), direction (m, q)) → (m,) bool: the direction proves separation
Witness = Callable[[np.ndarray, np.ndarray], np.ndarray]


_P = ParamSpec("_P")
_T = TypeVar("_T")


def _silent(fn: Callable[_P, _T]) -> Callable[_P, _T]:
    """Run ``fn`` under ``np.errstate(all="ignore")``: overflow, 0/0 and the like in one
    replicate show up in its ``converged`` / ``reason`` (or as inf/NaN in a derived
    quantity), never as a RuntimeWarning."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)

    return wrapper


# ---------------------------------------------------------------------------- results
class Fit(NamedTuple):
    """Result of the iterative estimators (see the module docstring).

    beta : (R, d) or (R, K − 1, d); converged : (R,) bool; n_iter : (R,) int;
    reason : (R,) object array of str (``''`` when converged); info : (R, q, q) or None.
    """

    beta: np.ndarray
    converged: np.ndarray
    n_iter: np.ndarray
    reason: np.ndarray
    info: np.ndarray | None


class LeastSquaresFit(NamedTuple):
    """Result of :func:`ols` and :func:`ridge`: the fields of :class:`Fit` and
    ``rss`` (R,), the residual sum of squares Σ_i (y_i − x_i'β)²."""

    beta: np.ndarray
    converged: np.ndarray
    n_iter: np.ndarray
    reason: np.ndarray
    info: np.ndarray | None
    rss: np.ndarray


class LADFit(NamedTuple):
    """Result of :func:`lad`: the fields of :class:`Fit` and ``b`` (R,), the mean
    absolute residual, the MLE of the Laplace scale."""

    beta: np.ndarray
    converged: np.ndarray
    n_iter: np.ndarray
    reason: np.ndarray
    info: np.ndarray | None
    b: np.ndarray


class TFit(NamedTuple):
    """Result of :func:`t_regression`: the fields of :class:`Fit` and ``scale`` (R,),
    the MLE of s; ``info`` is that of (β, log s), shape (R, d + 1, d + 1)."""

    beta: np.ndarray
    converged: np.ndarray
    n_iter: np.ndarray
    reason: np.ndarray
    info: np.ndarray | None
    scale: np.ndarray


# ---------------------------------------------------------------------- linear algebra
#: largest d for which :func:`gram` sums the d(d + 1)/2 products column by column (numpy's
#: stacked matmul of (n, d) blocks is several times slower for small d)
GRAM_BY_COLUMNS = 8


def gram(x: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """X' diag(w) X for each replicate: x (R, n, d), w (R, n) or None → (R, d, d)."""
    d = x.shape[-1]
    if d > GRAM_BY_COLUMNS:
        xw = x if w is None else x * w[..., None]
        return np.matmul(np.swapaxes(xw, 1, 2), x)
    out = np.empty(x.shape[:-2] + (d, d))
    cols = [x[..., j] for j in range(d)]
    for i in range(d):
        xi = cols[i] if w is None else cols[i] * w
        for j in range(i, d):
            out[..., i, j] = out[..., j, i] = np.einsum("...n,...n->...", xi, cols[j])
    return out


def _take(a: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``a[rows]`` without a copy when ``rows`` (sorted, distinct) is every row."""
    return a if rows.size == a.shape[0] else a[rows]


def _xtv(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """X'v for each replicate: x (R, n, d), v (R, n) → (R, d)."""
    return np.matmul(v[:, None, :], x)[:, 0, :]


def _lin(x: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Xβ for each replicate: x (R, n, d), beta (R, d) → (R, n)."""
    return np.matmul(x, beta[..., None])[..., 0]


def solve_stack(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solve a_r x_r = b_r for a stack, row by row, without raising for singular rows.

    Parameters
    ----------
    a : (R, q, q) matrices; b : (R, q) vectors or (R, q, m) matrices.

    Returns
    -------
    x : same shape as ``b``; 0 in the rows that are not ``ok``.
    ok : (R,) bool — ``a_r`` and ``b_r`` finite and σ_min(a_r) > q ε σ_max(a_r)
        (numerically non-singular; ε the machine epsilon).
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    vector = b.ndim == a.ndim - 1
    bb = b[..., None] if vector else b
    q = a.shape[-1]
    if q == 0:
        return np.zeros_like(b), np.ones(a.shape[0], dtype=bool)
    eye = np.eye(q)
    finite = np.isfinite(a).all(axis=(-2, -1)) & np.isfinite(bb).all(axis=(-2, -1))
    a_safe = np.where(finite[:, None, None], a, eye)
    sv = np.linalg.svd(a_safe, compute_uv=False)
    ok = finite & (sv[:, -1] > sv[:, 0] * q * _EPS)
    a_safe = np.where(ok[:, None, None], a_safe, eye)
    x = np.linalg.solve(a_safe, np.where(ok[:, None, None], bb, 0.0))
    return (x[..., 0] if vector else x), ok


@_silent
def sandwich(bread: np.ndarray, meat: np.ndarray) -> np.ndarray:
    """Sandwich covariance V = A⁻¹ B A⁻¹ for stacks (Huber 1967; White 1980).

    Parameters
    ----------
    bread : (R, q, q) A, e.g. the ``info`` of a fit (symmetry is not assumed).
    meat : (R, q, q) B, e.g. Σ_i s_i s_i' of the per-observation scores s_i.

    Returns
    -------
    (R, q, q) V = A⁻¹ B A⁻ᵀ (= A⁻¹ B A⁻¹ for symmetric A); NaN in rows where A is
    singular or non-finite (:func:`solve_stack`).
    """
    left, ok1 = solve_stack(bread, meat)  # A⁻¹ B
    right, ok2 = solve_stack(bread, np.swapaxes(left, 1, 2))  # A⁻¹ (A⁻¹ B)ᵀ = (A⁻¹ B A⁻ᵀ)ᵀ
    v = np.swapaxes(right, 1, 2)
    v[~(ok1 & ok2)] = np.nan
    return v


def _column_scale(x: np.ndarray) -> np.ndarray:
    """(R, d) the Euclidean norms of the columns of each X_r (1 for a zero column)."""
    norm = np.sqrt((x * x).sum(axis=1))
    return np.where(norm > 0, norm, 1.0)


def _rank_ok(x: np.ndarray) -> np.ndarray:
    """(R,) bool: X_r (n, d) has full column rank d, by numpy's ``matrix_rank`` rule
    σ_min > σ_max · max(n, d) · ε applied to X_r with its columns scaled to unit length
    (so that the verdict does not depend on the units of the covariates)."""
    r_rows, n, d = x.shape
    if d == 0:
        return np.ones(r_rows, dtype=bool)
    if n < d:
        return np.zeros(r_rows, dtype=bool)
    sv = np.linalg.svd(x / _column_scale(x)[:, None, :], compute_uv=False)
    return sv[:, -1] > sv[:, 0] * max(n, d) * _EPS


def _lstsq(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Minimum-norm least squares β = X⁺y for each replicate by the SVD of X with unit
    columns (the pseudo-inverse with the rank cut-off of :func:`_rank_ok`), scaled
    back: x (R, n, d), y (R, n) → (R, d)."""
    n, d = x.shape[1:]
    scale = _column_scale(x)
    u, sv, vt = np.linalg.svd(x / scale[:, None, :], full_matrices=False)
    keep = sv > sv[:, :1] * max(n, d) * _EPS
    inv = np.where(keep, 1.0 / np.where(keep, sv, 1.0), 0.0)
    coef = inv * np.matmul(y[:, None, :], u)[:, 0, :]
    return np.matmul(np.swapaxes(vt, 1, 2), coef[..., None])[..., 0] / scale


# ------------------------------------------------------------------------ input checks
def _prepare(
    x: np.ndarray, y: np.ndarray, intercept: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Check shapes; return float copies of x (R, n, d) and y (R, n) with non-finite
    rows zeroed, the reason array (R,) (``"non-finite data"`` there, else ``''``) and
    the mask of usable rows (R,). With ``intercept`` require ``X[..., 0] == 1`` in the
    finite rows."""
    x = np.array(x, dtype=float)
    y = np.array(y, dtype=float)
    if x.ndim != 3 or y.ndim != 2 or x.shape[:2] != y.shape:
        raise ValueError(
            f"need X of shape (R, n, d) and y of shape (R, n), got {x.shape}, {y.shape}"
        )
    if x.shape[2] < 1:
        raise ValueError("X needs at least the intercept column")
    finite = np.isfinite(x).all(axis=(1, 2)) & np.isfinite(y).all(axis=1)
    x[~finite] = 0.0
    y[~finite] = 0.0
    if intercept:
        x[~finite, :, 0] = 1.0
        if not np.all(x[..., 0] == 1.0):
            raise ValueError("X[..., 0] must be the intercept column of ones")
    reason = np.full(x.shape[0], "", dtype=object)
    reason[~finite] = NONFINITE_DATA
    return x, y, reason, finite


def _check_binary(y: np.ndarray) -> None:
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("y must be 0/1")


def _small_step(step: np.ndarray, beta: np.ndarray, tol: float) -> np.ndarray:
    """(R,) bool: max|step| ≤ tol · (1 + max|β|), row by row."""
    if step.shape[1] == 0:
        return np.ones(step.shape[0], dtype=bool)
    return np.abs(step).max(axis=1) <= tol * (1.0 + np.abs(beta).max(axis=1))


def _slack(f: np.ndarray) -> np.ndarray:
    """The rounding level of an objective value: 1e-12 · (1 + |f|)."""
    return 1e-12 * (1.0 + np.abs(f))


# -------------------------------------------------------------------- least squares
@_silent
def ols(x: np.ndarray, y: np.ndarray) -> LeastSquaresFit:
    """Ordinary least squares, β = argmin ||y − Xβ||², for each replicate.

    Parameters
    ----------
    x : (R, n, d) designs; y : (R, n) responses.

    Returns
    -------
    LeastSquaresFit
        beta (R, d) = X⁺y by the SVD of X with unit-length columns (where X is rank
        deficient, the solution of minimum norm in those units, with converged False and
        reason ``"singular design (rank < d)"``);
        n_iter 0; info (R, d, d) = X'X, the negative Hessian of −½||y − Xβ||² (the
        Gaussian log-likelihood with σ² = 1; divide by σ², e.g. rss / n or
        rss / (n − d), for the information about β); rss (R,).
    """
    x, y, reason, finite = _prepare(x, y)
    beta = _lstsq(x, y)
    full = _rank_ok(x)
    reason[finite & ~full] = SINGULAR_DESIGN
    rss = ((y - _lin(x, beta)) ** 2).sum(axis=1)
    info = gram(x)
    return LeastSquaresFit(beta, finite & full, np.zeros(x.shape[0], dtype=int), reason, info, rss)


@_silent
def ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> LeastSquaresFit:
    """Ridge regression (Hoerl & Kennard 1970) with an unpenalised intercept.

    β minimises ||y − Xβ||² + α Σ_{j≥1} β_j², the objective of scikit-learn's
    ``Ridge(alpha, fit_intercept=True)``. Solved in closed form on the centred data
    (the intercept's normal equation is ȳ = x̄'β): with X̃, ỹ the non-intercept columns
    and the response centred per replicate,

        (X̃'X̃ + α I) β₁: = X̃'ỹ,    β₀ = ȳ − x̄₁:'β₁:,

    which equals the solution of (X'X + α D) β = X'y, D = diag(0, 1, …, 1).

    Parameters
    ----------
    x : (R, n, d) designs with ``X[..., 0] == 1``; y : (R, n); alpha : α ≥ 0.

    Returns
    -------
    LeastSquaresFit
        beta (R, d); n_iter 0; info (R, d, d) = X'X + α D, the Hessian of
        ½(||y − Xβ||² + α Σ_{j≥1} β_j²); rss (R,) = ||y − Xβ̂||². Where the system is
        singular (only possible with α = 0) beta is 0 and reason
        ``"singular design (rank < d)"``.
    """
    if not alpha >= 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    x, y, reason, finite = _prepare(x, y, intercept=True)
    d = x.shape[2]
    xm = x[:, :, 1:].mean(axis=1)
    ym = y.mean(axis=1)
    xc = x[:, :, 1:] - xm[:, None, :]
    yc = y - ym[:, None]
    slope, ok = solve_stack(gram(xc) + alpha * np.eye(d - 1), _xtv(xc, yc))
    beta = np.concatenate([(ym - (xm * slope).sum(axis=1))[:, None], slope], axis=1)
    beta[~ok] = 0.0
    reason[finite & ~ok] = SINGULAR_DESIGN
    penalty = np.diag(np.r_[0.0, np.ones(d - 1)])
    info = gram(x) + alpha * penalty
    rss = ((y - _lin(x, beta)) ** 2).sum(axis=1)
    return LeastSquaresFit(beta, finite & ok, np.zeros(x.shape[0], dtype=int), reason, info, rss)


@_silent
def lasso(
    x: np.ndarray, y: np.ndarray, alpha: float, max_iter: int = 10000, tol: float = 1e-10
) -> Fit:
    """The lasso (Tibshirani 1996) with an unpenalised intercept, by batched cyclic
    coordinate descent (Friedman, Hastie & Tibshirani 2010).

    β minimises (1/(2n)) ||y − Xβ||² + α Σ_{j≥1} |β_j|, the objective of scikit-learn's
    ``Lasso(alpha, fit_intercept=True)``. As there, X's non-intercept columns and y are
    centred per replicate (X̃, ỹ), the slopes minimise ½||ỹ − X̃b||² + nα||b||₁ and
    β₀ = ȳ − x̄'b. One sweep updates each coordinate j in turn, for all replicates at
    once, by soft-thresholding on the Gram matrix G = X̃'X̃, c = X̃'ỹ:

        ρ_j = c_j − (G b)_j + G_jj b_j,    b_j ← sign(ρ_j) max(|ρ_j| − nα, 0) / G_jj

    (b_j = 0 exactly where |ρ_j| ≤ nα, and for a constant column, G_jj = 0).

    A row stops after the sweep in which (a) max_j |Δb_j| √G_jj ≤ tol · ||ỹ|| (the fit
    moved by at most tol relative to the data) and (b) the duality gap of
    scikit-learn's ``enet_coordinate_descent`` is ≤ tol · ||ỹ||² (so the n-scaled
    objective is within tol · ||ỹ||² of its minimum).

    Parameters
    ----------
    x : (R, n, d) designs with ``X[..., 0] == 1``; y : (R, n); alpha : α ≥ 0;
    max_iter : at most this many sweeps; tol : as above.

    Returns
    -------
    Fit
        beta (R, d), exact zeros 0.0; n_iter the sweeps; info None (the objective is not
        twice differentiable).
    """
    if not alpha >= 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    x, y, reason, finite = _prepare(x, y, intercept=True)
    r_rows, n, d = x.shape
    p = d - 1
    xm = x[:, :, 1:].mean(axis=1)
    ym = y.mean(axis=1)
    xc = x[:, :, 1:] - xm[:, None, :]
    yc = y - ym[:, None]
    g_all = gram(xc)
    c_all = _xtv(xc, yc)
    yy_all = (yc * yc).sum(axis=1)
    lam = n * alpha
    b = np.zeros((r_rows, p))
    n_iter = np.zeros(r_rows, dtype=int)
    conv = np.zeros(r_rows, dtype=bool)
    active = finite.copy()
    for _ in range(max_iter):
        rows = np.flatnonzero(active)
        if rows.size == 0:
            break
        g, c, bb = g_all[rows], c_all[rows], b[rows]
        diag = np.diagonal(g, axis1=1, axis2=2)
        q = np.matmul(g, bb[..., None])[..., 0]
        change = np.zeros(rows.size)
        for j in range(p):
            gjj = diag[:, j]
            rho = c[:, j] - q[:, j] + gjj * bb[:, j]
            shrunk = np.sign(rho) * (np.abs(rho) - lam) / np.where(gjj > 0, gjj, 1.0)
            new = np.where((np.abs(rho) <= lam) | (gjj <= 0), 0.0, shrunk)
            delta = new - bb[:, j]
            q += g[:, :, j] * delta[:, None]
            bb[:, j] = new
            change = np.maximum(change, np.abs(delta) * np.sqrt(gjj))
        b[rows] = bb
        n_iter[rows] += 1
        yy = yy_all[rows]
        q = np.matmul(g, bb[..., None])[..., 0]
        done = (change <= tol * np.sqrt(yy)) & (_lasso_gap(bb, q, c, yy, lam) <= tol * yy)
        conv[rows[done]] = True
        active[rows[done]] = False
    reason[active] = f"no convergence in {max_iter} sweeps"
    beta = np.concatenate([(ym - (xm * b).sum(axis=1))[:, None], b], axis=1)
    return Fit(beta, conv, n_iter, reason, None)


def _lasso_gap(
    b: np.ndarray, gb: np.ndarray, c: np.ndarray, yy: np.ndarray, lam: float
) -> np.ndarray:
    """Duality gap of ½||ỹ − X̃b||² + λ||b||₁ from Gram quantities (R,): b, gb = Gb,
    c = X̃'ỹ (R, p), yy = ỹ'ỹ (R,). With the residual a = ỹ − X̃b, the dual point
    κ a, κ = min(1, λ / ||X̃'a||_∞) (scikit-learn's ``enet_coordinate_descent``):

        gap = ½ ||a||² (1 + κ²) + λ ||b||₁ − κ a'ỹ.

    For λ = 0 (least squares) that scaling is undefined; κ = 1 is used, and the "gap"
    ||a||² − a'ỹ = −b'X̃'a is then 0 exactly at the normal equations X̃'a = 0.
    """
    a_norm2 = np.maximum(yy - 2 * (b * c).sum(axis=1) + (b * gb).sum(axis=1), 0.0)
    dual = np.abs(c - gb).max(axis=1) if b.shape[1] else np.zeros(b.shape[0])
    kappa = np.where((dual > lam) & (lam > 0), lam / np.where(dual > lam, dual, 1.0), 1.0)
    ay = yy - (b * c).sum(axis=1)
    return 0.5 * a_norm2 * (1 + kappa**2) + lam * np.abs(b).sum(axis=1) - kappa * ay


# --------------------------------------------------------------------------------- LAD
@_silent
def lad(
    x: np.ndarray,
    y: np.ndarray,
    max_iter: int = 1000,
    tol: float = 1e-9,
    irls_iter: int = 20,
) -> LADFit:
    """Least absolute deviations (median regression): β minimises Σ_i |y_i − x_i'β|,
    the MLE of β under Laplace noise; b = mean|r| is the MLE of the Laplace scale.

    Two batched phases:

    1. IRLS for the L1 problem (Schlossmacher 1973): ``irls_iter`` weighted least
       squares steps from OLS with weights 1 / max(|r_i|, ε_k), the floor ε_k shrinking
       geometrically from 0.1 c to 1e-10 c (c the mean |r| of the OLS fit), which brings
       β next to the optimal vertex.
    2. An exact simplex finish (Barrodale & Roberts 1973; Koenker 2005, §6.2). LAD
       minima lie at vertices β = X_S⁻¹ y_S, S a basis of d observations fitted exactly;
       the first is the d observations of smallest |r| that are linearly independent
       (greedy Gram–Schmidt). A vertex is optimal iff (Koenker 2005, §2.2)

           u = −X_S⁻ᵀ Σ_{i∉S} sign(r_i) x_i   has   max_j |u_j| ≤ 1

       (0 is then a subgradient). Otherwise j = argmax |u_j| leaves the basis: β moves
       along δ = −sign(u_j) X_S⁻¹ e_j, on which the objective Σ|r_i − t x_i'δ| descends
       with slope 1 − |u_j| < 0 at t = 0, to its minimiser, the weighted median of the
       breakpoints r_i / x_i'δ with weights |x_i'δ|; the observation there enters.

    Parameters
    ----------
    x : (R, n, d) designs; y : (R, n).
    max_iter : at most this many simplex pivots.
    tol : a vertex is accepted as optimal when max|u_j| ≤ 1 + tol.
    irls_iter : IRLS steps before the simplex phase.

    Returns
    -------
    LADFit
        beta (R, d); converged True where optimality is certified as above; n_iter IRLS
        steps plus pivots; info (R, d, d) = X'X / b̂², the Fisher information about β of
        the Laplace model at b̂ (the observed information does not exist: the
        log-likelihood is piecewise linear in β; NaN where b̂ = 0); b (R,).
    """
    x, y, reason, finite = _prepare(x, y)
    r_rows, n, d = x.shape
    full = _rank_ok(x)
    reason[finite & ~full] = SINGULAR_DESIGN
    ok = finite & full
    beta = _lstsq(x, y)
    n_iter = np.zeros(r_rows, dtype=int)
    conv = np.zeros(r_rows, dtype=bool)
    rows = np.flatnonzero(ok)
    if rows.size:
        xa, ya = x[rows], y[rows]
        ba = _lad_irls(xa, ya, beta[rows], irls_iter)
        n_iter[rows] += irls_iter
        ba, ca, pivots, why = _lad_simplex(xa, ya, ba, max_iter, tol)
        beta[rows], conv[rows], reason[rows] = ba, ca, why
        n_iter[rows] += pivots
    resid = y - _lin(x, beta)
    b = np.abs(resid).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        info = gram(x) / (b**2)[:, None, None]
    info[b == 0] = np.nan
    return LADFit(beta, conv, n_iter, reason, info, b)


def _lad_irls(x: np.ndarray, y: np.ndarray, beta: np.ndarray, steps: int) -> np.ndarray:
    """``steps`` IRLS steps for Σ|r| from ``beta`` (R, d): weights 1/max(|r|, ε_k),
    ε_k = c · 10^(−1 − 9k/(steps − 1)), c the starting mean |r| (1 where it is 0)."""
    c = np.abs(y - _lin(x, beta)).mean(axis=1)
    c = np.where(c > 0, c, 1.0)
    for k in range(steps):
        eps = c * 10.0 ** (-1.0 - 9.0 * k / max(steps - 1, 1))
        w = 1.0 / np.maximum(np.abs(y - _lin(x, beta)), eps[:, None])
        new, ok = solve_stack(gram(x, w), _xtv(x, w * y))
        beta = np.where(ok[:, None], new, beta)
    return beta


def _lad_basis(x: np.ndarray, resid: np.ndarray) -> np.ndarray:
    """(R, d) int: for each replicate the first d observations, in order of |r|, whose
    rows of X are linearly independent (greedy Gram–Schmidt, a new row accepted when its
    component orthogonal to those taken is > 1e-8 of its norm); −1 where fewer exist."""
    r_rows, n, d = x.shape
    order = np.argsort(np.abs(resid), axis=1, kind="stable")
    basis = np.full((r_rows, d), -1)
    qmat = np.zeros((r_rows, d, d))
    count = np.zeros(r_rows, dtype=int)
    ar = np.arange(r_rows)
    for pos in range(n):
        need = count < d
        if not need.any():
            break
        idx = order[:, pos]
        v = x[ar, idx]
        norm0 = np.linalg.norm(v, axis=1)
        for _ in range(2):  # Gram–Schmidt twice is enough (Kahan–Parlett)
            v = v - np.matmul(np.matmul(qmat, v[..., None])[..., 0][:, None, :], qmat)[:, 0, :]
        nv = np.linalg.norm(v, axis=1)
        take = need & (nv > 1e-8 * norm0)
        rt = ar[take]
        qmat[rt, count[take]] = v[take] / nv[take, None]
        basis[rt, count[take]] = idx[take]
        count[take] += 1
    return basis


def _lad_simplex(
    x: np.ndarray, y: np.ndarray, beta: np.ndarray, max_iter: int, tol: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The simplex phase of :func:`lad` from ``beta`` (R, d). Returns beta (R, d),
    converged (R,), pivots (R,) and reasons (R,)."""
    r_rows, n, d = x.shape
    ar_all = np.arange(r_rows)
    basis = _lad_basis(x, y - _lin(x, beta))
    reason = np.full(r_rows, "", dtype=object)
    conv = np.zeros(r_rows, dtype=bool)
    pivots = np.zeros(r_rows, dtype=int)
    vert, ok = solve_stack(x[ar_all[:, None], basis], y[ar_all[:, None], basis])
    ok &= (basis >= 0).all(axis=1)
    obj_irls = np.abs(y - _lin(x, beta)).sum(axis=1)
    obj_vert = np.abs(y - _lin(x, vert)).sum(axis=1)
    # keep the IRLS point where no vertex could be formed (cannot happen at full rank)
    beta = np.where(ok[:, None], vert, beta)
    obj = np.where(ok, obj_vert, obj_irls)
    reason[~ok] = "no LAD basis (IRLS result kept)"
    active = ok.copy()
    for it in range(max_iter + 1):
        rows = np.flatnonzero(active)
        if rows.size == 0:
            break
        xa, ya, sa, ba = x[rows], y[rows], basis[rows], beta[rows]
        m = rows.size
        ar = np.arange(m)
        xs = xa[ar[:, None], sa]  # (m, d, d), row k = x of basis observation k
        resid = ya - _lin(xa, ba)
        in_basis = np.zeros((m, n), dtype=bool)
        in_basis[ar[:, None], sa] = True
        sgn = np.where(in_basis, 0.0, np.sign(resid))
        u, okb = solve_stack(np.swapaxes(xs, 1, 2), -_xtv(xa, sgn))
        umax = np.abs(u).max(axis=1)
        optimal = okb & (umax <= 1.0 + tol)
        conv[rows[optimal]] = True
        stop = optimal | ~okb
        reason[rows[~okb]] = "singular LAD basis"
        if it == max_iter:
            reason[rows[~stop]] = f"no optimality certificate after {max_iter} pivots"
            active[rows] = False
            break
        active[rows[stop]] = False
        go = np.flatnonzero(~stop)
        if go.size == 0:
            continue
        xa, ya, sa, ba, u, resid = xa[go], ya[go], sa[go], ba[go], u[go], resid[go]
        in_basis, rg, ag = in_basis[go], rows[go], np.arange(go.size)
        j = np.abs(u).argmax(axis=1)
        sigma = -np.sign(u[ag, j])
        rhs = np.zeros((go.size, d))
        rhs[ag, j] = sigma
        delta, _ = solve_stack(xa[ag[:, None], sa], rhs)
        a = _lin(xa, delta)
        a[in_basis] = 0.0
        leaving = sa[ag, j]
        a[ag, leaving] = sigma
        resid[in_basis] = 0.0
        weight = np.abs(a)
        with np.errstate(divide="ignore", invalid="ignore"):
            tbreak = np.where(weight > 0, resid / np.where(weight > 0, a, 1.0), np.inf)
        order = np.argsort(tbreak, axis=1, kind="stable")
        cw = np.cumsum(np.take_along_axis(weight, order, axis=1), axis=1)
        k = (cw < 0.5 * cw[:, -1:]).sum(axis=1)
        entering = order[ag, k]
        stalled = entering == leaving
        new_basis = sa.copy()
        new_basis[ag, j] = entering
        new_beta, okn = solve_stack(xa[ag[:, None], new_basis], ya[ag[:, None], new_basis])
        new_obj = np.abs(ya - _lin(xa, new_beta)).sum(axis=1)
        better = okn & ~stalled & (new_obj <= obj[rg] * (1 + 1e-12))
        acc = rg[better]
        basis[acc], beta[acc], obj[acc] = new_basis[better], new_beta[better], new_obj[better]
        pivots[acc] += 1
        stuck = rg[~better]
        reason[stuck] = "LAD simplex stalled (degenerate vertex)"
        active[stuck] = False
    return beta, conv, pivots, reason


# ------------------------------------------------------------------------------ Huber
def huber_rho(r: np.ndarray, delta: float) -> np.ndarray:
    """Huber's ρ_δ(r) = r²/2 for |r| ≤ δ, δ|r| − δ²/2 otherwise (Huber 1964); same shape."""
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * a - 0.5 * delta * delta)


@_silent
def huber_regression(
    x: np.ndarray,
    y: np.ndarray,
    delta: float = 1.345,
    max_iter: int = 1000,
    tol: float = 1e-10,
) -> Fit:
    """Huber M-regression with a FIXED threshold δ: β minimises Σ_i ρ_δ(y_i − x_i'β)
    (:func:`huber_rho`; no scale is estimated, so δ is in the units of y).

    Batched IRLS (Huber 1981, §7.8) from OLS, with weights w_i = min(1, δ/|r_i|), each
    iteration also trying the exact Newton step for the piecewise quadratic objective,

        β + (X_in'X_in)⁻¹ X'ψ_δ(r),   ψ_δ(r) = clip(r, −δ, δ),  "in" = {|r_i| ≤ δ},

    and keeping whichever candidate has the lower objective. The IRLS step never
    increases it (it minimises a majoriser), and is extrapolated to 2, 4, …, 2¹⁰ times
    its length while that lowers the objective further (IRLS alone crawls when δ is far
    below the residual scale, where the fit is nearly LAD); the Newton step lands on the
    exact minimiser once the set {|r_i| ≤ δ} is right, so the iteration ends in a finite
    number of steps.

    Returns
    -------
    Fit
        beta (R, d); info (R, d, d) = X' diag(1{|r_i| ≤ δ}) X, the Hessian of the
        objective at β̂ (where it exists, i.e. no |r_i| = δ).
    """
    if not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    x, y, reason, finite = _prepare(x, y)
    r_rows = x.shape[0]
    full = _rank_ok(x)
    reason[finite & ~full] = SINGULAR_DESIGN
    beta = _lstsq(x, y)
    n_iter = np.zeros(r_rows, dtype=int)
    conv = np.zeros(r_rows, dtype=bool)
    active = finite & full
    obj = huber_rho(y - _lin(x, beta), delta).sum(axis=1)
    for _ in range(max_iter):
        rows = np.flatnonzero(active)
        if rows.size == 0:
            break
        xa, ya, ba = x[rows], y[rows], beta[rows]
        r = ya - _lin(xa, ba)
        w = delta / np.maximum(np.abs(r), delta)
        irls, ok_i = solve_stack(gram(xa, w), _xtv(xa, w * ya))
        inside = (np.abs(r) <= delta).astype(float)
        step, ok_n = solve_stack(gram(xa, inside), _xtv(xa, np.clip(r, -delta, delta)))
        newton = ba + step
        f_i = np.where(ok_i, huber_rho(ya - _lin(xa, irls), delta).sum(axis=1), np.inf)
        # extrapolate the IRLS step while it keeps lowering the objective (t = 2, 4, …)
        # (row by row: a row stops at its first failure, so rows do not affect each other)
        going = ok_i.copy()
        base = irls - ba
        for t in 2.0 ** np.arange(1, HUBER_EXTRAPOLATION + 1):
            far = ba + t * base
            f_far = huber_rho(ya - _lin(xa, far), delta).sum(axis=1)
            going &= f_far < f_i
            if not going.any():
                break
            irls[going], f_i[going] = far[going], f_far[going]
        f_n = np.where(ok_n, huber_rho(ya - _lin(xa, newton), delta).sum(axis=1), np.inf)
        use_n = f_n <= f_i
        new = np.where(use_n[:, None], newton, irls)
        f_new = np.minimum(f_i, f_n)
        f_old = obj[rows]
        accept = f_new <= f_old + _slack(f_old)
        small = _small_step(new - ba, ba, tol)
        beta[rows[accept]] = new[accept]
        obj[rows[accept]] = f_new[accept]
        n_iter[rows] += 1
        broken = ~np.isfinite(f_new)
        reason[rows[broken]] = "singular weighted design"
        done = (small | ~accept) & ~broken  # no decrease possible: the minimum to rounding
        conv[rows[done]] = True
        active[rows[done | broken]] = False
    reason[active] = f"no convergence in {max_iter} iterations"
    inside = (np.abs(y - _lin(x, beta)) <= delta).astype(float)
    return Fit(beta, conv, n_iter, reason, gram(x, inside))


# ---------------------------------------------------------------------- Student t
def t_loglik(
    x: np.ndarray, y: np.ndarray, beta: np.ndarray, log_scale: np.ndarray, nu: float
) -> np.ndarray:
    """Log-likelihood of y = Xβ + s ε, ε ~ t_ν (R,):

        ℓ = Σ_i [log Γ((ν+1)/2) − log Γ(ν/2) − ½ log(νπ) − log s
                  − (ν+1)/2 · log(1 + r_i² / (ν s²))],

    x (R, n, d), y (R, n), beta (R, d), log_scale (R,) = log s.
    """
    n = y.shape[1]
    const = gammaln((nu + 1) / 2) - gammaln(nu / 2) - 0.5 * np.log(nu * np.pi)
    z2 = ((y - _lin(x, beta)) * np.exp(-log_scale)[:, None]) ** 2
    return n * (const - log_scale) - 0.5 * (nu + 1) * np.log1p(z2 / nu).sum(axis=1)


def _t_derivs(
    x: np.ndarray, y: np.ndarray, beta: np.ndarray, log_scale: np.ndarray, nu: float
) -> tuple[np.ndarray, np.ndarray]:
    """Score (R, d + 1) and Hessian (R, d + 1, d + 1) of :func:`t_loglik` in
    (β, θ = log s). With z = r/s, q = ν + z², w = (ν + 1)/q:

        ∂ℓ/∂β = Σ w z x / s,                ∂ℓ/∂θ = −n + Σ w z²,
        ∂²ℓ/∂β∂β' = −Σ (ν+1)(ν − z²)/q² · x x'/s²,
        ∂²ℓ/∂β∂θ = −Σ 2ν(ν+1) z/q² · x/s,   ∂²ℓ/∂θ² = −Σ 2ν(ν+1) z²/q².
    """
    r_rows, n, d = x.shape
    s = np.exp(log_scale)
    z = (y - _lin(x, beta)) / s[:, None]
    q = nu + z * z
    w = (nu + 1) / q
    score = np.concatenate(
        [_xtv(x, w * z) / s[:, None], (-n + (w * z * z).sum(axis=1))[:, None]], axis=1
    )
    hess = np.empty((r_rows, d + 1, d + 1))
    hess[:, :d, :d] = -gram(x, (nu + 1) * (nu - z * z) / q**2) / (s * s)[:, None, None]
    cross = -_xtv(x, 2 * nu * (nu + 1) * z / q**2) / s[:, None]
    hess[:, :d, d] = cross
    hess[:, d, :d] = cross
    hess[:, d, d] = -(2 * nu * (nu + 1) * z * z / q**2).sum(axis=1)
    return score, hess


@_silent
def t_regression(
    x: np.ndarray, y: np.ndarray, nu: float, max_iter: int = 1000, tol: float = 1e-10
) -> TFit:
    """MLE of (β, s) in y = Xβ + s ε, ε ~ t_ν with ν fixed (:func:`t_loglik`).

    Batched EM (Lange, Little & Taylor 1989) from OLS and s² = rss/n: with
    w_i = (ν + 1)/(ν + r_i²/s²),

        β' = (X'WX)⁻¹ X'Wy,    s'² = Σ_i w_i (y_i − x_i'β')² / n,

    each iteration also trying the Newton step on (β, log s) (:func:`_t_derivs`) where
    the Hessian is negative definite, and keeping whichever candidate has the higher
    log-likelihood. EM never lowers it, so the iteration is monotone; Newton makes it
    converge quadratically at the end. The likelihood may have several local maxima:
    this finds the one reached from OLS.

    Returns
    -------
    TFit
        beta (R, d); scale (R,) s; info (R, d + 1, d + 1) the observed information of
        (β, log s) — the last row/column is log s (multiply it by 1/s for s). Rows with
        an exact OLS fit (s = 0; the likelihood is unbounded) get reason
        ``"exact fit (s = 0)"``.
    """
    if not nu > 0:
        raise ValueError(f"nu must be > 0, got {nu}")
    x, y, reason, finite = _prepare(x, y)
    r_rows, n, d = x.shape
    full = _rank_ok(x)
    reason[finite & ~full] = SINGULAR_DESIGN
    beta = _lstsq(x, y)
    s0 = np.sqrt(((y - _lin(x, beta)) ** 2).mean(axis=1))
    exact = finite & full & ~(s0 > 0)
    reason[exact] = "exact fit (s = 0)"
    active = finite & full & ~exact
    theta = np.concatenate([beta, np.log(np.where(s0 > 0, s0, 1.0))[:, None]], axis=1)
    n_iter = np.zeros(r_rows, dtype=int)
    conv = np.zeros(r_rows, dtype=bool)
    ll = t_loglik(x, y, theta[:, :d], theta[:, d], nu)
    for _ in range(max_iter):
        rows = np.flatnonzero(active)
        if rows.size == 0:
            break
        xa, ya, ta = x[rows], y[rows], theta[rows]
        s = np.exp(ta[:, d])
        r = ya - _lin(xa, ta[:, :d])
        w = (nu + 1) / (nu + (r / s[:, None]) ** 2)
        b_em, ok_em = solve_stack(gram(xa, w), _xtv(xa, w * ya))
        s2_em = (w * (ya - _lin(xa, b_em)) ** 2).mean(axis=1)
        ok_em &= s2_em > 0
        with np.errstate(divide="ignore"):
            em = np.concatenate([b_em, 0.5 * np.log(s2_em)[:, None]], axis=1)
        score, hess = _t_derivs(xa, ya, ta[:, :d], ta[:, d], nu)
        step, ok_n = solve_stack(hess, -score)
        ok_n &= np.linalg.eigvalsh(np.where(ok_n[:, None, None], hess, -np.eye(d + 1)))[:, -1] < 0
        newton = ta + step
        with np.errstate(over="ignore", invalid="ignore"):
            ll_em = np.where(ok_em, t_loglik(xa, ya, em[:, :d], em[:, d], nu), -np.inf)
            ll_n = np.where(ok_n, t_loglik(xa, ya, newton[:, :d], newton[:, d], nu), -np.inf)
        ll_em = np.where(np.isnan(ll_em), -np.inf, ll_em)
        ll_n = np.where(np.isnan(ll_n), -np.inf, ll_n)
        use_n = ll_n >= ll_em
        new = np.where(use_n[:, None], newton, em)
        ll_new = np.maximum(ll_em, ll_n)
        ll_old = ll[rows]
        accept = ll_new >= ll_old - _slack(ll_old)
        small = _small_step(new - ta, ta, tol)
        theta[rows[accept]] = new[accept]
        ll[rows[accept]] = ll_new[accept]
        n_iter[rows] += 1
        broken = ~np.isfinite(ll_new)
        reason[rows[broken]] = "no valid EM or Newton update"
        done = (small | ~accept) & ~broken
        conv[rows[done]] = True
        active[rows[done | broken]] = False
    reason[active] = f"no convergence in {max_iter} iterations"
    _, hess = _t_derivs(x, y, theta[:, :d], theta[:, d], nu)
    return TFit(theta[:, :d].copy(), conv, n_iter, reason, -hess, np.exp(theta[:, d]))


# ------------------------------------------------------------------------ Newton driver
def _make_pd(h: np.ndarray) -> np.ndarray:
    """Hessian modification (Nocedal & Wright 2006, §3.4): where the smallest
    eigenvalue λ_min of h (R, q, q) is ≤ 100 q ε max|λ| (not safely positive definite),
    add (|λ_min| + 1e-8 max|λ|) I; other rows unchanged."""
    q = h.shape[-1]
    finite = np.isfinite(h).all(axis=(1, 2))
    lam = np.linalg.eigvalsh(np.where(finite[:, None, None], h, np.eye(q)))
    top = np.abs(lam).max(axis=1)
    low = lam[:, 0]
    shift = np.where(low > 100 * q * _EPS * top, 0.0, np.abs(low) + 1e-8 * top)
    return h + shift[:, None, None] * np.eye(q)


def _newton(
    fun: Objective,
    beta0: np.ndarray,
    active: np.ndarray,
    reason: np.ndarray,
    max_iter: int,
    tol: float,
    witness: Witness | None = None,
    convexify: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Batched Newton minimisation with step halving, for the rows in ``active``.

    Each iteration, for all rows still iterating: step = −H⁻¹g (H made positive definite
    first by :func:`_make_pd` when ``convexify``); a row converges when
    max|step| ≤ tol (1 + max|β|) (the step is then taken). Otherwise the step is halved
    until the objective does not increase beyond its rounding level (at most
    :data:`MAX_HALVING` times); a row where no halving helps is converged when the
    Newton decrement −g'step/2 is at the rounding level of f, else it stops with
    reason ``"step halving failed"``. After each accepted step (and where H is
    singular, with the last step) ``witness(rows, step)`` may declare separation.

    Returns beta (R, q), converged (R,), n_iter (R,), reason (R,) (the ``reason`` array
    passed in, filled) and the Hessian (R, q, q) at the final iterates.
    """
    beta = np.array(beta0, dtype=float)
    r_rows, q = beta.shape
    conv = np.zeros(r_rows, dtype=bool)
    n_iter = np.zeros(r_rows, dtype=int)
    active = active.copy()
    with np.errstate(all="ignore"):
        f, g, h = fun(np.arange(r_rows), beta, True)
    bad = active & ~(np.isfinite(f) & np.isfinite(g).all(axis=1) & np.isfinite(h).all(axis=(1, 2)))
    reason[bad] = "non-finite objective at the start"
    active &= ~bad
    last = np.zeros_like(beta)
    for _ in range(max_iter):
        rows = np.flatnonzero(active)
        if rows.size == 0:
            break
        hess = _make_pd(h[rows]) if convexify else h[rows]
        step, ok = solve_stack(hess, -g[rows])
        if not ok.all():
            sing = rows[~ok]
            sep = witness(sing, last[sing]) if witness is not None else np.zeros(sing.size, bool)
            reason[sing] = np.where(sep, SEPARATION, "singular information matrix")
            active[sing] = False
            rows, step = rows[ok], step[ok]
        b0, f0, g0 = beta[rows], f[rows], g[rows]
        small = _small_step(step, b0, tol)
        t = np.ones(rows.size)
        cand = b0 + step
        with np.errstate(all="ignore"):
            fc = fun(rows, cand, False)[0]
        worse = ~(fc <= f0 + _slack(f0))
        for _h in range(MAX_HALVING):
            if not worse.any():
                break
            t[worse] *= 0.5
            cand[worse] = b0[worse] + t[worse, None] * step[worse]
            with np.errstate(all="ignore"):
                fc[worse] = fun(rows[worse], cand[worse], False)[0]
            worse = ~(fc <= f0 + _slack(f0))
        acc = ~worse
        beta[rows[acc]] = cand[acc]
        last[rows[acc]] = step[acc]
        n_iter[rows] += 1
        if acc.any():
            with np.errstate(all="ignore"):
                fa, ga, ha = fun(rows[acc], cand[acc], True)
            f[rows[acc]], g[rows[acc]], h[rows[acc]] = fa, ga, ha
        decrement = -0.5 * (g0 * step).sum(axis=1)
        flat = worse & (decrement <= 10 * _slack(f0))
        done = (small & acc) | flat
        conv[rows[done]] = True
        failed = worse & ~flat
        reason[rows[failed]] = "step halving failed"
        active[rows[done | failed]] = False
        if witness is not None:
            check = acc & ~done
            if check.any():
                sep = witness(rows[check], step[check])
                hit = rows[check][sep]
                reason[hit] = SEPARATION
                active[hit] = False
    reason[active] = f"no convergence in {max_iter} iterations"
    return beta, conv, n_iter, reason, h


# ----------------------------------------------------------------------------- binary
def _binary_witness(x: np.ndarray, y: np.ndarray, sw: np.ndarray) -> Witness:
    """Separation witness for binary y: δ (m, d) separates when, over the observations of
    positive weight, every margin m_i = ỹ_i x_i'δ (ỹ = 2y − 1) is
    ≥ −:data:`SEPARATION_TOL` · max_i |m_i| and not all are 0 — then ℓ keeps rising
    along δ and the MLE does not exist (Albert & Anderson 1984; complete separation when
    all m_i > 0, quasi-complete otherwise, Santner & Duffy 1986)."""

    def witness(rows: np.ndarray, step: np.ndarray) -> np.ndarray:
        s = _lin(x[rows], step)
        m = np.where(y[rows] > 0.5, s, -s)
        m = np.where(sw[rows] > 0, m, 0.0)
        top = np.abs(m).max(axis=1)
        return (top > 0) & (m.min(axis=1) >= -SEPARATION_TOL * top)

    return witness


def _weights(sample_weight: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    if sample_weight is None:
        return np.ones(shape)
    sw = np.array(sample_weight, dtype=float)
    if sw.shape != shape or not np.all(np.isfinite(sw)) or np.any(sw < 0):
        raise ValueError(f"sample_weight must be finite, >= 0 and of shape {shape}")
    return sw


def logistic_loss(
    x: np.ndarray, y: np.ndarray, beta: np.ndarray, sample_weight: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Negative log-likelihood of logistic regression, its gradient and Hessian.

    With η = Xβ, p = expit(η) and weights w_i (``sample_weight``, default 1):

        L = Σ w_i [y_i log(1 + e^{−η_i}) + (1 − y_i) log(1 + e^{η_i})],
        ∇L = −X'(w (y − p)),    ∇²L = X' diag(w p (1 − p)) X.

    x (R, n, d), y (R, n), beta (R, d) → (R,), (R, d), (R, d, d).
    """
    sw = _weights(sample_weight, y.shape)
    eta = _lin(x, beta)
    # y log(1 + e^{−η}) + (1 − y) log(1 + e^{η}) = log(1 + e^{η}) − yη
    value = (sw * (np.logaddexp(0.0, eta) - y * eta)).sum(axis=1)
    p = expit(eta)
    grad = -_xtv(x, sw * (y - p))
    hess = gram(x, sw * p * expit(-eta))
    return value, grad, hess


@_silent
def logistic(
    x: np.ndarray,
    y: np.ndarray,
    sample_weight: np.ndarray | None = None,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> Fit:
    """Logistic regression MLE by batched Newton (= IRLS) with step halving, from β = 0.

    Minimises :func:`logistic_loss` (weighted by ``sample_weight`` (R, n) if given).

    Separation rule. The MLE exists iff no direction δ ≠ 0 has ỹ_i x_i'δ ≥ 0 for every
    observation (Albert & Anderson 1984; ỹ = 2y − 1; observations of weight 0 do not
    count). Under (quasi-)complete separation Newton's iterates run off to infinity along
    such a direction and its steps line up with it, so after every step that is not the
    last one the step δ is tested (:func:`_binary_witness`): if every margin is
    ≥ −1e-8 · max|x_i'δ|, δ is (to that tolerance) a separating direction — a proof that
    the MLE does not exist — and the row stops with converged False and reason starting
    ``"separation"``. On data that do not separate no direction passes, so ordinary fits
    are never flagged. A quasi-complete separation is caught once the overlapping part
    of the fit has converged (the step's component there vanishes), within the
    ``max_iter`` iterations.

    Returns
    -------
    Fit
        beta (R, d); info (R, d, d) = X' diag(w p (1 − p)) X at β̂, the observed (= the
        expected) information, sample weights included.
    """
    x, y, reason, finite = _prepare(x, y)
    _check_binary(y)
    sw = _weights(sample_weight, y.shape)
    full = _rank_ok(x * np.sqrt(sw)[..., None])
    reason[finite & ~full] = SINGULAR_DESIGN

    def fun(rows: np.ndarray, beta: np.ndarray, derivs: bool) -> tuple:
        xr, yr, wr = _take(x, rows), _take(y, rows), _take(sw, rows)
        if not derivs:
            eta = _lin(xr, beta)
            return (wr * (np.logaddexp(0.0, eta) - yr * eta)).sum(1), None, None
        return logistic_loss(xr, yr, beta, wr)

    beta, conv, n_iter, reason, hess = _newton(
        fun,
        np.zeros((x.shape[0], x.shape[2])),
        finite & full,
        reason,
        max_iter,
        tol,
        witness=_binary_witness(x, y, sw),
    )
    return Fit(beta, conv, n_iter, reason, hess)


def firth_objective(
    x: np.ndarray, y: np.ndarray, beta: np.ndarray, derivs: bool = True
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Firth's penalised negative log-likelihood, its gradient and its exact Hessian.

    With η = Xβ, p = expit(η), w = p(1 − p), I(β) = X'WX and A = I⁻¹:

        L*(β) = −ℓ(β) − ½ log det I(β),
        −∇L* = U* = X'(y − p + h (½ − p))      (Heinze & Schemper 2002, eq. 2),

    h_i = w_i x_i'A x_i the diagonal of the hat matrix W^½ X A X' W^½. Differentiating
    log det I twice, with ∂I/∂β_j = C_j = Σ_i w'_i x_ij x_i x_i', w' = w(1 − 2p), and
    ∂²I/∂β_j∂β_k = Σ_i w''_i x_ij x_ik x_i x_i', w'' = w(1 − 6w):

        ∇²L* = I − ½ [Σ_i w''_i (x_i'A x_i) x_i x_i' − (tr(A C_j A C_k))_jk].

    Returns L* (R,) (+∞ where I is singular), ∇L* (R, d) and ∇²L* (R, d, d) (None,
    None without ``derivs``).
    """
    eta = _lin(x, beta)
    nll = (y * np.logaddexp(0.0, -eta) + (1 - y) * np.logaddexp(0.0, eta)).sum(axis=1)
    p = expit(eta)
    w = p * expit(-eta)
    info = gram(x, w)
    finite = np.isfinite(info).all(axis=(1, 2))
    sign, logdet = np.linalg.slogdet(np.where(finite[:, None, None], info, np.eye(x.shape[2])))
    value = np.where(finite & (sign > 0), nll - 0.5 * logdet, np.inf)
    if not derivs:
        return value, None, None
    inv, _ = solve_stack(info, np.broadcast_to(np.eye(x.shape[2]), info.shape))
    lev = np.einsum("rni,rij,rnj->rn", x, inv, x)  # x_i'A x_i
    grad = -_xtv(x, y - p + w * lev * (0.5 - p))
    dw = w * (1 - 2 * p)
    d2w = w * (1 - 6 * w)
    cj = np.einsum("rn,rna,rnb,rnj->rabj", dw, x, x, x)
    second = np.einsum("rab,rbcj,rce,reak->rjk", inv, cj, inv, cj, optimize=True)
    hess = info - 0.5 * (gram(x, d2w * lev) - second)
    return value, grad, hess


def firth_information(x: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """I(β) = X' diag(p(1 − p)) X, p = expit(Xβ): x (R, n, d), beta (R, d) → (R, d, d)."""
    eta = _lin(x, beta)
    return gram(x, expit(eta) * expit(-eta))


@_silent
def firth_logistic(x: np.ndarray, y: np.ndarray, max_iter: int = 100, tol: float = 1e-10) -> Fit:
    """Firth's bias-reduced logistic regression (Firth 1993): β maximises the penalised
    log-likelihood ℓ(β) + ½ log det I(β) (Jeffreys prior), by batched modified-score
    Newton iterations with step halving from β = 0 (Heinze & Schemper 2002):

        β' = β + t · H⁻¹ U*(β),   t = 1, ½, ¼, … until ℓ + ½ log det I does not fall,

    U* the modified score and H the exact negative Hessian of the penalised
    log-likelihood (:func:`firth_objective`) where it is positive definite, else
    Heinze & Schemper's I(β) = X'WX. Both make H⁻¹U* an ascent direction (U* is the
    exact gradient); the exact Hessian makes the end quadratic — with I alone the
    iteration is only linear, and slow under separation, where W is nearly 0 and the
    penalty's curvature is not negligible. The estimate is finite under separation
    (when X has full rank).

    Returns
    -------
    Fit
        beta (R, d); info (R, d, d) = I(β̂) = X'WX at β̂, the information used for Wald
        intervals by Heinze & Schemper (2002) and R's logistf.
    """
    x, y, reason, finite = _prepare(x, y)
    _check_binary(y)
    full = _rank_ok(x)
    reason[finite & ~full] = SINGULAR_DESIGN
    d = x.shape[2]

    def fun(rows: np.ndarray, beta: np.ndarray, derivs: bool) -> tuple:
        value, grad, hess = firth_objective(x[rows], y[rows], beta, derivs)
        if derivs:
            finite_h = np.isfinite(hess).all(axis=(1, 2))
            low = np.linalg.eigvalsh(np.where(finite_h[:, None, None], hess, -np.eye(d)))[:, 0]
            fisher = ~(finite_h & (low > 0))
            if fisher.any():
                hess[fisher] = firth_information(x[rows[fisher]], beta[fisher])
        return value, grad, hess

    beta, conv, n_iter, reason, _ = _newton(
        fun, np.zeros((x.shape[0], d)), finite & full, reason, max_iter, tol
    )
    return Fit(beta, conv, n_iter, reason, firth_information(x, beta))


def focal_loss(
    x: np.ndarray, y: np.ndarray, beta: np.ndarray, gamma: float = 2.0, derivs: bool = True
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Focal loss (Lin et al. 2017), its gradient and exact Hessian in β.

    With η = Xβ, ỹ = 2y − 1, m = ỹη, a = p_t = expit(m), b = 1 − a = expit(−m):

        L = Σ_i f(m_i),   f(m) = −b^γ log a,
        f'(m) = γ a b^γ log a − b^{γ+1},
        f''(m) = a b^γ [γ b log a − γ² a log a + (2γ + 1) b]

    (from da/dm = ab, db/dm = −ab), so ∇L = X'(f'(m) ỹ) and ∇²L = X' diag(f''(m)) X
    (ỹ² = 1). γ = 0 gives the logistic loss (f'' = ab). f'' < 0 for large negative m
    when γ > 0: the loss is not convex. Logs and powers are taken as
    log a = log_expit(m), b^γ = exp(γ log_expit(−m)), stable for any m.

    x (R, n, d), y (R, n) 0/1, beta (R, d) → L (R,), ∇L (R, d), ∇²L (R, d, d) (None,
    None without ``derivs``).
    """
    ty = 2.0 * y - 1.0
    m = ty * _lin(x, beta)
    log_a = log_expit(m)
    log_b = log_expit(-m)
    b_gam = np.exp(gamma * log_b)
    value = -(b_gam * log_a).sum(axis=1)
    if not derivs:
        return value, None, None
    a, b = expit(m), expit(-m)
    ab_gam = a * b_gam
    d1 = gamma * ab_gam * log_a - b_gam * b
    d2 = ab_gam * (gamma * b * log_a - gamma**2 * a * log_a + (2 * gamma + 1) * b)
    return value, _xtv(x, d1 * ty), gram(x, d2)


@_silent
def focal_logistic(
    x: np.ndarray, y: np.ndarray, gamma: float = 2.0, max_iter: int = 100, tol: float = 1e-10
) -> Fit:
    """Logistic regression by the focal loss (Lin et al. 2017): β minimises
    Σ_i −(1 − p_t)^γ log p_t (:func:`focal_loss`), by batched Newton with the exact
    Hessian, modified to be positive definite where it is not (the loss is not convex for
    γ > 0; :func:`_make_pd`), and step halving, from β = 0. γ = 0 is :func:`logistic`.
    The loss also falls to its infimum along a separating direction: separation is
    detected and reported as in :func:`logistic`.

    Returns
    -------
    Fit
        beta (R, d); info (R, d, d) the Hessian of the loss at β̂ (the negative Hessian
        of the objective −L).
    """
    if not gamma >= 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    x, y, reason, finite = _prepare(x, y)
    _check_binary(y)
    full = _rank_ok(x)
    reason[finite & ~full] = SINGULAR_DESIGN

    def fun(rows: np.ndarray, beta: np.ndarray, derivs: bool) -> tuple:
        return focal_loss(x[rows], y[rows], beta, gamma, derivs)

    beta, conv, n_iter, reason, hess = _newton(
        fun,
        np.zeros((x.shape[0], x.shape[2])),
        finite & full,
        reason,
        max_iter,
        tol,
        witness=_binary_witness(x, y, np.ones(y.shape)),
        convexify=gamma > 0,
    )
    return Fit(beta, conv, n_iter, reason, hess)


# ---------------------------------------------------------------------------- softmax
def softmax_loss(
    x: np.ndarray, y: np.ndarray, beta: np.ndarray, derivs: bool = True
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Negative log-likelihood of multinomial logistic regression, class 0 the
    reference, with its gradient and Hessian in the flattened parameter.

    beta (R, K − 1, d); η_ik = x_i'β_k for k ≥ 1, η_i0 = 0; P_ik = e^{η_ik} / Σ_l e^{η_il}:

        L = Σ_i [log Σ_k e^{η_ik} − η_{i y_i}],
        ∂L/∂β_k = −Σ_i (1{y_i = k} − P_ik) x_i,
        ∂²L/∂β_k∂β_l' = Σ_i (P_ik 1{k = l} − P_ik P_il) x_i x_i',

    flattened row-major (index k·d + j for β[k − 1, j]). x (R, n, d), y (R, n) labels
    → L (R,), ∇L (R, (K−1)d), ∇²L (R, (K−1)d, (K−1)d).
    """
    r_rows, n, d = x.shape
    k1 = beta.shape[1]
    labels = y.astype(int)
    eta = np.concatenate([np.zeros((r_rows, n, 1)), np.einsum("rnd,rkd->rnk", x, beta)], axis=2)
    lse = logsumexp(eta, axis=2)
    value = (lse - np.take_along_axis(eta, labels[..., None], axis=2)[..., 0]).sum(axis=1)
    if not derivs:
        return value, None, None
    prob = np.exp(eta - lse[..., None])[..., 1:]
    onehot = (labels[..., None] == np.arange(1, k1 + 1)).astype(float)
    grad = -np.einsum("rnk,rnd->rkd", onehot - prob, x).reshape(r_rows, k1 * d)
    m = -prob[..., :, None] * prob[..., None, :]
    idx = np.arange(k1)
    m[..., idx, idx] += prob
    hess = np.einsum("rnkl,rnj,rnm->rkjlm", m, x, x, optimize=True)
    return value, grad, hess.reshape(r_rows, k1 * d, k1 * d)


@_silent
def softmax(x: np.ndarray, y: np.ndarray, K: int, max_iter: int = 100, tol: float = 1e-10) -> Fit:
    """Multinomial logistic regression MLE (class 0 the reference) by batched Newton on
    the flattened (K − 1)·d parameters, with step halving, from β = 0
    (:func:`softmax_loss`).

    Separation (Albert & Anderson 1984): the MLE does not exist iff some direction
    B ≠ 0 (K − 1, d) scores every observation's own class at least as high as any other,
    S_{i y_i} ≥ S_ik for all k (S_ik = x_i'B_k, S_i0 = 0) — e.g. when a class is absent.
    As in :func:`logistic`, each step B is tested: if
    S_{i y_i} − max_k S_ik ≥ −1e-8 · max|S| for all i, the row stops with reason
    starting ``"separation"``.

    Parameters
    ----------
    x : (R, n, d); y : (R, n) labels 0, …, K − 1 (floats holding integers); K ≥ 2.

    Returns
    -------
    Fit
        beta (R, K − 1, d); info (R, (K−1)d, (K−1)d) = Σ_i (diag P_i − P_i P_i') ⊗ x_i x_i'
        at β̂, the observed (= the expected) information, flattened row-major as
        ``beta[r].reshape(-1)``.
    """
    if K < 2:
        raise ValueError(f"K must be >= 2, got {K}")
    x, y, reason, finite = _prepare(x, y)
    if not np.all((y == np.round(y)) & (y >= 0) & (y <= K - 1)):
        raise ValueError(f"y must hold the labels 0, ..., {K - 1}")
    r_rows, n, d = x.shape
    full = _rank_ok(x)
    reason[finite & ~full] = SINGULAR_DESIGN
    labels = y.astype(int)

    def fun(rows: np.ndarray, beta: np.ndarray, derivs: bool) -> tuple:
        return softmax_loss(x[rows], y[rows], beta.reshape(rows.size, K - 1, d), derivs)

    def witness(rows: np.ndarray, step: np.ndarray) -> np.ndarray:
        b = step.reshape(rows.size, K - 1, d)
        s = np.concatenate(
            [np.zeros((rows.size, n, 1)), np.einsum("rnd,rkd->rnk", x[rows], b)], axis=2
        )
        own = np.take_along_axis(s, labels[rows][..., None], axis=2)[..., 0]
        top = np.abs(s).max(axis=(1, 2))
        gap = own - s.max(axis=2)
        return (top > 0) & (gap.min(axis=1) >= -SEPARATION_TOL * top)

    beta, conv, n_iter, reason, hess = _newton(
        fun,
        np.zeros((r_rows, (K - 1) * d)),
        finite & full,
        reason,
        max_iter,
        tol,
        witness=witness,
    )
    return Fit(beta.reshape(r_rows, K - 1, d), conv, n_iter, reason, hess)
