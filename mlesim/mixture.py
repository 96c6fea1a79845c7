"""Batched EM for one-dimensional Gaussian mixtures, with collapse detection and the
observed information.

The model for each of R data sets (a chunk ``x`` of shape (R, n), replicate axis first)
is the K-component mixture

    p(x) = Σ_k w_k φ(x; μ_k, σ²_k),    w_k ≥ 0, Σ_k w_k = 1,

fitted by EM (Dempster, Laird & Rubin 1977; McLachlan & Peel 2000, §2.8 and §3.2) on all
replicates at once: the loops are over EM iterations (the rows still iterating, as one
array), initialisations and components, never over replicates. A replicate stops when it
converges, collapses or runs out of iterations, and is not updated after that, so each
replicate's result is the one the iteration gives on it alone — bit for bit, whichever
other replicates share its chunk.

Conventions
-----------
- Components are returned sorted by mean, ascending: that resolves label switching.
- Parameters, shape (R, K) each: ``weights``, ``means``, ``variances``.
- The observed information (:func:`observed_information`) is in the 3K − 1 free
  parameters θ = (w_1, …, w_{K−1}, μ_1, …, μ_K, σ²_1, …, σ²_K), the last weight being
  w_K = 1 − Σ_{k<K} w_k; :func:`standard_errors` turns it into SEs of all 3K parameters.
- Convergence: a replicate has converged when one EM step changes no parameter by more
  than ``tol`` on the replicate's own scale, max_k max(|Δw_k|, |Δμ_k| / s, |Δσ²_k| / s²)
  ≤ tol, s² the replicate's sample variance (a step criterion: near the optimum the
  log-likelihood changes by the square of the step, far too little to judge).

Collapse (why there is no "restart")
------------------------------------
The Gaussian-mixture likelihood is unbounded: a component centred on one observation
with σ²_k → 0 sends it to +∞ (Kiefer & Wolfowitz 1956; Day 1969; McLachlan & Peel 2000,
§3.8.1), so the global MLE does not exist and EM can run into that singularity. Without a
floor or a prior, a replicate is **collapsed** as soon as a variance falls below
``collapse`` × its sample variance or its log-likelihood stops being finite: it stops
iterating there and is reported (``collapsed`` True, ``converged`` False, the reason, the
parameters where it stopped, an information of NaN). It is never silently restarted.
With several initialisations the one with the highest final log-likelihood is kept,
counting a non-finite log-likelihood of a collapsed run as +∞; so when the best run
collapsed, the replicate is collapsed — the MLE does not exist there, and the study
should count that as a failure rather than hide it behind another start.

Two remedies bound the likelihood:

- ``variance_floor`` c > 0: the M-step clamps σ²_k ≥ c (Hathaway 1985's constrained
  MLE in its simplest form). A clamped variance is an estimate on the edge of the
  parameter space (compare ``variances == variance_floor``): its SE is not a valid
  Wald SE.
- ``prior=(a, b)``: MAP with an inverse-gamma(a, b) prior on each variance, density
  π(σ²) = bᵃ / Γ(a) · (σ²)^−(a+1) e^(−b/σ²) (shape a, scale b: ``scipy.stats.invgamma(a,
  scale=b)``), the penalised likelihood of Ciuperca, Ridolfi & Idier (2003); see
  :func:`m_step`. The objective (``loglik``) is then log L + Σ_k log π(σ²_k), which EM
  increases at every step (Dempster, Laird & Rubin 1977, §3: the prior adds a term that
  depends on θ only) and which is bounded, so it never collapses.

References
----------
Ciuperca, G., Ridolfi, A. & Idier, J. (2003). Penalized maximum likelihood estimator for
normal mixtures. *Scand. J. Statist.* 30, 45–59.
Day, N. E. (1969). Estimating the components of a mixture of normal distributions.
*Biometrika* 56, 463–474.
Dempster, A. P., Laird, N. M. & Rubin, D. B. (1977). Maximum likelihood from incomplete
data via the EM algorithm. *J. R. Statist. Soc. B* 39, 1–38.
Hathaway, R. J. (1985). A constrained formulation of maximum-likelihood estimation for
normal mixture distributions. *Ann. Statist.* 13, 795–800.
Kiefer, J. & Wolfowitz, J. (1956). Consistency of the maximum likelihood estimator in the
presence of infinitely many incidental parameters. *Ann. Math. Statist.* 27, 887–906.
Louis, T. A. (1982). Finding the observed information matrix when using the EM
algorithm. *J. R. Statist. Soc. B* 44, 226–233.
McLachlan, G. J. & Peel, D. (2000). *Finite Mixture Models*. Wiley.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln, logsumexp

LOG_2PI = float(np.log(2.0 * np.pi))

REASON_COLLAPSED = "collapsed: a component's variance went to 0 (the likelihood is unbounded)"
REASON_NONFINITE = "collapsed: the log-likelihood is not finite (the likelihood is unbounded)"
REASON_CONSTANT = (
    "collapsed: the data are constant (every variance is 0; the likelihood is unbounded)"
)
REASON_EMPTY = "failed: a component's weight went to 0 (its mean is undefined)"


@dataclass(frozen=True)
class MixtureFit:
    """The result of :func:`em` for a chunk of R replicates, K components.

    Attributes
    ----------
    weights, means, variances : (R, K) estimates, components sorted by mean ascending.
    loglik : (R,) log-likelihood Σ_i log p(x_i) at the estimate; with a prior, the
        penalised log-likelihood log L + Σ_k log IG(σ²_k; a, b). For a collapsed
        replicate, the value where it stopped (+inf where it was not finite).
    converged : (R,) bool, the step criterion met (never for a collapsed replicate).
    collapsed : (R,) bool, the run stopped at the likelihood's singularity.
    n_iter : (R,) int, EM iterations (M-steps) of the kept initialisation.
    reason : (R,) object array of str, '' when converged, else why not.
    info : (R, 3K − 1, 3K − 1) observed information −∂²loglik/∂θ∂θᵀ at the estimate in
        θ = (w_1, …, w_{K−1}, μ_1, …, μ_K, σ²_1, …, σ²_K), analytic
        (:func:`observed_information`); NaN for a collapsed or failed replicate.
    """

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray
    loglik: np.ndarray
    converged: np.ndarray
    collapsed: np.ndarray
    n_iter: np.ndarray
    reason: np.ndarray
    info: np.ndarray


# ------------------------------------------------------------------------- densities
def _component_logpdf(x: np.ndarray, means: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """log φ(x_i; μ_k, σ²_k), shape (R, K, n), for x (R, n) and parameters (R, K)."""
    v = variances[..., None]
    d = x[:, None, :] - means[..., None]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return -0.5 * (LOG_2PI + np.log(v)) - d * d / (2.0 * v)


def _joint_logpdf(
    x: np.ndarray, weights: np.ndarray, means: np.ndarray, variances: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """log w_k φ(x_i; μ_k, σ²_k) (R, K, n) and its logsumexp over k, log p(x_i) (R, n)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        lw = np.log(weights)[..., None] + _component_logpdf(x, means, variances)
        return lw, logsumexp(lw, axis=1)


def mixture_logpdf(
    x: np.ndarray, weights: np.ndarray, means: np.ndarray, variances: np.ndarray
) -> np.ndarray:
    """Log-density of the mixture at each point, shape (R, n).

    log p(x_i) = logsumexp_k [log w_k − ½ log(2π σ²_k) − (x_i − μ_k)² / (2σ²_k)]
    (``scipy.special.logsumexp``, stable for far tails). ``x`` is (R, n); the parameters
    are (R, K), or (K,) for the same mixture on every row.
    """
    x = np.atleast_2d(np.asarray(x, dtype=float))
    w, mu, v = (
        np.broadcast_to(np.asarray(p, dtype=float), (x.shape[0], np.shape(p)[-1]))
        for p in (weights, means, variances)
    )
    return _joint_logpdf(x, w, mu, v)[1]


def log_invgamma(v: np.ndarray, a: float, b: float) -> np.ndarray:
    """log IG(σ²; a, b) = a log b − log Γ(a) − (a + 1) log σ² − b / σ², elementwise
    (shape a, scale b; ``scipy.stats.invgamma.logpdf(v, a, scale=b)``)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return a * np.log(b) - gammaln(a) - (a + 1.0) * np.log(v) - b / v


def sample(
    rng: np.random.Generator,
    weights: np.ndarray,
    means: np.ndarray,
    variances: np.ndarray,
    size: int | tuple[int, ...],
) -> np.ndarray:
    """Draw from the mixture with parameters (K,) each; returns an array of shape ``size``
    (e.g. (R, n) for a chunk). Labels first, ``rng.choice(K, size, p=weights)``, then
    x = μ_label + σ_label · ``rng.standard_normal(size)``."""
    w = np.asarray(weights, dtype=float)
    mu = np.asarray(means, dtype=float)
    sd = np.sqrt(np.asarray(variances, dtype=float))
    labels = rng.choice(w.size, size=size, p=w / w.sum())
    return mu[labels] + sd[labels] * rng.standard_normal(size)


# ----------------------------------------------------------------------------- EM steps
def e_step(
    x: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    variances: np.ndarray,
    prior: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Responsibilities τ_ik = w_k φ(x_i; μ_k, σ²_k) / p(x_i), shape (R, K, n), and the
    objective (R,): Σ_i log p(x_i), plus Σ_k log IG(σ²_k; a, b) with a prior.
    Non-finite where the parameters are degenerate (no warning)."""
    lw, logp = _joint_logpdf(x, weights, means, variances)
    with np.errstate(invalid="ignore", over="ignore"):
        resp = np.exp(lw - logp[:, None, :])
        ll = logp.sum(axis=1)
        if prior is not None:
            ll = ll + log_invgamma(variances, *prior).sum(axis=1)
    return resp, ll


def m_step(
    x: np.ndarray,
    resp: np.ndarray,
    variance_floor: float = 0.0,
    prior: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The M-step from x (R, n) and responsibilities (R, K, n).

    With N_k = Σ_i τ_ik and S_k = Σ_i τ_ik (x_i − μ_k)²:

        w_k = N_k / n,    μ_k = Σ_i τ_ik x_i / N_k,
        σ²_k = S_k / N_k                                   (MLE),
        σ²_k = (S_k + 2b) / (N_k + 2(a + 1))               (prior = (a, b)),

    then σ²_k ← max(σ²_k, variance_floor). The MAP form maximises the expected
    complete-data log-posterior Σ_i τ_ik log φ(x_i; μ_k, σ²_k) − (a + 1) log σ²_k − b/σ²_k
    in σ²_k: its derivative −N_k/(2σ²) + S_k/(2σ⁴) − (a + 1)/σ² + b/σ⁴ vanishes at the
    value above (Dempster, Laird & Rubin 1977, §3 for EM with a prior; Ciuperca, Ridolfi
    & Idier 2003 for this penalty). The weights and means are as for the MLE, the prior
    being on the variances only.

    Returns
    -------
    weights, means, variances : (R, K).
    empty : (R,) bool, some N_k = 0 (that component keeps mean 0 and variance 0, or the
        floor / the prior's value).
    """
    n = x.shape[1]
    nk = resp.sum(axis=2)
    empty = (nk <= 0).any(axis=1)
    safe = np.where(nk > 0, nk, 1.0)
    means = (resp * x[:, None, :]).sum(axis=2) / safe
    d = x[:, None, :] - means[..., None]
    sk = (resp * d * d).sum(axis=2)
    if prior is None:
        variances = sk / safe
    else:
        a, b = prior
        variances = (sk + 2.0 * b) / (nk + 2.0 * (a + 1.0))
    if variance_floor > 0:
        variances = np.maximum(variances, variance_floor)
    return nk / n, means, variances, empty


# ---------------------------------------------------------------------- initialisation
def quantile_init(x: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Initialisation 0, (R, K) each: μ_k the (k − ½)/K sample quantile of the row,
    w_k = 1/K, σ²_k the row's variance (divisor n)."""
    q = (np.arange(1, K + 1) - 0.5) / K
    means = np.quantile(x, q, axis=1).T
    return _fill(x, means)


def point_init(x: np.ndarray, K: int, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Initialisation i ≥ 1, (R, K) each: μ_k = x[:, j_k] at positions j_1..j_K drawn by
    ``np.random.default_rng(i).choice(n, K, replace=n < K)`` — the same positions for
    every replicate, so a replicate's start does not depend on R or on its neighbours —
    w_k = 1/K and σ²_k the row's variance."""
    pos = np.random.default_rng(i).choice(x.shape[1], size=K, replace=x.shape[1] < K)
    return _fill(x, x[:, pos])


def _fill(x: np.ndarray, means: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Equal weights and the row variance beside the given starting ``means`` (R, K)."""
    r, k = means.shape
    weights = np.full((r, k), 1.0 / k)
    variances = np.repeat(x.var(axis=1)[:, None], k, axis=1)
    return weights, np.array(means, dtype=float), variances


# ------------------------------------------------------------------------------ the run
@dataclass
class _Run:
    """Unsorted state of one EM run over all rows (internal)."""

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray
    loglik: np.ndarray
    converged: np.ndarray
    collapsed: np.ndarray
    n_iter: np.ndarray
    reason: np.ndarray


def _run_em(
    x: np.ndarray,
    start: tuple[np.ndarray, np.ndarray, np.ndarray],
    max_iter: int,
    tol: float,
    variance_floor: float,
    prior: tuple[float, float] | None,
    collapse: float,
) -> _Run:
    """EM from ``start`` on all rows of x (R, n), each row stopping on its own."""
    r_rows = x.shape[0]
    s2 = x.var(axis=1)
    scale2 = np.where(s2 > 0, s2, 1.0)
    scale = np.sqrt(scale2)
    check_variance = variance_floor <= 0 and prior is None
    w, mu, v = (np.array(p, dtype=float) for p in start)
    if variance_floor > 0:
        v = np.maximum(v, variance_floor)
    elif prior is not None:  # a constant row: start at the prior's mode b / (a + 1)
        v = np.where(v > 0, v, prior[1] / (prior[0] + 1.0))
    run = _Run(
        w,
        mu,
        v,
        np.full(r_rows, np.nan),
        np.zeros(r_rows, dtype=bool),
        np.zeros(r_rows, dtype=bool),
        np.zeros(r_rows, dtype=int),
        np.full(r_rows, f"not converged in {max_iter} iterations", dtype=object),
    )
    resp, run.loglik = e_step(x, w, mu, v, prior)
    bad = ~np.isfinite(run.loglik)
    if check_variance:
        constant = s2 <= 0
        bad |= constant
        run.reason[constant] = REASON_CONSTANT
    run.reason[bad & (s2 > 0)] = REASON_NONFINITE
    run.collapsed[bad] = True
    rows = np.flatnonzero(~bad)
    resp = resp[rows]
    for _ in range(max_iter):
        if rows.size == 0:
            break
        xa = x[rows]
        w_new, mu_new, v_new, empty = m_step(xa, resp, variance_floor, prior)
        resp, ll = e_step(xa, w_new, mu_new, v_new, prior)
        step = np.maximum(
            np.abs(w_new - run.weights[rows]),
            np.maximum(
                np.abs(mu_new - run.means[rows]) / scale[rows, None],
                np.abs(v_new - run.variances[rows]) / scale2[rows, None],
            ),
        ).max(axis=1)
        small = (v_new < collapse * s2[rows, None]).any(axis=1) & check_variance
        nonfinite = ~np.isfinite(ll)
        collapsed = (small | nonfinite) & ~empty
        conv = (step <= tol) & ~collapsed & ~empty
        run.weights[rows], run.means[rows], run.variances[rows] = w_new, mu_new, v_new
        run.loglik[rows] = ll
        run.n_iter[rows] += 1
        run.collapsed[rows] = collapsed
        run.converged[rows] = conv
        run.reason[rows[conv]] = ""
        run.reason[rows[collapsed]] = np.where(small, REASON_COLLAPSED, REASON_NONFINITE)[collapsed]
        run.reason[rows[empty]] = REASON_EMPTY
        keep = ~(conv | collapsed | empty)
        rows, resp = rows[keep], resp[keep]
    return run


def _rank(run: _Run) -> np.ndarray:
    """The log-likelihood that decides between initialisations, (R,): a collapsed run's
    non-finite value counts as +∞ (the likelihood diverged), any other NaN as −∞."""
    ll = np.where(run.collapsed & ~np.isfinite(run.loglik), np.inf, run.loglik)
    return np.where(np.isnan(ll), -np.inf, ll)


def em(
    x: np.ndarray,
    K: int,
    n_init: int = 1,
    max_iter: int = 500,
    tol: float = 1e-8,
    variance_floor: float = 0.0,
    prior: tuple[float, float] | None = None,
    collapse: float = 1e-8,
) -> MixtureFit:
    """Fit a K-component Gaussian mixture to each row of ``x`` (R, n) by EM, batched.

    Parameters
    ----------
    x : (R, n) data, R replicates of n observations each (finite).
    K : number of components, ≥ 1.
    n_init : initialisations: 0 from the quantiles (:func:`quantile_init`), 1..n_init−1
        from data points (:func:`point_init`); per replicate the one with the highest
        final (penalised) log-likelihood is kept (see the module notes on collapse).
    max_iter : EM iterations at most per initialisation.
    tol : a row has converged when one EM step changes no parameter by more than ``tol``
        on the row's scale: max(|Δw_k|, |Δμ_k| / s, |Δσ²_k| / s²) ≤ tol, s² the row's
        variance.
    variance_floor : σ²_k ≥ variance_floor in the M-step (0: no floor). With a floor or
        a prior no replicate collapses.
    prior : (a, b), a > 0, b > 0: MAP with an inverse-gamma(shape a, scale b) prior on
        each σ²_k (:func:`m_step`); ``loglik`` is then the penalised log-likelihood.
    collapse : without floor or prior, a replicate collapses when some σ²_k <
        collapse × its sample variance (or its log-likelihood is not finite).

    Returns
    -------
    MixtureFit (see :class:`MixtureFit`), components sorted by mean.

    Notes
    -----
    Standard errors: :func:`standard_errors`. In short, with Σ = info⁻¹ (3K − 1 square)
    the SEs of w_1..w_{K−1}, μ, σ² are √diag Σ, and by the delta rule for
    w_K = 1 − Σ_{k<K} w_k (gradient (−1, …, −1) in the weights)
    SE(w_K)² = Σ_{j,l<K} Σ_jl, the sum of the weight block.
    """
    x = _check(x, K, n_init, max_iter, tol, variance_floor, prior, collapse)
    best: _Run | None = None
    for i in range(n_init):
        start = quantile_init(x, K) if i == 0 else point_init(x, K, i)
        run = _run_em(x, start, max_iter, tol, variance_floor, prior, collapse)
        if best is None:
            best = run
            continue
        better = _rank(run) > _rank(best)
        for name, value in vars(run).items():
            old = getattr(best, name)
            mask = better[:, None] if value.ndim == 2 else better
            setattr(best, name, np.where(mask, value, old))
    assert best is not None
    order = np.argsort(best.means, axis=1, kind="stable")
    w, mu, v = (
        np.take_along_axis(p, order, axis=1) for p in (best.weights, best.means, best.variances)
    )
    ok = ~best.collapsed & (best.reason != REASON_EMPTY)
    p = 3 * K - 1
    info = np.full((x.shape[0], p, p), np.nan)
    if ok.any():
        info[ok] = observed_information(x[ok], w[ok], mu[ok], v[ok], prior)
    loglik = np.where(best.collapsed & ~np.isfinite(best.loglik), np.inf, best.loglik)
    return MixtureFit(
        w,
        mu,
        v,
        loglik,
        best.converged,
        best.collapsed,
        best.n_iter,
        best.reason.astype(object),
        info,
    )


def _check(
    x: np.ndarray,
    K: int,
    n_init: int,
    max_iter: int,
    tol: float,
    variance_floor: float,
    prior: tuple[float, float] | None,
    collapse: float,
) -> np.ndarray:
    """Validate the arguments of :func:`em`; returns x as a float (R, n) array."""
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"x must have shape (R, n) with n >= 1, got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("x must be finite")
    if int(K) != K or K < 1:
        raise ValueError(f"K must be an integer >= 1, got {K!r}")
    if int(n_init) != n_init or n_init < 1:
        raise ValueError(f"n_init must be an integer >= 1, got {n_init!r}")
    if int(max_iter) != max_iter or max_iter < 0:
        raise ValueError(f"max_iter must be an integer >= 0, got {max_iter!r}")
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol!r}")
    if not variance_floor >= 0:
        raise ValueError(f"variance_floor must be >= 0, got {variance_floor!r}")
    if not collapse >= 0:
        raise ValueError(f"collapse must be >= 0, got {collapse!r}")
    if prior is not None:
        if len(prior) != 2 or not (prior[0] > 0 and prior[1] > 0):
            raise ValueError(f"prior must be (shape a > 0, scale b > 0), got {prior!r}")
    return x


# ------------------------------------------------------------------- information and SE
def observed_information(
    x: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    variances: np.ndarray,
    prior: tuple[float, float] | None = None,
) -> np.ndarray:
    """Observed information −∂² log L / ∂θ ∂θᵀ, shape (R, 3K − 1, 3K − 1), analytic.

    θ = (w_1, …, w_{K−1}, μ_1, …, μ_K, σ²_1, …, σ²_K), w_K = 1 − Σ_{k<K} w_k; x (R, n),
    parameters (R, K). Per observation, with p = Σ_k w_k f_k, f_k = φ(x; μ_k, σ²_k),
    g_k = f_k / p, τ_k = w_k g_k, z_k = (x − μ_k)/σ²_k, u_k = ½(z_k² − 1/σ²_k):

        log p has Hessian  p⁻¹ ∂²p − s sᵀ,  s = ∂ log p (the score), so
        info = Σ_i s_i s_iᵀ − Σ_i p⁻¹ ∂²p(x_i),

    exactly (not the empirical information Σ s sᵀ alone; cf. Louis 1982), with the scores
    s_{w_j} = g_j − g_K, s_{μ_k} = τ_k z_k, s_{σ²_k} = τ_k u_k, and the non-zero blocks
    of p⁻¹ ∂²p

        (w_j, μ_j) = g_j z_j,  (w_j, μ_K) = −g_K z_K,  (w_j, σ²_j) = g_j u_j,
        (w_j, σ²_K) = −g_K u_K,  (μ_k, μ_k) = τ_k (z_k² − 1/σ²_k),
        (μ_k, σ²_k) = τ_k z_k (u_k − 1/σ²_k),  (σ²_k, σ²_k) = τ_k (u_k² − z_k² / σ²_k + 1/(2σ⁴_k)),

    from ∂f/∂μ = f z, ∂f/∂σ² = f u, ∂z/∂σ² = −z/σ², ∂u/∂σ² = 1/(2σ⁴) − z²/σ².
    With ``prior=(a, b)`` it is the information of the penalised objective: each
    (σ²_k, σ²_k) entry gains −∂²/∂σ⁴ log IG = −(a + 1)/σ⁴_k + 2b/σ⁶_k.
    """
    x = np.asarray(x, dtype=float)
    r_rows, k = weights.shape
    logf = _component_logpdf(x, means, variances)
    _, logp = _joint_logpdf(x, weights, means, variances)
    with np.errstate(invalid="ignore", over="ignore"):
        g = np.exp(logf - logp[:, None, :])
    tau = weights[..., None] * g
    v = variances[..., None]
    z = (x[:, None, :] - means[..., None]) / v
    u = 0.5 * (z * z - 1.0 / v)
    scores = [g[:, j] - g[:, k - 1] for j in range(k - 1)]
    scores += [tau[:, j] * z[:, j] for j in range(k)]
    scores += [tau[:, j] * u[:, j] for j in range(k)]
    p = 3 * k - 1
    info = np.empty((r_rows, p, p))
    for a_ in range(p):
        for b_ in range(a_, p):
            info[:, a_, b_] = info[:, b_, a_] = (scores[a_] * scores[b_]).sum(axis=1)
    mu0, v0 = k - 1, 2 * k - 1  # offsets of the μ and σ² blocks
    for j in range(k - 1):
        for off, t in ((mu0, z), (v0, u)):
            own = (g[:, j] * t[:, j]).sum(axis=1)
            last = (g[:, k - 1] * t[:, k - 1]).sum(axis=1)
            info[:, j, off + j] -= own
            info[:, off + j, j] -= own
            info[:, j, off + k - 1] += last
            info[:, off + k - 1, j] += last
    for j in range(k):
        vj = variances[:, j]
        mm = (tau[:, j] * (z[:, j] ** 2 - 1.0 / v[:, j])).sum(axis=1)
        mv = (tau[:, j] * z[:, j] * (u[:, j] - 1.0 / v[:, j])).sum(axis=1)
        vv = (tau[:, j] * (u[:, j] ** 2 - z[:, j] ** 2 / v[:, j] + 0.5 / v[:, j] ** 2)).sum(axis=1)
        info[:, mu0 + j, mu0 + j] -= mm
        info[:, mu0 + j, v0 + j] -= mv
        info[:, v0 + j, mu0 + j] -= mv
        info[:, v0 + j, v0 + j] -= vv
        if prior is not None:
            a, b = prior
            info[:, v0 + j, v0 + j] += -(a + 1.0) / vj**2 + 2.0 * b / vj**3
    return info


def all_variances(cov: np.ndarray, k: int) -> np.ndarray:
    """Variances (R, 3K) of all parameters (w_1..w_K, μ, σ²) from the covariance
    (R, 3K − 1, 3K − 1) of the free ones (w_1..w_{K−1}, μ, σ²): the delta rule for
    w_K = 1 − Σ_{k<K} w_k gives Var(w_K) = 1ᵀ Σ_ww 1, the sum of the weight block."""
    var_free = np.diagonal(cov, axis1=1, axis2=2)
    var_last = cov[:, : k - 1, : k - 1].sum(axis=(1, 2))
    return np.concatenate([var_free[:, : k - 1], var_last[:, None], var_free[:, k - 1 :]], axis=1)


def standard_errors(fit: MixtureFit) -> np.ndarray:
    """Wald standard errors of all 3K parameters, shape (R, 3K), in the order
    (w_1, …, w_K, μ_1, …, μ_K, σ²_1, …, σ²_K).

    Σ = info⁻¹ (by a batched eigen-decomposition); SE = √diag Σ for the 3K − 1 free
    parameters and, by the delta rule for w_K = 1 − Σ_{k<K} w_k,
    SE(w_K)² = 1ᵀ Σ_ww 1 (the sum of the weight block of Σ). NaN for a replicate whose
    information is NaN or not positive definite (the estimate is not an interior local
    maximum: collapsed, failed, on the variance floor, or a saddle).
    """
    info = fit.info
    r_rows, p, _ = info.shape
    k = (p + 1) // 3
    finite = np.isfinite(info).all(axis=(1, 2))
    safe = np.where(finite[:, None, None], info, np.eye(p))
    lam, vec = np.linalg.eigh(safe)
    pd = finite & (lam > 0).all(axis=1)
    lam = np.where(pd[:, None], lam, 1.0)
    cov = np.einsum("rij,rj,rkj->rik", vec, 1.0 / lam, vec)
    var = all_variances(cov, k)
    with np.errstate(invalid="ignore"):
        se = np.sqrt(var)
    se[~pd] = np.nan
    return se
