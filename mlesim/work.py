"""The work of one chunk, as a helper process runs it: draw the chunk's data from its
own seed and fit every estimator (see :mod:`mlesim.engine` for the rest of a run).

This module imports only what that needs (numpy, the families and estimators), so a
spawned helper (where helpers are not forked, :mod:`mlesim.helpers`) is ready to work a
fraction of a second after it starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mlesim.failures import fit_safely
from mlesim.plugins import PluginContractError, add_search_path, adopt
from mlesim.sufficient import freeze, shared_statistics

if TYPE_CHECKING:
    from mlesim.chunks import Task
    from mlesim.scenarios import Data, Scenario

#: the arrays of a chunk's result (:func:`run_task`) and their types: one entry per row
#: of the replicates table, one per failed fit (``U``: strings as wide as the widest)
ROW_FIELDS = (
    ("est", "i2"),
    ("replicate", "i8"),
    ("param", "i2"),
    ("estimate", "f8"),
    ("se", "f8"),
    ("converged", "?"),
)
FAIL_FIELDS = (("fail_est", "i2"), ("fail_row", "i8"), ("fail_reason", "U"))
ROW_KEYS = tuple(name for name, _ in ROW_FIELDS)
RESULT_KEYS = ROW_KEYS + tuple(name for name, _ in FAIL_FIELDS)


def chunk_data(task: Task) -> tuple[Scenario, Data]:
    """The condition's scenario and the chunk's data: named arrays with the replicate
    axis first, ``{"x": (stop − start, n)}`` for a family."""
    scen = task.condition.scenario
    add_search_path(scen.search_path)  # a worker imports the user's plugins from there
    adopt(scen.local)  # and knows the objects handed over in Python
    ss = np.random.SeedSequence(task.seed, spawn_key=(task.key, task.chunk))
    return scen, scen.sample(ss, task.stop - task.start)


def run_task(task: Task) -> dict[str, np.ndarray]:
    """Simulate and estimate one chunk; returns long-format arrays.

    Returns
    -------
    dict with, one entry per estimator × parameter × replicate of the chunk: ``est``
    (estimator position), ``replicate``, ``param`` (parameter position in the model),
    ``estimate``, ``se``, ``converged``; and, one entry per failed (estimator,
    replicate): ``fail_est``, ``fail_row`` (row within the chunk), ``fail_reason``.
    """
    scen, data = chunk_data(task)
    return fit_chunk(scen, data, task.start, task.stop)


def fit_chunk(
    scen: Scenario, data: Data, start: int, stop: int, strict: bool = False
) -> dict[str, np.ndarray]:
    """Every estimator fitted to ``data`` (replicates ``start`` to ``stop``), as
    :func:`run_task` returns it; ``strict``: an estimator that raises raises here
    instead of failing its replicates."""
    freeze(data)  # estimators share the chunk's statistics (mlesim.sufficient)
    rows = stop - start
    reps = np.arange(start, stop, dtype=np.int64)
    parts, fails = [], []
    estimators = scen.estimators()
    with shared_statistics():  # (a user's estimator gets its own writable copy)
        fits = [fit_safely(est, data, strict) for est in estimators]
    for e, (est, (values, ses, ok, reason)) in enumerate(zip(estimators, fits, strict=True)):
        bad = np.flatnonzero(~ok)
        fails.append((np.full(bad.size, e, np.int16), bad, reason[bad]))
        for j, name in enumerate(est.param_names_):
            parts.append(
                {
                    "est": np.full(rows, e, np.int16),
                    "replicate": reps,
                    "param": np.full(rows, scen.model.index(name), np.int16),
                    "estimate": values[:, j],
                    "se": ses[:, j],
                    "converged": ok,
                }
            )
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    out["fail_est"] = np.concatenate([f[0] for f in fails])
    out["fail_row"] = np.concatenate([f[1] for f in fails]).astype(np.int64)
    out["fail_reason"] = np.concatenate([f[2] for f in fails]).astype(str)
    return out


#: most values (replicates × values per data set) of chunks fitted together
BUNDLE_VALUES = 1 << 18


def bundles(tasks: list[Task]) -> list[list[Task]]:
    """``tasks`` in bundles: runs of consecutive chunks of one condition, up to
    :data:`BUNDLE_VALUES` values together, where every estimator of the condition
    is row-wise (:attr:`mlesim.estimators.Estimator.rowwise`); each other task alone.

    A bundle's chunks are drawn from their own seeds and fitted as one batch
    (:func:`run_bundle`): the same numbers as one chunk at a time, with the cost of a
    fit's fixed steps (~0.5 ms for three estimators) paid once. Chunks of small data
    sets (n = 2: 0.07 ms to draw 1000 of them) cost mostly that.
    """
    from mlesim.chunks import cell_values

    out: list[list[Task]] = []
    size, rowwise = 0, {}
    for task in tasks:
        values = (task.stop - task.start) * cell_values(task.condition)
        last = out[-1][-1] if out else None
        if (
            last is not None
            and last.condition is task.condition
            and last.stop == task.start
            and size + values <= BUNDLE_VALUES
            and _rowwise(task, rowwise)
        ):
            out[-1].append(task)
            size += values
        else:
            out.append([task])
            size = values
    return out


#: what a Newton-fitted family's first chunk imports (start values, scores and
#: information use scipy.special's functions)
ITERATIVE_IMPORTS = ("scipy.special",)


def warm_up(tasks: list[Task]) -> None:
    """Import :data:`ITERATIVE_IMPORTS` now when an estimator of ``tasks`` fits a
    Newton-fitted family (:class:`~mlesim.families.smooth.SmoothFamily`), which would
    import them at its first chunk: called before helper processes are forked, so that
    they inherit the modules instead of each importing them again (~0.08 s apiece)."""
    import importlib

    from mlesim.families.smooth import SmoothFamily

    seen: set[int] = set()
    for task in tasks:
        scen = task.condition.scenario
        if scen is None or id(scen) in seen:
            continue
        seen.add(id(scen))
        if any(isinstance(getattr(e, "model", None), SmoothFamily) for e in scen.estimators()):
            for name in ITERATIVE_IMPORTS:
                importlib.import_module(name)
            return


def _rowwise(task: Task, seen: dict[int, bool]) -> bool:
    """Whether ``task``'s condition may be bundled (memoised by condition in ``seen``):
    mlesim draws its data (a user's generator may hand back one buffer it refills, or
    column-major arrays, whose sums run in another order), a data set has at most
    numpy's buffer size of values (8192: beyond it einsum sums a batch of one
    replicate, the sandwich's meat, in another order), and every estimator's own class
    declares itself row-wise (a subclass does not inherit it: a user's subclass of the
    mean with a bootstrap SE is not)."""
    from mlesim.chunks import cell_values

    key = id(task.condition)
    if key not in seen:
        scen = task.condition.scenario
        seen[key] = (
            scen is not None
            and not scen.generated
            and cell_values(task.condition) <= np.getbufsize()
            and all("rowwise" in vars(type(e)) and e.rowwise for e in scen.estimators())
        )
    return seen[key]


def run_bundle(tasks: list[Task]) -> list[dict[str, np.ndarray]]:
    """:func:`run_task` of each task of a bundle (:func:`bundles`), fitted together.

    If an estimator raises on the bundle, the chunks are fitted one at a time, so it
    fails the replicates of the chunks it raises on and no others, as without bundles.
    """
    if len(tasks) == 1:
        return [run_task(tasks[0])]
    scen, parts = None, []
    for task in tasks:
        scen, data = chunk_data(task)
        parts.append(data)
    whole = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    try:
        result = fit_chunk(scen, whole, tasks[0].start, tasks[-1].stop, strict=True)
    except PluginContractError:
        raise
    except Exception:  # noqa: BLE001 - fitted again chunk by chunk, as without bundles
        return [fit_chunk(scen, p, t.start, t.stop) for p, t in zip(parts, tasks, strict=True)]
    return split_bundle(result, tasks)


def split_bundle(result: dict[str, np.ndarray], tasks: list[Task]) -> list[dict[str, np.ndarray]]:
    """A bundle's result as each chunk's (:func:`run_task`'s arrays, in its order)."""
    first, total = tasks[0].start, tasks[-1].stop - tasks[0].start
    runs = result["est"].size // total if total else 0
    out = []
    for task in tasks:
        offset, rows = task.start - first, task.stop - task.start
        idx = (np.arange(runs)[:, None] * total + offset + np.arange(rows)).ravel()
        part = {name: result[name][idx] for name in ROW_KEYS}
        mine = (result["fail_row"] >= offset) & (result["fail_row"] < offset + rows)
        part["fail_est"] = result["fail_est"][mine]
        part["fail_row"] = result["fail_row"][mine] - offset
        part["fail_reason"] = np.array(result["fail_reason"][mine].tolist(), dtype=str)
        out.append(part)
    return out
