"""The misspecification and map_vs_mle studies: their theory against independent
references (closed forms, quadrature written here, plain-numpy Monte Carlo), and their
presets end to end against that theory within 4 MCSE."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.integrate as si
import scipy.stats as st
from conftest import Z, compose_config

from mlesim.errors import ConfigError
from mlesim.pipeline import run_pipeline
from mlesim.scenarios import Scenario
from mlesim.studies.misspecification import kl_divergence, limiting_coverage, limiting_variances
from mlesim.study import validate
from mlesim.theory import beta_map_moments, shrinkage_moments, soft_threshold_moments


def run(tmp_path, *overrides: str) -> dict:
    spec = validate(compose_config(["runner.progress=false", *overrides]))
    return run_pipeline(spec, tmp_path)


def scenario(*overrides: str) -> Scenario:
    spec = validate(compose_config(["experiment=misspecification", "n=[10,20]", *overrides]))
    return spec.conditions[0].scenario


# ------------------------------------------------------------ misspecification
def test_sandwich_limits_of_a_normal_model_of_t5_data():
    """σ²* = ν/(ν − 2) = 5/3; n Var σ̂² → μ₄ − σ*⁴ = 3σ*⁴(ν − 2)/(ν − 4) − σ*⁴ = 200/9;
    the model says 2σ*⁴ = 50/9; n Var μ̂ → σ*² either way."""
    scen = scenario()
    target = scen.target()
    np.testing.assert_allclose(target, [0.0, 5 / 3], atol=1e-8)
    v = limiting_variances(scen, target)
    np.testing.assert_allclose(v["sandwich"], [5 / 3, 200 / 9], rtol=1e-6)
    np.testing.assert_allclose(v["expected"], [5 / 3, 50 / 9], rtol=1e-6)
    np.testing.assert_allclose(v["observed"], [5 / 3, 50 / 9], rtol=1e-6)
    assert limiting_coverage(v["expected"][1], v["sandwich"][1], 0.95) == pytest.approx(
        2 * st.norm.cdf(st.norm.ppf(0.975) / 2) - 1, abs=1e-9
    )


def test_kl_divergence_matches_quadrature():
    scen = scenario()
    g, f = st.t(5), st.norm(0, np.sqrt(5 / 3))
    want = si.quad(lambda x: g.pdf(x) * (g.logpdf(x) - f.logpdf(x)), -np.inf, np.inf)[0]
    assert kl_divergence(scen, scen.target()) == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize(
    ("overrides", "sandwich", "expected"),
    [
        # exponential on gamma(2, 1): rate* = 1/2; n Var(1/x̄) → Var X / E[X]⁴ = 2/16
        (["truth=gamma", "model=exponential"], [0.125], [0.25]),
        # poisson on NB(mu 4, size 2): n Var x̄ → 4 + 16/2 = 12, the model says 4
        (["truth=negative_binomial", "model=poisson"], [12.0], [4.0]),
    ],
)
def test_sandwich_limits_of_other_pairs(overrides, sandwich, expected):
    scen = scenario(*overrides)
    v = limiting_variances(scen, scen.target())
    np.testing.assert_allclose(v["sandwich"], sandwich, rtol=1e-6)
    np.testing.assert_allclose(v["expected"], expected, rtol=1e-6)


def test_misspecification_preset_covers_as_theory_says(tmp_path):
    """Poisson fitted to NB counts at n = 1000: the model-based interval covers
    2Φ(1.96/√3) − 1 = 0.742, the sandwich 0.95, within 4 MCSE."""
    out = run(
        tmp_path,
        "experiment=misspecification",
        "truth=negative_binomial",
        "model=poisson",
        "n=[100,1000]",
        "replications=3000",
    )
    s = out["summary"]
    big = s[s["n"] == 1000].set_index("estimator")
    limit = 2 * st.norm.cdf(st.norm.ppf(0.975) / np.sqrt(3)) - 1
    for label, want in (("mle", limit), ("mle_sandwich", 0.95)):
        row = big.loc[label]
        assert abs(row["coverage"] - want) < Z * row["coverage_mcse"], (label, row["coverage"])
    report = (tmp_path / "report.md").read_text()
    assert "lam* = 4" in report and "KL(g ‖ f_θ*) = " in report
    assert sorted(p.name for p, _ in out["figures"]) == [
        "misspecification_lam.png",
        "misspecification_zip_lam.png",
    ]


def test_misspecification_refuses_a_right_model():
    with pytest.raises(ConfigError) as info:
        validate(compose_config(["experiment=misspecification", "model=student_t"]))
    assert info.value.key == "model"


# ------------------------------------------------------------------ map_vs_mle
def test_exact_map_moments_match_plain_numpy_monte_carlo():
    rng = np.random.default_rng(11)
    reps = 200_000
    # ridge: μ̂ = c x̄ with c = nτ²/(nτ² + σ₀²), σ₀² = 2 assumed while the truth has 1
    n, mu, tau2 = 7, 0.4, 0.3
    xbar = rng.normal(mu, np.sqrt(1 / n), reps)
    est = n * tau2 / (n * tau2 + 2.0) * xbar
    bias, var, mse = shrinkage_moments(np.array([n]), mu, 1.0, 0.0, tau2, assumed=2.0)
    err = est - mu
    assert abs(err.mean() - bias[0]) < Z * err.std() / np.sqrt(reps)
    assert abs((err**2).mean() - mse[0]) < Z * (err**2).std() / np.sqrt(reps)
    # lasso around loc = 0.1
    loc, b = 0.1, 0.5
    t = 1.0 / (n * b)
    est = loc + np.sign(xbar - loc) * np.maximum(np.abs(xbar - loc) - t, 0)
    bias, mse, p0 = soft_threshold_moments(n, mu, 1.0, loc, b)
    err = est - mu
    assert abs(err.mean() - bias) < Z * err.std() / np.sqrt(reps)
    assert abs((err**2).mean() - mse) < Z * (err**2).std() / np.sqrt(reps)
    share = np.mean(est == loc)
    assert abs(share - p0) < Z * np.sqrt(p0 * (1 - p0) / reps)
    # Beta(3, 2) prior on a Bernoulli p
    k = rng.binomial(6, 0.2, reps)
    est = (k + 2) / (6 + 3)
    bias, mse, edge = beta_map_moments(6, 0.2, 3.0, 2.0)
    err = est - 0.2
    assert abs(err.mean() - bias) < Z * err.std() / np.sqrt(reps)
    assert abs((err**2).mean() - mse) < Z * (err**2).std() / np.sqrt(reps)
    assert edge == 0.0 and beta_map_moments(6, 0.2, 1.0, 1.0)[2] == pytest.approx(0.8**6 + 0.2**6)


def test_map_vs_mle_preset_agrees_with_exact_theory(tmp_path):
    out = run(tmp_path, "experiment=map_vs_mle", "n=[5,20]", "replications=4000")
    s = out["summary"].set_index(["estimator", "n"])
    for label, prior in (("ridge_tau2_1", 1.0), ("ridge_tau2_0.1", 0.1)):
        for n in (5, 20):
            bias, _, mse = shrinkage_moments(np.array([n]), 0.5, 1.0, 0.0, prior)
            row = s.loc[(label, n)]
            assert abs(row["bias"] - bias[0]) < Z * row["bias_mcse"], (label, n)
            assert abs(row["mse"] - mse[0]) < Z * row["mse_mcse"], (label, n)
    reps = out["replicates"]
    lasso = reps[(reps["estimator"] == "lasso_b_0.2") & (reps["n"] == 20)]
    share = np.mean(lasso["estimate"] == 0.0)
    p0 = soft_threshold_moments(20, 0.5, 1.0, 0.0, 0.2)[2]
    assert abs(share - p0) < Z * np.sqrt(p0 * (1 - p0) / len(lasso))
    names = sorted(p.name for p, _ in out["figures"])
    assert names == ["map_vs_mle_mu.png", "map_vs_mle_zeros.png"]
    assert "weight decay" in (tmp_path / "report.md").read_text()


def test_map_smoothing_preset_counts_certain_estimates(tmp_path):
    out = run(tmp_path, "experiment=map_smoothing", "n=[3,10]", "replications=4000")
    reps = out["replicates"]
    mle = reps[(reps["estimator"] == "mle") & (reps["n"] == 3)]
    edge = np.mean((mle["estimate"] == 0) | (mle["estimate"] == 1))
    want = 0.9**3 + 0.1**3
    assert abs(edge - want) < Z * np.sqrt(want * (1 - want) / len(mle))
    smooth = reps[reps["estimator"] == "map_beta_2_2"]["estimate"]
    assert ((smooth > 0) & (smooth < 1)).all()
    assert "p̂ = 1 — certainty" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["truth=gamma"], "model"),
        (["+estimators.med={kind: median}"], "estimators.med.kind"),
        (["n=[10]"], "n"),
    ],
)
def test_map_vs_mle_refuses_what_it_has_no_theory_for(overrides, key):
    with pytest.raises(ConfigError) as info:
        validate(compose_config(["experiment=map_vs_mle", *overrides]))
    assert info.value.key == key
