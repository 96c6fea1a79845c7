"""The families machine learning fits (regressions, categorical, Gaussian mixtures):
their configuration, their draws against exact moments, the estimand of estimators that
assume another law, the bound, and the engine's invariants (rows independent of the
chunk, identical tables on 1 and 2 workers). Estimator-by-estimator oracles are in
test_contract.py."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st
from conftest import Z, assert_mc_close, study_spec

from mlesim import learning_theory as lt
from mlesim.engine import simulate
from mlesim.errors import ConfigError
from mlesim.families import get_family
from mlesim.scenarios import Scenario
from mlesim.summarise import summarise


def configured(name: str, **cfg):
    fam = get_family(name).configured(cfg)
    return fam, fam.check(cfg.get("params") or {})


def scenario(truth: dict, estimators: dict, n: int = 50, **extra) -> Scenario:
    config = {"model": None, "contamination": None, "estimand": "auto", **extra}
    return Scenario.from_config({**config, "truth": truth, "estimators": estimators}, n=n)


# ------------------------------------------------------------------ configuration
def test_list_and_named_coefficients_are_the_same_family():
    a, ta = configured("linear_regression", params={"beta": [1.0, 2.0, -1.0], "sigma2": 2.0})
    b, tb = configured(
        "linear_regression", params={"beta0": 1.0, "beta1": 2.0, "beta2": -1.0, "sigma2": 2.0}
    )
    assert a.params == b.params == ("beta0", "beta1", "beta2", "sigma2")
    np.testing.assert_array_equal(ta, tb)
    soft, theta = configured("softmax_regression", params={"beta": [[0, 1, 2], [3, 4, 5]]})
    assert soft.K == 3 and soft.d == 3 and soft.params[-1] == "beta2_2"
    np.testing.assert_array_equal(soft.beta(theta), [[0, 1, 2], [3, 4, 5]])


@pytest.mark.parametrize(
    ("name", "cfg", "key"),
    [
        (
            "linear_regression",
            {"params": {"beta": [1, 2], "sigma2": 1}, "noise": "cauchy"},
            "truth.noise",
        ),
        (
            "linear_regression",
            {"params": {"beta": [1, 2], "sigma2": 1}, "noise": "student_t", "nu": 2.0},
            "truth.nu",
        ),
        (
            "linear_regression",
            {"params": {"beta": [1, 2], "sigma2": 1}, "covariates": {"dist": "gamma"}},
            "truth.covariates.dist",
        ),
        (
            "logistic_regression",
            {"params": {"beta": [0, 1, 1]}, "covariates": {"dist": "uniform", "rho": 0.3}},
            "truth.covariates.rho",
        ),
        ("logistic_regression", {"params": {"beta0": 0, "beta2": 1}}, "truth.params.beta"),
        ("normal", {"params": {"mu": 0, "sigma2": 1}, "noise": "laplace"}, "truth.noise"),
    ],
)
def test_a_bad_setting_is_refused_naming_its_key(name, cfg, key):
    with pytest.raises(ConfigError) as info:
        configured(name, **cfg)
    assert info.value.key == key and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("name", "params", "key"),
    [
        ("categorical", {"p": [0.5, 0.3, 0.3]}, "truth.params.p"),
        ("categorical", {"p": [1.0, 0.0]}, "truth.params.p0"),
        (
            "gaussian_mixture",
            {"weights": [0.5, 0.5], "means": [1.0, -1.0], "variances": [1.0, 1.0]},
            "truth.params.means",
        ),
        (
            "gaussian_mixture",
            {"weights": [0.5, 0.6], "means": [-1.0, 1.0], "variances": [1.0, 1.0]},
            "truth.params.weights",
        ),
    ],
)
def test_bad_parameters_are_refused_naming_their_key(name, params, key):
    fam = get_family(name).configured({"params": params})
    with pytest.raises(ConfigError) as info:
        fam.check(params)
    assert info.value.key == key, info.value.key


def test_a_learning_family_is_its_own_model_and_takes_no_contamination():
    truth = {"family": "linear_regression", "params": {"beta": [1, 2], "sigma2": 1}}
    with pytest.raises(ConfigError) as info:
        scenario(truth, {"m": {"kind": "mle"}}, model="normal")
    assert info.value.key == "model"
    cont = {"family": "normal", "params": {"mu": 0, "sigma2": 9}, "fraction": 0.1}
    with pytest.raises(ConfigError) as info:
        scenario(truth, {"m": {"kind": "mle"}}, contamination=cont)
    assert info.value.key == "contamination"
    with pytest.raises(ConfigError) as info:  # a scalar truth, a learning model
        scenario({"family": "normal", "params": {"mu": 0, "sigma2": 1}}, {}, model="categorical")
    assert info.value.key == "model"


# ------------------------------------------------------------------ the draws
R, N = 4000, 50


def test_linear_draws_have_their_moments():
    """y = 1 + 2z + ε, z ~ N(0, 1): E y = 1, Var y = 4 + σ², for each noise; the noise's
    own variance is σ² and its kurtosis the law's (3, 6, and 3 + 6/(ν − 4) for t₇)."""
    for noise, nu, kurt in (("normal", None, 3.0), ("laplace", None, 6.0), ("student_t", 7.0, 5.0)):
        cfg = {"params": {"beta": [1.0, 2.0], "sigma2": 2.0}, "noise": noise, "nu": nu}
        fam, theta = configured("linear_regression", **cfg)
        data = fam.sample(np.random.default_rng(7), theta, (R, N))
        assert data["X"].shape == (R, N, 2) and (data["X"][..., 0] == 1).all()
        eps = data["y"] - data["X"] @ np.array([1.0, 2.0])
        assert_mc_close(data["y"].mean(axis=1), 1.0, f"{noise} E y")
        assert_mc_close(eps.var(axis=1, ddof=1), 2.0, f"{noise} Var ε")
        k = st.kurtosis(eps.ravel(), fisher=False)
        assert abs(k - kurt) < 0.2 * kurt, (noise, k)


def test_classification_draws_have_their_probabilities():
    fam, theta = configured("logistic_regression", params={"beta": [-2.0, 1.0]})
    y = fam.sample(np.random.default_rng(3), theta, (R, N))["y"]
    assert_mc_close(y.mean(axis=1), lt.prevalence([-2.0, 1.0], fam.covariates), "prevalence")
    beta = [[0.5, 1.0], [-0.5, -1.0]]
    fam, theta = configured("softmax_regression", params={"beta": beta})
    y = fam.sample(np.random.default_rng(4), theta, (R, N))["y"]
    # learning_theory labels the reference class last, the family first
    probs = np.roll(lt.class_probabilities(np.array(beta), fam.covariates), 1)
    for k in range(3):
        assert_mc_close((y == k).mean(axis=1), probs[k], f"P(class {k})")


def test_categorical_and_mixture_draws_have_their_moments():
    fam, theta = configured("categorical", params={"p": [0.5, 0.3, 0.15, 0.05]})
    y = fam.sample(np.random.default_rng(5), theta, (R, N))["y"]
    for k, pk in enumerate([0.5, 0.3, 0.15, 0.05]):
        assert_mc_close((y == k).mean(axis=1), pk, f"p{k}")
    params = {"weights": [0.3, 0.7], "means": [-2.0, 2.0], "variances": [1.0, 0.5]}
    fam, theta = configured("gaussian_mixture", params=params)
    x = fam.sample(np.random.default_rng(6), theta, (R, N))["x"]
    mean = 0.3 * -2 + 0.7 * 2
    var = 0.3 * (1 + 4) + 0.7 * (0.5 + 4) - mean**2
    assert_mc_close(x.mean(axis=1), mean, "mixture mean")
    assert_mc_close(x.var(axis=1, ddof=1), var, "mixture variance")


@pytest.mark.parametrize(
    "name",
    [
        "linear_regression",
        "logistic_regression",
        "softmax_regression",
        "categorical",
        "gaussian_mixture",
    ],
)
def test_the_first_rows_do_not_depend_on_how_many_are_drawn(name):
    """A chunk cut shorter or longer draws the same first data sets (resume extends)."""
    import yaml

    import mlesim.__main__ as cli

    cfg = yaml.safe_load(open(f"{cli.config_dir()}/truth/{name}.yaml", encoding="utf-8"))
    fam = get_family(name).configured(cfg)
    theta = fam.check(cfg["params"])
    few = fam.sample(np.random.default_rng(11), theta, (3, 20))
    many = fam.sample(np.random.default_rng(11), theta, (9, 20))
    for field in few:
        np.testing.assert_array_equal(few[field], many[field][:3])


# ------------------------------------------------------------------ estimands, bounds
def _study(truth: dict, estimators: dict, n: int, reps: int, **runner):
    from test_contract import _base_config

    spec = study_spec(
        _base_config(),
        runner={"n_jobs": 1, "backend": "sequential", "progress": False, **runner},
        n=[n],
        replications=reps,
        truth=truth,
        estimators=estimators,
    )
    table = simulate(spec, progress=False)
    return spec, table, summarise(spec, table)


def _row(summary: pd.DataFrame, est: str, param: str) -> pd.Series:
    return summary[(summary["estimator"] == est) & (summary["param"] == param)].iloc[0]


def test_ols_attains_its_exact_variance_and_the_mle_of_sigma2_its_bias():
    """Normal covariates, normal noise: Var β̂₁ = σ² E[(XᵀX)⁻¹]₁₁ = σ²/(n − d − 1)
    exactly (the inverse Wishart mean), i.e. efficiency (n − 3)/n against the bound
    σ²/n; E σ̂² = σ²(n − d)/n."""
    n = 40
    truth = {"family": "linear_regression", "params": {"beta": [1.0, 2.0], "sigma2": 2.0}}
    _, _, summary = _study(truth, {"mle": {"kind": "mle"}}, n, 4000)
    slope = _row(summary, "mle", "beta1")
    assert abs(slope["crlb"] - 2.0 / n) < 1e-12
    assert abs(slope["efficiency"] - (n - 3) / n) < Z * slope["efficiency_mcse"], slope
    s2 = _row(summary, "mle", "sigma2")
    assert abs(s2["bias"] - (-2.0 * 2 / n)) < Z * s2["bias_mcse"], s2


def test_an_mle_under_another_noise_targets_its_kl_projection():
    """The Laplace-noise MLE of normal-noise data: β* = β, and σ²* = 2(E|ε|)² = 4σ²/π
    (b* = E|ε| = σ√(2/π)); its rows are flagged misspecified and σ²'s bound is NaN."""
    truth = {"family": "linear_regression", "params": {"beta": [1.0, 2.0], "sigma2": 1.0}}
    est = {"lad": {"kind": "mle", "noise": "laplace"}}
    spec, _, summary = _study(truth, est, 400, 2000)
    s2 = _row(summary, "lad", "sigma2")
    assert abs(s2["true_value"] - 4 / np.pi) < 1e-8
    assert abs(s2["bias"]) < Z * s2["bias_mcse"], s2
    assert np.isnan(s2["crlb"])
    ext = summarise(spec, _study(truth, est, 400, 2000)[1], extended=True)
    assert ext["misspecified"].all()
    assert (
        abs(_row(summary, "lad", "beta1")["bias"]) < Z * _row(summary, "lad", "beta1")["bias_mcse"]
    )


def test_balanced_weights_move_the_intercept_by_the_prior_correction():
    """Class weights n/(2 n_c) make the intercept converge to β0 + log((1 − π)/π)
    (King & Zeng 2001): at π ≈ 0.2 the shift is log 4 ≈ 1.39; the slope stays."""
    beta = [-1.6497, 1.0]
    truth = {"family": "logistic_regression", "params": {"beta": beta}}
    est = {"mle": {"kind": "mle"}, "bal": {"kind": "mle", "weights": "balanced"}}
    _, _, summary = _study(truth, est, 2000, 600)
    prev = lt.prevalence(beta, {"dist": "normal", "rho": 0.0})
    icpt = _row(summary, "bal", "beta0")
    assert abs(icpt["true_value"] - (beta[0] + np.log((1 - prev) / prev))) < 1e-9
    assert abs(icpt["bias"]) < Z * icpt["bias_mcse"] + 0.01, icpt  # O(1/n) bias ≈ 0.003
    slope = _row(summary, "bal", "beta1")
    assert slope["true_value"] == 1.0 and abs(slope["bias"]) < Z * slope["bias_mcse"] + 0.01


def test_the_categorical_bound_is_the_multinomial_covariance():
    truth = {"family": "categorical", "params": {"p": [0.5, 0.3, 0.2]}}
    _, _, summary = _study(truth, {"mle": {"kind": "mle"}}, 100, 3000)
    for k, p in enumerate([0.5, 0.3, 0.2]):
        row = _row(summary, "mle", f"p{k}")
        assert abs(row["crlb"] - p * (1 - p) / 100) < 1e-15
        # the frequencies are unbiased and attain the bound exactly
        assert abs(row["efficiency"] - 1) < Z * row["efficiency_mcse"], row


def test_one_and_two_workers_give_the_same_learning_table():
    truth = {"family": "logistic_regression", "params": {"beta": [-1.0, 1.0]}}
    est = {"mle": {"kind": "mle"}, "firth": {"kind": "firth"}}
    one = _study(truth, copy.deepcopy(est), 30, 60, chunk_size=7)[1]
    two = _study(truth, copy.deepcopy(est), 30, 60, chunk_size=7, n_jobs=2, backend="loky")[1]
    pd.testing.assert_frame_equal(one, two, check_exact=True)


def test_a_steep_logistic_slope_gets_its_true_bound():
    """E[p(1 − p) x xᵀ] by adaptive quad (scipy) for β1 = 30, where a fixed grid missed the
    spike of p(1 − p) (0.8% off): the family's information must agree to 1e-6."""
    from scipy import integrate
    from scipy.special import expit

    beta = np.array([0.5, 30.0])
    fam, theta = configured("logistic_regression", params={"beta": beta.tolist()})

    def entry(i, j):
        def f(z):
            p = expit(beta[0] + beta[1] * z)
            x = (1.0, z)
            return p * (1 - p) * x[i] * x[j] * st.norm.pdf(z)

        centre = -beta[0] / beta[1]
        return integrate.quad(f, -12, 12, points=[centre], limit=500, epsabs=0, epsrel=1e-12)[0]

    want = np.array([[entry(i, j) for j in range(2)] for i in range(2)])
    np.testing.assert_allclose(fam.fisher(theta[None])[0], want, rtol=1e-6)


def test_a_mixture_of_coinciding_components_has_no_finite_bound():
    """Means 1e-6 apart: the information is singular and the bound infinite (NaN), not the
    pseudo-inverse's finite, even negative, diagonal."""
    params = {"weights": [0.5, 0.5], "means": [0.0, 1e-6], "variances": [1.0, 1.0]}
    fam, theta = configured("gaussian_mixture", params=params)
    assert np.isnan(fam.bound(theta, np.ones(fam.p, bool))).all()
    params["means"] = [-2.0, 2.0]
    fam, theta = configured("gaussian_mixture", params=params)
    assert (np.diag(fam.bound(theta, np.ones(fam.p, bool))) > 0).all()


def test_a_learner_kind_is_found_without_importing_the_learners_first():
    """``make_estimator`` imports the family's estimators module itself: in a fresh
    process (nothing else imported) ``firth`` on a logistic model is built."""
    import subprocess
    import sys

    code = (
        "from mlesim.estimators import make_estimator\n"
        "from mlesim.families import get_family\n"
        "fam = get_family('logistic_regression').configured({'params': {'beta': [0, 1]}})\n"
        "print(type(make_estimator('f', {'kind': 'firth'}, fam)).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "Firth", out.stderr[-500:]


def test_one_coefficient_can_be_set_or_swept_and_lists_do_not_hide_it():
    """``truth.params.beta0=-3`` on a preset reaches the data (it was silently overridden
    by a preset's list); a list beside the shipped named entries is refused in one line;
    a design key written dotted in a preset is replaced by a command-line value."""
    from conftest import compose_config

    from mlesim.config import pin_overrides
    from mlesim.study import validate

    spec = validate(compose_config(["experiment=regularisation", "truth.params.beta0=-3"]))
    assert spec.conditions[0].scenario.theta[0] == -3.0
    with pytest.raises(ConfigError) as info:
        validate(compose_config(["truth=linear_regression", "+truth.params.beta=[5.0]"]))
    assert info.value.key == "truth.params.beta"
    for design in ("design.truth.noise=[normal,laplace]", "+design={truth.noise:[normal,laplace]}"):
        overrides = ["truth=linear_regression", design, "truth.noise=laplace"]
        if design.startswith("design."):  # the nested form, as in the shipped presets
            overrides[1] = "+design={truth:{noise:[normal,laplace]}}"
        cfg = compose_config(overrides)
        assert pin_overrides(cfg, overrides) == ["truth.noise"]
        spec = validate(cfg)
        assert {c.scenario.truth.noise for c in spec.conditions} == {"laplace"}


def test_the_balanced_fit_covers_its_estimand():
    """The class weights are estimated from the sample, so the sandwich stacks the share
    of events (π) with β: the intercept's 95% intervals about its limit β0 + log((1 − π)/π)
    cover 0.95 within 4 MCSE (weights held fixed: 0.99+, the SE 1.5× the spread)."""
    truth = {"family": "logistic_regression", "params": {"beta": [-2.0, 1.0]}}
    _, _, summary = _study(truth, {"bal": {"kind": "mle", "weights": "balanced"}}, 400, 1500)
    for param in ("beta0", "beta1"):
        row = _row(summary, "bal", param)
        assert abs(row["coverage"] - 0.95) < Z * row["coverage_mcse"], row
        assert abs(row["modse"] / row["empse"] - 1) < 0.1, row
