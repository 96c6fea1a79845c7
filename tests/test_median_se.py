"""The median's model-free standard error (Maritz–Jarrett), checked against the exact
bootstrap law of an order statistic and by coverage under a wrong model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st

from mlesim.estimators import make_estimator
from mlesim.families import get_family
from mlesim.metrics import performance
from mlesim.robust import maritz_jarrett_se
from tests.conftest import Z


@pytest.mark.parametrize("n", [2, 5, 11, 40])
def test_maritz_jarrett_is_the_exact_bootstrap_variance_of_the_order_statistic(n, rng):
    """The bootstrap X*₍ₘ₎ takes the value x₍ᵢ₎ with probability
    P(Bin(n, i/n) ≥ m) − P(Bin(n, (i − 1)/n) ≥ m), m = ⌊n/2⌋ + 1 (Efron 1979, §3):
    a binomial computation, not the Beta weights of the code."""
    x = rng.standard_t(3, size=(4, n))
    m = n // 2 + 1
    i = np.arange(1, n + 1)
    prob = st.binom.sf(m - 1, n, i / n) - st.binom.sf(m - 1, n, (i - 1) / n)
    xs = np.sort(x, axis=1)
    mean = xs @ prob
    want = np.sqrt((xs - mean[:, None]) ** 2 @ prob)
    np.testing.assert_allclose(maritz_jarrett_se(x), want, rtol=1e-10)


def _median_row(se: str | None, x: np.ndarray) -> pd.Series:
    spec = {"kind": "median"} if se is None else {"kind": "median", "se": se}
    est = make_estimator("med", spec, get_family("normal")).fit(x)
    df = pd.DataFrame({"estimate": est.params_[:, 0], "se": est.se_[:, 0]})
    return performance(df, 0.0).iloc[0]


def test_median_coverage_is_honest_under_a_wrong_model():
    """t₃ data, normal model (μ* = 0 = the median). The model-based SE uses the normal
    density fitted to the data (σ̂² ≈ 3), far too flat at the centre: coverage 0.99+.
    The order-statistic SE, the default, needs no model: coverage is the nominal 0.95."""
    x = np.random.default_rng(7).standard_t(3, size=(2000, 201))
    honest = _median_row(None, x)
    assert abs(honest["coverage"] - 0.95) < Z * honest["coverage_mcse"], honest["coverage"]
    assert honest["n_se"] == 2000
    model = _median_row("model", x)
    assert model["coverage"] - 0.95 > Z * model["coverage_mcse"], model["coverage"]


def test_constant_and_single_samples():
    fam = get_family("normal")
    const = make_estimator("m", {"kind": "median"}, fam).fit(np.full((2, 5), 0.3))
    np.testing.assert_array_equal(const.se_, 0.0)
    single = make_estimator("m", {"kind": "median"}, fam).fit(np.array([[0.3], [1.0]]))
    assert np.isnan(single.se_).all() and single.converged_.all()  # no spread to see at n = 1
