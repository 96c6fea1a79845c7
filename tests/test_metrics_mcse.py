"""The MCSE of the empirical SE: kurtosis-aware (default) and normal-theory forms."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mlesim import metrics
from mlesim.metrics import performance

# 400 blocks of K = 500 estimates each; one performance row per block.
N_BLOCKS, K = 400, 500


def close(a: float, b: float, tol: float = 1e-12) -> bool:
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


def draw(kind: str) -> np.ndarray:
    """Estimates of shape (N_BLOCKS, K), a fixed seed per kind."""
    rng = np.random.default_rng(20240611)
    if kind == "chisquare3":  # skewed, kurtosis 3 + 12/3 = 7, like a small-n shape MLE
        return rng.chisquare(3, size=(N_BLOCKS, K))
    return rng.normal(1.0, 0.5, size=(N_BLOCKS, K))


def block_table(est: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {"block": np.repeat(np.arange(est.shape[0]), est.shape[1]), "estimate": est.ravel()}
    )


def sd_and_tolerance(values: np.ndarray) -> tuple[float, float]:
    """SD of ``values`` (shape (B,)) and 4 times its relative SE ``sqrt((k_b - 1) / (4B))``."""
    b = values.size
    sd = float(np.std(values, ddof=1))
    k_b = float(np.mean((values - values.mean()) ** 4)) / sd**4
    return sd, 4.0 * math.sqrt((k_b - 1.0) / (4.0 * b))


def calibration(kind: str, method: str) -> tuple[float, float]:
    """(|mean reported MCSE / SD of empse across blocks - 1|, tolerance)."""
    out = performance(block_table(draw(kind)), 1.0, by="block", se=None, empse_mcse=method)
    assert len(out) == N_BLOCKS and (out["n_rep"] == K).all()
    spread, tol = sd_and_tolerance(out["empse"].to_numpy())
    return abs(float(out["empse_mcse"].mean()) / spread - 1.0), tol


def test_kurtosis_mcse_calibrated_for_skewed_estimates():
    err, tol = calibration("chisquare3", "kurtosis")
    assert err < tol, (err, tol)


def test_normal_theory_mcse_too_small_for_skewed_estimates():
    # expected ratio sqrt(2 / (k - 1)) = 1 / sqrt(3): about 42 % too small
    err, tol = calibration("chisquare3", "normal")
    assert err > tol, (err, tol)
    assert err > 0.3


@pytest.mark.parametrize("method", ["kurtosis", "normal"])
def test_both_mcse_forms_calibrated_for_normal_estimates(method):
    err, tol = calibration("normal", method)
    assert err < tol, (method, err, tol)


def test_kurtosis_is_the_default():
    est = draw("chisquare3")[0]
    assert metrics.empse(est) == metrics.empse(est, empse_mcse="kurtosis")
    df = block_table(draw("chisquare3")[:2])
    a = performance(df, 1.0, by="block")
    b = performance(df, 1.0, by="block", empse_mcse="kurtosis")
    pd.testing.assert_frame_equal(a, b)


def test_empse_mcse_kurtosis_by_hand():
    # estimates 0, 0, 0, 0, 10: deviations -2 (x4) and 8, S^2 = 20, m4 = 832
    est = [0.0, 0.0, 0.0, 0.0, 10.0]
    k = (4 * 2**4 + 8**4) / (5 * 20**2)  # 2.08, simhelpers' k_t
    var_mcse = 20 * math.sqrt((k - 1) / 5)  # simhelpers' var_mcse
    value, mcse = metrics.empse(est)
    assert close(value, math.sqrt(20))
    assert close(mcse, var_mcse / (2 * math.sqrt(20)))
    assert close(mcse, math.sqrt(20) * math.sqrt((k - 1) / (4 * 5)))
    assert close(metrics.empse(est, empse_mcse="normal")[1], math.sqrt(20) / math.sqrt(8))


def test_empse_mcse_kurtosis_undefined_and_constant_cases():
    # estimates 1, 2, 4: k = (882/243) / (7/3)**2 < 1, so Var(S^2) estimate < 0
    assert math.isnan(metrics.empse([1.0, 2.0, 4.0])[1])
    value, mcse = metrics.empse([3.0, 3.0, 3.0])
    assert value == 0.0 and mcse == 0.0  # constant: no Monte Carlo error at all
    assert metrics.empse([3.0, 3.0, 3.0], empse_mcse="normal") == (0.0, 0.0)


def test_unknown_empse_mcse_raises():
    with pytest.raises(ValueError, match="'kurtosis'.*'normal'"):
        metrics.empse([1.0, 2.0, 3.0], empse_mcse="jackknife")
    with pytest.raises(ValueError, match="empse_mcse"):
        performance(block_table(np.ones((1, 3))), 1.0, empse_mcse="Normal")
    with pytest.raises(ValueError, match="empse_mcse"):
        metrics.modse_relerr([1.0, 2.0], [1.0, 1.0], empse_mcse="")


def test_modse_relerr_mcse_follows_empse_mcse():
    rng = np.random.default_rng(7)
    est = rng.chisquare(3, size=300)
    se = math.sqrt(6) * np.sqrt(rng.chisquare(20, size=300) / 20)
    s2 = se**2
    mod = math.sqrt(s2.mean())
    var_term = np.var(s2, ddof=1) / (4 * s2.size * mod**4)
    for method in ("kurtosis", "normal"):
        emp, emp_mcse = metrics.empse(est, empse_mcse=method)
        value, mcse = metrics.modse_relerr(est, se, empse_mcse=method)
        assert close(value, 100 * (mod / emp - 1))
        expected = 100 * (mod / emp) * math.sqrt(var_term + (emp_mcse / emp) ** 2)
        assert close(mcse, expected, 1e-10), method
    normal = metrics.modse_relerr(est, se, empse_mcse="normal")[1]
    assert close(
        normal,
        100 * (mod / emp) * math.sqrt(var_term + 1 / (2 * (est.size - 1))),
        1e-10,
    )
    assert metrics.modse_relerr(est, se)[1] > 1.2 * normal  # kurtosis 7: larger MCSE
    df = pd.DataFrame({"estimate": est, "se": se})
    row = performance(df, 3.0, extended=True).iloc[0]
    assert close(row["modse_relerr_mcse"], metrics.modse_relerr(est, se)[1], 1e-10)
    row = performance(df, 3.0, extended=True, empse_mcse="normal").iloc[0]
    assert close(row["modse_relerr_mcse"], normal, 1e-10)
    assert close(row["empse_mcse"], metrics.empse(est, empse_mcse="normal")[1])
