"""Estimators of the families machine learning fits (regressions, classifiers, the
categorical, Gaussian mixtures), batched over replicates like every estimator here.

Each class declares the ``families`` it fits and registers under its ``kind`` for them
(:data:`mlesim.estimators.LEARNERS`); ``make_estimator`` picks it for a model of those
families. They see the whole data mapping — ``{"X": (R, n, d), "y": (R, n)}``,
``{"y": (R, n)}`` or ``{"x": (R, n)}`` — and set the attributes of
:class:`~mlesim.estimators.Estimator`. Standard errors come from the information at the
estimate for the MLEs (as everywhere in mlesim), from the curvature of the log posterior
for the MAPs, and from the M-estimator sandwich for the other losses; the lasso has none.

The kinds (and their options):

- ``mle``: OLS with σ̂² = RSS/n (``noise: normal``), LAD with b̂ = mean|r| (``laplace``),
  EM for fixed-ν t noise (``student_t``, ``nu``) — the noise defaults to the truth's; IRLS
  for the logistic (``weights: balanced``: scikit-learn's class weights); Newton for the
  softmax; frequencies for the categorical; EM for the mixture (``n_init``,
  ``max_iter``, ``variance_floor``).
- ``loss``: the minimiser of an empirical loss — ``mse``, ``mae``, ``huber`` (``delta``)
  for the linear model; ``bce``, ``focal`` (``gamma``) for the logistic; ``ce`` for the
  softmax and the categorical: shows which losses are which likelihoods.
- ``ridge`` (``alpha``) and ``lasso`` (``alpha``): the MAPs under Gaussian and Laplace
  priors on the slopes, in scikit-learn's scaling (module :mod:`mlesim.regression`).
- ``firth``: the logistic MAP under Jeffreys' prior (Firth 1993).
- ``map``: the categorical under a symmetric Dirichlet(``concentration``) prior — 2 is
  add-one smoothing; the mixture under an inverse-gamma(``shape``, ``scale``) prior on
  each variance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from mlesim import learning_theory as lt
from mlesim import mixture, regression
from mlesim.errors import ConfigError
from mlesim.estimators import Estimator
from mlesim.lazy import lazy_module

sc = lazy_module("scipy.special")

LINEAR, LOGISTIC, SOFTMAX = "linear_regression", "logistic_regression", "softmax_regression"
CATEGORICAL, MIXTURE = "categorical", "gaussian_mixture"
#: the losses of the ``loss`` kind, by family
LOSSES = {
    LINEAR: ("mse", "mae", "huber"),
    LOGISTIC: ("bce", "focal"),
    SOFTMAX: ("ce",),
    CATEGORICAL: ("ce",),
}


def _number(value: Any, key: str, low: float, what: str, strict: bool = True) -> float:
    """``value`` as a float above ``low`` (or at least, with ``strict=False``)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)
    if not ok or value < low or (strict and value == low):
        sign = ">" if strict else ">="
        raise ConfigError(key, f"must be a number {sign} {low:g} ({what}), got {value!r}")
    return float(value)


def _count(value: Any, key: str, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(key, f"must be an integer >= 1 ({what}), got {value!r}")
    return value


def _se(cov: np.ndarray) -> np.ndarray:
    """Square roots of the diagonals of a stack of covariances (R, q, q) → (R, q);
    NaN where a variance is negative or not finite."""
    with np.errstate(invalid="ignore"):
        var = np.diagonal(cov, axis1=-2, axis2=-1)
        return np.where(np.isfinite(var) & (var >= 0), np.sqrt(np.abs(var)), np.nan)


def _inv(a: np.ndarray) -> np.ndarray:
    """Inverses of a stack (R, q, q); NaN for the singular ones."""
    out = np.full(a.shape, np.nan)
    ok = np.all(np.isfinite(a), axis=(-2, -1))
    if ok.any():
        sign, logdet = np.linalg.slogdet(a[ok])
        good = np.flatnonzero(ok)[(sign != 0) & np.isfinite(logdet)]
        if good.size:
            out[good] = np.linalg.inv(a[good])
    return out


class Learner(Estimator):
    """Base of the learners: ``fit`` takes the data mapping; ``_fit`` returns
    (estimates (R, k), se (R, k), n_iter (R,)) and may set ``self._conv``/``self._reason``."""

    register: ClassVar[bool] = False

    def fit(self, data: Mapping[str, np.ndarray] | np.ndarray) -> Learner:
        with np.errstate(all="ignore"):  # edge data: an SE's 0/0 is NaN, not a warning
            return super().fit(data)

    def _data(self, data: Mapping[str, np.ndarray] | np.ndarray) -> tuple[dict, int]:
        """The model's fields of the data mapping as float arrays (a bare array is its
        one field), and the number of replicates."""
        if not isinstance(data, Mapping):
            data = {self.model.fields[0]: data}
        if any(f not in data for f in self.model.fields):
            raise ValueError(f"{self.kind} needs the data fields {self.model.fields}")
        data = {f: np.asarray(data[f], dtype=float) for f in self.model.fields}
        return data, data[self.model.fields[0]].shape[0]

    def _adopt(self, fit: Any) -> None:
        """Take a solver's convergence mask and reasons."""
        self._conv = np.asarray(fit.converged, bool)
        self._reason = np.asarray(fit.reason, dtype=object)

    @property
    def coefficients(self) -> tuple[str, ...]:
        """The model's coefficient names (``beta...``)."""
        return tuple(n for n in self.model.params if n.startswith("beta"))


# ------------------------------------------------------------------ the linear model
def _ols_cov(X: np.ndarray, scale2: np.ndarray) -> np.ndarray:
    """scale² (XᵀX)⁻¹, shape (R, d, d), for ``scale2`` (R,)."""
    return scale2[:, None, None] * _inv(np.einsum("rni,rnj->rij", X, X))


class LinearMLE(Learner):
    """The linear model's MLE under the noise it assumes (``noise``, ``nu``; default:
    the truth's). Normal: OLS, σ̂² = RSS/n, SEs √diag(σ̂²(XᵀX)⁻¹) and σ̂²√(2/n).
    Laplace: LAD, b̂ = mean|r|, σ̂² = 2b̂², SEs √diag(b̂²(XᵀX)⁻¹) (the Laplace location
    information 1/b²) and 4b̂²/√n. t: EM for (β, s) at fixed ν, σ̂² = s²ν/(ν − 2), SEs
    from the observed information."""

    kind = "mle"
    families = (LINEAR,)
    options = ("noise", "nu")

    def validate(self) -> None:
        from mlesim.families.regression import check_noise

        noise = self.model.noise if self.noise is None else self.noise
        nu = self.nu if self.noise is not None else self.model.nu
        self.noise, self.nu = check_noise(noise, nu, self.key)

    def retarget(self, target: np.ndarray, crlb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        model = self.model
        if (self.noise, self.nu) == (model.noise, model.nu):
            return target, crlb
        mine, bound = np.array(target, dtype=float), np.array(crlb, dtype=float)
        mine[-1] = lt.noise_pseudo_true_sigma2(
            model.noise, self.noise, float(target[-1]), model.nu, self.nu
        )
        bound[-1] = np.nan  # the bound is for the truth's σ², not this estimand
        return mine, bound

    def _fit(self, data):
        X, y = data["X"], data["y"]
        n = y.shape[1]
        if self.noise == "normal":
            fit = regression.ols(X, y)
            s2 = fit.rss / n
            se = np.column_stack([_se(_ols_cov(X, s2)), s2 * np.sqrt(2 / n)])
            est = np.column_stack([fit.beta, s2])
        elif self.noise == "laplace":
            fit = regression.lad(X, y)
            b = fit.b
            se = np.column_stack([_se(_ols_cov(X, b**2)), 4 * b**2 / np.sqrt(n)])
            est = np.column_stack([fit.beta, 2 * b**2])
        else:
            fit = regression.t_regression(X, y, self.nu)
            est, se = _t_estimates(fit, self.nu)
            self._adopt(fit)
            exact = _exact_fits(X, y)
            if exact.any():  # s = 0: the edge, the OLS line itself, with SE 0 (as OLS's)
                est[exact] = np.column_stack(
                    [regression.ols(X[exact], y[exact]).beta, 0 * y[exact, 0]]
                )
                se[exact] = 0.0
                self._conv[exact], self._reason[exact] = True, ""
            return est, se, fit.n_iter
        self._adopt(fit)
        return est, se, fit.n_iter


def _exact_fits(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Replicates (R,) whose least-squares residuals vanish to rounding (n ≤ d, or
    noiseless data): RSS ≤ (1e-10 · ‖y‖)²."""
    fit = regression.ols(X, y)
    return fit.converged & (fit.rss <= (1e-10 * np.linalg.norm(y, axis=1)) ** 2)


def _t_estimates(fit: Any, nu: float) -> tuple[np.ndarray, np.ndarray]:
    """(β, σ²) and their SEs from a t-regression fit of (β, log s): σ² = s²ν/(ν − 2),
    the delta rule dσ²/d log s = 2s²ν/(ν − 2)."""
    c = nu / (nu - 2)
    se = _se(_inv(fit.info))
    s2 = fit.scale**2
    est = np.column_stack([fit.beta, c * s2])
    return est, np.column_stack([se[:, :-1], 2 * c * s2 * se[:, -1]])


def density_at_zero(resid: np.ndarray, y: np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """The residuals' density at 0, f̂(0), per replicate (R,) for ``resid`` and ``y``
    (R, n): an Epanechnikov kernel estimate with the Hall–Sheather bandwidth at the
    median, h = min(sd(y), IQR(r)/1.34)·(Φ⁻¹(½ + h₀) − Φ⁻¹(½ − h₀)),
    h₀ = n^(−1/3) z_{1−α/2}^(2/3) (1.5 φ(0)²)^(1/3) — statsmodels QuantReg's rule (Koenker
    2005, §3.4.2), so that the LAD's SE 1/(2f̂(0))·√diag((XᵀX)⁻¹) is its ``vcov='iid'``."""
    from scipy.stats import norm

    n = resid.shape[1]
    h0 = n ** (-1 / 3) * norm.ppf(1 - alpha / 2) ** (2 / 3) * (1.5 * norm.pdf(0) ** 2) ** (1 / 3)
    q75, q25 = np.percentile(resid, [75, 25], axis=1)
    h = np.minimum(np.std(y, axis=1), (q75 - q25) / 1.34) * (
        norm.ppf(0.5 + h0) - norm.ppf(0.5 - h0)
    )
    u = resid / h[:, None]
    return np.sum(0.75 * (1 - u**2) * (np.abs(u) <= 1), axis=1) / (n * h)


class LinearLoss(Learner):
    """The minimiser of Σ loss(y − xᵀβ) for mse (= OLS), mae (= LAD) or huber (fixed
    delta). SEs: mse √diag(σ̂²(XᵀX)⁻¹) with σ̂² = RSS/n (valid for any
    homoscedastic noise); mae (XᵀX)⁻¹/(4 f̂(0)²) with f̂ the residuals' kernel density
    (statsmodels QuantReg's ``vcov='iid'``); huber the M-estimator's
    E ψ²/(E ψ′)² (XᵀX)⁻¹ (Huber 1981, §7.6)."""

    kind = "loss"
    families = (LINEAR,)
    options = ("loss", "delta")

    def validate(self) -> None:
        allowed = LOSSES[self.model.name]
        if self.loss not in allowed:
            raise ConfigError(
                f"{self.key}.loss",
                f"got {self.loss!r}; allowed for {self.model.name}: {', '.join(allowed)}",
            )
        if self.loss == "huber":
            self.delta = _number(
                1.345 if self.delta is None else self.delta,
                f"{self.key}.delta",
                0.0,
                "the Huber threshold",
            )
        elif self.delta is not None:
            raise ConfigError(f"{self.key}.delta", "only for loss: huber")

    @property
    def param_names_(self):
        return self.coefficients

    @property
    def se_min_n(self) -> int:
        """mae: the residuals' density at 0 needs more residuals off 0 than the d that
        LAD fits exactly, n ≥ 2d + 1 (below it SE NaN; an exact fit has SE 0)."""
        return 2 * self.model.d + 1 if self.loss == "mae" else 1

    def _fit(self, data):
        X, y = data["X"], data["y"]
        n = y.shape[1]
        if self.loss == "mse":
            fit = regression.ols(X, y)
            se = _se(_ols_cov(X, fit.rss / n))
        elif self.loss == "mae":
            fit = regression.lad(X, y)
            resid = y - np.einsum("rnd,rd->rn", X, fit.beta)
            f0 = density_at_zero(resid, y)
            exact = np.all(resid == 0, axis=1)
            sparsity2 = np.where(exact, 0.0, 1 / (4 * f0**2))
            se = _se(_ols_cov(X, sparsity2))
            se[(n < self.se_min_n) & ~exact] = np.nan
        else:
            fit = regression.huber_regression(X, y, self.delta)
            r = y - np.einsum("rnd,rd->rn", X, fit.beta)
            psi = np.clip(r, -self.delta, self.delta)
            slope = np.mean(np.abs(r) <= self.delta, axis=1)
            se = _se(_ols_cov(X, np.mean(psi**2, axis=1) / slope**2))
        self._adopt(fit)
        return fit.beta, se, fit.n_iter


class _Penalised(Learner):
    """A penalised linear fit of the coefficients, with its penalty ``alpha`` ≥ 0."""

    families = (LINEAR,)
    options = ("alpha",)

    def validate(self) -> None:
        self.alpha = _number(self.alpha, f"{self.key}.alpha", 0.0, "the penalty", strict=False)

    @property
    def param_names_(self):
        return self.coefficients


class Ridge(_Penalised):
    """Ridge regression, argmin ‖y − Xβ‖² + α Σ_{j≥1} β_j², the MAP under β_j ~ N(0, τ²)
    with α = σ²/τ² (weight decay; Hoerl & Kennard 1970). SE: the posterior curvature
    σ̂²(XᵀX + αD)⁻¹, σ̂² = RSS/n at the estimate."""

    kind = "ridge"

    def _fit(self, data):
        X, y = data["X"], data["y"]
        fit = regression.ridge(X, y, self.alpha)
        r = y - np.einsum("rnd,rd->rn", X, fit.beta)
        s2 = np.mean(r**2, axis=1)
        se = _se(s2[:, None, None] * _inv(fit.info))
        self._adopt(fit)
        return fit.beta, se, fit.n_iter


class Lasso(_Penalised):
    """The lasso, argmin (1/2n)‖y − Xβ‖² + α Σ_{j≥1}|β_j| (scikit-learn's scaling), the
    MAP under Laplace(0, b) priors with α = σ²/(n b) (Tibshirani 1996), with exact zeros. No
    standard error (the MAP's is not valid at a kink): SE NaN."""

    kind = "lasso"

    def _fit(self, data):
        fit = regression.lasso(data["X"], data["y"], self.alpha)
        self._adopt(fit)
        return fit.beta, np.full(fit.beta.shape, np.nan), fit.n_iter


# ------------------------------------------------------------------ classification
def _balanced(y: np.ndarray, K: int) -> np.ndarray:
    """scikit-learn's ``class_weight='balanced'``: n / (K · n_c) for class c, (R, n)."""
    n = y.shape[1]
    counts = np.stack([(y == c).sum(axis=1) for c in range(K)], axis=1)  # (R, K)
    with np.errstate(divide="ignore"):
        w = n / (K * counts.astype(float))
    return np.take_along_axis(w, y.astype(int), axis=1)


class LogisticMLE(Learner):
    """The logistic MLE by IRLS; SE √diag(I(β̂)⁻¹). ``weights: balanced`` weights each
    class by n/(2 n_c): the intercept then converges to β0 + log((1 − π)/π) (π the
    prevalence; the prior correction of King & Zeng 2001, eq. 7), the slopes unchanged;
    SE from the weighted sandwich."""

    kind = "mle"
    families = (LOGISTIC,)
    options = ("weights",)

    def validate(self) -> None:
        if self.weights not in (None, "none", "balanced"):
            raise ConfigError(
                f"{self.key}.weights", f"got {self.weights!r}; allowed: none, balanced"
            )
        self.weights = None if self.weights == "none" else self.weights

    def retarget(self, target, crlb):
        if self.weights != "balanced":
            return target, crlb
        prev = lt.prevalence(np.asarray(target)[: self.model.d], self.model.covariates)
        mine, bound = np.array(target, dtype=float), np.array(crlb, dtype=float)
        mine[0] += np.log((1 - prev) / prev)
        bound[0] = np.nan
        return mine, bound

    def _fit(self, data):
        X, y = data["X"], data["y"]
        w = _balanced(y, 2) if self.weights == "balanced" else None
        fit = regression.logistic(X, y, sample_weight=w)
        se = _se(_inv(fit.info)) if w is None else _balanced_se(X, y, fit.beta)
        self._adopt(fit)
        return fit.beta, se, fit.n_iter


def _balanced_se(X: np.ndarray, y: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """SEs (R, d) of the class-balanced logistic fit, whose weights w(1) = 1/(2π̂),
    w(0) = 1/(2(1 − π̂)) are estimated from the sample's share π̂ of events: the
    M-estimator sandwich A⁻¹BA⁻ᵀ of the stacked estimating equations
    ψ_i = (w(y_i)(y_i − p_i)x_i, y_i − π) in (β, π) (Stefanski & Boos 2002). Holding the
    weights fixed instead overstates the intercept's SE (1.5× at π = 0.12, n = 400):
    log(n₀/n₁) moves against it."""
    R, n, d = X.shape
    pi = y.mean(axis=1, keepdims=True)
    w = np.where(y == 1, 0.5 / pi, 0.5 / (1 - pi))
    dw = np.where(y == 1, -0.5 / pi**2, 0.5 / (1 - pi) ** 2)  # ∂w/∂π
    p = sc.expit(np.einsum("rnd,rd->rn", X, beta))
    A = np.zeros((R, d + 1, d + 1))
    A[:, :d, :d] = np.einsum("rn,rni,rnj->rij", w * p * (1 - p), X, X)
    A[:, :d, d] = -np.einsum("rn,rni->ri", dw * (y - p), X)
    A[:, d, d] = n
    psi = np.concatenate([((w * (y - p))[..., None] * X), (y - pi)[..., None]], axis=2)
    B = np.einsum("rni,rnj->rij", psi, psi)
    return _se(regression.sandwich(A, B))[:, :d]


#: Firth's Newton iterations at most: an all-zero-event sample of n = 100 needs ~175
FIRTH_ITER = 1000


class Firth(Learner):
    """Firth's penalised logistic regression (the MAP under Jeffreys' prior |I(β)|^½;
    Firth 1993), finite under separation; SE √diag(I(β̂)⁻¹) as in R's logistf."""

    kind = "firth"
    families = (LOGISTIC,)

    def _fit(self, data):
        fit = regression.firth_logistic(data["X"], data["y"], max_iter=FIRTH_ITER)
        self._adopt(fit)
        return fit.beta, _se(_inv(fit.info)), fit.n_iter


def _focal_psi(eta: np.ndarray, y: np.ndarray, gamma: float) -> np.ndarray:
    """∂/∂η of the focal loss −(1 − p_t)^γ log p_t per observation: for y = 1,
    γ p (1 − p)^γ log p − (1 − p)^{γ+1}; for y = 0 the mirror image (p ↔ 1 − p, sign)."""
    p, q = sc.expit(eta), sc.expit(-eta)
    one = gamma * p * q**gamma * sc.log_expit(eta) - q ** (gamma + 1)
    zero = -(gamma * q * p**gamma * sc.log_expit(-eta) - p ** (gamma + 1))
    return np.where(y == 1, one, zero)


class LogisticLoss(Learner):
    """The minimiser of binary cross-entropy (bce, the logistic MLE) or of the focal loss
    (focal, with gamma; Lin et al. 2017). SEs: bce as the MLE; focal the M-estimator
    sandwich H⁻¹(Σ ψ_i² x_i x_iᵀ)H⁻¹ with H the loss's Hessian."""

    kind = "loss"
    families = (LOGISTIC,)
    options = ("loss", "gamma")

    def validate(self) -> None:
        allowed = LOSSES[LOGISTIC]
        if self.loss not in allowed:
            raise ConfigError(
                f"{self.key}.loss",
                f"got {self.loss!r}; allowed for {LOGISTIC}: {', '.join(allowed)}",
            )
        if self.loss == "focal":
            self.gamma = _number(
                2.0 if self.gamma is None else self.gamma,
                f"{self.key}.gamma",
                0.0,
                "the focusing exponent",
                strict=False,
            )
        elif self.gamma is not None:
            raise ConfigError(f"{self.key}.gamma", "only for loss: focal")

    def _fit(self, data):
        X, y = data["X"], data["y"]
        if self.loss == "bce":
            fit = regression.logistic(X, y)
            se = _se(_inv(fit.info))
        else:
            fit = regression.focal_logistic(X, y, self.gamma)
            psi = _focal_psi(np.einsum("rnd,rd->rn", X, fit.beta), y, self.gamma)
            meat = np.einsum("rn,rni,rnj->rij", psi**2, X, X)
            se = _se(regression.sandwich(fit.info, meat))
        self._adopt(fit)
        return fit.beta, se, fit.n_iter


class SoftmaxMLE(Learner):
    """The multinomial logistic MLE by Newton, with SE √diag(I(β̂)⁻¹); ``loss: ce`` gives
    the same estimate."""

    kind = "mle"
    families = (SOFTMAX,)

    def _fit(self, data):
        R = data["y"].shape[0]
        fit = regression.softmax(data["X"], data["y"], self.model.K)
        self._adopt(fit)
        return fit.beta.reshape(R, -1), _se(_inv(fit.info)), fit.n_iter


class SoftmaxLoss(SoftmaxMLE):
    """The cross-entropy minimiser (loss ce), the softmax MLE itself."""

    kind = "loss"
    options = ("loss",)

    def validate(self) -> None:
        if self.loss != "ce":
            raise ConfigError(f"{self.key}.loss", f"got {self.loss!r}; allowed for {SOFTMAX}: ce")


# ------------------------------------------------------------------ categorical
class CategoricalMLE(Learner):
    """The empirical frequencies p̂_k = c_k / n (the MLE, and the minimiser of the
    cross-entropy), with SE √(p̂_k(1 − p̂_k)/n), the multinomial information at p̂ (0 for a
    category never or always seen)."""

    kind = "mle"
    families = (CATEGORICAL,)

    def _counts(self, y: np.ndarray) -> np.ndarray:
        return np.stack([(y == k).sum(axis=1) for k in range(self.model.K)], axis=1)

    def _fit(self, data):
        y = data["y"]
        n = y.shape[1]
        p = self._counts(y) / n
        se = np.sqrt(p * (1 - p) / n)
        return p, se, np.zeros(y.shape[0], int)


class CategoricalLoss(CategoricalMLE):
    """The cross-entropy minimiser (loss ce), the frequencies."""

    kind = "loss"
    options = ("loss",)

    def validate(self) -> None:
        if self.loss != "ce":
            raise ConfigError(
                f"{self.key}.loss", f"got {self.loss!r}; allowed for {CATEGORICAL}: ce"
            )


class CategoricalMAP(CategoricalMLE):
    """The posterior mode under a symmetric Dirichlet(a) prior, a = concentration ≥ 1
    (default 2), p̂_k = (c_k + a − 1)/(n + K(a − 1)) — a = 2 is add-one (Laplace)
    smoothing, a = 1 the MLE. SE √(p̂_k(1 − p̂_k)/(n + K(a − 1))), the curvature of
    the log posterior."""

    kind = "map"
    options = ("concentration",)

    def validate(self) -> None:
        a = 2.0 if self.concentration is None else self.concentration
        self.concentration = _number(
            a, f"{self.key}.concentration", 1.0, "the Dirichlet prior's a", strict=False
        )

    def _fit(self, data):
        y = data["y"]
        extra = self.concentration - 1
        total = y.shape[1] + self.model.K * extra
        p = (self._counts(y) + extra) / total
        return p, np.sqrt(p * (1 - p) / total), np.zeros(y.shape[0], int)


# ------------------------------------------------------------------ mixtures
#: EM starts by default: with one start about 2% of the fits at n = 200 (weights 0.3,
#: 0.7; means ±2) stop at a local maximum 5–8 log-likelihood units below the MLE
DEFAULT_STARTS = 5


class MixtureMLE(Learner):
    """The Gaussian mixture's MLE by EM from n_init starts (default 5; mlesim.mixture.em),
    at most ``max_iter`` iterations, variances clamped at ``variance_floor``. A fit whose
    likelihood ran off to infinity (a component collapsed on a point) fails with that
    reason; with one start about 2% of fits at n = 200 stop at a lower local maximum.
    SEs from the observed information, the last weight's by the delta rule."""

    kind = "mle"
    families = (MIXTURE,)
    options = ("n_init", "max_iter", "variance_floor")

    def validate(self) -> None:
        self.n_init = _count(
            DEFAULT_STARTS if self.n_init is None else self.n_init,
            f"{self.key}.n_init",
            "EM starts",
        )
        self.max_iter = _count(
            500 if self.max_iter is None else self.max_iter, f"{self.key}.max_iter", "EM iterations"
        )
        floor = 0.0 if self.variance_floor is None else self.variance_floor
        self.variance_floor = _number(
            floor, f"{self.key}.variance_floor", 0.0, "smallest variance", strict=False
        )

    def _prior(self) -> tuple[float, float] | None:
        return None

    def _fit(self, data):
        x = data["x"]
        fit = mixture.em(
            x,
            self.model.K,
            n_init=self.n_init,
            max_iter=self.max_iter,
            variance_floor=self.variance_floor,
            prior=self._prior(),
        )
        est = np.column_stack([fit.weights, fit.means, fit.variances])
        se = mixture.standard_errors(fit)
        on_floor = (fit.variances <= self.variance_floor) & (self.variance_floor > 0)
        if on_floor.any():
            se = _floor_se(fit, on_floor, se)
        self._adopt(fit)
        saddle = self._conv & ~np.all(np.isfinite(se), axis=1)
        self._conv = self._conv & ~saddle
        self._reason[saddle] = SADDLE
        return est, se, fit.n_iter


#: why a mixture fit whose information is not positive definite fails
SADDLE = (
    "EM stopped at a saddle point, not a maximum: the information is not positive "
    "definite (e.g. two components that coincide)"
)


def _floor_se(fit: Any, on_floor: np.ndarray, se: np.ndarray) -> np.ndarray:
    """SEs of replicates with variances held at the floor (an edge, as ν̂ = ∞ is for
    a t): those variances get SE 0, the others the inverse of the information with the
    floored variances' rows and columns removed (one pass per pattern of floored
    components, not per replicate); shape (R, 3K)."""
    K = fit.weights.shape[1]
    se = se.copy()
    rows_any = np.flatnonzero(on_floor.any(axis=1))
    for pattern in np.unique(on_floor[rows_any], axis=0):
        rows = rows_any[np.all(on_floor[rows_any] == pattern, axis=1)]
        keep = np.ones(3 * K - 1, bool)
        keep[2 * K - 1 :][pattern] = False  # the variances' positions in the free order
        info = fit.info[rows][:, keep][:, :, keep]
        cov = np.full((rows.size, 3 * K - 1, 3 * K - 1), 0.0)
        cov[np.ix_(np.arange(rows.size), keep, keep)] = _inv(info)
        var = mixture.all_variances(cov, K)
        with np.errstate(invalid="ignore"):
            se[rows] = np.where(var >= 0, np.sqrt(np.abs(var)), np.nan)
    return se


class MixtureMAP(MixtureMLE):
    """The Gaussian mixture's MAP by EM, under inverse-gamma(shape, scale) priors on
    each variance (Ormoneit & Tresp 1998), with which the likelihood cannot run off."""

    kind = "map"
    options = ("shape", "scale", "n_init", "max_iter")

    def validate(self) -> None:
        self.variance_floor = None
        super().validate()
        self.shape = _number(self.shape, f"{self.key}.shape", 0.0, "the prior's shape a")
        self.scale = _number(self.scale, f"{self.key}.scale", 0.0, "the prior's scale b")

    def _prior(self) -> tuple[float, float]:
        return (self.shape, self.scale)
