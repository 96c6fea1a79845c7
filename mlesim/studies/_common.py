"""Small helpers shared by the consistency, crlb_efficiency and asymptotic_normality
studies: option checks and the scenario behind a design cell."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlesim.config import StudySpec, labels_of_kind
from mlesim.errors import ConfigError
from mlesim.plots import pm
from mlesim.scenarios import Scenario


def merged_options(config: dict, defaults: dict[str, Any]) -> dict[str, Any]:
    """``analysis.*`` of ``config`` over the study's defaults."""
    return {**defaults, **(config.get("analysis") or {})}


def check_positive(value: Any, key: str) -> float:
    """``value`` as a float > 0, or ConfigError naming ``analysis.<key>``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"analysis.{key}", f"must be a number > 0, got {value!r}")
    return float(value)


def check_choice(value: Any, key: str, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of ``allowed``, or ConfigError naming ``analysis.<key>``."""
    if value not in allowed:
        raise ConfigError(f"analysis.{key}", f"unknown {value!r}; allowed: {', '.join(allowed)}")
    return value


def check_min_sizes(config: dict, study: str, minimum: int = 2) -> None:
    """The study needs at least ``minimum`` sample sizes in ``n``."""
    if len(config["n"]) < minimum:
        raise ConfigError(
            "n", f"study {study} needs at least {minimum} sample sizes, got {config['n']}"
        )


def cell_scenario(spec: StudySpec, cell: dict) -> Scenario:
    """The scenario of the first condition (smallest position in the grid) of a design cell."""
    for cond in spec.conditions:
        if all(cond.factors[k] == v for k, v in cell.items()):
            return cond.scenario
    raise KeyError(f"no condition matches {cell}")


def misspecified_note(scen: Scenario, cell: dict) -> str:
    """A report note when a cell's model is wrong or its data contaminated ('' if not).

    The ``crlb`` column is then the *model's* bound [I(θ*)⁻¹]_jj / n at the estimand θ*;
    the MLE's variance tends to the sandwich [A⁻¹ B A⁻¹]_jj / n instead, with
    A = −E_g ∂² log f and B = E_g (∂ log f)(∂ log f)ᵀ (White 1982, Econometrica 50:1), so
    neither its efficiency nor its standardised spread need tend to 1.
    """
    if not scen.misspecified:
        return ""
    what = "contaminated data" if scen.contamination is not None else "a misspecified model"
    where = ", ".join(f"{k} = {v}" for k, v in cell.items())
    return (
        f"**Misspecification{f' ({where})' if where else ''}.** With {what} ({scen.model.name} "
        f"fitted to {scen.truth.name} data), the bound used here is the model's "
        "I(θ*)⁻¹/n at the estimand θ*; the MLE's variance tends to the sandwich "
        "A⁻¹BA⁻¹/n instead (White 1982), so its efficiency and the spread of its "
        "standardised estimates need not tend to 1."
    )


def first_to_last(rows, value: str, mcse: str, digits: int) -> str:
    """``"v ± m at n = a → v ± m at n = b"`` from the first and last of ``rows`` (sorted by n)."""
    first, last = rows.iloc[0], rows.iloc[-1]
    return (
        f"{pm(first[value], first[mcse], digits)} at n = {first['n']:g} → "
        f"{pm(last[value], last[mcse], digits)} at n = {last['n']:g}"
    )


def replicate_sets(summary) -> str:
    """A caption fragment when the estimators in ``summary`` (one cell's rows) rest on
    different numbers of replicates at some n ('' when they are like for like)."""
    counts = summary.groupby(["n", "estimator"], sort=True, observed=True)["n_rep"].first()
    differ = [n for n, per in counts.groupby(level="n") if per.nunique() > 1]
    if not differ:
        return ""
    per = counts.loc[differ[0]]
    listed = ", ".join(f"{est} {int(k)}" for est, k in per.items())
    return (
        f" Estimators rest on different replicate sets (n_rep at n = {differ[0]:g}: "
        f"{listed}); compare=common puts them on the same ones."
    )


def studied_params(summary) -> list[str]:
    """The parameters of a cell's summary rows with a finite estimand, in order: one on
    the edge of the space (ν* = ∞) has no bias, RMSE or standardised estimate to draw,
    and the report's caveats say so instead."""
    finite = summary[np.isfinite(summary["true_value"].to_numpy(float))]
    return list(dict.fromkeys(finite["param"]))


def reference_rows(rows_by_est: dict, spec: StudySpec):
    """Rows of the estimator whose CRLB draws the theory line: the first estimator of
    kind mle present in ``rows_by_est`` (label → rows), else the first estimator."""
    mles = [label for label in labels_of_kind(spec["estimators"], "mle") if label in rows_by_est]
    return rows_by_est[mles[0]] if mles else next(iter(rows_by_est.values()))
