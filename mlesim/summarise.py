"""Summarise a study: attach each condition's estimand and Cramér–Rao bound to the
replicates table and reduce it with :func:`mlesim.metrics.performance`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlesim.config import StudySpec
from mlesim.families.base import fixed_mask
from mlesim.metrics import EXTENDED_COLUMNS, SUMMARY_COLUMNS, performance
from mlesim.scenarios import Scenario


def targets(spec: StudySpec) -> pd.DataFrame:
    """One row per condition × estimator × parameter: factors, ``estimator``, ``param``,
    ``true_value`` (the estimand θ*) and ``crlb`` = [(n I(θ*))⁻¹]_jj for the
    parameters the estimator leaves free."""
    rows = []
    for cond in spec.conditions:
        scen = Scenario.from_config(cond.config, n=cond.factors["n"])
        target = scen.target()
        for est in scen.estimators():
            free = fixed_mask(scen.model, getattr(est, "fixed", None))
            crlb = scen.crlb(target, free)
            for name in est.param_names_:
                j = scen.model.index(name)
                rows.append(
                    {
                        **cond.factors,
                        "estimator": est.label,
                        "param": name,
                        "true_value": float(target[j]),
                        "crlb": float(crlb[j]),
                    }
                )
    return pd.DataFrame(rows)


def summarise(spec: StudySpec, replicates: pd.DataFrame, extended: bool = False) -> pd.DataFrame:
    """The summary table (summary.csv): one row per condition × estimator × parameter,
    in grid and configuration order, with DESIGN.md's columns."""
    keys = spec.factor_names + ["estimator", "param"]
    tab = targets(spec)
    df = replicates.merge(tab, on=keys, how="left", validate="many_to_one")
    ref = spec["estimators"] and ("mle" if "mle" in spec["estimators"] else None)
    out = performance(
        df,
        "true_value",
        by=keys,
        level=spec["confidence"],
        crlb="crlb",
        reference=ref,
        extended=extended,
    )
    order = tab[keys].reset_index(drop=True).reset_index(names="_order")
    out = out.merge(order, on=keys, how="left").sort_values("_order", kind="stable")
    columns = keys + list(SUMMARY_COLUMNS) + (list(EXTENDED_COLUMNS) if extended else [])
    return out[columns].reset_index(drop=True)


def failure_counts(summary: pd.DataFrame) -> tuple[int, int]:
    """(total failed replicates, number of cells where every replicate failed)."""
    failed = int(np.nansum(summary["n_failed"]))
    empty = int(((summary["n_rep"] == 0) & (summary["n_failed"] > 0)).sum())
    return failed, empty
