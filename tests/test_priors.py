"""Tests of mlesim.priors: prior validation, posterior modes and Laplace SEs.

The posterior-mode formulas are also checked against a numerical maximisation of
the log-posterior in test_estimators.py; here each conjugate pair is checked
against scipy's conjugate posterior and its curvature against finite differences.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize as so
import scipy.stats as st

from mlesim.errors import ConfigError
from mlesim.families import get_family
from mlesim.priors import CONJUGATE, check_prior, conjugate_map

KEY = "estimators.map.prior"

PRIORS = {
    ("bernoulli", "p"): {"a": 2.5, "b": 4.0},
    ("poisson", "lam"): {"shape": 3.0, "rate": 0.5},
    ("exponential", "rate"): {"shape": 2.0, "rate": 1.5},
    ("normal", "mu"): {"mean": -1.0, "var": 0.3},
    ("normal", "sigma2"): {"shape": 3.0, "scale": 2.0},
}
TRUTH = {
    "bernoulli": [0.4],
    "poisson": [4.0],
    "exponential": [2.0],
    "normal": [1.0, 2.0],
}


def log_prior(dist: str, h: dict, v: np.ndarray) -> np.ndarray:
    """log π(v) from scipy.stats, in the parameterisation of mlesim.priors."""
    if dist == "beta":
        return st.beta.logpdf(v, h["a"], h["b"])
    if dist == "gamma":
        return st.gamma.logpdf(v, h["shape"], scale=1.0 / h["rate"])
    if dist == "normal":
        return st.norm.logpdf(v, h["mean"], np.sqrt(h["var"]))
    return st.invgamma.logpdf(v, h["shape"], scale=h["scale"])


def test_every_conjugate_pair_is_tested():
    assert set(PRIORS) == set(CONJUGATE)


# ----------------------------------------------------------------- validation
def test_check_prior_fills_the_distribution_and_converts_to_float():
    out = check_prior(get_family("bernoulli"), {"p": {"a": 2, "b": 3}}, KEY)
    assert out == {"p": {"dist": "beta", "a": 2.0, "b": 3.0}}
    assert all(type(v) is float for k, v in out["p"].items() if k != "dist")
    assert check_prior(get_family("normal"), {}, KEY) == {}


@pytest.mark.parametrize(
    ("family", "prior"),
    [
        ("bernoulli", {"p": {"a": 1, "b": 1}}),  # uniform: a, b >= 1 inclusive
        ("poisson", {"lam": {"shape": 1, "rate": 1e-9}}),
        ("normal", {"mu": {"dist": "normal", "mean": -50, "var": 1e-6}}),
        ("normal", {"sigma2": {"shape": 1e-3, "scale": 1e-3}}),
    ],
)
def test_boundary_hyper_parameters_are_accepted(family, prior):
    assert set(check_prior(get_family(family), prior, KEY)) == set(prior)


@pytest.mark.parametrize(
    ("family", "prior", "key"),
    [
        ("bernoulli", {"p": {"a": 0.99, "b": 1}}, "p.a"),
        ("bernoulli", {"p": {"a": 1, "b": float("inf")}}, "p.b"),
        ("bernoulli", {"p": {"a": 1, "b": "2"}}, "p.b"),
        ("bernoulli", {"p": {"a": 1}}, "p.b"),
        ("bernoulli", {"p": {"a": 1, "b": 1, "c": 1}}, "p.c"),
        ("normal", {"mu": {"dist": "gamma", "shape": 2, "rate": 1}}, "mu.dist"),  # support
        ("normal", {"sigma2": {"dist": "beta", "a": 2, "b": 2}}, "sigma2.dist"),
        ("poisson", {"lam": {"dist": "laplace", "loc": 1, "scale": 1}}, "lam.dist"),
        ("normal", {"mu": {"dist": "nosuch"}}, "mu.dist"),
        ("normal", {"mu": {"dist": "poisson", "mu": 2}}, "mu.dist"),  # discrete
        ("normal", {"mu": {"dist": "t", "df": 0, "loc": 0, "scale": 1}}, "mu.df"),
        ("normal", {"mu": {"dist": "skewnorm", "a": 2, "scale": -1}}, "mu.scale"),
        ("normal", {"mu": {"dist": "skewnorm", "b": 2}}, "mu.b"),
        ("gamma", {"shape": {"shape": 2, "rate": 1}}, "shape.dist"),  # no default dist
        (
            "normal",
            {
                "mu": {"dist": "laplace", "loc": 0, "scale": 1},
                "sigma2": {"dist": "gamma", "shape": 2, "rate": 1},
            },
            "sigma2.dist",
        ),
        ("poisson", {"lam": {"shape": 0.5, "rate": 1}}, "lam.shape"),
        ("exponential", {"rate": {"shape": 2, "rate": -1}}, "rate.rate"),
        ("normal", {"mu": {"mean": float("nan"), "var": 1}}, "mu.mean"),
        ("normal", {"mu": {"mean": 0, "var": 0}}, "mu.var"),
        ("normal", {"sigma2": {"shape": 0, "scale": 1}}, "sigma2.shape"),
        ("normal", {"p": {"a": 2, "b": 2}}, "p"),
    ],
)
def test_bad_priors_name_the_key(family, prior, key):
    with pytest.raises(ConfigError) as info:
        check_prior(get_family(family), prior, KEY)
    assert info.value.key == f"{KEY}.{key}"


def test_non_conjugate_parameter_lists_the_allowed():
    with pytest.raises(ConfigError) as info:
        check_prior(get_family("normal"), {"lam": {}}, KEY)
    assert "mu" in info.value.message and "sigma2" in info.value.message


# --------------------------------------------------------- modes and curvature
def _cases():
    for (family, name), h in PRIORS.items():
        yield pytest.param(family, name, h, id=f"{family}.{name}")


@pytest.mark.parametrize(("family", "name", "h"), list(_cases()))
def test_mode_maximises_the_conditional_posterior(family, name, h, rng):
    """With the other parameters at their estimates, the mode maximises
    log L + log π in the prior's parameter (scipy densities only)."""
    fam = get_family(family)
    x = fam.sample(rng, np.asarray(TRUTH[family]), (4, 9))
    dist = CONJUGATE[(family, name)][0]
    prior = check_prior(fam, {name: h}, KEY)
    est, se, n_iter, conv = conjugate_map(fam, x, prior)
    assert conv.all()
    assert est.shape == se.shape == (4, fam.p) and n_iter.shape == (4,)
    j = fam.index(name)
    for r in range(4):

        def neg(v, r=r):
            theta = est[r].copy()
            theta[j] = v
            return -(fam.logpdf(x[r : r + 1], theta).sum() + log_prior(dist, h, v))

        lo, hi = (1e-9, 1 - 1e-9) if dist == "beta" else (est[r, j] - 5, est[r, j] + 5)
        lo = max(lo, 1e-9) if fam.domains[name].kind != "real" else lo
        res = so.minimize_scalar(neg, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12})
        np.testing.assert_allclose(est[r, j], res.x, rtol=1e-6)


@pytest.mark.parametrize(("family", "name", "h"), list(_cases()))
def test_laplace_se_is_the_curvature_of_the_log_posterior(family, name, h, rng):
    """se = sqrt(diag(A⁻¹)), A = −∇² [Σ log f(x_i; θ) + log π(θ)] at the mode, the
    Hessian by central differences of scipy's densities (not the model's formulas)."""
    fam = get_family(family)
    x = fam.sample(rng, np.asarray(TRUTH[family]), (4, 9))
    dist = CONJUGATE[(family, name)][0]
    est, se, _, _ = conjugate_map(fam, x, check_prior(fam, {name: h}, KEY))
    j = fam.index(name)
    for r in range(4):

        def logpost(theta, r=r):
            lik = fam.scipy_dist(theta)
            f = lik.logpmf if fam.discrete else lik.logpdf
            return f(x[r]).sum() + log_prior(dist, h, theta[j])

        step = 1e-4 * np.maximum(np.abs(est[r]), 1e-2)
        hess = np.empty((fam.p, fam.p))
        for a in range(fam.p):
            for b in range(fam.p):
                e_a, e_b = np.eye(fam.p)[a] * step[a], np.eye(fam.p)[b] * step[b]
                t = est[r]
                hess[a, b] = (
                    logpost(t + e_a + e_b)
                    - logpost(t + e_a - e_b)
                    - logpost(t - e_a + e_b)
                    + logpost(t - e_a - e_b)
                ) / (4 * step[a] * step[b])
        expected = np.sqrt(np.diag(np.linalg.inv(-hess)))
        np.testing.assert_allclose(se[r], expected, rtol=1e-4)


def test_conjugate_posterior_mode_agrees_with_scipy_posterior():
    """Beta(a + Σx, b + n − Σx) is the bernoulli posterior (Gelman et al. 2013, §2.4):
    its mode, found numerically from scipy's density, is the MAP."""
    fam = get_family("bernoulli")
    x = np.array([[1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0]])
    a, b = 2.5, 4.0
    est, _, _, _ = conjugate_map(fam, x, check_prior(fam, {"p": {"a": a, "b": b}}, KEY))
    s, n = x.sum(), x.shape[1]
    post = st.beta(a + s, b + n - s)
    res = so.minimize_scalar(
        lambda p: -post.logpdf(p),
        bounds=(1e-9, 1 - 1e-9),
        method="bounded",
        options={"xatol": 1e-12},
    )
    np.testing.assert_allclose(est[0, 0], res.x, rtol=1e-7)


def test_normal_joint_mode_iterates_only_with_a_mean_prior(rng):
    fam = get_family("normal")
    x = fam.sample(rng, np.array([1.0, 2.0]), (5, 6))
    sig = check_prior(fam, {"sigma2": PRIORS[("normal", "sigma2")]}, KEY)
    _, _, n_iter, _ = conjugate_map(fam, x, sig)
    np.testing.assert_array_equal(n_iter, 0)
    both = check_prior(fam, {"mu": PRIORS[("normal", "mu")], **sig}, KEY)
    est, _, n_iter, conv = conjugate_map(fam, x, both)
    assert conv.all()
    assert ((n_iter > 0) & (n_iter < 500)).all()
    # at the joint mode each coordinate is its conditional mode (the fixed point)
    h, g = both["mu"], both["sigma2"]
    mu, s2 = est[:, 0], est[:, 1]
    n = x.shape[1]
    np.testing.assert_allclose(
        mu, (n * x.mean(axis=1) * h["var"] + h["mean"] * s2) / (n * h["var"] + s2), rtol=1e-10
    )
    q = ((x - mu[:, None]) ** 2).sum(axis=1)
    np.testing.assert_allclose(s2, (g["scale"] + q / 2) / (g["shape"] + n / 2 + 1), rtol=1e-10)
