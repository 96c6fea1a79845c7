"""Pseudo-true values that run off to the edge of the parameter space, and the numerical
KL projection's accuracy, checked against projections computed here independently
(scipy.integrate.quad + scipy.optimize, not the code under test)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate as si
import scipy.stats as st

from mlesim.engine import simulate
from mlesim.errors import ConfigError
from mlesim.summarise import summarise
from tests.conftest import compose_config, make_scenario, study_spec


def test_normal_data_under_a_t_model_has_nu_star_infinite():
    """E_g log t(x; μ, σ, ν) rises all the way to ν = ∞ for normal g (the t's kurtosis
    exceeds 3 for every finite ν); before, the run reported ν* ≈ 3.6e7, wherever
    Nelder–Mead stopped, with bias −3.6e7 and crlb 3e-34."""
    scen = make_scenario("normal", {"mu": 1.5, "sigma2": 4.0}, model="student_t", n=20)
    target = scen.target()
    assert target[2] == math.inf
    np.testing.assert_allclose(target[:2], [1.5, 2.0], rtol=1e-12)
    assert scen.edge_params(target) == ["nu"]
    # the bound of (μ, σ) at ν = ∞ is the normal model's: σ²/n and σ²/(2n)
    np.testing.assert_allclose(scen.crlb(target)[:2], [4.0 / 20, 4.0 / 40], rtol=1e-12)
    assert math.isnan(scen.crlb(target)[2])


def _expected_t_loglik(g, theta) -> float:
    """∫ g(x) log t(x; μ, σ, ν) dx by scipy's quad, split at g's median and at μ."""
    mu, sigma, nu = theta

    def f(x):
        return g.pdf(x) * st.t.logpdf(x, nu, mu, sigma)

    pts = [-np.inf, *sorted({float(g.median()), float(mu)}), np.inf]
    return sum(
        si.quad(f, a, b, epsabs=1e-14, epsrel=1e-14, limit=200)[0]
        for a, b in zip(pts[:-1], pts[1:], strict=True)
    )


def test_t_projection_of_laplace_data_is_a_maximum_of_an_independent_objective():
    """At θ* the gradient of E_g log t (quad + scipy's t density, central differences)
    vanishes and every step away lowers it. Before, the quadrature had no break at the
    Laplace's kink and returned NaN away from the start, so Nelder–Mead stayed at
    μ* ≈ 1.003 (the truth's centre is 0)."""
    g = st.laplace(0.0, 1.0)
    scen = make_scenario("laplace", {"mu": 0.0, "b": 1.0}, model="student_t", n=20)
    target = scen.target()
    assert target[0] == 0.0  # symmetric truth and model
    h = 1e-4 * np.maximum(np.abs(target), 1.0)
    at = _expected_t_loglik(g, target)
    for j in range(3):
        step = np.eye(3)[j] * h[j]
        up, down = _expected_t_loglik(g, target + step), _expected_t_loglik(g, target - step)
        assert abs(up - down) / (2 * h[j]) < 1e-7, j
        assert up < at and down < at, j


def test_a_projection_with_no_finite_value_is_still_refused():
    scen = make_scenario("cauchy", {"mu": 0.0, "sigma": 1.0}, model="normal")
    with pytest.raises(ConfigError) as err:
        scen.check_estimand()
    assert err.value.key == "model"


def test_summary_reports_an_edge_estimand_as_inf_and_studies_the_rest():
    from omegaconf import OmegaConf

    config = OmegaConf.to_container(compose_config([]), resolve=True)
    config.pop("hydra", None)
    spec = study_spec(
        config,
        n=[40],
        replications=200,
        truth={"family": "normal", "params": {"mu": 0.0, "sigma2": 1.0}},
        model="student_t",
        estimators={"mle": {"kind": "mle"}, "median": {"kind": "median"}},
    )
    out = summarise(spec, simulate(spec), extended=True).set_index(["estimator", "param"])
    nu = out.loc[("mle", "nu")]
    assert nu["true_value"] == math.inf and bool(nu["estimand_on_edge"])
    for col in ("bias", "rel_bias", "mse", "coverage", "crlb", "efficiency"):
        assert math.isnan(nu[col]), col
    for key in (("mle", "mu"), ("mle", "sigma"), ("median", "mu")):
        row = out.loc[key]
        assert np.isfinite([row["bias"], row["coverage"], row["crlb"]]).all(), key
        assert bool(row["misspecified"]) and not bool(row["estimand_on_edge"])
    assert out.loc[("mle", "mu"), "true_value"] == 0.0
    assert math.isnan(out.loc[("mle", "mu"), "rel_bias"])  # θ* = 0: undefined, not 1e15
