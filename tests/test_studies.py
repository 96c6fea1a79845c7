"""End-to-end tests of the consistency, crlb_efficiency and asymptotic_normality presets
(composed through Hydra, run by the pipeline in a temporary directory), with Monte Carlo
checks against exact theory."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as st
from conftest import Z, compose_config

from mlesim import analysis
from mlesim.errors import ConfigError
from mlesim.families import get_family
from mlesim.pipeline import run_pipeline
from mlesim.study import validate

FAMILIES = {
    "normal": ["mu", "sigma2"],
    "poisson": ["lam"],
    "bernoulli": ["p"],
    "exponential": ["rate"],
}


def run(tmp_path, *overrides: str) -> dict:
    """Compose, validate and run one study; returns run_pipeline's dict."""
    spec = validate(compose_config(["runner.progress=false", *overrides]))
    return run_pipeline(spec, tmp_path)


def rows(summary, estimator: str, param: str):
    sel = summary[(summary["estimator"] == estimator) & (summary["param"] == param)]
    return sel.sort_values("n")


# ------------------------------------------------------------------ consistency
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_consistency_runs_for_every_family(tmp_path, family):
    out = run(
        tmp_path, "experiment=consistency", "replications=50", "n=[10,100]", f"truth={family}"
    )
    params = FAMILIES[family]
    assert list(dict.fromkeys(out["summary"]["param"])) == params
    names = sorted(p.name for p, _ in out["figures"])
    assert names == sorted(f"consistency_{p}.png" for p in params)
    for path, caption in out["figures"]:
        assert path.stat().st_size > 10_000 and "RMSE" in caption
    report = (tmp_path / "report.md").read_text()
    for p in params:
        assert f"**{p}**: RMSE mle slope" in report


def test_consistency_slope_is_minus_one_half_at_the_normal(tmp_path):
    """RMSE(μ̂) = σ/√n exactly and RMSE(σ̂²) = σ²√(2n − 1)/n: slope −1/2 within 4 SE."""
    out = run(tmp_path, "experiment=consistency", "replications=2000", "n=[100,1000]")
    for param in ("mu", "sigma2"):
        r = rows(out["summary"], "mle", param)
        mcse = analysis.rmse_mcse(r["mse"], r["mse_mcse"])
        fit = analysis.rate_slope(r["n"], r["rmse"], mcse)
        assert abs(fit.slope + 0.5) < Z * fit.se, (param, fit)
        assert fit.se < 0.02  # the test has power: the SE is small


def test_consistency_rejects_a_single_sample_size_and_bad_options():
    with pytest.raises(ConfigError) as err:
        validate(compose_config(["experiment=consistency", "n=[10]"]))
    assert err.value.key == "n"
    with pytest.raises(ConfigError) as err:
        validate(compose_config(["experiment=consistency", "analysis.delta_scale=foo"]))
    assert err.value.key == "analysis.delta_scale" and "information" in err.value.message
    with pytest.raises(ConfigError) as err:
        validate(compose_config(["experiment=consistency", "analysis.delta=-1"]))
    assert err.value.key == "analysis.delta"


# ------------------------------------------------------------------ crlb_efficiency
@pytest.mark.parametrize(
    ("family", "kept", "dropped"),
    [
        ("normal", ["mle", "mean", "median"], []),
        ("poisson", ["mle", "mean"], ["median"]),
        ("bernoulli", ["mle", "mean"], ["median"]),
        ("exponential", ["mle"], ["mean", "median"]),
    ],
)
def test_crlb_efficiency_drops_estimators_that_do_not_apply(tmp_path, family, kept, dropped):
    out = run(
        tmp_path, "experiment=crlb_efficiency", "replications=50", "n=[11,101]", f"truth={family}"
    )
    assert list(dict.fromkeys(out["summary"]["estimator"])) == kept
    assert [p.name for p, _ in out["figures"]] == ["crlb_efficiency.png"]
    assert np.isfinite(out["summary"]["efficiency"]).all()
    report = (tmp_path / "report.md").read_text()
    assert ("Left out" in report) == bool(dropped)
    for label in dropped:
        assert label in report.split("Left out")[1]


def test_crlb_efficiency_option_errors_still_surface():
    with pytest.raises(ConfigError) as err:
        validate(
            compose_config(
                ["experiment=crlb_efficiency", "analysis.optional_estimators=[mle,nope]"]
            )
        )
    assert err.value.key == "analysis.optional_estimators"
    # an optional estimator with a bad option is an error, not silently dropped
    with pytest.raises(ConfigError) as err:
        validate(
            compose_config(
                ["experiment=crlb_efficiency", "truth=poisson", "+estimators.median.foo=1"]
            )
        )
    assert err.value.key == "estimators.median.foo"
    # without the option, an inapplicable estimator is the usual error
    with pytest.raises(ConfigError) as err:
        validate(
            compose_config(
                ["experiment=crlb_efficiency", "truth=poisson", "analysis.optional_estimators=[]"]
            )
        )
    assert err.value.key == "estimators.median.kind"


def test_poisson_mle_attains_the_bound_at_every_n(tmp_path):
    """Var(x̄) = λ/n = CRLB exactly: efficiency 1 within 4 MCSE at small and large n."""
    out = run(
        tmp_path,
        "experiment=crlb_efficiency",
        "truth=poisson",
        "replications=2000",
        "n=[11,1001]",
    )
    for _, row in rows(out["summary"], "mle", "lam").iterrows():
        assert abs(row["efficiency"] - 1.0) < Z * row["efficiency_mcse"], row.to_dict()


def test_normal_median_efficiency_matches_exact_theory(tmp_path):
    """At n = 1001 the median's efficiency is the exact finite-n value (≈ 2/π), the
    mean's is 1, within 4 MCSE."""
    out = run(tmp_path, "experiment=crlb_efficiency", "replications=2000", "n=[1001]")
    normal = get_family("normal")
    exact = analysis.median_efficiency_exact(normal, [0.0, 1.0], 1001)
    assert abs(exact - 2 / math.pi) < 1e-3  # the exact value has reached its limit
    med = rows(out["summary"], "median", "mu").iloc[0]
    assert abs(med["efficiency"] - exact) < Z * med["efficiency_mcse"], med.to_dict()
    mean = rows(out["summary"], "mean", "mu").iloc[0]
    assert abs(mean["efficiency"] - 1.0) < Z * mean["efficiency_mcse"], mean.to_dict()
    # and the two are told apart: 1 − 2/π is many MCSEs
    assert (1 - 2 / math.pi) > 8 * med["efficiency_mcse"]


def test_crlb_efficiency_does_not_promise_efficiency_one_under_misspecification(tmp_path):
    """A laplace model fitted to normal data: the MLE's limit is not 1 (the sandwich
    variance is not the model's bound), and the report says so instead of claiming it."""
    run(
        tmp_path,
        "experiment=crlb_efficiency",
        "model=laplace",
        "replications=50",
        "n=[11,101]",
        "analysis.optional_estimators=[mean,median]",
    )
    report = (tmp_path / "report.md").read_text()
    assert "**Misspecification.**" in report and "sandwich" in report
    assert "theory limit 1.0000" not in report


# ------------------------------------------------------------------ variance_bias
def test_variance_bias_draws_no_wrong_theory_for_a_known_mean(tmp_path):
    """With μ fixed at its true value, Σ(x − μ)²/n is unbiased: the −σ²/n theory of the
    MLE does not apply and is neither drawn nor tabulated for it."""
    run(
        tmp_path,
        "experiment=variance_bias",
        "replications=200",
        "n=[2,10]",
        "+estimators.known={kind:mle,fixed:{mu:0.0}}",
    )
    report = (tmp_path / "report.md").read_text()
    table = report.split("**Bias against exact theory**")[1].split("## Summary")[0]
    assert "| mle |" in table and "| known |" not in table


def test_variance_bias_refuses_design_factors():
    with pytest.raises(ConfigError) as err:
        validate(compose_config(["experiment=variance_bias", "+design.truth.params.sigma2=[1,4]"]))
    assert err.value.key == "design"


# ------------------------------------------------------------------ summary (generic)
def test_summary_study_draws_every_design_cell(tmp_path):
    out = run(tmp_path, "replications=20", "n=[5,50]", "+design.truth.params.mu=[0.0,2.0]")
    names = sorted(p.name for p, _ in out["figures"])
    assert names == sorted(
        f"summary_{p}_truth.params.mu={mu}.png" for p in ("mu", "sigma2") for mu in (0.0, 2.0)
    )


# ------------------------------------------------------------------ asymptotic_normality
def exponential_ks_exact(n: int) -> float:
    """sup_t |P(z ≤ t) − Φ(t)| for z = √n (λ̂/λ − 1), λ̂ = 1/x̄ of n exponentials:
    λ̂/λ = n/G with G ~ Gamma(n, 1), so P(z ≤ t) = P(G ≥ n / (1 + t/√n))."""
    t = np.linspace(-math.sqrt(n) + 1e-9, 12, 400_001)
    cdf = st.gamma(n).sf(n / (1 + t / math.sqrt(n)))
    return float(np.max(np.abs(cdf - st.norm.cdf(t))))


def test_asymptotic_normality_exponential(tmp_path):
    out = run(tmp_path, "experiment=asymptotic_normality", "replications=2000", "n=[5,1000]")
    names = sorted(p.name for p, _ in out["figures"])
    assert names == ["normality_distance.png", "normality_qq_rate.png"]
    reps = analysis.attach_targets(out["replicates"], out["summary"], ["n"])
    reps["z"] = analysis.standardise(reps["estimate"], reps["true_value"], reps["crlb"])
    tab = analysis.normality_table(reps, n_boot=200, seed=1).set_index("n")
    small, large = tab.loc[5], tab.loc[1000]
    # the KS distance at n = 5 is the exact distance of the skewed law of z (≈ 0.117)
    assert abs(small["distance"] - exponential_ks_exact(5)) < Z * small["distance_mcse"]
    # and it falls with n
    gap = small["distance"] - large["distance"]
    assert gap > Z * math.hypot(small["distance_mcse"], large["distance_mcse"])
    report = (tmp_path / "report.md").read_text()
    assert "Kolmogorov–Smirnov distance" in report and "noise median" in report


@pytest.mark.parametrize("family", ["normal", "poisson", "bernoulli"])
def test_asymptotic_normality_runs_for_other_families(tmp_path, family):
    out = run(
        tmp_path,
        "experiment=asymptotic_normality",
        "replications=50",
        "n=[10,100]",
        f"truth={family}",
        "analysis.distance=ad",
        "analysis.n_boot=20",
    )
    names = {p.name for p, _ in out["figures"]}
    assert names == {"normality_distance.png"} | {f"normality_qq_{p}.png" for p in FAMILIES[family]}


def test_asymptotic_normality_rejects_qq_sizes_outside_the_grid():
    with pytest.raises(ConfigError) as err:
        validate(compose_config(["experiment=asymptotic_normality", "analysis.qq_n=[7]"]))
    assert err.value.key == "analysis.qq_n"
