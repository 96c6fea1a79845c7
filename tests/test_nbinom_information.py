"""Fisher information of the negative binomial size, ``mlesim.families.counts._info_size``.

I_rr = Σ_{j≥0} P(X > j)/(r + j)² − μ/(r(r + μ)) per observation (from
ψ′(r) − ψ′(r + x) = Σ_{j<x} 1/(r + j)²), summed per row up to that row's own
1 − 1e-17 quantile. The references here do not use that sum: they take expectations
over scipy's ``nbinom.pmf`` of the squared score and of the negative second derivative
of the log-density. Work is measured by counting evaluated (row, j) terms, never by time.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special as sc
import scipy.stats as st

from mlesim.families import counts, get_family
from mlesim.families.counts import _info_size, _info_size_terms

# (mu, size): ordinary, tiny size (long tail), small mean, large size, large mean
PAIRS = [(5.0, 5.0), (5.0, 0.03), (0.8, 0.5), (4.0, 2.0), (3.0, 50.0), (200.0, 1.0), (0.1, 0.3)]


def _support(mu: float, r: float) -> tuple[np.ndarray, np.ndarray]:
    """Support 0..N with N beyond the 1 − 1e-22 quantile, and scipy's pmf on it."""
    p = r / (r + mu)
    n = int(st.nbinom.isf(1e-22, r, p)) + 2
    x = np.arange(n, dtype=float)
    pmf = st.nbinom.pmf(x, r, p)
    assert abs(pmf.sum() - 1) < 1e-13  # the support holds all the mass
    return x, pmf


def ref_squared_score(mu: float, r: float) -> float:
    """E[(∂/∂r log f(X))²] with ∂/∂r log f = ψ(x + r) − ψ(r) + log(r/(r + μ)) + (μ − x)/(r + μ)."""
    x, pmf = _support(mu, r)
    s = sc.digamma(x + r) - sc.digamma(r) + np.log(r / (r + mu)) + (mu - x) / (r + mu)
    return float(np.sum(pmf * s**2))


def ref_neg_hessian(mu: float, r: float) -> float:
    """E[−∂²/∂r² log f(X)] = ψ′(r) − E ψ′(r + X) − μ/(r(r + μ)) (as E X = μ)."""
    x, pmf = _support(mu, r)
    e_trigamma = np.sum(pmf * sc.polygamma(1, x + r))
    return float(sc.polygamma(1, r) - e_trigamma - mu / (r * (r + mu)))


class _GammalnCounter:
    """Wraps ``scipy.special.gammaln`` and counts the elements of its 2-D calls.

    In ``_info_size_terms`` the only 2-D argument is ``j + r`` for the (active rows, block)
    grid, so the count is the number of (row, j) terms evaluated.
    """

    def __init__(self, original):
        self.original = original
        self.n = 0

    def __call__(self, x, *args, **kwargs):
        if np.ndim(x) == 2:
            self.n += np.size(x)
        return self.original(x, *args, **kwargs)


@pytest.fixture
def gammaln_counter(monkeypatch):
    counter = _GammalnCounter(sc.gammaln)
    monkeypatch.setattr(counts.sc, "gammaln", counter)
    return counter


def _mixed_batch(tiny_r: float) -> tuple[np.ndarray, np.ndarray, int]:
    """999 ordinary rows around (μ, r) = (5, 5) with one tiny-size row (μ = 5) at row 400."""
    rng = np.random.default_rng(7)
    mu = rng.uniform(4.0, 6.0, 1000)
    r = rng.uniform(4.0, 6.0, 1000)
    mu[:500], r[:500] = 5.0, 5.0  # half exactly the brief's (5, 5)
    mu[400], r[400] = 5.0, tiny_r
    return mu, r, 400


# ------------------------------------------------------------------ reference values
def test_references_agree_with_each_other():
    """The two references (squared score, negative Hessian) are the same quantity."""
    for mu, r in PAIRS:
        assert ref_squared_score(mu, r) == pytest.approx(ref_neg_hessian(mu, r), rel=1e-9)


@pytest.mark.parametrize(("mu", "r"), PAIRS)
def test_info_size_matches_independent_references(mu, r):
    got = _info_size(np.array([mu]), np.array([r]))[0]
    assert got == pytest.approx(ref_neg_hessian(mu, r), rel=1e-8)
    assert got == pytest.approx(ref_squared_score(mu, r), rel=1e-8)


def test_info_size_batch_of_pairs_matches_references():
    """All pairs in one batch (rows with very different tails) give the reference per row."""
    mu, r = np.array(PAIRS).T
    got = _info_size(mu, r)
    want = [ref_neg_hessian(m, s) for m, s in PAIRS]
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=0)


def test_info_size_edge_rows():
    """r = inf is the Poisson limit (0); non-positive or non-finite inputs give NaN."""
    mu = np.array([5.0, 5.0, 0.0, -1.0, 5.0, np.nan, np.inf, 5.0])
    r = np.array([np.inf, 0.0, 5.0, 5.0, -2.0, 5.0, 5.0, 5.0])
    got = _info_size(mu, r)
    assert got[0] == 0.0
    assert np.isnan(got[1:7]).all()
    assert got[7] == pytest.approx(ref_neg_hessian(5.0, 5.0), rel=1e-8)
    out, n_terms = _info_size_terms(mu[:7], r[:7])
    assert n_terms == 0 and out[0] == 0.0


# ------------------------------------------------------------------ per-row truncation
def test_tiny_size_row_does_not_change_the_other_rows():
    mu, r, tiny = _mixed_batch(0.03)
    ordinary = np.arange(mu.size) != tiny
    mixed = _info_size(mu, r)
    alone = _info_size(mu[ordinary], r[ordinary])
    # each row's arithmetic does not depend on the other rows: equal bit for bit
    np.testing.assert_array_equal(mixed[ordinary], alone)
    assert mixed[tiny] == pytest.approx(ref_neg_hessian(5.0, 0.03), rel=1e-8)
    assert mixed[0] == pytest.approx(ref_neg_hessian(5.0, 5.0), rel=1e-8)


def test_work_for_ordinary_rows_does_not_grow_with_the_tiny_row(gammaln_counter):
    """Count evaluated (row, j) terms: the ordinary rows cost the same with or without
    the tiny-size row, and the same whatever that row's (ever longer) tail."""
    extra = {}
    for tiny_r in (0.03, 0.01):
        mu, r, tiny = _mixed_batch(tiny_r)
        ordinary = np.arange(mu.size) != tiny

        gammaln_counter.n = 0
        _, n_mixed = _info_size_terms(mu, r)
        assert gammaln_counter.n == n_mixed  # the helper's count is the real work
        _, n_tiny = _info_size_terms(mu[[tiny]], r[[tiny]])
        _, n_ordinary = _info_size_terms(mu[ordinary], r[ordinary])

        # the tiny row alone has a long tail: one common cut-off would cost 1000 × this
        q = st.nbinom.isf(counts.INFO_SF_TOL, tiny_r, tiny_r / (tiny_r + 5.0))
        assert n_tiny >= q + 2
        # each ordinary row stops at its own short tail (1 − 1e-17 quantile ≈ 80)
        assert n_ordinary <= 999 * 128
        # mixing adds no work for the ordinary rows
        assert n_mixed == n_tiny + n_ordinary
        assert n_mixed < 0.05 * mu.size * (q + 2)
        extra[tiny_r] = n_mixed - n_tiny
    assert extra[0.03] == extra[0.01]


def test_cap_remainder_is_within_the_documented_bound(monkeypatch):
    """With the cap at J terms the omitted tail is in [0, P(X > J)/(r + J)]."""
    mu, r = 20.0, 0.3  # 1 − 1e-17 quantile ≈ 2,700
    full, n_full = _info_size_terms(np.array([mu]), np.array([r]))
    cap = 200
    monkeypatch.setattr(counts, "INFO_TOP_MAX", cap)
    capped, n_capped = _info_size_terms(np.array([mu]), np.array([r]))
    assert n_capped == cap + 1 < n_full
    bound = st.nbinom.sf(cap, r, r / (r + mu)) / (r + cap)
    omitted = full[0] - capped[0]
    assert 0 < omitted <= bound
    assert omitted > 0.1 * bound  # the bound is not vacuous here


# ------------------------------------------------------------------ the family's fisher
def test_family_fisher_batch_matches_references():
    fam = get_family("negative_binomial")
    mu, r = np.array(PAIRS).T
    theta = np.column_stack([mu, r])  # (R, 2)
    info = fam.fisher(theta)
    assert info.shape == (len(PAIRS), 2, 2)
    np.testing.assert_allclose(
        info[:, 1, 1], [ref_neg_hessian(m, s) for m, s in PAIRS], rtol=1e-8, atol=0
    )
    np.testing.assert_allclose(info[:, 0, 0], r / (mu * (mu + r)), rtol=1e-14)
    assert (info[:, 0, 1] == 0).all() and (info[:, 1, 0] == 0).all()
    # a leading batch shape (2, R, 2) gives the same matrices row by row
    stacked = fam.fisher(np.stack([theta, theta[::-1]]))
    np.testing.assert_allclose(stacked[0], info, rtol=1e-14, atol=0)
    np.testing.assert_allclose(stacked[1], info[::-1], rtol=1e-14, atol=0)


def test_family_fisher_mixed_batch_matches_rows_alone():
    fam = get_family("negative_binomial")
    mu, r, tiny = _mixed_batch(0.03)
    theta = np.column_stack([mu, r])
    info = fam.fisher(theta)
    for i in (0, tiny, 999):
        np.testing.assert_array_equal(info[i], fam.fisher(theta[i]))
