"""Families with K categories or components, sized by the configuration:

- ``categorical``: ``p: [p0, .., p{K−1}]`` summing to 1; data ``{"y": (R, n)}`` with
  values 0..K−1 (floats). Its K probabilities are constrained (Σ p = 1), so its
  Cramér–Rao bound is the multinomial covariance (diag(p) − ppᵀ)/n, not an inverse of
  a full-rank information.
- ``gaussian_mixture``: ``weights``, ``means`` (strictly increasing — components are
  labelled by their means), ``variances``; one-dimensional data ``{"x": (R, n)}``;
  parameters ``w0..``, ``mu0..``, ``var0..``. Fisher information per observation by
  quadrature (:func:`mlesim.learning_theory.mixture_information`) in the free
  parameterisation (w_0..w_{K−2}, μ, var), the last weight 1 − Σ others by the delta
  rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mlesim import learning_theory as lt
from mlesim.errors import ConfigError
from mlesim.families.base import Domain
from mlesim.families.learning import POSITIVE, REAL, UNIT, LearningFamily, count, expand

#: condition number of a mixture's information above which it counts as singular
#: (its quadrature is accurate to ~1e-8 relative, so smaller eigenvalues are noise)
MAX_CONDITION = 1e8
#: |Σ p − 1| allowed in a configuration (rounding of decimal inputs)
SUM_TOL = 1e-9


def _sums_to_one(values: np.ndarray, key: str) -> None:
    if abs(float(np.sum(values)) - 1.0) > SUM_TOL:
        raise ConfigError(key, f"must sum to 1, got {float(np.sum(values)):.12g}")


def _categories(u: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Inverse-CDF draws: category of each uniform in ``u`` under ``probs`` (K,)."""
    return np.searchsorted(np.cumsum(probs)[:-1], u, side="right")


class Categorical(LearningFamily):
    """K categories with probabilities ``p0..p{K−1}``."""

    name = "categorical"
    params = ("p0", "p1", "p2")
    fields = ("y",)

    def __init__(self, K: int = 3):
        self.K = K
        self.params = tuple(f"p{k}" for k in range(K))

    def domain_of(self, name: str) -> Domain:
        return UNIT

    def settings_of(self) -> dict[str, Any]:
        return {"K": self.K}

    def configured(self, cfg: Mapping[str, Any], key: str = "truth") -> Categorical:
        super().configured(cfg, key)
        params = expand(cfg.get("params") or {}, f"{key}.params")
        return Categorical(count(params, "p", f"{key}.params", least=2))

    def check(self, params: Mapping[str, Any], key: str = "truth.params") -> np.ndarray:
        theta = super().check(params, key)
        _sums_to_one(theta, f"{key}.p")
        return theta

    def sample(self, rng: np.random.Generator, theta: np.ndarray, size: tuple) -> dict:
        return {"y": _categories(rng.random(size), np.asarray(theta)).astype(float)}

    def bound(self, theta: np.ndarray, free: np.ndarray) -> np.ndarray:
        """(diag(p) − ppᵀ) restricted to ``free``: the covariance of one observation's
        indicator vector, the constrained bound (Rao 1973, §5a)."""
        p = np.asarray(theta, dtype=float)
        cov = np.diag(p) - np.outer(p, p)
        return cov[np.ix_(free, free)]

    def fisher(self, theta: np.ndarray) -> np.ndarray:
        """The information of the free p_0..p_{K−2} (p_{K−1} = 1 − Σ others) padded
        with a zero row and column for p_{K−1}: shape (..., K, K)."""
        theta = np.asarray(theta, dtype=float)
        flat = theta.reshape(-1, self.K)
        out = np.zeros((flat.shape[0], self.K, self.K))
        for i, p in enumerate(flat):
            out[i, :-1, :-1] = lt.categorical_information(p)
        return out.reshape(theta.shape[:-1] + (self.K, self.K))


class GaussianMixture(LearningFamily):
    """Σ_k w_k N(μ_k, var_k) with μ_0 < μ_1 < ... (module docstring)."""

    name = "gaussian_mixture"
    params = ("w0", "w1", "mu0", "mu1", "var0", "var1")

    def __init__(self, K: int = 2):
        self.K = K
        self.params = tuple(f"{s}{k}" for s in ("w", "mu", "var") for k in range(K))

    def domain_of(self, name: str) -> Domain:
        return UNIT if name.startswith("w") else POSITIVE if name.startswith("var") else REAL

    @property
    def width(self) -> int:
        """The data and EM's K responsibilities per observation (sizes a chunk)."""
        return self.K + 1

    def settings_of(self) -> dict[str, Any]:
        return {"K": self.K}

    @staticmethod
    def _rename(params: Mapping[str, Any]) -> dict[str, Any]:
        """``weights/means/variances`` lists as ``w/mu/var`` indexed scalars."""
        names = {"weights": "w", "means": "mu", "variances": "var"}
        return expand({names.get(k, k): v for k, v in params.items()})

    def configured(self, cfg: Mapping[str, Any], key: str = "truth") -> GaussianMixture:
        super().configured(cfg, key)
        params = self._rename(cfg.get("params") or {})
        return GaussianMixture(count(params, "w", f"{key}.params.weights", least=2))

    def check(self, params: Mapping[str, Any], key: str = "truth.params") -> np.ndarray:
        if not isinstance(params, Mapping):
            raise ConfigError(key, f"must be a mapping, got {params!r}")
        theta = LearningFamily.check(self, self._rename(params), key)
        w, mu, _ = self.split(theta)
        _sums_to_one(w, f"{key}.weights")
        if np.any(np.diff(mu) <= 0):
            raise ConfigError(
                f"{key}.means",
                f"must increase strictly (components are labelled by their means), got {mu}",
            )
        return theta

    def split(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(weights, means, variances), each (..., K), of ``theta`` (..., 3K)."""
        theta = np.asarray(theta, dtype=float)
        K = self.K
        return theta[..., :K], theta[..., K : 2 * K], theta[..., 2 * K :]

    def sample(self, rng: np.random.Generator, theta: np.ndarray, size: tuple) -> dict:
        """Component labels and normal draws from two child streams, row by row."""
        rz, rx = rng.spawn(2)
        w, mu, var = self.split(theta)
        z = _categories(rz.random(size), w)
        return {"x": mu[z] + np.sqrt(var[z]) * rx.standard_normal(size)}

    def fisher(self, theta: np.ndarray) -> np.ndarray:
        """Information of the free parameters (w_0..w_{K−2}, μ, var), padded with a
        zero row and column at w_{K−1}: shape (..., 3K, 3K)."""
        theta = np.asarray(theta, dtype=float)
        flat = theta.reshape(-1, self.p)
        keep = self._free_positions()
        out = np.zeros((flat.shape[0], self.p, self.p))
        for i, t in enumerate(flat):
            w, mu, var = self.split(t)
            out[i][np.ix_(keep, keep)] = lt.mixture_information(w, mu, var)
        return out.reshape(theta.shape[:-1] + (self.p, self.p))

    def _free_positions(self) -> np.ndarray:
        """Positions of the free parameters: every one but w_{K−1}."""
        return np.array([j for j in range(self.p) if j != self.K - 1])

    def jacobian(self) -> np.ndarray:
        """∂(all 3K parameters)/∂(the 3K − 1 free ones): the identity with the row of
        w_{K−1} = 1 − Σ others set to −1 on the weights; shape (3K, 3K − 1)."""
        K = self.K
        J = np.zeros((self.p, self.p - 1))
        keep = self._free_positions()
        J[keep, np.arange(self.p - 1)] = 1.0
        J[K - 1, : K - 1] = -1.0
        return J

    def bound(self, theta: np.ndarray, free: np.ndarray) -> np.ndarray:
        """J I⁻¹ Jᵀ (delta rule for the last weight), restricted to ``free``."""
        w, mu, var = self.split(theta)
        info = lt.mixture_information(w, mu, var)
        if not np.all(np.isfinite(info)) or np.linalg.cond(info) > MAX_CONDITION:
            # components that (nearly) coincide: the information is singular and the
            # bound infinite — NaN, not the pseudo-inverse's finite (even negative) value
            return np.full((int(free.sum()),) * 2, np.nan)
        J = self.jacobian()
        cov = J @ np.linalg.pinv(info) @ J.T
        return cov[np.ix_(free, free)]
