"""The loss_equivalence and regularisation studies end to end (each preset run small, in
process) against their theory within Z = 4 Monte Carlo SEs, their theory functions
against closed forms, two independent solvers on a regenerated data set, and the
refusals of their checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import Z, compose_config
from scipy.optimize import linprog

from mlesim import regression
from mlesim.engine import chunk_data, locate
from mlesim.errors import ConfigError
from mlesim.pipeline import run_pipeline
from mlesim.studies import loss_equivalence as le
from mlesim.studies import regularisation as rg
from mlesim.studies.robustness import relative_efficiency
from mlesim.study import validate

NOISES = ("normal", "laplace", "student_t")


def run(tmp_path, *overrides: str) -> dict:
    spec = validate(compose_config(["runner.progress=false", *overrides]))
    return run_pipeline(spec, tmp_path) | {"spec": spec}


@pytest.fixture(scope="module")
def losses(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("losses")
    return run(tmp, "experiment=loss_equivalence", "n=[30,500]", "replications=2000"), tmp


@pytest.fixture(scope="module")
def regular(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("regular")
    return run(tmp, "experiment=regularisation", "n=[20,500]", "replications=2000"), tmp


def _slope(out, noise: str, n: int):
    reps = out["replicates"]
    keep = (reps["truth.noise"] == noise) & (reps["n"] == n) & (reps["param"] == "beta1")
    return reps[keep & reps["converged"]]


def _summary_row(out, noise: str, n: int, label: str, param: str = "beta1"):
    s = out["summary"]
    keep = (s["truth.noise"] == noise) & (s["n"] == n) & (s["estimator"] == label)
    return s[keep & (s["param"] == param)].iloc[0]


# ------------------------------------------------------------- loss_equivalence: theory
def test_the_ratio_limits_are_the_closed_forms():
    """σ²·4f(0)²: 2/π (normal), 2 (Laplace), 16/π² for t₃ (f(0) = 2/(πσ))."""
    assert le.ols_lad_ratio("normal", None) == pytest.approx(2 / math.pi, rel=1e-12)
    assert le.ols_lad_ratio("laplace", None) == pytest.approx(2.0, rel=1e-12)
    assert le.ols_lad_ratio("student_t", 3.0) == pytest.approx(16 / math.pi**2, rel=1e-12)
    for noise, nu in (("normal", None), ("laplace", None), ("student_t", 3.0)):
        assert le.unit_noise(noise, nu).var() == pytest.approx(1.0, rel=1e-12)


def test_huber_efficiency_at_the_normal_is_95_percent():
    """Huber's k = 1.345 is chosen for 95% efficiency at the normal (Huber 1981)."""
    eff = le.theory_efficiency(("huber", 1.345), "normal", None, 1.0)
    assert eff == pytest.approx(0.95, abs=5e-4)
    # and the efficiency of any estimator is scale-free: the same with σ² = 4, δ = 2·1.345
    assert le.theory_efficiency(("huber", 2.69), "normal", None, 4.0) == pytest.approx(eff)


# --------------------------------------------------------- loss_equivalence: simulation
def test_the_pairs_coincide_replicate_by_replicate(losses):
    out, tmp = losses
    reps = out["replicates"]
    for noise in NOISES:
        cell = reps[reps["truth.noise"] == noise]
        for loss, mle in (("loss_mse", "mle_normal"), ("loss_mae", "mle_laplace")):
            gap, count = le.pair_differences(cell, loss, mle)
            assert count == 2 * 2 * 2000 and gap == 0.0, (noise, loss, gap, count)
    report = (tmp / "report.md").read_text()
    assert "| loss_mse vs mle_normal | 0 (8000 compared) |" in report


def test_independent_solvers_agree_on_a_regenerated_replicate(losses):
    """Replicate 0 of the Laplace cell at n = 30, its data regenerated from the seed: LAD
    by scipy's linear program (HiGHS) and OLS by numpy's lstsq equal the run's
    estimates of both members of each pair."""
    out, _ = losses
    task, row = locate(out["spec"], {"n": 30, "truth.noise": "laplace"}, 0)
    _, data = chunk_data(task)
    X, y = data["X"][row], data["y"][row]
    n, d = X.shape
    lp = linprog(
        np.r_[np.zeros(d), np.ones(2 * n)],
        A_eq=np.hstack([X, np.eye(n), -np.eye(n)]),
        b_eq=y,
        bounds=[(None, None)] * d + [(0, None)] * (2 * n),
        method="highs",
    )
    lad, ols = lp.x[:d], np.linalg.lstsq(X, y, rcond=None)[0]
    reps = out["replicates"]
    first = reps[(reps["truth.noise"] == "laplace") & (reps["n"] == 30) & (reps["replicate"] == 0)]
    for labels, want in ((("loss_mae", "mle_laplace"), lad), (("loss_mse", "mle_normal"), ols)):
        for label in labels:
            got = first[first["estimator"] == label].set_index("param")["estimate"]
            np.testing.assert_allclose(got[["beta0", "beta1"]], want, atol=1e-8, err_msg=label)


def test_normal_ratio_is_two_over_pi_at_every_n(losses):
    out, _ = losses
    for n in (30, 500):
        ratio, mcse = relative_efficiency(_slope(out, "normal", n), "loss_mae", "loss_mse")
        assert abs(ratio - 2 / math.pi) < Z * mcse, (n, ratio, mcse)


def test_laplace_ratio_rises_towards_two_from_below(losses):
    """The report's claim: under Laplace noise LAD wins (ratio well above 1) and the
    ratio approaches 2 slowly from below (a relative O(n^−½) excess of LAD's variance)."""
    out, tmp = losses
    small = relative_efficiency(_slope(out, "laplace", 30), "loss_mae", "loss_mse")
    large = relative_efficiency(_slope(out, "laplace", 500), "loss_mae", "loss_mse")
    assert large[0] - 1 > Z * large[1]
    assert large[0] - small[0] > Z * math.hypot(small[1], large[1])
    assert large[0] < 2 + Z * large[1]


def test_which_loss_is_efficient_under_which_noise(losses):
    """At n = 500: each loss's efficiency against the CRLB within 4 MCSE of its limit
    1/(I_loc·V) (only where the estimates have light tails and no cusp slows them:
    OLS under normal and Laplace noise, Huber everywhere, LAD under t₃), and the report
    names MSE for normal, MAE for Laplace and no loss for t₃ noise."""
    out, tmp = losses
    checks = [
        ("normal", "loss_mse", ("ols",)),
        ("normal", "loss_huber", ("huber", 1.345)),
        ("laplace", "loss_mse", ("ols",)),
        ("laplace", "loss_huber", ("huber", 1.345)),
        ("student_t", "loss_huber", ("huber", 1.345)),
        ("student_t", "loss_mae", ("lad",)),
    ]
    for noise, label, kind in checks:
        row = _summary_row(out, noise, 500, label)
        limit = le.theory_efficiency(kind, noise, 3.0 if noise == "student_t" else None, 1.0)
        assert abs(row["efficiency"] - limit) < Z * row["efficiency_mcse"], (noise, label)
    report = (tmp / "report.md").read_text()
    assert "under normal noise the efficient loss is **loss_mse**" in report
    assert "under Laplace noise the efficient loss is **loss_mae**" in report
    assert "under t (ν = 3) noise **no loss here is efficient**" in report
    assert "nearest in the limit is **loss_huber**" in report


def test_loss_equivalence_figures_and_notes(losses):
    out, tmp = losses
    names = sorted(p.name for p, _ in out["figures"])
    assert names == [
        "loss_equivalence_efficiency.png",
        "loss_equivalence_identity.png",
        "loss_equivalence_ols_vs_lad.png",
    ]
    assert all(p.stat().st_size > 10_000 for p, _ in out["figures"])
    report = (tmp / "report.md").read_text()
    for text in ("**Seed claim: MSE is the Gaussian NLL", "var(OLS)/var(LAD)", "[0.6366]"):
        assert text in report
    assert "no fourth moment" in report  # the t₃ caveat on the MCSE


# ------------------------------------------------------------- regularisation: theory
def test_the_population_lasso_is_the_closed_form():
    """With the active set A = {1, 2}: b*_A = β_A − α C_AA⁻¹ s_A (the KKT equations), and
    |[C(b* − β)]_j| < α on the zeros."""
    sigma = np.eye(5)
    sigma[1:, 1:] = 0.5 * np.eye(4) + 0.5
    beta = np.array([1.0, 2.0, 0.5, 0.0, 0.0])
    for alpha in (0.05, 0.2):
        bstar, grad = rg.lasso_limit(sigma, beta, alpha)
        c_aa = sigma[1:3, 1:3]
        want = beta[1:3] - alpha * np.linalg.solve(c_aa, np.ones(2))
        np.testing.assert_allclose(bstar[1:3], want, atol=1e-14)
        assert bstar[0] == beta[0] and np.all(bstar[3:] == 0)
        assert np.all(np.abs(grad[2:]) < alpha)
        np.testing.assert_allclose(grad[:2], -alpha, atol=1e-14)


def test_ridge_is_the_gaussian_prior_map(rng):
    """On random data: the MAP under β_j ~ N(0, σ²/α) with σ² known is ridge's estimate."""
    X = np.column_stack([np.ones(15), rng.normal(size=(15, 3))])
    y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + rng.normal(size=15)
    for alpha in (0.1, 3.0):
        want = regression.ridge(X[None], y[None], alpha).beta[0]
        got = rg.gaussian_prior_map(X, y, 2.0, alpha)  # the prior scales with σ² = 2
        assert np.max(np.abs(got - want)) < rg.MAP_TOL


# -------------------------------------------------------- regularisation: simulation
def test_ridge_first_order_theory_holds_at_large_n(regular):
    """At n = 500 ridge's first-order bias and variance are within 4 MCSE of the
    simulation; at n = 20 the MLE's exact Gaussian-design variance (the first-order one
    times n/(n − p − 2)) is, and the first-order one is not."""
    out, _ = regular
    s = out["summary"]
    scen = out["spec"].conditions[0].scenario
    for label in ("ridge_1", "ridge_10"):
        spec = out["spec"]["estimators"][label]
        theory = rg.theory_rows(scen, spec, 500)
        for j in range(5):
            row = s[(s["n"] == 500) & (s["estimator"] == label) & (s["param"] == f"beta{j}")]
            row = row.iloc[0]
            assert abs(row["bias"] - theory["bias"][j]) < Z * row["bias_mcse"], (label, j)
            var, var_mcse = row["empse"] ** 2, 2 * row["empse"] * row["empse_mcse"]
            assert abs(var - theory["var"][j]) < Z * var_mcse, (label, j)
    exact = rg.ols_exact_variance(scen, 20)
    first = rg.theory_rows(scen, {"kind": "mle"}, 20)["var"]
    for j in range(5):
        row = s[(s["n"] == 20) & (s["estimator"] == "mle") & (s["param"] == f"beta{j}")].iloc[0]
        var, var_mcse = row["empse"] ** 2, 2 * row["empse"] * row["empse_mcse"]
        assert abs(var - exact[j]) < Z * var_mcse, j
        assert var - first[j] > Z * var_mcse, j


def test_ridge_tends_to_the_mle_like_one_over_n_and_the_lasso_does_not(regular):
    out, tmp = regular
    reps = out["replicates"]
    ridge = rg.distance_to_mle(reps, "ridge_1", "mle")
    lasso = rg.distance_to_mle(reps, "lasso_0.2", "mle")
    slope = math.log(ridge.loc[500, "mean"] / ridge.loc[20, "mean"]) / math.log(500 / 20)
    assert -1.2 < slope < -0.95, slope  # 1/n, with the random design's O(1/n²) at n = 20
    scen = out["spec"].conditions[0].scenario
    limit = rg.lasso_distance_limit(scen, out["spec"]["estimators"]["lasso_0.2"])
    assert lasso.loc[500, "mean"] - limit > Z * lasso.loc[500, "mcse"]  # still above it
    assert lasso.loc[500, "mean"] > 10 * ridge.loc[500, "mean"]
    report = (tmp / "report.md").read_text()
    assert "does not tend to the MLE but to the population lasso" in report


def test_lasso_exact_zeros_against_their_approximation(regular):
    """True zeros: the share at n = 500 within 4 binomial MCSE of the large-n normal
    approximation; the non-zeros are never 0 there; ridge and the MLE never give a 0."""
    out, _ = regular
    reps = out["replicates"]
    scen = out["spec"].conditions[0].scenario
    sigma, beta = rg.second_moment(scen), np.asarray(scen.theta[:5])
    for label, alpha in (("lasso_0.05", 0.05), ("lasso_0.2", 0.2)):
        shares = rg.zero_shares(reps, label).set_index(["n", "param"])
        approx = rg.zero_share_approx(sigma, beta, 1.0, alpha, 500)
        for j in (3, 4):
            row = shares.loc[(500, f"beta{j}")]
            assert abs(row["share"] - approx[j - 1]) < Z * row["mcse"], (label, j)
        assert shares.loc[(500, "beta1"), "share"] == 0 == shares.loc[(500, "beta2"), "share"]
    for label in ("mle", "ridge_1", "ridge_10"):
        assert rg.zero_shares(reps, label)["share"].max() == 0.0


def test_regularisation_figures_and_notes(regular):
    out, tmp = regular
    names = sorted(p.name for p, _ in out["figures"])
    assert names == [
        "regularisation_bias_variance.png",
        "regularisation_map_to_mle.png",
        "regularisation_zeros.png",
    ]
    report = (tmp / "report.md").read_text()
    assert "**Weight decay is a Gaussian prior, numerically.**" in report
    assert report.count("they agree: max |Δ|") == 2 and "DISAGREE" not in report
    assert "**The lasso's exact zeros**" in report and "**MAP → MLE.**" in report


# ------------------------------------------------------------------------- refusals
def _composed(experiment: str, *overrides: str) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(compose_config([f"experiment={experiment}", *overrides]))


def _intercept_only(config: dict) -> dict:
    config["truth"]["params"] = {"beta": [1.0], "sigma2": 1.0}
    return config


def _without(config: dict, *labels: str) -> dict:
    config["estimators"] = {k: v for k, v in config["estimators"].items() if k not in labels}
    return config


@pytest.mark.parametrize(
    ("config", "key"),
    [
        (lambda: _composed("loss_equivalence", "truth=normal", "design={}"), "truth"),
        (lambda: _without(_composed("loss_equivalence"), "loss_mae"), "estimators"),
        (lambda: _without(_composed("loss_equivalence"), "mle_normal"), "estimators"),
        (lambda: _composed("loss_equivalence", "n=[100]"), "n"),
        (lambda: _intercept_only(_composed("loss_equivalence")), "truth.params"),
        (lambda: _composed("regularisation", "truth=normal"), "truth"),
        (
            lambda: _without(
                _composed("regularisation"), "ridge_1", "ridge_10", "lasso_0.05", "lasso_0.2"
            ),
            "estimators",
        ),
        (lambda: _without(_composed("regularisation"), "mle"), "estimators"),
        (
            lambda: _composed("regularisation", "+design={truth.noise: [normal, laplace]}"),
            "estimators",
        ),
    ],
)
def test_checks_refuse_in_one_line(config, key):
    with pytest.raises(ConfigError) as info:
        validate(config())
    assert info.value.key == key
    assert "\n" not in str(info.value)
