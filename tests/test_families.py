"""Tests of mlesim.families: log-density, Fisher information, MLE, sampling, checks.

A table of cases (family, parameters) drives the correctness tests; the references
are scipy.stats (log-density, fits, exact expectations) and Monte Carlo moments.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize as so
import scipy.stats as st
from conftest import Z, variance_mcse

from mlesim.errors import ConfigError
from mlesim.families import FAMILIES, get_family

CLOSED_FORM = ("bernoulli", "poisson", "exponential", "normal")

CASES = [
    ("bernoulli", {"p": 0.3}),
    ("bernoulli", {"p": 0.9}),
    ("poisson", {"lam": 0.7}),
    ("poisson", {"lam": 12.0}),
    ("exponential", {"rate": 0.5}),
    ("exponential", {"rate": 3.0}),
    ("normal", {"mu": 0.0, "sigma2": 1.0}),
    ("normal", {"mu": -2.5, "sigma2": 0.3}),
]
IDS = [f"{f}-{'-'.join(f'{k}={v}' for k, v in p.items())}" for f, p in CASES]


def theta_of(family, params: dict) -> np.ndarray:
    return family.check(params)


def scipy_logdensity(dist, x: np.ndarray) -> np.ndarray:
    return dist.logpmf(x) if hasattr(dist, "logpmf") else dist.logpdf(x)


def test_registry_holds_the_closed_form_families():
    for name in CLOSED_FORM:
        assert name in FAMILIES
        assert get_family(name).name == name


def test_unknown_family_names_the_key_and_lists_the_allowed():
    with pytest.raises(ConfigError) as info:
        get_family("nosuch")
    assert info.value.key == "truth.family"
    assert "normal" in info.value.message
    with pytest.raises(ConfigError) as info:
        get_family("nosuch", key="model")
    assert info.value.key == "model"


# ------------------------------------------------------------------ log-density
@pytest.mark.parametrize(("name", "params"), CASES, ids=IDS)
def test_logpdf_matches_scipy(name, params, rng):
    fam = get_family(name)
    theta = theta_of(fam, params)
    x = fam.sample(rng, theta, (3, 50))
    got = fam.logpdf(x, theta)
    assert got.shape == x.shape
    want = scipy_logdensity(fam.scipy_dist(theta), x)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", CLOSED_FORM)
def test_logpdf_takes_one_parameter_row_per_replicate(name, rng):
    fam = get_family(name)
    thetas = np.stack([theta_of(fam, p) for f, p in CASES if f == name])  # (2, p)
    x = np.stack([fam.sample(rng, t, (40,)) for t in thetas])  # (2, 40)
    got = fam.logpdf(x, thetas)
    for r, t in enumerate(thetas):
        np.testing.assert_allclose(got[r], scipy_logdensity(fam.scipy_dist(t), x[r]), rtol=1e-12)
    np.testing.assert_allclose(fam.loglik(x, thetas), got.sum(axis=1), rtol=1e-12)


def test_exponential_logpdf_is_minus_infinity_below_zero():
    fam = get_family("exponential")
    out = fam.logpdf(np.array([[-1.0, 0.0, 1.0]]), np.array([2.0]))
    assert out[0, 0] == -np.inf
    np.testing.assert_allclose(out[0, 1:], st.expon(scale=0.5).logpdf([0.0, 1.0]))


# ------------------------------------------------------------ Fisher information
def _score(fam, theta: np.ndarray, x: np.ndarray, j: int) -> np.ndarray:
    """d log f(x; θ) / dθ_j by central differences, x of shape (m,)."""
    h = 1e-5 * max(abs(theta[j]), 1.0)
    up, dn = theta.copy(), theta.copy()
    up[j] += h
    dn[j] -= h
    x2 = np.atleast_1d(x)[None, :]
    return ((fam.logpdf(x2, up) - fam.logpdf(x2, dn)) / (2 * h))[0]


@pytest.mark.parametrize(("name", "params"), CASES, ids=IDS)
def test_fisher_is_the_expected_squared_score(name, params):
    """I(θ)_ij = E[∂_i log f · ∂_j log f], the expectation computed exactly by scipy."""
    fam = get_family(name)
    theta = theta_of(fam, params)
    dist = fam.scipy_dist(theta)
    want = np.empty((fam.p, fam.p))
    for i in range(fam.p):
        for j in range(fam.p):

            def sq(x, i=i, j=j):
                out = _score(fam, theta, x, i) * _score(fam, theta, x, j)
                return out.reshape(np.shape(x))  # quad wants a scalar back

            want[i, j] = dist.expect(sq)
    got = fam.fisher(theta)
    assert got.shape == (fam.p, fam.p)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8 * np.abs(want).max())


@pytest.mark.parametrize("name", CLOSED_FORM)
def test_fisher_is_batched(name):
    fam = get_family(name)
    thetas = np.stack([theta_of(fam, p) for f, p in CASES if f == name])
    got = fam.fisher(thetas)
    assert got.shape == (len(thetas), fam.p, fam.p)
    for r, t in enumerate(thetas):
        np.testing.assert_array_equal(got[r], fam.fisher(t))


# ------------------------------------------------------------------------- MLE
@pytest.mark.parametrize(("name", "params"), CASES, ids=IDS)
def test_mle_matches_an_independent_fit(name, params, rng):
    fam = get_family(name)
    theta = theta_of(fam, params)
    x = fam.sample(rng, theta, (4, 30))
    res = fam.mle(x)
    assert res.theta.shape == (4, fam.p)
    assert res.converged.shape == (4,) and res.converged.all()
    assert res.n_iter.shape == (4,)
    for r in range(4):
        np.testing.assert_allclose(res.theta[r], _reference_fit(name, x[r]), rtol=1e-7)


def _reference_fit(name: str, x: np.ndarray) -> np.ndarray:
    """scipy.stats fits (normal, exponential) or a numerical maximisation of scipy's
    log-pmf (bernoulli, poisson)."""
    if name == "normal":
        loc, scale = st.norm.fit(x)
        return np.array([loc, scale**2])
    if name == "exponential":
        _, scale = st.expon.fit(x, floc=0.0)
        return np.array([1.0 / scale])
    dist, upper = (st.bernoulli, 1.0) if name == "bernoulli" else (st.poisson, x.max() + 1.0)
    res = so.minimize_scalar(
        lambda v: -dist.logpmf(x, v).sum(),
        bounds=(1e-9, upper - 1e-9 if name == "bernoulli" else upper),
        method="bounded",
        options={"xatol": 1e-12},
    )
    return np.array([res.x])


def test_normal_mle_with_a_fixed_parameter(rng):
    fam = get_family("normal")
    x = fam.sample(rng, np.array([1.0, 2.0]), (5, 20))
    res = fam.mle(x, fixed={"mu": 1.0})
    np.testing.assert_allclose(res.theta[:, 0], 1.0)
    np.testing.assert_allclose(res.theta[:, 1], ((x - 1.0) ** 2).mean(axis=1), rtol=1e-12)
    res = fam.mle(x, fixed={"sigma2": 2.0})
    np.testing.assert_allclose(res.theta[:, 0], x.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(res.theta[:, 1], 2.0)


def test_one_parameter_family_refuses_a_fixed_parameter(rng):
    fam = get_family("poisson")
    with pytest.raises(ValueError, match="lam"):
        fam.mle(np.ones((2, 3)), fixed={"lam": 1.0})


# ------------------------------------------------------------------------ sampling
@pytest.mark.parametrize(("name", "params"), CASES, ids=IDS)
def test_sample_moments_match_mean_var(name, params, rng):
    """Sample mean and variance within 4 MCSE of the family's mean_var."""
    fam = get_family(name)
    theta = theta_of(fam, params)
    x = fam.sample(rng, theta, (200_000,))
    assert x.shape == (200_000,)
    assert fam.in_support(x).all()
    mean, var = (float(v) for v in fam.mean_var(theta))
    dist = fam.scipy_dist(theta)
    assert np.isclose(mean, dist.mean()) and np.isclose(var, dist.var())
    mcse_mean = x.std(ddof=1) / np.sqrt(x.size)
    assert abs(x.mean() - mean) < Z * mcse_mean
    v, mcse_var = variance_mcse(x)
    assert abs(v - var) < Z * mcse_var


def test_sample_shape_is_the_requested_chunk(rng):
    fam = get_family("normal")
    assert fam.sample(rng, np.array([0.0, 1.0]), (7, 3)).shape == (7, 3)


def test_in_support():
    assert get_family("poisson").in_support(np.array([0.0, 2.0, 2.5, -1.0])).tolist() == [
        True,
        True,
        False,
        False,
    ]
    assert get_family("bernoulli").in_support(np.array([0.0, 1.0, 0.5])).tolist() == [
        True,
        True,
        False,
    ]
    assert get_family("exponential").in_support(np.array([0.0, 1.0, -0.1])).tolist() == [
        True,
        True,
        False,
    ]


# --------------------------------------------------------------------- check()
BAD_VALUES = [
    ("normal", {"mu": 0.0, "sigma2": 0.0}, "sigma2"),
    ("normal", {"mu": 0.0, "sigma2": -1.0}, "sigma2"),
    ("normal", {"mu": float("nan"), "sigma2": 1.0}, "mu"),
    ("normal", {"mu": float("inf"), "sigma2": 1.0}, "mu"),
    ("normal", {"mu": "a", "sigma2": 1.0}, "mu"),
    ("normal", {"mu": True, "sigma2": 1.0}, "mu"),
    ("bernoulli", {"p": 0.0}, "p"),
    ("bernoulli", {"p": 1.0}, "p"),
    ("bernoulli", {"p": 1.5}, "p"),
    ("bernoulli", {"p": -0.1}, "p"),
    ("poisson", {"lam": 0.0}, "lam"),
    ("poisson", {"lam": -2}, "lam"),
    ("exponential", {"rate": 0}, "rate"),
    ("exponential", {"rate": -0.5}, "rate"),
    ("normal", {"mu": 0.0, "sigma2": 1.0, "tau": 1.0}, "tau"),  # unknown parameter
    ("poisson", {"lambda": 1.0}, "lambda"),  # unknown parameter
    ("normal", {"mu": 0.0}, "sigma2"),  # missing parameter
    ("exponential", {}, "rate"),  # missing parameter
]


@pytest.mark.parametrize(("name", "params", "bad"), BAD_VALUES)
def test_check_names_the_offending_key(name, params, bad):
    fam = get_family(name)
    with pytest.raises(ConfigError) as info:
        fam.check(params)
    assert info.value.key == f"truth.params.{bad}"
    with pytest.raises(ConfigError) as info:
        fam.check(params, key="contamination.params")
    assert info.value.key == f"contamination.params.{bad}"


def test_check_returns_values_in_parameter_order():
    fam = get_family("normal")
    out = fam.check({"sigma2": 2, "mu": -1})
    assert out.dtype == float
    np.testing.assert_array_equal(out, [-1.0, 2.0])


# -------------------------------------------------------------- project_moments
@pytest.mark.parametrize(("name", "params"), CASES, ids=IDS)
def test_project_moments_inverts_mean_var(name, params):
    """The KL projection of a family onto itself is the identity."""
    fam = get_family(name)
    theta = theta_of(fam, params)
    mean, var = fam.mean_var(theta)
    np.testing.assert_allclose(fam.project_moments(float(mean), float(var)), theta, rtol=1e-12)


def test_project_moments_formulas():
    assert get_family("normal").project_moments(1.5, 4.0) == [1.5, 4.0]
    assert get_family("exponential").project_moments(0.25, 9.0) == [4.0]
    assert get_family("poisson").project_moments(3.0, 9.0) == [3.0]
    assert get_family("bernoulli").project_moments(0.2, 0.5) == [0.2]
