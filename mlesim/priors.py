"""Conjugate priors and the batched MAP estimates they give.

A prior is given per parameter as ``{dist: <name>, <hyper-parameters>}``; a parameter
without one has a flat prior (its MAP coordinate is the likelihood's). Supported pairs
(conjugate, Gelman et al. 2013, *Bayesian Data Analysis*, 3rd ed., ch. 2–3):

==================  ==============================  =====================================
family.parameter    prior                           posterior mode (data x of size n)
==================  ==============================  =====================================
bernoulli.p         beta(a, b), a, b ≥ 1            (Σx + a − 1) / (n + a + b − 2)
poisson.lam         gamma(shape, rate), shape ≥ 1   (Σx + shape − 1) / (n + rate)
exponential.rate    gamma(shape, rate), shape ≥ 1   (n + shape − 1) / (Σx + rate)
normal.mu           normal(mean, var)               (n x̄ var + mean σ²) / (n var + σ²)
normal.sigma2       invgamma(shape, scale)          (scale + Σ(x − μ)²/2) / (shape + n/2 + 1)
==================  ==============================  =====================================

For the normal with both priors the joint mode is found by coordinate ascent on all
replicates at once. A normal(0, var) prior on ``mu`` is ridge / weight decay with
coefficient σ²/var: −log π(μ) = μ² / (2 var) + const.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mlesim.errors import ConfigError
from mlesim.families import Family
from mlesim.families.closed_form import row_mean
from mlesim.standard_errors import at_boundary, pinned_se

#: (family, parameter) → (distribution, hyper-parameter names, lower bounds, inclusive)
CONJUGATE: dict[tuple[str, str], tuple[str, tuple[str, ...], tuple[float, ...]]] = {
    ("bernoulli", "p"): ("beta", ("a", "b"), (1.0, 1.0)),
    ("poisson", "lam"): ("gamma", ("shape", "rate"), (1.0, 0.0)),
    ("exponential", "rate"): ("gamma", ("shape", "rate"), (1.0, 0.0)),
    ("normal", "mu"): ("normal", ("mean", "var"), (-np.inf, 0.0)),
    ("normal", "sigma2"): ("invgamma", ("shape", "scale"), (0.0, 0.0)),
}


def check_prior(model: Family, prior: Mapping[str, Any], key: str) -> dict[str, dict]:
    """Validate a prior specification against ``model``; return it as plain dicts.

    Raises
    ------
    ConfigError
        Unknown parameter, non-conjugate distribution, bad or missing hyper-parameter.
    """
    out = {}
    for name, spec in prior.items():
        pkey = f"{key}.{name}"
        if (model.name, name) not in CONJUGATE:
            ok = [p for (fam, p) in CONJUGATE if fam == model.name]
            raise ConfigError(
                pkey,
                f"no conjugate prior for {model.name}.{name}; allowed: {', '.join(ok) or 'none'}",
            )
        dist, hypers, lows = CONJUGATE[(model.name, name)]
        spec = dict(spec or {})
        if spec.get("dist", dist) != dist:
            raise ConfigError(f"{pkey}.dist", f"must be {dist!r} (conjugate), got {spec['dist']!r}")
        spec.pop("dist", None)
        extra = sorted(set(spec) - set(hypers))
        if extra:
            raise ConfigError(f"{pkey}.{extra[0]}", f"unknown; {dist} takes {', '.join(hypers)}")
        values = {}
        for h, low in zip(hypers, lows, strict=True):
            v = spec.get(h)
            strict = low == 0.0
            bad = not isinstance(v, int | float) or isinstance(v, bool) or not np.isfinite(v)
            if bad or (v <= low if strict else v < low):
                rel = f"> {low:g}" if strict else (f">= {low:g}" if np.isfinite(low) else "real")
                raise ConfigError(f"{pkey}.{h}", f"must be a number {rel}, got {v!r}")
            values[h] = float(v)
        out[name] = {"dist": dist, **values}
    return out


def conjugate_map(
    model: Family, x: np.ndarray, prior: Mapping[str, Mapping[str, float]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Posterior modes and their Laplace-approximation SEs for every row of ``x`` (R, n).

    Returns
    -------
    est : (R, p); se : (R, p); n_iter : (R,); converged : (R,) bool
        ``se = sqrt(diag(A⁻¹))`` with A = −∇² log p(θ | x) at the mode θ̂ — the curvature
        of the log posterior, Σ_i −∇² log f(x_i; θ̂) − ∇² log π(θ̂) (the Laplace
        approximation to the posterior; Gelman et al. 2013, §4.1). For the Beta(a, b)
        prior on a Bernoulli p this is sqrt(p̂(1 − p̂)/(n + a + b − 2)); for the
        Gamma(α, β) prior on a Poisson rate sqrt(λ̂/(n + β)). A mode on the edge of the
        parameter space (p̂ = 0 under a Beta(1, b) prior) gets SE 0, as the MLE's
        (:func:`mlesim.standard_errors.pinned_se`). ``converged`` is False where the normal
        model's coordinate ascent hit its cap.
    """
    r, n = x.shape
    s = x.sum(axis=1)
    n_iter = np.zeros(r, dtype=int)
    converged = np.ones(r, dtype=bool)
    if model.name == "normal":
        est, n_iter, converged = _normal_map(x, prior)
    else:
        (name,) = model.params
        h = prior.get(name)
        if h is None:
            est = model.mle(x).theta[:, 0]
        elif model.name == "bernoulli":
            est = (s + h["a"] - 1.0) / (n + h["a"] + h["b"] - 2.0)
        elif model.name == "poisson":
            est = (s + h["shape"] - 1.0) / (n + h["rate"])
        else:  # exponential
            with np.errstate(divide="ignore"):
                est = (n + h["shape"] - 1.0) / (s + h["rate"])
        est = est[:, None]
    with np.errstate(all="ignore"):
        curvature = -model.hessian(x, est)
        j = np.arange(model.p)
        curvature[:, j, j] -= prior_hessian(model, est, prior)
    free = np.ones(model.p, dtype=bool)
    return est, pinned_se(curvature, at_boundary(model, est, free)), n_iter, converged


#: coordinate-ascent sweeps of the normal model's joint mode
MAX_SWEEPS = 500


def _normal_map(x: np.ndarray, prior: Mapping) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Joint mode of (mu, sigma2) by coordinate ascent, batched; ≤ ``MAX_SWEEPS`` sweeps.

    Returns the modes (R, 2), the sweeps used (R,) and a converged mask (R,), False
    where the cap was reached before the change fell below 1e-13 relative.
    """
    r, n = x.shape
    xbar = row_mean(x)
    ss = ((x - xbar[:, None]) ** 2).sum(axis=1)
    pm, pv = prior.get("mu"), prior.get("sigma2")

    def sigma2_given(mu):
        q = ss + n * (xbar - mu) ** 2
        if pv is None:
            return q / n
        return (pv["scale"] + q / 2.0) / (pv["shape"] + n / 2.0 + 1.0)

    mu = xbar.copy()
    s2 = sigma2_given(mu)
    n_iter = np.zeros(r, dtype=int)
    active = np.zeros(r, dtype=bool)
    if pm is not None:
        active = np.ones(r, dtype=bool)
        for _ in range(MAX_SWEEPS):
            new_mu = (n * xbar * pm["var"] + pm["mean"] * s2) / (n * pm["var"] + s2)
            new_s2 = sigma2_given(new_mu)
            change = np.abs(new_mu - mu) + np.abs(new_s2 - s2)
            mu, s2 = np.where(active, new_mu, mu), np.where(active, new_s2, s2)
            n_iter += active
            active &= change > 1e-13 * (1.0 + np.abs(mu) + s2)
            if not active.any():
                break
    return np.column_stack([mu, s2]), n_iter, ~active


def prior_hessian(model: Family, est: np.ndarray, prior: Mapping) -> np.ndarray:
    """d² log π(θ) / dθ_j² at ``est`` (R, p), per parameter; 0 for flat priors.

    A term whose coefficient is zero is zero even where its factor is infinite (the
    Beta(1, b) prior has no (a − 1)/p² term, also at p = 0).
    """
    out = np.zeros_like(est)

    def term(c: float, v: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.zeros_like(v) if c == 0 else c / v

    for j, name in enumerate(model.params):
        h, v = prior.get(name), est[:, j]
        if h is None:
            continue
        if h["dist"] == "beta":
            out[:, j] = -term(h["a"] - 1.0, v**2) - term(h["b"] - 1.0, (1.0 - v) ** 2)
        elif h["dist"] == "gamma":
            out[:, j] = -term(h["shape"] - 1.0, v**2)
        elif h["dist"] == "normal":
            out[:, j] = -1.0 / h["var"]
        elif h["dist"] == "invgamma":
            out[:, j] = term(h["shape"] + 1.0, v**2) - term(2.0 * h["scale"], v**3)
    return out
