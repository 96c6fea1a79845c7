"""The estimator contract, checked for every valid (family × estimator spec) pair.

In the manner of scikit-learn's ``check_estimator``: the pairs are derived from the
registries — every family of ``FAMILIES`` (with its shipped default parameters,
``conf/truth/<family>.yaml``) and the generic ``scipy:`` family of ``conf/truth``,
crossed with every spec variant the options of each kind in ``ESTIMATORS`` allow
(MLE standard errors, conjugate priors of ``CONJUGATE``, median standard errors, ...).
A pair is valid when ``make_estimator`` accepts it; the others must be refused with a
one-line ConfigError at ``estimators.<label>``.

For every valid pair:

1. typical data (and, for a few pairs, data from another family): shapes, parameter
   names, converged estimates in the closure of their domain (+inf included: ν̂ = ∞ is
   an estimate), their SEs finite and >= 0 (inf for an infinite estimate), and no
   RuntimeWarning;
2. edge data (constant samples, all-zero counts, n = 1, n = 2) through ``fit_safely``:
   each replicate is ok with finite estimates and a finite SE >= 0, or failed with a
   reason — a converged estimate with a NaN SE is the bug class this guards against;
3. the in-memory pipeline (simulate + summarise): ``n_rep + n_failed`` is the number
   of replications, ``n_se == n_rep`` and every summary column is there.
"""

from __future__ import annotations

import copy
import warnings
import zlib
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from omegaconf import OmegaConf

import mlesim.__main__ as cli
import mlesim.learners  # noqa: F401  (registers the learning families' estimators)
from mlesim.engine import simulate
from mlesim.errors import ConfigError
from mlesim.estimators import (
    ESTIMATORS,
    LEARNERS,
    MEDIAN_SE,
    SE_METHODS,
    Estimator,
    make_estimator,
)
from mlesim.failures import fit_safely
from mlesim.families import FAMILIES, Family, get_family
from mlesim.families.base import fill_fixed, fixed_mask
from mlesim.metrics import SUMMARY_COLUMNS
from mlesim.priors import CONJUGATE, prior_hessian
from mlesim.summarise import summarise
from tests.conftest import compose_config, study_spec

#: the registries must give at least this many valid pairs (the test cannot shrink)
MIN_VALID_PAIRS = 40

#: replicates and sample size of the typical data sets
R, N = 40, 25
#: the in-memory pipeline: replications and sample size
SUMMARY_REPS, SUMMARY_N = 30, 8

#: prior hyper-parameters per conjugate distribution: (inside, on the edge or None).
#: The edge prior (a = 1, shape = 1) lets the posterior mode reach the boundary.
PRIOR_EXAMPLES: dict[str, tuple[dict[str, float], dict[str, float] | None]] = {
    "beta": ({"a": 2.0, "b": 2.0}, {"a": 1.0, "b": 3.0}),
    "gamma": ({"shape": 2.0, "rate": 1.0}, {"shape": 1.0, "rate": 2.0}),
    "normal": ({"mean": 0.0, "var": 10.0}, None),
    "invgamma": ({"shape": 3.0, "scale": 2.0}, None),
}

#: (model, family of the data): misspecified fits, data inside the model's support
MISFITS = [
    ("normal", "exponential"),
    ("poisson", "negative_binomial"),
    ("exponential", "gamma"),
    ("laplace", "student_t"),
    ("lognormal", "weibull"),
    ("student_t", "cauchy"),
]


# ------------------------------------------------------------------ the registries
def _truth_configs() -> dict[str, dict[str, Any]]:
    """Family name → its truth configuration (family, params and settings such as a
    regression's covariates), from ``conf/truth/<family>.yaml`` (the file named after
    the family where several name it)."""
    out = {}
    for path in sorted((Path(cli.config_dir()) / "truth").glob("*.yaml")):
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
        name = cfg.get("family")
        if name is not None and (name not in out or path.stem == name):
            out[name] = cfg  # truth=generator names a user's function instead: skipped
    return out


TRUTH_CONFIGS = _truth_configs()
TRUTHS = {name: dict(cfg.get("params") or {}) for name, cfg in TRUTH_CONFIGS.items()}


@cache
def family(name: str) -> Family:
    """The family as its shipped truth configures it (a regression's coefficients)."""
    return get_family(name).configured(TRUTH_CONFIGS.get(name, {}))


#: every named family of i.i.d. scalars, then the generic scipy families of conf/truth;
#: the families with other data (regressions, categorical, mixtures) are checked below
#: against their own kinds (LEARNERS)
FAMILY_NAMES = [f for f in FAMILIES if family(f).iid] + sorted(
    name for name in TRUTHS if name.startswith("scipy:")
)
LEARNING_NAMES = [f for f in FAMILIES if not family(f).iid]
#: the kinds that fit only those families
LEARNER_KINDS = {kind for fam, kind in LEARNERS} - {
    k for k, c in ESTIMATORS.items() if not c.families
}


@cache
def theta_of(name: str) -> np.ndarray:
    return family(name).check(TRUTHS[name])


def _seed(*parts: str) -> int:
    """A fixed seed per test case, independent of collection order."""
    return zlib.crc32("/".join(parts).encode())


def _inside_prior(fam: str, param: str) -> dict[str, Any]:
    dist = CONJUGATE[fam, param][0]
    return {"dist": dist, **PRIOR_EXAMPLES[dist][0]}


def spec_variants(name: str) -> list[tuple[str, dict[str, Any]]]:
    """(label, spec) for every kind of ESTIMATORS and the variants its options allow.

    All variants are offered to every family (priors of other families included), so
    that the invalid pairs are exercised too; ``mle_fixed`` holds the family's last
    parameter at its true value.
    """
    out: dict[str, list[tuple[str, dict[str, Any]]]] = {
        kind: [] for kind in ESTIMATORS if kind not in LEARNER_KINDS
    }
    out["mle"] = [
        ("mle" if se == "expected" else f"mle_{se}", {"kind": "mle", "se": se}) for se in SE_METHODS
    ]
    last = family(name).params[-1]
    out["mle"].append(("mle_fixed", {"kind": "mle", "fixed": {last: float(theta_of(name)[-1])}}))
    out["map"] = [("map_flat", {"kind": "map"})]
    for (fam, param), (dist, _, _) in CONJUGATE.items():
        inside, edge = PRIOR_EXAMPLES[dist]
        for tag, hyper in (("", inside), ("_edge", edge)):
            if hyper is not None:
                prior = {param: {"dist": dist, **hyper}}
                out["map"].append((f"map_{fam}_{param}{tag}", {"kind": "map", "prior": prior}))
    fam = family(name)  # the general path: a smooth prior on the first parameter
    first_param = fam.params[0]
    smooth = {
        "real": {"dist": "t", "df": 3.0, "loc": 0.0, "scale": 10.0},
        "positive": {"dist": "gamma", "shape": 2.0, "rate": 0.5},
        "unit": {"dist": "beta", "a": 2.0, "b": 2.0},
    }[fam.domains[first_param].kind]
    out["map"].append(("map_smooth", {"kind": "map", "prior": {first_param: smooth}}))
    for fam in dict.fromkeys(f for f, _ in CONJUGATE):
        params = [p for f, p in CONJUGATE if f == fam]
        if len(params) > 1:
            prior = {p: _inside_prior(fam, p) for p in params}
            out["map"].append((f"map_{fam}_joint", {"kind": "map", "prior": prior}))
    out["median"] = [
        ("median" if se == "order_statistics" else f"median_{se}", {"kind": "median", "se": se})
        for se in MEDIAN_SE
    ]
    for kind in ("mean", "moments", "unbiased_variance"):
        if kind in out:
            out[kind] = [(kind, {"kind": kind})]
    first = [family(name).params[0]]
    out["plugin"] = [  # the plugin path (mlesim.plugins), one variant per calling form
        ("plugin", {"_target_": "tests.plugin_examples.mean_and_se", "params": first}),
        (
            "plugin_each",
            {
                "_target_": "tests.plugin_examples.median_of_one",
                "params": first,
                "vectorized": False,
            },
        ),
        ("plugin_class", {"_target_": "tests.plugin_examples.MeanSubclass"}),
    ]
    missing = [kind for kind, specs in out.items() if not specs]
    if missing:  # a new kind of ESTIMATORS: its default spec (add its variants above)
        out.update({kind: [(kind, {"kind": kind})] for kind in missing})
    return [variant for kind in out for variant in out[kind]]


def _classify() -> tuple[list, list]:
    valid, invalid = [], []
    for name in FAMILY_NAMES:
        for label, spec in spec_variants(name):
            case = pytest.param(name, label, spec, id=f"{name}-{label}")
            try:
                make_estimator(label, copy.deepcopy(spec), family(name))
            except Exception:  # the invalid-pair test says which error
                invalid.append(case)
            else:
                valid.append(case)
    return valid, invalid


VALID, INVALID = _classify()


def build(name: str, label: str, spec: dict) -> Estimator:
    return make_estimator(label, copy.deepcopy(spec), family(name))


# ----------------------------------------------------------------------- the checks
def in_closure(fam: Family, param: str, values: np.ndarray) -> np.ndarray:
    """Which values lie in the closure of ``param``'s domain (edges allowed: 0 and +inf
    for a positive parameter, the limits ν̂ = ∞ and size = ∞)."""
    kind = fam.domains[param].kind
    with np.errstate(invalid="ignore"):
        if kind == "positive":
            return values >= 0  # +inf included
        if kind == "unit":
            return (values >= 0) & (values <= 1)
    return np.isfinite(values)


def check_fitted(est: Estimator, x: np.ndarray, what: str) -> None:
    """Invariant 1 on a fitted estimator."""
    r = x.shape[0]
    names = est.param_names_
    k = len(names)
    assert k >= 1 and set(names) <= set(est.model.params), (what, names)
    assert np.shape(est.params_) == (r, k), (what, np.shape(est.params_))
    assert np.shape(est.se_) == (r, k), (what, np.shape(est.se_))
    conv = np.asarray(est.converged_)
    assert conv.shape == (r,) and conv.dtype == bool, (what, conv.shape, conv.dtype)
    values, se = np.asarray(est.params_, float)[conv], np.asarray(est.se_, float)[conv]
    for j, param in enumerate(names):
        out = ~in_closure(est.model, param, values[:, j])
        assert not out.any(), f"{what}: {param} estimates outside its domain: {values[out, j]}"
    # an estimate at +inf (ν̂ = ∞) has SE inf; every other converged estimate a finite SE
    bad = ~((np.isfinite(se) & (se >= 0)) | (np.isposinf(values) & np.isposinf(se)))
    rows = np.flatnonzero(bad.any(axis=1))
    assert not rows.size, (
        f"{what}: {rows.size}/{conv.sum()} converged replicates with an SE that is not "
        f"finite and >= 0, e.g. estimates {values[rows[:3]].tolist()} SE "
        f"{se[rows[:3]].tolist()}"
    )
    if hasattr(est, "reason_"):
        reason = np.asarray(est.reason_, dtype=object)
        assert reason.shape == (r,), (what, reason.shape)
        assert (reason[conv] == "").all(), (what, reason[conv])
        assert all(isinstance(s, str) and s for s in reason[~conv]), (what, reason[~conv])


def fit_strict(est: Estimator, x: np.ndarray) -> Estimator:
    """``est.fit(x)`` with RuntimeWarnings turned into errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        return est.fit(x)


# ----------------------------------------------------------------------- the pairs
def test_the_registries_give_many_pairs():
    """Enough valid pairs, every kind, family and conjugate parameter used, and some
    invalid pairs to refuse — so that a change of a registry cannot shrink the test."""
    assert len(VALID) >= MIN_VALID_PAIRS, len(VALID)
    assert INVALID
    assert set(FAMILIES) <= set(TRUTHS), sorted(set(FAMILIES) - set(TRUTHS))
    assert set(FAMILY_NAMES) | set(LEARNING_NAMES) >= set(FAMILIES)
    assert {dist for dist, _, _ in CONJUGATE.values()} <= set(PRIOR_EXAMPLES)
    specs = [case.values[2] for case in VALID]
    assert {s["kind"] for s in specs if "kind" in s} == set(ESTIMATORS) - LEARNER_KINDS
    assert {s["_target_"].rsplit(".", 1)[1] for s in specs if "_target_" in s} == {
        "mean_and_se",
        "median_of_one",
        "MeanSubclass",
    }
    assert {case.values[0] for case in VALID} == set(FAMILY_NAMES)
    priors = {(case.values[0], p) for case in VALID for p in case.values[2].get("prior", {})}
    assert priors >= set(CONJUGATE)  # the conjugate fast paths, and the general path:
    assert {("student_t", "mu"), ("gamma", "shape"), ("beta", "a")} <= priors
    se = {s["se"] for s in specs if s.get("kind") == "mle" and "se" in s}
    assert se == set(SE_METHODS)


@pytest.mark.parametrize(("name", "label", "spec"), INVALID)
def test_an_invalid_pair_is_refused_in_one_line(name, label, spec):
    with pytest.raises(ConfigError) as info:
        build(name, label, spec)
    err = info.value
    assert err.key.startswith(f"estimators.{label}"), err.key
    assert "\n" not in str(err), str(err)


# ----------------------------------------------------------------------- 1. typical
@pytest.mark.parametrize(("name", "label", "spec"), VALID)
def test_typical_data(name, label, spec):
    fam = family(name)
    rng = np.random.default_rng(_seed(name, label))
    x = fam.sample(rng, theta_of(name), (R, N))
    est = build(name, label, spec)
    assert fit_strict(est, x) is est
    check_fitted(est, x, f"{name}/{label}")


def _misfit_cases() -> list:
    cases = []
    for model, data in MISFITS:
        cases += [
            pytest.param(model, data, c.values[1], c.values[2], id=f"{model}~{data}-{c.values[1]}")
            for c in VALID
            if c.values[0] == model
        ]
    return cases


@pytest.mark.parametrize(("model", "data", "label", "spec"), _misfit_cases())
def test_wrong_model_data(model, data, label, spec):
    """The model is not the data's family: the same invariants as on typical data."""
    rng = np.random.default_rng(_seed(model, data, label))
    x = family(data).sample(rng, theta_of(data), (R, N))
    assert family(model).in_support(x).all()
    est = build(model, label, spec)
    fit_strict(est, x)
    check_fitted(est, x, f"{model} model on {data} data/{label}")


# -------------------------------------------------------------------------- 2. edge
def edge_data(name: str) -> dict[str, np.ndarray]:
    """Data sets on the edge: constant samples (all 0 and all 1 for counts), n = 1, n = 2."""
    fam = family(name)
    rng = np.random.default_rng(_seed(name, "edge"))
    typical = float(np.median(fam.sample(rng, theta_of(name), (1, 101))))
    constants = [typical]
    if fam.discrete:
        constants = sorted({0.0, 1.0, typical})
    out = {f"all {c:g}": np.full((3, 6), c) for c in constants}
    assert all(fam.in_support(x).all() for x in out.values()), name
    out["n = 1"] = fam.sample(rng, theta_of(name), (6, 1))
    out["n = 2"] = fam.sample(rng, theta_of(name), (6, 2))
    return out


def no_se(est: Estimator, row: np.ndarray) -> bool:
    """Whether the estimator documents that data set ``row`` (n,) has no SE: n below
    ``se_min_n`` (the sample SD needs n ≥ 2); an observed information −H(θ̂) that is not
    positive definite (the Cauchy's at n = 2 is singular: SE undefined, not 0); a
    median whose model-based SE rests on a model fit that failed."""
    x = row[None, :]
    if row.size < est.se_min_n:
        return True
    if getattr(est, "se", None) == "observed" or est.kind == "map":
        # the MAP's SE is the log posterior's curvature: the same rule with its prior
        free = fixed_mask(est.model, getattr(est, "fixed", None))
        theta = est.model.mle(x, getattr(est, "fixed", None)).theta
        if est.kind == "map":
            theta = fill_fixed(est.model, np.zeros((1, est.model.p)), est.fixed)
            theta[:, free] = est.fit(x).params_
        h = -est.model.hessian(x, theta)[0]
        if est.kind == "map":
            h -= np.diag(prior_hessian(est.model, theta, est.prior)[0])
        h = h[np.ix_(free, free)]
        return bool(np.all(np.isfinite(h)) and np.linalg.eigvalsh(h).min() <= 0)
    if est.kind == "median" and est.se == "model":
        return not bool(est.model.mle(x).converged[0])
    return False


@pytest.mark.parametrize(("name", "label", "spec"), VALID)
def test_edge_data(name, label, spec):
    """Each replicate is ok with finite estimates in the domain's closure and a finite
    SE >= 0 (or, where :func:`no_se` says the estimator documents none, NaN), or not ok
    with a reason; nothing raises out of fit_safely, and no
    RuntimeWarning is emitted."""
    problems, warned = [], []
    for what, x in edge_data(name).items():
        est = build(name, label, spec)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            values, se, ok, reason = fit_safely(est, x)
        warned += [f"{what}: {w.message}" for w in caught if w.category is RuntimeWarning]
        k = len(est.param_names_)
        assert values.shape == se.shape == (x.shape[0], k), (what, values.shape, se.shape)
        for i in range(x.shape[0]):
            row = f"{what} {x[i].tolist()}: estimate {values[i].tolist()} SE {se[i].tolist()}"
            if ok[i]:
                inside = all(
                    in_closure(est.model, p, values[i, j : j + 1])[0]
                    for j, p in enumerate(est.param_names_)
                )
                ok_se = (np.isfinite(se[i]) & (se[i] >= 0)) | (
                    np.isposinf(values[i]) & np.isposinf(se[i])
                )
                if np.isnan(values[i]).any() or not inside:
                    problems.append(f"ok with an estimate outside the domain: {row}")
                elif not ok_se.all() and not no_se(est, x[i]):
                    problems.append(f"ok with SE not finite >= 0: {row}")
            elif not (isinstance(reason[i], str) and reason[i]):
                problems.append(f"failed without a reason: {row}")
    assert not problems, f"{name}/{label}:\n" + "\n".join(problems)
    assert not warned, f"{name}/{label} RuntimeWarnings:\n" + "\n".join(dict.fromkeys(warned))


# ----------------------------------------------------------------------- 3. summary
@cache
def _base_config() -> dict:
    config = OmegaConf.to_container(compose_config(), resolve=True)
    config.pop("hydra", None)
    return config


_SUMMARIES: dict[str, Any] = {}


def family_summary(name: str):
    """The summary of one in-memory study of family ``name`` with every valid spec as an
    estimator (one study per family keeps the pipeline cheap); an error is re-raised
    for each pair."""
    if name not in _SUMMARIES:
        estimators = {c.values[1]: copy.deepcopy(c.values[2]) for c in VALID if c.values[0] == name}
        try:
            spec = study_spec(
                _base_config(),
                runner={"n_jobs": 1, "backend": "sequential", "progress": False},
                n=[SUMMARY_N],
                replications=SUMMARY_REPS,
                truth={"family": name, "params": TRUTHS[name]},
                estimators=estimators,
            )
            _SUMMARIES[name] = summarise(spec, simulate(spec, progress=False))
        except Exception as err:  # re-raised by every pair of the family
            _SUMMARIES[name] = err
    out = _SUMMARIES[name]
    if isinstance(out, Exception):
        raise out
    return out


@pytest.mark.parametrize(("name", "label", "spec"), VALID)
def test_summary(name, label, spec):
    out = family_summary(name)
    missing = [c for c in SUMMARY_COLUMNS if c not in out.columns]
    assert not missing, missing
    rows = out[out["estimator"] == label]
    assert list(rows["param"]) == list(build(name, label, spec).param_names_), rows
    counts = rows[["param", "n_rep", "n_failed", "n_se"]]
    assert (rows["n_rep"] + rows["n_failed"] == SUMMARY_REPS).all(), counts
    assert (rows["n_se"] == rows["n_rep"]).all(), f"{name}/{label}: SE missing\n{counts}"


# =================================================== the families of machine learning
# Regressions, classifiers, the categorical and Gaussian mixtures fit their own kinds
# (mlesim.learners, registered in LEARNERS by (family, kind)). Every (family, kind) has
# its variants here — the test below fails when a new learner comes without them — and
# every variant an independent oracle (statsmodels, scikit-learn, scipy.optimize or a
# count) on the same data sets.

#: (family, kind) → [(label, spec)]
LEARNER_SPECS: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {
    ("linear_regression", "mle"): [
        ("mle", {"kind": "mle"}),
        ("mle_laplace", {"kind": "mle", "noise": "laplace"}),
        ("mle_t", {"kind": "mle", "noise": "student_t", "nu": 4.0}),
    ],
    ("linear_regression", "loss"): [
        ("loss_mse", {"kind": "loss", "loss": "mse"}),
        ("loss_mae", {"kind": "loss", "loss": "mae"}),
        ("loss_huber", {"kind": "loss", "loss": "huber", "delta": 1.0}),
    ],
    ("linear_regression", "ridge"): [("ridge", {"kind": "ridge", "alpha": 3.0})],
    ("linear_regression", "lasso"): [("lasso", {"kind": "lasso", "alpha": 0.1})],
    ("logistic_regression", "mle"): [
        ("mle", {"kind": "mle"}),
        ("mle_balanced", {"kind": "mle", "weights": "balanced"}),
    ],
    ("logistic_regression", "firth"): [("firth", {"kind": "firth"})],
    ("logistic_regression", "loss"): [
        ("loss_bce", {"kind": "loss", "loss": "bce"}),
        ("loss_focal", {"kind": "loss", "loss": "focal", "gamma": 2.0}),
    ],
    ("softmax_regression", "mle"): [("mle", {"kind": "mle"})],
    ("softmax_regression", "loss"): [("loss_ce", {"kind": "loss", "loss": "ce"})],
    ("categorical", "mle"): [("mle", {"kind": "mle"})],
    ("categorical", "loss"): [("loss_ce", {"kind": "loss", "loss": "ce"})],
    ("categorical", "map"): [
        ("map", {"kind": "map"}),
        ("map_half", {"kind": "map", "concentration": 1.5}),
    ],
    ("gaussian_mixture", "mle"): [
        ("mle", {"kind": "mle"}),
        ("mle_starts", {"kind": "mle", "n_init": 3}),
        ("mle_floor", {"kind": "mle", "variance_floor": 0.05}),
    ],
    ("gaussian_mixture", "map"): [("map", {"kind": "map", "shape": 2.0, "scale": 0.5})],
}
LEARN_CASES = [
    pytest.param(fam, label, spec, id=f"{fam}-{label}")
    for (fam, _), variants in LEARNER_SPECS.items()
    for label, spec in variants
]
#: replicates and sample size of the learning families' typical data
LR, LN = 24, 120


def learn_data(name: str, rows: int = LR, n: int = LN, tag: str = "typical") -> dict:
    fam = family(name)
    rng = np.random.default_rng(_seed(name, tag))
    return fam.sample(rng, theta_of(name), (rows, n))


def test_every_learner_has_variants_and_the_scalar_kinds_are_refused():
    assert set(LEARNER_SPECS) == set(LEARNERS), sorted(set(LEARNERS) ^ set(LEARNER_SPECS))
    assert set(LEARNING_NAMES) == {fam for fam, _ in LEARNERS}
    for name in LEARNING_NAMES:  # a scalar kind on a learning family: one line
        for kind in sorted(set(ESTIMATORS) - {k for f, k in LEARNERS if f == name}):
            with pytest.raises(ConfigError) as info:
                make_estimator("e", {"kind": kind}, family(name))
            assert info.value.key == "estimators.e.kind" and "\n" not in str(info.value)
    for kind in sorted(LEARNER_KINDS):  # a learner's kind on scalar data: one line
        with pytest.raises(ConfigError) as info:
            make_estimator("e", {"kind": kind, "alpha": 1.0}, family("normal"))
        assert info.value.key == "estimators.e.kind" and "\n" not in str(info.value)


def check_learned(est: Estimator, rows: int, what: str) -> None:
    """Invariant 1 for a learner: shapes, names, estimates in the closure of their
    domains, finite SEs >= 0 on converged replicates (the lasso documents none),
    reasons exactly for the failures."""
    names = est.param_names_
    assert set(names) <= set(est.model.params), (what, names)
    assert np.shape(est.params_) == np.shape(est.se_) == (rows, len(names)), what
    conv = np.asarray(est.converged_)
    assert conv.shape == (rows,) and conv.dtype == bool, what
    values, se = est.params_[conv], est.se_[conv]
    for j, param in enumerate(names):
        out = ~in_closure(est.model, param, values[:, j])
        assert not out.any(), f"{what}: {param} outside its domain: {values[out, j]}"
    if est.kind != "lasso":
        bad = ~(np.isfinite(se) & (se >= 0))
        assert not bad.any(), f"{what}: converged with SE {se[bad.any(axis=1)][:3]}"
    else:
        assert np.isnan(est.se_).all(), what
    reason = np.asarray(est.reason_, dtype=object)
    assert (reason[conv] == "").all() and all(isinstance(r, str) and r for r in reason[~conv])


@pytest.mark.parametrize(("name", "label", "spec"), LEARN_CASES)
def test_learner_typical_data(name, label, spec):
    est = make_estimator(label, copy.deepcopy(spec), family(name))
    fit_strict(est, learn_data(name))
    check_learned(est, LR, f"{name}/{label}")
    assert est.converged_.mean() >= 0.9, (name, label, est.reason_)


def learner_edge_data(name: str) -> dict[str, dict]:
    """Data on the edge of each learning family: the smallest samples, one class only,
    perfectly separated classes, a category never seen, constant or tied data."""
    fam = family(name)
    rng = np.random.default_rng(_seed(name, "edge"))
    out: dict[str, dict] = {}
    if "X" in fam.fields:
        d = fam.d
        out["n = d"] = fam.sample(rng, theta_of(name), (4, d))
        out["n = d + 1"] = fam.sample(rng, theta_of(name), (4, d + 1))
        tiny = fam.sample(rng, theta_of(name), (4, 12))
        const = {"X": tiny["X"].copy(), "y": tiny["y"]}
        const["X"][..., 1] = 0.0  # a covariate that never varies: the design is singular
        out["constant covariate"] = const
        if name != "linear_regression":
            out["one class"] = {"X": tiny["X"], "y": np.zeros_like(tiny["y"])}
            sep = {"X": tiny["X"], "y": (tiny["X"][..., 1] > 0).astype(float)}
            if name == "softmax_regression":
                sep["y"] = np.digitize(tiny["X"][..., 1], [-0.3, 0.3]).astype(float)
            out["separated"] = sep
        else:
            out["exact fit"] = {"X": tiny["X"], "y": tiny["X"] @ fam.beta(theta_of(name))}
    elif name == "categorical":
        out["one category"] = {"y": np.zeros((3, 8))}
        out["n = 1"] = fam.sample(rng, theta_of(name), (6, 1))
        out["a category unseen"] = {"y": np.tile(np.arange(fam.K - 1, dtype=float), (3, 3))}
    else:
        out["n = 1"] = fam.sample(rng, theta_of(name), (4, 1))
        out["n = 3"] = fam.sample(rng, theta_of(name), (4, 3))
        out["constant"] = {"x": np.full((3, 10), 1.5)}
        tied = fam.sample(rng, theta_of(name), (3, 10))["x"]
        tied[:, :2] = 7.0  # a far pair of ties: a component can sit on them
        out["far ties"] = {"x": tied}
    return out


@pytest.mark.parametrize(("name", "label", "spec"), LEARN_CASES)
def test_learner_edge_data(name, label, spec):
    """Each replicate ok with estimates in the domain's closure and a finite SE >= 0,
    or failed with a reason; nothing raises, no RuntimeWarning."""
    problems = []
    for what, data in learner_edge_data(name).items():
        est = make_estimator(label, copy.deepcopy(spec), family(name))
        rows = next(iter(data.values())).shape[0]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            values, se, ok, reason = fit_safely(est, data)
        assert not [w for w in caught if w.category is RuntimeWarning], (what, caught[0].message)
        for i in range(rows):
            if ok[i]:
                inside = all(
                    in_closure(est.model, p, values[i, j : j + 1])[0]
                    for j, p in enumerate(est.param_names_)
                )
                n = next(iter(data.values())).shape[1]
                se_ok = (
                    est.kind == "lasso"
                    or n < est.se_min_n  # documented: no SE below se_min_n
                    or bool(np.all(np.isfinite(se[i]) & (se[i] >= 0)))
                )
                if not inside or not se_ok or np.isnan(values[i]).any():
                    problems.append(f"{what}: estimate {values[i]} SE {se[i]}")
            elif not (isinstance(reason[i], str) and reason[i]):
                problems.append(f"{what}: failed without a reason")
    assert not problems, f"{name}/{label}:\n" + "\n".join(problems)


def test_learner_edge_outcomes_are_the_documented_ones():
    """The edges named in the docs: separation fails the logistic MLE with its reason
    and leaves Firth finite; an exact linear fit gives σ̂² = 0 with SE 0; a singular
    design fails; a mixture's collapse fails with its reason, the floor and the prior
    keep it finite."""
    sep = learner_edge_data("logistic_regression")["separated"]
    mle = make_estimator("m", {"kind": "mle"}, family("logistic_regression")).fit(sep)
    assert not mle.converged_.any() and all(r.startswith("separation") for r in mle.reason_)
    firth = make_estimator("f", {"kind": "firth"}, family("logistic_regression")).fit(sep)
    assert firth.converged_.all() and np.isfinite(firth.params_).all()
    edges = learner_edge_data("linear_regression")
    ols = make_estimator("m", {"kind": "mle"}, family("linear_regression")).fit(edges["exact fit"])
    assert ols.converged_.all() and np.allclose(ols.params_[:, -1], 0, atol=1e-20)
    assert np.allclose(ols.se_[:, -1], 0, atol=1e-20)
    bad = make_estimator("m", {"kind": "mle"}, family("linear_regression"))
    bad.fit(edges["constant covariate"])
    assert not bad.converged_.any() and all("singular" in r for r in bad.reason_)
    tied = learner_edge_data("gaussian_mixture")["far ties"]
    em = make_estimator("m", {"kind": "mle"}, family("gaussian_mixture")).fit(tied)
    floor = make_estimator("f", {"kind": "mle", "variance_floor": 0.05}, family("gaussian_mixture"))
    assert np.isfinite(floor.fit(tied).params_[floor.converged_]).all()
    collapsed = [r for r in em.reason_ if r.startswith("collapsed")]
    assert collapsed, em.reason_  # the pair of ties at 7 pulls a component onto itself


# --------------------------------------------------------------------- the oracles
def _ols(X, y):
    import statsmodels.api as sm

    return sm.OLS(y, X).fit()


def _quantreg(X, y):
    import statsmodels.api as sm

    return sm.QuantReg(y, X).fit(q=0.5, max_iter=5000, p_tol=1e-10, vcov="iid")


def _minimise(f, x0):
    import scipy.optimize as so

    res = so.minimize(f, x0, method="BFGS", options={"gtol": 1e-10, "maxiter": 10000})
    return so.minimize(
        f, res.x, method="Nelder-Mead", options={"xatol": 1e-11, "fatol": 1e-13, "maxiter": 20000}
    ).x


def _linear_oracle(label, spec, X, y, fam):
    """(estimates, SEs or None, tolerance) of one linear-regression data set."""
    import scipy.stats as st

    n, d = X.shape
    noise, loss = spec.get("noise", "normal"), spec.get("loss")
    if spec["kind"] == "ridge":
        from sklearn.linear_model import Ridge

        m = Ridge(alpha=spec["alpha"], tol=1e-12).fit(X[:, 1:], y)
        return np.r_[m.intercept_, m.coef_], None, 1e-8
    if spec["kind"] == "lasso":
        from sklearn.linear_model import Lasso

        m = Lasso(alpha=spec["alpha"], tol=1e-14, max_iter=10**6).fit(X[:, 1:], y)
        return np.r_[m.intercept_, m.coef_], None, 1e-6
    if loss == "mse" or (spec["kind"] == "mle" and noise == "normal"):
        m = _ols(X, y)
        scale = np.sqrt((n - d) / n)  # statsmodels divides the RSS by n − d
        if loss:
            return m.params, m.bse * scale, 1e-9
        s2 = m.ssr / n
        return np.r_[m.params, s2], np.r_[m.bse * scale, s2 * np.sqrt(2 / n)], 1e-9
    if loss == "mae" or noise == "laplace":
        m = _quantreg(X, y)
        if loss:
            return m.params, m.bse, 1e-4
        b = np.mean(np.abs(y - X @ m.params))
        return np.r_[m.params, 2 * b**2], None, 1e-4
    if loss == "huber":
        delta = spec["delta"]

        def huber(beta):
            r = np.abs(y - X @ beta)
            return np.sum(np.where(r <= delta, r**2 / 2, delta * (r - delta / 2)))

        return _minimise(huber, _ols(X, y).params), None, 1e-5
    nu = spec["nu"]

    def nll(t):
        return -np.sum(st.t.logpdf(y - X @ t[:d], nu, scale=np.exp(t[d])))

    t = _minimise(nll, np.r_[_ols(X, y).params, 0.0])
    return np.r_[t[:d], np.exp(2 * t[d]) * nu / (nu - 2)], None, 1e-5


def _logistic_oracle(label, spec, X, y, fam):
    import scipy.special as sc
    import statsmodels.api as sm

    if spec.get("weights") == "balanced":
        from sklearn.linear_model import LogisticRegression

        m = LogisticRegression(C=np.inf, class_weight="balanced", tol=1e-12, max_iter=10**5)
        m.fit(X[:, 1:], y)
        return np.r_[m.intercept_, m.coef_.ravel()], None, 1e-5
    if spec["kind"] == "firth":

        def pen(beta):
            p = sc.expit(X @ beta)
            info = (X * (p * (1 - p))[:, None]).T @ X
            ll = np.sum(y * np.log(p) + (1 - y) * np.log1p(-p))
            return -(ll + 0.5 * np.linalg.slogdet(info)[1])

        return _minimise(pen, np.zeros(X.shape[1])), None, 1e-5
    if spec.get("loss") == "focal":
        g = spec["gamma"]

        def focal(beta):
            pt = sc.expit((2 * y - 1) * (X @ beta))
            return np.sum(-((1 - pt) ** g) * np.log(pt))

        return _minimise(focal, np.zeros(X.shape[1])), None, 1e-5
    m = sm.Logit(y, X).fit(disp=0, method="newton", tol=1e-12, maxiter=200)
    return m.params, m.bse, 1e-6


def _softmax_oracle(label, spec, X, y, fam):
    import statsmodels.api as sm

    m = sm.MNLogit(y, X).fit(disp=0, method="newton", tol=1e-12, maxiter=200)
    return np.asarray(m.params).T.ravel(), np.asarray(m.bse).T.ravel(), 1e-6


def _categorical_oracle(label, spec, y, fam):
    n = y.size
    counts = np.array([np.sum(y == k) for k in range(fam.K)], float)  # a count, per category
    a = spec.get("concentration", 2.0) if spec["kind"] == "map" else 1.0
    total = n + fam.K * (a - 1)
    p = (counts + a - 1) / total
    return p, np.sqrt(p * (1 - p) / total), 1e-14


def _mixture_oracle(label, spec, x, fam, est_row):
    """scikit-learn's EM started next to our estimate must stop on it (the MLE); the
    MAP must be a maximum of the penalised log-likelihood (scipy.optimize from it)."""
    K = fam.K
    w, mu, var = est_row[:K], est_row[K : 2 * K], est_row[2 * K :]
    if spec["kind"] == "map":
        import scipy.stats as st
        from scipy.special import logsumexp

        a, b = spec["shape"], spec["scale"]

        def neg(t):
            ww = np.r_[t[: K - 1], 1 - np.sum(t[: K - 1])]
            if np.any(ww <= 0):
                return np.inf
            m, v = t[K - 1 : 2 * K - 1], np.exp(t[2 * K - 1 :])
            comp = np.log(ww) + st.norm.logpdf(x[:, None], m, np.sqrt(v))
            prior = st.invgamma.logpdf(v, a, scale=b).sum()
            return -(logsumexp(comp, axis=1).sum() + prior)

        t = _minimise(neg, np.r_[w[:-1], mu, np.log(var)])
        return np.r_[
            t[: K - 1], 1 - t[: K - 1].sum(), t[K - 1 : 2 * K - 1], np.exp(t[2 * K - 1 :])
        ], 1e-5
    from sklearn.mixture import GaussianMixture

    m = GaussianMixture(
        K,
        tol=1e-13,
        max_iter=10**5,
        reg_covar=0.0,
        weights_init=w,
        means_init=(mu * 1.001)[:, None],
        precisions_init=(1 / var)[:, None, None],
    ).fit(x[:, None])
    order = np.argsort(m.means_.ravel())
    return np.r_[m.weights_[order], m.means_.ravel()[order], m.covariances_.ravel()[order]], 1e-5


@pytest.mark.parametrize(("name", "label", "spec"), LEARN_CASES)
def test_learner_agrees_with_its_oracle(name, label, spec):
    """Estimates (and SEs where the oracle gives them) equal an independent fit on the
    same data sets, replicate by replicate."""
    fam = family(name)
    data = learn_data(name, rows=4, n=150, tag="oracle")
    est = make_estimator(label, copy.deepcopy(spec), fam).fit(data)
    assert est.converged_.all(), est.reason_
    for r in range(4):
        if "X" in fam.fields:
            X, y = data["X"][r], data["y"][r]
            oracle = {"linear_regression": _linear_oracle, "logistic_regression": _logistic_oracle}
            want, se, tol = oracle.get(name, _softmax_oracle)(label, spec, X, y, fam)
        elif name == "categorical":
            want, se, tol = _categorical_oracle(label, spec, data["y"][r], fam)
        else:
            if spec.get("variance_floor") and np.any(est.params_[r, 2 * fam.K :] <= 0.05):
                continue
            want, tol = _mixture_oracle(label, spec, data["x"][r], fam, est.params_[r])
            se = None
        scale = np.maximum(np.abs(want), 1.0)
        assert np.all(np.abs(est.params_[r] - want) <= tol * scale), (
            f"{name}/{label} replicate {r}: {est.params_[r]} vs oracle {want}"
        )
        if se is not None:
            np.testing.assert_allclose(est.se_[r], se, rtol=max(tol * 10, 1e-7), err_msg=label)


@pytest.mark.parametrize("name", LEARNING_NAMES)
def test_learner_summary(name):
    """Invariant 3: one in-memory study per learning family with all its variants:
    n_rep + n_failed = replications, every summary column, names in order."""
    cases = [c for c in LEARN_CASES if c.values[0] == name]
    estimators = {c.values[1]: copy.deepcopy(c.values[2]) for c in cases}
    spec = study_spec(
        _base_config(),
        runner={"n_jobs": 1, "backend": "sequential", "progress": False},
        n=[60],
        replications=SUMMARY_REPS,
        truth=copy.deepcopy(TRUTH_CONFIGS[name]),
        estimators=estimators,
    )
    out = summarise(spec, simulate(spec, progress=False))
    assert not [c for c in SUMMARY_COLUMNS if c not in out.columns]
    for c in cases:
        rows = out[out["estimator"] == c.values[1]]
        want = make_estimator(c.values[1], copy.deepcopy(c.values[2]), family(name))
        assert list(rows["param"]) == list(want.param_names_)
        assert (rows["n_rep"] + rows["n_failed"] == SUMMARY_REPS).all()


#: (family, label, spec, data from): fits under a wrong model — heavier-tailed noise
#: than the estimator assumes, a mixture fitted to one normal, classes from a probit
WRONG_MODEL = [
    ("linear_regression", "mle", {"kind": "mle"}, "t_noise"),
    ("linear_regression", "mle_laplace", {"kind": "mle", "noise": "laplace"}, "t_noise"),
    ("gaussian_mixture", "mle", {"kind": "mle"}, "one_normal"),
    ("logistic_regression", "mle", {"kind": "mle"}, "probit"),
    (
        "logistic_regression",
        "loss_focal",
        {"kind": "loss", "loss": "focal", "gamma": 2.0},
        "probit",
    ),
]


@pytest.mark.parametrize(("name", "label", "spec", "source"), WRONG_MODEL)
def test_learner_wrong_model_data(name, label, spec, source):
    rng = np.random.default_rng(_seed(name, label, source))
    fam = family(name)
    if source == "t_noise":
        X = fam.design(rng, (LR, LN))
        data = {"X": X, "y": X @ fam.beta(theta_of(name)) + rng.standard_t(2.5, (LR, LN))}
    elif source == "one_normal":
        data = {"x": rng.standard_normal((LR, LN))}
    else:
        import scipy.stats as st

        X = fam.design(rng, (LR, LN))
        data = {
            "X": X,
            "y": (rng.random((LR, LN)) < st.norm.cdf(X @ fam.beta(theta_of(name)))).astype(float),
        }
    est = make_estimator(label, copy.deepcopy(spec), fam)
    fit_strict(est, data)
    check_learned(est, LR, f"{name}/{label} on {source} data")
