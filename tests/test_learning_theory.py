"""Tests of :mod:`mlesim.learning_theory` against references computed independently of it:
closed forms; scipy.integrate quadrature; exact enumeration; seeded Monte Carlo (every
entry within Z = 4 MCSE), where information matrices are E[s sᵀ] of scores obtained by
numerically differentiating scipy.stats log-densities; statsmodels' Logit and MNLogit
covariances on huge samples; and batched Newton fits of the logistic MLE.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import integrate, optimize, special, stats

from mlesim import learning_theory as lt
from tests.conftest import Z

NORMAL = {"dist": "normal", "rho": 0.3}
UNIFORM = {"dist": "uniform", "rho": 0.0}
BERNOULLI = {"dist": "bernoulli"}
LAWS = {"normal": NORMAL, "uniform": UNIFORM, "bernoulli": BERNOULLI}


# ----------------------------------------------------------------------------- helpers
def assert_mc_mean(values: np.ndarray, theory: np.ndarray, what: str, slack: float = 1e-12) -> None:
    """Each entry: |mean over axis 0 − theory| < Z·MCSE (MCSE = sd/√R); entries without
    spread (constants) must agree to ``slack`` (relative to 1 + |theory|)."""
    values = np.asarray(values, dtype=float)
    mean = values.mean(axis=0)
    mcse = values.std(axis=0, ddof=1) / math.sqrt(values.shape[0])
    theory = np.broadcast_to(np.asarray(theory, dtype=float), mean.shape)
    bad = np.abs(mean - theory) > Z * mcse + slack * (1.0 + np.abs(theory))
    assert not bad.any(), (
        f"{what}: MC {mean[bad]} vs theory {theory[bad]} (MCSE {mcse[bad]}, R={values.shape[0]})"
    )


def numerical_scores(loglik: Callable[[np.ndarray], np.ndarray], theta: np.ndarray) -> np.ndarray:
    """Central differences of the per-observation log-likelihood: (N, P) scores."""
    theta = np.asarray(theta, dtype=float)
    cols = []
    for j in range(theta.size):
        h = 1e-5 * max(1.0, abs(theta[j]))
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        cols.append((loglik(up) - loglik(down)) / (2 * h))
    return np.stack(cols, axis=1)


def outer_rows(s: np.ndarray) -> np.ndarray:
    """Row-wise outer products s_i s_iᵀ flattened: (N, P²)."""
    return (s[:, :, None] * s[:, None, :]).reshape(s.shape[0], -1)


def softmax_probs(X: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Class probabilities with the last class as reference, written out directly."""
    e = np.exp(X @ beta.T)
    denom = 1.0 + e.sum(axis=1, keepdims=True)
    return np.concatenate([e / denom, 1.0 / denom], axis=1)


def draw_classes(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of probs (N, K)."""
    u = rng.random(probs.shape[0])[:, None]
    return np.minimum((u > np.cumsum(probs, axis=1)).sum(axis=1), probs.shape[1] - 1)


def newton_logistic(X: np.ndarray, y: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Batched Newton–Raphson for the logistic MLE: X (R, n, d), y (R, n) → (R, d)."""
    b = np.tile(start, (X.shape[0], 1))
    for _ in range(50):
        p = special.expit((X @ b[..., None])[..., 0])
        grad = ((y - p)[:, None, :] @ X)[:, 0]
        hess = np.swapaxes(X * (p * (1 - p))[..., None], 1, 2) @ X
        step = np.linalg.solve(hess, grad[..., None])[..., 0]
        b = b + step
        if np.abs(step).max() < 1e-10:
            return b
    raise AssertionError("Newton did not converge in every replicate (separation?)")


# -------------------------------------------------------------------------- covariates
@pytest.mark.parametrize("name", LAWS)
def test_sample_covariates_shape_support_and_moments(rng, name):
    law = LAWS[name]
    X = lt.sample_covariates(rng, law, (40, 5000), 4)
    assert X.shape == (40, 5000, 4)
    assert np.all(X[..., 0] == 1.0)
    z = X[..., 1:]
    if name == "bernoulli":
        assert set(np.unique(z)) == {0.0, 1.0}
    if name == "uniform":
        assert z.min() > -math.sqrt(3) and z.max() < math.sqrt(3)
    exact = np.diag([1.0, 1.0, 1.0, 1.0])
    if name == "normal":
        exact[1:, 1:] = 0.7 * np.eye(3) + 0.3
    if name == "bernoulli":
        exact = np.full((4, 4), 0.25)
        exact[0, :] = exact[:, 0] = 0.5
        exact[0, 0] = 1.0
        np.fill_diagonal(exact[1:, 1:], 0.5)
    assert np.allclose(lt.covariate_second_moment(law, 4), exact, atol=1e-15)
    assert_mc_mean(outer_rows(X.reshape(-1, 4)), exact.reshape(-1), f"E xxᵀ ({name})")


def test_sample_covariates_normal_fourth_moments(rng):
    """Isserlis: E z_1² z_2² = 1 + 2ρ², E z_1⁴ = 3, E z_1³ z_2 = 3ρ."""
    z = lt.sample_covariates(rng, NORMAL, (400_000,), 3)[:, 1:]
    values = np.stack([z[:, 0] ** 2 * z[:, 1] ** 2, z[:, 0] ** 4, z[:, 0] ** 3 * z[:, 1]], 1)
    assert_mc_mean(values, [1 + 2 * 0.09, 3.0, 0.9], "normal fourth moments")


def test_covariate_law_validation():
    with pytest.raises(ValueError, match="rho"):
        lt.sample_covariates(np.random.default_rng(0), {"dist": "uniform", "rho": 0.2}, (2,), 3)
    with pytest.raises(ValueError, match="rho"):
        lt.covariate_nodes({"dist": "bernoulli", "rho": -0.1}, 3)
    with pytest.raises(ValueError, match="rho"):
        lt.covariate_nodes({"dist": "normal", "rho": -0.5}, 4)  # needs rho > −1/2
    with pytest.raises(ValueError, match="rho"):
        lt.covariate_nodes({"dist": "normal", "rho": 1.0}, 3)
    with pytest.raises(ValueError, match="dist"):
        lt.covariate_nodes({"dist": "gamma"}, 3)
    with pytest.raises(ValueError, match="key"):
        lt.covariate_nodes({"dist": "normal", "sd": 2}, 3)
    nodes, _ = lt.covariate_nodes({"dist": "normal", "rho": -0.49}, 4)
    assert np.all(np.isfinite(nodes))


@pytest.mark.parametrize("d", [1, 2, 3, 4])
@pytest.mark.parametrize("name", LAWS)
def test_nodes_reproduce_exact_moments(name, d):
    law = LAWS[name]
    nodes, w = lt.covariate_nodes(law, d)
    assert nodes.shape == (w.size, d) and np.all(nodes[:, 0] == 1.0)
    assert np.all(w > 0) and abs(w.sum() - 1.0) < 1e-14
    gram = (nodes * w[:, None]).T @ nodes
    assert np.allclose(gram, lt.covariate_second_moment(law, d), atol=1e-13)
    if d >= 3:
        z1, z2 = nodes[:, 1], nodes[:, 2]
        fourth = {"normal": (3.0, 1 + 2 * 0.09), "uniform": (9 / 5, 1.0), "bernoulli": (0.5, 0.25)}
        assert abs(w @ z1**4 - fourth[name][0]) < 1e-12
        assert abs(w @ (z1**2 * z2**2) - fourth[name][1]) < 1e-12


@pytest.mark.parametrize("name", LAWS)
def test_prevalence_and_information_against_scipy_quad(name):
    """d = 2: one-dimensional integrals over the covariate density by scipy.integrate."""
    beta = np.array([-1.0, 2.5])
    law = LAWS[name]
    if name == "bernoulli":
        pts = np.array([beta[0], beta[0] + beta[1]])
        ref_prev = special.expit(pts).mean()
        w = special.expit(pts) * special.expit(-pts)
        ref_info = np.array([[w.mean(), w[1] / 2], [w[1] / 2, w[1] / 2]])
    else:
        dens = stats.norm() if name == "normal" else stats.uniform(-math.sqrt(3), 2 * math.sqrt(3))
        lo, hi = (-np.inf, np.inf) if name == "normal" else (-math.sqrt(3), math.sqrt(3))

        def e(f):
            return integrate.quad(lambda z: f(z) * dens.pdf(z), lo, hi, epsabs=1e-14)[0]

        ref_prev = e(lambda z: special.expit(beta[0] + beta[1] * z))

        def pq(z):
            return special.expit(beta[0] + beta[1] * z) * special.expit(-beta[0] - beta[1] * z)

        m = [e(lambda z, k=k: pq(z) * z**k) for k in range(3)]
        ref_info = np.array([[m[0], m[1]], [m[1], m[2]]])
    assert abs(lt.prevalence(beta, law) - ref_prev) < 1e-11
    assert np.allclose(lt.logistic_information(beta, law), ref_info, rtol=1e-10, atol=1e-13)


def test_two_dimensional_normal_rule_by_gaussian_conditioning():
    """d = 3, ρ = 0.3: with v = cᵀz ~ N(0, τ²), c = (β₁, β₂), τ² = cᵀΣc, the law of z given
    v is normal with E[z₁z₂ | v] = (Σ − ΣccᵀΣ/τ²)₁₂ + (Σc)₁(Σc)₂ v²/τ⁴; so the expectations
    are one-dimensional integrals over v, done by scipy.integrate.quad."""
    beta = np.array([-0.7, 1.2, -2.0])
    sigma = np.array([[1.0, 0.3], [0.3, 1.0]])
    c = beta[1:]
    sc = sigma @ c
    tau = math.sqrt(c @ sc)
    cond = (sigma - np.outer(sc, sc) / tau**2)[0, 1]

    def e(f):
        g = lambda v: f(v) * stats.norm.pdf(v, scale=tau)  # noqa: E731
        return integrate.quad(g, -12 * tau, 12 * tau, epsabs=1e-14, epsrel=1e-12, limit=200)[0]

    pq = lambda v: special.expit(beta[0] + v) * special.expit(-beta[0] - v)  # noqa: E731
    ref_prev = e(lambda v: special.expit(beta[0] + v))
    ref_12 = e(lambda v: pq(v) * (cond + sc[0] * sc[1] * v**2 / tau**4))
    assert abs(lt.prevalence(beta, NORMAL) - ref_prev) < 1e-12
    assert abs(lt.logistic_information(beta, NORMAL)[1, 2] - ref_12) < 1e-12


@pytest.mark.parametrize(
    ("law", "slope", "tol"),
    [
        ({"dist": "normal"}, [8.0], 1e-12),
        ({"dist": "normal"}, [4.0, -4.0], 1e-12),
        ({"dist": "normal"}, [6.0, 6.0], 1e-7),
        ({"dist": "normal"}, [3.0, -3.0, 3.0], 1e-7),
        ({"dist": "uniform"}, [4.0, -4.0, 4.0], 1e-12),
    ],
)
def test_default_order_accuracy_claims(law, slope, tol):
    """The accuracies documented in covariate_nodes, against a rule of 1.25 times the
    order (whose own error is orders of magnitude smaller)."""
    beta = np.array([-1.0, *slope])
    order = int(1.25 * lt.DEFAULT_ORDER[beta.size - 1])
    for f in (lt.logistic_information, lambda b, c, **k: lt.logistic_bias(b, c, 1, **k)):
        ref = f(beta, law, order=order)
        assert np.abs(f(beta, law) - ref).max() < tol * np.abs(ref).max()


@pytest.mark.parametrize("law", [{"dist": "normal", "rho": 0.0}, UNIFORM])
def test_sobol_fallback_accuracy(law):
    """d = 5 (four z): second moments, and a logistic information depending on z₁ only,
    whose entries reduce to one-dimensional integrals (the z independent, mean 0)."""
    nodes, w = lt.covariate_nodes(law, 5)
    assert w.size == 2**18
    gram = (nodes * w[:, None]).T @ nodes
    assert np.abs(gram - np.eye(5)).max() < 1e-4
    beta = np.array([-1.0, 1.5, 0.0, 0.0, 0.0])
    info = lt.logistic_information(beta, law)
    if law["dist"] == "normal":
        dens, lo, hi = stats.norm.pdf, -np.inf, np.inf
    else:
        dens, lo, hi = (lambda z: 1 / (2 * math.sqrt(3))), -math.sqrt(3), math.sqrt(3)
    m = [
        integrate.quad(
            lambda z, k=k: (
                special.expit(-1 + 1.5 * z) * special.expit(1 - 1.5 * z) * z**k * dens(z)
            ),
            lo,
            hi,
        )[0]
        for k in range(3)
    ]
    ref = np.diag([m[0], m[2], m[0], m[0], m[0]])
    ref[0, 1] = ref[1, 0] = m[1]
    assert np.abs(info - ref).max() < 5e-5 * np.abs(ref).max()


# ------------------------------------------------------------------- linear regression
@pytest.mark.parametrize("name", LAWS)
@pytest.mark.parametrize("noise", lt.NOISES)
def test_linear_information_is_expected_score_outer_product(rng, noise, name):
    law, beta, sigma2, nu, n = LAWS[name], np.array([0.5, -1.0, 2.0]), 2.0, 5.0, 100_000
    X = lt.sample_covariates(rng, law, (n,), 3)
    if noise == "normal":
        eps = rng.normal(0, math.sqrt(sigma2), n)
    elif noise == "laplace":
        eps = rng.laplace(0, math.sqrt(sigma2 / 2), n)
    else:
        eps = math.sqrt(sigma2 * (nu - 2) / nu) * rng.standard_t(nu, n)
    y = X @ beta + eps

    def loglik(theta):
        mean, s2 = X @ theta[:3], theta[3]
        if noise == "normal":
            return stats.norm.logpdf(y, mean, np.sqrt(s2))
        if noise == "laplace":
            return stats.laplace.logpdf(y, mean, np.sqrt(s2 / 2))
        return stats.t.logpdf(y, nu, mean, np.sqrt(s2 * (nu - 2) / nu))

    scores = numerical_scores(loglik, np.r_[beta, sigma2])
    info = lt.linear_information(beta, sigma2, noise, nu, law)
    assert info.shape == (4, 4)
    # Laplace: the squared β₀ score is 1/b² wherever |ε| ≥ h, the step of the difference
    # quotient; the ~1e-5 share of |ε| < h leaves an error ~1e-5 in an entry of zero spread
    slack = 1e-4 if noise == "laplace" else 1e-12
    assert_mc_mean(outer_rows(scores), info.reshape(-1), f"{noise}/{name} information", slack)


def test_linear_information_closed_forms():
    e = lt.covariate_second_moment(NORMAL, 3)
    info = lt.linear_information([0, 0, 0], 2.0, "normal", None, NORMAL)
    assert np.allclose(info[:3, :3], e / 2.0) and info[3, 3] == pytest.approx(1 / 8)
    info = lt.linear_information([0, 0, 0], 2.0, "laplace", None, NORMAL)
    assert np.allclose(info[:3, :3], e) and info[3, 3] == pytest.approx(1 / 16)
    info = lt.linear_information([0, 0, 0], 2.0, "t", 5.0, NORMAL)
    s2 = 2.0 * 3 / 5
    assert np.allclose(info[:3, :3], 6 / (8 * s2) * e)
    assert info[3, 3] == pytest.approx(5 / (2 * 8 * 4))
    assert np.all(info[:3, 3] == 0)
    assert np.array_equal(info, lt.linear_information([0, 0, 0], 2.0, "student_t", 5.0, NORMAL))
    with pytest.raises(ValueError, match="nu"):
        lt.linear_information([0, 0], 1.0, "t", 2.0, NORMAL)
    with pytest.raises(ValueError, match="noise"):
        lt.linear_information([0, 0], 1.0, "cauchy", None, NORMAL)


# ------------------------------------------------------------------------- logistic
@pytest.mark.parametrize("name", LAWS)
def test_logistic_information_is_expected_score_outer_product(rng, name):
    law, beta, n = LAWS[name], np.array([-1.5, 1.0, -0.7]), 200_000
    X = lt.sample_covariates(rng, law, (n,), 3)
    y = (rng.random(n) < special.expit(X @ beta)).astype(float)
    scores = numerical_scores(lambda b: stats.bernoulli.logpmf(y, special.expit(X @ b)), beta)
    assert_mc_mean(outer_rows(scores), lt.logistic_information(beta, law).reshape(-1), name)


def test_logistic_information_against_statsmodels_logit(rng):
    """n = 2·10⁵: n × statsmodels' covariance ≈ I⁻¹ (within 5% of √(I⁻¹_ii I⁻¹_jj))."""
    beta, n = np.array([-2.0, 1.0, 0.5]), 200_000
    X = lt.sample_covariates(rng, NORMAL, (n,), 3)
    y = (rng.random(n) < special.expit(X @ beta)).astype(float)
    fit = sm.Logit(y, X).fit(disp=0)
    inv = np.linalg.inv(lt.logistic_information(beta, NORMAL))
    sd = np.sqrt(np.diag(inv))
    assert np.abs(n * np.asarray(fit.cov_params()) - inv).max() < 0.05 * np.outer(sd, sd).min()
    assert np.all(np.abs(fit.params - beta) < Z * sd / math.sqrt(n))


def test_prevalence_monte_carlo(rng):
    beta, n = np.array([-1.0, 0.8, -0.5, 0.3]), 400_000
    for law in LAWS.values():
        X = lt.sample_covariates(rng, law, (n,), 4)
        y = (rng.random(n) < special.expit(X @ beta)).astype(float)
        assert_mc_mean(y[:, None], [lt.prevalence(beta, law)], f"prevalence {law}")


@pytest.mark.parametrize("name", LAWS)
def test_intercept_for_prevalence(rng, name):
    law, slopes = LAWS[name], np.array([0.8, -0.5])
    for target in (0.001, 0.1, 0.5, 0.97):
        b0 = lt.intercept_for_prevalence(target, slopes, law)
        assert abs(lt.prevalence(np.r_[b0, slopes], law) - target) < 1e-12
    b0 = lt.intercept_for_prevalence(0.1, slopes, law)
    X = lt.sample_covariates(rng, law, (200_000,), 3)
    y = (rng.random(200_000) < special.expit(X @ np.r_[b0, slopes])).astype(float)
    assert_mc_mean(y[:, None], [0.1], f"simulated prevalence ({name})")
    assert lt.intercept_for_prevalence(0.3, [], law) == pytest.approx(special.logit(0.3))
    with pytest.raises(ValueError, match="target"):
        lt.intercept_for_prevalence(1.0, slopes, law)


# -------------------------------------------------------------------------- softmax
SOFTMAX_BETA = np.array([[0.3, 0.8, -0.4], [-0.5, -0.3, 0.6]])


@pytest.mark.parametrize("name", LAWS)
def test_softmax_information_is_expected_score_outer_product(rng, name):
    law, n = LAWS[name], 100_000
    X = lt.sample_covariates(rng, law, (n,), 3)
    y = draw_classes(rng, softmax_probs(X, SOFTMAX_BETA))

    def loglik(theta):
        return np.log(softmax_probs(X, theta.reshape(2, 3))[np.arange(n), y])

    scores = numerical_scores(loglik, SOFTMAX_BETA.reshape(-1))
    info = lt.softmax_information(SOFTMAX_BETA, law)
    assert info.shape == (6, 6) and np.allclose(info, info.T)
    assert_mc_mean(outer_rows(scores), info.reshape(-1), f"softmax information ({name})")
    onehot = np.eye(3)[y]
    assert_mc_mean(onehot, lt.class_probabilities(SOFTMAX_BETA, law), "class probabilities")


def test_softmax_information_against_statsmodels_mnlogit(rng):
    """n = 10⁵: n × MNLogit's covariance ≈ I⁻¹; statsmodels' reference class is the first,
    so the labels are rotated to make our last class its first."""
    n = 100_000
    X = lt.sample_covariates(rng, NORMAL, (n,), 3)
    y = draw_classes(rng, softmax_probs(X, SOFTMAX_BETA))
    fit = sm.MNLogit((y + 1) % 3, X).fit(disp=0, method="newton")
    inv = np.linalg.inv(lt.softmax_information(SOFTMAX_BETA, NORMAL))
    sd = np.sqrt(np.diag(inv))
    assert np.abs(n * np.asarray(fit.cov_params()) - inv).max() < 0.05 * np.outer(sd, sd).min()
    assert np.all(np.abs(fit.params.T.reshape(-1) - SOFTMAX_BETA.reshape(-1)) < Z * sd / n**0.5)


@pytest.mark.parametrize("name", LAWS)
def test_softmax_with_two_classes_is_logistic(name):
    law, beta = LAWS[name], np.array([[-1.0, 0.7, 0.4]])
    assert np.allclose(lt.softmax_information(beta, law), lt.logistic_information(beta[0], law))
    prev = lt.prevalence(beta[0], law)
    assert np.allclose(lt.class_probabilities(beta, law), [prev, 1 - prev], atol=1e-14)


# ----------------------------------------------------------------- logistic MLE bias
def test_logistic_bias_intercept_only_closed_form():
    for p, n in ((0.1, 50), (0.5, 20), (0.8, 300)):
        b = lt.logistic_bias([special.logit(p)], NORMAL, n)
        assert b[0] == pytest.approx(-(1 - 2 * p) / (2 * n * p * (1 - p)), abs=1e-15)


def test_king_zeng_on_the_bernoulli_design_equals_the_expected_form():
    """With bernoulli covariates the rule is exact and has equal weights, so a design that
    repeats its 2^(d−1) points equally often gives the expected form exactly."""
    beta = np.array([-1.2, 0.9, -0.4])
    nodes, _ = lt.covariate_nodes(BERNOULLI, 3)
    X = np.tile(nodes, (50, 1))
    assert np.allclose(lt.king_zeng_bias(beta, X), lt.logistic_bias(beta, BERNOULLI, 200))


def test_king_zeng_against_exact_enumeration_of_a_two_cell_design():
    """x ∈ {(1, 0), (1, 1)}, m observations each: the MLE is explicit, β̂₀ = logit(k₀/m),
    β̂₁ = logit(k₁/m) − logit(k₀/m), so its exact bias is a binomial sum (the outcomes
    k ∈ {0, m}, where the MLE does not exist, have mass < 1e-38 and are left out). The
    formula must be its leading term: a relative remainder of a few percent, O(1/m²)."""
    beta = np.array([special.logit(0.2), special.logit(0.4) - special.logit(0.2)])
    remainders = []
    for m in (400, 1600):
        k = np.arange(1, m)

        def mean_logit(p, m=m, k=k):
            return stats.binom.pmf(k, m, p) @ special.logit(k / m)

        e0, e1 = mean_logit(0.2), mean_logit(0.4)
        exact = np.array([e0 - beta[0], (e1 - e0) - beta[1]])
        design = np.repeat(np.array([[1.0, 0.0], [1.0, 1.0]]), m, axis=0)
        first = lt.king_zeng_bias(beta, design)
        assert np.all(np.abs(exact - first) < 0.02 * np.abs(first))
        remainders.append(np.abs(exact - first))
    assert np.all(remainders[1] < remainders[0] / 10)  # O(1/m²): a factor 16


def test_logistic_bias_monte_carlo_n200_prevalence_10_percent():
    """Batched Newton fits of R = 5000 samples of n = 200 with prevalence 10% (about 20
    events): the mean bias matches the first-order formula within 4 MCSE, and the MC is
    precise enough to tell the formula from zero, from half and from double it.

    The O(1/n²) remainder is about 12% of the intercept's bias here (−0.080 against
    −0.072; 5.8 MCSE at R = 40000), so a much larger R would resolve it."""
    rng = np.random.default_rng(20260101)
    slopes = np.array([0.5, -0.5])
    beta = np.r_[lt.intercept_for_prevalence(0.1, slopes, NORMAL), slopes]
    n, reps = 200, 5000
    theory = lt.logistic_bias(beta, NORMAL, n)
    X = lt.sample_covariates(rng, NORMAL, (reps, n), 3)
    y = (rng.random((reps, n)) < special.expit(X @ beta)).astype(float)
    est = newton_logistic(X, y, beta)
    assert_mc_mean(est - beta, theory, "logistic MLE bias")
    mcse = est[:, 0].std(ddof=1) / math.sqrt(reps)
    for wrong in (0.0, 0.5, 2.0):
        assert abs(est[:, 0].mean() - beta[0] - wrong * theory[0]) > Z * mcse


# ------------------------------------------------------------------ misspecified noise
def log_density(noise: str, scale: float, nu: float | None) -> Callable[[float], float]:
    """log f(e) of a noise law with scale parameter ``scale`` (σ, b or s), written out with
    the math module (fast scalar calls; scipy's laplace.logpdf is log(pdf), −inf far out)."""
    if noise == "normal":
        return lambda e: -0.5 * math.log(2 * math.pi * scale**2) - 0.5 * (e / scale) ** 2
    if noise == "laplace":
        return lambda e: -math.log(2 * scale) - abs(e) / scale
    const = special.gammaln((nu + 1) / 2) - special.gammaln(nu / 2)
    const -= 0.5 * math.log(nu * math.pi * scale**2)
    return lambda e: const - (nu + 1) / 2 * math.log1p(e * e / (nu * scale**2))


def kl_projection_by_direct_maximisation(true, nu_true, model, nu_model, sigma2):
    """σ²* maximising E_true log f_model(ε; scale), E by scipy.integrate.quad, maximum by
    scipy.optimize.minimize_scalar over the log scale (no score equation involved)."""
    true_scale = {"normal": 1.0, "laplace": math.sqrt(0.5)}.get(true)
    if true == "t":
        true_scale = math.sqrt((nu_true - 2) / nu_true)
    log_true = log_density(true, math.sqrt(sigma2) * true_scale, nu_true)
    # up to 40 sd (normal, Laplace) or 10⁴ (t₅: its mass beyond, weighted by |log f| ~ e,
    # is below 1e-12)
    top, points = (1e4, [1, 3, 10, 30, 100, 1000]) if true == "t" else (60.0, [1, 3, 10])

    def minus_expected_loglik(log_scale):
        logf = log_density(model, math.exp(log_scale), nu_model)
        g = lambda e: math.exp(log_true(e)) * logf(e)  # noqa: E731
        return -2 * integrate.quad(g, 0, top, points=points, epsabs=1e-12, limit=400)[0]

    res = optimize.minimize_scalar(
        minus_expected_loglik, bounds=(-3, 3), method="bounded", options={"xatol": 1e-9}
    )
    scale2 = math.exp(2 * res.x)
    if model == "normal":
        return scale2
    return 2 * scale2 if model == "laplace" else scale2 * nu_model / (nu_model - 2)


@pytest.mark.parametrize(("true", "nu_true"), [("normal", None), ("laplace", None), ("t", 5.0)])
@pytest.mark.parametrize(
    ("model", "nu_model"), [("normal", None), ("laplace", None), ("t", 4.0), ("t", 5.0)]
)
def test_noise_pseudo_true_against_direct_kl_minimisation(true, nu_true, model, nu_model):
    got = lt.noise_pseudo_true_sigma2(true, model, 2.0, nu_true, nu_model)
    ref = kl_projection_by_direct_maximisation(true, nu_true, model, nu_model, 2.0)
    assert got == pytest.approx(ref, rel=2e-7)


def test_noise_pseudo_true_closed_forms_and_monte_carlo(rng):
    assert lt.noise_pseudo_true_sigma2("normal", "laplace", 3.0) == pytest.approx(12 / math.pi)
    assert lt.noise_pseudo_true_sigma2("laplace", "laplace", 3.0) == pytest.approx(3.0)
    assert lt.noise_pseudo_true_sigma2("t", "t", 3.0, 7.0, 7.0) == 3.0
    assert lt.noise_pseudo_true_sigma2("t", "normal", 3.0, 7.0) == 3.0
    # E|T_ν| closed form inside the Laplace projection, against scipy's expect
    abs_t = stats.t(5.0).expect(abs)
    s2 = 3.0 * 3 / 5
    got = lt.noise_pseudo_true_sigma2("t", "laplace", 3.0, 5.0)
    assert got == pytest.approx(2 * s2 * abs_t**2, rel=1e-10)
    # the Laplace MLE of b on a huge t₅ sample is mean |ε|; σ̂²* = 2 b̂², delta-method MCSE
    eps = math.sqrt(s2) * rng.standard_t(5.0, 1_000_000)
    b_hat = np.abs(eps).mean()
    mcse = 4 * b_hat * np.abs(eps).std() / math.sqrt(eps.size)
    assert abs(2 * b_hat**2 - got) < Z * mcse
    assert lt.noise_pseudo_true_sigma2("student_t", "t", 3.0, 5.0, 4.0) == (
        lt.noise_pseudo_true_sigma2("t", "student_t", 3.0, 5.0, 4.0)
    )
    with pytest.raises(ValueError, match="nu"):
        lt.noise_pseudo_true_sigma2("normal", "t", 1.0)


# ------------------------------------------------------------------------ categorical
def test_categorical_information(rng):
    p, n = np.array([0.1, 0.2, 0.3, 0.4]), 400_000
    y = draw_classes(rng, np.tile(p, (n, 1)))

    def loglik(theta):
        full = np.r_[theta, 1 - theta.sum()]
        return np.log(full[y])

    scores = numerical_scores(loglik, p[:-1])
    info = lt.categorical_information(p)
    assert_mc_mean(outer_rows(scores), info.reshape(-1), "categorical information")
    assert np.allclose(np.linalg.inv(info), np.diag(p[:-1]) - np.outer(p[:-1], p[:-1]))
    with pytest.raises(ValueError):
        lt.categorical_information([0.5, 0.5, 0.0])


def kl_by_enumeration(p, n, alpha):
    """Σ over all count vectors summing to n of Multinomial pmf × KL(p ‖ (c + α)/(n + Kα))."""
    p, total = np.asarray(p), 0.0
    for c in itertools.product(range(n + 1), repeat=p.size - 1):
        if sum(c) > n:
            continue
        counts = np.array([*c, n - sum(c)])
        pmf = stats.multinomial.pmf(counts, n, p)
        if pmf == 0:
            continue
        q = (counts + alpha) / (n + p.size * alpha)
        total += pmf * np.sum(special.rel_entr(p, q))
    return total


@pytest.mark.parametrize(
    ("p", "n", "alpha"),
    [
        ([0.2, 0.3, 0.5], 7, 0.5),
        ([0.1, 0.2, 0.3, 0.4], 6, 1.0),
        ([0.5, 0.5, 0.0], 5, 0.3),
        ([0.05, 0.95], 30, 0.01),
    ],
)
def test_multinomial_kl_against_enumeration(p, n, alpha):
    assert lt.multinomial_kl_expectation(p, n, alpha) == pytest.approx(
        kl_by_enumeration(p, n, alpha), rel=1e-12, abs=1e-15
    )


@pytest.mark.parametrize("n", [40, 3000])
def test_multinomial_kl_monte_carlo(rng, n):
    p, alpha = np.array([0.15, 0.25, 0.6]), 0.5
    counts = rng.multinomial(n, p, size=200_000)
    kl = np.sum(special.rel_entr(p, (counts + alpha) / (n + 3 * alpha)), axis=1)
    assert_mc_mean(kl[:, None], [lt.multinomial_kl_expectation(p, n, alpha)], f"E KL, n={n}")


def test_multinomial_kl_limits():
    assert lt.multinomial_kl_expectation([0.3, 0.7], 1000, 0.0) == math.inf
    assert lt.multinomial_kl_expectation([0.0, 1.0], 10, 0.0) == 0.0
    for n in (10**5, 10**7):  # (K' − 1)/(2n) + (K − K')α/n + O(1/n²), K = 4, K' = 3
        for alpha in (0.5, 1.0):
            got = lt.multinomial_kl_expectation([0.2, 0.3, 0.5, 0.0], n, alpha)
            assert got == pytest.approx(2 / (2 * n) + alpha / n, rel=50 / n)


def test_entropy_cross_entropy_perplexity():
    p, q = np.array([0.1, 0.2, 0.7]), np.array([0.3, 0.3, 0.4])
    assert lt.entropy(p) == pytest.approx(stats.entropy(p))
    assert lt.cross_entropy(p, q) == pytest.approx(stats.entropy(p) + stats.entropy(p, q))
    assert lt.perplexity(p, q) == pytest.approx(math.exp(lt.cross_entropy(p, q)))
    assert lt.perplexity(np.full(5, 0.2), np.full(5, 0.2)) == pytest.approx(5.0)
    assert lt.entropy([0.0, 1.0]) == 0.0
    assert lt.cross_entropy([0.5, 0.5], [1.0, 0.0]) == math.inf
    with pytest.raises(ValueError, match="sum"):
        lt.entropy([0.5, 0.6])


# -------------------------------------------------------------------- Gaussian mixture
MIXTURES = {
    "two": ([0.3, 0.7], [0.0, 2.0], [1.0, 0.5]),
    "narrow": ([0.2, 0.3, 0.5], [0.0, 2.0, 5.0], [1.0, 0.05, 4.0]),
}


def mixture_loglik(y: np.ndarray, theta: np.ndarray, k: int) -> np.ndarray:
    w = np.r_[theta[: k - 1], 1 - theta[: k - 1].sum()]
    mu, var = theta[k - 1 : 2 * k - 1], theta[2 * k - 1 :]
    comps = np.log(w) + stats.norm.logpdf(y[:, None], mu, np.sqrt(var))
    return special.logsumexp(comps, axis=1)


@pytest.mark.parametrize("case", MIXTURES)
def test_mixture_information_is_expected_score_outer_product(rng, case):
    w, mu, var = (np.array(a) for a in MIXTURES[case])
    k, n = w.size, 100_000
    comp = draw_classes(rng, np.tile(w, (n, 1)))
    y = rng.normal(mu[comp], np.sqrt(var[comp]))
    theta = np.r_[w[:-1], mu, var]
    scores = numerical_scores(lambda t: mixture_loglik(y, t, k), theta)
    info = lt.mixture_information(w, mu, var)
    assert info.shape == (3 * k - 1, 3 * k - 1)
    assert np.all(np.linalg.eigvalsh(info) > 0)
    assert_mc_mean(outer_rows(scores), info.reshape(-1), f"mixture information ({case})")


def test_mixture_information_against_scipy_quad_per_entry():
    """A few entries of the narrow-component mixture by scipy.integrate.quad of f s_i s_j,
    the scores by central differences of the log-density written out with the math module
    (fast scalar calls), breakpoints at the component means."""
    w, mu, var = (np.array(a) for a in MIXTURES["narrow"])
    theta = [*w[:-1], *mu, *var]
    info = lt.mixture_information(w, mu, var)

    def logf(y, t):
        ws = [t[0], t[1], 1 - t[0] - t[1]]
        return math.log(
            sum(
                wk * math.exp(-0.5 * (y - m) ** 2 / v) / math.sqrt(2 * math.pi * v)
                for wk, m, v in zip(ws, t[2:5], t[5:8], strict=True)
            )
        )

    def score(y, i):
        h = 1e-5 * max(1.0, abs(theta[i]))
        up, down = list(theta), list(theta)
        up[i] += h
        down[i] -= h
        return (logf(y, up) - logf(y, down)) / (2 * h)

    def integrand(y, i, j):
        return math.exp(logf(y, theta)) * score(y, i) * score(y, j)

    for i, j in ((0, 0), (3, 3), (1, 6), (6, 6)):
        ref = integrate.quad(integrand, -15, 30, args=(i, j), points=[0, 2, 5], limit=400)[0]
        assert info[i, j] == pytest.approx(ref, rel=1e-6, abs=1e-9)


def test_mixture_information_one_component_closed_form():
    info = lt.mixture_information([1.0], [3.0], [2.0])
    assert np.allclose(info, np.diag([1 / 2.0, 1 / (2 * 2.0**2)]), atol=1e-12)
    with pytest.raises(ValueError):
        lt.mixture_information([0.5, 0.5], [0.0, 1.0], [1.0, 0.0])
