"""Data-generating mechanisms: the truth, optional contamination, the assumed model,
and the estimand (the true value, or the pseudo-true KL projection under misspecification).

With contamination fraction ε each observation comes from the truth g with probability
1 − ε and from the contaminating distribution h otherwise (Huber's gross-error model,
Huber & Ronchetti 2009, §1.2): the data law is (1 − ε) g + ε h.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.optimize as so

from mlesim.errors import ConfigError
from mlesim.estimators import Estimator, make_estimator
from mlesim.families import Family, get_family


@dataclass(frozen=True)
class Contamination:
    """A contaminating family at ``theta`` mixed in with probability ``fraction``."""

    family: Family
    theta: np.ndarray
    fraction: float


@dataclass(frozen=True)
class Scenario:
    """Truth, contamination and model of one condition.

    Attributes
    ----------
    truth : Family;  theta : (p,) true parameters;  model : Family assumed by the
    estimators;  contamination : Contamination or None;  n : sample size;
    estimand : "auto" | "truth" | "pseudo_true";  estimator_specs : label → spec.
    """

    truth: Family
    theta: np.ndarray
    model: Family
    contamination: Contamination | None
    n: int
    estimand: str
    estimator_specs: dict

    @classmethod
    def from_config(cls, config: dict[str, Any], n: int) -> Scenario:
        """Build from a plain configuration dict (one condition of the grid)."""
        truth_cfg = config["truth"]
        truth = get_family(truth_cfg.get("family"), key="truth.family")
        theta = truth.check(truth_cfg.get("params") or {}, key="truth.params")
        model = (
            truth
            if config.get("model") in (None, truth.name)
            else get_family(config["model"], key="model")
        )
        cont = None
        c = config.get("contamination")
        if c is not None:
            fam = get_family(c.get("family"), key="contamination.family")
            ctheta = fam.check(c.get("params") or {}, key="contamination.params")
            frac = c.get("fraction")
            if not isinstance(frac, int | float) or isinstance(frac, bool) or not 0 <= frac < 1:
                raise ConfigError("contamination.fraction", f"must be in [0, 1), got {frac!r}")
            cont = Contamination(fam, ctheta, float(frac)) if frac > 0 else None
        if config["estimand"] == "truth" and (model.name != truth.name or cont is not None):
            raise ConfigError(
                "estimand",
                "'truth' needs model == truth family and no contamination; "
                "use 'auto' or 'pseudo_true'",
            )
        return cls(truth, theta, model, cont, n, config["estimand"], dict(config["estimators"]))

    # ----- data -------------------------------------------------------------------
    def sample(self, seed_seq: np.random.SeedSequence, rows: int) -> np.ndarray:
        """Data sets of shape (rows, n) from independent streams spawned off ``seed_seq``.

        Data, contamination indicators and contaminating values use separate child
        streams, each filled row by row, so the first rows do not depend on ``rows``.
        """
        data_ss, mask_ss, cont_ss = seed_seq.spawn(3)
        x = self.truth.sample(np.random.default_rng(data_ss), self.theta, (rows, self.n))
        if self.contamination is not None:
            c = self.contamination
            mask = np.random.default_rng(mask_ss).random((rows, self.n)) < c.fraction
            other = c.family.sample(np.random.default_rng(cont_ss), c.theta, (rows, self.n))
            x = np.where(mask, other, x)
        return x

    def estimators(self) -> list[Estimator]:
        """The configured estimators, built for the model (validates their options)."""
        return [
            make_estimator(label, spec, self.model) for label, spec in self.estimator_specs.items()
        ]

    # ----- estimand ---------------------------------------------------------------
    @property
    def misspecified(self) -> bool:
        return self.model.name != self.truth.name or self.contamination is not None

    def target(self) -> np.ndarray:
        """The estimand θ* of the model's parameters, shape (p,)."""
        if self.estimand == "truth" or (self.estimand == "auto" and not self.misspecified):
            return self.theta
        return self.pseudo_true()

    def data_mean_var(self) -> tuple[float, float]:
        """Mean and variance of one observation under the (contaminated) truth."""
        m, v = (float(a) for a in self.truth.mean_var(self.theta))
        if self.contamination is None:
            return m, v
        c = self.contamination
        m2, v2 = (float(a) for a in c.family.mean_var(c.theta))
        e = c.fraction
        mean = (1 - e) * m + e * m2
        return mean, (1 - e) * (v + m**2) + e * (v2 + m2**2) - mean**2

    def expect(self, func) -> float:
        """E[func(X)] under the (contaminated) truth, by scipy's ``expect``."""
        value = self.truth.scipy_dist(self.theta).expect(func)
        if self.contamination is None:
            return float(value)
        c = self.contamination
        other = c.family.scipy_dist(c.theta).expect(func)
        return float((1 - c.fraction) * value + c.fraction * other)

    def pseudo_true(self) -> np.ndarray:
        """KL projection θ* = argmax_θ E_g[log f(X; θ)] of the truth onto the model.

        Exponential families with a ``project_moments`` method match the expected
        sufficient statistics in closed form (White 1982, Econometrica 50:1–25);
        otherwise E_g log f is maximised numerically on the unconstrained scale.
        """
        if hasattr(self.model, "project_moments"):
            return np.asarray(self.model.project_moments(*self.data_mean_var()), dtype=float)
        return self._numeric_projection()

    def _numeric_projection(self) -> np.ndarray:
        model = self.model
        domains = [model.domains[name] for name in model.params]
        m, v = self.data_mean_var()
        start = (
            model.moments_estimate(np.array([[m - np.sqrt(v), m + np.sqrt(v)]]))[0]
            if hasattr(model, "moments_estimate")
            else np.ones(model.p)
        )
        z0 = np.array([d.to_free(s) for d, s in zip(domains, start, strict=True)])

        def negloglik(z):
            theta = np.array([d.from_free(zi) for d, zi in zip(domains, z, strict=True)])
            # quad (continuous truths) passes a scalar and needs one back
            return -self.expect(
                lambda x: model.logpdf(np.atleast_2d(x), theta[None])[0].reshape(np.shape(x))
            )

        res = so.minimize(
            negloglik,
            z0,
            method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 4000},
        )
        return np.array([d.from_free(zi) for d, zi in zip(domains, res.x, strict=True)])

    def crlb(self, target: np.ndarray, free: np.ndarray | None = None) -> np.ndarray:
        """Cramér–Rao variance bound diag((n I(θ*))⁻¹) for the free parameters, shape (p,)."""
        free = np.ones(self.model.p, dtype=bool) if free is None else free
        info = self.model.fisher(target[None])[0][np.ix_(free, free)]
        out = np.full(self.model.p, np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            if np.all(np.isfinite(info)):
                out[free] = np.diag(np.linalg.pinv(info)) / self.n
        return out
