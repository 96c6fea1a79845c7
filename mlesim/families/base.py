"""The parametric family interface shared by every family.

A family holds no data and no state: parameters travel as arrays ``theta`` whose
last axis runs over :attr:`Family.params` (shape ``(..., p)``), so one call handles a
whole chunk of replicates at once (DESIGN.md, "the one rule for speed").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from mlesim.errors import ConfigError
from mlesim.lazy import lazy_module

sc = lazy_module("scipy.special")


@dataclass(frozen=True)
class Domain:
    """An interval of allowed parameter values, with its unconstrained map.

    ``kind`` is one of ``"real"`` (any real), ``"positive"`` (> 0), ``"unit"`` (0 < v < 1).
    """

    kind: str = "real"

    def contains(self, value: float) -> bool:
        """True when ``value`` is a finite number inside the domain."""
        if not isinstance(value, int | float) or isinstance(value, bool):
            return False
        if not math.isfinite(value):
            return False
        if self.kind == "positive":
            return value > 0
        if self.kind == "unit":
            return 0 < value < 1
        return True

    def describe(self) -> str:
        """Human text for error messages."""
        return {"real": "a finite real number", "positive": "> 0", "unit": "in (0, 1)"}[self.kind]

    def to_free(self, value: np.ndarray) -> np.ndarray:
        """Map to the real line (log for > 0, logit for (0, 1))."""
        if self.kind == "positive":
            return np.log(value)
        if self.kind == "unit":
            return sc.logit(value)
        return np.asarray(value, dtype=float)

    def from_free(self, value: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_free`."""
        if self.kind == "positive":
            return np.exp(value)
        if self.kind == "unit":
            return sc.expit(value)
        return np.asarray(value, dtype=float)


@dataclass
class FitResult:
    """A batched fit.

    Attributes
    ----------
    theta : ndarray, shape (R, p)
        Estimates in the family's parameter order (fixed parameters filled in).
    converged : ndarray of bool, shape (R,)
    n_iter : ndarray of int, shape (R,)
    reason : ndarray of object (str), shape (R,), or None
        Why a replicate failed ('' where it converged); None when the family gives
        no reasons (closed forms, whose only failure is a non-finite estimate).
    """

    theta: np.ndarray
    converged: np.ndarray
    n_iter: np.ndarray
    reason: np.ndarray | None = None


#: every family class that names itself, by name: filled as the classes are defined
#: (:meth:`Family.__init_subclass__`), so a new family is one class in one module
REGISTRY: dict[str, type[Family]] = {}

#: every truth setting some family takes (:attr:`Family.settings`)
SETTINGS = ("noise", "nu", "covariates")

#: optional abilities a family may declare in :attr:`Family.provides`
ABILITIES = {
    "moments": "moments_estimate: the method-of-moments fit",
    "projection": "project_moments: the KL projection in closed form (exponential families)",
}


class Family:
    """Base class of a parametric family.

    Subclasses set :attr:`name`, :attr:`params`, :attr:`domains` and implement
    :meth:`sample`, :meth:`logpdf`, :meth:`fisher`, :meth:`mle`, :meth:`mean_var`
    and :meth:`scipy_dist`; they declare in :attr:`provides` which optional methods
    they implement (:data:`ABILITIES`). A class that sets ``name`` and ``params``
    registers itself in :data:`REGISTRY` (unless it sets ``register = False``).
    """

    #: optional abilities implemented (keys of :data:`ABILITIES`); callers check this,
    #: never ``hasattr``
    provides: ClassVar[frozenset[str]] = frozenset()
    #: False keeps a class out of the registry (a test double, a helper)
    register: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        unknown = set(cls.provides) - set(ABILITIES)
        if unknown:
            raise TypeError(f"{cls.__name__}.provides: unknown {sorted(unknown)}")
        if "name" in cls.__dict__ and cls.__dict__.get("params") and cls.register:
            REGISTRY[cls.name] = cls

    name: ClassVar[str]
    params: ClassVar[tuple[str, ...]]
    domains: ClassVar[dict[str, Domain]]
    #: parameter the sample mean estimates, if any (e.g. ``mu``, ``lam``, ``p``)
    location: ClassVar[str | None] = None
    #: parameter the sample median estimates for a symmetric family, if any
    center: ClassVar[str | None] = None
    #: parameter ``unbiased_variance`` estimates, if any
    variance: ClassVar[str | None] = None
    discrete: ClassVar[bool] = False
    #: the arrays of one data set: ``("x",)`` for i.i.d. scalars (R, n); a regression
    #: family's ``("X", "y")`` (R, n, d) and (R, n)
    fields: ClassVar[tuple[str, ...]] = ("x",)
    #: truth settings besides ``params`` the family takes (``truth.noise``, ...)
    settings: ClassVar[tuple[str, ...]] = ()
    #: for data other than i.i.d. scalars: the module whose estimator classes declare
    #: this family (``families = (name,)``), imported when an estimator is built
    estimators_module: ClassVar[str] = "mlesim.learners"

    @property
    def width(self) -> int:
        """Numbers per observation (1 for i.i.d. scalars; covariates + response for a
        regression): sizes a chunk's memory."""
        return 1

    @property
    def iid(self) -> bool:
        """True for i.i.d. scalar data ``{"x": (R, n)}`` — what the scalar estimators
        (mean, median, the robust ones, ...), contamination and the numerical pseudo-true
        search need."""
        return self.fields == ("x",)

    def configured(self, cfg: Mapping[str, Any], key: str = "truth") -> Family:
        """The family set up by a truth configuration's settings (:attr:`settings`) and
        the shape of its ``params`` (a regression's number of coefficients); for the
        families without settings, itself after refusing any setting given.

        Raises
        ------
        ConfigError
            At ``<key>.<setting>`` for a setting the family does not take.
        """
        for name in SETTINGS:
            if cfg.get(name) is not None and name not in self.settings:
                takers = sorted(n for n, c in REGISTRY.items() if name in c.settings)
                raise ConfigError(
                    f"{key}.{name}",
                    f"{self.name} takes no {name}; allowed: leave it unset, or a family that "
                    f"takes it: {', '.join(takers)}",
                )
        return self

    # ----- parameters -------------------------------------------------------------
    @property
    def p(self) -> int:
        """Number of parameters."""
        return len(self.params)

    def index(self, name: str) -> int:
        """Position of parameter ``name`` in :attr:`params`."""
        return self.params.index(name)

    def check(self, params: Mapping[str, Any], key: str = "truth.params") -> np.ndarray:
        """Validate a parameter mapping and return it as an array of shape (p,).

        Raises
        ------
        ConfigError
            Naming the offending key and the allowed values.
        """
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise ConfigError(
                f"{key}.{unknown[0]}",
                f"unknown parameter of {self.name}; allowed: {', '.join(self.params)}",
            )
        missing = [name for name in self.params if name not in params]
        if missing:
            raise ConfigError(
                f"{key}.{missing[0]}", f"missing; {self.name} needs {', '.join(self.params)}"
            )
        values = []
        for name in self.params:
            value = params[name]
            if isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            domain = self.domains[name]
            if not domain.contains(value):
                raise ConfigError(
                    f"{key}.{name}",
                    f"must be {domain.describe()} for {self.name}, got {value!r}",
                )
            values.append(value)
        return np.asarray(values, dtype=float)

    def as_dict(self, theta: np.ndarray) -> dict[str, float]:
        """Parameter vector of shape (p,) as a name → value mapping."""
        return {name: float(v) for name, v in zip(self.params, np.asarray(theta), strict=True)}

    def column(self, theta: np.ndarray, name: str) -> np.ndarray:
        """Parameter ``name`` from ``theta`` (..., p) with a trailing axis for broadcasting."""
        return np.asarray(theta)[..., self.index(name), None]

    # ----- to implement -----------------------------------------------------------
    def sample(self, rng: np.random.Generator, theta: np.ndarray, size: tuple) -> np.ndarray:
        """Draw an array of shape ``size`` at parameter ``theta`` (p,)."""
        raise NotImplementedError

    def logpdf(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Log-density of ``x`` (R, n) at ``theta`` (R, p) or (p,); returns (R, n)."""
        raise NotImplementedError

    def fisher(self, theta: np.ndarray) -> np.ndarray:
        """Fisher information per observation, shape (..., p, p) for ``theta`` (..., p)."""
        raise NotImplementedError

    def bound(self, theta: np.ndarray, free: np.ndarray) -> np.ndarray:
        """Per-observation Cramér–Rao bound of the free parameters: the inverse of the
        Fisher information's free block, shape (k, k) for ``theta`` (p,) and the mask
        ``free`` (p,) with k True entries. Families with constrained parameters (the
        categorical's probabilities summing to 1) override it."""
        info = self.fisher(theta[None])[0][np.ix_(free, free)]
        if not np.all(np.isfinite(info)):
            return np.full(info.shape, np.nan)
        return np.linalg.pinv(info)

    def mle(self, x: np.ndarray, fixed: Mapping[str, float] | None = None) -> FitResult:
        """Maximum likelihood estimates for each row of ``x`` (R, n)."""
        raise NotImplementedError

    def mean_var(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of one observation, each of shape (...) for ``theta`` (..., p)."""
        raise NotImplementedError

    def scipy_dist(self, theta: np.ndarray):
        """The equivalent frozen ``scipy.stats`` distribution at ``theta`` (p,)."""
        raise NotImplementedError

    # ----- optional (declared in ``provides``) -------------------------------------
    def moments_estimate(self, x: np.ndarray) -> np.ndarray:
        """Method-of-moments estimates (R, p) of each row of ``x`` (R, n) ("moments")."""
        raise NotImplementedError(f"{self.name} does not provide 'moments'")

    def project_moments(self, mean: float, var: float) -> list[float]:
        """KL projection θ* from the data law's mean and variance ("projection")."""
        raise NotImplementedError(f"{self.name} does not provide 'projection'")

    # ----- shared -----------------------------------------------------------------
    def score(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Per-observation score ∂ log f(x_i; θ)/∂θ, shape (R, n, p), for ``x`` (R, n)
        and ``theta`` (R, p).

        Default: central differences of :meth:`logpdf` with steps ε^(1/3)·scale
        (Nocedal & Wright 2006, §8.1); families with analytic scores override it.
        """
        theta = np.broadcast_to(np.asarray(theta, dtype=float), (x.shape[0], self.p))
        steps = self._steps(theta, np.finfo(float).eps ** (1 / 3))
        out = np.empty(x.shape + (self.p,))
        with np.errstate(all="ignore"):
            for j in range(self.p):  # loop over parameters, not replicates
                up, dn = theta.copy(), theta.copy()
                up[:, j] += steps[:, j]
                dn[:, j] -= steps[:, j]
                diff = self.logpdf(x, up) - self.logpdf(x, dn)
                out[..., j] = diff / (2 * steps[:, j, None])
        return out

    def hessian(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Hessian of the log-likelihood Σ_i log f(x_i; θ), shape (R, p, p).

        Default: central second differences of :meth:`loglik` with steps ε^(1/4)·scale
        (the O(h²) central formulas); families with analytic Hessians override it.
        """
        theta = np.broadcast_to(np.asarray(theta, dtype=float), (x.shape[0], self.p))
        steps = self._steps(theta, np.finfo(float).eps ** (1 / 4))
        out = np.empty((x.shape[0], self.p, self.p))

        def at(*moves):
            t = theta.copy()
            for j, sign in moves:
                t[:, j] += sign * steps[:, j]
            return self.loglik(x, t)

        with np.errstate(all="ignore"):
            f0 = self.loglik(x, theta)
            for i in range(self.p):  # loop over parameter pairs, not replicates
                hi = steps[:, i]
                out[:, i, i] = (at((i, 2)) - 2 * f0 + at((i, -2))) / (4 * hi**2)
                for j in range(i):
                    hj = steps[:, j]
                    cross = (
                        at((i, 1), (j, 1))
                        - at((i, 1), (j, -1))
                        - at((i, -1), (j, 1))
                        + at((i, -1), (j, -1))
                    )
                    out[:, i, j] = out[:, j, i] = cross / (4 * hi * hj)
        return out

    def _steps(self, theta: np.ndarray, c: float) -> np.ndarray:
        """Finite-difference steps (R, p) that keep θ ± 2·step inside each domain."""
        steps = np.empty_like(theta)
        for j, name in enumerate(self.params):
            v = np.abs(theta[:, j])
            kind = self.domains[name].kind
            if kind == "positive":
                steps[:, j] = c * v
            elif kind == "unit":
                steps[:, j] = c * np.minimum(v, 1 - v)
            else:
                steps[:, j] = c * np.maximum(v, 1.0)
        return steps

    def in_support(self, x: np.ndarray) -> np.ndarray:
        """Boolean mask of ``x`` inside the support (default: every finite value)."""
        return np.isfinite(x)

    def loglik(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Log-likelihood of each row of ``x`` (R, n) at ``theta`` (R, p); shape (R,)."""
        return self.logpdf(x, theta).sum(axis=-1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def estimable(
    family: Family, values: np.ndarray, names: tuple[str, ...] | None = None
) -> np.ndarray:
    """Rows of ``values`` (R, k) that are estimates: every entry finite, or +inf for a
    positive parameter — the edge ν̂ = ∞ of a t (the normal limit) or size = ∞ of a
    negative binomial (the Poisson limit) is an estimate, not a failure.

    ``names`` are the k parameters of the columns (default: all of the family's).
    """
    names = family.params if names is None else names
    values = np.asarray(values, dtype=float)
    ok = np.isfinite(values)
    for j, name in enumerate(names):
        if family.domains[name].kind == "positive":
            ok[:, j] |= np.isposinf(values[:, j])
    return np.all(ok, axis=1)


def fixed_mask(family: Family, fixed: Mapping[str, float] | None) -> np.ndarray:
    """Boolean mask of shape (p,) that is True for the free parameters."""
    fixed = fixed or {}
    return np.array([name not in fixed for name in family.params])


def fill_fixed(family: Family, theta: np.ndarray, fixed: Mapping[str, float] | None) -> np.ndarray:
    """Write fixed values into ``theta`` (R, p) in place and return it."""
    for name, value in (fixed or {}).items():
        theta[:, family.index(name)] = value
    return theta


def to_free(family: Family, theta: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Free columns of ``theta`` (m, p) on the unconstrained scale (log, logit), (m, k)."""
    names = [n for n, f in zip(family.params, free, strict=True) if f]
    return np.column_stack([family.domains[n].to_free(theta[:, family.index(n)]) for n in names])


def from_free(
    family: Family, z: np.ndarray, free: np.ndarray, fixed: Mapping[str, float]
) -> np.ndarray:
    """Full θ (m, p) from free coordinates ``z`` (m, k) and the fixed values."""
    theta = np.empty((z.shape[0], family.p))
    names = [n for n, f in zip(family.params, free, strict=True) if f]
    for i, name in enumerate(names):
        theta[:, family.index(name)] = family.domains[name].from_free(z[:, i])
    for name, value in fixed.items():
        theta[:, family.index(name)] = value
    return theta
