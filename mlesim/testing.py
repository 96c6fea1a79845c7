"""Assertions for test suites: is my estimator unbiased, efficient, consistent, are its
intervals calibrated? Each runs a small batched study of the estimator (a plugin
callable, as in ``estimators: {_target_: ...}``) under a given truth and compares the
measure with its theory value using the Monte Carlo SE of the study itself — never a
tolerance the user picks:

    |measured − theory| < z · MCSE,  z = 4 by default.

With a correct estimator the false-failure rate of one assertion is P(|N(0, 1)| > z) =
2Φ(−z) ≈ 6.3e-5 for z = 4 (for large ``replications``, where the measure is close to
normal), so a suite of a hundred such assertions fails spuriously about once in 160 runs
of it; a fixed ``seed`` makes each assertion deterministic. The failure message states
the measured value, its MCSE and the tolerance.

>>> import numpy as np
>>> from mlesim.testing import assert_unbiased
>>> def s2(x):  # the sample variance, for every row of x (R, n) at once
...     return x.var(axis=1, ddof=1)
>>> assert_unbiased(s2, truth="normal", params=["sigma2"], n=5, replications=4000)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from mlesim import analysis
from mlesim.api import Results, run

__all__ = ["assert_coverage", "assert_consistent", "assert_efficient", "assert_unbiased"]

#: the label of the estimator under test in the study's tables
LABEL = "candidate"


def _study(
    estimator: Callable | Mapping[str, Any],
    truth: str | Mapping[str, Any],
    params: Sequence[str] | None,
    n: int | Sequence[int],
    replications: int,
    seed: int,
    options: Mapping[str, Any] | None,
    level: float = 0.95,
) -> Results:
    """A small in-memory study of ``estimator`` under ``truth`` (intervals at ``level``)."""
    if callable(estimator):
        if not params:
            raise ValueError("params: name the model parameters the callable estimates")
        spec = {"_target_": estimator, "params": list(params), **dict(options or {})}
    else:
        spec = dict(estimator)
    if isinstance(truth, str):
        from mlesim.api import compose_config

        truth = compose_config(None, [f"truth={truth}"])["truth"]
    config = {
        "truth": dict(truth),
        "estimators": {LABEL: spec},
        "n": [n] if isinstance(n, int) else list(n),
        "replications": int(replications),
        "seed": int(seed),
        "confidence": float(level),
        "name": "mlesim_testing",
    }
    return run(None, ["runner.progress=false"], config=config)


def _rows(res: Results) -> list[dict]:
    return res.summary[res.summary["estimator"] == LABEL].to_dict("records")


def _check(what: str, row: dict, value: str, mcse: str, theory: float, z: float) -> None:
    got, err = row[value], row[mcse]
    where = f"{row['param']} at n = {row['n']}"
    if not (np.isfinite(got) and np.isfinite(err)):
        raise AssertionError(f"{what} of {where} is undefined ({value} = {got}, MCSE = {err})")
    tol = z * err
    if abs(got - theory) >= tol:
        raise AssertionError(
            f"{what} of {where}: {value} = {got:.6g} ± {err:.3g} (MCSE) against {theory:.6g}; "
            f"|difference| {abs(got - theory):.3g} ≥ {z:g}·MCSE = {tol:.3g} "
            f"({row['n_rep']} replicates)"
        )


def assert_unbiased(
    estimator: Callable | Mapping[str, Any],
    truth: str | Mapping[str, Any] = "normal",
    *,
    params: Sequence[str] | None = None,
    n: int | Sequence[int] = 10,
    replications: int = 2000,
    seed: int = 0,
    z: float = 4.0,
    options: Mapping[str, Any] | None = None,
) -> Results:
    """Fail unless |bias| < z · bias_mcse for every parameter and sample size.

    Parameters
    ----------
    estimator : a callable ``f(x, **options)`` of the chunk x (R, n) returning estimates
        (R,) or (R, k), (estimates, se) or a mapping (see :mod:`mlesim.plugins`); or an
        estimator spec such as ``{"kind": "mle"}``
    truth : a family name (its default parameters from ``conf/truth``) or a mapping
        ``{"family": ..., "params": {...}}`` (a generator has no true values to test
        against; use :func:`mlesim.run` with an ``estimand`` mapping for one)
    params : the model parameters the callable estimates, in order
    n : a sample size or several;  replications : data sets per size;  seed : fixes them
    z : tolerance in Monte Carlo SEs;  options : keyword arguments of the callable

    Returns the study's :class:`~mlesim.api.Results` (for a closer look).
    """
    res = _study(estimator, truth, params, n, replications, seed, options)
    for row in _rows(res):
        _check("bias", row, "bias", "bias_mcse", 0.0, z)
    return res


def assert_coverage(
    estimator: Callable | Mapping[str, Any],
    truth: str | Mapping[str, Any] = "normal",
    level: float = 0.95,
    *,
    params: Sequence[str] | None = None,
    n: int | Sequence[int] = 50,
    replications: int = 4000,
    seed: int = 0,
    z: float = 4.0,
    options: Mapping[str, Any] | None = None,
) -> Results:
    """Fail unless the Wald interval θ̂ ± z_level·se covers θ at the nominal ``level``:
    |coverage − level| < z · sqrt(level (1 − level) / R) (the binomial MCSE under the
    nominal level). The estimator must return standard errors."""
    res = _study(estimator, truth, params, n, replications, seed, options, level)
    for row in _rows(res):
        if row["n_se"] < row["n_rep"]:
            raise AssertionError(
                f"coverage of {row['param']} at n = {row['n']}: only {row['n_se']} of "
                f"{row['n_rep']} replicates have a standard error"
            )
        row = dict(row, nominal_mcse=float(np.sqrt(level * (1 - level) / row["n_se"])))
        _check("coverage", row, "coverage", "nominal_mcse", level, z)
    return res


def assert_efficient(
    estimator: Callable | Mapping[str, Any],
    truth: str | Mapping[str, Any] = "normal",
    *,
    params: Sequence[str] | None = None,
    n: int | Sequence[int] = 200,
    replications: int = 4000,
    seed: int = 0,
    z: float = 4.0,
    options: Mapping[str, Any] | None = None,
) -> Results:
    """Fail unless the estimator attains the Cramér–Rao bound: |efficiency − 1| <
    z · efficiency_mcse, efficiency = CRLB / Var(θ̂) (a family truth is needed for the
    bound; use a large n, the bound is asymptotic for most estimators)."""
    res = _study(estimator, truth, params, n, replications, seed, options)
    for row in _rows(res):
        _check("efficiency", row, "efficiency", "efficiency_mcse", 1.0, z)
    return res


def assert_consistent(
    estimator: Callable | Mapping[str, Any],
    truth: str | Mapping[str, Any] = "normal",
    *,
    params: Sequence[str] | None = None,
    n: Sequence[int] = (100, 200, 400, 800),
    replications: int = 2000,
    seed: int = 0,
    z: float = 4.0,
    options: Mapping[str, Any] | None = None,
) -> Results:
    """Fail unless the RMSE falls as n^(−1/2): the slope of log RMSE on log n (weighted
    least squares, :func:`mlesim.analysis.rate_slope`) is within z · its SE of −1/2."""
    res = _study(estimator, truth, params, n, replications, seed, options)
    rows = res.summary[res.summary["estimator"] == LABEL]
    for param, group in rows.groupby("param", sort=False):
        group = group.sort_values("n")
        fit = analysis.rate_slope(
            group["n"], group["rmse"], analysis.rmse_mcse(group["mse"], group["mse_mcse"])
        )
        row = {
            "param": param,
            "n": f"{group['n'].min()}–{group['n'].max()}",
            "slope": fit.slope,
            "slope_se": fit.se,
            "n_rep": int(group["n_rep"].min()),
        }
        _check("RMSE rate", row, "slope", "slope_se", -0.5, z)
    return res
