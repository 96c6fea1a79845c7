"""Asymptotic theory of robust location estimators under Tukey's contamination model.

The data law is the normal mixture

    F_ε = (1 − ε) N(μ, σ²) + ε N(m, s²),

clean part N(μ, σ²) (by default the standard normal, centre 0) and contamination
N(m, s²): m = 0, s² = 100 is the "gross errors" model, m = 10, s² = 1 "shifted outliers"
(Tukey 1960; Huber & Ronchetti 2009, ch. 1). Every quantity here is computed for this
mixture in closed form or by one-dimensional root finding and quadrature — no sampling.

Estimators (``name``), their population functionals T(F) and options:

- ``mean``: T = ∫ x dF.
- ``median``: T = F⁻¹(1/2).
- ``trimmed_mean`` (``proportion`` γ ∈ [0, 1/2), default 0.1):
  T = (1 − 2γ)⁻¹ ∫_γ^{1−γ} F⁻¹(u) du.
- ``winsorized_mean`` (``proportion`` γ, default 0.1):
  T = γ F⁻¹(γ) + ∫_γ^{1−γ} F⁻¹(u) du + γ F⁻¹(1 − γ).
- ``huber`` (``k`` > 0, default 1.345): E ψ_k((X − T)/S) = 0, ψ_k(z) = max(−k, min(k, z)).
- ``tukey`` (``c`` > 0, default 4.685): E ψ_c((X − T)/S) = 0 with the biweight
  ψ_c(z) = z (1 − (z/c)²)² 1{|z| ≤ c}; of the roots, the one reached by the population
  IRLS T ← E[w X]/E[w], w = ψ_c(Z)/Z, started at the median functional.
- ``hodges_lehmann``: T solves P((X₁ + X₂)/2 ≤ T) = 1/2, X₁, X₂ iid F.

The scale of both M-estimators is the normalised MAD about the median,
S = D / Φ⁻¹(3/4) with D solving F(M + D) − F(M − D) = 1/2, M = F⁻¹(1/2) — the population
version of statsmodels' ``mad`` followed by ``estimate_location``.

Public functions: :func:`functional`, :func:`influence`, :func:`asymptotic_variance`,
:func:`efficiency`, :func:`breakdown_point`, :func:`gross_error_sensitivity`, and the
mixture's :func:`mixture_cdf`, :func:`mixture_pdf`, :func:`mixture_quantile`.

The influence functions are those at F_ε itself (not only at the normal), so the
asymptotic variances V(T, F_ε) = ∫ IF(x; T, F_ε)² dF_ε(x) hold at any ε. For the
M-estimators the MAD's own influence enters: at an asymmetric F_ε (m ≠ μ) the location
IF is (Hampel 1974; Hampel et al. 1986, ch. 2 and 4; Huber & Ronchetti 2009, ch. 6)

    IF_T(x) = [S ψ(z_x) − E{Z ψ'(Z)} IF_S(x)] / E ψ'(Z),   Z = (X − T)/S,

which reduces to the familiar S ψ(z_x)/E ψ'(Z) when F_ε is symmetric about T (then
E{Z ψ'(Z)} = 0). Asymptotic normality of the M-estimators needs the root to be regular
(E ψ'(Z) ≠ 0); where it is not (a redescending ψ at a bifurcation of the roots) the
variance raises.

References
----------
Beaton, A. E. & Tukey, J. W. (1974). The fitting of power series, meaning polynomials,
illustrated on band-spectroscopic data. *Technometrics* 16, 147–185 (the biweight).
Hampel, F. R. (1974). The influence curve and its role in robust estimation.
*J. Amer. Statist. Assoc.* 69, 383–393 (the IF of the median and of the MAD).
Hampel, F. R., Ronchetti, E. M., Rousseeuw, P. J. & Stahel, W. A. (1986). *Robust
Statistics: The Approach Based on Influence Functions*. Wiley (ch. 2: the IF, the
gross-error sensitivity, the breakdown point, V = ∫ IF² dF, M-estimators of location
and the MAD; ch. 4: several parameters, i.e. location with an estimated scale).
Hodges, J. L. & Lehmann, E. L. (1963). Estimates of location based on rank tests.
*Ann. Math. Statist.* 34, 598–611.
Huber, P. J. (1984). Finite sample breakdown of M- and P-estimators. *Ann. Statist.* 12,
119–126.
Huber, P. J. & Ronchetti, E. M. (2009). *Robust Statistics*, 2nd ed., Wiley (ch. 1
contamination neighbourhoods; ch. 3 M-, L- and R-estimates with their influence
functions, asymptotic variances and breakdown; ch. 6 location with a scale).
Lehmann, E. L. (1963). Nonparametric confidence intervals for a shift parameter.
*Ann. Math. Statist.* 34, 1507–1512.
Staudte, R. G. & Sheather, S. J. (1990). *Robust Estimation and Testing*. Wiley (the
influence function and breakdown; the trimmed and winsorized means, their IFs and
asymptotic variances).
Tukey, J. W. (1960). A survey of sampling from contaminated distributions. In
*Contributions to Probability and Statistics*, Stanford Univ. Press, 448–485.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from mlesim.lazy import lazy_module

integrate = lazy_module("scipy.integrate")
optimize = lazy_module("scipy.optimize")
special = lazy_module("scipy.special")

#: Φ⁻¹(3/4): the MAD of the standard normal, which the MAD is divided by
MAD_CONSTANT = 0.6744897501960817

#: the estimators, with their options and defaults
ESTIMATORS: dict[str, dict[str, float]] = {
    "mean": {},
    "median": {},
    "trimmed_mean": {"proportion": 0.1},
    "winsorized_mean": {"proportion": 0.1},
    "huber": {"k": 1.345},
    "tukey": {"c": 4.685},
    "hodges_lehmann": {},
}

_SQRT2PI = math.sqrt(2.0 * math.pi)
#: quadrature range, in standard deviations of each mixture component: the normal mass
#: beyond ±12 is 3.6e-33, negligible against the 1e-12 accuracy aimed at
_TAIL = 12.0


# ------------------------------------------------------------------------ validation
def _options(name: str, options: dict[str, Any]) -> dict[str, float]:
    """The estimator's options with defaults filled in; unknown names or options and
    out-of-range values raise ValueError."""
    if name not in ESTIMATORS:
        raise ValueError(f"unknown estimator {name!r}; expected one of {sorted(ESTIMATORS)}")
    allowed = ESTIMATORS[name]
    unknown = set(options) - set(allowed)
    if unknown:
        raise ValueError(
            f"{name}: unknown option(s) {sorted(unknown)}; allowed: {sorted(allowed) or 'none'}"
        )
    opts = {**allowed, **{k: float(v) for k, v in options.items()}}
    if "proportion" in opts and not 0.0 <= opts["proportion"] < 0.5:
        raise ValueError(f"{name}: proportion must be in [0, 0.5), got {opts['proportion']}")
    for key in ("k", "c"):
        if key in opts and not (opts[key] > 0 and math.isfinite(opts[key])):
            raise ValueError(f"{name}: {key} must be a finite number > 0, got {opts[key]}")
    return opts


# -------------------------------------------------------------------------- mixture
@dataclass(frozen=True)
class _Mixture:
    """A finite normal mixture Σ_j w_j N(mu_j, sd_j²) (components of weight 0 dropped)."""

    w: np.ndarray
    mu: np.ndarray
    sd: np.ndarray

    def cdf(self, x: ArrayLike) -> np.ndarray:
        x = np.asarray(x, dtype=float)[..., None]
        return np.sum(self.w * special.ndtr((x - self.mu) / self.sd), axis=-1)

    def sf(self, x: ArrayLike) -> np.ndarray:
        x = np.asarray(x, dtype=float)[..., None]
        return np.sum(self.w * special.ndtr((self.mu - x) / self.sd), axis=-1)

    def pdf(self, x: ArrayLike) -> np.ndarray:
        x = np.asarray(x, dtype=float)[..., None]
        z = (x - self.mu) / self.sd
        return np.sum(self.w * np.exp(-0.5 * z * z) / (_SQRT2PI * self.sd), axis=-1)

    @property
    def support(self) -> tuple[float, float]:
        """An interval holding all but ~1e-33 of the mass."""
        return float(np.min(self.mu - 40 * self.sd)), float(np.max(self.mu + 40 * self.sd))

    def mean(self) -> float:
        return float(np.sum(self.w * self.mu))

    def var(self) -> float:
        mean = self.mean()
        return float(np.sum(self.w * (self.sd**2 + (self.mu - mean) ** 2)))


def _mixture(eps: float, m: float, s2: float, mu: float = 0.0, sigma2: float = 1.0) -> _Mixture:
    eps, m, s2, mu, sigma2 = (float(v) for v in (eps, m, s2, mu, sigma2))
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"eps must be in [0, 1), got {eps}")
    if not (s2 > 0 and math.isfinite(s2)):
        raise ValueError(f"s2 must be a finite number > 0, got {s2}")
    if not (sigma2 > 0 and math.isfinite(sigma2)):
        raise ValueError(f"sigma2 must be a finite number > 0, got {sigma2}")
    if not (math.isfinite(m) and math.isfinite(mu)):
        raise ValueError(f"m and mu must be finite, got m={m}, mu={mu}")
    if eps == 0.0:
        return _Mixture(np.array([1.0]), np.array([mu]), np.array([math.sqrt(sigma2)]))
    return _Mixture(
        np.array([1.0 - eps, eps]),
        np.array([mu, m]),
        np.array([math.sqrt(sigma2), math.sqrt(s2)]),
    )


def _root(f: Callable[[float], float], lo: float, hi: float) -> float:
    return float(optimize.brentq(f, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps))


def _quantile(mix: _Mixture, u: float) -> float:
    lo, hi = mix.support
    if u <= 0.5:
        return _root(lambda x: float(mix.cdf(x)) - u, lo, hi)
    return _root(lambda x: (1.0 - u) - float(mix.sf(x)), lo, hi)


def mixture_cdf(
    x: ArrayLike, eps: float, m: float, s2: float, *, mu: float = 0.0, sigma2: float = 1.0
) -> np.ndarray:
    """F_ε(x) = (1 − ε) Φ((x − μ)/σ) + ε Φ((x − m)/s), elementwise."""
    return _mixture(eps, m, s2, mu, sigma2).cdf(x)


def mixture_pdf(
    x: ArrayLike, eps: float, m: float, s2: float, *, mu: float = 0.0, sigma2: float = 1.0
) -> np.ndarray:
    """f_ε(x) = (1 − ε) φ((x − μ)/σ)/σ + ε φ((x − m)/s)/s, elementwise."""
    return _mixture(eps, m, s2, mu, sigma2).pdf(x)


def mixture_quantile(
    u: ArrayLike, eps: float, m: float, s2: float, *, mu: float = 0.0, sigma2: float = 1.0
) -> np.ndarray:
    """F_ε⁻¹(u) for u ∈ (0, 1), elementwise.

    Accurate to 1e-14 relative, or to the cdf's rounding where that is coarser: in the
    near-empty gap between well separated components the root is only determined to
    ~1e-16/f(x) (f ~ 1e-5 there for m = 10).

    Vectorised safeguarded Newton: a bracket from the cdf tabulated on a grid, then
    Newton steps on F(x) − u (upper half: on (1 − u) − (1 − F(x)), to keep the tail
    accurate) that fall back to bisection whenever they leave the bracket. Handles the
    near-empty gap between well separated components (tiny density) by the bisection.
    """
    mix = _mixture(eps, m, s2, mu, sigma2)
    u = np.asarray(u, dtype=float)
    if np.any(~((u > 0) & (u < 1))):
        raise ValueError("u must lie in (0, 1)")
    flat = u.ravel()
    lo_s, hi_s = mix.support
    grid = np.union1d(
        np.linspace(lo_s, hi_s, 65537),
        (mix.mu[:, None] + mix.sd[:, None] * np.linspace(-9, 9, 7201)).ravel(),
    )
    upper = flat > 0.5
    target = np.where(upper, 1.0 - flat, flat)

    def resid(x: np.ndarray, up: np.ndarray, tgt: np.ndarray) -> np.ndarray:
        # increasing in x in both halves
        out = np.empty_like(x)
        out[up] = tgt[up] - mix.sf(x[up])
        out[~up] = mix.cdf(x[~up]) - tgt[~up]
        return out

    gc = mix.cdf(grid)
    i = np.clip(np.searchsorted(gc, flat), 1, grid.size - 1)
    lo, hi = grid[i - 1].copy(), grid[i].copy()
    span = np.maximum(gc[i] - gc[i - 1], 1e-300)
    x = lo + (hi - lo) * np.clip((flat - gc[i - 1]) / span, 0.0, 1.0)
    active = np.arange(flat.size)
    for _ in range(200):
        if active.size == 0:
            break
        xa, la, ha = x[active], lo[active], hi[active]
        r = resid(xa, upper[active], target[active])
        la = np.where(r < 0, xa, la)
        ha = np.where(r > 0, xa, ha)
        dens = mix.pdf(xa)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = xa - r / dens
        tol = 1e-14 * np.maximum(1.0, np.abs(xa))
        at_rounding = np.abs(r) <= 4 * np.finfo(float).eps * target[active]
        converged = at_rounding | (np.abs(newton - xa) <= tol) | (ha - la <= tol)
        ok = np.isfinite(newton) & (newton >= la) & (newton <= ha)
        new = np.where(converged, xa, np.where(ok, newton, 0.5 * (la + ha)))
        new = np.where(converged & ok, newton, new)
        done = converged
        x[active], lo[active], hi[active] = new, la, ha
        active = active[~done]
    if active.size:  # pragma: no cover - the bracket halves at worst, 200 steps suffice
        raise RuntimeError("mixture_quantile did not converge")
    return x.reshape(u.shape)


# ------------------------------------------------------------- truncated normal moments
def _between(alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Φ(β) − Φ(α) for α ≤ β, accurate in both tails."""
    return np.where(
        alpha > 0,
        special.ndtr(-alpha) - special.ndtr(-beta),
        special.ndtr(beta) - special.ndtr(alpha),
    )


def _phi(z: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * z * z) / _SQRT2PI


def _truncated_moments(
    a: np.ndarray, b: np.ndarray, lo: float, hi: float, jmax: int
) -> list[np.ndarray]:
    """M_j = E[Z^j 1{lo < Z < hi}] for Z ~ N(a, b²), j = 0..jmax (finite lo < hi).

    Integrating z^{j−1} (z − a) against the density by parts gives the recursion
    M_j = a M_{j−1} + (j − 1) b² M_{j−2} − b [hi^{j−1} φ(β) − lo^{j−1} φ(α)],
    α = (lo − a)/b, β = (hi − a)/b, M_0 = Φ(β) − Φ(α).
    """
    alpha, beta = (lo - a) / b, (hi - a) / b
    pa, pb = _phi(alpha), _phi(beta)
    out = [_between(alpha, beta)]
    prev2 = np.zeros_like(out[0])
    for j in range(1, jmax + 1):
        mj = (
            a * out[j - 1] + (j - 1) * b * b * prev2 - b * (hi ** (j - 1) * pb - lo ** (j - 1) * pa)
        )
        prev2 = out[j - 1]
        out.append(mj)
    return out


# ----------------------------------------------------------------- psi-function moments
def _standardised(mix: _Mixture, t: float, s: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sd of Z = (X − t)/s within each component."""
    return (mix.mu - t) / s, mix.sd / s


def _huber_moments(mix: _Mixture, t: float, s: float, k: float) -> dict[str, float]:
    """E ψ_k(Z), E ψ_k'(Z), E Z ψ_k'(Z) for Z = (X − t)/s, X ~ mix."""
    a, b = _standardised(mix, t, s)
    mom = _truncated_moments(a, b, -k, k, 1)
    upper = special.ndtr((a - k) / b)  # P(Z > k)
    lower = special.ndtr((-k - a) / b)  # P(Z < −k)
    return {
        "psi": float(np.sum(mix.w * (mom[1] + k * upper - k * lower))),
        "dpsi": float(np.sum(mix.w * mom[0])),
        "z_dpsi": float(np.sum(mix.w * mom[1])),
    }


def _tukey_moments(mix: _Mixture, t: float, s: float, c: float) -> dict[str, float]:
    """E w(Z), E ψ_c(Z) (= E Z w(Z)), E ψ_c'(Z), E Z ψ_c'(Z) for Z = (X − t)/s.

    On |z| ≤ c: w = 1 − 2z²/c² + z⁴/c⁴, ψ = z w, ψ' = 1 − 6z²/c² + 5z⁴/c⁴.
    """
    a, b = _standardised(mix, t, s)
    mo = _truncated_moments(a, b, -c, c, 5)
    c2, c4 = c * c, c**4

    def e(vals: np.ndarray) -> float:
        return float(np.sum(mix.w * vals))

    return {
        "w": e(mo[0] - 2 * mo[2] / c2 + mo[4] / c4),
        "psi": e(mo[1] - 2 * mo[3] / c2 + mo[5] / c4),
        "dpsi": e(mo[0] - 6 * mo[2] / c2 + 5 * mo[4] / c4),
        "z_dpsi": e(mo[1] - 6 * mo[3] / c2 + 5 * mo[5] / c4),
    }


def _huber_psi(z: np.ndarray, k: float) -> np.ndarray:
    return np.clip(z, -k, k)


def _tukey_psi(z: np.ndarray, c: float) -> np.ndarray:
    u = (z / c) ** 2
    return np.where(u <= 1.0, z * (1.0 - u) ** 2, 0.0)


# ------------------------------------------------------------------------ functionals
@dataclass(frozen=True)
class _Fit:
    """T(F) with what its influence function needs."""

    t: float
    extra: dict[str, float]


def _median(mix: _Mixture) -> float:
    return _quantile(mix, 0.5)


def _mad(mix: _Mixture, med: float) -> float:
    """D solving F(M + D) − F(M − D) = 1/2."""
    lo, hi = mix.support
    return _root(lambda d: float(mix.cdf(med + d) - mix.cdf(med - d)) - 0.5, 1e-300, hi - lo)


def _inner_mean(mix: _Mixture, lo: float, hi: float) -> float:
    """∫_lo^hi x dF(x) = Σ_j w_j E[X_j; lo < X_j < hi] (closed form)."""
    return float(np.sum(mix.w * _truncated_moments(mix.mu, mix.sd, lo, hi, 1)[1]))


def _hl_cdf(mix: _Mixture) -> tuple[Callable[[float], float], Callable[[float], float]]:
    """G(t) = P((X₁ + X₂)/2 ≤ t) and its density g(t): the Walsh average of two iid
    normal-mixture draws is the normal mixture Σ_jk w_j w_k N((μ_j + μ_k)/2,
    (σ_j² + σ_k²)/4)."""
    w = np.outer(mix.w, mix.w).ravel()
    centre = (0.5 * (mix.mu[:, None] + mix.mu[None, :])).ravel()
    sd = (0.5 * np.sqrt(mix.sd[:, None] ** 2 + mix.sd[None, :] ** 2)).ravel()
    walsh = _Mixture(w, centre, sd)
    return (lambda t: float(walsh.cdf(t))), (lambda t: float(walsh.pdf(t)))


def _fit(name: str, mix: _Mixture, opts: dict[str, float]) -> _Fit:
    if name == "mean":
        return _Fit(mix.mean(), {})
    if name == "median":
        med = _median(mix)
        return _Fit(med, {"f_med": float(mix.pdf(med))})
    if name in ("trimmed_mean", "winsorized_mean"):
        g = opts["proportion"]
        if g == 0.0:
            return _Fit(mix.mean(), {"gamma": 0.0})
        lo, hi = _quantile(mix, g), _quantile(mix, 1.0 - g)
        inner = _inner_mean(mix, lo, hi)
        wins = g * lo + inner + g * hi
        t = inner / (1.0 - 2.0 * g) if name == "trimmed_mean" else wins
        extra = {"gamma": g, "lo": lo, "hi": hi, "wins": wins}
        extra |= {"f_lo": float(mix.pdf(lo)), "f_hi": float(mix.pdf(hi))}
        return _Fit(t, extra)
    if name == "hodges_lehmann":
        cdf, pdf = _hl_cdf(mix)
        lo, hi = mix.support
        t = _root(lambda t: cdf(t) - 0.5, lo, hi)
        return _Fit(t, {"g": pdf(t)})
    # M-estimators with the MAD scale
    med = _median(mix)
    d = _mad(mix, med)
    s = d / MAD_CONSTANT
    lo, hi = mix.support
    if name == "huber":
        k = opts["k"]
        t = _root(lambda t: _huber_moments(mix, t, s, k)["psi"], lo - k * s, hi + k * s)
        mom = _huber_moments(mix, t, s, k)
    else:  # tukey: the population IRLS from the median
        c = opts["c"]
        t = med
        for _ in range(100_000):
            mom = _tukey_moments(mix, t, s, c)
            if not mom["w"] > 0:
                raise ValueError("tukey: no mass within c·S of the current iterate")
            step = s * mom["psi"] / mom["w"]
            t += step
            if abs(step) <= 1e-14 * s:
                break
        else:  # pragma: no cover - linear convergence; only near a bifurcation
            raise RuntimeError("tukey: the population IRLS did not converge")
        mom = _tukey_moments(mix, t, s, c)
    extra = {"med": med, "mad": d, "scale": s, **mom}
    extra |= {"f_med": float(mix.pdf(med))}
    extra |= {"f_plus": float(mix.pdf(med + d)), "f_minus": float(mix.pdf(med - d))}
    return _Fit(t, extra)


def functional(
    name: str,
    eps: ArrayLike,
    m: float,
    s2: float,
    *,
    mu: float = 0.0,
    sigma2: float = 1.0,
    **options: float,
) -> float | np.ndarray:
    """The population functional T(F_ε) of estimator ``name`` (see the module docstring).

    Parameters
    ----------
    name : one of :data:`ESTIMATORS`.
    eps : contamination fraction ε ∈ [0, 1); a float or an array (then the result has
        its shape).
    m, s2 : mean and variance of the contaminating normal N(m, s²).
    mu, sigma2 : mean and variance of the clean normal (default N(0, 1)).
    **options : ``proportion`` (trimmed/winsorized, default 0.1), ``k`` (huber, 1.345),
        ``c`` (tukey, 4.685).

    Returns
    -------
    T(F_ε) : float, or ndarray for array ``eps``.

    Notes
    -----
    Computed from the mixture cdf F_ε(x) = (1 − ε)Φ((x − μ)/σ) + εΦ((x − m)/s):

    - mean: (1 − ε) μ + ε m, exactly.
    - median: the root of F_ε(T) = 1/2 (Brent).
    - trimmed / winsorized: with a = F⁻¹(γ), b = F⁻¹(1 − γ), ∫_γ^{1−γ} F⁻¹(u) du =
      ∫_a^b x dF(x) = Σ_j w_j E[X_j; a < X_j < b], closed-form truncated normal means
      (Staudte & Sheather 1990; Huber & Ronchetti 2009, §3.3).
    - huber: E ψ_k((X − T)/S) is a closed form (clipped normal means) and decreasing in
      T; its root by Brent (Huber & Ronchetti 2009, §3.2). S = MAD/Φ⁻¹(3/4).
    - tukey: E w(Z), E Z w(Z) are polynomial truncated-normal moments (closed form);
      the population IRLS T ← T + S·E[Z w(Z)]/E[w(Z)] from the median, iterated to
      |step| ≤ 1e-14 S (Hampel et al. 1986, ch. 2; Beaton & Tukey 1974).
    - hodges_lehmann: (X₁ + X₂)/2 is the normal mixture Σ_jk w_j w_k N((μ_j + μ_k)/2,
      (σ_j² + σ_k²)/4); the root of its cdf minus 1/2 (Hodges & Lehmann 1963;
      Huber & Ronchetti 2009, §3.4).

    All functionals are location-scale equivariant, T(a + bX) = a + b T(X) for b > 0.
    """
    opts = _options(name, options)
    e = np.asarray(eps, dtype=float)
    if e.ndim == 0:
        return _fit(name, _mixture(float(e), m, s2, mu, sigma2), opts).t
    out = [_fit(name, _mixture(float(v), m, s2, mu, sigma2), opts).t for v in e.ravel()]
    return np.array(out).reshape(e.shape)


# ------------------------------------------------------------------ influence functions
def _influence(
    name: str, fit: _Fit, mix: _Mixture, opts: dict[str, float], x: np.ndarray
) -> np.ndarray:
    t, ex = fit.t, fit.extra
    if name == "mean":
        return x - t
    if name == "median":
        return np.sign(x - t) / (2.0 * ex["f_med"])
    if name in ("trimmed_mean", "winsorized_mean"):
        g = ex["gamma"]
        if g == 0.0:
            return x - t
        lo, hi, wins = ex["lo"], ex["hi"], ex["wins"]
        core = np.clip(x, lo, hi) - wins
        if name == "trimmed_mean":
            return core / (1.0 - 2.0 * g)
        jump_lo = g * (g - (x <= lo)) / ex["f_lo"]
        jump_hi = g * (1.0 - g - (x <= hi)) / ex["f_hi"]
        return core + jump_lo + jump_hi
    if name == "hodges_lehmann":
        return (1.0 - 2.0 * mix.cdf(2.0 * t - x)) / ex["g"]
    # M-estimators: the joint influence of (location, MAD scale)
    med, d, s = ex["med"], ex["mad"], ex["scale"]
    if_med = np.sign(x - med) / (2.0 * ex["f_med"])
    inside = (np.abs(x - med) <= d).astype(float)
    if_mad = -(inside - 0.5 + (ex["f_plus"] - ex["f_minus"]) * if_med) / (
        ex["f_plus"] + ex["f_minus"]
    )
    if_scale = if_mad / MAD_CONSTANT
    z = (x - t) / s
    psi = _huber_psi(z, opts["k"]) if name == "huber" else _tukey_psi(z, opts["c"])
    if abs(ex["dpsi"]) < 1e-10:
        raise ValueError(f"{name}: E ψ'(Z) = {ex['dpsi']:.3g}: the root is not regular")
    return (s * psi - ex["z_dpsi"] * if_scale) / ex["dpsi"]


def _breaks(name: str, fit: _Fit, opts: dict[str, float]) -> list[float]:
    """Where the influence function jumps or kinks."""
    ex = fit.extra
    if name == "median":
        return [fit.t]
    if name in ("trimmed_mean", "winsorized_mean") and ex["gamma"] > 0:
        return [ex["lo"], ex["hi"]]
    if name in ("huber", "tukey"):
        r = (opts["k"] if name == "huber" else opts["c"]) * ex["scale"]
        med, d = ex["med"], ex["mad"]
        return [med, med - d, med + d, fit.t - r, fit.t + r]
    return []


def influence(
    name: str,
    x: ArrayLike,
    eps: float = 0.0,
    m: float = 0.0,
    s2: float = 1.0,
    *,
    mu: float = 0.0,
    sigma2: float = 1.0,
    **options: float,
) -> np.ndarray:
    """The influence function IF(x; T, F_ε) = d/dh T((1 − h)F_ε + h δ_x) at h = 0.

    By default (ε = 0) at the clean standard normal Φ, where (q = Φ⁻¹(1 − γ)):

    - mean: x;  median: sign(x)/(2φ(0)) (Hampel 1974);
    - trimmed mean: clip(x, −q, q)/(1 − 2γ);
    - winsorized mean: x for |x| ≤ q, sign(x)(q + γ/φ(q)) beyond (Staudte & Sheather
      1990; Huber & Ronchetti 2009, §3.3);
    - huber: ψ_k(x)/(2Φ(k) − 1);  tukey: ψ_c(x)/E ψ_c'(Z) (S = 1 at Φ; §3.2);
    - hodges_lehmann: (Φ(x) − 1/2)/∫φ² = 2√π (Φ(x) − 1/2) (§3.4).

    At F_ε (a = F⁻¹(γ), b = F⁻¹(1 − γ), W the winsorized functional, f = F_ε'):

    - mean: x − T;  median: sign(x − M)/(2 f(M));
    - trimmed: (clip(x, a, b) − W)/(1 − 2γ);
    - winsorized: clip(x, a, b) − W + γ(γ − 1{x ≤ a})/f(a) + γ(1 − γ − 1{x ≤ b})/f(b);
    - hodges_lehmann: (1 − 2F(2T − x))/g(T), g the density of (X₁ + X₂)/2;
    - huber / tukey with S = D/Φ⁻¹(3/4), D the MAD about M, Z = (X − T)/S:
      IF = [S ψ((x − T)/S) − E{Zψ'(Z)} IF_S(x)]/E ψ'(Z), with IF_S = IF_D/Φ⁻¹(3/4) and
      IF_D(x) = [sign(|x − M| − D)/2 − (f(M+D) − f(M−D)) IF_M(x)]/(f(M+D) + f(M−D))
      (Hampel 1974; Hampel et al. 1986, ch. 2).

    Parameters
    ----------
    name : one of :data:`ESTIMATORS`.
    x : points at which to evaluate, any shape.
    eps, m, s2, mu, sigma2 : the mixture, as in :func:`functional`.
    **options : the estimator's options.

    Returns
    -------
    ndarray of the shape of ``x``. At jump points the value is the one of the formula
    with the indicators as written (measure zero; immaterial for variances).
    """
    opts = _options(name, options)
    mix = _mixture(eps, m, s2, mu, sigma2)
    fit = _fit(name, mix, opts)
    return np.asarray(_influence(name, fit, mix, opts, np.asarray(x, dtype=float)), float)


def _expect(func: Callable[[np.ndarray], np.ndarray], mix: _Mixture, breaks: list[float]) -> float:
    """E_F func(X) for X ~ mix, func piecewise smooth with jumps at ``breaks``: adaptive
    Gauss–Kronrod on each smooth piece of each component within ±12 sd."""
    total = 0.0
    for w, mu, sd in zip(mix.w, mix.mu, mix.sd, strict=True):
        cuts = sorted({-_TAIL, _TAIL} | {(b - mu) / sd for b in breaks if abs(b - mu) < _TAIL * sd})
        for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):

            def integrand(y: float, mu: float = mu, sd: float = sd) -> float:
                return float(func(np.asarray(mu + sd * y))) * math.exp(-0.5 * y * y) / _SQRT2PI

            val, _ = integrate.quad(integrand, lo, hi, epsabs=1e-14, epsrel=1e-12, limit=200)
            total += w * val
    return total


def asymptotic_variance(
    name: str,
    eps: float = 0.0,
    m: float = 0.0,
    s2: float = 1.0,
    *,
    mu: float = 0.0,
    sigma2: float = 1.0,
    **options: float,
) -> float:
    """The asymptotic variance V = lim n Var(T̂_n) = ∫ IF(x; T, F_ε)² dF_ε(x).

    Hampel et al. (1986, ch. 2); Huber & Ronchetti (2009, §3.2–3.4). The IF is
    the one at F_ε given in :func:`influence` (for the M-estimators including the MAD
    scale's influence, which matters when F_ε is asymmetric, m ≠ μ). The integral is
    exact for the mean (Var_F X) and the median (1/(4 f(M)²)); otherwise adaptive
    quadrature against each normal component, split at the IF's jumps and kinks
    (accuracy ~1e-11).

    At ε = 0 and the standard normal: mean 1, median π/2, Hodges–Lehmann π/3, huber
    E ψ_k²/(2Φ(k) − 1)², trimmed [∫_{−q}^{q} x² dΦ + 2γq²]/(1 − 2γ)²,
    winsorized ∫_{−q}^{q} x² dΦ + 2γ(q + γ/φ(q))².

    Raises ValueError for an M-estimator whose root is not regular (E ψ'(Z) ≈ 0).
    """
    opts = _options(name, options)
    mix = _mixture(eps, m, s2, mu, sigma2)
    fit = _fit(name, mix, opts)
    if name == "mean" or (name in ("trimmed_mean", "winsorized_mean") and opts["proportion"] == 0):
        return mix.var()
    if name == "median":
        return 1.0 / (4.0 * fit.extra["f_med"] ** 2)
    _influence(name, fit, mix, opts, np.zeros(1))  # raises on a non-regular root

    def sq(x: np.ndarray) -> np.ndarray:
        return _influence(name, fit, mix, opts, x) ** 2

    return float(_expect(sq, mix, _breaks(name, fit, opts)))


def efficiency(name: str, **options: float) -> float:
    """Asymptotic relative efficiency to the mean at the clean normal, 1/V(T, Φ).

    Values: median 2/π = 0.63662, Hodges–Lehmann 3/π = 0.95493, huber (k = 1.345)
    0.95000, tukey (c = 4.685) 0.95000, 10 % trimmed mean 0.94304, 10 % winsorized mean
    0.96554 (Huber & Ronchetti 2009, §3.2–3.4; Staudte & Sheather 1990; Hodges
    & Lehmann 1963).
    """
    return 1.0 / asymptotic_variance(name, **options)


def breakdown_point(name: str, **options: float) -> float:
    """Asymptotic breakdown point ε* (Hampel et al. 1986, ch. 2).

    mean 0; median 1/2; trimmed and winsorized means γ (Staudte & Sheather 1990);
    huber with the MAD scale 1/2 (bounded monotone ψ with a scale of breakdown 1/2,
    Hampel et al. 1986, ch. 2); tukey with the MAD scale 1/2 — the breakdown point of
    its median start and MAD scale, the value usually quoted; the redescending root's
    own finite-sample breakdown depends on the configuration (Huber 1984, *Ann.
    Statist.* 12, 119–126); Hodges–Lehmann 1 − 2^{−1/2} ≈ 0.293 (Hodges & Lehmann
    1963; the fraction ε with (1 − ε)² = 1/2).

    These are quoted, not computed; the tests check them only against the population
    functional under ε N(m, 1) with m → ∞ (bounded just below ε*, unbounded above).
    """
    opts = _options(name, options)
    if name == "mean":
        return 0.0
    if name in ("trimmed_mean", "winsorized_mean"):
        return opts["proportion"]
    if name == "hodges_lehmann":
        return 1.0 - 1.0 / math.sqrt(2.0)
    return 0.5


def gross_error_sensitivity(name: str, **options: float) -> float:
    """γ* = sup_x |IF(x; T, Φ)| at the clean standard normal (Hampel et al. 1986, ch. 2).

    mean ∞; median √(π/2) = 1/(2φ(0)); trimmed q/(1 − 2γ) (∞ at γ = 0);
    winsorized q + γ/φ(q) (∞ at γ = 0); huber k/(2Φ(k) − 1);
    tukey ψ_c(c/√5)/E ψ_c'(Z) = (16 c/(25√5))/E ψ_c'(Z); Hodges–Lehmann √π.
    """
    opts = _options(name, options)
    if name == "mean":
        return math.inf
    if name == "median":
        return math.sqrt(math.pi / 2.0)
    if name == "hodges_lehmann":
        return math.sqrt(math.pi)
    if name in ("trimmed_mean", "winsorized_mean"):
        g = opts["proportion"]
        if g == 0.0:
            return math.inf
        q = float(special.ndtri(1.0 - g))
        if name == "trimmed_mean":
            return q / (1.0 - 2.0 * g)
        return q + g / float(_phi(np.asarray(q)))
    std = _Mixture(np.array([1.0]), np.array([0.0]), np.array([1.0]))
    if name == "huber":
        k = opts["k"]
        return k / _huber_moments(std, 0.0, 1.0, k)["dpsi"]
    c = opts["c"]
    return 16.0 * c / (25.0 * math.sqrt(5.0)) / _tukey_moments(std, 0.0, 1.0, c)["dpsi"]
