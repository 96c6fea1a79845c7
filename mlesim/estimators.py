"""Estimators, batched over replicates, in the scikit-learn manner.

Every estimator takes a chunk of data sets ``x`` of shape (R, n) — replicate axis
first — and after :meth:`Estimator.fit` holds

- ``params_`` : (R, k) estimates of the parameters named in ``param_names_``;
- ``se_`` : (R, k) standard errors (NaN where the estimator has none);
- ``converged_`` : (R,) bool, False where the fit failed (NaN or -inf estimate, or not
  converged); +inf for a positive parameter is an estimate on the edge (ν̂ = ∞);
- ``n_iter_`` : (R,) iterations used (0 for closed forms).

Hyper-parameters are stored in ``__init__`` and checked by :meth:`Estimator.validate`,
which raises :class:`~mlesim.errors.ConfigError` naming the key. ``make_estimator``
builds one from a configuration spec ``{kind: ..., **options}``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from mlesim import robust
from mlesim.errors import ConfigError
from mlesim.families import Family
from mlesim.families.base import estimable, fixed_mask
from mlesim.plugins import (
    TARGET,
    FreeParameters,
    PluginContractError,
    ShapeError,
    call_per_replicate,
    call_vectorized,
    resolve,
    writable,
)
from mlesim.priors import check_prior, is_closed_form, map_estimate
from mlesim.standard_errors import at_boundary, information_se, observed_se, sandwich_se
from mlesim.sufficient import mean_ss

#: the ``se`` option of the MLE
SE_METHODS = ("expected", "observed", "sandwich")


def settle(
    finite: np.ndarray, conv: np.ndarray, reason: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The converged mask (R,) and reasons (R,) of a fit: a replicate converges when the
    fit says so and its estimates are estimable (``finite``); a failure without a reason
    of its own gets "not converged" or "non-finite estimate", a success ''."""
    conv = np.asarray(finite, bool) & np.asarray(conv, bool)
    if conv.all():  # (the usual chunk: no per-row work on the object array)
        return conv, np.full(conv.shape, "", dtype=object)
    reason = np.array(reason, dtype=object)
    blank = ~conv & (reason == "")
    reason[blank] = np.where(finite, "not converged", "non-finite estimate")[blank]
    reason[conv] = ""
    return conv, reason


#: the estimator kinds, filled by the class definitions (:meth:`Estimator.__init_subclass__`):
#: a new kind is one class; configurations select it as ``{kind: <kind>}``
ESTIMATORS: dict[str, type[Estimator]] = {}
#: the estimators of the families whose data are not i.i.d. scalars (regressions,
#: categorical, mixtures), by (family name, kind): filled by classes that declare
#: ``families`` (mlesim.learners)
LEARNERS: dict[tuple[str, str], type[Estimator]] = {}


class Estimator:
    """Base class; subclasses implement :meth:`_fit` and declare ``kind``.

    A subclass that sets ``kind`` registers itself in :data:`ESTIMATORS` unless it sets
    ``register = False`` (a plugin, named by ``_target_`` rather than by kind). ``_fit``
    may set ``self._conv`` (R,) and ``self._reason`` (R,) to report iterations that did
    not converge and why.
    """

    kind: ClassVar[str]
    options: ClassVar[tuple[str, ...]] = ()
    #: each replicate's fit depends on its own row of data only, in the same arithmetic
    #: whatever the other rows (closed forms): chunks may be fitted together
    #: (:func:`mlesim.work.bundles`); False unless a class says so
    rowwise: ClassVar[bool] = False
    register: ClassVar[bool] = True

    #: the families whose data this class fits, when they are not i.i.d. scalars
    families: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" not in cls.__dict__ or not cls.__dict__.get("register", True):
            return
        if cls.families:
            for family in cls.families:
                LEARNERS[family, cls.kind] = cls
            ESTIMATORS.setdefault(cls.kind, cls)
        else:
            ESTIMATORS[cls.kind] = cls

    def __init__(self, model: Family, label: str = "", **options: Any):
        self.model = model
        self.label = label or self.kind
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            allowed = ", ".join(("kind",) + self.options)
            raise ConfigError(f"{self.key}.{unknown[0]}", f"unknown option; allowed: {allowed}")
        for name in self.options:
            setattr(self, name, options.get(name))
        self.validate()

    @property
    def key(self) -> str:
        """Configuration key of this estimator, for error messages."""
        return f"estimators.{self.label}"

    def validate(self) -> None:
        """Check hyper-parameters against the model; raise ConfigError."""

    @property
    def se_min_n(self) -> int:
        """Smallest sample size with a standard error: below it the SE is NaN while the
        estimate stands (the mean's s/√n needs n ≥ 2); summary.csv's ``n_se`` counts
        the replicates with an SE."""
        return 1

    @property
    def moments_needed(self) -> int:
        """How many moments of the data law must exist for the estimator to estimate
        anything (the mean: 1; the method of moments: p); 0 for none."""
        return 0

    @property
    def param_names_(self) -> tuple[str, ...]:
        """Names of the k estimated parameters, the columns of ``params_`` and ``se_``."""
        return self.model.params

    @property
    def held_fixed(self) -> dict[str, float]:
        """Parameters the estimator holds at given values (not estimated); {} for most."""
        return {}

    def retarget(self, target: np.ndarray, crlb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """This estimator's estimand and variance bound, each (p,) in the model's
        parameter order, from the study's ``target`` and ``crlb``: the same for most;
        an estimator that assumes another law than the model's (a Laplace-noise MLE of
        normal-noise data, class-balanced weights) converges elsewhere and says where
        (its bound then NaN where the estimand moved)."""
        return target, crlb

    def fit(self, x: np.ndarray | Mapping[str, np.ndarray]) -> Estimator:
        """Fit every row of ``x`` (R, n) — or of the field ``x`` of a data mapping; see
        the module docstring for the attributes; also sets ``reason_`` (R,), why each
        failed replicate failed ('' where it converged). A class defined outside
        mlesim (a user's) is given its own writable copy of read-only data
        (:func:`mlesim.plugins.writable`): it may change what it is given."""
        if not type(self).__module__.startswith("mlesim."):
            x = writable(x)
        data, rows = self._data(x)
        self._conv = self._reason = None
        est, se, n_iter = self._fit(data)
        conv, reason = settle(
            estimable(self.model, est, self.param_names_),  # +inf on an edge counts
            np.ones(rows, bool) if self._conv is None else self._conv,
            np.full(rows, "", object) if self._reason is None else self._reason,
        )
        self.params_, self.se_, self.n_iter_ = est, se, np.asarray(n_iter)
        self.converged_, self.reason_ = conv, reason
        return self

    def _data(self, x: np.ndarray | Mapping[str, np.ndarray]) -> tuple[np.ndarray, int]:
        """What ``_fit`` receives, and the number of replicates: the i.i.d. sample
        ``x`` (R, n) (the field ``x`` of a data mapping)."""
        x = np.asarray(x["x"] if isinstance(x, Mapping) else x, dtype=float)
        if x.ndim != 2:
            raise ValueError(f"x must have shape (R, n), got {x.shape}")
        return x, x.shape[0]

    def _fit(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.options if getattr(self, k))
        return f"{type(self).__name__}({self.model.name}{', ' if opts else ''}{opts})"


def check_fixed_option(model: Family, fixed: Any, key: str) -> dict[str, float]:
    """The ``fixed`` option of an estimator, checked: names are parameters, values in
    their domains, at least one parameter left free; ConfigError at ``key`` otherwise."""
    fixed = dict(fixed or {})
    for name, value in fixed.items():
        if name not in model.params:
            allowed = ", ".join(model.params)
            raise ConfigError(
                f"{key}.{name}", f"not a parameter of {model.name}; allowed: {allowed}"
            )
        domain = model.domains[name]
        if not domain.contains(value):
            raise ConfigError(f"{key}.{name}", f"must be {domain.describe()}, got {value!r}")
    if len(fixed) == model.p:
        raise ConfigError(key, "at least one parameter must stay free")
    return {k: float(v) for k, v in fixed.items()}


def closed_form_family(model: Family) -> bool:
    """Whether ``model`` is one of mlesim's closed-form families itself (its MLE a formula
    of each row; a user's subclass defined elsewhere is not taken on trust)."""
    return type(model).__module__ == "mlesim.families.closed_form"


class HoldsFixed(Estimator):
    """An estimator with the ``fixed`` option: the parameters it holds at given values
    are not estimated (no kind of its own)."""

    fixed: dict[str, float]

    @property
    def param_names_(self):
        return tuple(n for n in self.model.params if n not in self.fixed)

    @property
    def held_fixed(self) -> dict[str, float]:
        return dict(self.fixed)


class MLE(HoldsFixed):
    """Maximum likelihood, batched over replicates (closed form or batched Newton).

    Options
    -------
    fixed : mapping of parameters held at given values (e.g. ``{nu: 5}`` for student_t).
    se : ``expected`` (default) | ``observed`` | ``sandwich`` — the standard errors:
        expected information n I(θ̂) (:func:`information_se`), observed information
        −H(θ̂) (:func:`observed_se`), or the sandwich H⁻¹ (Σ s sᵀ) H⁻¹ that stays valid
        under misspecification (:func:`sandwich_se`).

    ``reason_`` gives the family's own reasons, e.g. the Student-t's
    "boundary: nu_hat = inf …".
    """

    kind = "mle"
    options = ("fixed", "se")

    @property
    def rowwise(self) -> bool:  # the closed-form families' MLEs and their SEs
        return closed_form_family(self.model)

    def validate(self):
        self.fixed = check_fixed_option(self.model, self.fixed, f"{self.key}.fixed")
        self.se = "expected" if self.se is None else self.se
        if self.se not in SE_METHODS:
            raise ConfigError(
                f"{self.key}.se", f"unknown {self.se!r}; allowed: {', '.join(SE_METHODS)}"
            )

    def _fit(self, x):
        res = self.model.mle(x, self.fixed or None)
        free = fixed_mask(self.model, self.fixed)
        if self.se == "observed":
            se = observed_se(self.model, x, res.theta, free)
        elif self.se == "sandwich":
            se = sandwich_se(self.model, x, res.theta, free)
        else:
            se = information_se(self.model, res.theta, x.shape[1], free)
        self._conv = res.converged
        self._reason = res.reason
        return res.theta[:, free], se, res.n_iter


class MAP(HoldsFixed):
    """Maximum a posteriori: the mode of log L(θ) + Σ_j log π_j(θ_j) (see :mod:`mlesim.priors`).

    Options
    -------
    prior : mapping parameter → ``{dist: ..., hyper-parameters}``; parameters without
        one get a flat prior. Conjugate pairs and the Laplace prior of a normal mean
        (the soft threshold) are closed forms; any other family and smooth prior is
        maximised by batched Newton iterations.
    fixed : mapping of parameters held at given values (the normal's σ² known).

    SE from the curvature of the log posterior at the mode (the Laplace
    approximation), sqrt(diag((−∇² log p(θ̂ | x))⁻¹)); see :func:`mlesim.priors.map_estimate`.
    """

    kind = "map"
    options = ("prior", "fixed")

    @property
    def rowwise(self) -> bool:  # conjugate modes, or the closed-form MLE without a prior
        closed = closed_form_family(self.model)
        return closed and (not self.prior or is_closed_form(self.model, self.prior))

    def validate(self):
        self.fixed = check_fixed_option(self.model, self.fixed, f"{self.key}.fixed")
        prior = dict(self.prior or {})
        self.prior = check_prior(self.model, prior, f"{self.key}.prior", self.fixed)

    def _fit(self, x):
        est, se, n_iter, self._conv, self._reason = map_estimate(
            self.model, x, self.prior, self.fixed
        )
        return est, se, n_iter


class UnbiasedVariance(Estimator):
    """Sample variance s² = Σ(x − x̄)² / (n − 1); SE sqrt(2 s⁴ / (n − 1)) (normal theory).

    At n = 1 it is 0/0: the replicate is reported as failed.
    """

    kind = "unbiased_variance"
    rowwise = True

    def validate(self):
        if self.model.variance is None:
            raise ConfigError(
                f"{self.key}.kind",
                f"unbiased_variance needs a model with a variance parameter (normal), "
                f"not {self.model.name}",
            )

    @property
    def param_names_(self):
        return (self.model.variance,)

    def _fit(self, x):
        n = x.shape[1]
        with np.errstate(divide="ignore", invalid="ignore"):
            s2 = mean_ss(x)[1] / (n - 1) if n > 1 else np.full(x.shape[0], np.nan)
            se = np.sqrt(2.0 * s2**2 / (n - 1)) if n > 1 else np.full(x.shape[0], np.nan)
        return s2[:, None], se[:, None], np.zeros(x.shape[0], dtype=int)


class Mean(Estimator):
    """Sample mean x̄ of the parameter the mean estimates; SE s / √n."""

    kind = "mean"
    rowwise = True

    def validate(self):
        if self.model.location is None:
            raise ConfigError(
                f"{self.key}.kind",
                f"the mean estimates no parameter of {self.model.name}; use it with "
                "normal, bernoulli, poisson (or a location family)",
            )

    @property
    def param_names_(self):
        return (self.model.location,)

    @property
    def moments_needed(self) -> int:
        return 1

    @property
    def se_min_n(self) -> int:
        return 2

    def _fit(self, x):
        n = x.shape[1]
        xbar, ss = mean_ss(x)
        with np.errstate(invalid="ignore", divide="ignore"):
            se = np.sqrt(ss / (n - 1)) / np.sqrt(n) if n > 1 else np.full(x.shape[0], np.nan)
        return xbar[:, None].copy(), se[:, None], np.zeros(x.shape[0], dtype=int)


#: the ``se`` option of the median
MEDIAN_SE = ("order_statistics", "model")


class Median(Estimator):
    """Sample median of a symmetric family's centre.

    Options: ``se`` — ``order_statistics`` (default) or ``model``.

    - ``order_statistics``: the Maritz–Jarrett standard error (Maritz & Jarrett 1978,
      JASA 73:194; Wilcox 2012, *Introduction to Robust Estimation*, §3.1.1), model-free:
      with the order statistics x₍₁₎ ≤ … ≤ x₍ₙ₎, m = ⌊n/2⌋ + 1 and weights
      W_i = B(i/n) − B((i − 1)/n), B the Beta(m, n − m + 1) cdf,
      SE² = Σ W_i x₍ᵢ₎² − (Σ W_i x₍ᵢ₎)² — the bootstrap variance of x₍ₘ₎ in closed form.
      It stays honest when the data are not from the model (contamination, t₃ data).
    - ``model``: the asymptotic 1 / (2 f(m) √n) (Serfling 1980, §2.3.3) with the density
      f of the *assumed* model, fitted by maximum likelihood, at the median — right only
      when the model is; 0 for a constant sample (the fitted density is a spike), NaN
      where the model's fit failed otherwise.
    """

    kind = "median"
    options = ("se",)

    def validate(self):
        if self.model.center is None:
            raise ConfigError(
                f"{self.key}.kind",
                f"the median needs a symmetric location family, not {self.model.name}",
            )
        self.se = "order_statistics" if self.se is None else self.se
        if self.se not in MEDIAN_SE:
            raise ConfigError(
                f"{self.key}.se", f"unknown {self.se!r}; allowed: {', '.join(MEDIAN_SE)}"
            )

    @property
    def param_names_(self):
        return (self.model.center,)

    @property
    def se_min_n(self) -> int:
        return 2 if self.se == "order_statistics" else 1

    def _fit(self, x):
        med = np.median(x, axis=1)
        if self.se == "model":
            theta = self.model.mle(x).theta
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                dens = np.exp(self.model.logpdf(med[:, None], theta))[:, 0]
                se = 1.0 / (2.0 * dens * np.sqrt(x.shape[1]))
            se[x.max(axis=1) == x.min(axis=1)] = 0.0  # no spread: the fitted density is a spike
        else:
            se = robust.maritz_jarrett_se(x)
        return med[:, None], se[:, None], np.zeros(x.shape[0], dtype=int)


# ---------------------------------------------- robust estimators of the centre (mlesim.robust)
#: the ``scale`` option of the Huber estimator
HUBER_SCALES = ("mad", "proposal2")


class RobustLocation(Estimator):
    """Base of the robust estimators of a symmetric family's centre (``model.center``),
    batched by the functions of :mod:`mlesim.robust`; not a kind itself.

    The SE needs n ≥ 2 (NaN at n = 1, where the estimate is the observation). A replicate
    whose iteration did not converge fails with "not converged"; one with no standard
    error at n ≥ 2 (Σ ψ' ≤ 0 for the biweight, a single untrimmed observation) fails with
    the reason ``no_se_reason``. A subclass implements :meth:`_estimate`.
    """

    #: why a replicate with n ≥ 2 has no standard error
    no_se_reason: ClassVar[str] = "no standard error"

    def validate(self):
        if self.model.center is None:
            raise ConfigError(
                f"{self.key}.kind",
                f"{self.kind} estimates the centre of a symmetric location family, and "
                f"{self.model.name} has none; allowed: a family with a centre (e.g. normal)",
            )

    def _number(self, name: str, default: float, lower: float, upper: float | None = None) -> float:
        """The option ``name`` as a float in (lower, ∞) — or [lower, upper) if ``upper`` is
        given — ``default`` if unset; ConfigError otherwise."""
        value = getattr(self, name)
        if value is None:
            return default
        allowed = f"> {lower:g}" if upper is None else f"in [{lower:g}, {upper:g})"
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        ok = ok and bool(np.isfinite(value))
        if ok:
            ok = value > lower if upper is None else lower <= value < upper
        if not ok:
            raise ConfigError(
                f"{self.key}.{name}",
                f"must be a number {allowed}, got {value!r}; allowed: a number {allowed} "
                f"(default {default:g})",
            )
        return float(value)

    @property
    def param_names_(self):
        return (self.model.center,)

    @property
    def se_min_n(self) -> int:
        return 2

    def _estimate(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """(est, se) or (est, se, n_iter, converged), each (R,), for x (R, n)."""
        raise NotImplementedError

    def _fit(self, x):
        r, n = x.shape
        out = self._estimate(x)
        est, se = out[0], out[1]
        n_iter = out[2] if len(out) > 2 else np.zeros(r, dtype=int)
        conv = out[3] if len(out) > 3 else np.ones(r, dtype=bool)
        no_se = conv & ~np.isfinite(se) if n >= 2 else np.zeros(r, dtype=bool)
        self._conv = conv & ~no_se
        self._reason = np.where(no_se, self.no_se_reason, "").astype(object)
        return est[:, None], se[:, None], n_iter


class HuberLocation(RobustLocation):
    """Huber M-estimator of the centre (Huber 1964), :func:`mlesim.robust.huber_location`.

    Options: ``k`` — the tuning constant of ψ_k(r) = clip(r, −k, k) (default 1.345, 95%
    efficiency at the normal); ``scale`` — ``mad`` (default: the normalised MAD about the
    median, held fixed; IRLS from the median) or ``proposal2`` (Huber's proposal 2:
    location and scale jointly). SE: the sandwich s² Σψ²/(n − 1) / (Σψ'/n)² / n with
    Huber's small-sample factor K² (:func:`mlesim.robust.m_location_se`).
    """

    kind = "huber"
    options = ("k", "scale")
    no_se_reason = "no standard error: no residual inside [-k, k] (sum of psi' = 0)"

    def validate(self):
        super().validate()
        self.k = self._number("k", 1.345, 0.0)
        self.scale = "mad" if self.scale is None else self.scale
        if self.scale not in HUBER_SCALES:
            raise ConfigError(
                f"{self.key}.scale",
                f"unknown {self.scale!r}; allowed: {', '.join(HUBER_SCALES)}",
            )

    def _estimate(self, x):
        return robust.huber_location(x, self.k, self.scale)


class TukeyLocation(RobustLocation):
    """Tukey biweight M-estimator of the centre (Beaton & Tukey 1974),
    :func:`mlesim.robust.tukey_location`: IRLS from the median with the normalised MAD
    held fixed; points beyond c MADs get weight 0.

    Options: ``c`` — the tuning constant (default 4.685, 95% efficiency at the normal).
    SE as for :class:`HuberLocation`, with the biweight's ψ.
    """

    kind = "tukey"
    options = ("c",)
    no_se_reason = "no standard error: sum of psi'(r) <= 0 at the estimate (unstable root)"

    def validate(self):
        super().validate()
        self.c = self._number("c", 4.685, 0.0)

    def _estimate(self, x):
        return robust.tukey_location(x, self.c)


class TrimmedMean(RobustLocation):
    """Symmetric trimmed mean, :func:`mlesim.robust.trimmed_mean`: g = ⌊γn⌋ trimmed at
    each end (scipy's ``trim_mean``); Tukey–McLaughlin SE s_w √n / (n − 2g), s_w the
    winsorized SD.

    Options: ``proportion`` — γ in [0, 0.5) (default 0.1). γ = 0 is the mean, which
    needs the data's mean.
    """

    kind = "trimmed_mean"
    options = ("proportion",)
    no_se_reason = "no standard error: a single observation left after trimming"

    def validate(self):
        super().validate()
        self.proportion = self._number("proportion", 0.1, 0.0, 0.5)

    @property
    def moments_needed(self) -> int:
        return 1 if self.proportion == 0 else 0

    def _estimate(self, x):
        return robust.trimmed_mean(x, self.proportion)


class WinsorizedMean(TrimmedMean):
    """Winsorized mean, :func:`mlesim.robust.winsorized_mean`: the g = ⌊γn⌋ smallest and
    largest values pulled in to their neighbours (scipy's ``mstats.winsorize``); Wilcox's
    SE s_w (n − 1) / ((n − 2g − 1) √n) — right at the normal, about 7% small for t₃ data
    at any n (it omits the quantile terms of the influence function; see the function).

    Options: ``proportion`` — γ in [0, 0.5) (default 0.1).
    """

    kind = "winsorized_mean"
    no_se_reason = "no standard error: n - 2g < 2 observations left unwinsorized"

    def _estimate(self, x):
        return robust.winsorized_mean(x, self.proportion)


class HodgesLehmann(RobustLocation):
    """Hodges–Lehmann estimate of the centre, the median of the Walsh averages
    (x_i + x_j)/2, i ≤ j, :func:`mlesim.robust.hodges_lehmann`; model-free SE from the
    length of the 95% signed-rank confidence interval over 2 · 1.96."""

    kind = "hodges_lehmann"

    def _estimate(self, x):
        return robust.hodges_lehmann(x)


class Moments(Estimator):
    """Method of moments: match the first p moments (x̄, then the /n variance).

    SE by the sandwich for the moment equations ψ(x, θ) = g(x) − m(θ):
    Var θ̂ ≈ A⁻¹ B A⁻ᵀ / n with A = ∂m/∂θ and B = Cov g(X) (Hansen 1982; Newey &
    McFadden 1994, Thm 3.4), B estimated from each data set.
    """

    kind = "moments"

    def validate(self):
        if "moments" not in self.model.provides:
            raise ConfigError(f"{self.key}.kind", f"no moment estimator for {self.model.name}")

    @property
    def moments_needed(self) -> int:
        return self.model.p

    def _fit(self, x):
        theta = self.model.moments_estimate(x)
        return theta, moment_sandwich_se(self.model, x, theta), np.zeros(x.shape[0], dtype=int)


def moment_sandwich_se(family: Family, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Sandwich SE of a method-of-moments fit; shapes x (R, n), theta (R, p) → (R, p).

    Var θ̂ = A⁻¹ B A⁻ᵀ / n with A = ∂m/∂θ by central differences and B the sample
    covariance of (x, x², …). An estimate on the edge of the parameter space (b̂ = 0 on
    constant data) gets SE 0, as in :func:`mlesim.standard_errors.pinned_se`; a variance
    that is 0 up to rounding (−3e-16 at n = 2) is clipped to 0.
    """
    r, n = x.shape
    p = family.p
    with np.errstate(all="ignore"):
        powers = np.arange(1, p + 1)
        g = x[:, :, None] ** powers  # (R, n, p): x, x², ...
        gc = g - g.mean(axis=1, keepdims=True)
        b = np.einsum("rni,rnj->rij", gc, gc) / n
        jac = np.empty((r, p, p))
        for j in range(p):  # loop over parameters, not replicates
            h = 1e-6 * np.maximum(np.abs(theta[:, j]), 1e-3)
            up, dn = theta.copy(), theta.copy()
            up[:, j] += h
            dn[:, j] -= h
            diff = _raw_moments(family, up, p) - _raw_moments(family, dn, p)
            jac[:, :, j] = diff / (2 * h[:, None])
        pin = at_boundary(family, theta, np.ones(p, dtype=bool))
        rows, cols = np.nonzero(pin)
        jac[rows, :, cols] = 0.0
        jac[rows, cols, cols] = 1.0
        b[rows, cols, :] = 0.0
        b[rows, :, cols] = 0.0
        ok = np.all(np.isfinite(jac), axis=(1, 2)) & np.all(np.isfinite(b), axis=(1, 2))
        ok &= np.abs(np.linalg.det(np.where(np.isfinite(jac), jac, 0.0))) > 0
        var = np.full((r, p), np.nan)
        if ok.any():
            ainv = np.linalg.inv(jac[ok])
            cov = ainv @ b[ok] @ np.swapaxes(ainv, 1, 2) / n
            var[ok] = np.maximum(np.diagonal(cov, axis1=1, axis2=2), 0.0)
        se = np.sqrt(var)
    se[pin] = 0.0
    se[np.isposinf(theta)] = np.inf  # size = inf (not over-dispersed): no finite precision
    return se


def _raw_moments(family: Family, theta: np.ndarray, p: int) -> np.ndarray:
    """E[X], E[X²], … up to order p (p ≤ 2), shape (R, p)."""
    mean, var = family.mean_var(theta)
    cols = [mean, var + mean**2][:p]
    return np.stack(cols, axis=-1)


class PluginEstimator(Estimator):
    """A user's estimator named by ``_target_`` (see :mod:`mlesim.plugins`).

    The spec is ``{_target_: module.attr, params: [names], vectorized: true, **kwargs}``:
    ``params`` are the model parameters it estimates, in the order of its output
    columns; the other keys are passed to the callable. A ``_target_`` that is a
    subclass of :class:`Estimator` is built as ``cls(model, label=label, **kwargs)`` and
    fitted as the built-ins are.
    """

    kind = "plugin"
    register = False  # named by _target_, not selected by kind

    def __init__(self, model: Family, label: str = "", search_path: str | None = None, **spec):
        self.model, self.label, self.search_path = model, label or "plugin", search_path
        self.target = spec.pop(TARGET)
        self.vectorized = spec.pop("vectorized", True)
        names = spec.pop("params", None)
        self.kwargs = spec
        obj = resolve(self.target, f"{self.key}.{TARGET}", search_path)
        if isinstance(obj, type) and issubclass(obj, Estimator):
            try:
                self.inner = obj(model, label=self.label, **self.kwargs)
            except TypeError as err:
                raise ConfigError(f"{self.key}", f"cannot build {self.target}: {err}") from None
            inner = list(self.inner.param_names_)
            if names is not None and list(names) != inner:
                raise ConfigError(
                    f"{self.key}.params",
                    f"{self.target} estimates {inner}, in that order; allowed: leave params "
                    f"out, or params: {inner}",
                )
            names = inner
        elif callable(obj):
            self.inner = None
        else:
            raise ConfigError(
                f"{self.key}.{TARGET}", f"{self.target} is neither callable nor an Estimator"
            )
        self.names = self._check_params(names)
        if not isinstance(self.vectorized, bool):
            raise ConfigError(
                f"{self.key}.vectorized", f"must be true or false, got {self.vectorized!r}"
            )

    def _check_params(self, names: Any) -> tuple[str, ...]:
        key = f"{self.key}.params"
        allowed = ", ".join(self.model.params) or "the keys of the estimand mapping"
        if not isinstance(names, list | tuple) or not names:
            raise ConfigError(
                key, f"must list the parameters it estimates, e.g. [mu]; allowed: {allowed}"
            )
        bad = [n for n in names if not isinstance(n, str) or n not in self.model.params]
        if bad or len(set(names)) != len(names):
            what = f"{bad[0]!r} is not a parameter" if bad else "names repeat"
            raise ConfigError(key, f"{what}; allowed: {allowed}")
        return tuple(names)

    @property
    def param_names_(self) -> tuple[str, ...]:
        return self.names

    @property
    def se_min_n(self) -> int:
        return 1 if self.inner is None else self.inner.se_min_n

    @property
    def held_fixed(self) -> dict[str, float]:
        return {} if self.inner is None else self.inner.held_fixed

    @property
    def moments_needed(self) -> int:
        return 0 if self.inner is None else self.inner.moments_needed

    def fit(self, data: np.ndarray | Mapping[str, np.ndarray]) -> PluginEstimator:
        """Fit the chunk ``data``; sets ``params_``, ``se_``, ``converged_``, ``n_iter_``
        and ``reason_`` (R,).

        Raises
        ------
        PluginContractError
            The output has the wrong shape for the whole chunk.
        """
        if self.inner is not None:
            inner = self.inner.fit(data)  # (a user's class: it copies read-only data)
            rows = inner.converged_.shape[0]
            est, se = np.asarray(inner.params_, float), np.asarray(inner.se_, float)
            conv = np.asarray(inner.converged_, bool)
            reason = np.asarray(inner.reason_, object)
        else:
            func = resolve(self.target, f"{self.key}.{TARGET}", self.search_path)
            data = writable(data)  # a user's function may change what it is given
            arrays = dict(data) if isinstance(data, Mapping) else {"x": data}
            one = next(iter(arrays.values())) if len(arrays) == 1 else arrays
            rows = np.shape(next(iter(arrays.values())))[0]
            call = call_vectorized if self.vectorized else call_per_replicate
            try:
                est, se, conv, reason = call(func, one, rows, len(self.names), self.kwargs)
            except ShapeError as err:
                raise PluginContractError(
                    self.key, f"{self.target} {err}; allowed: {self._shapes()}"
                ) from None
        conv, reason = settle(estimable(self.model, est, self.names), conv, reason)
        self.params_, self.se_, self.converged_, self.reason_ = est, se, conv, reason
        self.n_iter_ = np.zeros(rows, dtype=int)
        return self

    def _shapes(self) -> str:
        k = len(self.names)
        if not self.vectorized:
            return f"a number or an array of {k} per data set (params {list(self.names)})"
        return (
            f"estimates of shape (R,) or (R, {k}) for params {list(self.names)}, a tuple "
            "(estimates, se) or a mapping with 'estimate'"
        )

    def __repr__(self) -> str:
        return f"PluginEstimator({self.target}, params={list(self.names)})"


def make_estimator(
    label: str, spec: Mapping[str, Any], model: Family, search_path: str | None = None
) -> Estimator:
    """Build the estimator described by ``spec``: ``{kind: ..., **options}`` for a
    built-in one, ``{_target_: module.attr, params: [...], ...}`` for a plugin
    (:class:`PluginEstimator`; modules are looked up from ``search_path`` first).

    Raises
    ------
    ConfigError
        Unknown or missing kind, unknown option, or an option the model cannot take.
    """
    if not isinstance(spec, Mapping):
        raise ConfigError(f"estimators.{label}", "must be a mapping with a 'kind' key")
    spec = dict(spec)
    if TARGET in spec:
        if "kind" in spec:
            raise ConfigError(f"estimators.{label}.kind", "give either kind or _target_, not both")
        return PluginEstimator(model, label=label, search_path=search_path, **spec)
    kind = spec.pop("kind", None)
    if not model.iid:
        importlib.import_module(model.estimators_module)  # registers its kinds
    allowed = ", ".join(sorted(ESTIMATORS))
    if kind is None:
        raise ConfigError(
            f"estimators.{label}.kind", f"missing; allowed: {allowed}, or _target_: module.attr"
        )
    if kind not in ESTIMATORS:
        raise ConfigError(f"estimators.{label}.kind", f"unknown kind {kind!r}; allowed: {allowed}")
    if isinstance(model, FreeParameters):
        raise ConfigError(
            f"estimators.{label}.kind",
            f"{kind} needs a model family, and the truth is a generator without one; "
            "allowed: set model=<family>, or use a _target_ estimator",
        )
    return _estimator_class(kind, model, label)(model, label=label, **spec)


def _estimator_class(kind: str, model: Family, label: str) -> type[Estimator]:
    """The class of ``kind`` for ``model``: its own (:data:`LEARNERS`) for a family whose
    data are not i.i.d. scalars, else the scalar one; ConfigError when there is none."""
    if not model.iid:
        mine = sorted(k for f, k in LEARNERS if f == model.name)
        if (model.name, kind) not in LEARNERS:
            raise ConfigError(
                f"estimators.{label}.kind",
                f"{kind} does not fit {model.name} data ({', '.join(model.fields)}); "
                f"allowed: {', '.join(mine)}",
            )
        return LEARNERS[model.name, kind]
    cls = ESTIMATORS[kind]
    if cls.families:  # only a learner has this kind
        takers = sorted({f for f, k in LEARNERS if k == kind})
        raise ConfigError(
            f"estimators.{label}.kind",
            f"{kind} fits {', '.join(takers)} data, not i.i.d. {model.name} scalars; allowed: "
            "a family among those as the truth, or an estimator of scalars",
        )
    return cls
