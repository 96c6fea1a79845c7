"""Tests of mlesim.estimators: the batched contract, exact theory with MCSE
tolerances, edge cases and option validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import Z, assert_mc_close, variance_mcse
from omegaconf import OmegaConf

import mlesim.__main__ as cli
from mlesim.errors import ConfigError
from mlesim.estimators import ESTIMATORS, make_estimator
from mlesim.families import FAMILIES, get_family

#: families tried, in this order, for an estimator kind in the contract test
PREFERRED = ("normal", "poisson", "bernoulli", "exponential")


def truth_params(name: str) -> dict:
    """The shipped default parameters of family ``name`` (conf/truth/<name>.yaml)."""
    path = Path(cli.config_dir()) / "truth" / f"{name}.yaml"
    return dict(OmegaConf.to_container(OmegaConf.load(path))["params"])


def fit(kind: str, family: str, x: np.ndarray, **options):
    return make_estimator(kind, {"kind": kind, **options}, get_family(family)).fit(x)


def draw(rng, family: str, params: dict, size: tuple) -> np.ndarray:
    fam = get_family(family)
    return fam.sample(rng, fam.check(params), size)


# ----------------------------------------------------------------------- contract
def _model_for(kind: str):
    """The first family (PREFERRED, then any other) that the estimator accepts."""
    names = list(PREFERRED) + sorted(set(FAMILIES) - set(PREFERRED))
    for name in names:
        if not (Path(cli.config_dir()) / "truth" / f"{name}.yaml").exists():
            continue
        try:
            est = make_estimator(kind, {"kind": kind}, get_family(name))
        except ConfigError:
            continue
        return name, est
    raise AssertionError(f"estimator kind {kind!r} accepts no family with default options")


#: the kinds of i.i.d. scalar data (the learning families' kinds: test_contract.py)
SCALAR_KINDS = sorted(k for k, cls in ESTIMATORS.items() if not cls.families)


@pytest.mark.parametrize("kind", SCALAR_KINDS)
def test_estimator_contract(kind, rng):
    """Shapes, dtypes, convergence on good data, and replicate independence."""
    family, est = _model_for(kind)
    x = draw(rng, family, truth_params(family), (6, 60))
    assert est.fit(x) is est
    names = est.param_names_
    k = len(names)
    assert k >= 1 and set(names) <= set(est.model.params)
    assert est.params_.shape == (6, k)
    assert est.se_.shape == (6, k)
    assert est.converged_.shape == (6,) and est.converged_.dtype == bool
    assert est.n_iter_.shape == (6,) and np.issubdtype(est.n_iter_.dtype, np.integer)
    assert (est.n_iter_ >= 0).all()
    assert est.converged_.all() and np.isfinite(est.params_).all()
    assert np.all(np.isnan(est.se_) | (est.se_ > 0))  # NaN: the estimator has no SE
    # each replicate's fit depends on its own row only (no leakage across the batch)
    whole = est.params_.copy(), est.se_.copy()
    part = make_estimator(kind, {"kind": kind}, est.model).fit(x[[4, 1]])
    np.testing.assert_allclose(part.params_, whole[0][[4, 1]], rtol=1e-10)
    np.testing.assert_allclose(part.se_, whole[1][[4, 1]], rtol=1e-10)
    with pytest.raises(ValueError):
        est.fit(x[0])


def test_every_kind_is_built_by_make_estimator():
    for kind in SCALAR_KINDS:
        family, est = _model_for(kind)
        assert type(est) is ESTIMATORS[kind]
        assert est.label == kind and est.key == f"estimators.{kind}"


# ------------------------------------------------------- exact theory (4 · MCSE)
def test_mle_variance_bias_and_unbiased_s2(rng):
    """E[σ̂²_MLE] = (n − 1) σ² / n and E[s²] = σ² (Casella & Berger 2002, §7.3)."""
    n, s2 = 5, 2.0
    x = draw(rng, "normal", {"mu": 1.0, "sigma2": s2}, (20_000, n))
    mle = fit("mle", "normal", x)
    assert mle.param_names_ == ("mu", "sigma2")
    assert_mc_close(mle.params_[:, 1], (n - 1) * s2 / n, "E[sigma2_mle]")
    assert_mc_close(fit("unbiased_variance", "normal", x).params_[:, 0], s2, "E[s2]")
    assert_mc_close(mle.params_[:, 0], 1.0, "E[mu_mle]")


def test_mle_variance_bias_is_detected(rng):
    """The MC test above has the power to see the −σ²/n bias: s² is not (n − 1)σ²/n."""
    n, s2 = 5, 2.0
    x = draw(rng, "normal", {"mu": 0.0, "sigma2": s2}, (20_000, n))
    s2_hat = fit("unbiased_variance", "normal", x).params_[:, 0]
    mcse = s2_hat.std(ddof=1) / np.sqrt(s2_hat.size)
    assert abs(s2_hat.mean() - (n - 1) * s2 / n) > Z * mcse


def test_exponential_rate_mle_mean(rng):
    """E[1/x̄] = n λ / (n − 1): n x̄ ~ Gamma(n, λ), E[1/Gamma(n, λ)] = λ / (n − 1)."""
    n, lam = 10, 2.0
    x = draw(rng, "exponential", {"rate": lam}, (20_000, n))
    assert_mc_close(fit("mle", "exponential", x).params_[:, 0], n * lam / (n - 1), "E[1/xbar]")


def test_poisson_mean_attains_the_crlb(rng):
    """Var(x̄) = λ / n = 1 / (n I(λ)) exactly, and E[SE²] = λ / n for mle and mean."""
    n, lam = 8, 3.0
    fam = get_family("poisson")
    x = draw(rng, "poisson", {"lam": lam}, (20_000, n))
    mle = fit("mle", "poisson", x)
    crlb = 1.0 / (n * fam.fisher(np.array([lam]))[0, 0])
    assert np.isclose(crlb, lam / n)
    var, mcse = variance_mcse(mle.params_[:, 0])
    assert abs(var - crlb) < Z * mcse
    assert_mc_close(mle.se_[:, 0] ** 2, lam / n, "E[se_mle^2]")
    mean = fit("mean", "poisson", x)
    np.testing.assert_array_equal(mean.params_, mle.params_)
    assert_mc_close(mean.se_[:, 0] ** 2, lam / n, "E[se_mean^2]")


def _se_matches_sd(est: np.ndarray, se: np.ndarray) -> None:
    """mean(SE) within 4 MCSE of the empirical SD of the estimates.

    MCSE² = Var(SE)/R + empse² / (2 (R − 1))  (Morris et al. 2019, Table 6).
    """
    r = est.size
    empse = est.std(ddof=1)
    mcse = np.sqrt(se.var(ddof=1) / r + empse**2 / (2 * (r - 1)))
    assert abs(se.mean() - empse) < Z * mcse, (se.mean(), empse, mcse)


def test_median_se_matches_its_sampling_sd_at_large_n(rng):
    """SE 1/(2 f(m) √n) → √(π σ² / (2 n)) at the normal (Serfling 1980, §2.3.3)."""
    n, s2 = 401, 4.0
    x = draw(rng, "normal", {"mu": 0.0, "sigma2": s2}, (2_000, n))
    med = fit("median", "normal", x)
    assert med.param_names_ == ("mu",)
    np.testing.assert_array_equal(med.params_[:, 0], np.median(x, axis=1))
    _se_matches_sd(med.params_[:, 0], med.se_[:, 0])
    empse = med.params_[:, 0].std(ddof=1)
    mcse = empse / np.sqrt(2 * (x.shape[0] - 1))
    assert abs(empse - np.sqrt(np.pi * s2 / (2 * n))) < Z * mcse


@pytest.mark.parametrize(
    ("family", "params"),
    [
        ("normal", {"mu": 1.0, "sigma2": 2.0}),
        ("exponential", {"rate": 0.5}),
        ("poisson", {"lam": 3.0}),
    ],
)
def test_moments_se_matches_its_sampling_sd_at_large_n(family, params, rng):
    x = draw(rng, family, params, (2_000, 400))
    mom = fit("moments", family, x)
    np.testing.assert_allclose(mom.params_, get_family(family).moments_estimate(x))
    for j in range(mom.params_.shape[1]):
        _se_matches_sd(mom.params_[:, j], mom.se_[:, j])


@pytest.mark.parametrize(
    ("family", "params"),
    [
        ("normal", {"mu": 1.0, "sigma2": 2.0}),
        ("exponential", {"rate": 0.5}),
        ("poisson", {"lam": 3.0}),
        ("bernoulli", {"p": 0.3}),
    ],
)
def test_mle_se_is_the_inverse_information(family, params, rng):
    x = draw(rng, family, params, (5, 30))
    mle = fit("mle", family, x)
    t, n = mle.params_, x.shape[1]
    if family == "normal":
        want = np.column_stack([np.sqrt(t[:, 1] / n), t[:, 1] * np.sqrt(2.0 / n)])
    elif family == "exponential":
        want = t / np.sqrt(n)
    elif family == "poisson":
        want = np.sqrt(t / n)
    else:
        want = np.sqrt(t * (1 - t) / n)
    np.testing.assert_allclose(mle.se_, want, rtol=1e-12)


def test_mle_with_fixed_mean_is_unbiased_for_the_variance(rng):
    n, s2 = 5, 2.0
    x = draw(rng, "normal", {"mu": 1.0, "sigma2": s2}, (20_000, n))
    est = fit("mle", "normal", x, fixed={"mu": 1.0})
    assert est.param_names_ == ("sigma2",) and est.params_.shape == (20_000, 1)
    assert_mc_close(est.params_[:, 0], s2, "E[sigma2 | mu known]")


# ---------------------------------------------------------------------------- MAP
def _neg_log_posterior(family: str, prior: dict, x: np.ndarray):
    """−log p(θ | x) up to a constant, from scipy.stats densities only."""
    import scipy.stats as st

    likelihood = {
        "bernoulli": lambda t: st.bernoulli.logpmf(x, t[0]),
        "poisson": lambda t: st.poisson.logpmf(x, t[0]),
        "exponential": lambda t: st.expon.logpdf(x, scale=1.0 / t[0]),
        "normal": lambda t: st.norm.logpdf(x, t[0], np.sqrt(t[1])),
    }[family]
    densities = {
        "beta": lambda v, h: st.beta.logpdf(v, h["a"], h["b"]),
        "gamma": lambda v, h: st.gamma.logpdf(v, h["shape"], scale=1.0 / h["rate"]),
        "normal": lambda v, h: st.norm.logpdf(v, h["mean"], np.sqrt(h["var"])),
        "invgamma": lambda v, h: st.invgamma.logpdf(v, h["shape"], scale=h["scale"]),
    }
    names = get_family(family).params

    def f(theta):
        log_prior = sum(
            densities[prior[p]["dist"]](v, prior[p])
            for p, v in zip(names, theta, strict=True)
            if p in prior
        )
        return -(likelihood(theta).sum() + log_prior)

    return f


def _numeric_map(family: str, prior: dict, x: np.ndarray, start: np.ndarray) -> np.ndarray:
    import scipy.optimize as so

    f = _neg_log_posterior(family, prior, x)
    if family == "normal":  # optimise (mu, log sigma2); the mode is invariant to it
        res = so.minimize(
            lambda z: f([z[0], np.exp(z[1])]),
            [start[0], np.log(start[1])],
            method="Nelder-Mead",
            options={"xatol": 1e-12, "fatol": 1e-14, "maxiter": 20_000},
        )
        return np.array([res.x[0], np.exp(res.x[1])])
    upper = 1.0 if family == "bernoulli" else 10 * (start[0] + 1.0)
    res = so.minimize_scalar(
        lambda v: f([v]), bounds=(1e-12, upper - 1e-12), method="bounded", options={"xatol": 1e-12}
    )
    return np.array([res.x])


MAP_CASES = [
    ("bernoulli", {"p": 0.3}, {"p": {"dist": "beta", "a": 2.0, "b": 3.0}}),
    ("poisson", {"lam": 4.0}, {"lam": {"dist": "gamma", "shape": 2.0, "rate": 1.5}}),
    ("exponential", {"rate": 2.0}, {"rate": {"dist": "gamma", "shape": 3.0, "rate": 2.0}}),
    ("normal", {"mu": 1.0, "sigma2": 2.0}, {"mu": {"dist": "normal", "mean": 0.0, "var": 0.5}}),
    (
        "normal",
        {"mu": 1.0, "sigma2": 2.0},
        {"sigma2": {"dist": "invgamma", "shape": 3.0, "scale": 2.0}},
    ),
    (
        "normal",
        {"mu": 1.0, "sigma2": 2.0},
        {
            "mu": {"mean": 0.5, "var": 0.2},  # dist defaults to the conjugate one
            "sigma2": {"dist": "invgamma", "shape": 2.0, "scale": 1.0},
        },
    ),
]


@pytest.mark.parametrize(("family", "params", "prior"), MAP_CASES)
def test_map_matches_a_numerical_maximisation_of_the_posterior(family, params, prior, rng):
    x = draw(rng, family, params, (3, 12))
    est = fit("map", family, x, prior=prior)
    full = {name: {"dist": _conjugate(family, name), **h} for name, h in prior.items()}
    for r in range(3):
        want = _numeric_map(family, full, x[r], est.params_[r] * 1.1)
        np.testing.assert_allclose(est.params_[r], want, rtol=1e-6)
    assert est.converged_.all()


def _conjugate(family: str, name: str) -> str:
    from mlesim.priors import CONJUGATE

    return CONJUGATE[(family, name)][0]


def test_normal_mean_prior_is_weight_decay(rng):
    """With a N(0, v) prior on μ the joint mode satisfies the ridge identity
    μ̂ = n x̄ / (n + σ̂²/v) with σ̂² = Σ(x − μ̂)²/n (flat prior on σ²)."""
    v, n = 0.1, 10
    x = draw(rng, "normal", {"mu": 1.0, "sigma2": 2.0}, (50, n))
    est = fit("map", "normal", x, prior={"mu": {"dist": "normal", "mean": 0.0, "var": v}})
    mu, s2 = est.params_[:, 0], est.params_[:, 1]
    xbar = x.mean(axis=1)
    np.testing.assert_allclose(mu, n * xbar / (n + s2 / v), rtol=1e-10)
    np.testing.assert_allclose(s2, ((x - mu[:, None]) ** 2).mean(axis=1), rtol=1e-10)
    assert (np.abs(mu) < np.abs(xbar)).all()  # shrunk towards the prior mean 0
    for r in range(3):
        want = _numeric_map(
            "normal", {"mu": {"dist": "normal", "mean": 0.0, "var": v}}, x[r], [xbar[r], 1.0]
        )
        np.testing.assert_allclose(est.params_[r], want, rtol=1e-6)


@pytest.mark.parametrize("family", ["bernoulli", "poisson", "exponential", "normal"])
def test_map_with_flat_priors_is_the_mle(family, rng):
    x = draw(rng, family, truth_params(family), (20, 15))
    mle, map_ = fit("mle", family, x), fit("map", family, x)
    np.testing.assert_allclose(map_.params_, mle.params_, rtol=1e-13)
    np.testing.assert_allclose(map_.se_, mle.se_, rtol=1e-13)


def test_bernoulli_map_formula():
    x = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    est = fit("map", "bernoulli", x, prior={"p": {"a": 3, "b": 2}})
    np.testing.assert_allclose(est.params_[:, 0], [(2 + 2) / (3 + 3), (0 + 2) / (3 + 3)])


# ------------------------------------------------------------------- edge cases
def test_unbiased_variance_fails_at_n_equal_one(rng):
    x = draw(rng, "normal", {"mu": 0.0, "sigma2": 1.0}, (4, 1))
    est = fit("unbiased_variance", "normal", x)
    assert np.isnan(est.params_).all()
    assert not est.converged_.any()


def test_mle_variance_is_zero_at_n_equal_one(rng):
    x = draw(rng, "normal", {"mu": 0.0, "sigma2": 1.0}, (4, 1))
    est = fit("mle", "normal", x)
    np.testing.assert_array_equal(est.params_[:, 0], x[:, 0])
    np.testing.assert_array_equal(est.params_[:, 1], 0.0)
    assert est.converged_.all()


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_bernoulli_constant_sample_is_a_boundary_estimate(value):
    x = np.full((3, 7), value)
    est = fit("mle", "bernoulli", x)
    np.testing.assert_array_equal(est.params_, value)
    np.testing.assert_array_equal(est.se_, 0.0)
    assert est.converged_.all()


def test_exponential_rate_fails_on_an_all_zero_sample():
    est = fit("mle", "exponential", np.zeros((2, 3)))
    assert not est.converged_.any()


# --------------------------------------------------------------- option checks
BAD_SPECS = [
    ("normal", {"kind": "mle", "nosuch": 1}, "estimators.e.nosuch"),
    ("normal", {"kind": "nosuch"}, "estimators.e.kind"),
    ("normal", {"fixed": {"mu": 0.0}}, "estimators.e.kind"),
    ("poisson", {"kind": "unbiased_variance"}, "estimators.e.kind"),
    ("exponential", {"kind": "median"}, "estimators.e.kind"),
    ("exponential", {"kind": "mean"}, "estimators.e.kind"),
    ("normal", {"kind": "mle", "fixed": {"tau": 1.0}}, "estimators.e.fixed.tau"),
    ("normal", {"kind": "mle", "fixed": {"sigma2": -1.0}}, "estimators.e.fixed.sigma2"),
    ("normal", {"kind": "mle", "fixed": {"mu": 0.0, "sigma2": 1.0}}, "estimators.e.fixed"),
    ("bernoulli", {"kind": "map", "prior": {"p": {"a": 0.5, "b": 2}}}, "estimators.e.prior.p.a"),
    ("bernoulli", {"kind": "map", "prior": {"p": {"a": 2}}}, "estimators.e.prior.p.b"),
    ("bernoulli", {"kind": "map", "prior": {"p": {"a": True, "b": 2}}}, "estimators.e.prior.p.a"),
    ("poisson", {"kind": "map", "prior": {"lam": {"shape": 2, "rate": 0}}}, "e.prior.lam.rate"),
    ("normal", {"kind": "map", "prior": {"mu": {"mean": 0, "var": -1}}}, "e.prior.mu.var"),
    ("normal", {"kind": "map", "prior": {"mu": {"mean": 0, "var": 1, "df": 3}}}, "e.prior.mu.df"),
    (
        "normal",
        {"kind": "map", "prior": {"sigma2": {"shape": 2, "scale": 0}}},
        "e.prior.sigma2.scale",
    ),
    # non-conjugate: a gamma prior on the normal mean, or a prior on a foreign parameter
    (
        "normal",
        {"kind": "map", "prior": {"mu": {"dist": "gamma", "shape": 2, "rate": 1}}},
        "e.prior.mu.dist",
    ),
    ("normal", {"kind": "map", "prior": {"lam": {"shape": 2, "rate": 1}}}, "e.prior.lam"),
    # a prior on a parameter held fixed, a Laplace prior away from the normal mean
    (
        "normal",
        {"kind": "map", "fixed": {"mu": 0}, "prior": {"mu": {"mean": 0, "var": 1}}},
        "estimators.e.prior.mu",
    ),
    ("normal", {"kind": "map", "fixed": {"sigma2": 0}}, "estimators.e.fixed.sigma2"),
    (
        "student_t",
        {"kind": "map", "prior": {"mu": {"dist": "laplace", "loc": 0, "scale": 1}}},
        "estimators.e.prior.mu.dist",
    ),
]


@pytest.mark.parametrize(("family", "spec", "key"), BAD_SPECS)
def test_bad_estimator_options_name_the_key(family, spec, key):
    with pytest.raises(ConfigError) as info:
        make_estimator("e", spec, get_family(family))
    assert info.value.key.endswith(key) and info.value.key.startswith("estimators.e")


def test_unknown_kind_lists_the_allowed_kinds():
    with pytest.raises(ConfigError) as info:
        make_estimator("e", {"kind": "nosuch"}, get_family("normal"))
    for kind in ESTIMATORS:
        assert kind in info.value.message


def test_spec_must_be_a_mapping():
    with pytest.raises(ConfigError) as info:
        make_estimator("e", "mle", get_family("normal"))
    assert info.value.key == "estimators.e"
