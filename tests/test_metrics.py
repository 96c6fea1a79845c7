"""Tests of mlesim.metrics: hand computations, cross-checks and Monte Carlo checks."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mlesim import metrics
from mlesim.metrics import EXTENDED_COLUMNS, SUMMARY_COLUMNS, performance

EST = [1.0, 2.0, 4.0]
SE = [0.5, 1.0, 2.0]
TRUE = 2.0
Z95 = float(stats.norm.ppf(0.975))


def close(a: float, b: float, tol: float = 1e-12) -> bool:
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


def tiny_frame() -> pd.DataFrame:
    return pd.DataFrame({"estimate": EST, "se": SE, "replicate": [0, 1, 2]})


# --------------------------------------------------------------- hand computations
# estimates 1, 2, 4: mean 7/3, deviations -4/3, -1/3, 5/3, sum of squares 14/3.


def test_bias_by_hand():
    value, mcse = metrics.bias(EST, TRUE)
    assert close(value, (1 + 2 + 4) / 3 - 2)
    ss = (1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2
    assert close(ss, 14 / 3)
    assert close(mcse, math.sqrt(ss / (3 * 2)))


def test_rel_bias_by_hand():
    value, mcse = metrics.rel_bias(EST, TRUE)
    assert close(value, (1 / 3) / 2)
    assert close(mcse, math.sqrt((14 / 3) / 6) / 2)
    value, mcse = metrics.rel_bias(EST, -2.0)
    assert close(value, (7 / 3 + 2) / -2)
    assert close(mcse, math.sqrt((14 / 3) / 6) / 2)


def test_rel_bias_nan_when_true_is_zero():
    assert all(math.isnan(v) for v in metrics.rel_bias(EST, 0.0))


def test_empse_by_hand():
    # Morris / rsimsum normal-theory MCSE; the kurtosis-aware default is tested in
    # test_metrics_mcse.py (for these three estimates it is undefined: k < 1)
    value, mcse = metrics.empse(EST, empse_mcse="normal")
    assert close(value, math.sqrt((14 / 3) / 2))
    assert close(mcse, math.sqrt((14 / 3) / 2) / math.sqrt(2 * 2))


def test_mse_by_hand():
    value, mcse = metrics.mse(EST, TRUE)
    sq = [(1 - 2) ** 2, (2 - 2) ** 2, (4 - 2) ** 2]  # 1, 0, 4
    m = (sq[0] + sq[1] + sq[2]) / 3
    assert close(value, 5 / 3) and close(m, 5 / 3)
    dev2 = (sq[0] - m) ** 2 + (sq[1] - m) ** 2 + (sq[2] - m) ** 2  # 78/9
    assert close(mcse, math.sqrt(dev2 / (3 * 2)))
    assert close(mcse, math.sqrt(13 / 9))


def test_modse_by_hand():
    value, mcse = metrics.modse(SE)
    s2 = [0.25, 1.0, 4.0]
    m = (s2[0] + s2[1] + s2[2]) / 3  # 1.75
    var = ((s2[0] - m) ** 2 + (s2[1] - m) ** 2 + (s2[2] - m) ** 2) / 2  # 3.9375
    assert close(value, math.sqrt(1.75))
    assert close(mcse, math.sqrt(var / (4 * 3 * m)))
    assert close(mcse, math.sqrt(3.9375 / 21))


def test_modse_relerr_by_hand():
    value, mcse = metrics.modse_relerr(EST, SE, empse_mcse="normal")  # Morris's formula
    ratio = math.sqrt(1.75) / math.sqrt(7 / 3)
    assert close(value, 100 * (ratio - 1))
    expected = 100 * ratio * math.sqrt(3.9375 / (4 * 3 * 1.75**2) + 1 / (2 * 2))
    assert close(mcse, expected)


def test_coverage_becoverage_rejection_by_hand():
    # Intervals at z = 1.96: [0.02, 1.98], [0.04, 3.96], [0.08, 7.92].
    value, mcse = metrics.coverage(EST, SE, TRUE, 0.95)
    assert close(value, 2 / 3)
    assert close(mcse, math.sqrt((2 / 3) * (1 / 3) / 3))
    # theta_bar = 7/3 lies in the same two intervals.
    value, mcse = metrics.becoverage(EST, SE, 0.95)
    assert close(value, 2 / 3)
    assert close(mcse, math.sqrt((2 / 3) * (1 / 3) / 3))
    # |est - 0.5| / se = 1, 1.5, 1.75: no rejection; at null 0 all ratios are 2 > 1.96.
    assert metrics.rejection(EST, SE, 0.5, 0.95) == (0.0, 0.0)
    assert metrics.rejection(EST, SE, 0.0, 0.95) == (1.0, 0.0)
    # at level 0.99 (z = 2.576) none of the ratios 2 rejects
    assert metrics.rejection(EST, SE, 0.0, 0.99) == (0.0, 0.0)


def test_efficiency_by_hand():
    # estimates 0, 0, 0, 0, 10: mean 2, deviations -2 (x4) and 8
    est = [0.0, 0.0, 0.0, 0.0, 10.0]
    s2 = (4 * 2**2 + 8**2) / 4  # 20
    m4 = (4 * 2**4 + 8**4) / 5  # 832
    value, mcse = metrics.efficiency(est, 3.0)
    assert close(value, 3.0 / s2)
    assert close(mcse, 3.0 / s2**2 * math.sqrt((m4 - s2**2) / 5))


def test_efficiency_mcse_nan_when_fourth_moment_below_variance_squared():
    value, mcse = metrics.efficiency(EST, 1.0)
    assert close(value, 1.0 / (7 / 3))
    # m4 = 882/243 < empse**4 = 49/9: no MCSE
    assert math.isnan(mcse)


def test_rel_precision_by_hand():
    a, b = [1.0, 2.0, 4.0], [2.0, 2.0, 3.0]
    value, mcse = metrics.rel_precision(b, a)
    ssa, ssb = 14 / 3, (1 / 9 + 1 / 9 + 4 / 9)
    sab = (-4 / 3) * (-1 / 3) + (-1 / 3) * (-1 / 3) + (5 / 3) * (2 / 3)
    rho2 = sab**2 / (ssa * ssb)  # 25/28
    assert close(value, 100 * (ssa / ssb - 1)) and close(value, 600.0)
    assert close(mcse, 200 * (ssa / ssb) * math.sqrt((1 - rho2) / 2))
    assert close(mcse, 1400 * math.sqrt(3 / 56))


def test_performance_matches_hand_values():
    out = performance(tiny_frame(), TRUE, crlb=0.5, extended=True, empse_mcse="normal").iloc[0]
    assert out["n_rep"] == 3 and out["n_failed"] == 0 and out["n_se"] == 3
    assert close(out["true_value"], 2.0)
    assert close(out["mean"], 7 / 3)
    assert close(out["bias"], 1 / 3)
    assert close(out["bias_mcse"], math.sqrt(7 / 9))
    assert close(out["rel_bias"], 1 / 6)
    assert close(out["rel_bias_mcse"], math.sqrt(7 / 9) / 2)
    assert close(out["empse"], math.sqrt(7 / 3))
    assert close(out["empse_mcse"], math.sqrt(7 / 3) / 2)
    assert close(out["mse"], 5 / 3)
    assert close(out["mse_mcse"], math.sqrt(13 / 9))
    assert close(out["rmse"], math.sqrt(5 / 3))
    assert close(out["modse"], math.sqrt(1.75))
    assert close(out["modse_mcse"], math.sqrt(3.9375 / 21))
    assert close(out["coverage"], 2 / 3)
    assert close(out["becoverage"], 2 / 3)
    assert close(out["rejection"], 1.0)
    assert close(out["crlb"], 0.5)
    assert close(out["efficiency"], 0.5 / (7 / 3))
    assert math.isnan(out["rel_precision"])


# --------------------------------------------------------------------- cross-checks


def test_empse_and_mse_agree_with_numpy():
    x = np.random.default_rng(1234).normal(3.0, 2.0, size=57)
    assert close(metrics.empse(x)[0], float(np.std(x, ddof=1)))
    assert close(metrics.mse(x, 2.5)[0], float(np.mean((x - 2.5) ** 2)))
    assert close(metrics.bias(x, 2.5)[1], float(np.std(x, ddof=1) / np.sqrt(57)))


def test_coverage_known_intervals_and_zero_width():
    z = Z95
    # covers: inside; upper end exactly at theta; zero width at theta
    # misses: just above; zero width off theta
    est = np.array([1.0, 1.0 - z, 1.0, 1.0 + 2 * z, 1.5])
    se = np.array([0.1, 1.0, 0.0, 1.0, 0.0])
    assert (est[1] + z * se[1]) >= 1.0  # the upper end is at theta up to rounding
    value, mcse = metrics.coverage(est, se, 1.0, 0.95)
    assert close(value, 3 / 5)
    assert close(mcse, math.sqrt(0.6 * 0.4 / 5))
    assert metrics.coverage([2.0], [0.0], 2.0)[0] == 1.0
    assert metrics.coverage([2.0], [0.0], 2.0 + 1e-12)[0] == 0.0


def test_rejection_known_tests_and_zero_width():
    est = np.array([0.0, 3.0, -3.0, 1.9, 0.0, 1.0])
    se = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 0.0])
    value, mcse = metrics.rejection(est, se, 0.0, 0.95)
    assert close(value, 3 / 6)  # 3, -3 and the zero-width interval at 1 reject
    assert close(mcse, math.sqrt(0.25 / 6))


def test_coverage_uses_only_rows_with_finite_se():
    df = pd.DataFrame({"estimate": [1.0, 2.0, 4.0, 2.0], "se": [0.5, 1.0, 2.0, np.nan]})
    out = performance(df, 2.0, extended=True).iloc[0]
    assert out["n_rep"] == 4  # the NaN se row still counts for bias etc.
    assert close(out["mean"], 9 / 4)
    assert close(out["coverage"], 2 / 3)
    assert close(out["modse"], math.sqrt(1.75))


def test_wald_z_and_bad_level():
    assert close(metrics.wald_z(0.95), 1.959963984540054, 1e-12)
    with pytest.raises(ValueError):
        metrics.wald_z(1.0)
    with pytest.raises(ValueError):
        performance(tiny_frame(), 2.0, level=95)


# ------------------------------------------------------------------- table handling


def two_group_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "estimator": ["b"] * 3 + ["a"] * 3,
            "replicate": [0, 1, 2] * 2,
            "estimate": [1.0, 2.0, 4.0, 10.0, 11.0, 13.0],
            "se": [1.0] * 6,
            "truth": [2.0] * 3 + [11.0] * 3,
        }
    )


def test_column_order_and_extended_columns():
    df = two_group_frame()
    out = performance(df, 2.0, by="estimator")
    assert list(out.columns) == ["estimator", *SUMMARY_COLUMNS]
    assert len(SUMMARY_COLUMNS) == 19 and len(EXTENDED_COLUMNS) == 12
    ext = performance(df, 2.0, by=["estimator"], extended=True)
    assert list(ext.columns) == ["estimator", *SUMMARY_COLUMNS, *EXTENDED_COLUMNS]
    plain = performance(df, 2.0)
    assert list(plain.columns) == list(SUMMARY_COLUMNS) and len(plain) == 1
    assert out["n_rep"].dtype == np.int64 and out["n_failed"].dtype == np.int64
    assert out["n_se"].dtype == np.int64


def test_by_two_groups_sorted_and_true_as_column():
    out = performance(two_group_frame(), "truth", by="estimator")
    assert list(out["estimator"]) == ["a", "b"]
    assert list(out["true_value"]) == [11.0, 2.0]
    assert close(out["bias"].iloc[0], 34 / 3 - 11)
    assert close(out["bias"].iloc[1], 7 / 3 - 2)
    as_number = performance(two_group_frame(), 2.0, by="estimator")
    assert close(as_number["bias"].iloc[0], 34 / 3 - 2)


def test_true_column_must_be_constant_within_group():
    df = two_group_frame()
    df.loc[0, "truth"] = 3.0
    with pytest.raises(ValueError, match="true"):
        performance(df, "truth", by="estimator")


def test_several_by_columns():
    df = pd.concat(
        [two_group_frame().assign(n=50), two_group_frame().assign(n=10)], ignore_index=True
    )
    out = performance(df, "truth", by=["n", "estimator"])
    assert list(out.columns[:2]) == ["n", "estimator"]
    assert list(zip(out["n"], out["estimator"], strict=True)) == [
        (10, "a"),
        (10, "b"),
        (50, "a"),
        (50, "b"),
    ]


def test_se_none_gives_nan_se_measures():
    out = performance(tiny_frame(), 2.0, se=None, extended=True).iloc[0]
    for col in ["modse", "coverage", "coverage_mcse", "modse_relerr", "rejection"]:
        assert math.isnan(out[col])
    assert close(out["bias"], 1 / 3)


def test_crlb_as_column_and_none():
    df = tiny_frame().assign(bound=0.7)
    out = performance(df, 2.0, crlb="bound").iloc[0]
    assert close(out["crlb"], 0.7) and close(out["efficiency"], 0.7 / (7 / 3))
    out = performance(df, 2.0).iloc[0]
    assert math.isnan(out["crlb"]) and math.isnan(out["efficiency"])


def test_single_replicate():
    df = pd.DataFrame({"estimate": [3.0], "se": [1.0]})
    out = performance(df, 2.0, crlb=1.0, extended=True).iloc[0]
    assert out["mean"] == 3.0 and out["bias"] == 1.0 and out["mse"] == 1.0
    for col in ["bias_mcse", "empse", "empse_mcse", "mse_mcse", "coverage_mcse", "efficiency"]:
        assert math.isnan(out[col]), col


# ------------------------------------------------------------------------- failures


def test_failures_excluded_and_counted():
    df = pd.DataFrame(
        {
            "estimate": [1.0, 2.0, 4.0, 100.0, np.nan, np.inf],
            "se": [0.5, 1.0, 2.0, 1.0, 1.0, 1.0],
            "converged": [True, True, True, False, True, False],
        }
    )
    out = performance(df, 2.0, crlb=0.5, extended=True).iloc[0]
    ref = performance(tiny_frame(), 2.0, crlb=0.5, extended=True).iloc[0]
    assert out["n_rep"] == 3 and out["n_failed"] == 3
    pd.testing.assert_series_equal(out.drop("n_failed"), ref.drop("n_failed"))


def test_estimates_at_infinity_count_with_infinite_bias_and_mse():
    """ν̂ = ∞ (an edge of the parameter space) is an estimate: it counts in n_rep, makes
    bias and MSE infinite instead of leaving the finite subset, and its interval (SE inf)
    misses every finite true value."""
    df = pd.DataFrame(
        {
            "estimate": [4.0, 6.0, np.inf, np.inf, np.nan],
            "se": [1.0, 1.0, np.inf, np.inf, 1.0],
            "converged": [True, True, True, True, False],
        }
    )
    out = performance(df, 5.0, crlb=0.5, extended=True).iloc[0]
    assert out["n_rep"] == 4 and out["n_failed"] == 1 and out["n_inf"] == 2
    assert out["bias"] == np.inf and out["mse"] == np.inf and out["rmse"] == np.inf
    assert np.isnan(out["empse"]) and np.isnan(out["efficiency"]) and np.isnan(out["bias_mcse"])
    assert out["coverage"] == 0.5 and out["n_se"] == 4  # 4 ± 1.96 and 6 ± 1.96 cover 5
    assert out["median"] == np.inf  # the middle of 4, 6, inf, inf


def test_converged_column_absent_or_renamed():
    df = tiny_frame().assign(ok=[True, False, True])
    assert performance(df, 2.0)["n_failed"].iloc[0] == 0  # no "converged" column
    assert performance(df, 2.0, converged="ok")["n_failed"].iloc[0] == 1


def test_all_failed_group_has_row_and_no_warnings():
    df = two_group_frame().assign(converged=[True] * 3 + [False] * 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = performance(df, 2.0, by="estimator", crlb=1.0, extended=True, reference="b")
    row = out.set_index("estimator").loc["a"]
    assert row["n_rep"] == 0 and row["n_failed"] == 3 and row["n_se"] == 0
    counts = ("true_value", "n_rep", "n_failed", "n_se", "n_inf")
    measures = [c for c in (*SUMMARY_COLUMNS, *EXTENDED_COLUMNS) if c not in counts]
    measures.remove("crlb")
    assert row[measures].isna().all()
    assert out.set_index("estimator").loc["b", "n_rep"] == 3


def test_nan_estimates_only_group_no_warnings():
    df = pd.DataFrame({"estimate": [np.nan, np.nan], "se": [np.nan, 1.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = performance(df, 0.0, extended=True).iloc[0]
    assert out["n_rep"] == 0 and out["n_failed"] == 2 and math.isnan(out["mean"])


# -------------------------------------------------------------------- rel_precision


def paired_frame(rng: np.random.Generator, n: int, rho: float) -> pd.DataFrame:
    """Method A with sd 1, method B with sd 0.5, correlation rho: 300 % more precise."""
    z1, z2 = rng.standard_normal((2, n))
    a = 1.0 + z1
    b = 1.0 + 0.5 * (rho * z1 + math.sqrt(1 - rho**2) * z2)
    rep = np.arange(n)
    return pd.DataFrame(
        {
            "estimator": ["A"] * n + ["B"] * n,
            "replicate": np.concatenate([rep, rep]),
            "estimate": np.concatenate([a, b]),
            "se": 1.0,
        }
    )


def test_rel_precision_against_reference():
    df = paired_frame(np.random.default_rng(1234), 2000, 0.6)
    out = performance(df, 1.0, by="estimator", reference="A", extended=True)
    a, b = out.iloc[0], out.iloc[1]
    assert a["rel_precision"] == 0.0 and a["rel_precision_mcse"] == 0.0
    assert abs(b["rel_precision"] - 300.0) < 4 * b["rel_precision_mcse"]
    assert close(b["rel_precision"], 100 * ((a["empse"] / b["empse"]) ** 2 - 1), 1e-10)


def test_rel_precision_pairs_by_replicate_not_row_order():
    df = paired_frame(np.random.default_rng(1234), 200, 0.9)
    shuffled = pd.concat([df.iloc[:200], df.iloc[200:].iloc[::-1]], ignore_index=True)
    a = performance(df, 1.0, by="estimator", reference="A", extended=True)
    b = performance(shuffled, 1.0, by="estimator", reference="A", extended=True)
    assert close(a["rel_precision_mcse"].iloc[1], b["rel_precision_mcse"].iloc[1], 1e-9)
    # with rho = 0.9 the pairing matters: unpaired (rho ~ 0) the MCSE would be ~2.3x larger
    b_unpaired = df["estimate"].to_numpy()[200:][::-1]
    wrong = metrics.rel_precision(b_unpaired, df["estimate"].to_numpy()[:200])[1]
    assert wrong > 1.5 * a["rel_precision_mcse"].iloc[1]


def test_rel_precision_uses_only_replicates_both_methods_have():
    df = paired_frame(np.random.default_rng(1234), 50, 0.5)
    df.loc[3, "estimate"] = np.nan  # replicate 3 fails for A
    out = performance(df, 1.0, by="estimator", reference="A", extended=True)
    est = df["estimate"].to_numpy()
    keep = np.arange(50) != 3
    expected = metrics.rel_precision(est[50:][keep], est[:50][keep])
    assert close(out["rel_precision"].iloc[1], expected[0])
    assert close(out["rel_precision_mcse"].iloc[1], expected[1])


def test_rel_precision_nan_without_reference():
    # reference given but method not in by now raises: test_reference_without_method_in_by_raises
    df = paired_frame(np.random.default_rng(1234), 20, 0.5)
    out = performance(df, 1.0, by="estimator", extended=True)
    assert out["rel_precision"].isna().all()


# ------------------------------------------------------------------ generic tables


def test_arbitrary_column_names():
    df = pd.DataFrame(
        {
            "scenario": ["s2", "s2", "s2", "s1", "s1", "s1"],
            "theta_hat": [1.0, 2.0, 4.0, 0.0, 1.0, 2.0],
            "std_err": [0.5, 1.0, 2.0, 1.0, 1.0, 1.0],
            "target": [2.0, 2.0, 2.0, 1.0, 1.0, 1.0],
        }
    )
    out = performance(df, "target", by="scenario", estimate="theta_hat", se="std_err")
    assert list(out["scenario"]) == ["s1", "s2"]
    s2 = out.iloc[1]
    assert close(s2["bias"], 1 / 3) and close(s2["coverage"], 2 / 3)
    assert close(s2["modse"], math.sqrt(1.75))
    assert close(out.iloc[0]["bias"], 0.0) and close(out.iloc[0]["empse"], 1.0)


# ---------------------------------------------------------------- Monte Carlo checks


def test_large_normal_study_within_four_mcse():
    rng = np.random.default_rng(1234)
    n = 20000
    df = pd.DataFrame({"estimate": rng.normal(1.0, 0.5, n), "se": 0.5})
    r = performance(df, 1.0, crlb=0.25, extended=True).iloc[0]
    assert abs(r["bias"]) < 4 * r["bias_mcse"]
    assert abs(r["empse"] - 0.5) < 4 * r["empse_mcse"]
    assert abs(r["mse"] - 0.25) < 4 * r["mse_mcse"]
    assert abs(r["coverage"] - 0.95) < 4 * r["coverage_mcse"]
    assert abs(r["becoverage"] - 0.95) < 4 * r["becoverage_mcse"]
    assert abs(r["efficiency"] - 1.0) < 4 * r["efficiency_mcse"]
    assert abs(r["modse_relerr"]) < 4 * r["modse_relerr_mcse"]
    # each test statistic estimate / 0.5 ~ N(2, 1): power = P(|N(2, 1)| > z)
    power = stats.norm.sf(Z95 - 2.0) + stats.norm.cdf(-Z95 - 2.0)
    assert abs(r["rejection"] - power) < 4 * r["rejection_mcse"]


def study_table(estimates: np.ndarray, se: np.ndarray | float = 0.5) -> pd.DataFrame:
    """Long table of ``estimates`` of shape (n_studies, nsim), one study per group."""
    n_studies, nsim = estimates.shape
    return pd.DataFrame(
        {
            "study": np.repeat(np.arange(n_studies), nsim),
            "estimate": estimates.ravel(),
            "se": np.broadcast_to(se, estimates.shape).ravel(),
        }
    )


# 400 studies: the sd of 400 values has relative SE ~ 1/sqrt(2*399) ~ 3.5 %; allow 4x = 14 %.
N_STUDIES, NSIM, REL_TOL = 400, 200, 0.14


def assert_mcse_matches_spread(out: pd.DataFrame, measure: str) -> None:
    spread = float(np.std(out[measure], ddof=1))
    reported = float(np.mean(out[f"{measure}_mcse"]))
    assert abs(reported / spread - 1) < REL_TOL, (measure, reported, spread)


@pytest.fixture(scope="module")
def normal_studies() -> pd.DataFrame:
    rng = np.random.default_rng(1234)
    est = rng.normal(1.2, 0.5, size=(N_STUDIES, NSIM))  # bias 0.2
    se = 0.5 * np.sqrt(rng.chisquare(10, size=(N_STUDIES, NSIM)) / 10)
    return performance(study_table(est, se), 1.0, by="study", crlb=0.25, extended=True)


@pytest.mark.parametrize(
    "measure",
    [
        "bias",
        "empse",
        "mse",
        "coverage",
        "becoverage",
        "efficiency",
        "modse",
        "modse_relerr",
        "rejection",
    ],
)
def test_mcse_formulas_match_spread_across_studies(normal_studies, measure):
    assert len(normal_studies) == N_STUDIES
    assert_mcse_matches_spread(normal_studies, measure)


def test_efficiency_mcse_robust_to_heavy_tails():
    # centred chi-square(4) estimates: excess kurtosis 3, so the normal-theory MCSE
    # crlb / empse**2 * sqrt(2 / (nsim - 1)) would be ~ sqrt(2.5) = 1.6x too small
    rng = np.random.default_rng(1234)
    est = 1.0 + 0.5 * (rng.chisquare(4, size=(N_STUDIES, NSIM)) - 4) / math.sqrt(8)
    out = performance(study_table(est), 1.0, by="study", crlb=0.25)
    assert_mcse_matches_spread(out, "efficiency")


def test_rel_precision_mcse_matches_spread():
    rng = np.random.default_rng(1234)
    frames = [paired_frame(rng, NSIM, 0.6).assign(study=s) for s in range(N_STUDIES)]
    out = performance(
        pd.concat(frames, ignore_index=True),
        1.0,
        by=["study", "estimator"],
        reference="A",
        extended=True,
    )
    b = out[out["estimator"] == "B"]
    assert_mcse_matches_spread(b, "rel_precision")


# ------------------------------------------------------------- reference checks


def test_reference_without_method_in_by_raises():
    df = paired_frame(np.random.default_rng(1234), 20, 0.5)
    with pytest.raises(ValueError, match=r"method='estimator'.*by=\[\]"):
        performance(df, 1.0, reference="A", extended=True)
    with pytest.raises(ValueError, match=r"by=\['study'\]"):
        performance(df.assign(study=1), 1.0, by="study", reference="A")
    with pytest.raises(ValueError, match="method='algo'.*not a column"):
        performance(df, 1.0, by="estimator", method="algo", reference="A")


def test_reference_not_among_methods_raises():
    df = paired_frame(np.random.default_rng(1234), 20, 0.5)
    with pytest.raises(ValueError, match=r"reference='C'.*'A', 'B'"):
        performance(df, 1.0, by="estimator", reference="C", extended=True)


# ------------------------------------------------------------ se column handling


def test_default_se_column_absent_means_no_se():
    df = tiny_frame().drop(columns="se")
    out = performance(df, 2.0, extended=True).iloc[0]
    ref = performance(tiny_frame(), 2.0, se=None, extended=True).iloc[0]
    pd.testing.assert_series_equal(out, ref)
    assert math.isnan(out["coverage"]) and out["n_se"] == 0
    assert close(out["bias"], 1 / 3)


def test_named_se_column_missing_raises_clearly():
    with pytest.raises(KeyError, match=r"se='std_err'.*columns.*'estimate', 'se', 'replicate'"):
        performance(tiny_frame(), 2.0, se="std_err")
    with pytest.raises(KeyError, match=r"estimate='theta_hat'.*columns"):
        performance(tiny_frame(), 2.0, estimate="theta_hat")


# ------------------------------------------------------------------------- n_se


def test_n_se_counts_replicates_behind_se_measures():
    df = pd.DataFrame(
        {
            "g": ["x"] * 6 + ["y"] * 2,
            "estimate": [1.0, 2.0, 4.0, 2.0, 3.0, np.nan, 1.0, 2.0],
            "se": [0.5, 1.0, 2.0, np.nan, -1.0, 1.0, np.inf, 1.0],
        }
    )
    out = performance(df, 2.0, by="g", extended=True).set_index("g")
    assert list(out["n_rep"]) == [5, 2] and list(out["n_se"]) == [3, 1]
    assert out["n_se"].dtype == np.int64
    assert close(out.loc["x", "coverage"], 2 / 3)  # rests on the 3 rows, not n_rep = 5
    assert performance(df, 2.0, se=None)["n_se"].iloc[0] == 0


def test_n_se_follows_n_failed_in_summary_columns():
    i = SUMMARY_COLUMNS.index("n_failed")
    assert SUMMARY_COLUMNS[i + 1] == "n_se"
    out = performance(tiny_frame(), 2.0)
    assert list(out.columns) == list(SUMMARY_COLUMNS)


# ------------------------------------------------------------ non-finite truth


TRUE_DEPENDENT = [
    "bias",
    "bias_mcse",
    "rel_bias",
    "rel_bias_mcse",
    "mse",
    "mse_mcse",
    "rmse",
    "coverage",
    "coverage_mcse",
]


@pytest.mark.parametrize("theta", [np.inf, -np.inf, np.nan])
def test_non_finite_true_gives_nan_true_dependent_measures(theta):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = performance(tiny_frame(), theta, crlb=0.5, extended=True).iloc[0]
    for col in TRUE_DEPENDENT:
        assert math.isnan(out[col]), col
    ref = performance(tiny_frame(), 2.0, crlb=0.5, extended=True).iloc[0]
    kept = ["mean", "empse", "empse_mcse", "modse", "modse_mcse", "becoverage", "rejection"]
    kept += ["efficiency", "modse_relerr", "n_rep", "n_se"]
    pd.testing.assert_series_equal(out[kept], ref[kept])


@pytest.mark.parametrize("theta", [np.inf, -np.inf, np.nan])
def test_building_blocks_nan_for_non_finite_true(theta):
    for value in (
        *metrics.bias(EST, theta),
        *metrics.mse(EST, theta),
        *metrics.coverage(EST, SE, theta),
    ):
        assert math.isnan(value)


def test_efficiency_nan_for_non_finite_crlb():
    assert all(math.isnan(v) for v in metrics.efficiency([0.0, 0.0, 0.0, 0.0, 10.0], np.inf))


def test_wald_z_of_the_usual_levels_is_scipys_quantile_bit_for_bit():
    """wald_z keeps z of the usual levels as constants (no scipy import for a closed-form
    study's summary); each must be exactly what scipy computes."""
    from scipy import special, stats

    from mlesim.metrics import _USUAL_Z, wald_z

    assert set(_USUAL_Z) >= {0.9, 0.95, 0.99}
    for level, z in _USUAL_Z.items():
        exact = float(special.ndtri((1.0 + level) / 2.0))
        assert z == exact == wald_z(level) == float(stats.norm.ppf((1.0 + level) / 2.0))
    assert wald_z(0.951) == float(special.ndtri(1.951 / 2.0))  # any other level: scipy


def test_wald_z_takes_a_level_of_any_real_type():
    import numpy as np
    from scipy import special

    from mlesim.metrics import wald_z

    z = float(special.ndtri(1.95 / 2.0))
    assert wald_z(np.array(0.95)) == wald_z(np.float64(0.95)) == wald_z(0.95) == z
    assert wald_z(np.float32(0.95)) == float(special.ndtri((1.0 + np.float32(0.95)) / 2.0))
