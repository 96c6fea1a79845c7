"""Study ``crlb_efficiency``: efficiency = CRLB / Var(θ̂) = 1 / (n I(θ) Var θ̂) against n.

The MLE's efficiency tends to 1 for every family; at the normal the mean attains the
bound while the median's efficiency tends to 2/π. One figure per design cell, one
panel per parameter, every estimator with ±2 MCSE bars, and the theory lines:

- 1, the Cramér–Rao bound (the asymptotic efficiency of the MLE);
- the median's asymptotic efficiency 4 f(m)² [I(θ)⁻¹]_jj (2/π at the normal, 8/π²
  at the Cauchy) and its exact finite-n value at odd n
  (:func:`mlesim.analysis.median_efficiency`, :func:`~mlesim.analysis.median_efficiency_exact`);
- the mean's asymptotic efficiency [I(θ)⁻¹]_jj / Var X when it is not 1.

The median and mean lines, and the MLE's limit of 1, hold for correctly specified
models only; otherwise the report says so (:func:`~mlesim.studies._common.misspecified_note`).

Options (``analysis.*``):

- ``optional_estimators`` ([]): labels of estimators that are dropped, with a note in
  the report, when they do not apply to the model (the mean needs a ``location``
  parameter, the median a symmetric ``center``). The preset lists ``mean`` and
  ``median`` so that ``experiment=crlb_efficiency truth=exponential`` runs the MLE
  alone. Other configuration errors of these estimators are still reported.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import numpy as np

from mlesim import analysis, plots
from mlesim.errors import ConfigError
from mlesim.estimators import ESTIMATORS, make_estimator
from mlesim.families import get_family
from mlesim.studies._common import (
    cell_scenario,
    merged_options,
    misspecified_note,
    replicate_sets,
)

if TYPE_CHECKING:
    from mlesim.config import StudySpec
    from mlesim.studies import Rendered, StudyContext

log = logging.getLogger("mlesim")

OPTIONS: dict = {"optional_estimators": []}


def _inapplicable(label: str, spec: dict, model) -> str | None:
    """Why estimator ``label`` cannot be used with ``model``, or None if it can.

    Only a refusal of the *kind* by the model counts (the error on
    ``estimators.<label>.kind`` of a known kind); any other error propagates.
    """
    if not isinstance(spec, dict) or spec.get("kind") not in ESTIMATORS:
        return None  # let the regular validation report it
    try:
        make_estimator(label, spec, model)
    except ConfigError as err:
        if err.key == f"estimators.{label}.kind":
            return err.message
        raise
    return None


def check(config: dict) -> None:
    """Drop the ``optional_estimators`` that the model cannot take (mutates
    ``config["estimators"]``); at least one estimator must remain."""
    labels = merged_options(config, OPTIONS)["optional_estimators"]
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ConfigError(
            "analysis.optional_estimators", f"must be a list of estimator labels, got {labels!r}"
        )
    estimators = config["estimators"]
    for label in labels:
        if label not in estimators:
            raise ConfigError(
                "analysis.optional_estimators",
                f"{label!r} is not an estimator label; allowed: {', '.join(estimators)}",
            )
    model = get_family(
        config.get("model") or config["truth"]["family"],
        key="model" if config.get("model") else "truth.family",
    )
    for label in labels:
        reason = _inapplicable(label, estimators[label], model)
        if reason is not None:
            log.info("crlb_efficiency: estimator %s left out: %s", label, reason)
            del estimators[label]
    if not estimators:
        raise ConfigError("estimators", f"none of them applies to the model {model.name}")


def dropped(spec: StudySpec) -> list[str]:
    """Optional estimators the study left out for this model."""
    labels = (spec["analysis"] or {}).get("optional_estimators") or []
    return [x for x in labels if x not in spec["estimators"]]


def _odd_grid(ns: np.ndarray, points: int = 30) -> np.ndarray:
    """About ``points`` odd integers spanning [min n, max n] (log-spaced)."""
    lo, hi = max(1, int(ns.min())), int(ns.max())
    grid = np.unique(np.geomspace(lo, hi, points).astype(int) // 2 * 2 + 1)
    return grid[(grid >= lo) & (grid <= hi)]


def _theory(ax, scen, param: str, ns: np.ndarray) -> dict[str, float]:
    """Draw the theory lines of ``param``; return the asymptotic values drawn."""
    values = {}
    if scen.misspecified:  # the MLE's limit is the sandwich's, not 1: see misspecified_note
        ax.axhline(1.0, color="k", lw=1.5, label="model's Cramér–Rao bound = 1")
        return values
    ax.axhline(1.0, color="k", lw=1.5, label="Cramér–Rao bound (MLE limit) = 1")
    model, theta = scen.model, scen.target()
    if param == model.center:
        eff = analysis.median_efficiency(model, theta)
        values["median"] = eff
        ax.axhline(eff, color="C3", ls="--", lw=1.2, label=f"median limit 4f(m)²/I = {eff:.4f}")
        if not model.discrete:
            grid = _odd_grid(ns)
            exact = [analysis.median_efficiency_exact(model, theta, int(m)) for m in grid]
            ax.plot(grid, exact, color="C3", lw=0.8, label="median, exact at odd n")
    if param == model.location:
        eff = analysis.mean_efficiency(model, theta)
        values["mean"] = eff
        if math.isfinite(eff) and abs(eff - 1.0) > 1e-9:
            ax.axhline(eff, color="C2", ls=":", lw=1.2, label=f"mean limit I⁻¹/Var X = {eff:.4f}")
    return values


def _undefined(rows) -> str:
    """Why an estimator's efficiency is NaN in ``rows`` (its summary rows), in words."""
    edge = np.isinf(rows["mean"].to_numpy(float))
    if edge.any():
        return "estimates at the edge, e.g. ν̂ = ∞: infinite variance; see the report"
    if (rows["n_rep"] < 2).all():
        return "fewer than two successful fits"
    return "no Cramér–Rao bound here"


def _panel(ax, summary, param, scen) -> list[str]:
    """Efficiency of each estimator of ``param``; returns note fragments."""
    groups = plots.by_estimator(summary, param)
    ns = summary["n"].unique().astype(float)
    limits = _theory(ax, scen, param, ns)
    fragments = []
    for i, (est, rows) in enumerate(groups.items()):
        x = plots.dodge(rows["n"], i, len(groups))
        plots.errorbars(ax, x, rows["efficiency"], rows["efficiency_mcse"], est)
        last = rows.iloc[-1]
        if not np.isfinite(last["efficiency"]):
            why = _undefined(rows)
            fragments.append(f"{est}: undefined at n = {last['n']:g} ({why})")
            if not np.isfinite(rows["efficiency"]).any():
                ax.text(
                    0.5,
                    0.5,
                    f"{est}: efficiency undefined\n({why})",
                    ha="center",
                    va="center",
                    transform=ax.transAxes,
                    fontsize=9,
                )
            continue
        kind = scen.estimator_specs[est].get("kind")
        limit = 1.0 if kind == "mle" and not scen.misspecified else limits.get(kind, math.nan)
        text = f" (theory limit {limit:.4f})" if math.isfinite(limit) else ""
        fragments.append(
            f"{est}: {plots.pm(last['efficiency'], last['efficiency_mcse'])} at "
            f"n = {last['n']:g}{text}"
        )
    plots.label_axes(
        ax, "sample size n", f"efficiency of {param}: CRLB / Var(θ̂)", title=param, logx=True
    )
    return fragments


def render(ctx: StudyContext) -> Rendered:
    """Figure ``crlb_efficiency[_<cell>].png``; notes with the efficiencies at the largest n."""
    figures, notes = [], []
    for cell, summary in analysis.design_cells(ctx.summary, ctx.design_keys):
        scen = cell_scenario(ctx.spec, cell)
        notes.append(misspecified_note(scen, cell))
        params = list(dict.fromkeys(summary["param"]))
        fig, axes = plots.new_figure(ncols=len(params))
        for ax, param in zip(axes[0], params, strict=True):
            fragments = _panel(ax, summary, param, scen)
            notes.append(
                f"**{param}**{plots.cell_title(cell)}, efficiency at the largest n ± MCSE: "
                + "; ".join(fragments)
                + "."
            )
        fig.suptitle(
            f"Efficiency against the Cramér–Rao bound{plots.cell_title(cell)}", fontsize=11
        )
        path = plots.save(fig, ctx.figdir / f"crlb_efficiency{plots.cell_suffix(cell)}.png")
        figures.append(
            (
                path,
                f"Efficiency CRLB / Var(θ̂) = 1/(n I(θ) Var θ̂) against n"
                f"{plots.cell_title(cell)} (above 1 is possible for a biased estimator: "
                f"the bound holds for unbiased ones); {plots.mcse_note()}."
                + replicate_sets(summary),
            )
        )
    gone = dropped(ctx.spec)
    if gone:
        model = ctx.spec["model"] or ctx.spec["truth"]["family"]
        notes.append(
            f"Left out because they do not apply to {model} "
            f"(analysis.optional_estimators): {', '.join(gone)}."
        )
    return figures, [n for n in notes if n]
