"""Sequential stopping: ``replications: auto`` adds chunks to each cell until the Monte
Carlo SE of a chosen measure is below a target, for every estimator and parameter of
the cell, or the cell reaches a cap.

Configuration (``stopping.*``): ``target_mcse`` (required), ``measure`` — the summary.csv
measure whose ``<measure>_mcse`` is watched (bias, empse, mse, coverage or efficiency;
bias by default), ``min_replications`` (the first round) and ``max_replications`` (the
cap).

The run proceeds in rounds. A round computes new chunks of every unfinished cell; then
each such cell's worst MCSE m over its estimators and parameters decides: stop if
m ≤ target or the cap is reached, else aim for R·(m / target)² replicates (MCSE ∝ R^(−1/2),
Morris, White & Crowther 2019, §5.2), at most 4·R, rounded up to whole chunks. The
decision uses the results only, never timing or the machine, and chunk ``c`` of a cell
is the same chunk as in a fixed-size run, so the run is reproducible and a cell stopped
at R replicates holds exactly the rows of a run with ``replications=R``. An
estimator × parameter whose every replicate failed (no estimate to judge) does not hold
its cell back; one whose MCSE is undefined for another reason (e.g. coverage without
standard errors) runs to the cap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlesim.assembly import assemble
from mlesim.checkpoint import ChunkStore
from mlesim.chunks import RunChunks, Task, cell_tasks, cell_values, chunk_size
from mlesim.config import Condition, StudySpec
from mlesim.summarise import summarise, targets

#: most a cell grows in one round (guards against a noisy early MCSE)
GROWTH = 4


@dataclass(frozen=True)
class Rule:
    """The stopping rule of one cell (``stopping.*`` of its configuration)."""

    target: float
    measure: str
    min_replications: int
    max_replications: int

    @classmethod
    def from_config(cls, config: dict) -> Rule:
        """The rule of a condition's configuration (its ``stopping`` section)."""
        s = config["stopping"]
        return cls(
            float(s["target_mcse"]),
            s["measure"],
            int(s["min_replications"]),
            int(s["max_replications"]),
        )

    @property
    def column(self) -> str:
        """The summary.csv column watched, e.g. ``bias_mcse``."""
        return f"{self.measure}_mcse"


@dataclass(frozen=True)
class CellOutcome:
    """How one cell ended: its replicates, worst MCSE, and whether it met the target."""

    factors: dict
    replications: int
    worst: float
    met: bool


@dataclass(frozen=True)
class StopReport:
    """Outcome of a sequential run: one entry per cell (grid order) and the rounds."""

    rule: Rule
    cells: tuple[CellOutcome, ...]
    rounds: int

    @property
    def capped(self) -> list[CellOutcome]:
        """Cells that reached ``max_replications`` without meeting the target."""
        return [c for c in self.cells if not c.met]

    def summary_line(self) -> str:
        """One line: the rule, rounds, and the range of replications used."""
        reps = [c.replications for c in self.cells]
        met = len(self.cells) - len(self.capped)
        return (
            f"sequential stopping ({self.rule.column} <= {self.rule.target:g}): "
            f"{met} of {len(self.cells)} cell(s) met the target after {self.rounds} "
            f"round(s), with {min(reps)} to {max(reps)} replications per cell"
        )

    def capped_line(self) -> str:
        """One line naming the cells stopped at the cap ('' when none)."""
        capped = self.capped
        if not capped:
            return ""
        shown = ", ".join(
            " ".join(f"{k}={v}" for k, v in c.factors.items()) + f" ({self.rule.column} "
            f"{c.worst:.3g})"
            for c in capped[:5]
        )
        more = ", …" if len(capped) > 5 else ""
        return (
            f"{len(capped)} cell(s) stopped at stopping.max_replications="
            f"{self.rule.max_replications} without reaching {self.rule.column} <= "
            f"{self.rule.target:g}: {shown}{more}"
        )


def first_goal(rule: Rule, size: int) -> int:
    """Replicates of the first round: min_replications rounded up to whole chunks."""
    return min(rule.max_replications, -(-rule.min_replications // size) * size)


def next_goal(reps: int, worst: float, rule: Rule, size: int) -> int:
    """Replicates to aim for after ``reps`` gave worst MCSE ``worst``.

    R·(worst / target)² (MCSE ∝ R^(−1/2)), between one more chunk and GROWTH·R,
    rounded up to whole chunks, at most the cap. An undefined ``worst`` grows by GROWTH.
    """
    if np.isfinite(worst):
        need = math.ceil(reps * (worst / rule.target) ** 2)
    else:
        need = GROWTH * reps
    need = min(max(need, reps + 1), GROWTH * reps)
    return min(rule.max_replications, -(-need // size) * size)


def worst_mcse(rows: pd.DataFrame, column: str) -> float:
    """Largest ``column`` over a cell's summary rows; NaN if any is undefined.

    Rows where every replicate failed (``n_rep == 0``) are left out; a cell with no
    other row gives 0 (nothing left to estimate).
    """
    judged = rows.loc[rows["n_rep"] > 0, column].to_numpy(dtype=float)
    if judged.size == 0:
        return 0.0
    if np.isnan(judged).any():
        return float("nan")
    return float(judged.max())


def _cell_rows(summary: pd.DataFrame, cond: Condition) -> pd.DataFrame:
    mask = np.ones(len(summary), dtype=bool)
    for name, value in cond.factors.items():
        mask &= (summary[name] == value).to_numpy()
    return summary[mask]


def sequential(spec: StudySpec, store: ChunkStore, run: RunChunks) -> tuple[list[Task], StopReport]:
    """Run ``replications: auto`` round by round with ``run``; return every task run
    (grid order, then chunk) and the report."""
    table = targets(spec)
    rules = {c.index: Rule.from_config(c.config) for c in spec.conditions}
    sizes = {c.index: chunk_size(cell_values(c), spec["runner"]) for c in spec.conditions}
    done = {c.index: 0 for c in spec.conditions}
    goal = {c.index: first_goal(rules[c.index], sizes[c.index]) for c in spec.conditions}
    tasks: dict[int, list[Task]] = {c.index: [] for c in spec.conditions}
    outcomes: dict[int, CellOutcome] = {}
    active, rounds = list(spec.conditions), 0
    while active:
        new = [cell_tasks(spec, c, goal[c.index], start=done[c.index]) for c in active]
        run([t for chunk_tasks in new for t in chunk_tasks])
        rounds += 1
        for cond, chunk_tasks in zip(active, new, strict=True):
            tasks[cond.index] += chunk_tasks
            done[cond.index] = goal[cond.index]
        current = [t for c in active for t in tasks[c.index]]
        summary = summarise(spec, assemble(spec, current, store.results(current)), table=table)
        still = []
        for cond in active:
            i, rule = cond.index, rules[cond.index]
            worst = worst_mcse(_cell_rows(summary, cond), rule.column)
            met = bool(worst <= rule.target)
            if met or done[i] >= rule.max_replications:
                outcomes[i] = CellOutcome(dict(cond.factors), done[i], worst, met)
            else:
                goal[i] = next_goal(done[i], worst, rule, sizes[i])
                still.append(cond)
        active = still
    report = StopReport(
        rules[spec.conditions[0].index],
        tuple(outcomes[c.index] for c in spec.conditions),
        rounds,
    )
    return [t for c in spec.conditions for t in tasks[c.index]], report
