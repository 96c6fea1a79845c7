"""The robust estimators of a symmetric family's centre (mlesim.robust and the kinds
huber, tukey, trimmed_mean, winsorized_mean, hodges_lehmann): each equals an
independent oracle replicate by replicate, its standard error is honest (Wald coverage
and mean SE against the Monte Carlo SD), its efficiency at the normal is the
asymptotic one, edge data are handled, bad options are refused."""

from __future__ import annotations

import itertools
import math
from functools import cache

import numpy as np
import pytest
import scipy.stats as st
from scipy import integrate
from scipy.stats import mstats
from statsmodels.robust.norms import HuberT, TukeyBiweight, estimate_location
from statsmodels.robust.robust_linear_model import RLM
from statsmodels.robust.scale import Huber, mad

from mlesim import robust
from mlesim.errors import ConfigError
from mlesim.estimators import Estimator, make_estimator
from mlesim.families import get_family
from mlesim.metrics import coverage
from tests.conftest import Z

NORMAL = get_family("normal")
Z975 = st.norm.ppf(0.975)

#: label → spec of every estimator checked here (non-default tuning included)
SPECS = {
    "huber": {"kind": "huber"},
    "huber_k1": {"kind": "huber", "k": 1.0},
    "huber_p2": {"kind": "huber", "scale": "proposal2"},
    "huber_p2_k2": {"kind": "huber", "scale": "proposal2", "k": 2.0},
    "tukey": {"kind": "tukey"},
    "tukey_c3": {"kind": "tukey", "c": 3.0},
    "trimmed": {"kind": "trimmed_mean"},
    "trimmed_25": {"kind": "trimmed_mean", "proportion": 0.25},
    "winsorized": {"kind": "winsorized_mean"},
    "winsorized_25": {"kind": "winsorized_mean", "proportion": 0.25},
    "hl": {"kind": "hodges_lehmann"},
}


def fit(label: str, x: np.ndarray) -> Estimator:
    return make_estimator(label, dict(SPECS[label]), NORMAL).fit(x)


def sample(dist: str, seed: int, shape: tuple[int, int]) -> np.ndarray:
    """Data centred at 0: standard normal, t₃, or a normal with 10% N(0, 10²)."""
    rng = np.random.default_rng(seed)
    if dist == "normal":
        return rng.standard_normal(shape)
    if dist == "t3":
        return rng.standard_t(3, shape)
    x = rng.standard_normal(shape)
    wild = rng.random(shape) < 0.1
    x[wild] = 10 * rng.standard_normal(wild.sum())
    return x


# ------------------------------------------------------------------------ 1. oracles
def _rlm(row: np.ndarray, norm, start: float, scale: float) -> tuple[float, float]:
    """statsmodels' RLM on a constant at fixed ``scale`` from ``start``: the estimate
    and its "H1" standard error (Huber's K² s² Σψ²/(n − p) / (Σψ'/n)² (XᵀX)⁻¹)."""
    res = RLM(row, np.ones((row.size, 1)), M=norm).fit(
        start_params=[start],
        start_scale=scale,
        update_scale=False,
        conv="coefs",
        tol=1e-13,
        maxiter=1000,
        cov="H1",
    )
    return float(res.params[0]), float(res.bse[0])


def _winsorized_if_se(row: np.ndarray, win: np.ndarray, g: int) -> float:
    """The winsorized mean's influence-function SE, one data set in plain loops: the
    clipped value, plus γ(p − 1{x ≤ ξ_p}) times the spacing estimate of 1/f(ξ_p) at the
    two quantiles (Hall–Sheather bandwidth; at most g − 1 into the tail)."""
    n = row.size
    if g == 0:
        return float(row.std(ddof=1) / np.sqrt(n))
    xs = sorted(row)
    gam = g / n
    infl = [v - win.mean() for v in win]
    for i, p, tail in ((g, gam, -1), (n - g - 1, 1 - gam, 1)):
        q = st.norm.ppf(p)
        h = (
            n ** (-1 / 3)
            * Z975 ** (2 / 3)
            * (1.5 * st.norm.pdf(q) ** 2 / (2 * q * q + 1)) ** (1 / 3)
        )
        m = max(1, math.ceil(n * h))
        down, up = (min(m, g - 1), m) if tail < 0 else (m, min(m, g - 1))
        lo, hi = max(i - down, 0), min(i + up, n - 1)
        inv_f = n * (xs[hi] - xs[lo]) / (hi - lo)
        infl = [a + gam * (p - (v <= xs[i])) * inv_f for a, v in zip(infl, row, strict=True)]
    return float(np.std(infl, ddof=1) / np.sqrt(n))


def oracle(label: str, row: np.ndarray) -> tuple[float, float]:
    """(estimate, SE) of one data set by statsmodels, scipy or plain loops."""
    spec = SPECS[label]
    n = row.size
    if spec["kind"] in ("huber", "tukey"):
        if spec.get("scale") == "proposal2":
            k = spec.get("k", 1.345)
            loc, scale = Huber(c=k, tol=1e-12, maxiter=1000)(row)
            norm = HuberT(t=k)
        else:
            scale = mad(row)  # MAD / Φ⁻¹(3/4) about the median
            if spec["kind"] == "huber":
                norm = HuberT(t=spec.get("k", 1.345))
            else:
                norm = TukeyBiweight(c=spec.get("c", 4.685))
            loc = estimate_location(row, scale, norm=norm, tol=1e-12, maxiter=1000)
        # the SE from RLM at the estimate (its IRLS stays there: a fixed point)
        return float(loc), _rlm(row, norm, float(loc), float(scale))[1]
    if spec["kind"] in ("trimmed_mean", "winsorized_mean"):
        gamma = spec.get("proportion", 0.1)
        g = int(gamma * n)  # scipy rounds γn down, in both functions
        h = n - 2 * g
        win = np.asarray(mstats.winsorize(row, limits=(gamma, gamma)))
        sw = win.std(ddof=1)
        if spec["kind"] == "trimmed_mean":
            return float(st.trim_mean(row, gamma)), sw / ((h / n) * np.sqrt(n))
        return float(win.mean()), _winsorized_if_se(row, win, g)
    walsh = sorted((a + b) / 2 for a, b in itertools.combinations_with_replacement(row, 2))
    big_n = len(walsh)
    assert big_n == n * (n + 1) // 2
    mid = (walsh[(big_n - 1) // 2] + walsh[big_n // 2]) / 2
    k = max(1, round(n * (n + 1) / 4 - Z975 * np.sqrt(n * (n + 1) * (2 * n + 1) / 24)))
    return mid, (walsh[big_n - k] - walsh[k - 1]) / (2 * Z975)


@pytest.mark.parametrize("label", list(SPECS))
@pytest.mark.parametrize("n", [5, 20, 101])
@pytest.mark.parametrize("dist", ["normal", "t3", "contaminated"])
def test_each_replicate_equals_its_oracle(label, n, dist):
    x = sample(dist, 1000 + n, (6, n))
    est = fit(label, x)
    assert est.converged_.all() and est.param_names_ == ("mu",)
    want = np.array([oracle(label, row) for row in x])
    iterative = SPECS[label]["kind"] in ("huber", "tukey")
    rtol = 1e-6 if iterative else 1e-10
    np.testing.assert_allclose(est.params_[:, 0], want[:, 0], rtol=rtol, atol=1e-9)
    np.testing.assert_allclose(est.se_[:, 0], want[:, 1], rtol=rtol if iterative else 1e-9)
    assert (est.n_iter_ > 0).all() if iterative else (est.n_iter_ == 0).all()


def test_the_functions_agree_with_the_estimators_and_the_blocks_do_not_matter():
    x = sample("t3", 5, (9, 40))
    est, se, n_iter, conv = robust.huber_location(x, 1.345, "mad")
    np.testing.assert_array_equal(est, fit("huber", x).params_[:, 0])
    hl, hl_se = robust.hodges_lehmann(x)
    tiny = robust.hodges_lehmann(x, block=7)  # one row per block
    some = robust.hodges_lehmann(x, block=3 * 820)  # three rows per block (N = 820)
    for other in (tiny, some):
        np.testing.assert_array_equal(other[0], hl)
        np.testing.assert_array_equal(other[1], hl_se)


def test_irls_that_runs_out_of_iterations_is_not_converged():
    x = sample("contaminated", 3, (5, 50))
    for func in (robust.huber_location, robust.tukey_location, robust.huber_proposal2):
        *_, n_iter, conv = func(x, maxiter=1)
        assert not conv.any() and (n_iter == 1).all(), func.__name__
        *_, conv = func(x)
        assert conv.all(), func.__name__


# ---------------------------------------------------------------- 2. honest standard errors
#: replicates of the coverage study; the coverage MCSE at the nominal 0.95
R_COVER = 4000
COVER_MCSE = np.sqrt(0.95 * 0.05 / R_COVER)
#: |mean SE / SD − 1| allowed: Z times the relative MCSE of an SD, sqrt(1 / (2R))
RATIO_TOL = Z * np.sqrt(1 / (2 * R_COVER))
COVER_LABELS = ["huber", "huber_p2", "tukey", "trimmed", "winsorized", "hl"]

#: Where the Wald interval is not expected at 0.95, and why (measured values in the notes).
#: At n = 30 θ̂ ± 1.96 SE undercovers for every estimator whose SE is itself estimated —
#: even x̄ ± 1.96 s/√n covers only P(|t₂₉| ≤ 1.96) = 0.940 at the normal (measured: huber
#: 0.927, tukey 0.927, trimmed 0.927); the HL SE, from a 95% interval, is a little
#: conservative and is checked there too. The winsorized mean's influence-function SE
#: estimates 1/f at its quantiles by spacings, which are noisy for t₃ at n = 100 (SE/SD
#: 1.13, conservative): checked at n = 400 by test_winsorized_se_sees_the_quantile_terms.
CASES = [(100, d, lab) for d in ("normal", "t3") for lab in COVER_LABELS]
CASES += [(30, d, "hl") for d in ("normal", "t3")]
CASES = [c for c in CASES if c[1:] != ("t3", "winsorized")]
#: the HL SE from the 95% signed-rank interval is ~6% long at n = 30 on t3 (checked by
#: coverage above, which it passes)
RATIO_CASES = [c for c in CASES if c != (30, "t3", "hl")]


@cache
def coverage_fits(n: int, dist: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    x = sample(dist, 123 + n, (R_COVER, n))
    out = {}
    for label in COVER_LABELS:
        est = fit(label, x)
        assert est.converged_.all(), label
        out[label] = est.params_[:, 0], est.se_[:, 0]
    return out


@pytest.mark.parametrize(("n", "dist", "label"), CASES, ids=["-".join(map(str, c)) for c in CASES])
def test_wald_coverage_is_nominal(n, dist, label):
    est, se = coverage_fits(n, dist)[label]
    cov, _ = coverage(est, se, 0.0)
    assert abs(cov - 0.95) < Z * COVER_MCSE, f"coverage {cov:.4f}"


@pytest.mark.parametrize(
    ("n", "dist", "label"), RATIO_CASES, ids=["-".join(map(str, c)) for c in RATIO_CASES]
)
def test_mean_se_matches_the_monte_carlo_sd(n, dist, label):
    est, se = coverage_fits(n, dist)[label]
    ratio = se.mean() / est.std(ddof=1)
    assert abs(ratio - 1) < RATIO_TOL, f"mean SE / SD = {ratio:.4f}"


def test_winsorized_se_sees_the_quantile_terms():
    """Off the normal the winsorized mean's variance has γ/f(ξ) terms at its quantiles
    (Wilcox's s_w-only SE misses them: 0.93 of the SD at t₃, 0.45 under one-sided
    outliers). Its influence-function SE is consistent at t₃ (n = 400) and not too small
    under 5% outliers at N(10, 1), where the spacings straddle the gap (conservative)."""
    x = sample("t3", 77, (R_COVER, 400))
    est = fit("winsorized", x)
    ratio = est.se_[:, 0].mean() / est.params_[:, 0].std(ddof=1)
    assert abs(ratio - 1) < RATIO_TOL, ratio
    cov, _ = coverage(est.params_[:, 0], est.se_[:, 0], 0.0)
    assert abs(cov - 0.95) < Z * COVER_MCSE, cov
    rng = np.random.default_rng(78)
    mix = np.where(
        rng.random((R_COVER, 100)) < 0.05,
        rng.normal(10, 1, (R_COVER, 100)),
        rng.normal(0, 1, (R_COVER, 100)),
    )
    est = fit("winsorized", mix)
    ratio = est.se_[:, 0].mean() / est.params_[:, 0].std(ddof=1)
    assert ratio > 1 - RATIO_TOL, ratio


# ------------------------------------------------------------- 3. efficiency at the normal
def _are_m(psi, dpsi) -> float:
    """(E ψ'(Z))² / E ψ(Z)² at the standard normal: the M-estimate's ARE to the mean."""
    phi = st.norm.pdf
    a = integrate.quad(lambda z: psi(np.float64(z)) ** 2 * phi(z), -np.inf, np.inf)[0]
    b = integrate.quad(lambda z: dpsi(np.float64(z)) * phi(z), -np.inf, np.inf)[0]
    return b * b / a


def _are_trimmed(gamma: float) -> float:
    """1 / σ²_γ, σ²_γ = [∫_{−q}^{q} z² φ(z) dz + 2γ q²] / (1 − 2γ)², q = Φ⁻¹(1 − γ)
    (Tukey & McLaughlin 1963; Huber 1981, §3.3)."""
    q = st.norm.ppf(1 - gamma)
    inner = integrate.quad(lambda z: z * z * st.norm.pdf(z), -q, q)[0]
    return (1 - 2 * gamma) ** 2 / (inner + 2 * gamma * q * q)


def _are_hl() -> float:
    """12 σ² (∫ f²)² at the normal (Hodges & Lehmann 1963) — 3/π."""
    return 12 * integrate.quad(lambda z: st.norm.pdf(z) ** 2, -np.inf, np.inf)[0] ** 2


THEORY = {
    "huber": lambda: _are_m(lambda z: robust.huber_psi(z, 1.345), lambda z: float(abs(z) <= 1.345)),
    "huber_p2": lambda: THEORY["huber"](),
    "tukey": lambda: _are_m(
        lambda z: robust.tukey_psi(z, 4.685), lambda z: robust.tukey_psi_prime(z, 4.685)
    ),
    "trimmed": lambda: _are_trimmed(0.1),
    "hl": _are_hl,
}


def test_the_theoretical_efficiencies():
    """The quadratures give the textbook values."""
    assert THEORY["huber"]() == pytest.approx(0.9500, abs=5e-4)
    assert THEORY["tukey"]() == pytest.approx(0.9500, abs=5e-4)
    assert THEORY["trimmed"]() == pytest.approx(0.943, abs=5e-4)
    assert THEORY["hl"]() == pytest.approx(3 / np.pi, rel=1e-10)


@cache
def efficiency_data() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    x = sample("normal", 200, (4000, 200))
    return x.mean(axis=1), {label: fit(label, x).params_[:, 0] for label in THEORY}


@pytest.mark.parametrize("label", list(THEORY))
def test_efficiency_at_the_normal(label):
    """Var(x̄) / Var(estimator) at n = 200, against the ARE within Z MCSE; the MCSE
    from 20 blocks of 200 replicates."""
    mean, ests = efficiency_data()
    est = ests[label]
    ratio = mean.var() / est.var()
    blocks = [mean[b::20].var() / est[b::20].var() for b in range(20)]
    mcse = np.std(blocks, ddof=1) / np.sqrt(20)
    theory = THEORY[label]()
    assert abs(ratio - theory) < Z * mcse, f"ratio {ratio:.4f} vs {theory:.4f} (MCSE {mcse:.4f})"
    assert ratio < 0.99  # and none of them is the mean in disguise


# --------------------------------------------------------------------------- 4. edges
ALL_KINDS = ["huber", "huber_p2", "tukey", "trimmed", "winsorized", "hl"]


@pytest.mark.parametrize("label", ALL_KINDS)
def test_constant_rows_single_observations_and_pairs(label):
    const = fit(label, np.array([[0.3] * 7, [-2.0] * 7]))
    np.testing.assert_array_equal(const.params_[:, 0], [0.3, -2.0])
    np.testing.assert_array_equal(const.se_, 0.0)
    assert const.converged_.all()

    one = fit(label, np.array([[0.3], [5.0]]))
    np.testing.assert_array_equal(one.params_[:, 0], [0.3, 5.0])
    assert np.isnan(one.se_).all() and one.converged_.all() and one.se_min_n == 2

    pair = fit(label, np.array([[0.0, 1.0], [4.0, -2.0]]))
    np.testing.assert_allclose(pair.params_[:, 0], [0.5, 1.0], atol=1e-12)  # the midpoint
    assert pair.converged_.all() and (pair.se_ > 0).all()


def test_the_se_at_n2_and_without_trimming_is_the_mean_s():
    """With nothing trimmed (g = ⌊0.1 · 5⌋ = 0) the trimmed and winsorized means are x̄
    and their SEs the mean's s/√n (the trimmed mean's uses 1 − 2g/n, not 1 − 2γ)."""
    x = sample("t3", 8, (4, 5))
    want = x.std(axis=1, ddof=1) / np.sqrt(5)
    for label in ("trimmed", "winsorized"):
        est = fit(label, x)
        np.testing.assert_allclose(est.params_[:, 0], x.mean(axis=1), rtol=1e-12)
        np.testing.assert_allclose(est.se_[:, 0], want, rtol=1e-12)
    # Huber at n = 2: r = ±Φ⁻¹(3/4) < k, ψ' = 1, K = 1: SE = |x₂ − x₁| / 2 = s/√2
    pair = fit("huber", np.array([[0.0, 3.0]]))
    np.testing.assert_allclose(pair.se_[0, 0], 1.5, rtol=1e-12)
    # HL at n = 2: k = 1, the interval is [x₍₁₎, x₍₂₎]
    np.testing.assert_allclose(fit("hl", np.array([[0.0, 3.0]])).se_[0, 0], 3 / (2 * Z975))


def test_more_than_half_tied_takes_the_median_limit():
    """MAD = 0 but the row is not constant: the M-estimators take their s → 0 limit, the
    median, with its Maritz–Jarrett SE — one wild value among tied data cannot carry
    them away (a mean-absolute-deviation fallback scale let [0]*6 + [1e6] give 40 136)."""
    x = np.array([[0.0] * 6 + [1.0, 2.0, 5.0, -3.0], [0.0] * 6 + [1e6] + [0.0] * 3])
    assert robust.mad_scale(x).tolist() == [0.0, 0.0]
    for label in ("huber", "tukey"):
        est = fit(label, x)
        assert est.converged_.all(), label
        np.testing.assert_array_equal(est.params_[:, 0], np.median(x, axis=1))
        np.testing.assert_allclose(est.se_[:, 0], robust.maritz_jarrett_se(x), rtol=1e-12)
    rows = np.array([[0.0] * 26 + [1.0] * 23 + [1e6]])  # the audit's n = 50 case
    for label in ("huber", "tukey", "huber_p2"):
        assert abs(fit(label, rows).params_[0, 0]) <= 1.0, label
    for label in ("trimmed", "winsorized", "hl"):
        est = fit(label, x[:1])
        assert est.converged_[0] and est.se_[0, 0] > 0, label


def test_proposal2_with_ties():
    """Proposal 2 has a positive joint scale while the untied share is large enough,
    Σ min(r², k²) = (n − 1) β(k) (here 9 of 20 untied); with 16 of 20 tied it has none —
    the scale shrinks at every step — and the replicate fails as not converged."""
    rng = np.random.default_rng(4)
    some = np.concatenate([np.zeros(11), rng.standard_normal(9)])
    most = np.concatenate([np.zeros(16), rng.standard_normal(4)])
    est = fit("huber_p2", np.stack([some, most]))
    loc, _ = Huber(c=1.345, tol=1e-12, maxiter=1000)(
        some, initscale=robust.start_scale(some[None], np.median(some[None], axis=1))[0]
    )
    assert est.converged_[0] and est.params_[0, 0] == pytest.approx(float(loc), abs=1e-9)
    assert not est.converged_[1] and est.reason_[1] == "not converged"


def test_a_wild_outlier():
    """One value at 1e6 among 20 normals: the mean moves by 5e4, the robust estimators
    by little; the biweight gives it weight 0 (moving it further changes nothing), and
    so do the trimmed and winsorized means."""
    clean = sample("normal", 9, (1, 20))
    wild, wilder = clean.copy(), clean.copy()
    wild[0, 7], wilder[0, 7] = 1e6, 1e9
    assert wild.mean() - clean.mean() > 4e4
    for label in ALL_KINDS:
        a, b, c = (fit(label, x) for x in (clean, wild, wilder))
        assert abs(b.params_[0, 0] - a.params_[0, 0]) < 0.3, label
        assert b.se_[0, 0] < 2 * a.se_[0, 0] + 0.1, label
        assert b.params_[0, 0] == pytest.approx(c.params_[0, 0], abs=1e-9), label
    t_wild = fit("tukey", wild)
    med = np.median(wild)
    s = robust.mad_scale(wild)[0]
    assert abs(1e6 - t_wild.params_[0, 0]) > 4.685 * s  # beyond c·s: weight 0
    assert (1e6 - med) / s > 1e5


# ------------------------------------------------------------------- 5. bad options
@pytest.mark.parametrize(
    ("spec", "option", "allowed"),
    [
        ({"kind": "huber", "k": 0}, "k", "> 0"),
        ({"kind": "huber", "k": -1.5}, "k", "> 0"),
        ({"kind": "huber", "k": "big"}, "k", "> 0"),
        ({"kind": "huber", "k": float("inf")}, "k", "> 0"),
        ({"kind": "huber", "scale": "iqr"}, "scale", "mad, proposal2"),
        ({"kind": "tukey", "c": 0.0}, "c", "> 0"),
        ({"kind": "tukey", "c": True}, "c", "> 0"),
        ({"kind": "trimmed_mean", "proportion": 0.5}, "proportion", "in [0, 0.5)"),
        ({"kind": "trimmed_mean", "proportion": -0.1}, "proportion", "in [0, 0.5)"),
        ({"kind": "winsorized_mean", "proportion": 0.7}, "proportion", "in [0, 0.5)"),
        ({"kind": "winsorized_mean", "proportion": -0.01}, "proportion", "in [0, 0.5)"),
        ({"kind": "hodges_lehmann", "k": 2}, "k", "allowed: kind"),
        ({"kind": "trimmed_mean", "c": 2}, "c", "allowed: kind, proportion"),
    ],
)
def test_bad_options_are_refused_in_one_line(spec, option, allowed):
    with pytest.raises(ConfigError) as info:
        make_estimator("rob", spec, NORMAL)
    assert info.value.key == f"estimators.rob.{option}"
    assert allowed in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "kind", ["huber", "tukey", "trimmed_mean", "winsorized_mean", "hodges_lehmann"]
)
def test_a_model_without_a_centre_is_refused(kind):
    with pytest.raises(ConfigError) as info:
        make_estimator("rob", {"kind": kind}, get_family("exponential"))
    assert info.value.key == "estimators.rob.kind"
    assert "exponential" in str(info.value) and "\n" not in str(info.value)
    est = make_estimator("rob", {"kind": kind}, get_family("student_t"))
    assert est.param_names_ == ("mu",) and est.moments_needed == 0


def test_the_untrimmed_mean_needs_the_data_mean():
    assert (
        make_estimator("t", {"kind": "trimmed_mean", "proportion": 0}, NORMAL).moments_needed == 1
    )
    assert make_estimator("t", {"kind": "trimmed_mean"}, NORMAL).moments_needed == 0


def test_a_single_untrimmed_observation_has_no_se_and_fails_with_a_reason():
    """γ = 0.45 at n = 3 trims g = 1 at each end: h = 1 is left, the winsorized sample
    is constant, and neither SE formula has anything to go on (h − 1 = 0)."""
    x = np.array([[0.0, 1.0, 5.0], [2.0, 2.5, 9.0]])
    for kind in ("trimmed_mean", "winsorized_mean"):
        est = make_estimator("w", {"kind": kind, "proportion": 0.45}, NORMAL).fit(x)
        np.testing.assert_array_equal(est.params_[:, 0], [1.0, 2.5])  # the median
        assert not est.converged_.any() and np.isnan(est.se_).all(), kind
        assert all(r.startswith("no standard error") for r in est.reason_), est.reason_
