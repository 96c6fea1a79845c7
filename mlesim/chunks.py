"""The plan of a study: design cells cut into chunks of replicates, each with its seed.

Chunk ``c`` of the condition with factor values ``f`` holds replicates ``c·size`` to
``(c + 1)·size`` and draws from ``SeedSequence(seed, spawn_key=(condition_key(f), c))``.
The key hashes the factor values, not the position in the grid, and the chunk size
depends on the configuration only (DESIGN.md, "Reproducibility").
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mlesim.config import Condition, StudySpec
from mlesim.errors import ConfigError

#: replicates per chunk unless memory asks for fewer (never depends on the machine)
DEFAULT_CHUNK = 1000
#: bytes held per observation while a chunk is simulated and estimated (data and
#: temporaries): an upper bound, checked with tracemalloc for every family and estimator
#: in tests/test_memory.py (closed forms peak at 8–41 bytes, iterative MLEs at up to 73)
WORKING_BYTES = 8 * 12


def condition_key(factors: dict) -> int:
    """Stable 63-bit key of a condition's factor values (independent of grid order)."""
    canon = json.dumps({k: factors[k] for k in sorted(factors)}, sort_keys=True, default=repr)
    return int.from_bytes(hashlib.sha256(canon.encode()).digest()[:8], "big") >> 1


def cell_values(cond: Condition) -> int:
    """Numbers in one data set of a cell: n times the model's values per observation
    (1 for i.i.d. scalars; d + 1 for a regression's covariates and response)."""
    scen = cond.scenario
    width = 1 if scen is None or scen.generated else scen.truth.width
    return cond.factors["n"] * width


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
        """The condition key of :func:`condition_key` (part of the chunk's seed)."""
        return condition_key(self.condition.factors)


#: runs chunk tasks to completion (into the store): what mlesim.stopping is given
RunChunks = Callable[[list[Task]], None]


def cell_tasks(spec: StudySpec, cond: Condition, stop: int, start: int = 0) -> list[Task]:
    """The chunks of ``cond`` holding replicates ``start`` to ``stop`` (exclusive).

    Chunk ``c`` holds replicates ``c·size`` to ``min((c + 1)·size, stop)``; ``start``
    must be a chunk boundary.
    """
    size = chunk_size(cell_values(cond), spec["runner"])
    if start % size:
        raise ValueError(f"start={start} is not a multiple of the chunk size {size}")
    return [
        Task(cond, c, c * size, min(c * size + size, stop), spec["seed"])
        for c in range(start // size, -(-stop // size))
    ]


def plan(spec: StudySpec, replications: int | None = None) -> list[Task]:
    """Every (condition, chunk) task of a fixed-size study, in grid order."""
    reps = spec["replications"] if replications is None else replications
    if reps == "auto":
        raise ValueError("replications=auto is planned round by round: see mlesim.stopping")
    return [t for cond in spec.conditions for t in cell_tasks(spec, cond, reps)]


#: most chunks a study may plan (10⁶ chunks of up to 1000 replicates: 10⁹ data sets)
MAX_CHUNKS = 1_000_000


def machine_memory() -> int:
    """Bytes of physical memory of this machine (0 when unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def check_size(spec: StudySpec) -> None:
    """Refuse, before any work, a study this machine cannot hold or mlesim cannot plan:
    one data set larger than the memory (``WORKING_BYTES`` per observation while it is
    simulated and fitted), or more than ``MAX_CHUNKS`` chunks.

    Raises
    ------
    ConfigError
        At ``n`` or ``replications``, with the estimate and what is allowed.
    """
    memory = machine_memory()
    biggest = max(c.factors["n"] for c in spec.conditions)
    if memory and WORKING_BYTES * biggest > memory:
        most = memory // WORKING_BYTES
        raise ConfigError(
            "n",
            f"one data set of n = {biggest} needs about {WORKING_BYTES * biggest / 2**30:.0f} GiB "
            f"while it is fitted, more than this machine's {memory / 2**30:.0f} GiB; allowed: "
            f"n up to about {most:.3g}",
        )
    reps = spec["replications"]
    if reps == "auto":
        reps = spec["stopping"]["max_replications"]
    total = sum(-(-reps // chunk_size(cell_values(c), spec["runner"])) for c in spec.conditions)
    if total > MAX_CHUNKS:
        raise ConfigError(
            "replications",
            f"{reps} replications in {len(spec.conditions)} cell(s) make {total:.3g} chunks, "
            f"more than mlesim plans ({MAX_CHUNKS:.0e}); allowed: fewer replications or cells",
        )


def _same_factors(have: dict, given: dict) -> bool:
    """Whether ``given`` names the cell ``have``: the same keys, values equal as numbers
    where both are numbers (failures.csv read back by pandas may turn 10 into 10.0)."""
    if set(have) != set(given):
        return False
    for key, value in have.items():
        other = given[key]
        numbers = all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in (value, other)
        )
        if not (float(value) == float(other) if numbers else value == other):
            return False
    return True


def locate(spec: StudySpec, factors: dict, replicate: int) -> tuple[Task, int]:
    """The chunk task holding ``replicate`` of the cell with ``factors``, and its row."""
    plain = {k: v.item() if isinstance(v, np.generic) else v for k, v in factors.items()}
    conds = [c for c in spec.conditions if _same_factors(c.factors, plain)]
    if not conds:
        have = [c.factors for c in spec.conditions]
        raise KeyError(f"no condition with factors {factors}; the study has {have}")
    cond = conds[0]
    reps = spec["replications"]
    if reps == "auto":  # chunks are full except at the cap
        reps = cond.config["stopping"]["max_replications"]
    if not 0 <= replicate < reps:
        raise IndexError(f"replicate {replicate} is outside 0..{reps - 1}")
    size = chunk_size(cell_values(cond), spec["runner"])
    chunk = replicate // size
    task = Task(cond, chunk, chunk * size, min(chunk * size + size, reps), spec["seed"])
    return task, replicate - task.start
