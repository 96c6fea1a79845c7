"""Failed fits: why a replicate failed, the run's failures.csv, its one warning line, and
:func:`mlesim.replay.replay` gets a failed data set back.

A replicate *fails* for an estimator when the fit raised, returned a non-finite estimate
or did not converge. It is kept in replicates.parquet with ``converged = False``, left
out of every measure and counted in summary.csv's ``n_failed``. A boundary estimate is
not a failure: p̂ = 0 from an all-zero Bernoulli sample is a finite, converged estimate
(its Wald interval has width 0 and misses p, which is what a study should show).

The reason is the estimator's own ``reason_`` (object array (R,), '' where fine) when it
gives one, else ``'raised <Type>: <message>'``, ``'non-finite estimate'`` or
``'not converged'``. failures.csv has one row per failed (estimator, replicate) with what
replays it: the design factors, ``estimator``, ``replicate``, ``reason``, ``seed``,
``condition_key``, ``chunk`` and ``row`` (position within the chunk).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from mlesim.estimators import Estimator
from mlesim.families.base import estimable
from mlesim.plugins import MAX_REASON, PluginContractError, raised

if TYPE_CHECKING:
    import pandas as pd

FAILURE_COLUMNS = ("estimator", "replicate", "reason", "seed", "condition_key", "chunk", "row")


def fit_safely(
    est: Estimator, x: np.ndarray | Mapping[str, np.ndarray], strict: bool = False
) -> tuple[np.ndarray, ...]:
    """Fit ``est`` to ``x`` (R, n) — or to a data mapping of arrays with the replicate
    axis first — and say which replicates failed and why (``strict``: an estimator that
    raises raises here, instead of failing every replicate).

    Returns
    -------
    values, se : (R, k) estimates and standard errors (NaN where the fit raised)
    ok : (R,) bool, True where converged with every estimate finite (or +inf on the
        edge of a positive parameter, such as ν̂ = ∞)
    reason : (R,) object, '' where ok, else why it failed (see the module docstring)
    """
    first = next(iter(x.values())) if isinstance(x, Mapping) else x
    rows, k = np.shape(first)[0], len(est.param_names_)
    try:
        est.fit(x)
    except PluginContractError:  # a plugin mistake for the whole chunk: stop the run
        raise
    except Exception as err:  # an estimator that raises fails its replicates, not the run
        if strict:
            raise
        nan = np.full((rows, k), np.nan)
        return nan, nan.copy(), np.zeros(rows, dtype=bool), np.full(rows, raised(err), object)
    values, se = np.asarray(est.params_, float), np.asarray(est.se_, float)
    finite = estimable(est.model, values, tuple(est.param_names_))
    ok = np.asarray(est.converged_, dtype=bool) & finite
    reason = np.full(rows, "", dtype=object)
    if ok.all():  # (the usual chunk: nothing to say)
        return values, se, ok, reason
    reason[~ok & ~finite] = "non-finite estimate"
    reason[~ok & finite] = "not converged"
    own = np.asarray(est.reason_, dtype=object)
    if own.shape == (rows,):
        bad = np.flatnonzero(~ok)
        use = bad[[_said(v) for v in own[bad]]] if bad.size else bad
        reason[use] = own[use].astype(str).astype(f"U{MAX_REASON}").astype(object)  # cut
    return values, se, ok, reason


def _said(value: object) -> bool:
    """Whether an estimator's own reason says something: not "", None or NaN."""
    try:
        return bool(value is not None and value == value and value != "")
    except TypeError:  # pd.NA: "not known" is not a reason
        return False


def warning_line(failures: pd.DataFrame, summary: pd.DataFrame, factor_names: list[str]) -> str:
    """The run's one line about failures ('' when there were none).

    It gives the number of failed fits, the commonest reasons per estimator, where the
    details are, and the cells (condition × estimator × parameter) where every replicate
    failed, which summary.csv shows with ``n_rep = 0`` and NaN measures.
    """
    if failures.empty:
        return ""
    parts = []
    for label, group in failures.groupby("estimator", sort=False, observed=True):
        common = Counter(group["reason"]).most_common(2)
        reasons = ", ".join(f"{r!r} ×{c}" for r, c in common)
        more = "" if len(common) == group["reason"].nunique() else ", …"
        parts.append(f"{label}: {reasons}{more}")
    line = (
        f"{len(failures)} replicate fit(s) failed and were left out of the measures "
        f"(n_failed in summary.csv; reasons and replay info in failures.csv) — " + "; ".join(parts)
    )
    own = failures.groupby([*factor_names, "estimator"], observed=True, dropna=False).size()
    total = summary["n_rep"] + summary["n_failed"]  # the cell's replicates, in either compare
    keys = list(zip(*(summary[k] for k in [*factor_names, "estimator"]), strict=True))
    failed = np.array([own.get(k, 0) for k in keys])  # keys: (n, …, estimator) tuples
    empty = summary[(failed >= total) & (total > 0)]  # the estimator's own fits all failed
    if not empty.empty:
        cells = [
            " ".join(f"{k}={row[k]}" for k in factor_names) + f" {row['estimator']}/{row['param']}"
            for _, row in empty.iterrows()
        ]
        shown = ", ".join(cells[:5]) + (", …" if len(cells) > 5 else "")
        line += (
            f". No successful fit in {len(empty)} cell(s), shown in summary.csv with NaN "
            f"measures: {shown}"
        )
    return line
