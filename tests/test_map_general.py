"""The general MAP: any family, any smooth prior (batched Newton), the soft threshold of a
Laplace prior on a normal mean, and the conjugate closed forms as fast paths.

Oracles: scipy.optimize on the log posterior written with scipy.stats densities (not the
model's formulas), the conjugate closed forms, and the exact probability of an exact zero.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize as so
import scipy.stats as st

from mlesim.errors import ConfigError
from mlesim.estimators import make_estimator
from mlesim.families import get_family
from mlesim.priors import _closed_form, check_prior, frozen, newton_map

KEY = "estimators.map.prior"


def fit(family: str, x: np.ndarray, prior: dict, fixed: dict | None = None):
    spec = {"kind": "map", "prior": prior, **({"fixed": fixed} if fixed else {})}
    return make_estimator("map", spec, get_family(family)).fit(x)


def log_posterior(family: str, theta: np.ndarray, x: np.ndarray, prior: dict) -> float:
    """Σ log f(x_i; θ) + Σ_j log π_j(θ_j) from scipy.stats alone."""
    fam = get_family(family)
    lik = fam.scipy_dist(theta)
    f = lik.logpmf if fam.discrete else lik.logpdf
    lp = sum(frozen(h).logpdf(theta[fam.index(name)]) for name, h in prior.items())
    return float(f(x).sum() + lp)


def scipy_mode(family: str, x: np.ndarray, prior: dict, start: np.ndarray) -> np.ndarray:
    """The posterior mode by Nelder–Mead on the log scale of positive parameters."""
    fam = get_family(family)
    kinds = [fam.domains[p].kind for p in fam.params]
    to = [
        np.log if k == "positive" else (lambda v: np.log(v / (1 - v))) if k == "unit" else float
        for k in kinds
    ]
    back = [
        np.exp if k == "positive" else (lambda z: 1 / (1 + np.exp(-z))) if k == "unit" else float
        for k in kinds
    ]

    def neg(z):
        theta = np.array([b(v) for b, v in zip(back, z, strict=True)])
        val = log_posterior(family, theta, x, prior)
        return -val if np.isfinite(val) else 1e300

    z0 = np.array([t(v) for t, v in zip(to, start, strict=True)])
    res = so.minimize(
        neg,
        z0,
        method="Nelder-Mead",
        options={"xatol": 1e-11, "fatol": 1e-13, "maxiter": 20000, "maxfev": 40000},
    )
    return np.array([b(v) for b, v in zip(back, res.x, strict=True)])


# ------------------------------------------------- the Newton path, against scipy
GENERAL = [
    ("student_t", [0.0, 1.0, 5.0], {"nu": {"dist": "gamma", "shape": 2, "rate": 0.1}}),
    ("cauchy", [1.0, 2.0], {"mu": {"dist": "normal", "mean": 0, "var": 1}}),
    ("gamma", [2.0, 1.5], {"shape": {"dist": "gamma", "shape": 2, "rate": 1}}),
    ("weibull", [1.5, 2.0], {"shape": {"dist": "lognorm", "s": 0.5}}),  # a scipy name
    ("normal", [1.0, 4.0], {"mu": {"dist": "t", "df": 3, "loc": 0, "scale": 0.5}}),
    ("poisson", [3.0], {"lam": {"dist": "lognorm", "s": 1.0, "scale": 2.0}}),
    ("bernoulli", [0.3], {"p": {"dist": "normal", "mean": 0.5, "var": 0.01}}),
    ("beta", [2.0, 3.0], {"a": {"dist": "invgamma", "shape": 3, "scale": 4}}),
]


@pytest.mark.parametrize(("family", "theta", "prior"), GENERAL, ids=[g[0] for g in GENERAL])
def test_newton_map_is_the_mode_scipy_finds(family, theta, prior, rng):
    fam = get_family(family)
    x = fam.sample(rng, np.asarray(theta), (4, 15))
    est = fit(family, x, prior)
    assert est.converged_.all()
    for r in range(4):
        want = scipy_mode(family, x[r], check_prior(fam, prior, KEY), est.params_[r] * 1.05)
        np.testing.assert_allclose(est.params_[r], want, rtol=2e-5, atol=1e-8)
        # and it is at least as high as scipy's point on the same log posterior
        got = log_posterior(family, est.params_[r], x[r], check_prior(fam, prior, KEY))
        assert got >= log_posterior(family, want, x[r], check_prior(fam, prior, KEY)) - 1e-9


@pytest.mark.parametrize(("family", "theta", "prior"), GENERAL[:5], ids=[g[0] for g in GENERAL[:5]])
def test_se_is_the_curvature_of_scipys_log_posterior(family, theta, prior, rng):
    fam = get_family(family)
    x = fam.sample(rng, np.asarray(theta), (3, 25))
    est = fit(family, x, prior)
    full = check_prior(fam, prior, KEY)
    for r in range(3):
        t = est.params_[r]
        step = 1e-4 * np.maximum(np.abs(t), 1e-2)
        hess = np.empty((fam.p, fam.p))
        for a in range(fam.p):
            for b in range(fam.p):
                ea, eb = np.eye(fam.p)[a] * step[a], np.eye(fam.p)[b] * step[b]
                hess[a, b] = (
                    log_posterior(family, t + ea + eb, x[r], full)
                    - log_posterior(family, t + ea - eb, x[r], full)
                    - log_posterior(family, t - ea + eb, x[r], full)
                    + log_posterior(family, t - ea - eb, x[r], full)
                ) / (4 * step[a] * step[b])
        np.testing.assert_allclose(est.se_[r], np.sqrt(np.diag(np.linalg.inv(-hess))), rtol=1e-3)


CONJ = [
    ("bernoulli", [0.3], {"p": {"dist": "beta", "a": 2.5, "b": 4.0}}),
    ("poisson", [3.0], {"lam": {"dist": "gamma", "shape": 3.0, "rate": 0.5}}),
    ("exponential", [2.0], {"rate": {"dist": "gamma", "shape": 2.0, "rate": 1.5}}),
    (
        "normal",
        [1.0, 2.0],
        {
            "mu": {"dist": "normal", "mean": -1.0, "var": 0.3},
            "sigma2": {"dist": "invgamma", "shape": 3.0, "scale": 2.0},
        },
    ),
]


@pytest.mark.parametrize(("family", "theta", "prior"), CONJ, ids=[c[0] for c in CONJ])
def test_newton_path_equals_the_conjugate_closed_form(family, theta, prior, rng):
    fam = get_family(family)
    x = fam.sample(rng, np.asarray(theta), (50, 12))
    checked = check_prior(fam, prior, KEY)
    closed, _, conv = _closed_form(fam, x, checked, {})
    newton, _, nconv, _ = newton_map(fam, x, checked, {})
    assert conv.all() and nconv.all()
    np.testing.assert_allclose(newton, closed, rtol=1e-8)


# ------------------------------------------------------ edges and a wrong model
def test_a_mode_on_the_edge_is_the_edge_with_se_zero():
    """All-zero coin flips under a normal(0.5, 0.1²) prior truncated to (0, 1): the log
    posterior n log(1 − p) − (p − 0.5)²/0.02 is concave with slope 50 − n at p = 0, so
    for n = 60 the mode is p = 0."""
    x = np.zeros((3, 60))
    est = fit("bernoulli", x, {"p": {"dist": "normal", "mean": 0.5, "var": 0.01}})
    assert est.converged_.all()
    np.testing.assert_array_equal(est.params_, 0.0)
    np.testing.assert_array_equal(est.se_, 0.0)
    # at n = 2 the prior wins: an interior mode, where d/dp = 0
    est2 = fit("bernoulli", np.zeros((1, 2)), {"p": {"dist": "normal", "mean": 0.5, "var": 0.01}})
    p = est2.params_[0, 0]
    assert 0 < p < 0.5
    np.testing.assert_allclose(-2 / (1 - p) - (p - 0.5) / 0.01, 0.0, atol=1e-8)


def test_a_flat_prior_on_the_t_degrees_of_freedom_fails_with_a_reason(rng):
    """Where the t likelihood keeps rising in ν (normal-looking data) a flat prior has no
    mode: those replicates fail and say why; a prior on ν gives every replicate a mode."""
    x = rng.normal(size=(400, 20))
    flat = fit("student_t", x, {"mu": {"dist": "normal", "mean": 0, "var": 1}})
    failed = ~flat.converged_
    assert 0 < failed.mean() < 1
    assert all("give that parameter a prior" in r for r in flat.reason_[failed])
    shaped = fit("student_t", x, {"nu": {"dist": "gamma", "shape": 2, "rate": 0.1}})
    assert shaped.converged_.all()
    assert np.isfinite(shaped.params_).all()


def test_map_under_a_wrong_model_is_still_the_posterior_mode(rng):
    """A normal model with a t prior on μ fitted to gamma data: the mode of the (wrong)
    posterior is still what is computed, against scipy."""
    x = rng.gamma(2.0, size=(3, 40))
    prior = {"mu": {"dist": "t", "df": 4, "loc": 0, "scale": 1}}
    est = fit("normal", x, prior)
    for r in range(3):
        want = scipy_mode(
            "normal", x[r], check_prior(get_family("normal"), prior, KEY), est.params_[r] * 1.1
        )
        np.testing.assert_allclose(est.params_[r], want, rtol=2e-5)


# ------------------------------------------------ the soft threshold (lasso)
def test_laplace_prior_with_known_variance_is_the_soft_threshold(rng):
    n, b, s2 = 10, 0.5, 2.0
    x = rng.normal(0.1, np.sqrt(s2), size=(2000, n))
    est = fit("normal", x, {"mu": {"dist": "laplace", "loc": 0, "scale": b}}, {"sigma2": s2})
    assert est.param_names_ == ("mu",)
    xbar = x.mean(axis=1)
    want = np.sign(xbar) * np.maximum(np.abs(xbar) - s2 / (n * b), 0.0)
    np.testing.assert_allclose(est.params_[:, 0], want, rtol=1e-13, atol=1e-15)
    assert (est.params_[:, 0] == 0.0).sum() > 100  # exact zeros, as the lasso


def test_share_of_exact_zeros_matches_its_exact_probability(rng):
    """μ̂ = 0 ⇔ |x̄| ≤ σ²/(n b): probability Φ((t − μ)√n/σ) − Φ((−t − μ)√n/σ)."""
    n, b, s2, mu, reps = 20, 0.25, 1.0, 0.1, 20000
    x = rng.normal(mu, 1.0, size=(reps, n))
    est = fit("normal", x, {"mu": {"dist": "laplace", "loc": 0, "scale": b}}, {"sigma2": s2})
    share = np.mean(est.params_[:, 0] == 0.0)
    t, sd = s2 / (n * b), np.sqrt(s2 / n)
    exact = st.norm.cdf((t - mu) / sd) - st.norm.cdf((-t - mu) / sd)
    mcse = np.sqrt(exact * (1 - exact) / reps)
    assert abs(share - exact) < 4 * mcse, (share, exact, mcse)


def test_joint_laplace_mode_beats_its_neighbours(rng):
    """σ² free (inverse-gamma prior): the coordinate-ascent point is the joint mode —
    no point of a fine grid around it has a higher log posterior (the kink rules out
    gradient checks)."""
    prior = {
        "mu": {"dist": "laplace", "loc": 0.0, "scale": 0.2},
        "sigma2": {"dist": "invgamma", "shape": 2.0, "scale": 1.0},
    }
    x = rng.normal(0.3, 1.0, size=(5, 15))
    est = fit("normal", x, prior)
    full = check_prior(get_family("normal"), prior, KEY)
    assert est.converged_.all()
    for r in range(5):
        t = est.params_[r]
        best = log_posterior("normal", t, x[r], full)
        for dm in np.linspace(-0.05, 0.05, 11):
            for ds in np.linspace(-0.05, 0.05, 11):
                cand = t + np.array([dm, ds * t[1]])
                assert log_posterior("normal", cand, x[r], full) <= best + 1e-12


def test_normal_prior_with_known_variance_is_ridge(rng):
    """N(0, τ²) prior, σ² known: μ̂ = n x̄ τ² / (n τ² + σ²) — shrinkage by σ²/(n τ²)."""
    n, tau2, s2 = 8, 0.5, 3.0
    x = rng.normal(1.0, np.sqrt(s2), size=(100, n))
    est = fit("normal", x, {"mu": {"dist": "normal", "mean": 0, "var": tau2}}, {"sigma2": s2})
    want = n * x.mean(axis=1) * tau2 / (n * tau2 + s2)
    np.testing.assert_allclose(est.params_[:, 0], want, rtol=1e-13)
    np.testing.assert_allclose(est.se_[:, 0], np.sqrt(1 / (n / s2 + 1 / tau2)), rtol=1e-12)


# ------------------------------------------------------------------ refusals
@pytest.mark.parametrize(
    ("family", "spec", "key"),
    [
        ("laplace", {"prior": {"mu": {"dist": "normal", "mean": 0, "var": 1}}}, "prior.mu"),
        ("normal", {"fixed": {"nu": 1}}, "fixed.nu"),
        ("normal", {"fixed": {"mu": 0, "sigma2": 1}}, "fixed"),
        ("gamma", {"prior": {"shape": {"dist": "normal", "mean": 0}}}, "prior.shape.var"),
    ],
)
def test_bad_map_specs_are_refused_at_their_key(family, spec, key):
    with pytest.raises(ConfigError) as info:
        make_estimator("map", {"kind": "map", **spec}, get_family(family))
    assert info.value.key == f"estimators.map.{key}"
    assert "allowed" in info.value.message or "must" in info.value.message


def test_a_scipy_named_prior_reaches_the_edge_like_its_named_twin():
    """uniform(0, 1) is beta(1, 1) and expon is gamma(1, 1): all heads and all zeros put
    their modes on the edge (p̂ = 1, λ̂ = 0, SE 0) — the numerical derivatives of a
    scipy-named prior stay inside its support there."""
    for fam, x, scipy_prior, named in (
        ("bernoulli", np.ones((2, 10)), {"p": {"dist": "uniform"}}, {"p": {"a": 1, "b": 1}}),
        (
            "poisson",
            np.zeros((2, 10)),
            {"lam": {"dist": "expon"}},
            {"lam": {"shape": 1, "rate": 1}},
        ),
    ):
        a, b = fit(fam, x, scipy_prior), fit(fam, x, named)
        assert a.converged_.all() and b.converged_.all(), a.reason_
        np.testing.assert_array_equal(a.params_, b.params_)
        np.testing.assert_array_equal(a.se_, 0.0)
    x = np.ones((1, 2000))
    x[0, 0] = 0  # an interior mode next to the edge: 1999/2000
    near = fit("bernoulli", x, {"p": {"dist": "uniform"}})
    assert near.converged_.all()
    np.testing.assert_allclose(near.params_[0, 0], 1999 / 2000, rtol=1e-9)
