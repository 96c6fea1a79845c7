"""Priors and the batched MAP (posterior mode) estimates they give.

A prior is given per parameter as ``{dist: <name>, <hyper-parameters>}``; a parameter
without one has a flat prior. Named priors, with their hyper-parameters:

==========  =====================  ===============================================
dist        hyper-parameters       density (up to a constant) of θ
==========  =====================  ===============================================
normal      mean, var              exp(−(θ − mean)² / (2 var))
laplace     loc, scale             exp(−|θ − loc| / scale)
beta        a ≥ 1, b ≥ 1           θ^(a−1) (1 − θ)^(b−1)
gamma       shape ≥ 1, rate        θ^(shape−1) e^(−rate θ)
invgamma    shape, scale           θ^(−shape−1) e^(−scale/θ)
t           df, loc, scale         (1 + ((θ − loc)/scale)² / df)^(−(df+1)/2)
cauchy      loc, scale             the t with df = 1
==========  =====================  ===============================================

Any other continuous ``scipy.stats`` distribution is taken by its name with scipy's own
arguments (its shapes, ``loc`` = 0 and ``scale`` = 1 by default). A prior's support must
cover the parameter's domain (no gamma prior on a real mean); the lower limits on
``a``, ``b`` and ``shape`` keep the posterior density bounded, so that a mode exists.

Fast paths in closed form (conjugate; Gelman et al. 2013, *Bayesian Data Analysis*,
3rd ed., ch. 2–3), for data x of size n:

==================  ==============================  =====================================
family.parameter    prior                           posterior mode
==================  ==============================  =====================================
bernoulli.p         beta(a, b)                      (Σx + a − 1) / (n + a + b − 2)
poisson.lam         gamma(shape, rate)              (Σx + shape − 1) / (n + rate)
exponential.rate    gamma(shape, rate)              (n + shape − 1) / (Σx + rate)
normal.mu           normal(mean, var)               (n x̄ var + mean σ²) / (n var + σ²)
normal.mu           laplace(loc, scale)             loc + S(x̄ − loc, σ² / (n scale))
normal.sigma2       invgamma(shape, scale)          (scale + Σ(x − μ)²/2) / (shape + n/2 + 1)
==================  ==============================  =====================================

S(z, t) = sign(z) max(|z| − t, 0) is the soft threshold: a Laplace prior on a normal
mean gives exact zeros with positive probability, as the lasso does (Tibshirani 1996,
JRSS B 58:267, §5); a normal(0, var) prior is ridge / weight decay with coefficient
σ²/var: −log π(μ) = μ² / (2 var) + const. For the normal with both parameters free the
joint mode is found by coordinate ascent on all replicates at once. Every other
combination — any family, any smooth prior — is maximised by batched Newton iterations
on log L(θ) + Σ_j log π_j(θ_j) (:func:`newton_map`), started from the MLE.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from mlesim import optimize
from mlesim.errors import ConfigError
from mlesim.families import Family
from mlesim.families.base import estimable, fixed_mask, from_free, to_free
from mlesim.families.smooth import SmoothFamily, subset, transform_derivs
from mlesim.lazy import lazy_module
from mlesim.standard_errors import at_boundary, free_block, pinned_se, stand_in
from mlesim.sufficient import mean_ss

st = lazy_module("scipy.stats")

#: (family, parameter) → (distribution, hyper-parameter names, lower bounds) of the
#: conjugate closed forms (the Laplace prior of a normal mean is a closed form too)
CONJUGATE: dict[tuple[str, str], tuple[str, tuple[str, ...], tuple[float, ...]]] = {
    ("bernoulli", "p"): ("beta", ("a", "b"), (1.0, 1.0)),
    ("poisson", "lam"): ("gamma", ("shape", "rate"), (1.0, 0.0)),
    ("exponential", "rate"): ("gamma", ("shape", "rate"), (1.0, 0.0)),
    ("normal", "mu"): ("normal", ("mean", "var"), (-np.inf, 0.0)),
    ("normal", "sigma2"): ("invgamma", ("shape", "scale"), (0.0, 0.0)),
}

#: (family, parameter) whose log-likelihood is not differentiable (Σ|x − μ|/b)
KINKED = {("laplace", "mu")}

REAL, POSITIVE = -np.inf, 0.0
#: named priors: dist → ((hyper-parameter, lower bound), ...); a bound of 0 is strict
#: (> 0), 1 inclusive (≥ 1), −inf any real
NAMED: dict[str, tuple[tuple[str, float], ...]] = {
    "normal": (("mean", REAL), ("var", POSITIVE)),
    "laplace": (("loc", REAL), ("scale", POSITIVE)),
    "beta": (("a", 1.0), ("b", 1.0)),
    "gamma": (("shape", 1.0), ("rate", POSITIVE)),
    "invgamma": (("shape", POSITIVE), ("scale", POSITIVE)),
    "t": (("df", POSITIVE), ("loc", REAL), ("scale", POSITIVE)),
    "cauchy": (("loc", REAL), ("scale", POSITIVE)),
}


#: the support of the named priors
SUPPORT = {"beta": (0.0, 1.0), "gamma": (0.0, np.inf), "invgamma": (0.0, np.inf)}
SUPPORT.update({d: (-np.inf, np.inf) for d in ("normal", "laplace", "t", "cauchy")})


def frozen(h: Mapping[str, Any]):
    """The ``scipy.stats`` frozen distribution of a checked prior ``h``."""
    dist = h["dist"]
    if dist == "normal":
        return st.norm(h["mean"], np.sqrt(h["var"]))
    if dist == "gamma":
        return st.gamma(h["shape"], scale=1.0 / h["rate"])
    if dist == "invgamma":
        return st.invgamma(h["shape"], scale=h["scale"])
    if dist == "beta":
        return st.beta(h["a"], h["b"])
    if dist == "laplace":
        return st.laplace(h["loc"], h["scale"])
    if dist == "t":
        return st.t(h["df"], h["loc"], h["scale"])
    if dist == "cauchy":
        return st.cauchy(h["loc"], h["scale"])
    gen = getattr(st, dist)
    return gen(*[h[s] for s in _shapes(gen)], loc=h["loc"], scale=h["scale"])


def _shapes(gen: st.rv_continuous) -> list[str]:
    return [s.strip() for s in gen.shapes.split(",")] if gen.shapes else []


def _number(v: Any, low: float, key: str) -> float:
    """``v`` as a float above ``low`` (see :data:`NAMED`), or ConfigError at ``key``."""
    bad = not isinstance(v, int | float) or isinstance(v, bool) or not np.isfinite(v)
    strict = low == 0.0
    if bad or (v <= low if strict else v < low):
        rel = f"> {low:g}" if strict else (f">= {low:g}" if np.isfinite(low) else "real")
        raise ConfigError(key, f"must be a number {rel}, got {v!r}")
    return float(v)


def _check_hypers(dist: str, spec: dict, key: str) -> dict[str, float]:
    """Checked hyper-parameters of one prior (``spec`` without ``dist``)."""
    if dist in NAMED:
        hypers = NAMED[dist]
    else:
        gen = getattr(st, dist, None)
        if not isinstance(gen, st.rv_continuous):
            named = ", ".join(NAMED)
            raise ConfigError(
                f"{key}.dist",
                f"unknown prior {dist!r}; allowed: {named}, or a continuous scipy.stats name",
            )
        hypers = tuple((s, REAL) for s in _shapes(gen)) + (("loc", REAL), ("scale", POSITIVE))
        spec = {"loc": 0.0, "scale": 1.0, **spec}
    names = [h for h, _ in hypers]
    extra = sorted(set(spec) - set(names))
    if extra:
        raise ConfigError(f"{key}.{extra[0]}", f"unknown; {dist} takes {', '.join(names)}")
    return {h: _number(spec.get(h), low, f"{key}.{h}") for h, low in hypers}


def _check_support(model: Family, name: str, h: dict, key: str) -> None:
    """The prior must put density on the whole domain of the parameter (a named prior's
    support is known; a scipy.stats one is asked, which imports scipy.stats)."""
    if h["dist"] in SUPPORT:
        _check_cover(model, name, h["dist"], SUPPORT[h["dist"]], key)
        return
    with np.errstate(all="ignore"):
        lo, hi = frozen(h).support()
    if np.isnan(lo) or np.isnan(hi):
        raise ConfigError(key, f"{h} are not valid parameters of scipy.stats.{h['dist']}")
    _check_cover(model, name, h["dist"], (lo, hi), key)


def _check_cover(model: Family, name: str, dist: str, support: tuple, key: str) -> None:
    lo, hi = support
    kind = model.domains[name].kind
    need = {"real": (-np.inf, np.inf), "positive": (0.0, np.inf), "unit": (0.0, 1.0)}[kind]
    if lo > need[0] or hi < need[1]:
        raise ConfigError(
            f"{key}.dist",
            f"a {dist} prior has support [{lo:g}, {hi:g}], which does not cover "
            f"{name}'s domain ({model.domains[name].describe()}); allowed: a prior on "
            f"[{need[0]:g}, {need[1]:g}] or wider",
        )


def check_prior(
    model: Family, prior: Mapping[str, Any], key: str, fixed: Mapping[str, float] | None = None
) -> dict[str, dict]:
    """Validate a prior specification against ``model``; return it as plain dicts.

    A parameter's ``dist`` defaults to its conjugate one (:data:`CONJUGATE`).

    Raises
    ------
    ConfigError
        Unknown parameter or distribution, bad or missing hyper-parameter, a prior whose
        support misses part of the parameter's domain, a prior on a fixed parameter, or
        a Laplace prior anywhere but on a normal mean (its kink needs the closed form).
    """
    out = {}
    for name, spec in prior.items():
        pkey = f"{key}.{name}"
        if name not in model.params:
            raise ConfigError(pkey, f"not a parameter of {model.name}; allowed: {model.params}")
        if name in (fixed or {}):
            raise ConfigError(pkey, f"{name} is held fixed; allowed: a prior or fixed, not both")
        spec = dict(spec or {})
        default = CONJUGATE.get((model.name, name), (None,))[0]
        dist = spec.pop("dist", default)
        if dist is None:
            raise ConfigError(
                f"{pkey}.dist", f"missing; allowed: {', '.join(NAMED)}, or a scipy.stats name"
            )
        if dist == "laplace" and (model.name, name) != ("normal", "mu"):
            raise ConfigError(
                f"{pkey}.dist",
                "a laplace prior (the lasso's kink) is supported on normal.mu only; "
                "allowed elsewhere: a smooth prior such as normal or t",
            )
        if (model.name, name) in KINKED:
            raise ConfigError(
                pkey,
                f"the {model.name} likelihood has a kink at every observation in {name}, so "
                "its posterior mode needs more than Newton steps; allowed: priors on "
                f"{', '.join(p for p in model.params if (model.name, p) not in KINKED)}",
            )
        if dist in SUPPORT:  # the named priors' support, before their hyper-parameters
            _check_cover(model, name, dist, SUPPORT[dist], pkey)
        h = {"dist": dist, **_check_hypers(dist, spec, pkey)}
        _check_support(model, name, h, pkey)
        out[name] = h
    if model.name == "normal" and out.get("mu", {}).get("dist") == "laplace":
        if out.get("sigma2", {"dist": "invgamma"})["dist"] != "invgamma":
            raise ConfigError(
                f"{key}.sigma2.dist",
                "with a laplace prior on mu the prior on sigma2 must be invgamma "
                "(or none, or sigma2 fixed); allowed: invgamma",
            )
    return out


def is_closed_form(model: Family, prior: Mapping[str, Mapping]) -> bool:
    """True when the posterior mode has a closed form (see the module docstring)."""
    for name, h in prior.items():
        conj = CONJUGATE.get((model.name, name), (None,))[0]
        if h["dist"] != conj and not (model.name == "normal" and h["dist"] == "laplace"):
            return False
    return model.name in {fam for fam, _ in CONJUGATE}


def map_estimate(
    model: Family, x: np.ndarray, prior: Mapping[str, Mapping], fixed: Mapping[str, float]
) -> tuple[np.ndarray, ...]:
    """Posterior modes and their Laplace-approximation SEs for every row of ``x`` (R, n).

    Returns
    -------
    est : (R, k) modes of the k free parameters; se : (R, k); n_iter : (R,);
    converged : (R,) bool; reason : (R,) object, why a replicate failed ('' if not).
        ``se = sqrt(diag(A⁻¹))`` with A = −∇² log p(θ | x) at the mode θ̂, over the free
        parameters — Σ_i −∇² log f(x_i; θ̂) − ∇² log π(θ̂), the Laplace approximation to
        the posterior (Gelman et al. 2013, §4.1). For the Beta(a, b) prior on a Bernoulli
        p this is sqrt(p̂(1 − p̂)/(n + a + b − 2)). A mode on the edge of the parameter
        space (p̂ = 0 under a Beta(1, b) prior) gets SE 0 (:func:`pinned_se`); at a
        Laplace prior's kink (μ̂ = loc exactly) the prior adds no curvature.
    """
    free = fixed_mask(model, fixed)
    if not prior:
        res = model.mle(x, dict(fixed) or None)
        est, n_iter, conv, reason = res.theta, res.n_iter, res.converged, res.reason
    elif is_closed_form(model, prior):
        est, n_iter, conv = _closed_form(model, x, prior, fixed)
        reason = np.where(conv, "", optimize.MESSAGES[optimize.MAXITER]).astype(object)
    else:
        est, n_iter, conv, reason = newton_map(model, x, prior, fixed)
    far, infinite = stand_in(est)
    with np.errstate(all="ignore"):
        curvature = -model.hessian(x, far)
        j = np.arange(model.p)
        curvature[:, j, j] -= prior_hessian(model, far, prior)
        curvature = free_block(curvature, free)
    se = pinned_se(curvature, at_boundary(model, est, free))
    se[infinite[:, free]] = np.inf  # ν̂ = ∞: no finite precision (as the MLE's)
    se[~conv] = np.nan
    return est[:, free], se, n_iter, conv, reason


def _closed_form(
    model: Family, x: np.ndarray, prior: Mapping, fixed: Mapping[str, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The conjugate fast paths of the module docstring: modes (R, p), sweeps, converged."""
    r, n = x.shape
    if model.name == "normal":
        return _normal_map(x, prior, fixed)
    (name,) = model.params
    h, s = prior[name], x.sum(axis=1)
    if model.name == "bernoulli":
        est = (s + h["a"] - 1.0) / (n + h["a"] + h["b"] - 2.0)
    elif model.name == "poisson":
        est = (s + h["shape"] - 1.0) / (n + h["rate"])
    else:  # exponential
        with np.errstate(divide="ignore"):
            est = (n + h["shape"] - 1.0) / (s + h["rate"])
    return est[:, None], np.zeros(r, dtype=int), np.ones(r, dtype=bool)


def conjugate_map(
    model: Family, x: np.ndarray, prior: Mapping[str, Mapping[str, float]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`map_estimate` with nothing fixed: (est (R, p), se (R, p), n_iter, converged)."""
    est, se, n_iter, conv, _ = map_estimate(model, x, prior, {})
    return est, se, n_iter, conv


#: coordinate-ascent sweeps of the normal model's joint mode
MAX_SWEEPS = 500


def soft_threshold(z: np.ndarray, t: np.ndarray) -> np.ndarray:
    """S(z, t) = sign(z) max(|z| − t, 0), elementwise (the lasso's proximal map)."""
    return np.sign(z) * np.maximum(np.abs(z) - t, 0.0)


def _normal_map(
    x: np.ndarray, prior: Mapping, fixed: Mapping[str, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Joint mode of (mu, sigma2) by coordinate ascent, batched; ≤ ``MAX_SWEEPS`` sweeps.

    Each sweep sets μ to its conditional mode given σ² (normal prior: the precision-
    weighted mean; Laplace prior: the soft threshold) and σ² to its conditional mode
    given μ. Returns the modes (R, 2), the sweeps used (R,) and a converged mask (R,),
    False where the cap was reached before the change fell below 1e-13 relative.
    """
    r, n = x.shape
    xbar, ss = mean_ss(x)
    pm, pv = prior.get("mu"), prior.get("sigma2")

    def mu_given(s2):
        if "mu" in fixed:
            return np.full(r, fixed["mu"])
        if pm is None:
            return xbar
        if pm["dist"] == "laplace":
            return pm["loc"] + soft_threshold(xbar - pm["loc"], s2 / (n * pm["scale"]))
        return (n * xbar * pm["var"] + pm["mean"] * s2) / (n * pm["var"] + s2)

    def sigma2_given(mu):
        if "sigma2" in fixed:
            return np.full(r, fixed["sigma2"])
        q = ss + n * (xbar - mu) ** 2
        if pv is None:
            return q / n
        return (pv["scale"] + q / 2.0) / (pv["shape"] + n / 2.0 + 1.0)

    s2 = sigma2_given(xbar if "mu" not in fixed else mu_given(None))
    mu = mu_given(s2)
    s2 = sigma2_given(mu)
    n_iter = np.zeros(r, dtype=int)
    active = np.zeros(r, dtype=bool)
    if pm is not None and not fixed:
        active = np.ones(r, dtype=bool)
        for _ in range(MAX_SWEEPS):
            new_mu = mu_given(s2)
            new_s2 = sigma2_given(new_mu)
            change = np.abs(new_mu - mu) + np.abs(new_s2 - s2)
            mu, s2 = np.where(active, new_mu, mu), np.where(active, new_s2, s2)
            n_iter += active
            active &= change > 1e-13 * (1.0 + np.abs(mu) + s2)
            if not active.any():
                break
    return np.column_stack([mu, s2]), n_iter, ~active


# ------------------------------------------------------------- the general path
def log_prior_derivs(h: Mapping, v: np.ndarray) -> tuple[np.ndarray, ...]:
    """log π(v), d/dv and d²/dv² of one prior at ``v`` (m,), each (m,).

    Analytic for the named priors (the Laplace prior's derivatives away from its kink);
    central differences of scipy's ``logpdf`` (steps 1e-4·max(|v|, 1e-3)) otherwise.
    """
    dist = h["dist"]
    with np.errstate(all="ignore"):
        lp = frozen(h).logpdf(v)
        if dist == "normal":
            return lp, -(v - h["mean"]) / h["var"], _curvature(h, v)
        if dist == "laplace":
            return lp, -np.sign(v - h["loc"]) / h["scale"], _curvature(h, v)
        if dist in ("t", "cauchy"):
            df = h.get("df", 1.0)
            u, s = (v - h["loc"]) / h["scale"], h["scale"]
            d1 = -(df + 1.0) * u / (s * (df + u**2))
            return lp, d1, -(df + 1.0) * (df - u**2) / (s**2 * (df + u**2) ** 2)
        if dist in ("beta", "gamma", "invgamma"):
            d2 = _curvature(h, v)
            if dist == "beta":
                d1 = _ratio(h["a"] - 1.0, v) - _ratio(h["b"] - 1.0, 1.0 - v)
            elif dist == "gamma":
                d1 = _ratio(h["shape"] - 1.0, v) - h["rate"]
            else:
                d1 = -(h["shape"] + 1.0) / v + h["scale"] / v**2
            return lp, d1, d2
        law = frozen(h)
        lo, hi = law.support()
        step = 1e-4 * np.maximum(np.abs(v), 1e-3)  # kept inside the support (an edge mode)
        step = np.minimum(step, np.minimum(v - lo, hi - v) / 2)
        f = law.logpdf
        up, dn = f(v + step), f(v - step)
        return lp, (up - dn) / (2 * step), (up - 2 * lp + dn) / step**2


def _ratio(c: float, v: np.ndarray) -> np.ndarray:
    """c / v, and 0 where c = 0 even if v is 0 (a Beta(1, b) prior has no (a − 1)/p)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.zeros_like(v) if c == 0 else c / v


def _conjugate_hessian(h: Mapping, v: np.ndarray) -> np.ndarray:
    if h["dist"] == "beta":
        return -_ratio(h["a"] - 1.0, v**2) - _ratio(h["b"] - 1.0, (1.0 - v) ** 2)
    if h["dist"] == "gamma":
        return -_ratio(h["shape"] - 1.0, v**2)
    return _ratio(h["shape"] + 1.0, v**2) - _ratio(2.0 * h["scale"], v**3)


def prior_hessian(model: Family, est: np.ndarray, prior: Mapping) -> np.ndarray:
    """d² log π(θ) / dθ_j² at ``est`` (R, p), per parameter; 0 for flat priors."""
    out = np.zeros_like(est)
    for j, name in enumerate(model.params):
        if name in prior:
            out[:, j] = _curvature(prior[name], est[:, j])
    return out


def _curvature(h: Mapping, v: np.ndarray) -> np.ndarray:
    """d² log π(v) / dv² of one prior at ``v`` (m,): closed forms for the normal,
    Laplace, beta, gamma and inverse-gamma priors (also :func:`log_prior_derivs`'s), the
    others through :func:`log_prior_derivs` (whose log-density needs scipy.stats)."""
    dist = h["dist"]
    with np.errstate(all="ignore"):
        if dist == "normal":
            return np.full_like(v, -1.0 / h["var"])
        if dist == "laplace":
            return np.zeros_like(v)
        if dist in ("beta", "gamma", "invgamma"):
            return _conjugate_hessian(h, v)
    return log_prior_derivs(h, v)[2]


#: the unconstrained coordinate beyond which a probability or positive parameter
#: counts as having run to the edge of its domain (e^±40)
EDGE = 40.0
#: a converged free coordinate beyond this (e^±30 ≈ 1e-13 from the edge) is the edge
NEAR_EDGE = 30.0


def newton_map(
    model: Family, x: np.ndarray, prior: Mapping, fixed: Mapping[str, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Batched Newton maximisation of log L(θ) + Σ_j log π_j(θ_j) over the free θ.

    The free parameters are mapped to the real line (log, logit) and
    :func:`mlesim.optimize.newton_maximise` iterates on every row at once, from the MLE
    where it is inside the domain, else from the prior's median. A replicate whose mode
    does not converge fails with the reason. A mode that runs to the edge of the domain
    (beyond e^±40 on the free scale) is that edge when it is the only free parameter
    (p̂ = 0 for a probability whose log posterior rises all the way to 0, as the MLE's
    p̂ = 0), and a failure with the reason otherwise.

    Returns
    -------
    theta : (R, p); n_iter : (R,); converged : (R,) bool; reason : (R,) object.
    """
    free = fixed_mask(model, fixed)
    names = [n for n, f in zip(model.params, free, strict=True) if f]
    kinds = [model.domains[n].kind for n in names]
    theta0 = _start(model, x, prior, fixed)
    bound = np.array([np.inf if k == "real" else EDGE for k in kinds])
    lower, upper = -bound, bound
    if isinstance(model, SmoothFamily):  # the family's own limits (the t's ν ≤ 1e6)
        lo, hi = model.limits(free)
        lower, upper = np.maximum(lower, lo), np.minimum(upper, hi)
    with np.errstate(all="ignore"):
        z0 = to_free(model, theta0, free)
        res = optimize.newton_maximise(
            _objective(model, x, prior, fixed, free), z0, lower=lower, upper=upper, maxiter=200
        )
    theta = from_free(model, res.z, free, fixed)
    conv, reason = res.converged.copy(), res.reasons()
    edge = res.status == optimize.BOUNDARY
    reason[edge] = (
        "the posterior mode runs to the edge of the parameter space (a flat prior where "
        "the likelihood keeps rising); give that parameter a prior or hold it fixed"
    )
    if len(names) == 1 and kinds[0] != "real":
        # one free parameter climbing to its edge: the mode is the edge (Newton may also
        # stop near it, where the slope on the free scale vanishes)
        edge |= res.converged & (np.abs(res.z[:, 0]) > NEAR_EDGE)
        lo = {"unit": 0.0, "positive": 0.0}.get(kinds[0], -np.inf)
        hi = {"unit": 1.0, "positive": np.inf}.get(kinds[0], np.inf)
        j = model.index(names[0])
        theta[edge, j] = np.where(res.z[edge, 0] > 0, hi, lo)
        conv |= edge
        reason[edge] = ""
    conv &= estimable(model, theta)
    return theta, res.n_iter, conv, reason


def _start(model: Family, x: np.ndarray, prior: Mapping, fixed: Mapping) -> np.ndarray:
    """Starting values (R, p): the MLE where it is an interior point, else the prior's
    median (or 0.5, 1, 0 by domain for a flat prior)."""
    with np.errstate(all="ignore"):
        theta = model.mle(x, dict(fixed) or None).theta.copy()
    for j, name in enumerate(model.params):
        kind = model.domains[name].kind
        v = theta[:, j]
        inside = np.isfinite(v) & {"real": True, "positive": v > 0, "unit": (v > 0) & (v < 1)}[kind]
        med = {"real": 0.0, "positive": 1.0, "unit": 0.5}[kind]
        if name in prior:
            m = float(frozen(prior[name]).median())
            med = m if model.domains[name].contains(m) else med
        theta[:, j] = np.where(inside, v, med)
    return theta


def _objective(
    model: Family, x: np.ndarray, prior: Mapping, fixed: Mapping, free: np.ndarray
) -> Callable:
    """The log posterior as a function of the free coordinates z, for the optimiser."""
    kinds = [model.domains[n].kind for n, f in zip(model.params, free, strict=True) if f]
    data = model.prepare(x) if isinstance(model, SmoothFamily) else None

    def fun(z, rows):
        theta = from_free(model, z, free, fixed)
        if data is not None:
            f, g, h = model.derivs(subset(data, rows), theta)
        else:
            xr = x[rows]
            f, g = model.loglik(xr, theta), model.score(xr, theta).sum(axis=1)
            h = model.hessian(xr, theta)
        g, h = g.copy(), h.copy()
        for j, name in enumerate(model.params):
            if name in prior and free[j]:
                lp, d1, d2 = log_prior_derivs(prior[name], theta[:, j])
                f = f + lp
                g[:, j] += d1
                h[:, j, j] += d2
        return (f, *transform_derivs(theta[:, free], g[:, free], h[:, free][:, :, free], kinds))

    return fun
