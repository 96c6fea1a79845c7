"""Tests of mlesim.scenarios: pseudo-true targets, contamination and sampling."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import Z, make_scenario, variance_mcse

from mlesim.errors import ConfigError
from mlesim.study import validate

OUTLIERS = {"family": "normal", "params": {"mu": 10.0, "sigma2": 1.0}, "fraction": 0.1}


# ------------------------------------------------------------------- pseudo-true
def test_normal_model_on_exponential_truth():
    """KL projection onto the normal matches mean and variance: (1/rate, 1/rate²)."""
    scen = make_scenario("exponential", {"rate": 2.0}, model="normal")
    assert scen.misspecified
    np.testing.assert_allclose(scen.pseudo_true(), [0.5, 0.25], rtol=1e-12)
    np.testing.assert_allclose(scen.target(), [0.5, 0.25], rtol=1e-12)


def test_contaminated_normal_mixture_moments():
    """0.9 N(0, 1) + 0.1 N(10, 1): mean 1, variance 0.9·1 + 0.1·(1 + 100) − 1 = 10."""
    scen = make_scenario("normal", {"mu": 0.0, "sigma2": 1.0}, contamination=OUTLIERS)
    assert scen.misspecified
    np.testing.assert_allclose(scen.data_mean_var(), [1.0, 10.0], rtol=1e-12)
    np.testing.assert_allclose(scen.target(), [1.0, 10.0], rtol=1e-12)


@pytest.mark.parametrize(
    ("family", "params", "model", "contamination", "expected"),
    [
        ("exponential", {"rate": 2.0}, "normal", None, [0.5, 0.25]),
        ("poisson", {"lam": 3.0}, "exponential", None, [1.0 / 3.0]),
        ("bernoulli", {"p": 0.3}, "poisson", None, [0.3]),
    ],
)
def test_numeric_projection_agrees_with_project_moments(
    family, params, model, contamination, expected
):
    scen = make_scenario(family, params, model=model, contamination=contamination)
    closed = scen.pseudo_true()
    np.testing.assert_allclose(closed, expected, rtol=1e-12)
    np.testing.assert_allclose(scen._numeric_projection(), closed, rtol=1e-6)


def test_expect_under_contamination_matches_the_mixture_moments():
    """scipy ``expect`` of x and x² under (1 − ε) g + ε h, the input of the numeric path."""
    scen = make_scenario("normal", {"mu": 0.0, "sigma2": 1.0}, contamination=OUTLIERS)
    assert np.isclose(scen.expect(lambda x: x), 1.0, rtol=1e-10)
    assert np.isclose(scen.expect(lambda x: x**2), 10.0 + 1.0, rtol=1e-10)


def test_estimand_choices():
    well = make_scenario("normal", {"mu": 1.0, "sigma2": 2.0}, estimand="truth")
    np.testing.assert_array_equal(well.target(), [1.0, 2.0])
    assert not well.misspecified
    same = make_scenario("normal", {"mu": 1.0, "sigma2": 2.0}, estimand="pseudo_true")
    np.testing.assert_allclose(same.target(), [1.0, 2.0], rtol=1e-12)
    with pytest.raises(ConfigError) as info:
        make_scenario("exponential", {"rate": 2.0}, model="normal", estimand="truth")
    assert info.value.key == "estimand"


def test_truth_estimand_under_contamination_is_the_bulk_parameter():
    """With outliers, 'truth' targets the clean θ (bias = damage done by the outliers);
    'auto' the KL projection of the mixture."""
    kw = {"contamination": OUTLIERS}
    clean = make_scenario("normal", {"mu": 0.0, "sigma2": 1.0}, estimand="truth", **kw)
    np.testing.assert_array_equal(clean.target(), [0.0, 1.0])
    auto = make_scenario("normal", {"mu": 0.0, "sigma2": 1.0}, **kw)
    np.testing.assert_allclose(auto.target(), [1.0, 10.0], rtol=1e-12)


@pytest.mark.parametrize(
    ("family", "params", "expected"),
    [
        # N(0, 4): μ* = median = 0, b* = E|X| = σ √(2/π)
        ("normal", {"mu": 0.0, "sigma2": 4.0}, [0.0, 2.0 * np.sqrt(2.0 / np.pi)]),
        # Exp(1): μ* = median = log 2, b* = E|X − log 2| = log 2
        ("exponential", {"rate": 1.0}, [np.log(2.0), np.log(2.0)]),
    ],
)
def test_laplace_projection_is_median_and_mean_absolute_deviation(family, params, expected):
    """The Laplace log-density has a kink at μ, which quadrature must not step over:
    KL projection (μ*, b*) = (median, E|X − median|), to 1e-7."""
    scen = make_scenario(family, params, model="laplace")
    np.testing.assert_allclose(scen.target(), expected, rtol=1e-7, atol=1e-7)


def test_crlb_is_the_inverse_information_over_n():
    scen = make_scenario("normal", {"mu": 0.0, "sigma2": 2.0}, n=8)
    np.testing.assert_allclose(scen.crlb(scen.target()), [2.0 / 8, 2 * 4.0 / 8], rtol=1e-12)
    out = scen.crlb(scen.target(), np.array([False, True]))
    assert np.isnan(out[0]) and np.isclose(out[1], 1.0)


# ----------------------------------------------------------------------- sampling
def test_contaminated_fraction_and_bulk(rng):
    """With far-away contamination the outlier share is Binomial: within 4 MCSE of ε."""
    far = {"family": "normal", "params": {"mu": 1000.0, "sigma2": 1.0}, "fraction": 0.2}
    scen = make_scenario("normal", {"mu": 0.0, "sigma2": 1.0}, n=50, contamination=far)
    x = scen.sample(np.random.SeedSequence(5), 2_000)["x"]
    assert x.shape == (2_000, 50)
    out = x > 500
    mcse = np.sqrt(0.2 * 0.8 / x.size)
    assert abs(out.mean() - 0.2) < Z * mcse
    bulk = x[~out]
    assert abs(bulk.mean()) < Z * bulk.std(ddof=1) / np.sqrt(bulk.size)
    assert abs(x[out].mean() - 1000.0) < Z * x[out].std(ddof=1) / np.sqrt(out.sum())


def test_contaminated_sample_has_the_mixture_moments():
    scen = make_scenario("normal", {"mu": 0.0, "sigma2": 1.0}, n=100, contamination=OUTLIERS)
    x = scen.sample(np.random.SeedSequence(11), 2_000)["x"].ravel()
    mean, var = scen.data_mean_var()
    assert abs(x.mean() - mean) < Z * x.std(ddof=1) / np.sqrt(x.size)
    v, mcse = variance_mcse(x)
    assert abs(v - var) < Z * mcse


@pytest.mark.parametrize("contamination", [None, OUTLIERS])
def test_first_rows_do_not_depend_on_the_number_of_rows(contamination):
    scen = make_scenario("normal", {"mu": 0.0, "sigma2": 1.0}, n=7, contamination=contamination)
    ss = np.random.SeedSequence(3, spawn_key=(1, 2))
    few = scen.sample(ss, 5)["x"]
    many = scen.sample(np.random.SeedSequence(3, spawn_key=(1, 2)), 12)["x"]
    np.testing.assert_array_equal(many[:5], few)
    other = scen.sample(np.random.SeedSequence(3, spawn_key=(1, 3)), 5)["x"]
    assert not np.array_equal(other, few)


# ------------------------------------------------------------------- config keys
@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"model": "nosuch"}, "model"),
        ({"contamination": {**OUTLIERS, "fraction": 1.0}}, "contamination.fraction"),
        ({"contamination": {**OUTLIERS, "fraction": -0.1}}, "contamination.fraction"),
        ({"contamination": {**OUTLIERS, "family": "nosuch"}}, "contamination.family"),
        (
            {"contamination": {**OUTLIERS, "params": {"mu": 0.0, "sigma2": 0.0}}},
            "contamination.params.sigma2",
        ),
    ],
)
def test_bad_scenario_names_the_key(kwargs, key):
    with pytest.raises(ConfigError) as info:
        make_scenario("normal", {"mu": 0.0, "sigma2": 1.0}, **kwargs)
    assert info.value.key == key


def test_zero_fraction_is_no_contamination():
    scen = make_scenario(
        "normal", {"mu": 0.0, "sigma2": 1.0}, contamination={**OUTLIERS, "fraction": 0}
    )
    assert scen.contamination is None and not scen.misspecified


@pytest.mark.parametrize("model", ["normal", "laplace"])
def test_a_pseudo_true_value_that_does_not_exist_is_refused_before_the_run(model):
    """Cauchy data have no finite variance (normal model) and no finite E|X − μ|
    (laplace model): E_g log f = −∞ for every θ, so there is no KL projection."""
    config = {
        "truth": {"family": "cauchy", "params": {"mu": 0.0, "sigma": 1.0}},
        "model": model,
        "n": [10],
        "estimators": {"mle": {"kind": "mle"}},
    }
    with pytest.raises(ConfigError) as info:
        validate(config)
    assert info.value.key == "model" and "no pseudo-true value" in info.value.message
    # a model with tails as heavy as the data's has one: the truth itself
    scen = make_scenario("cauchy", {"mu": 0.0, "sigma": 1.0}, model="student_t")
    scen.check_estimand()
    np.testing.assert_allclose(scen.target(), [0.0, 1.0, 1.0], atol=1e-6)
