"""Standard errors at the edge of the parameter space, and the MAP's posterior curvature.

At p̂ = 0 (or λ̂ = 0) the information is infinite and the Wald interval degenerates to
the point: SE 0. Before, several estimators gave NaN there, which silently dropped the
replicate from coverage while keeping it in n_rep (coverage inflated by up to 0.6).
The exact coverages below come from enumerating the binomial (or Poisson) sample
space, not from the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as st

from mlesim.engine import simulate
from mlesim.estimators import make_estimator
from mlesim.families import get_family
from mlesim.metrics import wald_z
from mlesim.summarise import summarise
from tests.conftest import Z, compose_config, study_spec

ALL_ZERO = np.zeros((3, 6))
ONES = np.ones((3, 6))

#: (family, estimator spec, data on the edge): every spec must give SE 0 there
EDGE_CASES = [
    ("bernoulli", {"kind": "mle"}, ALL_ZERO),
    ("bernoulli", {"kind": "mle", "se": "observed"}, ALL_ZERO),
    ("bernoulli", {"kind": "mle", "se": "sandwich"}, ALL_ZERO),
    ("bernoulli", {"kind": "mle", "se": "observed"}, ONES),
    ("bernoulli", {"kind": "mle", "se": "sandwich"}, ONES),
    ("bernoulli", {"kind": "map", "prior": {"p": {"dist": "beta", "a": 1, "b": 3}}}, ALL_ZERO),
    ("bernoulli", {"kind": "map", "prior": {"p": {"dist": "beta", "a": 3, "b": 1}}}, ONES),
    ("bernoulli", {"kind": "map", "prior": {"p": {"dist": "beta", "a": 1, "b": 1}}}, ALL_ZERO),
    ("poisson", {"kind": "mle"}, ALL_ZERO),
    ("poisson", {"kind": "mle", "se": "observed"}, ALL_ZERO),
    ("poisson", {"kind": "mle", "se": "sandwich"}, ALL_ZERO),
    (
        "poisson",
        {"kind": "map", "prior": {"lam": {"dist": "gamma", "shape": 1, "rate": 2}}},
        ALL_ZERO,
    ),
]


@pytest.mark.parametrize(("family", "spec", "x"), EDGE_CASES)
def test_an_estimate_on_the_edge_has_se_zero(family, spec, x):
    est = make_estimator("e", spec, get_family(family)).fit(x)
    assert est.converged_.all()
    np.testing.assert_array_equal(est.se_, 0.0)


@pytest.mark.parametrize("se", ["expected", "observed", "sandwich"])
@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
def test_observed_and_sandwich_match_closed_forms_inside(family, se, rng):
    """Analytic Hessian and score: observed SE = sqrt(θ̂(1 − θ̂)/n) (bernoulli) or
    sqrt(λ̂/n) (poisson) at the MLE, the sandwich sqrt(Σ(x − x̄)²)/n."""
    fam = get_family(family)
    x = fam.sample(rng, np.array([0.3 if family == "bernoulli" else 2.0]), (50, 12))
    est = make_estimator("e", {"kind": "mle", "se": se}, fam).fit(x)
    v = x.mean(axis=1)
    if se == "sandwich":
        want = np.sqrt(((x - v[:, None]) ** 2).sum(axis=1)) / x.shape[1]
    else:
        want = np.sqrt((v * (1 - v) if family == "bernoulli" else v) / x.shape[1])
    np.testing.assert_allclose(est.se_[:, 0], want, rtol=1e-12)


def _bernoulli_summary(p: float, n: int, estimators: dict, reps: int = 20000):
    base = compose_config(["truth=bernoulli"])
    from omegaconf import OmegaConf

    config = OmegaConf.to_container(base, resolve=True)
    config.pop("hydra", None)
    spec = study_spec(
        config,
        n=[n],
        replications=reps,
        truth={"family": "bernoulli", "params": {"p": p}},
        estimators=estimators,
    )
    return summarise(spec, simulate(spec)).set_index("estimator")


def _exact_wald_coverage(n: int, p: float, phat: np.ndarray, se: np.ndarray) -> float:
    """Σ_k Binom(k; n, p) 1{|p̂_k − p| ≤ z se_k} over k = 0..n."""
    z = wald_z(0.95)
    k = np.arange(n + 1)
    return float(st.binom.pmf(k, n, p)[np.abs(phat - p) <= z * se].sum())


def test_beta11_map_is_the_mle_and_covers_as_it_does():
    """The issue's case: Beta(1, 1) MAP = MLE; before, its NaN SEs at p̂ = 0 left 59%
    of the replicates out of coverage (0.978 reported against the exact 0.401)."""
    n, p = 5, 0.1
    flat = {"p": {"dist": "beta", "a": 1.0, "b": 1.0}}
    out = _bernoulli_summary(p, n, {"mle": {"kind": "mle"}, "map": {"kind": "map", "prior": flat}})
    k = np.arange(n + 1)
    exact = _exact_wald_coverage(n, p, k / n, np.sqrt(k / n * (1 - k / n) / n))
    for label in ("mle", "map"):
        row = out.loc[label]
        assert row["n_se"] == row["n_rep"] == 20000
        assert abs(row["coverage"] - exact) < Z * row["coverage_mcse"], (label, row["coverage"])
    assert out.loc["mle", "coverage"] == out.loc["map", "coverage"]


@pytest.mark.parametrize(("a", "b", "p", "n"), [(2.0, 2.0, 0.1, 5), (1.0, 3.0, 0.05, 8)])
def test_map_coverage_matches_exact_enumeration(a, b, p, n):
    """MAP p̂ = (k + a − 1)/(n + a + b − 2) with the posterior-curvature SE
    sqrt(p̂(1 − p̂)/(n + a + b − 2)): the simulated coverage equals the exact sum over
    k, and the estimator gives exactly those SEs on each of the n + 1 data sets."""
    fam = get_family("bernoulli")
    spec = {"kind": "map", "prior": {"p": {"dist": "beta", "a": a, "b": b}}}
    k = np.arange(n + 1)
    data = (np.arange(n)[None, :] < k[:, None]).astype(float)  # k successes in row k
    est = make_estimator("map", spec, fam).fit(data)
    m = n + a + b - 2
    phat = (k + a - 1) / m
    se = np.sqrt(phat * (1 - phat) / m)
    np.testing.assert_allclose(est.params_[:, 0], phat, rtol=1e-13)
    np.testing.assert_allclose(est.se_[:, 0], se, rtol=1e-12, atol=1e-300)
    exact = _exact_wald_coverage(n, p, phat, se)
    row = _bernoulli_summary(p, n, {"map": spec}).loc["map"]
    assert row["n_se"] == row["n_rep"]
    assert abs(row["coverage"] - exact) < Z * row["coverage_mcse"], (row["coverage"], exact)


@pytest.mark.parametrize("k", [2, 3])
def test_a_chunk_without_bad_rows_gets_the_same_inverse_and_ses_as_one_with(k):
    """The batched inverse and SEs take a shortcut when every row is finite, well
    conditioned and unpinned; its rows are bit for bit those of a batch with a
    non-finite, a singular and a pinned row (which goes the long way), and the
    inverse is numpy's within rounding."""
    from mlesim.standard_errors import inverse, pinned_se

    rng = np.random.default_rng(k)
    m = rng.normal(size=(200, k, k))
    a = m @ m.transpose(0, 2, 1) + 0.1 * np.eye(k)  # positive definite
    bad = np.concatenate([a, np.full((1, k, k), np.nan), np.ones((1, k, k))])
    np.testing.assert_array_equal(inverse(a), inverse(bad)[:200])
    assert np.isnan(inverse(bad)[200]).all()
    np.testing.assert_allclose(inverse(a), np.linalg.inv(a), rtol=1e-9, atol=1e-12)
    edge = np.zeros((200, k), bool)
    some = edge.copy()
    some[7, 0] = True
    long_way = pinned_se(a, some)
    rows = np.arange(200) != 7
    np.testing.assert_array_equal(pinned_se(a, edge)[rows], long_way[rows])
    assert long_way[7, 0] == 0.0
    meat = a[::-1].copy()
    np.testing.assert_array_equal(pinned_se(a, edge, meat)[rows], pinned_se(a, some, meat)[rows])
