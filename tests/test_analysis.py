"""Tests of mlesim.analysis against hand computations, exact theory and scipy/statsmodels."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st
from conftest import Z

from mlesim import analysis
from mlesim.families import Family, get_family
from mlesim.families.base import Domain

Z95 = float(st.norm.ppf(0.975))


# ------------------------------------------------------------- test families
class FakeLaplace(Family):
    """Laplace(mu, b): f = exp(−|x − mu|/b) / (2b); I = diag(1/b², 1/b²); Var X = 2b²."""

    register = False  # a test double, not a family of the registry
    name = "fake_laplace"
    params = ("mu", "b")
    domains = {"mu": Domain("real"), "b": Domain("positive")}
    location = "mu"
    center = "mu"

    def logpdf(self, x, theta):
        mu, b = self.column(theta, "mu"), self.column(theta, "b")
        return -np.abs(x - mu) / b - np.log(2 * b)

    def fisher(self, theta):
        b = np.asarray(theta)[..., 1]
        return np.eye(2) / b[..., None, None] ** 2

    def mean_var(self, theta):
        theta = np.asarray(theta)
        return theta[..., 0], 2 * theta[..., 1] ** 2

    def scipy_dist(self, theta):
        return st.laplace(theta[0], theta[1])


class FakeCauchy(Family):
    """Cauchy(mu, sigma): I = diag(1/(2σ²), 1/(2σ²)); infinite variance."""

    register = False  # a test double, not a family of the registry
    name = "fake_cauchy"
    params = ("mu", "sigma")
    domains = {"mu": Domain("real"), "sigma": Domain("positive")}
    center = "mu"

    def logpdf(self, x, theta):
        mu, s = self.column(theta, "mu"), self.column(theta, "sigma")
        return -np.log(np.pi * s * (1 + ((x - mu) / s) ** 2))

    def fisher(self, theta):
        s = np.asarray(theta)[..., 1]
        return np.eye(2) / (2 * s[..., None, None] ** 2)

    def scipy_dist(self, theta):
        return st.cauchy(theta[0], theta[1])


# ------------------------------------------------------------- rate_slope
def test_rate_slope_by_hand():
    """x = log n = 0, 1, 2; y = 0, −0.4, −1.2; relative SEs 0.1, 0.2, 0.1 → w = 100, 25, 100.

    x̄_w = 225/225 = 1, Σw(x − x̄)² = 200, slope = (−100·0 + 100·(−1.2))/200 = −0.6,
    se = 1/√200, intercept = ȳ_w − slope·x̄_w = −130/225 + 0.6.
    """
    n = np.exp([0.0, 1.0, 2.0])
    rmse = np.exp([0.0, -0.4, -1.2])
    fit = analysis.rate_slope(n, rmse, np.array([0.1, 0.2, 0.1]) * rmse)
    assert fit.slope == pytest.approx(-0.6, abs=1e-12)
    assert fit.se == pytest.approx(1 / math.sqrt(200), abs=1e-12)
    assert fit.ci_low == pytest.approx(-0.6 - Z95 / math.sqrt(200), abs=1e-12)
    assert fit.ci_high == pytest.approx(-0.6 + Z95 / math.sqrt(200), abs=1e-12)
    assert fit.intercept == pytest.approx(-130 / 225 + 0.6, abs=1e-12)


def test_rate_slope_exact_power_law_and_level():
    n = np.array([10, 100, 1000, 5000])
    rmse = 3.0 * n**-0.5
    fit = analysis.rate_slope(n, rmse, 0.02 * rmse, level=0.9)
    assert fit.slope == pytest.approx(-0.5, abs=1e-12)
    assert math.exp(fit.intercept) == pytest.approx(3.0, rel=1e-12)
    z90 = st.norm.ppf(0.95)
    assert fit.ci_high - fit.slope == pytest.approx(z90 * fit.se, rel=1e-12)


def test_rate_slope_matches_statsmodels_wls_with_known_variances():
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(5)
    n = np.array([20, 50, 100, 300, 1000, 3000])
    rmse = n**-0.5 * np.exp(rng.normal(0, 0.03, n.size))
    rel = rng.uniform(0.01, 0.05, n.size)
    fit = analysis.rate_slope(n, rmse, rel * rmse)
    x = sm.add_constant(np.log(n))
    ref = sm.WLS(np.log(rmse), x, weights=1 / rel**2).fit(
        cov_type="fixed scale", cov_kwds={"scale": 1.0}
    )
    assert fit.slope == pytest.approx(ref.params[1], rel=1e-10)
    assert fit.intercept == pytest.approx(ref.params[0], rel=1e-10)
    assert fit.se == pytest.approx(ref.bse[1], rel=1e-10)


def test_rate_slope_drops_unusable_points_and_needs_two():
    fit = analysis.rate_slope([10, 100, 1000], [0.3, 0.1, np.nan], [0.01, 0.0, 0.01])
    assert all(math.isnan(v) for v in fit)  # only n = 10 is usable
    fit = analysis.rate_slope([10, 100, 1000], [0.3, 0.03, -1.0], [0.01, 0.001, 0.01])
    assert fit.slope == pytest.approx(-1.0, abs=1e-12)


def test_rmse_mcse_delta_method():
    np.testing.assert_allclose(analysis.rmse_mcse([4.0, 0.25], [0.8, 0.1]), [0.2, 0.1])
    assert np.isnan(analysis.rmse_mcse(0.0, 0.1))


# ------------------------------------------------------------- exceedance
def test_threshold_scales():
    # information: delta·sqrt(n·crlb) = 0.1·sqrt(10·0.4) = 0.2
    assert analysis.threshold(5.0, 0.4, 10, 0.1, "information") == pytest.approx(0.2)
    assert analysis.threshold(-5.0, 0.4, 10, 0.1, "relative") == pytest.approx(0.5)
    assert np.isnan(analysis.threshold(0.0, 0.4, 10, 0.1, "relative"))
    assert analysis.threshold(5.0, 0.4, 10, 0.1, "absolute") == pytest.approx(0.1)
    with pytest.raises(ValueError, match="allowed"):
        analysis.threshold(5.0, 0.4, 10, 0.1, "other")


def test_exceedance_by_hand():
    df = pd.DataFrame(
        {
            "n": [5, 5, 5, 5, 5, 10, 10],
            "estimate": [0.5, 1.5, 2.5, np.nan, 9.0, 1.0, 3.0],
            "converged": [True, True, True, True, False, True, True],
            "true": 1.0,
        }
    )
    out = analysis.exceedance(df, "true", 0.6, by=["n"])
    # n = 5: usable 0.5, 1.5, 2.5 → |error| 0.5, 0.5, 1.5 → 1 of 3 above 0.6
    row = out[out["n"] == 5].iloc[0]
    assert row["n_rep"] == 3
    assert row["exceed"] == pytest.approx(1 / 3)
    assert row["exceed_mcse"] == pytest.approx(math.sqrt((1 / 3) * (2 / 3) / 3))
    row = out[out["n"] == 10].iloc[0]
    assert (row["n_rep"], row["exceed"]) == (2, 0.5)
    assert row["exceed_mcse"] == pytest.approx(0.5 / math.sqrt(2))
    assert list(out.columns) == ["n", "delta", "n_rep", "n_inf", "exceed", "exceed_mcse"]


def test_exceedance_of_normal_mean_matches_exact_probability(rng):
    """x̄ ~ N(μ, σ²/n) exactly, so P(|x̄ − μ| > δ) = 2Φ(−δ√n/σ)."""
    n, reps, delta = 25, 4000, 0.3
    xbar = rng.normal(1.0, 2.0, size=(reps, n)).mean(axis=1)
    df = pd.DataFrame({"n": n, "estimate": xbar})
    row = analysis.exceedance(df, 1.0, delta, by=["n"]).iloc[0]
    exact = analysis.exceedance_normal(delta, 2.0 / math.sqrt(n))
    assert exact == pytest.approx(2 * st.norm.sf(0.75))
    assert abs(row["exceed"] - exact) < Z * row["exceed_mcse"]


def test_exceedance_normal_known_value():
    assert analysis.exceedance_normal(1.959963985, 1.0) == pytest.approx(0.05, abs=1e-9)


# ------------------------------------------------------------- efficiency
@pytest.mark.parametrize("theta", [[0.0, 1.0], [3.0, 4.0]])
def test_median_efficiency_normal_is_two_over_pi(theta):
    assert analysis.median_efficiency(get_family("normal"), theta) == pytest.approx(2 / math.pi)


def test_median_efficiency_is_generic():
    """4 f(m)² [I⁻¹]_μμ: Laplace (1/(2b))²·4·b² = 1; Cauchy (1/(πσ))²·4·2σ² = 8/π²."""
    assert analysis.median_efficiency(FakeLaplace(), [1.0, 2.5]) == pytest.approx(1.0)
    assert analysis.median_efficiency(FakeCauchy(), [0.0, 3.0]) == pytest.approx(8 / math.pi**2)
    assert math.isnan(analysis.median_efficiency(get_family("poisson"), [4.0]))


def test_mean_efficiency():
    assert analysis.mean_efficiency(get_family("normal"), [0.0, 2.0]) == pytest.approx(1.0)
    assert analysis.mean_efficiency(get_family("poisson"), [4.0]) == pytest.approx(1.0)
    assert analysis.mean_efficiency(get_family("bernoulli"), [0.3]) == pytest.approx(1.0)
    assert analysis.mean_efficiency(FakeLaplace(), [0.0, 2.0]) == pytest.approx(0.5)
    assert math.isnan(analysis.mean_efficiency(get_family("exponential"), [2.0]))


def test_median_variance_exact_cases():
    # uniform: median of 3 ~ Beta(2, 2), variance 2·2 / (4²·5) = 1/20
    assert analysis.median_variance(st.uniform(), 3) == pytest.approx(1 / 20, rel=1e-8)
    # exponential(1): X_(2) of 3 = E1/3 + E2/2 (Rényi), variance 1/9 + 1/4 = 13/36
    assert analysis.median_variance(st.expon(), 3) == pytest.approx(13 / 36, rel=1e-7)
    assert analysis.median_variance(st.norm(0, 2), 1) == pytest.approx(4.0, rel=1e-8)
    assert analysis.median_variance(st.t(3), 1) == pytest.approx(3.0, rel=1e-3)  # ν/(ν−2)
    assert analysis.median_variance(st.cauchy(), 1) == math.inf
    # the median of 3 Cauchy draws has tails ~|x|⁻³: no variance; of 5 it has one
    assert analysis.median_variance(st.cauchy(), 3) == math.inf
    assert math.isfinite(analysis.median_variance(st.cauchy(), 5))
    with pytest.raises(ValueError, match="odd"):
        analysis.median_variance(st.norm(), 4)


def test_median_variance_tends_to_asymptotic_and_matches_simulation(rng):
    """n Var(median) → π/2 σ² at the normal; at n = 21 it agrees with simulation."""
    assert 2001 * analysis.median_variance(st.norm(), 2001) == pytest.approx(math.pi / 2, rel=1e-3)
    med = np.median(rng.normal(size=(20000, 21)), axis=1)
    dev = med - med.mean()
    var, m4 = dev.var(ddof=1), np.mean(dev**4)
    mcse = math.sqrt((m4 - var**2) / med.size)
    assert abs(var - analysis.median_variance(st.norm(), 21)) < Z * mcse


def test_median_efficiency_exact():
    normal = get_family("normal")
    assert analysis.median_efficiency_exact(normal, [0.0, 1.0], 1) == pytest.approx(1.0)
    big = analysis.median_efficiency_exact(normal, [0.0, 1.0], 2001)
    assert big == pytest.approx(2 / math.pi, rel=1e-3)
    assert math.isnan(analysis.median_efficiency_exact(get_family("poisson"), [4.0], 11))


# ------------------------------------------------------------- normality
def test_standardise_by_hand():
    z = analysis.standardise([1.0, 3.0], 2.0, [0.25, 4.0])
    np.testing.assert_allclose(z, [-2.0, 0.5])


def test_ks_distance_matches_scipy(rng):
    z = rng.standard_t(5, size=(3, 300))
    got = analysis.normality_distance(z, "ks")
    assert got.shape == (3,)
    for row, value in zip(z, got, strict=True):
        assert value == pytest.approx(st.kstest(row, "norm").statistic, rel=1e-12)


def test_ad_distance_matches_scipy_goodness_of_fit(rng):
    z = rng.normal(0.2, 1.1, size=200)
    ref = st.goodness_of_fit(
        st.norm, z, known_params={"loc": 0, "scale": 1}, statistic="ad", n_mc_samples=9, rng=1
    ).statistic
    assert float(analysis.normality_distance(z, "ad")) == pytest.approx(ref, rel=1e-10)
    with pytest.raises(ValueError, match="allowed"):
        analysis.normality_distance(z, "cvm")


def test_ad_null_tail_matches_stephens_table(rng):
    """Under H0 P(A² > 2.492) = 0.05 (Stephens 1974, Table 1, case 0)."""
    a2 = analysis.normality_distance(rng.standard_normal((4000, 100)), "ad")
    frac = np.mean(a2 > 2.492)
    assert abs(frac - 0.05) < Z * math.sqrt(0.05 * 0.95 / a2.size)


@pytest.mark.parametrize("method", ["ks", "ad"])
def test_null_distance_is_the_noise_floor(rng, method):
    """Independent normal samples exceed the null median half of the time."""
    r = 200
    med = float(analysis.null_distance(r, 0.5, method, n_sim=4000, seed=3))
    d = analysis.normality_distance(rng.standard_normal((2000, r)), method)
    frac = np.mean(d > med)
    # binomial MCSE of the fraction plus that of the simulated median (ad only)
    mcse = math.sqrt(0.25 / d.size + (0.25 / 4000 if method == "ad" else 0.0))
    assert abs(frac - 0.5) < Z * mcse


def test_null_distance_ks_median_is_about_083_over_root_r():
    r = 2000
    assert float(analysis.null_distance(r, 0.5)) * math.sqrt(r) == pytest.approx(0.83, abs=0.01)


def test_bootstrap_se_of_the_mean(rng):
    """The bootstrap SE of a mean is s_plugin/√R; B resamples give relative error 1/√(2B)."""
    z = rng.normal(size=500)
    boot = 2000
    se = analysis.bootstrap_se(z, lambda a: a.mean(axis=-1), n_boot=boot, seed=1, max_cells=10**5)
    target = z.std(ddof=0) / math.sqrt(z.size)
    assert abs(se - target) < Z * target / math.sqrt(2 * boot)
    assert math.isnan(analysis.bootstrap_se([1.0], np.mean))


def test_normality_table(rng):
    df = pd.DataFrame(
        {
            "n": np.repeat([5, 50], 300),
            "estimator": "mle",
            "param": "rate",
            "z": np.concatenate([rng.exponential(size=300) - 1, rng.normal(size=300)]),
        }
    )
    df.loc[3, "z"] = np.nan
    tab = analysis.normality_table(df, n_boot=50)
    assert list(tab["n_rep"]) == [299, 300]
    first = df[(df["n"] == 5) & df["z"].notna()]["z"]
    assert tab["distance"].iloc[0] == pytest.approx(st.kstest(first, "norm").statistic)
    assert tab["noise_median"].iloc[1] == pytest.approx(st.kstwo(300).median())
    assert (tab["distance_mcse"] > 0).all()
    assert tab["distance"].iloc[0] > tab["distance"].iloc[1]


def test_qq_envelope_by_hand():
    q, mcse = analysis.qq_envelope([0.5, 0.975], 400)
    np.testing.assert_allclose(q, [0.0, st.norm.ppf(0.975)])
    assert mcse[0] == pytest.approx(0.5 / 20 * math.sqrt(2 * math.pi))
    assert mcse[1] == pytest.approx(math.sqrt(0.975 * 0.025 / 400) / st.norm.pdf(q[1]))


# ------------------------------------------------------------- tables
def test_design_cells_cell_rows_and_attach_targets():
    summary = pd.DataFrame(
        {
            "n": [10, 10, 20, 20],
            "truth.params.p": [0.1, 0.5, 0.1, 0.5],
            "estimator": "mle",
            "param": "p",
            "true_value": [0.1, 0.5, 0.1, 0.5],
            "crlb": [0.009, 0.025, 0.0045, 0.0125],
        }
    )
    cells = analysis.design_cells(summary, ["truth.params.p"])
    assert [c for c, _ in cells] == [{"truth.params.p": 0.1}, {"truth.params.p": 0.5}]
    assert list(cells[1][1]["n"]) == [10, 20]
    assert analysis.design_cells(summary, [])[0][0] == {}
    reps = summary[["n", "truth.params.p", "estimator", "param"]].assign(estimate=0.2)
    rows = analysis.cell_rows(reps, {"truth.params.p": 0.5})
    assert list(rows["n"]) == [10, 20]
    out = analysis.attach_targets(rows, summary, ["n", "truth.params.p"])
    assert list(out["crlb"]) == [0.025, 0.0125]
    assert list(out["true_value"]) == [0.5, 0.5]


def test_exceedance_counts_estimates_at_infinity_as_exceeding():
    """ν̂ = ∞ (a boundary fit, stored as a failure with estimate inf) certainly exceeds
    any δ: it is counted, not dropped (before, 1303 of 2000 such replicates were left
    out at n = 10, which made P(|ν̂ − ν| > δ) look small)."""
    df = pd.DataFrame(
        {
            "n": 10,
            "estimator": "mle",
            "param": "nu",
            "estimate": [5.0, 5.5, np.inf, np.inf, np.nan],
            "converged": [True, True, False, False, False],
        }
    )
    out = analysis.exceedance(df, 5.0, 1.0).iloc[0]
    assert out["n_rep"] == 4 and out["n_inf"] == 2
    assert out["exceed"] == 0.5
