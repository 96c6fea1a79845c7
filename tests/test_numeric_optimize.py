"""Tests of mlesim.optimize: the batched safeguarded Newton iterations and their statuses."""

from __future__ import annotations

import numpy as np
import pytest

from mlesim import optimize
from mlesim.families.smooth import newton_1d, transform_derivs


def quadratic(centres: np.ndarray, curv: np.ndarray):
    """f(z) = −½ (z − c)ᵀ A (z − c) per row; maximum at c."""

    def fun(z, rows):
        d = z - centres[rows]
        a = curv[rows]
        f = -0.5 * np.einsum("mi,mij,mj->m", d, a, d)
        return f, -np.einsum("mij,mj->mi", a, d), -a

    return fun


def test_concave_quadratics_converge_in_one_step():
    rng = np.random.default_rng(0)
    c = rng.normal(size=(50, 3))
    m = rng.normal(size=(50, 3, 3))
    a = m @ np.swapaxes(m, 1, 2) + np.eye(3)
    res = optimize.newton_maximise(quadratic(c, a), np.zeros((50, 3)))
    assert res.converged.all()
    np.testing.assert_allclose(res.z, c, atol=1e-12)
    assert res.n_iter.max() <= 2


def test_rows_are_independent_and_only_active_rows_are_evaluated():
    seen = []
    c = np.array([[0.0], [5.0], [-3.0]])
    base = quadratic(c, np.ones((3, 1, 1)))

    def fun(z, rows):
        seen.append(rows.copy())
        return base(z, rows)

    z0 = np.array([[0.0], [0.0], [0.0]])  # row 0 starts at its maximum
    res = optimize.newton_maximise(fun, z0)
    np.testing.assert_allclose(res.z, c)
    assert all(0 not in rows for rows in seen[1:])


def test_non_concave_start_still_climbs():
    """f = −z⁴/4 + z²/2 has maxima at ±1 and a minimum at 0: from 0.2 (H > 0) the
    modified step goes uphill to +1."""

    def fun(z, rows):
        return -(z[:, 0] ** 4) / 4 + z[:, 0] ** 2 / 2, (z - z**3), (1 - 3 * z**2)[:, :, None]

    res = optimize.newton_maximise(fun, np.array([[0.2], [-0.3], [3.0]]))
    assert res.converged.all()
    np.testing.assert_allclose(res.z[:, 0], [1.0, -1.0, 1.0], atol=1e-12)


def test_saddle_point_is_not_reported_as_a_maximum():
    def fun(z, rows):
        f = z[:, 0] ** 2 - z[:, 1] ** 2
        g = np.column_stack([2 * z[:, 0], -2 * z[:, 1]])
        return f, g, np.broadcast_to(np.diag([2.0, -2.0]), (len(rows), 2, 2)).copy()

    res = optimize.newton_maximise(fun, np.zeros((1, 2)))
    assert res.status[0] == optimize.NOT_MAXIMUM
    assert "not a maximum" in res.reasons()[0]


def test_unbounded_objective_stops_at_the_limit_as_a_boundary():
    """f = −exp(−z) increases for ever: the iterate runs to the upper limit."""

    def fun(z, rows):
        e = np.exp(-z[:, 0])
        return -e, e[:, None], -e[:, None, None]

    res = optimize.newton_maximise(fun, np.zeros((2, 1)), upper=np.array([20.0]))
    assert np.all(res.status == optimize.BOUNDARY)
    assert np.all(res.z[:, 0] > 20.0)
    capped = optimize.newton_maximise(fun, np.zeros((1, 1)), maxiter=3)
    assert capped.status[0] == optimize.MAXITER and capped.n_iter[0] == 3


def test_non_finite_start_fails_without_raising():
    res = optimize.newton_maximise(quadratic(np.zeros((2, 1)), np.ones((2, 1, 1))),
                                   np.array([[np.nan], [1.0]]))  # fmt: skip
    assert res.status[0] == optimize.NONFINITE and res.converged[1]


def test_step_halving_rejects_steps_into_non_finite_regions():
    """log-barrier f = log z − z: a full Newton step from 3 lands at z < 0 (f = NaN);
    halving keeps the iterate inside and converges to 1."""

    def fun(z, rows):
        x = z[:, 0]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.log(x) - x, (1 / x - 1)[:, None], (-1 / x**2)[:, None, None]

    res = optimize.newton_maximise(fun, np.array([[3.0]]))
    assert res.converged[0]
    assert res.z[0, 0] == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_ascent_direction_is_newton_where_concave_and_uphill_everywhere(k):
    rng = np.random.default_rng(k)
    m = rng.normal(size=(200, k, k))
    h = m + np.swapaxes(m, 1, 2)
    g = rng.normal(size=(200, k))
    d, negdef = optimize.ascent_direction(g, h)
    assert np.all(np.einsum("mi,mi->m", g, d) > 0)
    np.testing.assert_array_equal(negdef, np.all(np.linalg.eigvalsh(h) < 0, axis=1))
    newton = np.linalg.solve(-h[negdef], g[negdef][..., None])[..., 0]
    np.testing.assert_allclose(d[negdef], newton, rtol=1e-8, atol=1e-10)


def test_transform_derivs_is_the_chain_rule():
    """g_z, H_z of f(θ) = θ₁² θ₂ + θ₁ with θ₁ = exp z₁ (positive), θ₂ = expit z₂ (unit)."""
    z = np.array([[0.3, -0.4]])
    t1, t2 = np.exp(z[0, 0]), 1 / (1 + np.exp(-z[0, 1]))

    def f_of_z(z1, z2):
        a, b = np.exp(z1), 1 / (1 + np.exp(-z2))
        return a**2 * b + a

    theta = np.array([[t1, t2]])
    g = np.array([[2 * t1 * t2 + 1, t1**2]])
    h = np.array([[[2 * t2, 2 * t1], [2 * t1, 0.0]]])
    gz, hz = transform_derivs(theta, g, h, ["positive", "unit"])
    e = 1e-5
    num_g = [
        (f_of_z(z[0, 0] + e, z[0, 1]) - f_of_z(z[0, 0] - e, z[0, 1])) / (2 * e),
        (f_of_z(z[0, 0], z[0, 1] + e) - f_of_z(z[0, 0], z[0, 1] - e)) / (2 * e),
    ]
    np.testing.assert_allclose(gz[0], num_g, rtol=1e-8)
    e = 1e-4
    h11 = (f_of_z(z[0, 0] + e, z[0, 1]) - 2 * f_of_z(*z[0]) + f_of_z(z[0, 0] - e, z[0, 1])) / e**2
    h22 = (f_of_z(z[0, 0], z[0, 1] + e) - 2 * f_of_z(*z[0]) + f_of_z(z[0, 0], z[0, 1] - e)) / e**2
    np.testing.assert_allclose(np.diag(hz[0]), [h11, h22], rtol=1e-6)


def test_newton_1d_on_a_positive_parameter():
    """Maximise a log α − b α (gamma-like): α̂ = a / b, iterated on log α."""
    a, b = np.array([2.0, 0.5, 30.0]), np.array([1.0, 4.0, 0.1])

    def fun(alpha, rows):
        return (
            a[rows] * np.log(alpha) - b[rows] * alpha,
            a[rows] / alpha - b[rows],
            -a[rows] / alpha**2,
        )

    est, res = newton_1d(fun, np.ones(3))
    assert res.converged.all()
    np.testing.assert_allclose(est, a / b, rtol=1e-12)
