"""Chunks of small data sets are fitted together in bundles (mlesim.work.bundles) where
every estimator is row-wise: each chunk's numbers are bit for bit those of fitting it
alone, its failures too, and a raise in a bundle fails only the chunks it raises on."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import study_spec

from mlesim.engine import plan
from mlesim.estimators import UnbiasedVariance
from mlesim.work import BUNDLE_VALUES, bundles, chunk_data, run_bundle, run_task

NORMAL = {"family": "normal", "params": {"mu": 0.3, "sigma2": 2.0}}
ROWWISE = {  # truth, estimators: every row-wise kind and option
    "normal": (
        NORMAL,
        {
            "mle": {"kind": "mle"},
            "observed": {"kind": "mle", "se": "observed"},
            "sandwich": {"kind": "mle", "se": "sandwich"},
            "known_mu": {"kind": "mle", "fixed": {"mu": 0.3}},
            "s2": {"kind": "unbiased_variance"},
            "mean": {"kind": "mean"},
            "map": {
                "kind": "map",
                "prior": {"sigma2": {"dist": "invgamma", "shape": 2.0, "scale": 1.0}},
            },
            "lasso": {
                "kind": "map",
                "prior": {"mu": {"dist": "laplace", "loc": 0.0, "scale": 0.5}},
            },
            "flat": {"kind": "map"},
        },
    ),
    "bernoulli": (
        {"family": "bernoulli", "params": {"p": 0.1}},
        {
            "mle": {"kind": "mle"},
            "map": {"kind": "map", "prior": {"p": {"dist": "beta", "a": 2.0, "b": 2.0}}},
        },
    ),
    "poisson": (
        {"family": "poisson", "params": {"lam": 0.5}},
        {
            "mle": {"kind": "mle", "se": "observed"},
            "map": {"kind": "map", "prior": {"lam": {"dist": "gamma", "shape": 2.0, "rate": 1.0}}},
        },
    ),
    "exponential": (
        {"family": "exponential", "params": {"rate": 3.0}},
        {"mle": {"kind": "mle", "se": "sandwich"}},
    ),
}


def spec_of(name: str, n: list[int], replications: int = 47, chunk: int = 7):
    truth, estimators = ROWWISE[name]
    return study_spec(
        {"truth": truth, "n": n, "replications": replications, "estimators": estimators},
        {"chunk_size": chunk},
    )


@pytest.mark.parametrize("name", sorted(ROWWISE))
def test_a_bundle_gives_each_chunk_its_own_numbers(name):
    """n from 1 (failures) through numpy's pairwise-sum block sizes (8, 128)."""
    spec = spec_of(name, [1, 2, 3, 8, 9, 17, 128, 129])
    tasks = plan(spec)
    groups = bundles(tasks)
    assert len(groups) < len(tasks)  # (bundled: every estimator here is row-wise)
    alone = [run_task(t) for t in tasks]
    together = [r for group in groups for r in run_bundle(group)]
    assert [t for g in groups for t in g] == tasks
    for a, b in zip(alone, together, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key].dtype == b[key].dtype, key
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    if name == "normal":
        assert any(r["fail_est"].size for r in alone)  # n = 1: s² is 0/0


def test_bundles_are_runs_of_one_condition_within_the_size_cap():
    spec = spec_of("normal", [2, 3000], replications=70, chunk=10)
    tasks = plan(spec)
    small = [t for t in tasks if t.condition.factors["n"] == 2]
    groups = bundles(small[:3] + small[4:])  # chunk 3 saved already: not computed
    assert [[t.chunk for t in g] for g in groups] == [[0, 1, 2], [4, 5, 6]]
    big = [t for t in tasks if t.condition.factors["n"] == 3000]
    per = BUNDLE_VALUES // (10 * 3000)
    assert all(len(g) <= max(per, 1) for g in bundles(big))
    mixed = study_spec(
        {"truth": NORMAL, "n": [2], "replications": 30, "estimators": {"huber": {"kind": "huber"}}},
        {"chunk_size": 10},
    )
    assert all(len(g) == 1 for g in bundles(plan(mixed)))  # not row-wise: one at a time


def test_an_estimator_that_raises_on_one_chunk_fails_that_chunk_only(monkeypatch):
    spec = spec_of("normal", [4], replications=40, chunk=10)
    tasks = plan(spec)
    marker = chunk_data(tasks[2])[1]["x"][0, 0]
    fit = UnbiasedVariance._fit

    def picky(self, x):
        if (x == marker).any():
            raise ValueError("this chunk")
        return fit(self, x)

    monkeypatch.setattr(UnbiasedVariance, "_fit", picky)
    alone = [run_task(t) for t in tasks]
    (group,) = bundles(tasks)
    together = run_bundle(group)
    s2 = list(ROWWISE["normal"][1]).index("s2")
    assert [int((r["fail_est"] == s2).sum()) for r in together] == [0, 0, 10, 0]
    for a, b in zip(alone, together, strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


_BUFFERS: dict = {}


def refill(rng, size):
    """A user's generator that refills one buffer of its own."""
    buf = _BUFFERS.setdefault(size, np.empty(size))
    buf[...] = rng.normal(size=size)
    return buf


def test_what_is_not_bundled_generators_big_data_sets_and_subclasses(monkeypatch):
    """A user's generator (it may refill one buffer, or hand back column-major arrays),
    data sets beyond numpy's buffer size (einsum sums a one-replicate batch in another
    order) and an estimator whose own class does not declare itself row-wise."""
    generated = study_spec(
        {
            "truth": {"family": None, "_target_": "test_bundles.refill", "params": {}},
            "model": "normal",
            "estimand": {"mu": 0.0, "sigma2": 1.0},
            "n": [5],
            "replications": 30,
            "estimators": {"mean": {"kind": "mean"}},
        },
        {"chunk_size": 10},
    )
    tasks = plan(generated)
    assert [len(g) for g in bundles(tasks)] == [1, 1, 1]
    alone = [run_task(t)["estimate"].copy() for t in tasks]
    assert not np.array_equal(alone[0], alone[1])  # (each chunk its own data)
    big = spec_of("normal", [np.getbufsize() + 1], replications=3, chunk=1)
    assert [len(g) for g in bundles(plan(big))] == [1, 1, 1]
    from mlesim.estimators import Mean
    from mlesim.scenarios import Scenario

    class BootstrapMean(Mean):  # (a subclass: its SE need not be row-wise)
        register = False

    small = plan(spec_of("normal", [5], replications=30, chunk=10))
    model = small[0].condition.scenario.model
    monkeypatch.setattr(Scenario, "estimators", lambda self: [BootstrapMean(model, "boot")])
    assert [len(g) for g in bundles(small)] == [1, 1, 1]
