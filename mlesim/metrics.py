"""Performance measures of a simulation study and their Monte Carlo standard errors.

The measures and their Monte Carlo standard errors (MCSE) follow Morris, White &
Crowther (2019), "Using simulation studies to evaluate statistical methods",
*Statistics in Medicine* 38:2074-2102, Table 6 (cited below as "Morris Table 6").
Like R's ``rsimsum::simsum``, :func:`performance` works on any long table of
estimates (one row per replicate and group), not only on tables made by mlesim.

Notation: ``nsim`` replicates with estimates ``theta_i``, true value ``theta``,
mean estimate ``theta_bar``, model-based standard errors ``se_i`` and
``z = Phi^{-1}((1 + level) / 2)``.

Measures (``performance`` column: meaning)

- ``mean``: ``theta_bar``.
- ``bias``: ``theta_bar - theta`` (Morris Table 6, "Bias").
- ``rel_bias``: ``bias / theta`` (a fraction, NaN when ``theta == 0``).
- ``empse``: empirical SE, the sample SD of the estimates (Morris Table 6, "EmpSE").
  Its MCSE is by default kurtosis-aware (the delta method on the sample variance
  with the sample fourth moment, as R's ``simhelpers``); ``empse_mcse="normal"``
  gives Morris's and rsimsum's normal-theory ``empse / sqrt(2 (nsim - 1))``, which
  is too small for skewed or heavy-tailed estimates (about 2x for kurtosis 9).
- ``mse``, ``rmse``: mean squared error and its root (Morris Table 6, "MSE"); the
  MSE's MCSE makes no normality assumption.
- ``modse``: root mean of ``se_i**2`` (Morris Table 6, "Average ModSE").
- ``modse_relerr``: ``100 * (modse / empse - 1)`` (Morris Table 6,
  "Relative % error in ModSE").
- ``coverage``: share of Wald intervals ``theta_i +/- z se_i`` containing ``theta``
  (Morris Table 6, "Coverage").
- ``becoverage``: the same with ``theta_bar`` in place of ``theta`` (Morris Table 6,
  "Bias-eliminated coverage").
- ``rejection``: share of Wald tests of ``H0: theta = null`` rejecting at level
  ``1 - level`` (Morris Table 6, "Rejection %", power or type I error).
- ``rel_precision``: ``100 * ((empse_ref / empse)**2 - 1)`` against a reference
  method (Morris Table 6, "Relative % increase in precision").
- ``efficiency``: ``crlb / empse**2``, the Cramér-Rao variance bound over the
  empirical variance, with a delta-method MCSE (not in Morris Table 6).

Every measure ``m`` except ``mean``, ``rmse`` and ``crlb`` has a column ``m_mcse``.
``n_rep`` counts the usable replicates (finite, converged estimates), ``n_failed``
the others, and ``n_se`` the usable replicates with a finite SE ``>= 0``: ``modse``,
``modse_relerr`` (its ModSE part), ``coverage``, ``becoverage`` and ``rejection``
rest on those ``n_se`` rows only.

The building blocks (:func:`bias`, :func:`empse`, ...) take 1-D arrays and return
``(value, mcse)``; they ignore non-finite entries and return NaN where a measure or
its MCSE is undefined (no estimate; fewer than two estimates for an MCSE; a true
value or CRLB that is not finite, for the measures that need it).
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Hashable, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from mlesim.lazy import lazy_module

special = lazy_module("scipy.special")
stats = lazy_module("scipy.stats")

__all__ = [
    "EXTENDED_COLUMNS",
    "SUMMARY_COLUMNS",
    "becoverage",
    "bias",
    "coverage",
    "efficiency",
    "empse",
    "modse",
    "modse_relerr",
    "mse",
    "performance",
    "rejection",
    "rel_bias",
    "rel_precision",
    "wald_z",
]

SUMMARY_COLUMNS: tuple[str, ...] = (
    "true_value",
    "n_rep",
    "n_failed",
    "n_se",
    "mean",
    "bias",
    "bias_mcse",
    "rel_bias",
    "empse",
    "empse_mcse",
    "mse",
    "mse_mcse",
    "rmse",
    "modse",
    "coverage",
    "coverage_mcse",
    "crlb",
    "efficiency",
    "efficiency_mcse",
)
"""Columns of :func:`performance` after the ``by`` columns, in order."""

EXTENDED_COLUMNS: tuple[str, ...] = (
    "rel_bias_mcse",
    "modse_mcse",
    "modse_relerr",
    "modse_relerr_mcse",
    "becoverage",
    "becoverage_mcse",
    "rejection",
    "rejection_mcse",
    "rel_precision",
    "rel_precision_mcse",
    "n_inf",
    "median",
)
"""Columns appended after :data:`SUMMARY_COLUMNS` when ``extended=True``: the Morris
measures left out of summary.csv, then ``n_inf`` (estimates at ±inf, on the edge of the
parameter space such as ν̂ = ∞) and ``median`` (the median estimate, meaningful with
them)."""

ArrayLike = npt.ArrayLike
Pair = tuple[float, float]
_NAN = float("nan")
_NAN_PAIR: Pair = (_NAN, _NAN)
_EMPSE_MCSE_METHODS: tuple[str, ...] = ("kurtosis", "normal")


# --------------------------------------------------------------------------- helpers


def _as_1d(x: ArrayLike) -> np.ndarray:
    """Return ``x`` as a 1-D float array (shape ``(n,)``)."""
    a = np.asarray(x, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"expected a 1-D array, got shape {a.shape}")
    return a


def _finite(x: ArrayLike) -> np.ndarray:
    """Return the finite entries of the 1-D array ``x``, shape ``(m,)``, ``m <= n``."""
    a = _as_1d(x)
    return a[np.isfinite(a)]


def _usable_se(se: ArrayLike) -> np.ndarray:
    """Return the finite, non-negative entries of the 1-D array ``se``, shape ``(m,)``."""
    s = _as_1d(se)
    return s[np.isfinite(s) & (s >= 0)]


def _finite_with_se(est: ArrayLike, se: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Keep pairs ``(est_i, se_i)`` with both finite and ``se_i >= 0``.

    Parameters
    ----------
    est, se : array_like, shape (n,)

    Returns
    -------
    est, se : ndarray, shape (m,)
    """
    e, s = _as_1d(est), _as_1d(se)
    if e.shape != s.shape:
        raise ValueError(f"est and se differ in shape: {e.shape} vs {s.shape}")
    keep = np.isfinite(e) & np.isfinite(s) & (s >= 0)
    return e[keep], s[keep]


def _proportion(hits: np.ndarray) -> Pair:
    """Share of ``True`` in a boolean array of shape ``(n,)`` and its binomial MCSE.

    ``p = mean(hits)``, ``MCSE = sqrt(p (1 - p) / n)`` (Morris Table 6, "Coverage");
    the MCSE is NaN for ``n < 2``.
    """
    n = hits.size
    if n == 0:
        return _NAN_PAIR
    p = float(np.mean(hits))
    return p, (math.sqrt(p * (1.0 - p) / n) if n > 1 else _NAN)


def _sample_var(x: np.ndarray) -> float:
    """Sample variance ``sum((x_i - x_bar)**2) / (n - 1)`` of ``x`` (NaN if ``n < 2``);
    exactly 0 when every entry is equal (the rounded mean would leave ~1e-32, and an
    efficiency of 1e32 instead of inf)."""
    n = x.size
    if n < 2:
        return _NAN
    if x.max() == x.min():
        return 0.0
    return float(np.sum((x - x.mean()) ** 2) / (n - 1))


def _check_empse_mcse(method: object) -> str:
    """Return ``method`` if it names an MCSE form of ``empse``, else raise ValueError."""
    if method not in _EMPSE_MCSE_METHODS:
        allowed = " or ".join(repr(m) for m in _EMPSE_MCSE_METHODS)
        raise ValueError(f"empse_mcse must be {allowed}, got {method!r}")
    return str(method)


def _sum_fourth(x: np.ndarray) -> float:
    """Σ (x_i − x̄)⁴ of ``x`` (K,), squaring twice: numpy raises to the 4th power
    element by element through ``pow``, ~25× slower on the millions of estimates of a
    large study."""
    d = x - x.mean()
    d *= d
    d *= d
    return float(d.sum())  # (pairwise summation: the same on every machine, unlike a BLAS dot)


def _empse_mcse_kurtosis(x: np.ndarray, s: float) -> float:
    """Kurtosis-aware MCSE of the sample SD ``s`` of ``x`` (shape ``(K,)``, ``K >= 2``).

    ``k = sum((x_i - x_bar)**4) / (K s**4)`` (sample kurtosis), ``Var(s**2) ~
    s**4 (k - 1) / K`` and, by the delta method, ``mcse = s sqrt((k - 1) / (4 K))``.
    0 when ``s == 0`` (constant estimates: the SD is exactly 0, with no Monte Carlo
    error); NaN when ``k < 1`` (a negative variance estimate, tiny samples).
    """
    if s == 0:
        return 0.0
    k = _sum_fourth(x) / (x.size * s**4)
    return s * math.sqrt((k - 1.0) / (4.0 * x.size)) if k >= 1 else _NAN


#: ``special.ndtri((1 + level) / 2)`` for the usual levels, as scipy computes it (a test
#: checks every entry bit for bit): a closed-form study's summary then needs no scipy
#: (importing scipy.special takes ~0.08 s, most of it numpy submodules it star-imports)
_USUAL_Z = {
    0.8: 1.2815515655446004,
    0.9: 1.6448536269514722,
    0.95: 1.959963984540054,
    0.99: 2.5758293035489004,
}


def wald_z(level: float) -> float:
    """Normal quantile ``z = Phi^{-1}((1 + level) / 2)`` of a two-sided Wald interval.

    Parameters
    ----------
    level : float
        Confidence level in (0, 1), e.g. 0.95 gives ``z = 1.959964...``.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if isinstance(level, float) and level in _USUAL_Z:  # (numpy's float64 is a float)
        return _USUAL_Z[level]
    return float(special.ndtri((1.0 + level) / 2.0))  # = stats.norm.ppf, bit for bit


# ---------------------------------------------------------------- building blocks


def bias(est: ArrayLike, true: float) -> Pair:
    """Bias of the estimates and its MCSE.

    Parameters
    ----------
    est : array_like, shape (n,)
        Estimates; non-finite entries are ignored.
    true : float
        True value ``theta``; both results are NaN when it is not finite.

    Returns
    -------
    value, mcse : float
        ``theta_bar - theta`` and ``sqrt(sum((theta_i - theta_bar)**2) / (nsim (nsim - 1)))``
        (Morris Table 6, "Bias"). The MCSE is NaN for ``nsim < 2``.
    """
    x = _finite(est)
    n = x.size
    if n == 0 or not math.isfinite(true):
        return _NAN_PAIR
    xbar = float(x.mean())
    mcse = math.sqrt(_sample_var(x) / n) if n > 1 else _NAN  # Σ(x − x̄)² / (n(n − 1))
    return xbar - true, mcse


def rel_bias(est: ArrayLike, true: float) -> Pair:
    """Relative bias ``bias / theta`` (a fraction) and its MCSE ``bias_mcse / |theta|``.

    Parameters
    ----------
    est : array_like, shape (n,)
        Estimates; non-finite entries are ignored.
    true : float
        True value ``theta``; both results are NaN when ``theta`` is 0 or not finite.

    Returns
    -------
    value, mcse : float
        Morris Table 6, "Bias", scaled by ``1 / theta``.
    """
    if true == 0 or not math.isfinite(true):
        return _NAN_PAIR
    value, mcse = bias(est, true)
    return value / true, mcse / abs(true)


def empse(est: ArrayLike, *, empse_mcse: str = "kurtosis") -> Pair:
    """Empirical standard error and its MCSE.

    Parameters
    ----------
    est : array_like, shape (n,)
        Estimates; non-finite entries are ignored.
    empse_mcse : {"kurtosis", "normal"}
        Form of the MCSE; any other value raises ValueError.

    Returns
    -------
    value, mcse : float
        ``empse = S = sqrt(sum((theta_i - theta_bar)**2) / (nsim - 1))`` (Morris
        Table 6, "EmpSE") and its MCSE:

        - ``"kurtosis"`` (default): the delta method on the sample variance,
          ``Var(S**2) ~ S**4 (k - 1) / nsim`` with the sample kurtosis
          ``k = sum((theta_i - theta_bar)**4) / (nsim S**4)``, so
          ``mcse = sqrt(Var(S**2)) / (2 S) = S sqrt((k - 1) / (4 nsim))``. ``k`` and
          ``Var(S**2)`` are exactly those of R's simhelpers ``calc_absolute()``
          (``k_t`` and ``var_mcse = s_t^2 sqrt((k_t - 1) / K)``, R/calc_absolute.R,
          github.com/meghapsimatrix/simhelpers); simhelpers's own ``stddev_mcse``
          is a jackknife, to which this is the first-order approximation. Valid for
          non-normal estimates; NaN when ``S == 0`` or ``k < 1`` (tiny samples).
        - ``"normal"``: ``S / sqrt(2 (nsim - 1))`` (Morris Table 6, "EmpSE";
          rsimsum), which assumes normal estimates (``k = 3``) and is too small by
          the factor ``sqrt(2 / (k - 1))`` for heavier tails.

        Both NaN for ``nsim < 2``.
    """
    method = _check_empse_mcse(empse_mcse)
    x = _finite(est)
    n = x.size
    if n < 2:
        return _NAN_PAIR
    value = math.sqrt(_sample_var(x))
    if method == "normal":
        return value, value / math.sqrt(2.0 * (n - 1))
    return value, _empse_mcse_kurtosis(x, value)


def mse(est: ArrayLike, true: float) -> Pair:
    """Mean squared error and its MCSE.

    Parameters
    ----------
    est : array_like, shape (n,)
        Estimates; non-finite entries are ignored.
    true : float
        True value ``theta``; both results are NaN when it is not finite.

    Returns
    -------
    value, mcse : float
        ``mse = sum((theta_i - theta)**2) / nsim`` and
        ``sqrt(sum(((theta_i - theta)**2 - mse)**2) / (nsim (nsim - 1)))``
        (Morris Table 6, "MSE"): the SE of a mean of the squared errors, which
        assumes nothing about their distribution (no normality, unlike the
        ``"normal"`` MCSE of :func:`empse`). The MCSE is NaN for ``nsim < 2``.
    """
    x = _finite(est)
    n = x.size
    if n == 0 or not math.isfinite(true):
        return _NAN_PAIR
    sq = (x - true) ** 2
    value = float(sq.mean())
    mcse = math.sqrt(_sample_var(sq) / n) if n > 1 else _NAN  # Σ(sq − mse)² / (n(n − 1))
    return value, mcse


def modse(se: ArrayLike) -> Pair:
    """Average model-based standard error (root mean of the model variances) and its MCSE.

    Parameters
    ----------
    se : array_like, shape (n,)
        Model-based standard errors; entries that are not finite or are negative
        are ignored.

    Returns
    -------
    value, mcse : float
        ``modse = sqrt(mean(se_i**2))`` and ``sqrt(Var(se**2) / (4 nsim modse**2))``,
        ``Var`` the sample variance (ddof=1) of the ``se_i**2`` (Morris Table 6,
        "Average ModSE"). The MCSE is NaN for ``nsim < 2`` or ``modse == 0``.
    """
    s = _usable_se(se)
    n = s.size
    if n == 0:
        return _NAN_PAIR
    s2 = s**2
    mean_s2 = float(s2.mean())
    if n < 2 or mean_s2 == 0:
        return math.sqrt(mean_s2), _NAN
    return math.sqrt(mean_s2), math.sqrt(_sample_var(s2) / (4.0 * n * mean_s2))


def modse_relerr(est: ArrayLike, se: ArrayLike, *, empse_mcse: str = "kurtosis") -> Pair:
    """Relative % error in the model-based SE and its MCSE.

    Parameters
    ----------
    est : array_like, shape (n,)
        Estimates; non-finite entries are ignored (they give ``empse``).
    se : array_like, shape (m,)
        Model-based standard errors; non-finite or negative entries are ignored
        (they give ``modse``). ``m`` may differ from ``n``.
    empse_mcse : {"kurtosis", "normal"}
        Form of the MCSE of ``empse`` used below (see :func:`empse`).

    Returns
    -------
    value, mcse : float
        ``100 (modse / empse - 1)`` and
        ``100 (modse / empse) sqrt(Var(se**2) / (4 n_se modse**4) + (mcse_E / empse)**2)``
        (Morris Table 6, "Relative % error in ModSE"), with ``n_se`` the number of
        usable SEs and ``mcse_E`` the MCSE of ``empse`` from :func:`empse`. With
        ``empse_mcse="normal"`` the last term is Morris's ``1 / (2 (n_est - 1))``;
        by default it is the kurtosis-aware ``(k - 1) / (4 n_est)``. NaN when either
        SE is undefined or 0.
    """
    emp, emp_mcse = empse(est, empse_mcse=empse_mcse)
    mod, _ = modse(se)
    if not (emp > 0 and mod > 0):
        return _NAN_PAIR
    s2 = _usable_se(se) ** 2
    ratio = mod / emp
    var_term = _sample_var(s2) / (4.0 * s2.size * mod**4)
    return 100.0 * (ratio - 1.0), 100.0 * ratio * math.sqrt(var_term + (emp_mcse / emp) ** 2)


def coverage(est: ArrayLike, se: ArrayLike, true: float, level: float = 0.95) -> Pair:
    """Coverage of the Wald interval ``theta_i +/- z se_i`` and its MCSE.

    Parameters
    ----------
    est, se : array_like, shape (n,)
        Estimates and model-based SEs; only pairs with both finite and ``se_i >= 0``
        are used, so ``nsim`` may be smaller than for the other measures.
    true : float
        Value to cover, ``theta``; both results are NaN when it is not finite.
    level : float
        Nominal level; ``z = Phi^{-1}((1 + level) / 2)``.

    Returns
    -------
    value, mcse : float
        ``mean(1{theta_i - z se_i <= theta <= theta_i + z se_i})`` (closed interval)
        and ``sqrt(cov (1 - cov) / nsim)`` (Morris Table 6, "Coverage"). The MCSE is
        NaN for ``nsim < 2``.
    """
    z = wald_z(level)
    e, s = _finite_with_se(est, se)
    if not math.isfinite(true):
        return _NAN_PAIR
    return _proportion((e - z * s <= true) & (true <= e + z * s))


def becoverage(est: ArrayLike, se: ArrayLike, level: float = 0.95) -> Pair:
    """Bias-eliminated coverage: :func:`coverage` of ``theta_bar`` instead of ``theta``.

    Parameters
    ----------
    est, se : array_like, shape (n,)
        Estimates and model-based SEs. ``theta_bar`` is the mean of all finite
        estimates; the intervals are those of :func:`coverage`.
    level : float
        Nominal level.

    Returns
    -------
    value, mcse : float
        Morris Table 6, "Bias-eliminated coverage"; MCSE ``sqrt(p (1 - p) / nsim)``.
    """
    x = _finite(est)
    if x.size == 0:
        return _NAN_PAIR
    return coverage(est, se, float(x.mean()), level)


def rejection(est: ArrayLike, se: ArrayLike, null: float = 0.0, level: float = 0.95) -> Pair:
    """Rejection rate of the Wald test of ``H0: theta = null`` and its MCSE.

    Parameters
    ----------
    est, se : array_like, shape (n,)
        Estimates and model-based SEs; pairs as in :func:`coverage`.
    null : float
        Value under the null hypothesis.
    level : float
        The test has size ``1 - level``: it rejects when ``|theta_i - null| > z se_i``,
        i.e. exactly when ``null`` is outside the closed Wald interval.

    Returns
    -------
    value, mcse : float
        Share of rejections ``r`` and ``sqrt(r (1 - r) / nsim)`` (Morris Table 6,
        "Rejection %": power, or type I error when ``null`` is the true value).
    """
    z = wald_z(level)
    e, s = _finite_with_se(est, se)
    return _proportion(np.abs(e - null) > z * s)


def efficiency(est: ArrayLike, crlb: float) -> Pair:
    """Efficiency relative to the Cramér-Rao bound and its delta-method MCSE.

    Parameters
    ----------
    est : array_like, shape (n,)
        Estimates; non-finite entries are ignored.
    crlb : float
        Cramér-Rao variance bound ``I(theta)^{-1} / n`` for one replicate; both
        results are NaN when it is not finite.

    Returns
    -------
    value, mcse : float
        ``eff = crlb / empse**2`` and, by the delta method applied to ``g(v) = crlb / v``
        at ``v = empse**2`` with ``Var(empse**2) ~ (m4 - empse**4) / nsim`` and
        ``m4 = mean((theta_i - theta_bar)**4)`` (the large-sample variance of a sample
        variance, valid for non-normal estimates; the same ``Var(empse**2)`` as the
        default MCSE of :func:`empse`),
        ``mcse = crlb / empse**4 * sqrt((m4 - empse**4) / nsim)``.
        Both are NaN for ``nsim < 2``; the MCSE is NaN when ``m4 < empse**4`` (possible
        only in very small samples) or ``empse == 0``.
    """
    x = _finite(est)
    n = x.size
    if n < 2 or not math.isfinite(crlb):
        return _NAN_PAIR
    v = _sample_var(x)
    if v == 0:
        return (math.inf if crlb > 0 else _NAN), _NAN
    m4 = _sum_fourth(x) / n
    var_v = (m4 - v**2) / n
    mcse = crlb / v**2 * math.sqrt(var_v) if var_v >= 0 else _NAN
    return crlb / v, mcse


def rel_precision(est: ArrayLike, est_ref: ArrayLike) -> Pair:
    """Relative % increase in precision of a method B over a reference method A.

    Parameters
    ----------
    est : array_like, shape (n,)
        Estimates of method B.
    est_ref : array_like, shape (n,)
        Estimates of the reference method A on the same replicates (paired by
        position); pairs where either is not finite are dropped.

    Returns
    -------
    value, mcse : float
        ``100 ((empse_A / empse_B)**2 - 1)`` and
        ``200 (empse_A / empse_B)**2 sqrt((1 - rho**2) / (nsim - 1))``, ``rho`` the
        correlation of the paired estimates (Morris Table 6, "Relative % increase in
        precision"). NaN for ``nsim < 2`` or a zero empirical SE.
    """
    b, a = _as_1d(est), _as_1d(est_ref)
    if a.shape != b.shape:
        raise ValueError(f"est and est_ref differ in shape: {b.shape} vs {a.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    n = a.size
    if n < 2:
        return _NAN_PAIR
    da, db = a - a.mean(), b - b.mean()
    ssa, ssb = float(np.sum(da**2)), float(np.sum(db**2))
    if ssa == 0 or ssb == 0:
        return _NAN_PAIR
    ratio2 = ssa / ssb  # (empse_A / empse_B)**2; the (n - 1) divisors cancel
    rho = float(np.clip(np.sum(da * db) / math.sqrt(ssa * ssb), -1.0, 1.0))
    return 100.0 * (ratio2 - 1.0), 200.0 * ratio2 * math.sqrt((1.0 - rho**2) / (n - 1))


# ---------------------------------------------------------------------- the table


def _by_list(by: Hashable | Sequence[Hashable] | None) -> list[Hashable]:
    """Normalise ``by`` (None, one column name or a list of names) to a list."""
    if by is None:
        return []
    if isinstance(by, str) or not isinstance(by, Sequence):
        return [by]
    return list(by)


def _column_or_constant(df: pd.DataFrame, spec: object, name: str) -> np.ndarray:
    """Shape ``(len(df),)`` float array: column ``spec``, or ``spec`` as a number.

    A real number (not bool) is a constant, anything else a column name; None gives NaN.
    """
    if spec is None:
        return np.full(len(df), _NAN)
    if isinstance(spec, numbers.Real) and not isinstance(spec, bool):
        return np.full(len(df), float(spec))
    if spec not in df.columns:
        raise KeyError(f"{name}={spec!r} is neither a number nor a column of df")
    return df[spec].to_numpy(dtype=float, na_value=np.nan)


def _column(df: pd.DataFrame, name: Hashable, role: str) -> pd.Series:
    """Column ``name`` of ``df``; a KeyError naming ``role`` and the columns if absent."""
    if name not in df.columns:
        have = ", ".join(repr(c) for c in df.columns)
        raise KeyError(f"{role}={name!r} is not a column of df; its columns are: {have}")
    return df[name]


def _se_values(df: pd.DataFrame, se: Hashable | None) -> np.ndarray | None:
    """Shape ``(len(df),)`` float SEs, or None for ``se=None``.

    The default name ``"se"`` is optional (absent means None); any other name must
    be a column of ``df``.
    """
    if se is None or (isinstance(se, str) and se == "se" and se not in df.columns):
        return None
    return _column(df, se, "se").to_numpy(dtype=float, na_value=np.nan)


def _check_reference(
    df: pd.DataFrame, by_cols: list[Hashable], method: Hashable, reference: object
) -> None:
    """Raise ValueError unless ``method`` is a column in ``by_cols`` holding ``reference``."""
    if method not in df.columns:
        raise ValueError(
            f"reference={reference!r}: method={method!r} is not a column of df (by={by_cols!r});"
            " pass method=<the column naming the methods> and add that column to by"
        )
    if method not in by_cols:
        raise ValueError(
            f"reference={reference!r} compares methods, but method={method!r} is not in"
            f" by={by_cols!r}; add {method!r} to by"
        )
    present = pd.unique(df[method])  # (a categorical's codes: no strings materialised)
    if not any(v == reference for v in present):
        have = ", ".join(repr(v) for v in sorted(present, key=str))
        raise ValueError(
            f"reference={reference!r} is not a value of column {method!r}; values present: {have}"
        )


def _n_se(se: np.ndarray | None, est: np.ndarray) -> int:
    """Number of entries of ``se`` (shape ``(n,)``) the SE-based measures use: finite
    and ``>= 0``; in a group with estimates at ±inf also the infinite SEs that go with
    them (:func:`_measures_at_infinity`)."""
    if se is None:
        return 0
    usable = ~np.isnan(se) if np.isinf(est).any() else np.isfinite(se)
    return int(np.count_nonzero(usable & (se >= 0)))


def _measures_at_infinity(
    est: np.ndarray, se: np.ndarray | None, theta: float, crlb: float, level: float
) -> dict[str, float]:
    """The measures of a group with estimates at ±inf (an edge such as ν̂ = ∞).

    The mean, bias and MSE are infinite (not computed on the finite subset, which would
    select the samples), the empirical SE, efficiency and every MCSE undefined (NaN);
    coverage counts an infinite estimate's interval as missing every finite value.
    """
    out = dict.fromkeys(SUMMARY_COLUMNS[SUMMARY_COLUMNS.index("mean") :], _NAN)
    out.update(dict.fromkeys(EXTENDED_COLUMNS, _NAN))
    mean = float(np.mean(est))
    out.update(mean=mean, crlb=crlb)
    if math.isfinite(theta):  # no true value to measure from (an estimand at the edge)
        out.update(bias=mean - theta, mse=math.inf, rmse=math.inf)
        out["rel_bias"] = out["bias"] / theta if theta != 0 else _NAN
    if se is not None:
        z = wald_z(level)
        keep = ~np.isnan(est) & ~np.isnan(se) & (se >= 0)
        out["modse"] = float(np.sqrt(np.mean(se[keep] ** 2))) if keep.any() else _NAN
        if not math.isfinite(theta):
            return out
        e, s = est[keep], se[keep]
        covers = np.isfinite(e) & (e - z * s <= theta) & (theta <= e + z * s)
        out["coverage"], out["coverage_mcse"] = _proportion(covers)
    return out


def _group_constant(values: np.ndarray, name: str, key: object) -> float:
    """The value shared by all rows of a group; raise if the rows disagree."""
    if values.size == 0:
        return _NAN
    first = values[0]
    same = np.isnan(values) if np.isnan(first) else values == first
    if not np.all(same):
        raise ValueError(f"{name} is not constant within group {key!r}")
    return float(first)


def _converged_mask(df: pd.DataFrame, converged: Hashable | None) -> np.ndarray:
    """Shape ``(len(df),)`` bool: True where the row converged.

    All True when the column is absent; a missing flag counts as not converged.
    """
    if converged is None or converged not in df.columns:
        return np.ones(len(df), dtype=bool)
    return df[converged].astype("boolean").fillna(False).to_numpy(dtype=bool)


def _column_codes(column: pd.Series) -> tuple[np.ndarray, int, bool]:
    """Integer codes (n,) of a column's values, numbered in pandas' group order (a
    categorical's category order, else sorted values; missing values last), how many
    codes there can be, and whether every code in 0..many−1 occurs (compact). A
    categorical's codes are returned in their own small integer type."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy()
        size = len(column.cat.categories)
        missing = codes < 0
        if missing.any():
            codes = np.where(missing, size, codes)
        return codes, size + 1, False
    plain = isinstance(column.dtype, np.dtype) and column.dtype.kind in "iu"  # (not Int64)
    if plain and len(column):  # integers in a short range: no hashing
        values = column.to_numpy()
        low, high = int(values.min()), int(values.max())
        if high - low < 4 * len(values) and high < 2**62:  # codes of the values present, in order
            return (*_present(values.astype(np.int64, copy=False), high - low + 1, low), True)
    codes, uniques = pd.factorize(column, sort=True, use_na_sentinel=False)
    return codes.astype(np.int64, copy=False), len(uniques), True


def group_ids(df: pd.DataFrame, columns: Sequence[Hashable]) -> tuple[np.ndarray, int]:
    """Each row's group over ``columns``: ids (len(df),) numbering the groups present
    0..G−1 in the order of ``df.groupby(columns, sort=True, observed=True,
    dropna=False)`` (a new int64 array), and G. Linear in the rows (factorised codes
    combined in mixed radix, then compacted), where pandas' multi-column groupby sorts
    them."""
    if not len(columns):
        return np.zeros(len(df), np.int64), min(len(df), 1)
    ids, size, compact = _column_codes(df[columns[0]])
    ids = ids.astype(np.int64)  # (a copy: the radix sums below work in place)
    for name in columns[1:]:
        codes, many, _ = _column_codes(df[name])
        ids *= many
        ids += codes
        size, compact = size * many, False
        if size > max(4 * len(df), 1 << 20):  # keep the radix small: renumber what is present
            present, ids = np.unique(ids, return_inverse=True)
            size = present.size
    return (ids, size) if compact else _present(ids, size)


def _present(codes: np.ndarray, size: int, low: int = 0) -> tuple[np.ndarray, int]:
    """``codes`` − ``low`` (n,), in 0..size−1, renumbered 0..G−1 over the G values
    present, in order, and G (a counting pass: linear, no sort)."""
    shifted = codes - low if low else codes
    seen = np.bincount(shifted, minlength=size) > 0
    number = np.cumsum(seen) - 1
    return number[shifted], int(seen.sum())


def group_order(ids: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows (n,) sorted by group id, ascending within each group, and where each
    group after the first starts in that order (count − 1,)."""
    small = np.int16 if count <= np.iinfo(np.int16).max else ids.dtype
    order = np.argsort(ids.astype(small, copy=False), kind="stable")  # (16 bits: radix sort)
    return order, np.cumsum(np.bincount(ids, minlength=count))[:-1]


def first_rows(ids: np.ndarray, count: int) -> np.ndarray:
    """The first row (count,) of each group of ``ids`` (:func:`group_ids`), by group."""
    if count == 0:
        return np.zeros(0, np.intp)
    order, bounds = group_order(ids, count)
    return order[np.concatenate([[0], bounds])]


def _group_positions(
    df: pd.DataFrame, by_cols: list[Hashable], groups: tuple[np.ndarray, int] | None = None
) -> dict[tuple, np.ndarray]:
    """Map each group key (a tuple, sorted order) to the row positions of the group
    (ascending, as pandas' groupby gives them); ``groups`` is ``group_ids(df, by_cols)``
    if the caller has it."""
    if not by_cols:
        return {(): np.arange(len(df))}
    try:
        ids, count = group_ids(df, by_cols) if groups is None else groups
    except TypeError:  # values factorize cannot sort (mixed types): pandas decides
        work = df[by_cols].reset_index(drop=True)
        grouped = work.groupby(by_cols, sort=True, dropna=False, observed=True)
        return {key: g.index.to_numpy() for key, g in grouped}
    if count == 0:  # an empty table has no groups
        return {}
    order, bounds = group_order(ids, count)
    rows = np.split(order, bounds)
    heads = df[by_cols].iloc[[g[0] for g in rows]]
    keys = [tuple(row) for row in heads.itertuples(index=False, name=None)]
    return dict(zip(keys, rows, strict=True))


def _measures(
    est: np.ndarray,
    se: np.ndarray | None,
    theta: float,
    crlb: float,
    level: float,
    null: float,
    empse_mcse: str,
) -> dict[str, float]:
    """All measures except ``rel_precision`` for one group's usable estimates ``(n,)``.

    ``se`` has shape ``(n,)`` (the same rows) or is None (NaN SE-based measures).
    Estimates at ±inf take :func:`_measures_at_infinity`.
    """
    if np.isinf(est).any():
        out = _measures_at_infinity(est, se, theta, crlb, level)
        out["n_inf"], out["median"] = int(np.isinf(est).sum()), float(np.median(est))
        return out
    out: dict[str, float] = {"mean": float(est.mean()) if est.size else _NAN}
    out["n_inf"], out["median"] = 0, float(np.median(est)) if est.size else _NAN
    out["bias"], out["bias_mcse"] = bias(est, theta)
    out["rel_bias"], out["rel_bias_mcse"] = rel_bias(est, theta)
    out["empse"], out["empse_mcse"] = empse(est, empse_mcse=empse_mcse)
    out["mse"], out["mse_mcse"] = mse(est, theta)
    out["rmse"] = math.sqrt(out["mse"])
    out["crlb"] = crlb
    out["efficiency"], out["efficiency_mcse"] = efficiency(est, crlb)
    se_names = ("modse", "modse_relerr", "coverage", "becoverage", "rejection")
    if se is None:
        out.update({k: _NAN for name in se_names for k in (name, f"{name}_mcse")})
        return out
    out["modse"], out["modse_mcse"] = modse(se)
    out["modse_relerr"], out["modse_relerr_mcse"] = modse_relerr(est, se, empse_mcse=empse_mcse)
    out["coverage"], out["coverage_mcse"] = coverage(est, se, theta, level)
    out["becoverage"], out["becoverage_mcse"] = becoverage(est, se, level)
    out["rejection"], out["rejection_mcse"] = rejection(est, se, null, level)
    return out


def _paired(
    rep_b: np.ndarray, est_b: np.ndarray, rep_a: np.ndarray, est_a: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Estimates of B and A on the replicates both have, matched by replicate id."""
    if rep_b.size == rep_a.size and _increasing(rep_b) and np.array_equal(rep_b, rep_a):
        return est_b, est_a  # the same replicates in the same (unique) order
    for rep in (rep_a, rep_b):
        if pd.Series(rep).duplicated().any():
            raise ValueError("replicate ids must be unique within a group and method")
    _, ib, ia = np.intersect1d(rep_b, rep_a, assume_unique=True, return_indices=True)
    return est_b[ib], est_a[ia]


def _increasing(values: np.ndarray) -> bool:
    """True when ``values`` (n,) strictly increase (so they are unique)."""
    return bool(values.size < 2 or (values[1:] > values[:-1]).all())


def _rel_precision_column(
    used: dict[tuple, np.ndarray],
    est_all: np.ndarray,
    rep_all: np.ndarray | None,
    by_cols: list[Hashable],
    method: Hashable,
    reference: object,
) -> dict[tuple, Pair]:
    """``rel_precision`` and MCSE per group key, comparing to the ``reference`` method.

    The reference of group ``key`` is the group with the same ``by`` values except
    ``method == reference``; estimates are paired by replicate id and only replicates
    where both methods succeeded are used. :func:`_check_reference` has checked
    ``method`` and ``reference``.
    """
    if reference is None or rep_all is None:
        return {key: _NAN_PAIR for key in used}
    j = by_cols.index(method)
    out: dict[tuple, Pair] = {}
    for key, rows in used.items():
        ref_key = key[:j] + (reference,) + key[j + 1 :]
        if key[j] == reference:
            out[key] = (0.0, 0.0) if rows.size >= 2 else _NAN_PAIR
        elif ref_key not in used:
            out[key] = _NAN_PAIR
        else:
            ref = used[ref_key]
            b, a = _paired(rep_all[rows], est_all[rows], rep_all[ref], est_all[ref])
            out[key] = rel_precision(b, a)
    return out


def performance(
    df: pd.DataFrame,
    true: float | Hashable,
    by: Hashable | Sequence[Hashable] | None = None,
    estimate: Hashable = "estimate",
    se: Hashable | None = "se",
    level: float = 0.95,
    *,
    crlb: float | Hashable | None = None,
    converged: Hashable | None = "converged",
    method: Hashable = "estimator",
    replicate: Hashable = "replicate",
    reference: object = None,
    null: float = 0.0,
    extended: bool = False,
    empse_mcse: str = "kurtosis",
    groups: tuple[np.ndarray, int] | None = None,
) -> pd.DataFrame:
    """Performance measures and their MCSEs for each group of a long table of estimates.

    Parameters
    ----------
    df : DataFrame, shape (n_rows, ...)
        One row per replicate (per group).
    true : float or column name
        True value ``theta``: a number, or a column constant within each group. Where
        it is not finite, the measures that need it (``bias``, ``rel_bias``, ``mse``,
        ``rmse``, ``coverage`` and their MCSEs) are NaN.
    by : column name, list of column names, or None
        Grouping columns; None gives a single group.
    estimate : column name
        Estimates. Rows with a NaN estimate are failures; ±inf (an estimate on the
        edge of the parameter space, such as ν̂ = ∞) counts, with infinite bias and MSE.
    se : column name or None
        Model-based standard errors; None, or the default ``"se"`` when ``df`` has
        no such column, gives NaN for the SE-based measures (and ``n_se == 0``).
        Any other name must be a column (KeyError otherwise). ``modse``,
        ``coverage``, ``becoverage``, ``rejection`` and the ModSE part of
        ``modse_relerr`` rest only on the ``n_se`` usable rows with a finite
        ``se >= 0``, which may be fewer than ``n_rep``.
    level : float
        Confidence level of the Wald intervals, in (0, 1).
    crlb : float, column name or None
        Cramér-Rao variance bound ``I^{-1} / n`` (constant within each group); None
        gives NaN ``crlb`` and ``efficiency`` columns, a non-finite bound a NaN
        ``efficiency``.
    converged : column name or None
        Boolean column; where present, rows not True (False or missing) are failures.
    method : column name
        Column naming the method, used for ``rel_precision`` only.
    replicate : column name
        Replicate id, used to pair methods for ``rel_precision`` only.
    reference : object
        Value of ``method`` to compare against for ``rel_precision`` (NaN when None);
        for the reference itself it is 0 with MCSE 0. When given, ``method`` must be
        a column listed in ``by`` and ``reference`` one of its values (ValueError
        otherwise).
    null : float
        Null value of the Wald test behind ``rejection``.
    extended : bool
        Append :data:`EXTENDED_COLUMNS`.
    empse_mcse : {"kurtosis", "normal"}
        Form of the MCSE of ``empse`` (and of its part in ``modse_relerr_mcse``), see
        :func:`empse`; ``"normal"`` reproduces rsimsum.
    groups : ``group_ids(df, by)`` when the caller has computed it (it is then not
        computed again), else None.

    Returns
    -------
    DataFrame, shape (n_groups, len(by) + 19 [+ 10])
        Groups in sorted order; the ``by`` columns, then :data:`SUMMARY_COLUMNS`
        (and :data:`EXTENDED_COLUMNS` when ``extended``). Failures are excluded from
        every measure and counted in ``n_failed``; ``n_rep`` counts the rest and
        ``n_se`` (int64) those of them with a finite ``se >= 0``. A group where every
        replicate failed has ``n_rep == 0`` and NaN measures. Formulas are those of
        the building blocks (Morris et al. 2019, Table 6).
    """
    wald_z(level)  # validate early
    _check_empse_mcse(empse_mcse)
    by_cols = _by_list(by)
    if reference is not None:
        _check_reference(df, by_cols, method, reference)
    est_all = _column(df, estimate, "estimate").to_numpy(dtype=float, na_value=np.nan)
    se_all = _se_values(df, se)
    true_all = _column_or_constant(df, true, "true")
    crlb_all = _column_or_constant(df, crlb, "crlb")
    ok = ~np.isnan(est_all) & _converged_mask(df, converged)  # ±inf: an estimate on an edge
    positions = _group_positions(df, by_cols, groups)
    used = {key: pos[ok[pos]] for key, pos in positions.items()}
    rep_all = None if reference is None else _column(df, replicate, "replicate").to_numpy()

    rows = []
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rel_prec = _rel_precision_column(used, est_all, rep_all, by_cols, method, reference)
        for key, pos in positions.items():
            theta = _group_constant(true_all[pos], "true", key)
            bound = _group_constant(crlb_all[pos], "crlb", key)
            u = used[key]
            row = dict(zip(by_cols, key, strict=True))
            se_u = None if se_all is None else se_all[u]
            row.update(true_value=theta, n_rep=u.size, n_failed=pos.size - u.size)
            row["n_se"] = _n_se(se_u, est_all[u])
            row.update(_measures(est_all[u], se_u, theta, bound, level, null, empse_mcse))
            row["rel_precision"], row["rel_precision_mcse"] = rel_prec[key]
            rows.append(row)

    columns = [*by_cols, *SUMMARY_COLUMNS, *(EXTENDED_COLUMNS if extended else ())]
    out = pd.DataFrame(rows, columns=columns)
    return out.astype({"n_rep": "int64", "n_failed": "int64", "n_se": "int64"})
