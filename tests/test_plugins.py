"""The user's own estimators and generators (``_target_``): the call contract, failures
per replicate, contract errors, configuration errors, pickling and fingerprints.

The plugins live in a module written to a temporary directory, which plays the user's
working directory (the search path)."""

from __future__ import annotations

import pickle
import textwrap

import numpy as np
import pytest

from mlesim.errors import ConfigError
from mlesim.estimators import make_estimator
from mlesim.failures import fit_safely
from mlesim.families import get_family
from mlesim.plugins import PluginContractError, source_digest
from tests.conftest import make_scenario

MODULE = """
import numpy as np
from mlesim.estimators import Estimator

def column(x):
    return x.mean(axis=1)

def two(x):
    return np.column_stack([x.mean(axis=1), x.var(axis=1)])

def with_se(x):
    return x.mean(axis=1), x.std(axis=1) / np.sqrt(x.shape[1])

def mapping(x):
    return {"estimate": x.mean(axis=1), "converged": x.mean(axis=1) > 0}

def wrong(x):
    return x.mean(axis=1)[:-1]

def boom(x):
    raise RuntimeError("no luck")

def one_at_a_time(x, cut=1.0):
    if x[0] > cut:
        raise ValueError("first value too large")
    if x[0] < -cut:
        return np.array([1.0, 2.0])  # a wrong shape, in this replicate only
    return float(np.median(x))

def always_wrong(x):
    return np.ones(3)

def sorts_in_place(x):
    x.sort(axis=-1)  # changes what it was given (a chunk, or one data set)
    return x[..., 0]

def fields(data):
    return (data["x"] * data["w"]).sum(axis=1) / data["w"].sum(axis=1)

def weighted(rng, size):
    return {"x": rng.normal(size=size), "w": rng.uniform(0.5, 1.5, size=size)}

def skew(rng, size, a=4.0):
    d = a / np.sqrt(1 + a * a)
    return d * np.abs(rng.standard_normal(size)) + np.sqrt(1 - d * d) * rng.standard_normal(size)

class Half(Estimator):
    kind = "half"
    register = False  # a test class: keep the registry as shipped

    @property
    def param_names_(self):
        return ("mu",)

    def _fit(self, x):
        est = x.mean(axis=1)[:, None] / 2
        return est, np.full_like(est, 0.1), np.zeros(x.shape[0], dtype=int)
"""


@pytest.fixture
def where(tmp_path):
    """A directory holding the plugin module ``plug_<unique>`` and its name."""
    name = f"plug_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(MODULE))
    return str(tmp_path), name


def build(where, spec: dict, model: str = "normal"):
    path, mod = where
    spec = {**spec, "_target_": f"{mod}.{spec['_target_']}"}
    return make_estimator("mine", spec, get_family(model), search_path=path)


X = np.arange(24, dtype=float).reshape(4, 6) - 5.0


@pytest.mark.parametrize(
    ("target", "params", "k"),
    [("column", ["mu"], 1), ("two", ["mu", "sigma2"], 2), ("with_se", ["mu"], 1)],
)
def test_vectorised_callables(where, target, params, k):
    est = build(where, {"_target_": target, "params": params}).fit(X)
    assert est.params_.shape == est.se_.shape == (4, k)
    np.testing.assert_allclose(est.params_[:, 0], X.mean(axis=1))
    assert est.converged_.all() and est.param_names_ == tuple(params)
    if target == "with_se":
        np.testing.assert_allclose(est.se_[:, 0], X.std(axis=1) / np.sqrt(6))
    else:
        assert np.isnan(est.se_).all()


def test_a_mapping_may_say_which_replicates_converged(where):
    values, se, ok, reason = fit_safely(build(where, {"_target_": "mapping", "params": ["mu"]}), X)
    np.testing.assert_array_equal(ok, X.mean(axis=1) > 0)
    assert set(reason[~ok]) == {"not converged"}


def test_a_raise_fails_every_replicate_of_the_chunk_with_its_reason(where):
    values, se, ok, reason = fit_safely(build(where, {"_target_": "boom", "params": ["mu"]}), X)
    assert not ok.any() and set(reason) == {"raised RuntimeError: no luck"}


def test_per_replicate_failures_are_per_replicate(where):
    """vectorized: false — one data set at a time; a raise or a wrong shape fails that
    replicate only, with its reason."""
    x = np.array([[0.0, 1.0, 2.0], [5.0, 1.0, 1.0], [-5.0, 1.0, 2.0], [0.5, 0.7, 0.9]])
    spec = {"_target_": "one_at_a_time", "params": ["mu"], "vectorized": False, "cut": 1.0}
    values, se, ok, reason = fit_safely(build(where, spec), x)
    np.testing.assert_array_equal(ok, [True, False, False, True])
    np.testing.assert_allclose(values[ok, 0], [1.0, 0.7])
    assert reason[1] == "raised ValueError: first value too large"
    assert reason[2].startswith("returned the estimate has shape (2,)")


@pytest.mark.parametrize("vectorized", [True, False])
def test_a_plugin_may_change_its_read_only_data(where, vectorized):
    """The engine hands estimators a chunk's data read-only (mlesim.sufficient); a
    user's function gets its own copy, so sorting it in place works and the chunk the
    other estimators see is unchanged."""
    x = X[::-1].copy()
    x.flags.writeable = False
    spec = {"_target_": "sorts_in_place", "params": ["mu"], "vectorized": vectorized}
    values, se, ok, reason = fit_safely(build(where, spec), x)
    assert ok.all()
    np.testing.assert_array_equal(values[:, 0], x.min(axis=1))
    np.testing.assert_array_equal(x, X[::-1])


@pytest.mark.parametrize(("target", "vectorized"), [("wrong", True), ("always_wrong", False)])
def test_a_wrong_shape_for_the_whole_chunk_stops_the_run(where, target, vectorized):
    est = build(where, {"_target_": target, "params": ["mu"], "vectorized": vectorized})
    with pytest.raises(PluginContractError) as info:
        fit_safely(est, X)
    assert info.value.key == "estimators.mine" and "expected" in info.value.message
    assert "\n" not in str(info.value)


def test_an_estimator_subclass_is_built_and_fitted_like_the_builtins(where):
    est = build(where, {"_target_": "Half"}).fit(X)
    assert est.param_names_ == ("mu",)
    np.testing.assert_allclose(est.params_[:, 0], X.mean(axis=1) / 2)
    np.testing.assert_allclose(est.se_, 0.1)


def test_a_generator_with_several_fields_feeds_a_plugin_the_mapping(where):
    path, mod = where
    scen = make_scenario_from(
        where,
        truth={"_target_": f"{mod}.weighted", "params": {}},
        estimand={"mu": 0.0},
        estimators={"wmean": {"_target_": f"{mod}.fields", "params": ["mu"]}},
    )
    data = scen.sample(np.random.SeedSequence(1), 5)
    assert set(data) == {"x", "w"} and data["x"].shape == (5, 10)
    (est,) = scen.estimators()
    values, _, ok, _ = fit_safely(est, data)
    want = (data["x"] * data["w"]).sum(axis=1) / data["w"].sum(axis=1)
    np.testing.assert_allclose(values[:, 0], want) and ok.all()


def make_scenario_from(where, **config):
    from mlesim.scenarios import Scenario

    base = {"model": None, "contamination": None, "estimand": "auto"}
    return Scenario.from_config({**base, **config}, n=10, search_path=where[0])


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"truth": {"_target_": "nosuch_module_xyz.f"}}, "truth._target_"),
        ({"truth": {"_target_": "skew", "family": "normal"}}, "truth"),
        ({"truth": {"_target_": "skew"}, "estimand": "auto"}, "estimand"),
        (
            {"truth": {"_target_": "skew"}, "estimators": {"m": {"kind": "mean"}}},
            "estimators.m.kind",
        ),
        (
            {"truth": {"_target_": "skew"}, "estimators": {"p": {"_target_": "two"}}},
            "estimators.p.params",
        ),
        ({"truth": {"_target_": "skew"}, "estimand": {"mu": "high"}}, "estimand.mu"),
    ],
)
def test_configuration_mistakes_are_one_line_errors(where, config, key):
    path, mod = where
    truth = dict(config["truth"])
    if not truth["_target_"].startswith("nosuch"):
        truth["_target_"] = f"{mod}.{truth['_target_']}"
    specs = config.get("estimators", {"c": {"_target_": "column", "params": ["mu"]}})
    specs = {
        k: {**v, "_target_": f"{mod}.{v['_target_']}"} if "_target_" in v else v
        for k, v in specs.items()
    }
    with pytest.raises(ConfigError) as info:
        scen = make_scenario_from(
            where, truth=truth, estimand=config.get("estimand", {"mu": 0.5}), estimators=specs
        )
        scen.estimators()
    assert info.value.key == key, str(info.value)
    assert "allowed" in info.value.message or "give" in info.value.message


def test_an_explicit_estimand_must_cover_what_is_estimated(where):
    path, mod = where
    scen = make_scenario(
        "normal",
        {"mu": 0.0, "sigma2": 1.0},
        estimand={"mu": 0.0},
        estimators={"mle": {"kind": "mle"}},
    )
    with pytest.raises(ConfigError) as info:
        scen.check_estimand()
    assert info.value.key == "estimand.sigma2"


@pytest.mark.parametrize("cls", [ConfigError, PluginContractError])
def test_errors_cross_process_boundaries(cls):
    err = pickle.loads(pickle.dumps(cls("estimators.x", "went wrong; allowed: y")))
    assert type(err) is cls and err.key == "estimators.x" and err.message.endswith("y")
    assert str(err) == "estimators.x: went wrong; allowed: y"


def test_the_fingerprint_follows_the_plugin_source(where):
    path, mod = where
    before = source_digest(f"{mod}.column", path)
    assert len(before) == 64
    with open(f"{path}/{mod}.py", "a") as fh:
        fh.write("\n# edited\n")
    assert source_digest(f"{mod}.column", path) != before
