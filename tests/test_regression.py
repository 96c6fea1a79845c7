"""The batched regression estimators of mlesim.regression: each equals an independent
oracle (statsmodels, scikit-learn, or scipy.optimize on the same objective) replicate by
replicate; separation is flagged where the data separate and nowhere else; derivatives
match numerical differentiation; a replicate's result does not depend on the rest of
its chunk; bad replicates are flagged without raising or warning."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest
import scipy.stats as st
import statsmodels.api as sm
from scipy import optimize
from scipy.optimize import linprog
from scipy.special import expit, log_expit
from sklearn.linear_model import Lasso, LogisticRegression, Ridge
from sklearn.utils.class_weight import compute_sample_weight
from statsmodels.regression.quantile_regression import QuantReg

from mlesim import regression as rg

# any warning raised by the code under test fails the test (oracles run under `quiet`)
pytestmark = pytest.mark.filterwarnings("error")

R, N = 30, 120


def quiet(fn: Callable, *args, **kwargs):
    """Run an oracle with its own warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def design(seed: int, r: int = R, n: int = N, d: int = 3) -> np.ndarray:
    """(r, n, d): an intercept column and d − 1 standard normal covariates."""
    rng = np.random.default_rng(seed)
    return np.concatenate([np.ones((r, n, 1)), rng.normal(size=(r, n, d - 1))], axis=2)


def linear_data(seed: int, noise: str = "normal", r: int = R, n: int = N):
    rng = np.random.default_rng(seed + 1000)
    x = design(seed, r, n)
    eta = x @ np.array([0.5, 1.0, -0.7])
    draws = {
        "normal": lambda: rng.normal(size=(r, n)),
        "laplace": lambda: rng.laplace(size=(r, n)),
        "t3": lambda: rng.standard_t(3, size=(r, n)),
        "contaminated": lambda: np.where(
            rng.random((r, n)) < 0.1, rng.normal(8, 1, (r, n)), rng.normal(size=(r, n))
        ),
    }
    return x, eta + draws[noise]()


def binary_data(seed: int, r: int = R, n: int = N, coef=(-0.3, 1.0, -0.8)):
    rng = np.random.default_rng(seed + 2000)
    x = design(seed, r, n)
    y = (rng.random((r, n)) < expit(x @ np.array(coef))).astype(float)
    return x, y


def multinomial_data(seed: int, k: int = 3, r: int = R, n: int = N):
    rng = np.random.default_rng(seed + 3000)
    x = design(seed, r, n)
    coef = np.array([[0.2, 1.0, -0.5], [-0.3, -0.8, 0.9], [0.1, 0.5, 0.5]])[: k - 1]
    s = np.concatenate([np.zeros((r, n, 1)), np.einsum("rnd,kd->rnk", x, coef)], axis=2)
    p = np.exp(s - s.max(axis=2, keepdims=True))
    p /= p.sum(axis=2, keepdims=True)
    y = (rng.random((r, n, 1)) > np.cumsum(p, axis=2)).sum(axis=2)
    return x, np.minimum(y, k - 1).astype(float)


def assert_ok(fit) -> None:
    assert fit.converged.all(), set(fit.reason)
    assert all(reason == "" for reason in fit.reason)


def numeric_gradient(f: Callable, b: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Central differences of a scalar function of a vector."""
    out = np.empty(b.size)
    for j in range(b.size):
        e = np.zeros(b.size)
        e[j] = h
        out[j] = (f(b + e) - f(b - e)) / (2 * h)
    return out


def numeric_jacobian(g: Callable, b: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Central differences of a vector function of a vector (columns = directions)."""
    cols = []
    for j in range(b.size):
        e = np.zeros(b.size)
        e[j] = h
        cols.append((g(b + e) - g(b - e)) / (2 * h))
    return np.stack(cols, axis=1)


def minimise(f: Callable, b0: np.ndarray) -> np.ndarray:
    """scipy.optimize on a smooth objective: BFGS with 3-point finite-difference
    gradients and a tight gradient tolerance, polished by up to three Newton steps on
    central-difference derivatives (kept while they shrink the gradient and do not raise
    f beyond rounding): BFGS alone stops ~1e-7 short along the flat directions of
    separated data."""
    b = quiet(optimize.minimize, f, b0, method="BFGS", jac="3-point", options={"gtol": 1e-10}).x
    grad = lambda t: numeric_gradient(f, t, 1e-4)  # noqa: E731
    for _ in range(3):
        g = grad(b)
        new = b - np.linalg.solve(numeric_jacobian(grad, b, 1e-4), g)
        if not (np.abs(grad(new)).max() < np.abs(g).max() and f(new) <= f(b) + 1e-12 * abs(f(b))):
            break
        b = new
    return b


# --------------------------------------------------------------------- least squares
def test_ols_matches_statsmodels_and_hc0_sandwich():
    x, y = linear_data(1)
    fit = rg.ols(x, y)
    assert_ok(fit)
    assert fit.n_iter.tolist() == [0] * R
    resid = y - np.einsum("rnd,rd->rn", x, fit.beta)
    meat = np.einsum("rn,rni,rnj->rij", resid**2, x, x)
    hc0 = rg.sandwich(fit.info, meat)
    for r in range(R):
        res = sm.OLS(y[r], x[r]).fit()
        np.testing.assert_allclose(fit.beta[r], res.params, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(fit.rss[r], res.ssr, rtol=1e-10)
        scale = fit.rss[r] / (N - 3)
        np.testing.assert_allclose(scale * np.linalg.inv(fit.info[r]), res.cov_params(), rtol=1e-9)
        np.testing.assert_allclose(hc0[r], res.get_robustcov_results("HC0").cov_params(), rtol=1e-9)


def test_ols_flags_a_singular_design_without_warning():
    x, y = linear_data(2)
    x[3, :, 2] = 1.7  # a constant covariate beside the intercept
    x[5, :, 2] = 2 * x[5, :, 1]  # collinear covariates
    y[7, 4] = np.nan  # one bad data set
    fit = rg.ols(x, y)
    bad = [3, 5, 7]
    assert not fit.converged[bad].any()
    assert fit.reason[3] == fit.reason[5] == "singular design (rank < d)"
    assert fit.reason[7] == "non-finite data"
    good = np.setdiff1d(np.arange(R), bad)
    assert fit.converged[good].all()
    np.testing.assert_allclose(fit.beta[0], sm.OLS(y[0], x[0]).fit().params, rtol=1e-10)
    for f in (rg.huber_regression, rg.lad, lambda a, b: rg.t_regression(a, b, 4.0)):
        res = f(x, y)
        assert list(res.reason[bad]) == list(fit.reason[bad])
        assert res.converged[good].all()


def test_ridge_matches_sklearn():
    x, y = linear_data(3)
    for alpha in (0.5, 25.0):
        fit = rg.ridge(x, y, alpha)
        assert_ok(fit)
        penalty = np.diag([0.0, 1.0, 1.0])
        np.testing.assert_allclose(fit.info, np.einsum("rni,rnj->rij", x, x) + alpha * penalty)
        for r in range(R):
            est = Ridge(alpha=alpha, fit_intercept=True).fit(x[r, :, 1:], y[r])
            np.testing.assert_allclose(fit.beta[r, 0], est.intercept_, rtol=1e-8, atol=1e-8)
            np.testing.assert_allclose(fit.beta[r, 1:], est.coef_, rtol=1e-8, atol=1e-8)
            pred = est.predict(x[r, :, 1:])
            np.testing.assert_allclose(fit.rss[r], ((y[r] - pred) ** 2).sum(), rtol=1e-8)


def test_ridge_singular_without_penalty_and_intercept_check():
    x, y = linear_data(4)
    x[2, :, 2] = 3.0
    fit = rg.ridge(x, y, 0.0)
    assert not fit.converged[2] and fit.reason[2] == "singular design (rank < d)"
    assert fit.converged[np.arange(R) != 2].all()
    np.testing.assert_allclose(fit.beta[0], rg.ols(x, y).beta[0], rtol=1e-9)
    assert rg.ridge(x, y, 1.0).converged.all()  # the penalty makes it solvable
    with pytest.raises(ValueError, match="intercept"):
        rg.ridge(x[:, :, 1:], y, 1.0)


def test_lasso_matches_sklearn_with_identical_zeros():
    rng = np.random.default_rng(5)
    x = np.concatenate([np.ones((R, N, 1)), rng.normal(size=(R, N, 5))], axis=2)
    x[..., 2] += 0.6 * x[..., 1]  # correlated covariates: more sweeps
    y = x @ np.array([1.0, 1.5, 0.0, -0.8, 0.0, 0.05]) + rng.normal(size=(R, N))
    n_zero = 0
    for alpha in (0.02, 0.15):
        fit = rg.lasso(x, y, alpha)
        assert_ok(fit)
        assert fit.info is None
        for r in range(R):
            est = Lasso(alpha=alpha, fit_intercept=True, tol=1e-12, max_iter=100000)
            est = quiet(est.fit, x[r, :, 1:], y[r])
            np.testing.assert_allclose(fit.beta[r, 0], est.intercept_, rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(fit.beta[r, 1:], est.coef_, rtol=1e-6, atol=1e-6)
            np.testing.assert_array_equal(fit.beta[r, 1:] == 0.0, est.coef_ == 0.0)
        n_zero += int((fit.beta[:, 1:] == 0).sum())
    assert 0 < n_zero < 2 * R * 5  # the zero-pattern check was not vacuous
    np.testing.assert_allclose(rg.lasso(x, y, 0.0).beta, rg.ols(x, y).beta, rtol=1e-8, atol=1e-8)
    assert (rg.lasso(x, y, 100.0).beta[:, 1:] == 0.0).all()


# ------------------------------------------------------------------------------- LAD
def lad_unique(x: np.ndarray, y: np.ndarray, beta: np.ndarray) -> bool:
    """The LAD minimiser is unique when, at the vertex fitting the d smallest residuals,
    the optimality multipliers u = −X_S⁻ᵀ Σ_{i∉S} sign(r_i) x_i lie strictly inside
    (−1, 1) (Koenker 2005, §2.2)."""
    d = x.shape[1]
    r = y - x @ beta
    basis = np.argsort(np.abs(r))[:d]
    rest = np.setdiff1d(np.arange(len(y)), basis)
    u = -np.linalg.solve(x[basis].T, x[rest].T @ np.sign(r[rest]))
    return bool(np.abs(u).max() < 1 - 1e-6)


def test_lad_reaches_the_exact_minimum_and_matches_quantreg():
    x, y = linear_data(6, "laplace")
    fit = rg.lad(x, y)
    assert_ok(fit)
    n_unique = 0
    for r in range(R):
        res = quiet(QuantReg(y[r], x[r]).fit, q=0.5, p_tol=1e-10, max_iter=5000)
        ours = np.abs(y[r] - x[r] @ fit.beta[r]).sum()
        theirs = np.abs(y[r] - x[r] @ res.params).sum()
        assert ours <= theirs * (1 + 1e-9)
        np.testing.assert_allclose(fit.b[r], ours / N, rtol=1e-12)
        if lad_unique(x[r], y[r], fit.beta[r]):
            n_unique += 1
            np.testing.assert_allclose(fit.beta[r], res.params, atol=1e-4)
        # the vertex property: d residuals are 0
        assert (np.abs(y[r] - x[r] @ fit.beta[r]) < 1e-9).sum() >= 3
    assert n_unique >= R - 2
    np.testing.assert_allclose(
        fit.info, np.einsum("rni,rnj->rij", x, x) / fit.b[:, None, None] ** 2
    )


def test_lad_against_a_brute_force_vertex_search():
    """Small n: the minimum over all C(n, d) vertices."""
    from itertools import combinations

    x, y = linear_data(7, "laplace", r=6, n=14)
    fit = rg.lad(x, y)
    assert_ok(fit)
    for r in range(6):
        best = np.inf
        for s in combinations(range(14), 3):
            xs = x[r, list(s)]
            if abs(np.linalg.det(xs)) < 1e-12:
                continue
            b = np.linalg.solve(xs, y[r, list(s)])
            best = min(best, np.abs(y[r] - x[r] @ b).sum())
        ours = np.abs(y[r] - x[r] @ fit.beta[r]).sum()
        np.testing.assert_allclose(ours, best, rtol=1e-12)


# ----------------------------------------------------------------------------- Huber
def test_huber_matches_scipy():
    x, y = linear_data(8, "contaminated")
    delta = 1.345
    fit = rg.huber_regression(x, y, delta)
    assert_ok(fit)

    def objective(b, r):
        res = y[r] - x[r] @ b
        a = np.abs(res)
        return np.where(a <= delta, 0.5 * res**2, delta * a - 0.5 * delta**2).sum()

    def gradient(b, r):
        return -x[r].T @ np.clip(y[r] - x[r] @ b, -delta, delta)

    for r in range(R):
        b0 = np.linalg.lstsq(x[r], y[r], rcond=None)[0]
        res = optimize.minimize(
            objective, b0, args=(r,), jac=gradient, method="BFGS", options={"gtol": 1e-11}
        )
        np.testing.assert_allclose(fit.beta[r], res.x, atol=1e-6)
        assert objective(fit.beta[r], r) <= res.fun + 1e-9
        inside = np.abs(y[r] - x[r] @ fit.beta[r]) <= delta
        np.testing.assert_allclose(fit.info[r], x[r, inside].T @ x[r, inside])
    # a far smaller delta changes the answer (the test can see delta) and still converges
    small = rg.huber_regression(x, y, 0.01)
    assert_ok(small)
    assert np.abs(small.beta - fit.beta).max() > 1e-3
    np.testing.assert_allclose(rg.huber_regression(x, y, 1e6).beta, rg.ols(x, y).beta, rtol=1e-10)


# ------------------------------------------------------------------------------- t
def test_t_regression_matches_scipy_and_its_information():
    nu = 3.0
    x, y = linear_data(9, "t3", r=20)
    fit = rg.t_regression(x, y, nu)
    assert_ok(fit)
    assert fit.info.shape == (20, 4, 4)

    def negll(theta, r):
        s = np.exp(theta[-1])
        return -st.t.logpdf(y[r] - x[r] @ theta[:-1], nu, scale=s).sum()

    for r in range(20):
        b0 = np.linalg.lstsq(x[r], y[r], rcond=None)[0]
        s0 = np.sqrt(np.mean((y[r] - x[r] @ b0) ** 2))
        theta = minimise(lambda t, r=r: negll(t, r), np.r_[b0, np.log(s0)])
        np.testing.assert_allclose(fit.beta[r], theta[:-1], atol=1e-5)
        np.testing.assert_allclose(fit.scale[r], np.exp(theta[-1]), rtol=1e-5)
        ours = np.r_[fit.beta[r], np.log(fit.scale[r])]
        assert negll(ours, r) <= negll(theta, r) + 1e-9
        # observed information of (β, log s) = numerical Hessian of −ℓ
        grad = lambda t, r=r: numeric_gradient(lambda u: negll(u, r), t, 1e-4)  # noqa: E731
        hess = numeric_jacobian(grad, ours, 1e-4)
        np.testing.assert_allclose(fit.info[r], hess, rtol=1e-4, atol=1e-4 * np.abs(hess).max())


# -------------------------------------------------------------------------- logistic
def test_logistic_matches_statsmodels():
    x, y = binary_data(10)
    fit = rg.logistic(x, y)
    assert_ok(fit)
    for r in range(R):
        res = quiet(sm.Logit(y[r], x[r]).fit, method="newton", tol=1e-12, maxiter=100, disp=0)
        np.testing.assert_allclose(fit.beta[r], res.params, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(fit.info[r], np.linalg.inv(res.cov_params()), rtol=1e-6)


def test_weighted_logistic_matches_sklearn():
    x, y = binary_data(11, coef=(-1.5, 1.0, -0.8))  # unbalanced classes
    sw = np.stack([compute_sample_weight("balanced", y[r]) for r in range(R)])
    assert np.ptp(sw) > 0.5
    fit = rg.logistic(x, y, sample_weight=sw)
    assert_ok(fit)
    for r in range(R):
        est = LogisticRegression(C=np.inf, solver="newton-cholesky", tol=1e-12, max_iter=1000)
        est = quiet(est.fit, x[r, :, 1:], y[r], sample_weight=sw[r])
        np.testing.assert_allclose(fit.beta[r, 0], est.intercept_[0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(fit.beta[r, 1:], est.coef_[0], rtol=1e-5, atol=1e-5)
        p = expit(x[r] @ fit.beta[r])
        np.testing.assert_allclose(fit.info[r], (x[r].T * (sw[r] * p * (1 - p))) @ x[r], rtol=1e-10)
    unweighted = rg.logistic(x, y)
    assert np.abs(unweighted.beta - fit.beta).max() > 0.1  # the weights matter


def separable_data(seed: int, n: int = 80):
    """Four replicates: complete separation, quasi-complete separation (ties at the
    boundary with both outcomes), one outcome only, and an ordinary overlapping one."""
    x, y = binary_data(seed, r=4, n=n)
    y[0] = (x[0, :, 1] > 0).astype(float)
    x[1, :6, 1] = 0.0
    y[1] = (x[1, :, 1] > 0).astype(float)
    y[1, :3] = 1.0  # the ties at x1 = 0 overlap, the rest separate
    y[2] = 1.0
    return x, y


@pytest.mark.parametrize("fitter", ["logistic", "focal"])
def test_separation_is_flagged_only_where_the_data_separate(fitter):
    f = rg.logistic if fitter == "logistic" else (lambda a, b: rg.focal_logistic(a, b, 2.0))
    x, y = separable_data(12)
    fit = f(x, y)
    for r in range(3):
        assert not fit.converged[r]
        assert fit.reason[r].startswith("separation"), fit.reason[r]
    assert fit.converged[3] and fit.reason[3] == ""
    # and never on ordinary data, including small and unbalanced samples
    for seed, n, coef in ((13, 120, (-0.3, 1.0, -0.8)), (14, 40, (-1.0, 1.5, 0.5))):
        xo, yo = binary_data(seed, n=n, coef=coef)
        assert_ok(f(xo, yo))


def lp_separated(x: np.ndarray, y: np.ndarray, k: int = 2) -> bool:
    """Linear-programming oracle for separation (Konis 2007): the classes separate
    (completely or quasi-completely) iff some B with entries in [−1, 1] scores every
    observation's own class at least as high as every other class, with a positive total
    margin: maximise Σ_i Σ_{c≠y_i} (S_{i y_i} − S_ic) subject to each term ≥ 0,
    S_ic = x_i'B_c, S_i0 = 0 (Albert & Anderson 1984)."""
    n, d = x.shape
    rows = []
    for i in range(n):
        for c in range(k):
            if c != y[i]:
                a = np.zeros((k - 1, d))
                if y[i] > 0:
                    a[int(y[i]) - 1] += x[i]
                if c > 0:
                    a[c - 1] -= x[i]
                rows.append(a.ravel())
    a = np.array(rows)
    res = linprog(-a.sum(axis=0), A_ub=-a, b_ub=np.zeros(len(a)), bounds=(-1, 1), method="highs")
    return bool(-res.fun > 1e-7)


@pytest.mark.parametrize("fitter", ["logistic", "focal", "softmax2", "softmax3"])
def test_separation_flags_equal_the_linear_programming_oracle(fitter):
    """Small samples with strong effects: many separate (some only quasi-completely,
    through the binary covariate), many do not; the flags must match exactly."""
    rng = np.random.default_rng(24)
    r, n = 60, 25
    x = np.concatenate(
        [np.ones((r, n, 1)), rng.normal(size=(r, n, 1)), (rng.random((r, n, 1)) < 0.3)], axis=2
    )
    k = 3 if fitter == "softmax3" else 2
    if k == 2:
        y = (rng.random((r, n)) < expit(x @ np.array([0.0, 2.5, 1.5]))).astype(float)
    else:
        s = np.concatenate([np.zeros((r, n, 1)), x @ np.array([[0, 2.0, 1], [0.5, -2, 1]]).T], 2)
        p = np.exp(s) / np.exp(s).sum(axis=2, keepdims=True)
        y = np.minimum((rng.random((r, n, 1)) > np.cumsum(p, axis=2)).sum(axis=2), 2).astype(float)
    fit = {
        "logistic": lambda: rg.logistic(x, y),
        "focal": lambda: rg.focal_logistic(x, y, 2.0),
        "softmax2": lambda: rg.softmax(x, y, 2),
        "softmax3": lambda: rg.softmax(x, y, 3),
    }[fitter]()
    oracle = np.array([lp_separated(x[i], y[i], k) for i in range(r)])
    flagged = np.array([reason.startswith("separation") for reason in fit.reason])
    assert 10 <= oracle.sum() <= r - 10  # both kinds are present
    np.testing.assert_array_equal(flagged, oracle)
    assert fit.converged[~oracle].all() and not fit.converged[oracle].any()


def test_firth_matches_scipy_and_is_finite_under_separation():
    x, y = binary_data(15, r=10, n=60)
    xs, ys = separable_data(12, 60)
    x, y = np.concatenate([x, xs]), np.concatenate([y, ys])
    fit = rg.firth_logistic(x, y)
    assert_ok(fit)
    assert np.isfinite(fit.beta).all() and np.abs(fit.beta).max() < 50

    def penalised(b, r):
        eta = x[r] @ b
        p = expit(eta)
        ll = st.bernoulli.logpmf(y[r], p).sum()
        info = (x[r].T * (p * (1 - p))) @ x[r]
        return -(ll + 0.5 * np.linalg.slogdet(info)[1])

    for r in range(len(y)):
        b = minimise(lambda t, r=r: penalised(t, r), np.zeros(3))
        np.testing.assert_allclose(fit.beta[r], b, atol=1e-6)
        assert penalised(fit.beta[r], r) <= penalised(b, r) + 1e-10
        p = expit(x[r] @ fit.beta[r])
        np.testing.assert_allclose(fit.info[r], (x[r].T * (p * (1 - p))) @ x[r], rtol=1e-10)
    # the exact Hessian used by the iteration
    _, grad, hess = rg.firth_objective(x[:3], y[:3], fit.beta[:3] + 0.3)
    for r in range(3):
        b = fit.beta[r] + 0.3
        np.testing.assert_allclose(
            grad[r], numeric_gradient(lambda t, r=r: penalised(t, r), b), rtol=1e-6, atol=1e-7
        )
        num = numeric_jacobian(
            lambda t, r=r: rg.firth_objective(x[r : r + 1], y[r : r + 1], t[None])[1][0], b
        )
        np.testing.assert_allclose(hess[r], num, rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------- focal
def test_focal_with_gamma_zero_is_logistic():
    x, y = binary_data(16)
    a, b = rg.focal_logistic(x, y, gamma=0.0), rg.logistic(x, y)
    assert_ok(a)
    np.testing.assert_allclose(a.beta, b.beta, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(a.info, b.info, rtol=1e-9)


def focal_objective(x: np.ndarray, y: np.ndarray, b: np.ndarray, gamma: float) -> float:
    """Σ −(1 − p_t)^γ log p_t written out directly (Lin et al. 2017), with p_t and
    1 − p_t computed without cancellation."""
    margin = np.where(y == 1, 1.0, -1.0) * (x @ b)
    return float(-(expit(-margin) ** gamma * log_expit(margin)).sum())


def test_focal_matches_scipy():
    gamma = 2.0
    x, y = binary_data(17, r=20)
    fit = rg.focal_logistic(x, y, gamma)
    assert_ok(fit)
    for r in range(20):
        b = minimise(lambda t, r=r: focal_objective(x[r], y[r], t, gamma), np.zeros(3))
        np.testing.assert_allclose(fit.beta[r], b, atol=1e-6)
    assert np.abs(fit.beta - rg.logistic(x, y).beta).max() > 1e-2  # γ matters


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
def test_focal_gradient_and_hessian_match_numerical_differentiation(gamma):
    x, y = binary_data(18, r=4, n=50)
    # include a far-off β where margins are large and negative: the Hessian is indefinite
    betas = np.array([[0.1, 0.5, -0.2], [0.0, 0.0, 0.0], [-2.0, 3.0, 1.0], [4.0, -6.0, 5.0]])
    value, grad, hess = rg.focal_loss(x, y, betas, gamma)
    for r in range(4):
        f = lambda t, r=r: focal_objective(x[r], y[r], t, gamma)  # noqa: E731
        np.testing.assert_allclose(value[r], f(betas[r]), rtol=1e-12)
        np.testing.assert_allclose(grad[r], numeric_gradient(f, betas[r]), rtol=1e-6, atol=1e-8)
        g = lambda t, r=r: rg.focal_loss(x[r : r + 1], y[r : r + 1], t[None], gamma)[1][0]  # noqa: E731
        np.testing.assert_allclose(hess[r], numeric_jacobian(g, betas[r]), rtol=1e-6, atol=1e-8)
    if gamma >= 2:
        assert (np.linalg.eigvalsh(hess)[:, 0] < 0).any()  # the non-convex region was tested


# --------------------------------------------------------------------------- softmax
def test_softmax_matches_statsmodels_mnlogit():
    k = 3
    x, y = multinomial_data(19, k)
    fit = rg.softmax(x, y, k)
    assert_ok(fit)
    assert fit.beta.shape == (R, k - 1, 3) and fit.info.shape == (R, 6, 6)
    for r in range(R):
        res = quiet(sm.MNLogit(y[r], x[r]).fit, method="newton", tol=1e-12, maxiter=100, disp=0)
        params = np.asarray(res.params).T  # (K − 1, d)
        np.testing.assert_allclose(fit.beta[r], params, rtol=1e-6, atol=1e-6)
        # statsmodels orders the covariance like params.T.ravel(), i.e. beta.reshape(-1)
        np.testing.assert_allclose(fit.info[r], np.linalg.inv(res.cov_params()), rtol=1e-6)


def test_softmax_with_two_classes_is_logistic_and_flags_separation():
    x, y = binary_data(20)
    two = rg.softmax(x, y, 2)
    np.testing.assert_allclose(two.beta[:, 0], rg.logistic(x, y).beta, rtol=1e-9, atol=1e-10)
    x3, y3 = multinomial_data(21, 4, r=4, n=80)
    y3[0][y3[0] == 2] = 1.0  # class 2 absent
    y3[1] = np.where(x3[1, :, 1] > 0.5, 3.0, np.where(x3[1, :, 1] < -0.5, 0.0, 1.0))
    fit = rg.softmax(x3, y3, 4)
    assert fit.reason[0].startswith("separation") and fit.reason[1].startswith("separation")
    assert fit.converged[2:].all()


# ------------------------------------------------------------------------- batching
FITTERS = {
    "ols": (lambda x, y: rg.ols(x, y), "normal"),
    "ridge": (lambda x, y: rg.ridge(x, y, 3.0), "normal"),
    "lasso": (lambda x, y: rg.lasso(x, y, 0.1), "normal"),
    "lad": (lambda x, y: rg.lad(x, y), "laplace"),
    "huber": (lambda x, y: rg.huber_regression(x, y), "contaminated"),
    "t": (lambda x, y: rg.t_regression(x, y, 3.0), "t3"),
    "logistic": (lambda x, y: rg.logistic(x, y), "binary"),
    "weighted": (lambda x, y: rg.logistic(x, y, sample_weight=1 + x[..., 2] ** 2), "binary"),
    "firth": (lambda x, y: rg.firth_logistic(x, y), "binary"),
    "focal": (lambda x, y: rg.focal_logistic(x, y, 2.0), "binary"),
    "softmax": (lambda x, y: rg.softmax(x, y, 3), "multinomial"),
}


@pytest.mark.parametrize("name", sorted(FITTERS))
def test_a_replicate_does_not_depend_on_its_chunk(name):
    fitter, kind = FITTERS[name]
    if kind == "binary":
        x, y = binary_data(22, r=12, n=60)
        xs, ys = separable_data(12, 60)
        x, y = np.concatenate([xs[:2], x]), np.concatenate([ys[:2], y])
    elif kind == "multinomial":
        x, y = multinomial_data(22, r=12, n=60)
    else:
        x, y = linear_data(22, kind, r=12, n=60)
    x[1, :, 2] = 1.0  # a singular design among the first five (fine when penalised)
    # distractors: the other replicates again, at other scales, which need step halving,
    # extrapolation and other IRLS schedules where the first five do not
    x2, y2 = x[5:].copy(), y[5:].copy()
    if kind in ("binary", "multinomial"):
        x2[..., 1:] *= 8.0
    else:
        y2 = 1e3 * y2 + np.where(np.arange(60) % 7 == 0, 1e5, 0.0)
    x, y = np.concatenate([x, x2]), np.concatenate([y, y2])
    whole, part = fitter(x, y), fitter(x[:5], y[:5])
    for field, a, b in zip(whole._fields, whole, part, strict=True):
        if a is None:
            assert b is None
        elif a.dtype == object:
            assert list(a[:5]) == list(b), field
        else:
            np.testing.assert_allclose(a[:5], b, rtol=1e-12, atol=1e-12, err_msg=field)
    penalised = name in ("ridge", "lasso")
    assert whole.reason[1] == ("" if penalised else "singular design (rank < d)")
    assert whole.converged[np.arange(len(y)) != 1].sum() >= (
        len(y) - 3 if kind == "binary" else len(y) - 1
    )


def test_sandwich_and_solve_stack():
    rng = np.random.default_rng(23)
    a = rng.normal(size=(5, 3, 3))
    a = a @ np.swapaxes(a, 1, 2) + np.eye(3)
    b = rng.normal(size=(5, 3, 3))
    b = b @ np.swapaxes(b, 1, 2)
    a[2] = 0.0  # singular row
    v = rg.sandwich(a, b)
    assert np.isnan(v[2]).all()
    for r in (0, 1, 3, 4):
        ai = np.linalg.inv(a[r])
        np.testing.assert_allclose(v[r], ai @ b[r] @ ai, rtol=1e-10)
    x, ok = rg.solve_stack(a, b[:, :, 0])
    assert ok.tolist() == [True, True, False, True, True]
    np.testing.assert_allclose(x[0], np.linalg.solve(a[0], b[0, :, 0]))
