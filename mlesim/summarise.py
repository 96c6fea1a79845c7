"""Summarise a study: attach each condition's estimand and Cramér–Rao bound to the
replicates table and reduce it with :func:`mlesim.metrics.performance`."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pandas as pd

from mlesim.analysis import attach_targets
from mlesim.config import StudySpec, labels_of_kind
from mlesim.families.base import fixed_mask
from mlesim.metrics import (
    EXTENDED_COLUMNS,
    SUMMARY_COLUMNS,
    first_rows,
    group_ids,
    group_order,
    performance,
)

#: columns summary_extended.csv adds after the measures (see :func:`targets`)
FLAG_COLUMNS = ("misspecified", "estimand_on_edge")


#: configuration keys that determine a condition's estimand (not n)
_ESTIMAND_KEYS = ("truth", "model", "contamination", "estimand")


def targets(spec: StudySpec) -> pd.DataFrame:
    """One row per condition × estimator × parameter: factors, ``estimator``, ``param``,
    ``true_value`` (the estimand θ*), ``crlb`` = [(n I(θ*))⁻¹]_jj for the parameters the
    estimator leaves free, and two flags: ``misspecified`` (the model is not the truth's
    family or the data are contaminated, so crlb is the *model's* bound at θ* and
    efficiency may exceed 1) and ``estimand_on_edge`` (θ*_j is ±inf or on the edge of
    the space, e.g. ν* = ∞ for a t model of normal data: no bias, MSE or coverage)."""
    rows = []
    known: dict[str, np.ndarray] = {}  # the estimand does not depend on n: once per cell
    for cond in spec.conditions:
        scen = cond.scenario
        key = json.dumps([cond.config[k] for k in _ESTIMAND_KEYS], sort_keys=True, default=repr)
        if key not in known:
            known[key] = scen.target()
        target = known[key]
        edge = scen.edge_params(target)
        for est in scen.estimators():
            free = fixed_mask(scen.model, est.held_fixed)
            mine, crlb = est.retarget(target, scen.crlb(target, free))
            for name in est.param_names_:
                j = scen.model.index(name)
                rows.append(
                    {
                        **cond.factors,
                        "estimator": est.label,
                        "param": name,
                        "true_value": float(mine[j]),
                        "crlb": float(crlb[j]),
                        "misspecified": scen.misspecified
                        or not np.array_equal(mine, target, equal_nan=True),
                        "estimand_on_edge": name in edge,
                    }
                )
    return pd.DataFrame(rows)


def summarise(
    spec: StudySpec,
    replicates: pd.DataFrame,
    extended: bool = False,
    *,
    table: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The summary table (summary.csv): one row per condition × estimator × parameter,
    in grid and configuration order, with DESIGN.md's columns (``extended``: plus
    EXTENDED_COLUMNS, the flags and ``n_rep_common``, the replicates every estimator of
    the cell succeeded on). ``table`` is :func:`targets` ``(spec)``, computed if None.
    With ``compare: common`` the measures rest on the common replicates (the others
    count in ``n_failed``); with ``own`` (default) each estimator's on its own."""
    keys = spec.factor_names + ["estimator", "param"]
    tab = targets(spec) if table is None else table
    parts, counts = [], []
    for rows in blocks(replicates, spec.factor_names):  # cells, a few at a time
        measures, common = _summarise_block(spec, rows, tab, extended)
        parts.append(measures)
        counts.append(common)
    out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    out = out.astype({k: object for k in ("estimator", "param")})
    order = tab[keys].reset_index(drop=True).reset_index(names="_order")
    out = out.merge(order, on=keys, how="left").sort_values("_order", kind="stable")
    columns = keys + list(SUMMARY_COLUMNS) + (list(EXTENDED_COLUMNS) if extended else [])
    out = out[columns].reset_index(drop=True)
    if extended:
        flags = tab[keys + list(FLAG_COLUMNS)].astype({k: object for k in ("estimator", "param")})
        out = out.merge(flags, on=keys, how="left", validate="one_to_one")
        common = pd.concat(counts, ignore_index=True) if len(counts) > 1 else counts[0]
        common = common.astype({k: object for k in ("estimator", "param")})
        out = out.merge(common, on=keys, how="left", validate="one_to_one")
    return out


#: rows of the replicates table summarised at once (whole cells): the summary's
#: temporaries then stay a fraction of the table, whatever its size
BLOCK_ROWS = 1 << 20


def blocks(replicates: pd.DataFrame, factor_names: list[str]) -> Iterator[pd.DataFrame]:
    """The replicates table in blocks of whole cells of about :data:`BLOCK_ROWS` rows
    or more each (slices of the table where each cell's rows are contiguous, as in
    mlesim's tables; copies of the cells' rows otherwise); the whole table if it has
    no factor columns or few rows."""
    if len(replicates) <= BLOCK_ROWS or not factor_names:
        yield replicates
        return
    starts = _cell_starts(replicates, factor_names)
    if starts is not None:  # each cell's rows contiguous: slices
        bounds = [0, *starts.tolist(), len(replicates)]
        begin = 0
        for end in bounds[1:]:
            if end - begin >= BLOCK_ROWS or end == len(replicates):
                yield replicates.iloc[begin:end]
                begin = end
        return
    cells, count = group_ids(replicates, factor_names)
    order, bounds = group_order(cells, count)
    per_cell = np.split(order, bounds)
    batch: list[np.ndarray] = []
    for i, pos in enumerate(per_cell):  # copies of whole cells, one block at a time
        batch.append(pos)
        if sum(p.size for p in batch) >= BLOCK_ROWS or i == len(per_cell) - 1:
            yield replicates.take(np.sort(np.concatenate(batch)))
            batch = []


#: more runs of rows than this and the table is taken as not laid out by cell
MAX_RUNS = 1 << 16


def _cell_starts(replicates: pd.DataFrame, factor_names: list[str]) -> np.ndarray | None:
    """Where each cell's rows begin but the first (k − 1,), if every cell's rows are one
    contiguous run (mlesim's tables are), else None. One pass of neighbour comparisons
    with boolean temporaries (the cells' ids over the whole table took 0.2–0.3 s for 6
    million rows)."""
    change = np.zeros(len(replicates) - 1, dtype=bool)
    for name in factor_names:
        column = replicates[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            values = column.cat.codes.to_numpy()
        elif isinstance(column.dtype, np.dtype) and column.dtype.kind in "iubf":
            values = column.to_numpy()
        else:  # (strings, objects: hashed once rather than compared row by row)
            values = pd.factorize(column, use_na_sentinel=False)[0]
        differs = values[1:] != values[:-1]
        if values.dtype.kind == "f":  # NaN after NaN is the same cell
            differs &= ~(np.isnan(values[1:]) & np.isnan(values[:-1]))
        change |= differs
    starts = np.flatnonzero(change) + 1
    if starts.size >= MAX_RUNS:
        return None
    firsts = replicates[factor_names].iloc[np.r_[0, starts]]
    return None if firsts.duplicated().any() else starts


def _summarise_block(
    spec: StudySpec, replicates: pd.DataFrame, tab: pd.DataFrame, extended: bool
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """:func:`performance` of whole cells of the replicates table, and (``extended``)
    each group's ``n_rep_common``."""
    keys = spec.factor_names + ["estimator", "param"]
    mles = labels_of_kind(spec["estimators"], "mle")
    ref = mles[0] if mles else None
    common = common_mask(replicates, spec.factor_names)
    if spec["compare"] == "common":
        replicates = replicates.assign(converged=common)
    groups = group_ids(replicates, keys)  # (the same rows throughout: numbered once)
    table = attach_targets(replicates, tab, spec.factor_names, groups)
    levels = by_level(spec, table)
    parts = []
    for level, rows in levels:  # a design over confidence: per cell
        parts.append(
            performance(
                rows,
                "true_value",
                by=keys,
                level=level,
                crlb="crlb",
                reference=ref,
                extended=extended,
                groups=groups if len(levels) == 1 else None,
            )
        )
    out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    if not extended:
        return out, None
    gid, size = groups
    counts = replicates[keys].iloc[first_rows(gid, size)].reset_index(drop=True)
    counts["n_rep_common"] = np.bincount(gid, weights=common, minlength=size).astype(np.int64)
    return out, counts


def by_level(spec: StudySpec, table: pd.DataFrame) -> list[tuple[float, pd.DataFrame]]:
    """(confidence level, rows) pairs: the whole table at ``confidence``, or — when the
    design varies ``confidence`` (a factor column of that name) — each level's cells."""
    if "confidence" not in spec.factor_names:
        return [(spec["confidence"], table)]
    levels = table["confidence"].to_numpy(dtype=float)
    return [(float(v), table[levels == v]) for v in np.unique(levels)]


def common_mask(replicates: pd.DataFrame, factor_names: list[str]) -> np.ndarray:
    """Rows (len(replicates),) of the replicates where *every* estimator of the cell
    succeeded (converged, no NaN estimate): the common set that ``compare: common``
    summarises all estimators on, like for like (Morris, White & Crowther 2019, §5.3)."""
    ok = replicates["converged"].to_numpy(bool) & ~np.isnan(replicates["estimate"].to_numpy())
    gid, groups = _cell_replicate_ids(replicates, factor_names)
    clean = np.bincount(gid[~ok], minlength=groups) == 0  # (counting the failures only)
    return clean[gid]


def _cell_replicate_ids(
    replicates: pd.DataFrame, factor_names: list[str]
) -> tuple[np.ndarray, int]:
    """Ids (len(replicates),) of the (cell, replicate) pairs and how many ids there can
    be: cell × (R + 1) + replicate where the replicate ids are integers 0..R with R
    small beside the table (no renumbering pass), else :func:`group_ids`."""
    rep = replicates["replicate"].to_numpy()
    if rep.dtype.kind in "iu" and rep.size and rep.min() >= 0:
        cell, cells = group_ids(replicates, factor_names)
        width = int(rep.max()) + 1
        if cells * width <= 4 * rep.size:
            cell *= width  # (group_ids returns a new array)
            cell += rep
            return cell, cells * width
    return group_ids(replicates, [*factor_names, "replicate"])


def split_summary(extended: pd.DataFrame, factor_names: list[str]) -> pd.DataFrame:
    """summary.csv's columns out of an extended summary (the same rows and values)."""
    return extended[factor_names + ["estimator", "param", *SUMMARY_COLUMNS]].copy()
