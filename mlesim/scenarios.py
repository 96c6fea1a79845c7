"""Data-generating mechanisms: the truth, optional contamination, the assumed model,
and the estimand (the true value, or the pseudo-true KL projection under misspecification).

With contamination fraction ε each observation comes from the truth g with probability
1 − ε and from the contaminating distribution h otherwise (Huber's gross-error model,
Huber & Ronchetti 2009, §1.2): the data law is (1 − ε) g + ε h.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlesim.errors import ConfigError
from mlesim.estimators import Estimator, make_estimator
from mlesim.families import Family, get_family
from mlesim.lazy import lazy_module
from mlesim.plugins import (
    TARGET,
    FreeParameters,
    Generator,
    local_objects,
    resolve,
    targets_in,
)

so = lazy_module("scipy.optimize")
st = lazy_module("scipy.stats")
integrate = lazy_module("scipy.integrate")


@dataclass(frozen=True)
class Contamination:
    """A contaminating family at ``theta`` mixed in with probability ``fraction``."""

    family: Family
    theta: np.ndarray
    fraction: float


#: data of one chunk: named arrays with the replicate axis first ({"x": (R, n)} i.i.d.)
Data = dict[str, np.ndarray]


@dataclass(frozen=True)
class Scenario:
    """Truth, contamination and model of one condition.

    Attributes
    ----------
    truth : Family, or a user's :class:`~mlesim.plugins.Generator`;  theta : (p,) true
    parameters of a family truth (empty for a generator);  model : Family assumed by the
    estimators (:class:`~mlesim.plugins.FreeParameters` for a generator without one);
    contamination : Contamination or None;  n : sample size;  estimand : "auto" |
    "truth" | "pseudo_true", or a mapping parameter → true value;  estimator_specs :
    label → spec;  search_path : where plugin modules are imported from;  local : the
    objects handed over in Python that its ``_target_`` names refer to.
    """

    truth: Family | Generator
    theta: np.ndarray
    model: Family
    contamination: Contamination | None
    n: int
    estimand: str | dict
    estimator_specs: dict
    search_path: str | None = None
    local: dict = field(default_factory=dict)

    @classmethod
    def from_config(
        cls, config: dict[str, Any], n: int, search_path: str | None = None
    ) -> Scenario:
        """Build from a plain configuration dict (one condition of the grid). Objects
        handed over in Python (``local:`` targets) travel with the scenario."""
        truth, theta = _truth(config["truth"], search_path)
        estimand = config["estimand"]
        model = _model(config.get("model"), truth, estimand)
        if isinstance(estimand, dict):
            estimand = _explicit_estimand(estimand, model)
        cont = _contamination(config.get("contamination"))
        _check_fields(truth, model, cont)
        if estimand == "truth" and model.name != truth.name:
            raise ConfigError(
                "estimand",
                f"'truth' needs the model to be the truth's family ({truth.name}), got "
                f"{model.name}; use 'auto' or 'pseudo_true'",
            )
        specs = dict(config["estimators"])
        local = local_objects(targets_in(config))
        return cls(truth, theta, model, cont, n, estimand, specs, search_path, local)

    @property
    def generated(self) -> bool:
        """True when the truth is a user's generator (no family, no theory)."""
        return isinstance(self.truth, Generator)

    # ----- data -------------------------------------------------------------------
    def sample(self, seed_seq: np.random.SeedSequence, rows: int) -> Data:
        """Data sets from independent streams spawned off ``seed_seq``: a mapping of
        arrays with the replicate axis first, ``{"x": (rows, n)}`` for a family.

        Data, contamination indicators and contaminating values use separate child
        streams, each filled row by row, so the first rows do not depend on ``rows``.
        """
        data_ss, mask_ss, cont_ss = seed_seq.spawn(3)
        data = as_data(
            self.truth.sample(np.random.default_rng(data_ss), self.theta, (rows, self.n)), rows
        )
        if self.contamination is not None:
            c = self.contamination
            mask = np.random.default_rng(mask_ss).random((rows, self.n)) < c.fraction
            other = c.family.sample(np.random.default_rng(cont_ss), c.theta, (rows, self.n))
            data["x"] = np.where(mask, other, data["x"])
        return data

    def estimators(self) -> list[Estimator]:
        """The configured estimators, built for the model (validates their options)."""
        return [
            make_estimator(label, spec, self.model, self.search_path)
            for label, spec in self.estimator_specs.items()
        ]

    # ----- estimand ---------------------------------------------------------------
    @property
    def misspecified(self) -> bool:
        """True when the model is not the truth's family or the data are contaminated."""
        return self.model.name != self.truth.name or self.contamination is not None

    def target(self) -> np.ndarray:
        """The estimand θ* of the model's parameters, shape (p,).

        ``truth``: the true θ — with contamination, the parameter of the uncontaminated
        bulk, so that bias measures the damage the outliers do (Huber & Ronchetti 2009,
        ch. 1); ``pseudo_true``: the KL projection of the data law onto the model;
        ``auto``: the truth when the model is right and the data clean, else the
        projection; a mapping: its values (NaN for the parameters it leaves out)."""
        if isinstance(self.estimand, dict):
            return np.array([self.estimand.get(name, math.nan) for name in self.model.params])
        if self.estimand == "truth" or (self.estimand == "auto" and not self.misspecified):
            return self.theta
        return self.pseudo_true()

    @property
    def has_theory(self) -> bool:
        """True when the Cramér–Rao bound means something: the truth is a family and
        the estimand is not an explicit mapping."""
        return not self.generated and not isinstance(self.estimand, dict)

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

    def expect(
        self, func: Callable[[np.ndarray], np.ndarray], breaks: tuple[float, ...] = ()
    ) -> float:
        """E[func(X)] under the (contaminated) truth.

        ``func`` maps an array of points to an array of the same shape. A continuous
        component is integrated by :func:`expect_continuous` with extra breakpoints
        ``breaks`` (where ``func`` has a kink); a discrete one by scipy's ``expect``
        (an exact sum over the support).
        """
        value = _expect(self.truth.scipy_dist(self.theta), func, breaks)
        if self.contamination is None:
            return value
        c = self.contamination
        other = _expect(c.family.scipy_dist(c.theta), func, breaks)
        return (1 - c.fraction) * value + c.fraction * other

    def pseudo_true(self) -> np.ndarray:
        """KL projection θ* = argmax_θ E_g[log f(X; θ)] of the truth onto the model.

        Exponential families with a ``project_moments`` method match the expected
        sufficient statistics in closed form (White 1982, Econometrica 50:1–25);
        otherwise E_g log f is maximised numerically on the unconstrained scale.
        """
        if not self.model.iid:  # its own model (_check_fields): θ* is the true θ
            return self.theta
        if "projection" in self.model.provides:
            return np.asarray(self.model.project_moments(*self.data_mean_var()), dtype=float)
        return self._numeric_projection()

    def check_estimand(self) -> None:
        """Refuse a pseudo-true estimand that does not exist, cheaply (before a run).

        It does not exist when E_g log f(X; θ) = −∞ for every θ — the data law has
        heavier tails than the model allows (e.g. a normal model for Cauchy data) or
        mass where the model has none (a discrete model of continuous data). Checked by
        the closed-form projection being finite and in the model's domain (and, for a
        discrete model, the data discrete too), or by E_g log f being finite at the
        start of the numerical search.

        Raises
        ------
        ConfigError
            At ``model`` (or ``contamination`` when the model is the truth's family).
        """
        if isinstance(self.estimand, dict):
            self._check_explicit_estimand()
            return
        if self.estimand == "truth" or (self.estimand == "auto" and not self.misspecified):
            return
        if not self.model.iid:  # its own model: θ* is the true θ
            return
        model = self.model
        if "projection" in model.provides:
            with np.errstate(all="ignore"):
                theta = np.asarray(model.project_moments(*self.data_mean_var()), dtype=float)
            ok = all(
                model.domains[name].contains(float(v))
                for name, v in zip(model.params, theta, strict=True)
            )
            # the moment match says nothing of the support: a discrete model gives
            # continuous data probability 0 (E log f = −∞), whatever its moments
            laws = [self.truth] + ([self.contamination.family] if self.contamination else [])
            ok = ok and not (model.discrete and not all(law.discrete for law in laws))
        else:
            theta = self._start()
            ok = bool(np.isfinite(self.expected_loglik(theta)))
        if not ok:
            key = "model" if model.name != self.truth.name else "contamination"
            raise ConfigError(
                key,
                f"no pseudo-true value: the data law has no finite KL projection onto "
                f"{model.name} (at θ = {model.as_dict(theta)}); allowed: a model whose tails "
                "and support cover the data, e.g. the truth's own family",
            )

    def check_draws(self) -> None:
        """Refuse parameters inside the documented domain whose draws overflow floating
        point (``lam=1e300``, a negative binomial ``size=1e-300``, an exponential
        ``rate=1e-320`` whose draws are inf): 64 probe draws must be finite.

        Raises
        ------
        ConfigError
            At ``truth.params`` (or ``contamination.params``).
        """
        parts = [] if self.generated else [("truth.params", self.truth, self.theta)]
        if self.contamination is not None:
            c = self.contamination
            parts.append(("contamination.params", c.family, c.theta))
        for key, family, theta in parts:
            try:
                with np.errstate(all="ignore"):
                    draws = family.sample(np.random.default_rng(0), theta, (8, 8))
                arrays = draws.values() if isinstance(draws, Mapping) else [draws]
                bad = not all(np.all(np.isfinite(a)) for a in arrays)
                why = "draws are not finite numbers"
            except (ValueError, OverflowError) as err:
                bad, why = True, f"numpy cannot draw them ({err})"
            if bad:
                raise ConfigError(
                    key,
                    f"{family.name}{family.as_dict(theta)}: {why}; allowed: values whose "
                    "draws stay within floating point",
                )

    def _check_explicit_estimand(self) -> None:
        """Every parameter an estimator estimates has a value in the estimand mapping."""
        for est in self.estimators():
            missing = [n for n in est.param_names_ if n not in self.estimand]
            if missing:
                raise ConfigError(
                    f"estimand.{missing[0]}",
                    f"missing: estimator {est.label} estimates it; give its true value, "
                    f"e.g. estimand: {{{missing[0]}: 0.0}}",
                )

    def check_estimators(self) -> None:
        """Refuse an estimator that needs moments the data law does not have.

        The sample mean estimates nothing when E|X| = ∞ (a student_t with ν ≤ 1, or
        Cauchy contamination); the method of moments with p parameters needs p moments.

        Raises
        ------
        ConfigError
            At ``estimators.<label>.kind``.
        """
        if self.generated or not self.truth.iid:  # unknown, or not one law of scalars
            return
        with np.errstate(all="ignore"):
            mean, var = self.data_mean_var()
        have = 0 if not np.isfinite(mean) else (1 if not np.isfinite(var) else 2)
        for est in self.estimators():
            need = est.moments_needed
            if need > have:
                which = "mean" if have == 0 else "variance"
                raise ConfigError(
                    f"{est.key}.kind",
                    f"{est.kind} needs the data's {which}, which does not exist here "
                    f"({self._law()}); allowed: estimators that need no moments, e.g. "
                    "mle or median",
                )

    def _law(self) -> str:
        """The data law in words, e.g. 'student_t(mu=0, sigma=1, nu=1) data'."""
        text = ", ".join(f"{k}={v:g}" for k, v in self.truth.as_dict(self.theta).items())
        law = f"{self.truth.name}({text}) data"
        if self.contamination is not None:
            c = self.contamination
            ctext = ", ".join(f"{k}={v:g}" for k, v in c.family.as_dict(c.theta).items())
            law += f" with {c.fraction:g} {c.family.name}({ctext}) contamination"
        return law

    def expected_loglik(self, theta: np.ndarray) -> float:
        """E_g log f(X; θ) for the model at ``theta`` (p,) under the (contaminated) truth.

        The integral is split at the model's centre (if any), where a log-density such
        as the Laplace's has a kink that quadrature would otherwise step over.
        """
        model = self.model
        breaks = self._model_breaks(theta)

        def logf(x):
            x = np.asarray(x, dtype=float)
            return model.logpdf(x.reshape(1, -1), theta[None]).reshape(x.shape)

        return self.expect(logf, breaks)

    def _start(self) -> np.ndarray:
        """Starting θ (p,) of the numerical projection: the model's moment estimate from
        the two points mean ± sd of the data law, or ones where that is not usable."""
        model = self.model
        start = np.ones(model.p)
        if "moments" in model.provides:
            m, v = self.data_mean_var()
            with np.errstate(all="ignore"):
                guess = model.moments_estimate(np.array([[m - np.sqrt(v), m + np.sqrt(v)]]))[0]
            ok = [
                model.domains[n].contains(float(g))
                for n, g in zip(model.params, guess, strict=True)
            ]
            start = np.where(ok, guess, start)
        return start

    def _numeric_projection(self) -> np.ndarray:
        """Maximise :meth:`expected_loglik` by Nelder–Mead on the unconstrained scale,
        then send coordinates that ran off to the edge there (:meth:`_edges`)."""
        domains = [self.model.domains[name] for name in self.model.params]
        z0 = np.array([d.to_free(s) for d, s in zip(domains, self._start(), strict=True)])
        z = self._maximise(z0, np.zeros(self.model.p, dtype=bool))
        edge = self._edges(z)
        if edge.any():
            z = self._maximise(np.where(edge, np.sign(z) * FAR_Z, z), edge)
        theta = self._polish(self._theta_of(z), edge)
        for j in np.flatnonzero(edge):
            theta[j] = _edge_value(domains[j], z[j])
        return _snap_zero(theta, domains)

    def _model_breaks(self, theta: np.ndarray) -> tuple[float, ...]:
        """Where the model's log-density may have a kink at ``theta``: its centre (the
        Laplace's |x − μ|), a break point for the quadrature."""
        model = self.model
        return (float(theta[model.index(model.center)]),) if model.center else ()

    def expected_score(self, theta: np.ndarray) -> np.ndarray:
        """E_g ∂ log f(X; θ)/∂θ under the (contaminated) truth, shape (p,)."""
        model = self.model
        breaks = self._model_breaks(theta)

        def score(j):
            def s_j(x):
                x = np.asarray(x, dtype=float)
                return model.score(x.reshape(1, -1), theta[None])[0, :, j].reshape(x.shape)

            return s_j

        return np.array([self.expect(score(j), breaks) for j in range(model.p)])

    def _polish(self, theta: np.ndarray, held: np.ndarray) -> np.ndarray:
        """Refine the Nelder–Mead projection by solving E_g s(X; θ) = 0 in the free
        coordinates (scipy's hybrid Powell root finder). Minimising a function value
        locates θ* only to about the square root of the quadrature error (~1e-8, so a
        symmetric truth's μ* came out as 1e-8 rather than 0); the root of the expected
        score is as accurate as the quadrature (~1e-13). Kept only when the root finder
        finds a root near the start with no lower E_g log f."""
        move = ~held

        def equations(v: np.ndarray) -> np.ndarray:
            t = theta.copy()
            t[move] = v
            return self.expected_score(t)[move]

        with np.errstate(all="ignore"):
            res = so.root(equations, theta[move], method="hybr", options={"xtol": 1e-14})
        out = theta.copy()
        out[move] = res.x
        names = [n for n, m in zip(self.model.params, move, strict=True) if m]
        ok = (
            np.all(np.isfinite(res.fun))
            and np.max(np.abs(res.fun)) < 1e-9
            and all(
                self.model.domains[n].contains(float(v)) for n, v in zip(names, res.x, strict=True)
            )
            and np.all(np.abs(res.x - theta[move]) <= 1e-3 * (1 + np.abs(theta[move])))
        )
        if not ok:
            return theta
        before, after = self.expected_loglik(theta), self.expected_loglik(out)
        return out if after >= before - 1e-10 * (1 + abs(before)) else theta

    def _theta_of(self, z: np.ndarray) -> np.ndarray:
        domains = [self.model.domains[name] for name in self.model.params]
        return np.array([d.from_free(zi) for d, zi in zip(domains, z, strict=True)])

    def _maximise(self, z0: np.ndarray, held: np.ndarray) -> np.ndarray:
        """argmax of E_g log f over the coordinates not ``held`` (p,), from ``z0``."""
        move = ~held

        def negloglik(zm: np.ndarray) -> float:
            z = z0.copy()
            z[move] = zm
            value = self.expected_loglik(self._theta_of(z))
            return -value if np.isfinite(value) else np.inf  # f = 0 where g has mass

        res = so.minimize(
            negloglik,
            z0[move],
            method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 4000},
        )
        z = z0.copy()
        z[move] = res.x
        return z

    def _edges(self, z: np.ndarray) -> np.ndarray:
        """Coordinates (p,) bool of a projection that ran off to the edge of the space.

        A bounded coordinate (a positive or unit parameter) beyond ``EDGE_Z`` on the
        unconstrained scale (ν* > 10³, say) counts as at the edge when moving it
        ``EDGE_STEP`` further out does not lower E_g log f (beyond rounding): the
        supremum is then approached only in the limit — as for a student_t model of
        normal data, whose E_g log f rises all the way to ν = ∞ — and the number the
        optimiser stopped at is arbitrary.
        """
        out = np.zeros(z.shape, dtype=bool)
        here = self.expected_loglik(self._theta_of(z))
        for j, name in enumerate(self.model.params):
            if self.model.domains[name].kind == "real" or abs(z[j]) < EDGE_Z:
                continue
            far = z.copy()
            far[j] += np.sign(z[j]) * EDGE_STEP
            out[j] = self.expected_loglik(self._theta_of(far)) >= here - 1e-12 * (1 + abs(here))
        return out

    def edge_params(self, target: np.ndarray) -> list[str]:
        """Parameters whose estimand ``target`` (p,) lies on the edge of the model's
        space (±inf, or 0 / 1 where the domain is open there)."""
        return [
            name
            for name, v in zip(self.model.params, target, strict=True)
            if not math.isnan(v) and not self.model.domains[name].contains(float(v))
        ]

    def crlb(self, target: np.ndarray, free: np.ndarray | None = None) -> np.ndarray:
        """Cramér–Rao variance bound diag((n I(θ*))⁻¹) for the free parameters, shape (p,).

        NaN for a generator truth or an explicit estimand mapping (no information to
        bound with). A parameter whose estimand is on the edge of the space (ν* = ∞) has
        no bound (NaN); the others' bound treats it as known, held at a far value (the limit of
        the model there, e.g. the normal's information for a t's μ, σ at ν = ∞).
        """
        if not self.has_theory:
            return np.full(self.model.p, np.nan)
        free = np.ones(self.model.p, dtype=bool) if free is None else free.copy()
        edge = np.isin(self.model.params, self.edge_params(target))
        theta = np.array(target, dtype=float)
        for j in np.flatnonzero(edge):
            domain = self.model.domains[self.model.params[j]]
            theta[j] = domain.from_free(np.sign(domain.to_free(theta[j])) * FAR_Z)
        free &= ~edge
        out = np.full(self.model.p, np.nan)
        if not free.any():
            return out
        with np.errstate(divide="ignore", invalid="ignore"):
            cov = self.model.bound(theta, free)
            if np.all(np.isfinite(cov)):
                out[free] = np.diag(cov) / self.n
        return out


#: |z| on the unconstrained scale beyond which a projection may have run to the edge
#: (Nelder–Mead stops wherever the slope towards the edge falls below its tolerance:
#: size* ≈ 2e5 for a negative binomial model of Poisson data); the test itself then
#: tells an edge (E log f still rising outwards) from a far interior maximum
EDGE_Z = np.log(1e3)
#: how much further out the edge test moves a coordinate
EDGE_STEP = 5.0
#: where a coordinate on the edge is held while the others are re-fitted (e^30 ≈ 1e13:
#: far enough that the model there differs from its limit by ~1e-13, near enough that
#: its score is still computed accurately)
FAR_Z = 30.0


def _snap_zero(theta: np.ndarray, domains: list) -> np.ndarray:
    """Set real-valued coordinates within quadrature error of 0 to exactly 0.

    A symmetric truth's μ* is 0, but the projection finds it as ~1e-17, which would make
    the relative bias bias/θ* astronomically large instead of undefined. |θ*_j| below
    1e-12 × (1 + the largest finite |θ*|) is taken as 0.
    """
    scale = 1.0 + np.max(np.abs(theta[np.isfinite(theta)]), initial=0.0)
    out = theta.copy()
    for j, d in enumerate(domains):
        if d.kind == "real" and abs(out[j]) < 1e-12 * scale:
            out[j] = 0.0
    return out


def _edge_value(domain, z: float) -> float:
    """The limit of the parameter as its coordinate z → ±∞: inf or 0 (positive), 1 or 0
    (unit)."""
    if domain.kind == "positive":
        return math.inf if z > 0 else 0.0
    return 1.0 if z > 0 else 0.0


def as_data(out: Any, rows: int) -> Data:
    """A generator's output as a data mapping: an array becomes ``{"x": array}``; every
    array must have the replicate axis first (``rows``).

    Raises
    ------
    ValueError
        Naming the field whose shape is wrong.
    """
    data = dict(out) if isinstance(out, Mapping) else {"x": out}
    for name, value in data.items():
        arr = np.asarray(value)
        if arr.ndim < 2 or arr.shape[0] != rows:
            raise ValueError(
                f"the generator's {name!r} has shape {arr.shape}; expected ({rows}, n, ...)"
            )
        data[name] = arr.astype(float, copy=False)
    return data


def _truth(cfg: dict, search_path: str | None) -> tuple[Family | Generator, np.ndarray]:
    """The truth (a family, or a user's generator) and its parameter vector."""
    target = cfg.get(TARGET)
    if target is not None:
        if cfg.get("family") is not None:
            raise ConfigError(
                "truth", "give either family or _target_, not both (truth.family=null)"
            )
        params = cfg.get("params") or {}
        if not isinstance(params, dict):
            raise ConfigError("truth.params", f"must be a mapping, got {params!r}")
        resolve(target, "truth._target_", search_path)
        return Generator(target, params, search_path), np.empty(0)
    if cfg.get("family") is None:
        raise ConfigError(
            "truth.family", "missing; allowed: a family name, or truth._target_: module.sampler"
        )
    truth = get_family(cfg.get("family"), key="truth.family").configured(cfg)
    return truth, truth.check(cfg.get("params") or {}, key="truth.params")


def _model(name: str | None, truth: Family | Generator, estimand: Any) -> Family:
    """The family the estimators assume."""
    if isinstance(truth, Generator):
        if not isinstance(estimand, dict):
            raise ConfigError(
                "estimand",
                f"{estimand!r} needs the truth's family, and the truth is a generator; allowed: "
                "the true values as a mapping, e.g. estimand: {mu: 0.77}",
            )
        if name is None:
            return FreeParameters(tuple(estimand))
        return get_family(name, key="model")
    return truth if name in (None, truth.name) else get_family(name, key="model")


def _check_fields(truth: Family | Generator, model: Family, cont: Contamination | None) -> None:
    """A family whose data are not i.i.d. scalars (a regression's ``{X, y}``) is its own
    model and takes no contamination; a scalar model cannot fit its data.

    Raises
    ------
    ConfigError
        At ``model`` or ``contamination``.
    """
    if isinstance(truth, Generator):
        return
    if not truth.iid and model is not truth:
        raise ConfigError(
            "model",
            f"{truth.name} data ({', '.join(truth.fields)}) are fitted by their own family; "
            f"allowed: model=null or model={truth.name} (vary the noise an estimator assumes "
            "with its own options instead)",
        )
    if truth.iid and not model.iid:
        raise ConfigError(
            "model",
            f"{model.name} needs data {', '.join(model.fields)}, and {truth.name} draws "
            f"i.i.d. scalars; allowed: model=null or a family of scalars",
        )
    if cont is not None and not truth.iid:
        raise ConfigError(
            "contamination",
            f"contamination replaces i.i.d. scalar draws, and {truth.name} draws "
            f"{', '.join(truth.fields)}; allowed: contamination=null",
        )


def _explicit_estimand(values: dict, model: Family) -> dict[str, float]:
    """An ``estimand`` mapping checked against the model's parameters."""
    out = {}
    for name, value in values.items():
        if name not in model.params:
            allowed = ", ".join(model.params)
            raise ConfigError(
                f"estimand.{name}", f"not a parameter of {model.name}; allowed: {allowed}"
            )
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not math.isfinite(value):
            raise ConfigError(
                f"estimand.{name}", f"must be a finite number, got {value!r}; allowed: e.g. 0.77"
            )
        out[name] = float(value)
    return out


def _contamination(c: dict | None) -> Contamination | None:
    if c is None:
        return None
    fam = get_family(c.get("family"), key="contamination.family")
    ctheta = fam.check(c.get("params") or {}, key="contamination.params")
    frac = c.get("fraction")
    if not isinstance(frac, int | float) or isinstance(frac, bool) or not 0 <= frac < 1:
        raise ConfigError("contamination.fraction", f"must be in [0, 1), got {frac!r}")
    return Contamination(fam, ctheta, float(frac)) if frac > 0 else None


def _expect(dist: Any, func: Callable, breaks: tuple[float, ...] = ()) -> float:
    """E[func(X)] for a frozen scipy distribution: continuous ones by
    :func:`expect_continuous`, discrete ones by scipy's exact sum."""
    if isinstance(dist.dist, st.rv_continuous):
        return expect_continuous(dist, func, breaks)
    return float(dist.expect(func))


def expect_continuous(
    dist: Any, func: Callable[[np.ndarray], np.ndarray], breaks: tuple[float, ...] = ()
) -> float:
    """∫ func(x) f(x) dx for a frozen continuous scipy distribution with density f.

    The support is cut at the 5% and 95% quantiles (as scipy's ``expect`` does), at the
    median (where a density such as the Laplace's has its kink) and at ``breaks``, and
    each piece is integrated by vectorised tanh-sinh quadrature
    (``scipy.integrate.tanhsinh``; Takahasi & Mori 1974), which handles infinite limits
    and endpoint singularities. A kink of ``func`` inside a piece would be stepped over
    by any fixed rule (e.g. |x − μ| near a symmetric node), hence ``breaks``.
    Where f = 0 the integrand is 0, even if func is infinite there. NaN when a piece
    does not settle (to 1e-8 relative): the integral diverges, e.g. E|X| for Cauchy X.
    """
    lo, hi = (float(v) for v in dist.support())
    inner = [float(q) for q in dist.ppf([0.05, 0.5, 0.95])] + [float(b) for b in breaks]
    edges = np.unique([lo, *[q for q in inner if lo < q < hi], hi])

    def integrand(x):
        dens = dist.pdf(x)
        with np.errstate(all="ignore"):
            return np.where(dens > 0, func(x) * dens, 0.0)

    res = integrate.tanhsinh(integrand, edges[:-1], edges[1:], rtol=1e-13, atol=1e-15)
    settled = res.success | (res.error <= 1e-8 * (1 + np.abs(res.integral)))
    return float(np.sum(res.integral)) if settled.all() else math.nan
