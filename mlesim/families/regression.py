"""Regression and classification families: data ``{"X": (R, n, d), "y": (R, n)}``.

``X`` holds the intercept column first (``X[..., 0] == 1``) and d − 1 covariates drawn
from ``truth.covariates = {dist: normal | uniform | bernoulli, rho: 0}``
(:func:`mlesim.learning_theory.sample_covariates`); ``y`` is

- ``linear_regression``: xᵀβ + ε, with ε of variance ``sigma2`` and law ``truth.noise``
  = normal | laplace | student_t (``truth.nu`` > 2 fixed degrees of freedom);
- ``logistic_regression``: Bernoulli(expit(xᵀβ)), stored as 0.0 / 1.0;
- ``softmax_regression``: class k ∈ {0..K−1} with P(k) ∝ exp(xᵀβ_k), β_0 = 0 (the
  reference class), stored as a float.

Parameters: ``beta0 .. beta{d−1}`` (intercept first) and, for the linear model,
``sigma2``; the softmax's ``beta{k}_{j}`` for classes k = 1..K−1 (``beta: [[...], ...]``
with K − 1 rows). Fisher information per observation (expected over the covariates) from
:mod:`mlesim.learning_theory`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from mlesim import learning_theory as lt
from mlesim.errors import ConfigError
from mlesim.families.base import Domain
from mlesim.families.learning import POSITIVE, REAL, LearningFamily, count, expand
from mlesim.lazy import lazy_module

sc = lazy_module("scipy.special")

#: the noise laws of ``linear_regression`` (``truth.noise``)
NOISES = ("normal", "laplace", "student_t")
#: the covariate laws (``truth.covariates.dist``)
COVARIATES = ("normal", "uniform", "bernoulli")
DEFAULT_COVARIATES = {"dist": "normal", "rho": 0.0}


def check_covariates(cov: Any, d: int, key: str = "truth.covariates") -> dict[str, Any]:
    """``truth.covariates`` completed with its defaults and checked.

    Raises
    ------
    ConfigError
        At ``<key>.dist`` / ``<key>.rho`` / ``<key>`` with the allowed values.
    """
    cov = {**DEFAULT_COVARIATES, **(dict(cov) if cov else {})}
    unknown = sorted(set(cov) - set(DEFAULT_COVARIATES))
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", "unknown key; allowed: dist, rho")
    if cov["dist"] not in COVARIATES:
        raise ConfigError(
            f"{key}.dist", f"unknown {cov['dist']!r}; allowed: {', '.join(COVARIATES)}"
        )
    rho = cov["rho"]
    if not isinstance(rho, int | float) or isinstance(rho, bool):
        raise ConfigError(f"{key}.rho", f"must be a number, got {rho!r}")
    if cov["dist"] != "normal" and rho != 0:
        raise ConfigError(f"{key}.rho", f"must be 0 for {cov['dist']} covariates, got {rho}")
    low = -1 / (d - 2) if d > 2 else -1.0
    if not low < rho < 1:
        raise ConfigError(
            f"{key}.rho", f"must be in ({low:g}, 1) for {d - 1} covariates, got {rho}"
        )
    return {"dist": cov["dist"], "rho": float(rho)}


#: relative agreement two quadrature orders must reach for the information to be used
INFO_RTOL = 1e-7
#: most quadrature nodes tried (the order doubles until the information settles)
MAX_NODES = 2_000_000


def settled_information(func, d: int) -> np.ndarray:
    """``func(order)`` — an expected information by the covariate rule of that order
    (None: the default) — at doubling orders until two agree to :data:`INFO_RTOL`
    relative to the largest entry; NaN when they never do within :data:`MAX_NODES`
    (a slope so steep that p(1 − p) is a spike between the nodes: no bound rather than a
    wrong one). The enumeration and Sobol rules ignore the order and agree at once."""
    m = d - 1
    order = lt.DEFAULT_ORDER.get(m, 0)
    last = func(None)
    while order and (2 * order) ** m <= MAX_NODES:
        order *= 2
        now = func(order)
        scale = np.max(np.abs(now))
        if np.max(np.abs(now - last)) <= INFO_RTOL * scale:
            return now
        last = now
    if not order:  # a rule without an order (enumeration, Sobol)
        return last
    return np.full(last.shape, np.nan)


class _Regression(LearningFamily):
    """Shared parts: coefficients ``beta0..`` and the covariate law."""

    fields = ("X", "y")
    settings: ClassVar[tuple[str, ...]] = ("covariates",)
    #: extra (non-coefficient) parameters after the coefficients
    extra: ClassVar[tuple[str, ...]] = ()

    def __init__(self, d: int = 2, covariates: Mapping | None = None):
        self.d = d
        self.covariates = check_covariates(covariates, d)
        self.params = tuple(f"beta{j}" for j in range(d)) + self.extra

    @property
    def width(self) -> int:
        return self.d + 1

    def domain_of(self, name: str) -> Domain:
        return POSITIVE if name == "sigma2" else REAL

    def settings_of(self) -> dict[str, Any]:
        return {"d": self.d, "covariates": self.covariates}

    def _dims(self, cfg: Mapping[str, Any], key: str) -> int:
        params = expand(cfg.get("params") or {}, f"{key}.params")
        return count(params, "beta", f"{key}.params", least=1)

    def configured(self, cfg: Mapping[str, Any], key: str = "truth") -> _Regression:
        super().configured(cfg, key)
        return type(self)(self._dims(cfg, key), cfg.get("covariates"))

    def design(self, rng: np.random.Generator, size: tuple) -> np.ndarray:
        """Covariates with the intercept column, shape ``size + (d,)``."""
        return lt.sample_covariates(rng, self.covariates, size, self.d)

    def beta(self, theta: np.ndarray) -> np.ndarray:
        """The coefficients of ``theta`` (..., p), shape (..., d)."""
        return np.asarray(theta, dtype=float)[..., : self.d]


class LinearRegression(_Regression):
    """y = xᵀβ + ε, Var ε = σ² (module docstring)."""

    name = "linear_regression"
    params = ("beta0", "beta1", "sigma2")
    settings = ("noise", "nu", "covariates")
    extra = ("sigma2",)

    def __init__(
        self,
        d: int = 2,
        covariates: Mapping | None = None,
        noise: str = "normal",
        nu: float | None = None,
    ):
        super().__init__(d, covariates)
        self.noise, self.nu = noise, nu

    def settings_of(self) -> dict[str, Any]:
        return {**super().settings_of(), "noise": self.noise, "nu": self.nu}

    def configured(self, cfg: Mapping[str, Any], key: str = "truth") -> LinearRegression:
        LearningFamily.configured(self, cfg, key)
        noise, nu = check_noise(cfg.get("noise"), cfg.get("nu"), key)
        return LinearRegression(self._dims(cfg, key), cfg.get("covariates"), noise, nu)

    def sample(self, rng: np.random.Generator, theta: np.ndarray, size: tuple) -> dict:
        """``{"X": size + (d,), "y": size}``; covariates and noise from two child streams,
        each filled row by row."""
        rx, re_ = rng.spawn(2)
        X = self.design(rx, size)
        eps = noise_draws(re_, self.noise, self.nu, float(theta[-1]), size)
        return {"X": X, "y": X @ self.beta(theta) + eps}

    def fisher(self, theta: np.ndarray) -> np.ndarray:
        theta = np.asarray(theta, dtype=float)
        flat = theta.reshape(-1, self.p)
        out = [
            lt.linear_information(t[: self.d], t[-1], self.noise, self.nu, self.covariates)
            for t in flat
        ]
        return np.asarray(out).reshape(theta.shape[:-1] + (self.p, self.p))


def check_noise(noise: Any, nu: Any, key: str = "truth") -> tuple[str, float | None]:
    """A noise law and its ν checked: ν > 2 (so that σ² is the variance) for
    student_t; the other laws ignore ν (so that a design may vary the noise with ν set)
    and get None.

    Raises
    ------
    ConfigError
        At ``<key>.noise`` or ``<key>.nu``.
    """
    noise = "normal" if noise is None else noise
    if noise not in NOISES:
        raise ConfigError(f"{key}.noise", f"unknown {noise!r}; allowed: {', '.join(NOISES)}")
    if noise != "student_t":
        return noise, None
    ok = isinstance(nu, int | float) and not isinstance(nu, bool) and 2 < nu < np.inf
    if not ok:
        raise ConfigError(
            f"{key}.nu", f"student_t noise needs a finite nu > 2 (σ² is its variance), got {nu!r}"
        )
    return noise, float(nu)


def noise_draws(
    rng: np.random.Generator, noise: str, nu: float | None, sigma2: float, size: tuple
) -> np.ndarray:
    """Noise of variance ``sigma2``: normal, Laplace with b = √(σ²/2), or s·t_ν with
    s = √(σ²(ν−2)/ν); shape ``size``."""
    if noise == "normal":
        return np.sqrt(sigma2) * rng.standard_normal(size)
    if noise == "laplace":
        return rng.laplace(0.0, np.sqrt(sigma2 / 2), size)
    return np.sqrt(sigma2 * (nu - 2) / nu) * rng.standard_t(nu, size)


class LogisticRegression(_Regression):
    """y ~ Bernoulli(expit(xᵀβ)); the prevalence E[expit(xᵀβ)] follows from β0."""

    name = "logistic_regression"
    params = ("beta0", "beta1")

    def sample(self, rng: np.random.Generator, theta: np.ndarray, size: tuple) -> dict:
        rx, ry = rng.spawn(2)
        X = self.design(rx, size)
        p = sc.expit(X @ self.beta(theta))
        return {"X": X, "y": (ry.random(size) < p).astype(float)}

    def fisher(self, theta: np.ndarray) -> np.ndarray:
        theta = np.asarray(theta, dtype=float)
        flat = theta.reshape(-1, self.p)
        out = [
            settled_information(
                lambda order, t=t: lt.logistic_information(t, self.covariates, order=order),
                self.d,
            )
            for t in flat
        ]
        return np.asarray(out).reshape(theta.shape[:-1] + (self.p, self.p))


class SoftmaxRegression(_Regression):
    """y ∈ {0..K−1}, P(k | x) ∝ exp(xᵀβ_k) with β_0 = 0; params ``beta{k}_{j}``."""

    name = "softmax_regression"
    params = ("beta1_0", "beta1_1", "beta2_0", "beta2_1")

    def __init__(self, d: int = 2, covariates: Mapping | None = None, K: int = 3):
        self.K = K
        super().__init__(d, covariates)
        self.params = tuple(f"beta{k}_{j}" for k in range(1, K) for j in range(d))

    def settings_of(self) -> dict[str, Any]:
        return {**super().settings_of(), "K": self.K}

    def configured(self, cfg: Mapping[str, Any], key: str = "truth") -> SoftmaxRegression:
        LearningFamily.configured(self, cfg, key)
        params = expand(cfg.get("params") or {}, f"{key}.params")
        rows = sorted({n.split("_")[0] for n in params if n.startswith("beta") and "_" in n})
        if not rows:
            raise ConfigError(
                f"{key}.params.beta",
                "give beta as K − 1 rows of d coefficients, e.g. beta: [[0, 1], [0.5, -1]]",
            )
        K = len(rows) + 1
        d = len([n for n in params if n.startswith("beta1_")])
        return SoftmaxRegression(d, cfg.get("covariates"), K)

    def beta(self, theta: np.ndarray) -> np.ndarray:
        """Coefficients (..., K − 1, d) of ``theta`` (..., p)."""
        theta = np.asarray(theta, dtype=float)
        return theta.reshape(theta.shape[:-1] + (self.K - 1, self.d))

    def probabilities(self, X: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Class probabilities (..., n, K) for covariates X (..., n, d)."""
        eta = np.einsum("...nd,kd->...nk", X, self.beta(theta))
        eta = np.concatenate([np.zeros(eta.shape[:-1] + (1,)), eta], axis=-1)
        return sc.softmax(eta, axis=-1)

    def sample(self, rng: np.random.Generator, theta: np.ndarray, size: tuple) -> dict:
        rx, ry = rng.spawn(2)
        X = self.design(rx, size)
        cum = np.cumsum(self.probabilities(X, theta), axis=-1)[..., :-1]
        y = (ry.random(size)[..., None] >= cum).sum(axis=-1)
        return {"X": X, "y": y.astype(float)}

    def fisher(self, theta: np.ndarray) -> np.ndarray:
        theta = np.asarray(theta, dtype=float)
        flat = theta.reshape(-1, self.p)
        out = [
            settled_information(
                lambda order, t=t: lt.softmax_information(
                    self.beta(t), self.covariates, order=order
                ),
                self.d,
            )
            for t in flat
        ]
        return np.asarray(out).reshape(theta.shape[:-1] + (self.p, self.p))
