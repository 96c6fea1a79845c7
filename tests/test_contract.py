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
from mlesim.engine import simulate
from mlesim.errors import ConfigError
from mlesim.estimators import ESTIMATORS, MEDIAN_SE, SE_METHODS, Estimator, make_estimator
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
def _truths() -> dict[str, dict[str, float]]:
    """Family name → default parameters, from every ``conf/truth/*.yaml`` of a family."""
    out = {}
    for path in sorted((Path(cli.config_dir()) / "truth").glob("*.yaml")):
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
        if cfg.get("family") is not None:  # truth=generator names a user's function instead
            out[cfg["family"]] = dict(cfg.get("params") or {})
    return out


TRUTHS = _truths()
#: every named family, then the generic scipy families shipped in conf/truth
FAMILY_NAMES = list(FAMILIES) + sorted(name for name in TRUTHS if name.startswith("scipy:"))


@cache
def family(name: str) -> Family:
    return get_family(name)


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
    out: dict[str, list[tuple[str, dict[str, Any]]]] = {kind: [] for kind in ESTIMATORS}
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
    assert {dist for dist, _, _ in CONJUGATE.values()} <= set(PRIOR_EXAMPLES)
    specs = [case.values[2] for case in VALID]
    assert {s["kind"] for s in specs if "kind" in s} == set(ESTIMATORS)
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
