"""Plugins that the contract test (tests/test_contract.py) runs for every family, the way
a user would name them: ``{_target_: tests.plugin_examples.mean_and_se, params: [...]}``."""

from __future__ import annotations

import numpy as np

from mlesim.estimators import Mean


def mean_and_se(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched: the mean of each row of ``x`` (R, n) and its SE sd/√n (divisor n, so that
    n = 1 gives SE 0)."""
    return x.mean(axis=1), x.std(axis=1) / np.sqrt(x.shape[1])


def median_of_one(x: np.ndarray) -> dict:
    """Per data set (``vectorized: false``): the median of ``x`` (n,), with a mapping."""
    return {"estimate": float(np.median(x)), "se": float(np.std(x) / np.sqrt(x.size))}


class MeanSubclass(Mean):
    """A subclass of a built-in estimator named by ``_target_``."""


def fails_above(x: np.ndarray, cut: float = 1.0) -> np.ndarray:
    """The mean of each row of ``x`` (R, n), NaN (a failed replicate) where the first
    observation exceeds ``cut``: a known subset of failures."""
    return np.where(x[:, 0] > cut, np.nan, x.mean(axis=1))


def normal_draws(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A generator: standard normal data of shape ``size``."""
    return rng.standard_normal(size)


def mean_and_var(x: np.ndarray) -> np.ndarray:
    """Two estimates per row of ``x`` (R, n): mean and variance, shape (R, 2)."""
    return np.column_stack([x.mean(axis=1), x.var(axis=1)])


def flags_as_text(x: np.ndarray) -> dict:
    """A plugin breaking its contract: ``converged`` as strings."""
    return {"estimate": x.mean(axis=1), "converged": np.array(["False"] * x.shape[0])}
