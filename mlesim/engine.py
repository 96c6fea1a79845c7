"""The engine: design grid × replicate chunks, seeding, parallel execution.

Seeding (DESIGN.md): chunk ``c`` of the condition with factor values ``f`` draws from
``SeedSequence(seed, spawn_key=(condition_key(f), c))``. The key hashes the factor
values, not the position in the grid, and the chunk size depends on the
configuration only, so the replicate table is the same for any ``n_jobs``, backend
or completion order, and raising ``replications`` extends a run.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
from joblib import Parallel, delayed, parallel_config
from tqdm.auto import tqdm

from mlesim.config import Condition, StudySpec
from mlesim.scenarios import Scenario

#: replicates per chunk unless memory asks for fewer (never depends on the machine)
DEFAULT_CHUNK = 1000
#: bytes held per observation while a chunk is estimated (data and temporaries)
WORKING_BYTES = 8 * 12

REPLICATE_COLUMNS = ("estimator", "replicate", "param", "estimate", "se", "converged")


def condition_key(factors: dict) -> int:
    """Stable 63-bit key of a condition's factor values (independent of grid order)."""
    canon = json.dumps({k: factors[k] for k in sorted(factors)}, sort_keys=True, default=repr)
    return int.from_bytes(hashlib.sha256(canon.encode()).digest()[:8], "big") >> 1


def chunk_size(n: int, runner: dict) -> int:
    """Replicates per chunk for sample size ``n``: ``runner.chunk_size`` if set, else
    DEFAULT_CHUNK capped so a chunk's working set stays under ``runner.max_chunk_mb``."""
    if runner.get("chunk_size"):
        return int(runner["chunk_size"])
    cap = int(runner["max_chunk_mb"] * 2**20 // (WORKING_BYTES * n))
    return max(1, min(DEFAULT_CHUNK, cap))


@dataclass(frozen=True)
class Task:
    """Replicates ``start`` to ``stop`` (exclusive) of one condition: chunk ``chunk``."""

    condition: Condition
    chunk: int
    start: int
    stop: int
    seed: int

    @property
    def key(self) -> int:
        return condition_key(self.condition.factors)


def plan(spec: StudySpec, replications: int | None = None) -> list[Task]:
    """Every (condition, chunk) task of the study, in grid order."""
    reps = spec["replications"] if replications is None else replications
    tasks = []
    for cond in spec.conditions:
        size = chunk_size(cond.factors["n"], spec["runner"])
        for c, start in enumerate(range(0, reps, size)):
            tasks.append(Task(cond, c, start, min(start + size, reps), spec["seed"]))
    return tasks


def run_task(task: Task) -> dict[str, np.ndarray]:
    """Simulate and estimate one chunk; returns long-format arrays.

    Returns
    -------
    dict with ``est`` (estimator position), ``replicate``, ``param`` (parameter
    position in the model), ``estimate``, ``se``, ``converged`` — one entry per
    estimator × parameter × replicate of the chunk.
    """
    scen = Scenario.from_config(task.condition.config, n=task.condition.factors["n"])
    ss = np.random.SeedSequence(task.seed, spawn_key=(task.key, task.chunk))
    x = scen.sample(ss, task.stop - task.start)
    reps = np.arange(task.start, task.stop)
    parts = []
    for e, est in enumerate(scen.estimators()):
        try:
            est.fit(x)
            values, ses, conv = est.params_, est.se_, est.converged_
        except Exception:  # an estimator that raises fails its replicates, not the run
            k = len(est.param_names_)
            values = ses = np.full((len(reps), k), np.nan)
            conv = np.zeros(len(reps), dtype=bool)
        for j, name in enumerate(est.param_names_):
            parts.append(
                {
                    "est": np.full(len(reps), e),
                    "replicate": reps,
                    "param": np.full(len(reps), scen.model.index(name)),
                    "estimate": values[:, j],
                    "se": ses[:, j],
                    "converged": conv & np.isfinite(values[:, j]),
                }
            )
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _indexed(i: int, task: Task) -> tuple[int, dict]:
    return i, run_task(task)


def execute(tasks: list[Task], runner: dict, progress: bool | None = None) -> list[dict]:
    """Run ``tasks`` with joblib; results come back in task order whatever the schedule."""
    show = sys.stderr.isatty() if progress is None else progress
    results: list[dict | None] = [None] * len(tasks)
    bar = tqdm(total=len(tasks), disable=not show, desc="chunks", unit="chunk")
    with bar:
        for i, res in _stream(tasks, runner):
            results[i] = res
            bar.update()
    return results


def _stream(tasks: list[Task], runner: dict):
    """Yield (task index, result) as chunks finish, in any order."""
    backend, n_jobs = runner["backend"], runner["n_jobs"]
    if backend == "sequential" or n_jobs == 1:
        yield from (_indexed(i, t) for i, t in enumerate(tasks))
        return
    extra = {"inner_max_num_threads": 1} if backend == "loky" else {}
    with parallel_config(backend=backend, **extra):
        yield from Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
            delayed(_indexed)(i, t) for i, t in enumerate(tasks)
        )


def assemble(spec: StudySpec, tasks: list[Task], results: list[dict]) -> pd.DataFrame:
    """The replicates table: design factors, then REPLICATE_COLUMNS; sorted by
    condition, estimator (config order), replicate, parameter."""
    labels = list(spec["estimators"])
    frames = []
    for task, res in zip(tasks, results, strict=True):
        scen_params = _model_params(task.condition)
        m = len(res["estimate"])
        frame = {name: np.repeat(np.asarray([v]), m) for name, v in task.condition.factors.items()}
        frame.update(
            _cond=np.full(m, task.condition.index),
            _est=res["est"],
            estimator=np.asarray(labels, dtype=object)[res["est"]],
            replicate=res["replicate"],
            _param=res["param"],
            param=np.asarray(scen_params, dtype=object)[res["param"]],
            estimate=res["estimate"],
            se=res["se"],
            converged=res["converged"],
        )
        frames.append(pd.DataFrame(frame))
    df = pd.concat(frames, ignore_index=True)
    df = df.sort_values(["_cond", "_est", "replicate", "_param"], kind="stable")
    df = df.drop(columns=["_cond", "_est", "_param"]).reset_index(drop=True)
    df["estimator"] = df["estimator"].astype(str)
    df["param"] = df["param"].astype(str)
    return df


def _model_params(cond: Condition) -> tuple[str, ...]:
    from mlesim.families import get_family

    cfg = cond.config
    return get_family(cfg.get("model") or cfg["truth"]["family"]).params


def simulate(spec: StudySpec, progress: bool | None = None) -> pd.DataFrame:
    """Run the whole study and return the replicates table."""
    tasks = plan(spec)
    results = execute(tasks, spec["runner"], progress)
    return assemble(spec, tasks, results)
