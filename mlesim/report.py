"""The run's ``report.md``: what was run, the figures, notes and the summary table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mlesim.config import StudySpec
from mlesim.storage import markdown_table, write_text

SHOWN = [
    "estimator",
    "param",
    "true_value",
    "n_rep",
    "n_failed",
    "bias",
    "bias_mcse",
    "empse",
    "rmse",
    "coverage",
    "efficiency",
]


def caveats(extended: pd.DataFrame, factor_names: list[str], compare: str = "own") -> list[str]:
    """Markdown notes on rows whose numbers do not mean what they seem.

    ``extended`` is summary_extended.csv's table (with ``misspecified``,
    ``estimand_on_edge`` and ``n_se``). Notes: (1) under misspecification or
    contamination, crlb and efficiency are the *assumed model's* bound at θ* — the
    MLE's variance tends to the sandwich A⁻¹BA⁻¹/n instead (White 1982), so efficiency
    may exceed 1 — with the flagged rows; (2) estimands on the edge of the space (±inf),
    whose bias, MSE, coverage and efficiency are undefined; (3) rows whose SE-based
    measures rest on fewer replicates (n_se) than n_rep; (4) estimators on different
    replicate sets (``compare``); estimates at the edge; efficiency above 1.
    """
    notes = []
    keys = [*factor_names, "estimator", "param"]
    flagged = extended.get("misspecified", pd.Series(False, index=extended.index)).astype(bool)
    if (flagged & np.isfinite(extended["crlb"])).any():  # no bound at all: nothing to caveat
        rows = extended[flagged]
        cols = keys + ["true_value", "crlb", "efficiency", "efficiency_mcse"]
        notes.append(
            "**Misspecified rows: the bound is the model's.** In the rows below the model is "
            "not the truth's family, the data are contaminated, or the estimator assumes "
            "another law than the truth's (a regression MLE under another noise, class "
            "weights). `true_value` is then the pseudo-true θ* (the KL projection, or the "
            "weighted fit's limit; with `estimand: truth` the clean truth's θ). For a wrong "
            "model `crlb` is the *assumed model's* bound [I(θ*)⁻¹]ⱼⱼ/n and the √CRLB lines "
            "of the figures are that bound; for an estimator's own assumption it is the "
            "truth's bound where θ* is the truth's value and NaN where θ* moved. The fit's "
            "variance tends to the sandwich A⁻¹BA⁻¹/n (White 1982, Econometrica 50:1), so "
            "against the assumed model's bound `efficiency` can exceed 1 and says nothing "
            "about attaining a bound for the true law.\n\n" + markdown_table(rows[cols])
        )
    if "estimand_on_edge" in extended and extended["estimand_on_edge"].any():
        rows = extended[extended["estimand_on_edge"].astype(bool)]
        names = ", ".join(sorted(set(rows["param"].astype(str))))
        notes.append(
            f"**Estimand at the edge of the parameter space ({names}).** The projection of "
            "the data law onto the model runs off to the edge (e.g. ν* = ∞: a t model of "
            "normal data gets closer to the data the larger ν), so `true_value` is "
            "reported as ±inf and bias, MSE, coverage and efficiency are undefined (NaN) "
            "for it, and it has no bias/RMSE figure; the other parameters are studied at "
            "that limit."
        )
    notes += _beyond_the_bound(extended, keys)
    if "n_inf" in extended and (extended["n_inf"].fillna(0) > 0).any():
        rows = extended[extended["n_inf"].fillna(0) > 0].copy()
        rows["share_at_edge"] = rows["n_inf"] / rows["n_rep"]
        notes.append(
            "**Estimates on the edge of the parameter space.** In these rows some fits "
            "reached the edge — ν̂ = ∞ for a t (the likelihood rises all the way to the "
            "normal limit), size = ∞ for a negative binomial (the Poisson limit). They are "
            "estimates, not failures: the fit's other parameters count in every measure, "
            "and here the mean, bias and MSE are infinite, the empirical SE and efficiency "
            "undefined; the share at the edge and the median estimate describe them:\n\n"
            + markdown_table(rows[keys + ["n_rep", "n_inf", "share_at_edge", "median"]])
        )
    if "n_rep_common" in extended:
        differ = extended[extended["n_rep_common"] != extended["n_rep"]]
        if len(differ) and compare == "own":
            notes.append(
                "**Estimators on different replicate sets** (`compare: own`, the default: "
                "each estimator's measures rest on its own successful fits). Where some "
                "estimators failed on replicates others fitted, their rows are not like for "
                "like; `n_rep_common` is how many replicates every estimator of the cell "
                "succeeded on — rerun with `compare=common` to summarise all on those "
                "(Morris, White & Crowther 2019, §5.3):\n\n"
                + markdown_table(differ[keys + ["n_rep", "n_rep_common"]])
            )
        elif compare == "common" and (extended["n_failed"] > 0).any():
            notes.append(
                "**Like for like** (`compare: common`): every estimator's measures rest on "
                "the replicates where all estimators of the cell succeeded (`n_rep`); "
                "`n_failed` counts the rest, its own failures and the others'."
            )
    if "n_se" in extended:
        short = extended[(extended["n_se"] < extended["n_rep"]) & (extended["n_rep"] > 0)]
        if len(short):
            notes.append(
                "**SE-based measures on fewer replicates.** In these rows some usable "
                "estimates had no standard error, so `modse` and `coverage` rest on `n_se` "
                "of the `n_rep` replicates:\n\n"
                + markdown_table(short[keys + ["n_rep", "n_se", "coverage"]])
            )
    return notes


def _beyond_the_bound(extended: pd.DataFrame, keys: list[str]) -> list[str]:
    """A note on correctly specified rows whose efficiency exceeds 1 by more than 4
    MCSE: the Cramér–Rao bound holds for unbiased estimators, and a biased one (a MAP,
    a shrinkage estimator) may have a smaller variance."""
    if "efficiency" not in extended:
        return []
    flag = extended.get("misspecified", pd.Series(False, index=extended.index)).astype(bool)
    over = extended["efficiency"] - 4 * extended["efficiency_mcse"] > 1
    rows = extended[over & ~flag]
    if rows.empty:
        return []
    cols = keys + ["bias", "bias_mcse", "efficiency", "efficiency_mcse"]
    return [
        "**Efficiency above 1.** The Cramér–Rao bound limits the variance of *unbiased* "
        "estimators; a biased estimator (a MAP pulled towards its prior, a shrinkage "
        "estimator) can have a smaller variance, so its `efficiency` may exceed 1 — compare "
        "its MSE instead:\n\n" + markdown_table(rows[cols])
    ]


def _values(values) -> str:
    """A list of values as ``[0, 0.05, 0.1]`` (no float noise, no quotes)."""
    if isinstance(values, list | tuple):
        return "[" + ", ".join(_values(v) for v in values) + "]"
    return f"{values:g}" if isinstance(values, float) else str(values)


def _mapping(values: dict) -> str:
    return ", ".join(f"{k} = {_values(v)}" for k, v in values.items())


def _law(part: dict, prefix: str, design: dict) -> str:
    """``family(a=1, b ∈ [..])`` of the truth or the contamination, design values shown."""
    name = part.get("family") or part.get("_target_")
    params = ", ".join(
        f"{k} ∈ {_values(design[f'{prefix}.params.{k}'])}"
        if f"{prefix}.params.{k}" in design
        else f"{k}={_values(v)}"
        for k, v in (part.get("params") or {}).items()
    )
    return f"{name}({params})"


def _contamination(cont: dict | None, design: dict) -> str:
    """The contamination in words: 'none', or 'fraction 0.05 of normal(mu=10, sigma2=1)'."""
    if not cont:
        return "none"
    key = "contamination.fraction"
    fraction = _values(design[key]) if key in design else _values(cont["fraction"])
    word = "fractions" if key in design else "fraction"
    return f"{word} {fraction} of {_law(cont, 'contamination', design)}"


def write_report(
    path: Path,
    spec: StudySpec,
    summary: pd.DataFrame,
    figures: list[tuple[Path, str]],
    notes: list[str],
) -> Path:
    """Write report.md beside the figures (``notes``: the study's, then :func:`caveats`)."""
    cfg = spec.config
    truth = cfg["truth"]
    design = cfg["design"] or {}
    varied = ", ".join(f"{k} ∈ {_values(v)}" for k, v in design.items())
    model = (
        f"model ∈ {_values(design['model'])}"
        if "model" in design
        else (f"model: {cfg['model'] or truth.get('family') or 'none'}")
    )
    head = [
        f"# {cfg['name']}: study `{cfg['study']}`",
        "",
        f"Truth: {_law(truth, 'truth', design)}; {model}; "
        + (f"estimand: {_mapping(cfg['estimand'])}; " if isinstance(cfg["estimand"], dict) else "")
        + f"contamination: {_contamination(cfg['contamination'], design)}; "
        f"{cfg['replications']} replications per cell; seed {cfg['seed']}; "
        f"n = {_values(cfg['n'])}" + (f"; design: {varied}" if varied else "") + ".",
        "",
    ]
    body = []
    for fig, caption in figures:
        rel = Path(fig).relative_to(Path(path).parent)
        body += [f"![{caption}]({rel.as_posix()})", "", f"*{caption}*", ""]
    body += [n + "\n" for n in notes]
    keys = [k for k in spec.factor_names]
    table = summary[keys + [c for c in SHOWN if c in summary.columns]]
    body += [
        "## Summary",
        "",
        markdown_table(table),
        "",
        "All columns, with Monte Carlo SEs, are in `summary.csv`.",
        "",
    ]
    return write_text(path, "\n".join(head + body))


def main(argv: list[str] | None = None) -> int:
    """``python -m mlesim.report DIR... [--out DIR]``: gather run and sweep directories
    into one sweep_summary.csv, sweep_failures.csv and sweep_report.md
    (:func:`mlesim.sweep.build`); ``--results`` rebuilds the curated results/REPORT.md
    from experiments/ (:func:`mlesim.curate.build`). Errors are one line, exit 2."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m mlesim.report",
        description="Combine mlesim runs and sweeps (e.g. pieces run on a cluster) into "
        "sweep_summary.csv, sweep_failures.csv and sweep_report.md.",
    )
    parser.add_argument("dirs", nargs="*", type=Path, help="run or sweep directories")
    parser.add_argument("--out", type=Path, help="where to write (default: the one DIR)")
    parser.add_argument(
        "--results", action="store_true", help="rebuild results/ from experiments/ instead"
    )
    args = parser.parse_args(argv)
    try:
        if args.results:
            from mlesim.curate import build as curate

            print(curate())
            return 0
        if not args.dirs:
            raise ValueError("give one or more run or sweep directories, or --results")
        from mlesim.sweep import build

        print(build(args.dirs, args.out))
    except (OSError, ValueError) as err:
        print(f"mlesim.report: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
