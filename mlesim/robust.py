"""Robust estimators of the centre of a symmetric distribution, batched over replicates.

Every function takes a chunk ``x`` of shape (R, n) — R data sets of size n, replicate
axis first — and returns arrays of shape (R,): the estimates, their standard errors
and, for the iterative M-estimators, the iterations used and whether they converged.
Nothing here loops over replicates in Python: the loops are over IRLS iterations (the
rows still iterating, as one array) or over blocks of rows (Hodges–Lehmann).

Conventions shared by all functions
-----------------------------------
- n = 1: the estimate is the observation, the standard error NaN (no spread to see).
- A constant row: the estimate is the constant, the standard error 0, converged.
- The scale of the M-estimators is the normalised MAD about the median,
  s = med|x − med x| / Φ⁻¹(3/4) (:func:`mad_scale`); where more than half of a row is
  tied the MAD is 0 and the estimate is the s → 0 limit, the median.

The estimators of the centre θ, with their standard errors (consistent for the
asymptotic standard deviation under any symmetric F; the trimmed and winsorized means'
also under asymmetric F):

- :func:`huber_location`, :func:`tukey_location` — M-estimators Σ ψ((x − T)/s) = 0,
  SE² = K² s² [Σψ(r)² / (n − 1)] / [Σψ'(r) / n]² / n, the sandwich
  (influence-function) variance with Huber's small-sample factor K (:func:`m_location_se`).
- :func:`trimmed_mean` — Tukey–McLaughlin SE from the winsorized variance.
- :func:`winsorized_mean` — the plug-in of its influence function, with the quantile
  density by spacings.
- :func:`hodges_lehmann` — SE from the length of the signed-rank confidence interval.

References
----------
Beaton, A. E. & Tukey, J. W. (1974). The fitting of power series, meaning polynomials,
illustrated on band-spectroscopic data. *Technometrics* 16, 147–185.
Hodges, J. L. & Lehmann, E. L. (1963). Estimates of location based on rank tests.
*Ann. Math. Statist.* 34, 598–611.
Hollander, M. & Wolfe, D. A. (1999). *Nonparametric Statistical Methods*, 2nd ed.,
Wiley, ch. 3 (§3.2 the estimator, §3.3 the confidence interval).
Huber, P. J. (1964). Robust estimation of a location parameter. *Ann. Math. Statist.*
35, 73–101.
Huber, P. J. (1981). *Robust Statistics*. Wiley (§3.2 M-estimates and their asymptotic
variance; §6.4 joint location and scale, "proposal 2"; §7.6 the factor K).
Huber, P. J. & Ronchetti, E. M. (2009). *Robust Statistics*, 2nd ed., Wiley (the same
material, in chapters 3, 6 and 7).
Lehmann, E. L. (1963). Nonparametric confidence intervals for a shift parameter.
*Ann. Math. Statist.* 34, 1507–1512.
Tukey, J. W. & McLaughlin, D. H. (1963). Less vulnerable confidence and significance
procedures for location based on a single sample: trimming/winsorization 1.
*Sankhyā A* 25, 331–352.
Wilcox, R. R. (2012). *Introduction to Robust Estimation and Hypothesis Testing*, 3rd
ed., Academic Press, ch. 3 (the trimmed and winsorized means and their standard
errors; R functions ``trimse``, ``winse``, ``winvar``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mlesim.lazy import lazy_module

stats = lazy_module("scipy.stats")

#: Φ⁻¹(3/4): the MAD of the standard normal, which the MAD is divided by
MAD_CONSTANT = 0.6744897501960817
#: E|Z| = √(2/π): the mean absolute deviation of the standard normal (the MAD = 0 fallback)
MEAN_ABS_CONSTANT = float(np.sqrt(2.0 / np.pi))
#: at most this many Walsh averages are held at once by :func:`hodges_lehmann`
WALSH_BLOCK = 2**22

#: a function of standardised residuals r (R, n) → (R, n)
ResidualFunction = Callable[[np.ndarray], np.ndarray]


# ------------------------------------------------------------------------ psi functions
def huber_psi(r: np.ndarray, k: float) -> np.ndarray:
    """Huber's ψ_k(r) = max(−k, min(k, r)) (Huber 1964); same shape as ``r``."""
    return np.clip(r, -k, k)


def huber_psi_prime(r: np.ndarray, k: float) -> np.ndarray:
    """ψ_k'(r) = 1 for |r| ≤ k, else 0; same shape as ``r``."""
    return (np.abs(r) <= k).astype(float)


def huber_weights(r: np.ndarray, k: float) -> np.ndarray:
    """IRLS weights w(r) = ψ_k(r) / r = min(1, k / |r|) (1 at r = 0); same shape."""
    return k / np.maximum(np.abs(r), k)


def tukey_psi(r: np.ndarray, c: float) -> np.ndarray:
    """Tukey's biweight ψ_c(r) = r (1 − (r/c)²)² for |r| ≤ c, else 0 (Beaton & Tukey
    1974); same shape as ``r``."""
    u = (r / c) ** 2
    return np.where(u <= 1.0, r * (1.0 - u) ** 2, 0.0)


def tukey_psi_prime(r: np.ndarray, c: float) -> np.ndarray:
    """ψ_c'(r) = (1 − u)(1 − 5u), u = (r/c)², for |r| ≤ c, else 0; same shape. It is
    negative for c/√5 < |r| < c: the biweight redescends."""
    u = (r / c) ** 2
    return np.where(u <= 1.0, (1.0 - u) * (1.0 - 5.0 * u), 0.0)


def tukey_weights(r: np.ndarray, c: float) -> np.ndarray:
    """IRLS weights w(r) = ψ_c(r) / r = (1 − (r/c)²)² for |r| ≤ c, else 0; same shape."""
    u = (r / c) ** 2
    return np.where(u <= 1.0, (1.0 - u) ** 2, 0.0)


# ------------------------------------------------------------------------------- scale
def mad_scale(x: np.ndarray, center: np.ndarray | None = None) -> np.ndarray:
    """Normalised MAD of each row of ``x`` (R, n) about ``center`` (R,; default the row
    medians), shape (R,): s = med_i |x_i − m| / Φ⁻¹(3/4), consistent for σ at the
    normal. It is 0 where more than half of a row is tied at m (the M-estimators then
    take their s → 0 limit, the median: :func:`_m_location`)."""
    m = np.median(x, axis=1) if center is None else np.asarray(center, float)
    return np.median(np.abs(x - m[:, None]), axis=1) / MAD_CONSTANT


def start_scale(x: np.ndarray, center: np.ndarray) -> np.ndarray:
    """A positive starting scale for proposal 2's joint iteration, (R,): the normalised
    MAD, or where it is 0 on a non-constant row the mean absolute deviation about the
    median over √(2/π) (also consistent for σ at the normal); 0 for a constant row."""
    mad = mad_scale(x, center)
    mean_abs = np.abs(x - center[:, None]).mean(axis=1) / MEAN_ABS_CONSTANT
    return np.where(mad > 0, mad, mean_abs)


def huber_beta(k: float) -> float:
    """β(k) = E_Φ ψ_k(Z)² = 2Φ(k) − 1 − 2k φ(k) + 2k² (1 − Φ(k)): the constant that
    makes Huber's proposal-2 scale consistent for σ at the normal (Huber 1981, §6.4)."""
    return float(
        2 * stats.norm.cdf(k) - 1 - 2 * k * stats.norm.pdf(k) + 2 * k**2 * stats.norm.sf(k)
    )


# ---------------------------------------------------------------------- the median
def maritz_jarrett_se(x: np.ndarray) -> np.ndarray:
    """Maritz–Jarrett standard error of the sample median of each row of ``x`` (R, n).

    Returns (R,): sqrt(Σ W_i x₍ᵢ₎² − (Σ W_i x₍ᵢ₎)²) with W_i the Beta(m, n − m + 1)
    probability of ((i − 1)/n, i/n], m = ⌊n/2⌋ + 1 (see :class:`Median`). For even n
    this is the SE of the upper middle order statistic, which the median averages with
    its neighbour. The sorted rows are shifted by their medians first, which leaves the
    variance unchanged and avoids cancellation. NaN for n = 1 (no spread to see).
    """
    n = x.shape[1]
    if n < 2:
        return np.full(x.shape[0], np.nan)
    m = n // 2 + 1
    edges = stats.beta.cdf(np.arange(n + 1) / n, m, n - m + 1)
    w = np.diff(edges)
    xs = np.sort(x, axis=1)
    xs -= xs[:, m - 1, None]
    first = xs @ w
    with np.errstate(invalid="ignore"):
        return np.sqrt(np.maximum((xs * xs) @ w - first**2, 0.0))


# ----------------------------------------------------------------------- M-estimation
def irls_location(
    x: np.ndarray,
    weights: ResidualFunction,
    scale: np.ndarray,
    start: np.ndarray,
    tol: float = 1e-10,
    maxiter: int = 1000,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Solve Σ_i ψ((x_i − T)/s) = 0 for T in each row by iteratively reweighted least
    squares (Huber 1981, §7.8; the algorithm of statsmodels' ``estimate_location``).

    Parameters
    ----------
    x : (R, n) data.
    weights : w(r) = ψ(r)/r, applied to the residuals r = (x − T)/s of shape (R', n).
    scale : (R,) fixed scales s > 0 (rows with s = 0 must be handled by the caller).
    start : (R,) starting values, e.g. the row medians.
    tol, maxiter : a row stops when |T_new − T| < s · tol (converged), or after
        ``maxiter`` updates (not converged).

    Returns
    -------
    t : (R,) the estimates T (the last update).
    n_iter : (R,) updates made.
    converged : (R,) bool. False also where all weights are 0 (no fixed point in reach;
        T is left at its last value).

    Notes
    -----
    T_new = Σ w_i x_i / Σ w_i with w_i = w((x_i − T)/s). A row that has converged stops
    iterating (it is not updated further), so each row is the result of the same
    iteration run on it alone.
    """
    r = x.shape[0]
    t = np.array(start, dtype=float)
    n_iter = np.zeros(r, dtype=int)
    conv = np.zeros(r, dtype=bool)
    active = np.ones(r, dtype=bool)
    for _ in range(maxiter):
        rows = np.flatnonzero(active)
        if rows.size == 0:
            break
        xa, ta, sa = x[rows], t[rows], scale[rows]
        w = weights((xa - ta[:, None]) / sa[:, None])
        den = w.sum(axis=1)
        ok = den > 0
        new = np.where(ok, (w * xa).sum(axis=1) / np.where(ok, den, 1.0), ta)
        done = ok & (np.abs(ta - new) < sa * tol)
        t[rows] = new
        n_iter[rows] += ok
        conv[rows[done]] = True
        active[rows[done | ~ok]] = False
    return t, n_iter, conv


def m_location_se(
    x: np.ndarray,
    t: np.ndarray,
    scale: np.ndarray,
    psi: ResidualFunction,
    psi_prime: ResidualFunction,
) -> np.ndarray:
    """Sandwich standard error of an M-estimate of location, shape (R,).

    With r_i = (x_i − T)/s (x (R, n), t and scale (R,)):

        SE² = K² · s² · [Σ ψ(r_i)² / (n − 1)] / [Σ ψ'(r_i) / n]² / n,
        K = 1 + (1/n) · var(ψ'(r)) / mean(ψ'(r))²,

    the plug-in of the asymptotic variance s² E ψ(r)² / (E ψ'(r))² of an M-estimate
    (Huber 1964; Huber 1981, §3.2) with Huber's small-sample corrections for one
    parameter: the divisor n − 1 and the factor K (Huber 1981, §7.6;
    Huber & Ronchetti 2009, ch. 7; statsmodels' RLM covariance "H1" with p = 1). The
    scale, held fixed, adds nothing at a symmetric F (ψ odd). A constant row (s = 0)
    gets 0; n = 1, or a row with Σ ψ' ≤ 0 (possible only for a redescending ψ), NaN.
    """
    r_rows, n = x.shape
    se = np.full(r_rows, np.nan)
    if n < 2:
        return se
    pos = scale > 0
    safe = np.where(pos, scale, 1.0)
    res = (x - t[:, None]) / safe[:, None]
    dpsi = psi_prime(res)
    mean_d = dpsi.mean(axis=1)
    ok = pos & (mean_d > 0)
    md = np.where(ok, mean_d, 1.0)
    k_factor = 1.0 + dpsi.var(axis=1) / md**2 / n
    var = k_factor**2 * safe**2 * (psi(res) ** 2).sum(axis=1) / (n - 1) / md**2 / n
    se[ok] = np.sqrt(var[ok])
    se[~pos] = 0.0
    return se


def _m_location(
    x: np.ndarray,
    weights: ResidualFunction,
    psi: ResidualFunction,
    psi_prime: ResidualFunction,
    tol: float,
    maxiter: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """M-estimate with the MAD scale (:func:`mad_scale`) from the median.

    Where the MAD is 0 — a constant row, or more than half of it tied at the median —
    the estimate is the s → 0 limit of Σ ψ((x − T)/s) = 0, which is Σ sign(x − T) = 0:
    the median, with its Maritz–Jarrett SE (0 for a constant row). A non-robust fallback
    scale would let one outlier among tied data carry the estimate away.
    """
    med = np.median(x, axis=1)
    scale = mad_scale(x, med)
    pos = scale > 0
    t, n_iter, conv = med.copy(), np.zeros(x.shape[0], dtype=int), np.ones(x.shape[0], bool)
    se = np.zeros(x.shape[0])
    if pos.any():
        t[pos], n_iter[pos], conv[pos] = irls_location(
            x[pos], weights, scale[pos], med[pos], tol, maxiter
        )
        se[pos] = m_location_se(x[pos], t[pos], scale[pos], psi, psi_prime)
    if (~pos).any():
        se[~pos] = maritz_jarrett_se(x[~pos])
    return t, se, n_iter, conv


def huber_location(
    x: np.ndarray,
    k: float = 1.345,
    scale: str = "mad",
    tol: float = 1e-10,
    maxiter: int = 1000,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Huber M-estimator of location of each row of ``x`` (R, n) (Huber 1964).

    Parameters
    ----------
    x : (R, n) data.
    k : tuning constant of ψ_k(r) = clip(r, −k, k); 1.345 gives 95% efficiency at the
        normal.
    scale : ``"mad"`` — T solves Σ ψ_k((x − T)/s) = 0 with s the fixed normalised MAD
        about the median (:func:`mad_scale`), by IRLS (:func:`irls_location`) from the
        median; ``"proposal2"`` — Huber's proposal 2 (:func:`huber_proposal2`): T and s
        jointly.
    tol, maxiter : convergence: |ΔT| < s · tol (and |Δs| ≤ s · tol for proposal 2),
        at most ``maxiter`` iterations.

    Returns
    -------
    est, se : (R,) the estimates and their sandwich SEs (:func:`m_location_se`, at the
        fixed or the joint scale).
    n_iter : (R,) iterations.
    converged : (R,) bool.
    """
    if scale == "proposal2":
        return huber_proposal2(x, k, tol, maxiter)
    if scale != "mad":
        raise ValueError(f"scale must be 'mad' or 'proposal2', got {scale!r}")
    return _m_location(
        x,
        lambda r: huber_weights(r, k),
        lambda r: huber_psi(r, k),
        lambda r: huber_psi_prime(r, k),
        tol,
        maxiter,
    )


def huber_proposal2(
    x: np.ndarray, k: float = 1.345, tol: float = 1e-10, maxiter: int = 1000
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Huber's proposal 2: location T and scale s of each row of ``x`` (R, n) jointly.

    (T, s) solves (Huber 1964; Huber 1981, §6.4)

        Σ ψ_k((x_i − T)/s) = 0,    Σ ψ_k((x_i − T)/s)² = (n − 1) β(k),

    β(k) = E_Φ ψ_k(Z)² (:func:`huber_beta`), n − 1 for the location estimated (as in
    MASS's ``hubers`` and statsmodels' ``robust.scale.Huber``). Iteration from the median
    and the normalised MAD (Huber 1981, §6.7; statsmodels' algorithm):

        T' = mean_i clip(x_i, T − k s, T + k s),
        s'² = Σ_i [1{|x_i − T| ≤ k s} (x_i − T')² + 1{|x_i − T| > k s} (k s)²] / ((n − 1) β),

    until |s' − s| ≤ s' · tol and |T' − T| ≤ s' · tol; the result is (T', s').

    Returns
    -------
    est, se, n_iter, converged : (R,) each; SE by :func:`m_location_se` at the joint s.
    A row with too many ties has no positive solution s (s shrinks towards 0 at every
    step): it ends not converged.
    """
    r_rows, n = x.shape
    med = np.median(x, axis=1)
    s = start_scale(x, med)
    t = med.copy()
    n_iter = np.zeros(r_rows, dtype=int)
    conv = np.ones(r_rows, dtype=bool)
    if n < 2:
        return t, np.full(r_rows, np.nan), n_iter, conv
    beta = huber_beta(k)
    active = s > 0
    conv[active] = False
    for _ in range(maxiter):
        rows = np.flatnonzero(active)
        if rows.size == 0:
            break
        xa, ta, sa = x[rows], t[rows][:, None], s[rows][:, None]
        new_t = np.clip(xa, ta - k * sa, ta + k * sa).mean(axis=1)
        inside = np.abs((xa - ta) / sa) <= k
        num = np.where(inside, (xa - new_t[:, None]) ** 2, (k * sa) ** 2).sum(axis=1)
        new_s = np.sqrt(num / ((n - 1) * beta))
        done = (np.abs(sa[:, 0] - new_s) <= new_s * tol) & (np.abs(ta[:, 0] - new_t) <= new_s * tol)
        done |= new_s <= 0  # cannot happen for a non-constant row; stop rather than divide by 0
        t[rows], s[rows] = new_t, new_s
        n_iter[rows] += 1
        conv[rows[done & (new_s > 0)]] = True
        active[rows[done]] = False
    se = m_location_se(x, t, s, lambda r: huber_psi(r, k), lambda r: huber_psi_prime(r, k))
    return t, se, n_iter, conv


def tukey_location(
    x: np.ndarray, c: float = 4.685, tol: float = 1e-10, maxiter: int = 1000
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Tukey biweight M-estimator of location of each row of ``x`` (R, n).

    T solves Σ ψ_c((x − T)/s) = 0, ψ_c the biweight (:func:`tukey_psi`; c = 4.685
    gives 95% efficiency at the normal), s the fixed normalised MAD about the median
    (:func:`mad_scale`), by IRLS (:func:`irls_location`) from the median: ψ_c
    redescends, so the root found is the one the iteration from the median reaches
    (Beaton & Tukey 1974; Huber 1981, ch. 4). Points beyond c·s get weight 0.

    Returns
    -------
    est, se, n_iter, converged : (R,) each; SE by :func:`m_location_se` (NaN where
    Σ ψ'(r) ≤ 0: the root is not a stable one).
    """
    return _m_location(
        x,
        lambda r: tukey_weights(r, c),
        lambda r: tukey_psi(r, c),
        lambda r: tukey_psi_prime(r, c),
        tol,
        maxiter,
    )


# --------------------------------------------------------------- trimming, winsorizing
def trim_count(n: int, proportion: float) -> int:
    """g = ⌊γ n⌋, the number of observations trimmed (or winsorized) at each end,
    computed as ``int(proportion * n)`` in floating point — exactly scipy's
    ``trim_mean`` and ``mstats.winsorize`` (inclusive limits) and Wilcox's R code."""
    return int(proportion * n)


def winsorize(x: np.ndarray, proportion: float) -> np.ndarray:
    """Winsorize each row of ``x`` (R, n): the g = :func:`trim_count` smallest values
    become x₍g+1₎ and the g largest x₍n−g₎; shape (R, n)."""
    n = x.shape[1]
    g = trim_count(n, proportion)
    if g == 0:
        return x.copy()
    part = np.partition(x, (g, n - g - 1), axis=1)
    return np.clip(x, part[:, g, None], part[:, n - g - 1, None])


def _winsorized_sd(x: np.ndarray, proportion: float) -> np.ndarray:
    """Winsorized standard deviation (ddof = 1) of each row, (R,); NaN for n = 1."""
    if x.shape[1] < 2:
        return np.full(x.shape[0], np.nan)
    return winsorize(x, proportion).std(axis=1, ddof=1)


def trimmed_mean(x: np.ndarray, proportion: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric γ-trimmed mean of each row of ``x`` (R, n) and its standard error.

    With g = ⌊γ n⌋ (:func:`trim_count`) and h = n − 2g, the estimate is the mean of
    x₍g+1₎, …, x₍n−g₎ (scipy's ``trim_mean``). The standard error is Tukey &
    McLaughlin's (1963; Wilcox 2012, ch. 3, ``trimse``)

        SE = s_w / ((1 − 2g/n) √n) = s_w √n / h,

    s_w the winsorized standard deviation (ddof = 1, the same g). Wilcox writes
    1 − 2γ; this uses the proportion actually trimmed, g/n, which is the same when γn
    is a whole number and keeps the SE equal to the mean's s/√n when g = 0 (small n).

    Returns
    -------
    est, se : (R,); SE NaN for n = 1 and where h < 2 (a single middle observation:
    the winsorized sample is constant and says nothing about the spread).
    """
    r_rows, n = x.shape
    g = trim_count(n, proportion)
    h = n - 2 * g
    if g == 0:
        est = x.mean(axis=1)
    else:
        part = np.partition(x, (g, n - g - 1), axis=1)
        est = part[:, g : n - g].mean(axis=1)
    if n < 2 or h < 2:
        return est, np.full(r_rows, np.nan)
    return est, _winsorized_sd(x, proportion) * np.sqrt(n) / h


def winsorized_mean(x: np.ndarray, proportion: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """γ-winsorized mean of each row of ``x`` (R, n) and its standard error.

    With g = ⌊γ n⌋ (:func:`trim_count`, scipy's ``mstats.winsorize`` convention) the
    estimate is the mean of the winsorized row (:func:`winsorize`). The standard error
    is the plug-in of its influence function at any F (differentiate
    T(F) = ∫ clip(x, ξ_l, ξ_u) dF with ξ_l = F⁻¹(γ), ξ_u = F⁻¹(1 − γ); Huber 1981, §3.3,
    for the symmetric case):

        IF(x) = clip(x, ξ_l, ξ_u) − T + γ (γ − 1{x ≤ ξ_l}) / f(ξ_l)
                + γ (1 − γ − 1{x ≤ ξ_u}) / f(ξ_u),

    SE² = var_i(IF(x_i)) / n, with γ = g/n, ξ the order statistics x₍g+1₎ and x₍n−g₎,
    and 1/f(ξ) by the spacing estimator n (x₍i+m₎ − x₍i−m₎) / (2m) (Siddiqui 1960;
    bandwidth m = ⌈n h⌉ of Hall & Sheather 1988, :func:`spacing_bandwidth`; on the tail
    side at most g − 1, :func:`quantile_density`).

    Wilcox's s_w (n − 1)/((h − 1)√n) (``winse``) leaves out the two density terms: it is
    right at the normal but 7% small at t₃ and 0.45× the spread under one-sided
    outliers whose quantile falls in a gap. This SE is consistent, and errs on the large
    side where it errs (simulated SE/SD at n = 100: normal 1.05, t₃ 1.13, 5% outliers
    at N(10, 1) 1.48; 1.00, 1.03 and 1.56 at n = 400). The window reaches at most
    g − 1 order statistics beyond a quantile into the tail, so a single wild value
    (winsorized away from the estimate) stays out of its SE too. One case no SE saves:
    a contamination fraction equal to γ, where the estimate's law is not normal
    (coverage 0.86 at n = 100).

    Returns
    -------
    est, se : (R,); SE NaN for n = 1 and where h = n − 2g < 2 (nothing left between the
    quantiles); for g = 0 the mean's s/√n.
    """
    r_rows, n = x.shape
    w = winsorize(x, proportion)
    est = w.mean(axis=1)
    g = trim_count(n, proportion)
    if n < 2 or n - 2 * g < 2:
        return est, np.full(r_rows, np.nan)
    infl = w - est[:, None]
    if g > 0:
        xs = np.sort(x, axis=1)
        gam = g / n
        for i, p, tail in ((g, gam, -1), (n - g - 1, 1.0 - gam, 1)):
            q = quantile_density(xs, i, spacing_bandwidth(n, p), tail, g - 1)
            step = p - (x <= xs[:, i, None])
            infl = infl + gam * step * q[:, None]
    return est, infl.std(axis=1, ddof=1) / np.sqrt(n)


def spacing_bandwidth(n: int, p: float, level: float = 0.95) -> int:
    """m = max(1, ⌈n h⌉) order statistics either side, with Hall & Sheather's (1988)
    h = n^(−1/3) z^(2/3) [1.5 φ(q)² / (2q² + 1)]^(1/3), q = Φ⁻¹(p), z = Φ⁻¹((1 + level)/2)."""
    q = stats.norm.ppf(p)
    z = stats.norm.ppf((1 + level) / 2)
    h = n ** (-1 / 3) * z ** (2 / 3) * (1.5 * stats.norm.pdf(q) ** 2 / (2 * q * q + 1)) ** (1 / 3)
    return max(1, int(np.ceil(n * h)))


def quantile_density(
    xs: np.ndarray, i: int, m: int, tail: int = 0, reach: int | None = None
) -> np.ndarray:
    """1/f(ξ) at the order statistic of index ``i`` (0-based) of sorted rows ``xs``
    (R, n): n (x₍hi₎ − x₍lo₎) / (hi − lo) over the window i ± m, clipped to the sample.

    ``tail`` (−1 lower, +1 upper) and ``reach`` cap the window on the tail side at
    ``reach`` order statistics beyond i — for a winsorized mean, g − 1, so that the g
    values it pulls in (a wild one among them) stay out of its SE — while the middle
    side keeps all m. Shape (R,).
    """
    n = xs.shape[1]
    down = m if tail >= 0 or reach is None else min(m, reach)
    up = m if tail <= 0 or reach is None else min(m, reach)
    lo, hi = max(i - down, 0), min(i + up, n - 1)
    return n * (xs[:, hi] - xs[:, lo]) / (hi - lo)


# ---------------------------------------------------------------------- Hodges–Lehmann
def signed_rank_ci_rank(n: int, level: float = 0.95) -> int:
    """The rank k of the lower end W₍k₎ of the signed-rank confidence interval
    [W₍k₎, W₍N−k+1₎] for the centre, by the normal approximation (Hollander & Wolfe
    1999, §3.3):

        k = ⌊n(n+1)/4 − z √(n(n+1)(2n+1)/24) + ½⌋ (the nearest integer), at least 1,

    z = Φ⁻¹((1 + level)/2), N = n(n+1)/2.
    """
    z = stats.norm.ppf(0.5 + level / 2)
    c = n * (n + 1) / 4 - z * np.sqrt(n * (n + 1) * (2 * n + 1) / 24)
    return max(int(np.floor(c + 0.5)), 1)


def walsh_averages(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The N = n(n+1)/2 Walsh averages (x_i + x_j)/2, i ≤ j, of each row of ``x`` (R, n),
    shape (R, N), in the order of ``np.triu_indices(n)``; written into ``out`` (R, N) if
    given. Built by a loop over i (not over rows), with no index arrays."""
    r_rows, n = x.shape
    if out is None:
        out = np.empty((r_rows, n * (n + 1) // 2))
    pos = 0
    for i in range(n):
        np.add(x[:, i : i + 1], x[:, i:], out=out[:, pos : pos + n - i])
        pos += n - i
    out *= 0.5
    return out


def hodges_lehmann(
    x: np.ndarray, level: float = 0.95, block: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Hodges–Lehmann estimate of the centre of each row of ``x`` (R, n) and its SE.

    The estimate is the median of the N = n(n+1)/2 Walsh averages W = (x_i + x_j)/2,
    i ≤ j (Hodges & Lehmann 1963; Hollander & Wolfe 1999, §3.2). Its standard error is
    read off the signed-rank confidence interval (Hollander & Wolfe 1999, §3.3):

        SE = (W₍N−k+1₎ − W₍k₎) / (2z),   k = :func:`signed_rank_ci_rank`,

    z = Φ⁻¹((1 + level)/2): the interval's length over that of a normal interval,
    a consistent estimate of the asymptotic SD 1 / (√(12n) ∫f²) (Lehmann 1963).

    Memory: rows are processed in blocks of max(1, ⌊block / N⌋) rows, one buffer of
    Walsh averages reused, partitioned in place; ``block`` defaults to
    min(2**22, 4 R n) — at most 2**22 averages (32 MiB), and at most 4 per observation of
    ``x`` (32 bytes per observation, within the engine's ``WORKING_BYTES``) while one
    row's N fits in that. A single row needs its N averages whatever the block:
    4 n(n+1) bytes, e.g. 100 MB at n = 5000.

    Returns
    -------
    est, se : (R,); SE NaN for n = 1, 0 for a constant row.
    """
    r_rows, n = x.shape
    if n < 2:
        return x[:, 0].astype(float), np.full(r_rows, np.nan)
    n_walsh = n * (n + 1) // 2
    k = signed_rank_ci_rank(n, level)
    mid = [(n_walsh - 1) // 2, n_walsh // 2]  # the same index when N is odd
    kth = sorted({k - 1, n_walsh - k, *mid})
    z = stats.norm.ppf(0.5 + level / 2)
    est, se = np.empty(r_rows), np.empty(r_rows)
    if block is None:
        block = min(WALSH_BLOCK, 4 * x.size)
    step = min(r_rows, max(1, block // n_walsh))
    buffer = np.empty((step, n_walsh))
    for lo in range(0, r_rows, step):
        xb = x[lo : lo + step]
        walsh = walsh_averages(xb, buffer[: xb.shape[0]])
        walsh.partition(kth, axis=1)
        est[lo : lo + step] = 0.5 * (walsh[:, mid[0]] + walsh[:, mid[1]])
        se[lo : lo + step] = (walsh[:, n_walsh - k] - walsh[:, k - 1]) / (2 * z)
    return est, se
