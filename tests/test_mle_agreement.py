"""On the same data, mlesim's batched MLEs agree with independent fits, and its standard
errors with statsmodels.

A table of cases (family, true parameters, fixed parameters, reference) drives the
tests. References: ``scipy.stats.<dist>.fit`` with the same parameters held fixed (with
a tight Nelder–Mead + BFGS optimizer where scipy's default stops at xtol = 1e-4), and
statsmodels for the negative binomial. Agreement is 1e-6 relative wherever both fits
converge; where they differ, ours must have the higher log-likelihood (the reference
stopped short, or found another local maximum) — the counts are printed with ``-s``.
SEs are checked against statsmodels ``GenericLikelihoodModel``: ``bse`` (inverse of its
numerical Hessian) for ``se: observed`` and ``fit(cov_type="HC0")`` for ``se: sandwich``.
"""

from __future__ import annotations

import warnings
import zlib

import numpy as np
import pytest
import scipy.optimize as so
import scipy.stats as st

from mlesim.estimators import MLE
from mlesim.families import get_family

sm = pytest.importorskip("statsmodels.api")
from statsmodels.base.model import GenericLikelihoodModel  # noqa: E402

RTOL = 1e-6


def tight(func, x0, args=(), disp=0):
    """Nelder–Mead to xtol 1e-10, polished by BFGS when that lowers the objective."""
    x = so.fmin(func, x0, args=args, xtol=1e-10, ftol=1e-12, maxiter=20000, maxfun=40000, disp=0)
    res = so.minimize(func, x, args=args, method="BFGS", options={"gtol": 1e-9})
    return res.x if np.isfinite(res.fun) and res.fun <= func(x, *args) else x


def nb_statsmodels(x, fixed):
    """Intercept-only NB2 (statsmodels): mu = exp(const), size = 1/alpha."""
    exog = np.ones((x.size, 1))
    if "size" in fixed:
        fam = sm.families.NegativeBinomial(alpha=1 / fixed["size"])
        res = sm.GLM(x, exog, family=fam).fit(tol=1e-12)
        return [np.exp(res.params[0]), fixed["size"]]
    res = sm.NegativeBinomial(x, exog).fit(method="newton", maxiter=200, tol=1e-12, disp=0)
    if not res.mle_retvals["converged"] or res.params[1] <= 1e-8:
        raise RuntimeError("statsmodels did not converge to an interior point")
    return [np.exp(res.params[0]), 1 / res.params[1]]


#: (family, true params, fixed, reference(x_row, fixed) -> theta in mlesim's order)
CASES = [
    ("gamma", [2.5, 1.5], {}, lambda x, f: (lambda a, _, s: [a, 1 / s])(*st.gamma.fit(x, floc=0))),
    (
        "gamma",
        [2.5, 1.5],
        {"shape": 2.5},
        lambda x, f: (lambda a, _, s: [a, 1 / s])(*st.gamma.fit(x, fa=2.5, floc=0)),
    ),
    (
        "gamma",
        [0.5, 3.0],
        {"rate": 3.0},
        lambda x, f: (lambda a, _, s: [a, 1 / s])(*st.gamma.fit(x, floc=0, fscale=1 / 3)),
    ),
    (
        "weibull",
        [1.7, 2.0],
        {},
        lambda x, f: (lambda c, _, s: [c, s])(*st.weibull_min.fit(x, floc=0, optimizer=tight)),
    ),
    (
        "weibull",
        [0.7, 2.0],
        {"shape": 0.7},
        lambda x, f: (lambda c, _, s: [c, s])(
            *st.weibull_min.fit(x, fc=0.7, floc=0, optimizer=tight)
        ),
    ),
    (
        "weibull",
        [1.7, 2.0],
        {"scale": 2.0},
        lambda x, f: (lambda c, _, s: [c, s])(
            *st.weibull_min.fit(x, floc=0, fscale=2.0, optimizer=tight)
        ),
    ),
    (
        "student_t",
        [0.5, 2.0, 5.0],
        {},
        lambda x, f: (lambda d, loc, s: [loc, s, d])(*st.t.fit(x, optimizer=tight)),
    ),
    (
        "student_t",
        [0.5, 2.0, 5.0],
        {"nu": 5.0},
        lambda x, f: (lambda d, loc, s: [loc, s, d])(*st.t.fit(x, fdf=5.0, optimizer=tight)),
    ),
    ("cauchy", [1.0, 2.0], {}, lambda x, f: list(st.cauchy.fit(x, optimizer=tight))),
    ("laplace", [1.0, 0.5], {}, lambda x, f: list(st.laplace.fit(x))),
    ("laplace", [1.0, 0.5], {"mu": 1.0}, lambda x, f: list(st.laplace.fit(x, floc=1.0))),
    (
        "lognormal",
        [0.3, 0.5],
        {},
        lambda x, f: (lambda s, _, sc: [np.log(sc), s * s])(*st.lognorm.fit(x, floc=0)),
    ),
    (
        "lognormal",
        [0.3, 0.5],
        {"mu": 0.3},
        lambda x, f: (lambda s, _, sc: [np.log(sc), s * s])(
            *st.lognorm.fit(x, floc=0, fscale=np.exp(0.3))
        ),
    ),
    ("beta", [2.0, 5.0], {}, lambda x, f: list(st.beta.fit(x, floc=0, fscale=1)[:2])),
    ("beta", [0.5, 0.8], {}, lambda x, f: list(st.beta.fit(x, floc=0, fscale=1)[:2])),
    ("beta", [2.0, 5.0], {"a": 2.0}, lambda x, f: list(st.beta.fit(x, fa=2, floc=0, fscale=1)[:2])),
    ("negative_binomial", [4.0, 2.0], {}, nb_statsmodels),
    ("negative_binomial", [4.0, 2.0], {"size": 2.0}, nb_statsmodels),
]
IDS = [f"{c[0]}-{'-'.join(f'{k}={v}' for k, v in c[2].items()) or 'all'}" for c in CASES]

#: replicates per case: fewer for the slow references (tight scipy t fits ≈ 0.15 s each)
REPS = {"student_t": 12, "cauchy": 20}


def reference_fits(fam, x, fixed, ref):
    """Reference estimates (R, p) and a mask of the rows where the reference converged."""
    out = np.full((x.shape[0], fam.p), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, row in enumerate(x):  # the references fit one data set at a time
            try:
                out[i] = ref(row, fixed)
            except Exception:  # a reference that fails is counted, not compared
                continue
    ok = np.all(np.isfinite(out), axis=1)
    if fam.name == "student_t":  # nu beyond 1e6: scipy's "fit" of a nu = inf sample
        ok &= out[:, 2] < 1e6
    return out, ok


@pytest.mark.parametrize(("name", "truth", "fixed", "ref"), CASES, ids=IDS)
def test_mle_agrees_with_the_reference_fit(name, truth, fixed, ref):
    fam = get_family(name)
    rng = np.random.default_rng(zlib.crc32(f"{name}{fixed}{truth}".encode()))
    x = fam.sample(rng, np.array(truth, dtype=float), (REPS.get(name, 30), 50))
    ours = fam.mle(x, fixed)
    theirs, ref_ok = reference_fits(fam, x, fixed, ref)
    both = ours.converged & ref_ok
    rel = np.max(np.abs(ours.theta - theirs) / np.abs(theirs), axis=1)
    agree = both & (rel <= RTOL)
    ll_ours, ll_ref = fam.loglik(x, ours.theta), fam.loglik(x, theirs)
    ours_higher = both & ~agree & (ll_ours >= ll_ref - 1e-9 * np.abs(ll_ref))
    print(
        f"\n{name} fixed={fixed}: both converged {both.sum()}/{len(x)}, agree to {RTOL:g} "
        f"{agree.sum()}, differ with ours higher {ours_higher.sum()}, "
        f"ours failed {(~ours.converged).sum()}, reference failed {(~ref_ok).sum()}"
    )
    assert both.sum() >= 0.6 * len(x)
    assert np.all(agree | ours_higher | ~both), rel[both & ~agree]
    assert agree.sum() >= 0.8 * both.sum()
    # where ours reports a boundary, the boundary is at least as likely as the reference
    bound = ~ours.converged & np.all(np.isfinite(theirs), axis=1)
    assert np.all(ll_ours[bound] >= ll_ref[bound] - 1e-9 * np.abs(ll_ref[bound]))


# ------------------------------------------------------------------ standard errors
class ScipyLikelihood(GenericLikelihoodModel):
    """Log-likelihood of the free parameters from an independent scipy log-density."""

    def __init__(self, endog, logdensity, **kwds):
        self.logdensity = logdensity
        super().__init__(endog, np.ones((len(endog), 1)), **kwds)

    def loglikeobs(self, params):
        return self.logdensity(self.endog, params)

    def loglike(self, params):
        return self.loglikeobs(params).sum()


#: scipy log-density in mlesim's parameterisation, theta as a full parameter vector
SCIPY_LOGDENSITY = {
    "gamma": lambda x, t: st.gamma.logpdf(x, t[0], scale=1 / t[1]),
    "weibull": lambda x, t: st.weibull_min.logpdf(x, t[0], scale=t[1]),
    "student_t": lambda x, t: st.t.logpdf(x, t[2], t[0], t[1]),
    "cauchy": lambda x, t: st.cauchy.logpdf(x, t[0], t[1]),
    "laplace": lambda x, t: st.laplace.logpdf(x, t[0], t[1]),
    "lognormal": lambda x, t: st.lognorm.logpdf(x, np.sqrt(t[1]), scale=np.exp(t[0])),
    "beta": lambda x, t: st.beta.logpdf(x, t[0], t[1]),
    "negative_binomial": lambda x, t: st.nbinom.logpmf(x, t[1], t[1] / (t[1] + t[0])),
}

SE_CASES = [
    ("gamma", [2.5, 1.5], {}),
    ("weibull", [1.7, 2.0], {}),
    ("weibull", [1.7, 2.0], {"scale": 2.0}),
    ("student_t", [0.5, 2.0, 5.0], {}),
    ("student_t", [0.5, 2.0, 5.0], {"nu": 5.0}),
    ("cauchy", [1.0, 2.0], {}),
    ("laplace", [1.0, 0.5], {"mu": 1.0}),  # not twice differentiable in mu
    ("lognormal", [0.3, 0.5], {}),
    ("beta", [2.0, 5.0], {}),
    ("negative_binomial", [4.0, 2.0], {}),
]


@pytest.mark.parametrize(("name", "truth", "fixed"), SE_CASES, ids=[str(c) for c in SE_CASES])
def test_observed_and_sandwich_se_agree_with_statsmodels(name, truth, fixed):
    fam = get_family(name)
    rng = np.random.default_rng(7)
    x = fam.sample(rng, np.array(truth, dtype=float), (6, 100))
    obs = MLE(fam, fixed=fixed, se="observed").fit(x)
    sand = MLE(fam, fixed=fixed, se="sandwich").fit(x)
    free = [fam.index(p) for p in obs.param_names_]
    checked = 0
    for i in np.flatnonzero(obs.converged_ & np.isfinite(obs.params_).all(axis=1)):
        full = fam.mle(x[i : i + 1], fixed).theta[0]

        def logdensity(data, params, full=full):
            t = full.copy()
            t[free] = params
            return SCIPY_LOGDENSITY[name](data, t)

        model = ScipyLikelihood(x[i], logdensity)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = model.fit(start_params=obs.params_[i], method="nm", maxiter=0, disp=0)
            hc0 = model.fit(start_params=obs.params_[i], method="nm", maxiter=0, disp=0,
                            cov_type="HC0")  # fmt: skip
        np.testing.assert_allclose(obs.se_[i], res.bse, rtol=1e-4)
        np.testing.assert_allclose(sand.se_[i], hc0.bse, rtol=1e-4)
        checked += 1
    assert checked >= 4
