"""A chunk's sufficient statistics, computed once and shared by its estimators.

Several estimators of one study often need the same summaries of the same data: in
``variance_bias`` the normal MLE, the unbiased s² and the MAP each need every row's
mean x̄ and SS = Σ(x − x̄)², and the MAP's curvature needs them again. Each used to make
its own passes over the chunk (R × n numbers; about 15 passes in all); now the first
one to ask computes them and the others reuse them.

Sharing is scoped: :func:`shared_statistics` opens a scope (the engine opens one per
chunk, :func:`mlesim.work.run_task`) and :func:`remembered` answers from it only for
the very array object it computed from, and only if that array is read-only (the
engine makes a chunk's data read-only, so no estimator can change it under another).
Outside a scope, or for a writable array, :func:`remembered` simply computes. The
scope lives in a :class:`contextvars.ContextVar`, so threads working different chunks
never see each other's statistics and nothing is left behind after a chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np

_SCOPE: ContextVar[dict | None] = ContextVar("mlesim_shared_statistics", default=None)


@contextmanager
def shared_statistics() -> Iterator[None]:
    """Within this block, :func:`remembered` computes each statistic of an array once."""
    token = _SCOPE.set({})
    try:
        yield
    finally:
        _SCOPE.reset(token)


def freeze(data: dict[str, np.ndarray]) -> None:
    """Replace each array of a chunk's data by a read-only view of it (in place), so
    that statistics computed from them stay true while the chunk is worked (the arrays
    themselves, which may be a user's generator's own buffers, stay as they were)."""
    for key, value in data.items():
        if isinstance(value, np.ndarray):
            view = value.view()
            view.flags.writeable = False
            data[key] = view


def remembered(x: np.ndarray, name: str, compute: Callable[[np.ndarray], Any]) -> Any:
    """``compute(x)``, computed once per read-only array ``x`` within a
    :func:`shared_statistics` scope (identity, not equality, is the key)."""
    scope = _SCOPE.get()
    if scope is None or x.flags.writeable:
        return compute(x)
    key = (name, id(x))
    hit = scope.get(key)
    if hit is not None and hit[0] is x:
        return hit[1]
    value = compute(x)
    scope[key] = (x, value)  # holding x keeps its id from being reused in the scope
    return value


def mean_ss(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean x̄ and sum of squared deviations SS = Σ(x − x̄)² of each row of ``x`` (R, n),
    each (R,); shared within a chunk (:func:`remembered`). Do not modify the arrays.

    x̄ is ``x.mean(axis=1)`` and SS the pairwise sum of (x − x̄)², as numpy's ``var``
    computes them, except that a constant row gets its value as x̄ exactly and SS = 0
    (``mean`` may be 1 ulp off there, which would leave SS a tiny positive number).
    """
    return remembered(x, "mean_ss", _mean_ss)


def _mean_ss(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = x.shape[1]
    with np.errstate(invalid="ignore", over="ignore"):  # (non-finite rows stay NaN/inf)
        m = x.mean(axis=1)
        d = x - m[:, None]
        np.multiply(d, d, out=d)
        ss = d.sum(axis=1)
        # a constant row has SS ≤ n (δ m)² with |δ| ≲ n ε, the mean's rounding; check
        # those rows (and any truly near-constant ones) exactly
        near = np.flatnonzero(ss <= 4.0 * n * (n * np.finfo(float).eps * m) ** 2)
    if near.size:
        rows = near[(x[near] == x[near, :1]).all(axis=1)]
        m[rows] = x[rows, 0]
        ss[rows] = 0.0
    m.flags.writeable = ss.flags.writeable = False  # (shared: no estimator may change them)
    return m, ss
