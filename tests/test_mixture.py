"""Batched EM for Gaussian mixtures (mlesim.mixture): it agrees with scikit-learn's
GaussianMixture replicate by replicate, never lowers the log-likelihood, its observed
information is the Hessian of the log-likelihood, collapse is detected and reported (and
prevented by a floor or a prior), the MAP is the maximiser of the penalised likelihood,
a replicate's fit does not depend on its chunk, and the estimates are unbiased to within
Monte Carlo error."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as st
from scipy import optimize
from sklearn.mixture import GaussianMixture

from mlesim import mixture

#: Monte Carlo tolerance in MCSEs (the Z of tests/conftest.py)
Z = 4.0

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

#: well-separated truths (weights, means, variances) for K = 2 and 3
SEPARATED = {
    2: ([0.35, 0.65], [-4.0, 3.0], [1.0, 2.0]),
    3: ([0.3, 0.45, 0.25], [-7.0, 0.0, 6.0], [1.0, 2.0, 0.6]),
}
FIELDS = ("weights", "means", "variances", "loglik", "converged", "collapsed", "n_iter", "info")


def draw(seed: int, truth: tuple, shape: tuple[int, int]) -> np.ndarray:
    return mixture.sample(np.random.default_rng(seed), *truth, size=shape)


def loglik(x: np.ndarray, theta: np.ndarray, prior: tuple[float, float] | None = None) -> float:
    """The (penalised) log-likelihood of one data set x (n,) at the free parameters
    θ = (w_1..w_{K-1}, μ_1..μ_K, σ²_1..σ²_K), written independently of the module."""
    k = (theta.size + 1) // 3
    w = np.append(theta[: k - 1], 1.0 - theta[: k - 1].sum())
    mu, var = theta[k - 1 : 2 * k - 1], theta[2 * k - 1 :]
    dens = sum(w[j] * st.norm.pdf(x, mu[j], np.sqrt(var[j])) for j in range(k))
    value = np.log(dens).sum()
    if prior is not None:
        value += st.invgamma.logpdf(var, prior[0], scale=prior[1]).sum()
    return float(value)


def free(fit: mixture.MixtureFit, r: int) -> np.ndarray:
    k = fit.weights.shape[1]
    return np.concatenate([fit.weights[r, : k - 1], fit.means[r], fit.variances[r]])


def numerical_hessian(f, theta: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Central-difference Hessian of f at theta, steps h_j per coordinate."""
    p = theta.size
    h = np.zeros((p, p))
    e = np.diag(steps)
    f0 = f(theta)
    for i in range(p):
        h[i, i] = (f(theta + e[i]) - 2.0 * f0 + f(theta - e[i])) / steps[i] ** 2
        for j in range(i + 1, p):
            h[i, j] = h[j, i] = (
                f(theta + e[i] + e[j])
                - f(theta + e[i] - e[j])
                - f(theta - e[i] + e[j])
                + f(theta - e[i] - e[j])
            ) / (4.0 * steps[i] * steps[j])
    return h


# ------------------------------------------------------------------ scikit-learn oracle
@pytest.mark.parametrize("start", ["perturbed", "our_init"])
@pytest.mark.parametrize("k", [2, 3])
def test_agrees_with_sklearn(k: int, start: str) -> None:
    n = 500
    x = draw(10 + k, SEPARATED[k], (3, n))
    fit = mixture.em(x, k)
    assert fit.converged.all()
    w0, mu0, v0 = mixture.quantile_init(x, k)
    for r in range(x.shape[0]):
        if start == "perturbed":
            bump = 1e-3 * np.array([1.0, -1.0, 0.5][:k])
            w_init = fit.weights[r] * (1 + bump) / (fit.weights[r] * (1 + bump)).sum()
            mu_init = fit.means[r] + bump * x[r].std()
            v_init = fit.variances[r] * (1 - bump)
        else:
            w_init, mu_init, v_init = w0[r], mu0[r], v0[r]
        gm = GaussianMixture(
            n_components=k,
            covariance_type="full",
            tol=1e-12,
            max_iter=10000,
            reg_covar=0.0,
            weights_init=w_init,
            means_init=mu_init[:, None],
            precisions_init=(1.0 / v_init)[:, None, None],
        ).fit(x[r][:, None])
        order = np.argsort(gm.means_[:, 0])
        np.testing.assert_allclose(fit.weights[r], gm.weights_[order], rtol=0, atol=1e-6)
        np.testing.assert_allclose(fit.means[r], gm.means_[order, 0], rtol=0, atol=1e-6)
        np.testing.assert_allclose(fit.variances[r], gm.covariances_[order, 0, 0], rtol=1e-6)
        np.testing.assert_allclose(fit.loglik[r], gm.score(x[r][:, None]) * n, rtol=1e-8)


# ------------------------------------------------------------------------ monotonicity
@pytest.mark.parametrize("prior", [None, (2.0, 0.5)])
def test_em_never_decreases_the_objective(prior: tuple[float, float] | None) -> None:
    """Run max_iter = 0, 1, 2, … on overlapping data (slow EM): the (penalised)
    log-likelihood after m + 1 steps is never below that after m steps."""
    x = draw(5, ([0.5, 0.3, 0.2], [-1.0, 0.5, 2.0], [1.0, 0.5, 1.5]), (6, 150))
    steps = 60
    trace = np.array([mixture.em(x, 3, max_iter=m, prior=prior).loglik for m in range(steps + 1)])
    final = mixture.em(x, 3, prior=prior)
    assert not final.collapsed.any()
    assert final.n_iter.min() > steps  # every replicate still moving over the whole trace
    assert (trace[-1] - trace[0] > 1.0).all()  # a real climb, not a flat line
    assert (np.diff(trace, axis=0) >= -1e-9).all()
    assert (final.loglik >= trace[-1] - 1e-9).all()
    if prior is not None:  # the objective is the penalised one, computed independently
        for r in range(x.shape[0]):
            assert final.loglik[r] == pytest.approx(loglik(x[r], free(final, r), prior), rel=1e-12)


# ----------------------------------------------------------------- observed information
@pytest.mark.parametrize(
    "k, truth, n, prior",
    [
        (2, SEPARATED[2], 500, None),
        (3, SEPARATED[3], 500, None),
        (2, ([0.3, 0.7], [-1.0, 1.0], [1.0, 1.0]), 300, None),  # overlapping
        (3, ([0.5, 0.3, 0.2], [-1.0, 0.5, 2.0], [1.0, 0.5, 1.5]), 300, (2.0, 0.5)),
    ],
)
def test_information_is_the_numerical_hessian(k: int, truth: tuple, n: int, prior) -> None:
    x = draw(20 + k, truth, (3, n))
    fit = mixture.em(x, k, prior=prior, max_iter=20000)  # overlap: EM is slow
    assert fit.converged.all()
    for r in range(x.shape[0]):
        theta = free(fit, r)
        scale = np.concatenate([np.ones(k - 1), np.full(k, x[r].std()), fit.variances[r]])
        hess = numerical_hessian(lambda t, r=r: loglik(x[r], t, prior), theta, 1e-4 * scale)
        top = np.abs(hess).max()
        np.testing.assert_allclose(fit.info[r], -hess, rtol=1e-4, atol=1e-6 * top)
    se = mixture.standard_errors(fit)
    assert se.shape == (x.shape[0], 3 * k) and np.isfinite(se).all()
    cov = np.linalg.inv(fit.info)
    np.testing.assert_allclose(se[:, k - 1] ** 2, cov[:, : k - 1, : k - 1].sum(axis=(1, 2)))
    np.testing.assert_allclose(se[:, k:] ** 2, np.diagonal(cov, axis1=1, axis2=2)[:, k - 1 :])


def test_best_of_several_starts() -> None:
    """n_init = m keeps, per replicate, the best of the first m starts: the objective never
    falls as starts are added, and the later starts do find better maxima somewhere."""
    x = draw(8, ([0.5, 0.3, 0.2], [-1.0, 0.5, 2.0], [1.0, 0.5, 1.5]), (40, 80))
    lls = np.array([mixture.em(x, 3, n_init=m, variance_floor=0.05).loglik for m in range(1, 5)])
    assert np.isfinite(lls).all()
    assert (np.diff(lls, axis=0) >= 0).all()
    assert (lls[-1] > lls[0] + 1e-6).sum() >= 3


# ---------------------------------------------------------------------------- collapse
def collapsing_data() -> tuple[np.ndarray, np.ndarray]:
    """(n = 50,) 48 normal points and an exact duplicate far away (30, 30); (2, 5) two
    tiny data sets of distinct points. EM with K = 3 collapses on each."""
    base = np.random.default_rng(3).standard_normal(48)
    far = np.concatenate([base, [30.0, 30.0]])
    return far, np.array([[-1.3, 0.2, 0.25, 1.7, 2.0], [0.0, 0.1, 5.0, 5.2, 9.0]])


def test_collapse_is_detected_and_reported() -> None:
    far, tiny = collapsing_data()
    for x in (far[None], tiny):
        fit = mixture.em(x, 3)
        assert fit.collapsed.all() and not fit.converged.any()
        assert (fit.reason == mixture.REASON_COLLAPSED).all()  # caught by the variance test
        assert (fit.variances.min(axis=1) < 1e-8 * x.var(axis=1)).all()
        assert np.isnan(fit.info).all()
        assert np.isnan(mixture.standard_errors(fit)).all()
    # several starts do not hide it when the best start collapsed
    fit = mixture.em(far[None], 3, n_init=4)
    assert fit.collapsed.all()


@pytest.mark.parametrize("remedy", [{"variance_floor": 0.01}, {"prior": (2.0, 0.5)}])
def test_floor_or_prior_prevent_collapse(remedy: dict) -> None:
    far, tiny = collapsing_data()
    for x in (far[None], tiny):
        fit = mixture.em(x, 3, n_init=3, **remedy)
        assert not fit.collapsed.any() and fit.converged.all()
        assert (fit.reason == "").all()
        assert np.isfinite(fit.loglik).all() and np.isfinite(fit.info).all()
        floor = remedy.get("variance_floor", 0.0)
        assert (fit.variances >= floor).all() and (fit.variances > 0).all()
        prior = remedy.get("prior")
        for r in range(x.shape[0]):
            assert fit.loglik[r] == pytest.approx(loglik(x[r], free(fit, r), prior), rel=1e-10)
    # the far duplicate gets its own component, on the floor / at the prior's pull
    fit = mixture.em(far[None], 2, **remedy)
    assert fit.means[0, 1] == pytest.approx(30.0)
    assert fit.variances[0, 1] == pytest.approx(0.01 if "variance_floor" in remedy else 2 * 0.5 / 8)


def test_constant_data() -> None:
    x = np.full((2, 10), 3.0)
    fit = mixture.em(x, 2)
    assert fit.collapsed.all() and (fit.reason == mixture.REASON_CONSTANT).all()
    fit = mixture.em(x, 2, variance_floor=0.1)
    assert not fit.collapsed.any() and np.allclose(fit.means, 3.0)


# --------------------------------------------------------------------------------- MAP
def test_map_maximises_the_penalised_likelihood() -> None:
    """At EM's convergence the MAP maximises log L + Σ log IG(σ²_k; a, b): scipy's BFGS on
    an unconstrained scale, started nearby, finds the same point. The prior matters
    here (n = 40): the MAP is far from the MLE."""
    prior = (3.0, 2.0)
    x = draw(7, ([0.4, 0.6], [-2.0, 2.0], [0.5, 1.5]), (3, 40))
    fit = mixture.em(x, 2, prior=prior, tol=1e-12)
    mle = mixture.em(x, 2, tol=1e-12)
    assert fit.converged.all() and mle.converged.all()
    assert np.abs(fit.variances - mle.variances).max() > 1e-2

    def to_theta(u: np.ndarray) -> np.ndarray:
        return np.array([1 / (1 + np.exp(-u[0])), u[1], u[2], np.exp(u[3]), np.exp(u[4])])

    for r in range(x.shape[0]):
        th = free(fit, r)
        u0 = np.array([np.log(th[0] / (1 - th[0])), th[1], th[2], np.log(th[3]), np.log(th[4])])
        res = optimize.minimize(
            lambda u, r=r: -loglik(x[r], to_theta(u), prior),
            u0 + 0.05,
            method="BFGS",
            jac="3-point",
            options={"gtol": 1e-9, "maxiter": 1000},
        )
        np.testing.assert_allclose(th, to_theta(res.x), rtol=0, atol=1e-5)
        assert fit.loglik[r] >= -res.fun - 1e-9
        # and the M-step's closed form holds at the fixed point
        resp, _ = mixture.e_step(
            x[r : r + 1],
            fit.weights[r : r + 1],
            fit.means[r : r + 1],
            fit.variances[r : r + 1],
            prior,
        )
        nk = resp[0].sum(axis=1)
        sk = (resp[0] * (x[r] - fit.means[r][:, None]) ** 2).sum(axis=1)
        np.testing.assert_allclose(
            fit.variances[r], (sk + 2 * prior[1]) / (nk + 2 * (prior[0] + 1))
        )


# ---------------------------------------------------------------------------- batching
def test_replicate_alone_equals_replicate_in_chunk() -> None:
    """Bit for bit, with several starts, odd n, collapsing and non-converging rows."""
    n = 37
    x = draw(11, ([0.5, 0.3, 0.2], [-1.0, 0.5, 2.0], [1.0, 0.5, 1.5]), (9, n))
    x[4, :3] = x[4, 3] + np.array([20.0, 20.0, 20.0])  # a far tie: collapses
    for kw in ({"n_init": 3}, {"n_init": 2, "max_iter": 15}, {"prior": (2.0, 0.5)}):
        chunk = mixture.em(x, 3, **kw)
        rev = mixture.em(x[::-1], 3, **kw)
        for r in range(x.shape[0]):
            alone = mixture.em(x[r : r + 1], 3, **kw)
            for name in FIELDS:
                a, b, c = (
                    getattr(alone, name)[0],
                    getattr(chunk, name)[r],
                    getattr(rev, name)[-1 - r],
                )
                assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), (kw, r, name)
                assert np.array_equal(a, c, equal_nan=a.dtype.kind == "f"), (kw, r, name)
            assert alone.reason[0] == chunk.reason[r]
    assert mixture.em(x, 3).collapsed[4]
    assert not mixture.em(x, 3, max_iter=15).converged.all()


# ------------------------------------------------------------------------- Monte Carlo
def test_monte_carlo_mean_of_estimates_is_the_truth() -> None:
    truth = ([0.3, 0.7], [-2.0, 2.0], [1.0, 1.0])
    x = draw(2026, truth, (400, 400))
    fit = mixture.em(x, 2)
    assert fit.converged.all()
    for name, true in zip(("weights", "means", "variances"), truth, strict=True):
        est = getattr(fit, name)
        mcse = est.std(axis=0, ddof=1) / np.sqrt(est.shape[0])
        assert (np.abs(est.mean(axis=0) - np.asarray(true)) < Z * mcse).all(), name


# ---------------------------------------------------------------------- small pieces
def test_logpdf_sample_and_arguments() -> None:
    w, mu, v = np.array([0.2, 0.8]), np.array([-1.0, 3.0]), np.array([0.5, 2.0])
    x = np.array([[-50.0, 0.0, 1.0], [2.0, 3.0, 400.0]])
    parts = [np.log(w[j]) + st.norm.logpdf(x, mu[j], np.sqrt(v[j])) for j in range(2)]
    want = np.logaddexp(*parts)  # finite in the far tails, where the densities underflow
    np.testing.assert_allclose(mixture.mixture_logpdf(x, w, mu, v), want, rtol=1e-12)
    per_row = np.broadcast_to(w, (2, 2)), np.broadcast_to(mu, (2, 2)), np.broadcast_to(v, (2, 2))
    np.testing.assert_allclose(mixture.mixture_logpdf(x, *per_row), want, rtol=1e-12)
    draws = mixture.sample(np.random.default_rng(0), w, mu, v, (200, 100))
    assert draws.shape == (200, 100)
    assert draws.mean() == pytest.approx(
        w @ mu, abs=Z * np.sqrt(w @ (v + mu**2) - (w @ mu) ** 2) / 141.4
    )
    for bad in (
        {"K": 0},
        {"n_init": 0},
        {"tol": 0.0},
        {"prior": (0.0, 1.0)},
        {"variance_floor": -1.0},
    ):
        with pytest.raises(ValueError):
            mixture.em(draws[:2], **{"K": 2, **bad})
