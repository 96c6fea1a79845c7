"""A boundary reached by the MLE is an estimate (ν̂ = ∞ for a t, size = ∞ for a negative
binomial), not a failure; and estimators are compared like for like (``compare``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.optimize as so
import scipy.stats as st
from omegaconf import OmegaConf

from mlesim.engine import chunk_data, plan, simulate
from mlesim.pipeline import run_pipeline
from mlesim.summarise import summarise
from tests.conftest import Z, compose_config, study_spec


def _config(*overrides: str) -> dict:
    config = OmegaConf.to_container(compose_config(list(overrides)), resolve=True)
    config.pop("hydra", None)
    return config


def _t_study(reps: int):
    return study_spec(
        _config("truth=student_t"),
        n=[20],
        replications=reps,
        truth={"family": "student_t", "params": {"mu": 1.0, "sigma": 2.0, "nu": 5.0}},
        estimators={"mle": {"kind": "mle"}, "median": {"kind": "median"}},
    )


def _reference_fit(x: np.ndarray) -> np.ndarray:
    """(μ̂, σ̂, ν̂) of one sample by the same rule, from scipy alone: the best of scipy's
    t fit (polished by a tight Nelder–Mead) and the normal limit (mean, divisor-n SD,
    ν = ∞)."""
    df, loc, scale = st.t.fit(x)

    def nll(z):
        return -st.t.logpdf(x, np.exp(z[2]), z[0], np.exp(z[1])).sum()

    z = so.minimize(
        nll,
        [loc, np.log(scale), np.log(df)],
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000},
    ).x
    normal = st.norm.logpdf(x, x.mean(), x.std()).sum()
    if normal >= -nll(z) or np.exp(z[2]) > 1e6:
        return np.array([x.mean(), x.std(), np.inf])
    return np.array([z[0], np.exp(z[1]), np.exp(z[2])])


def test_the_t_mle_counts_every_replicate_and_matches_an_independent_fit():
    """t₅ at n = 20 (μ = 1, σ = 2): about 45% of samples reach ν̂ = ∞. Their μ̂, σ̂ (the
    normal limit) now count: n_rep = R for every MLE row, μ̂ is unbiased (symmetry:
    |bias| < 4 MCSE), ν's row reports its share at the edge, and the estimates agree with
    scipy's fits under the same rule, replicate by replicate."""
    spec = _t_study(2000)
    reps = simulate(spec)
    out = summarise(spec, reps, extended=True).set_index(["estimator", "param"])
    assert (out["n_rep"] == 2000).all() and (out["n_failed"] == 0).all()
    mu = out.loc[("mle", "mu")]
    assert abs(mu["bias"]) < Z * mu["bias_mcse"]
    nu = out.loc[("mle", "nu")]
    inf = np.isinf(reps.loc[(reps["estimator"] == "mle") & (reps["param"] == "nu"), "estimate"])
    assert nu["n_inf"] == inf.sum() and 0.3 < inf.mean() < 0.6
    assert nu["bias"] == np.inf and np.isnan(nu["empse"])
    # the same data sets, refitted by scipy (the first 40 replicates)
    task = plan(spec)[0]
    x = chunk_data(task)[1]["x"][:40]
    mle = reps[reps["estimator"] == "mle"].pivot(
        index="replicate", columns="param", values="estimate"
    )
    ours = mle.loc[range(40), ["mu", "sigma", "nu"]].to_numpy()
    ref = np.array([_reference_fit(row) for row in x])
    np.testing.assert_array_equal(np.isinf(ours[:, 2]), np.isinf(ref[:, 2]))
    np.testing.assert_allclose(ours[:, :2], ref[:, :2], rtol=1e-4)
    finite = np.isfinite(ref[:, 2])
    np.testing.assert_allclose(ours[finite, 2], ref[finite, 2], rtol=1e-3)


def test_negative_binomial_under_dispersion_is_an_estimate_in_the_summary():
    spec = study_spec(
        _config("truth=negative_binomial"),
        n=[15],
        replications=300,
        truth={"family": "negative_binomial", "params": {"mu": 3.0, "size": 50.0}},
    )
    out = summarise(spec, simulate(spec), extended=True).set_index("param")
    assert (out["n_rep"] == 300).all()
    assert out.loc["size", "n_inf"] > 50 and out.loc["size", "mse"] == np.inf
    assert abs(out.loc["mu", "bias"]) < Z * out.loc["mu", "bias_mcse"]  # μ̂ = x̄: unbiased


def _fragile_study(compare: str):
    estimators = {
        "mle": {"kind": "mle"},
        "fragile": {"_target_": "tests.plugin_examples.fails_above", "params": ["mu"], "cut": 1.0},
    }
    return study_spec(_config(), n=[5], replications=400, compare=compare, estimators=estimators)


def test_compare_own_and_common_count_the_known_subset(tmp_path):
    """The plugin fails exactly where the first observation exceeds 1 (P = 0.159 for
    N(0, 1)): with ``own`` each estimator keeps its own successes; with ``common`` both
    rest on the replicates where both succeeded, and the report says which."""
    spec = _fragile_study("own")
    x = np.concatenate([chunk_data(t)[1]["x"] for t in plan(spec)])
    bad = int((x[:, 0] > 1.0).sum())
    assert 20 < bad < 120
    reps = simulate(spec)
    own = summarise(spec, reps, extended=True).set_index(["estimator", "param"])
    assert own.loc[("fragile", "mu"), "n_rep"] == 400 - bad
    assert own.loc[("mle", "mu"), "n_rep"] == 400 and own.loc[("mle", "mu"), "n_failed"] == 0
    assert (own["n_rep_common"] == 400 - bad).all()
    common_spec = _fragile_study("common")
    common = summarise(common_spec, reps, extended=True).set_index(["estimator", "param"])
    assert (common["n_rep"] == 400 - bad).all() and (common["n_failed"] == bad).all()
    # the MLE on the common set differs from the MLE on all replicates
    assert common.loc[("mle", "mu"), "mean"] != own.loc[("mle", "mu"), "mean"]
    run_pipeline(spec, tmp_path / "own", progress=False)
    assert "Estimators on different replicate sets" in (tmp_path / "own" / "report.md").read_text()
    run_pipeline(common_spec, tmp_path / "common", progress=False)
    text = (tmp_path / "common" / "report.md").read_text()
    assert "Like for like" in text and "different replicate sets" not in text
    summary = pd.read_csv(tmp_path / "common" / "summary.csv")
    assert (summary["n_rep"] == 400 - bad).all()
