"""Regressions found by reviewing the open framework, boundaries and hardening work."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

import mlesim
from mlesim.chunkfiles import chunk_files
from mlesim.engine import plan
from mlesim.errors import ConfigError
from mlesim.estimators import make_estimator
from mlesim.failures import fit_safely, warning_line
from mlesim.families import get_family
from mlesim.metrics import empse
from mlesim.pipeline import run_pipeline
from mlesim.plugins import PluginContractError
from tests.conftest import compose_config, make_scenario, study_spec


def _config(*overrides: str) -> dict:
    config = OmegaConf.to_container(compose_config(list(overrides)), resolve=True)
    config.pop("hydra", None)
    return config


def test_two_callables_with_one_name_stay_apart():
    """Two lambdas (one qualname) handed over in Python are two estimators."""
    config = {
        "estimators": {
            "mean": {"_target_": lambda x: x.mean(axis=1), "params": ["mu"]},
            "median": {"_target_": lambda x: np.median(x, axis=1), "params": ["mu"]},
        },
        "n": [21],
        "replications": 300,
    }
    out = mlesim.run(config=config).summary.set_index("estimator")
    assert out.loc["mean", "empse"] != out.loc["median", "empse"]
    assert out.loc["mean", "empse"] < out.loc["median", "empse"]  # the mean is efficient here


def test_an_edge_estimand_does_not_crash_the_consistency_study(tmp_path):
    spec = study_spec(
        _config("experiment=consistency", "truth=normal"),
        model="student_t",
        n=[10, 30],
        replications=40,
        runner={"progress": False},
    )
    out = run_pipeline(spec, tmp_path, progress=False)
    assert {p.stem for p, _ in out["figures"]} == {"consistency_mu", "consistency_sigma"}


def test_a_null_design_value_is_refused():
    with pytest.raises(ConfigError) as info:
        study_spec(_config(), n=[5], replications=10, design={"model": [None, "student_t"]})
    assert info.value.key == "design.model" and "must not be null" in info.value.message


def test_an_estimator_subclass_keeps_its_columns_and_fixed_parameters():
    fam = get_family("student_t")
    with pytest.raises(ConfigError) as info:
        make_estimator(
            "m", {"_target_": "mlesim.estimators.MLE", "params": ["sigma", "mu", "nu"]}, fam
        )
    assert info.value.key == "estimators.m.params"
    est = make_estimator("m", {"_target_": "mlesim.estimators.MLE", "fixed": {"nu": 5}}, fam)
    assert est.held_fixed == {"nu": 5.0} and est.param_names_ == ("mu", "sigma")


def test_the_order_of_an_estimand_mapping_is_in_the_fingerprint():
    from mlesim import checkpoint

    def spec(estimand):
        return study_spec(
            _config("truth=generator"),
            truth={"family": None, "_target_": "tests.plugin_examples.normal_draws", "params": {}},
            estimand=estimand,
            estimators={
                "t": {"_target_": "tests.plugin_examples.mean_and_var", "params": ["a", "b"]}
            },
            n=[5],
            replications=10,
        )

    one = checkpoint.fingerprint(plan(spec({"a": 0.0, "b": 1.0}))[0])
    two = checkpoint.fingerprint(plan(spec({"b": 1.0, "a": 0.0}))[0])
    assert one != two


def test_replay_without_chunk_files_warns_instead_of_refusing(tmp_path):
    from mlesim.replay import replay

    spec = study_spec(_config(), n=[5], replications=20)
    run_pipeline(spec, tmp_path, progress=False)
    for chunk in chunk_files(tmp_path / "chunks"):  # deleted to save space
        chunk.unlink()
    with pytest.warns(UserWarning, match="is not there"):
        back = replay(tmp_path, {"n": 5}, "mle", 3)
    assert back.x.shape == (5,)


def test_with_compare_common_the_failure_line_names_only_real_failures():
    summary = pd.DataFrame(
        {
            "n": [1, 1],
            "estimator": ["mle", "s2"],
            "param": ["sigma2"] * 2,
            "n_rep": [0, 0],
            "n_failed": [50, 50],
        }
    )
    failures = pd.DataFrame(
        {"n": [1] * 50, "estimator": ["s2"] * 50, "replicate": range(50), "reason": ["0/0"] * 50}
    )
    line = warning_line(failures, summary, ["n"])
    assert "n=1 s2/sigma2" in line and "mle" not in line.split("No successful fit")[1]


def test_a_negative_binomial_model_of_poisson_data_has_size_star_infinite():
    scen = make_scenario("poisson", {"lam": 3.0}, model="negative_binomial", n=20)
    target = scen.target()
    assert target[1] == math.inf and scen.edge_params(target) == ["size"]
    assert abs(target[0] - 3.0) < 1e-9


def test_constant_estimates_have_a_zero_empse_mcse():
    assert empse(np.full(200, 0.3)) == (0.0, 0.0)


def test_a_plugins_converged_flags_must_be_booleans():
    est = make_estimator(
        "p",
        {"_target_": "tests.plugin_examples.flags_as_text", "params": ["mu"]},
        get_family("normal"),
    )
    with pytest.raises(PluginContractError, match="converged must be booleans"):
        fit_safely(est, np.zeros((4, 3)))


def test_the_python_api_raises_config_errors():
    for overrides, key in ((["bogus=1"], "bogus"), (["truth=nonexistent"], "truth")):
        with pytest.raises(ConfigError) as info:
            mlesim.run(None, overrides)
        assert info.value.key == key
    with warnings.catch_warnings():
        warnings.simplefilter("error")


@pytest.mark.parametrize(
    ("truth", "params", "model"),
    [
        ("gamma", {"shape": 2.0, "rate": 1.0}, "poisson"),
        ("exponential", {"rate": 1.0}, "bernoulli"),
    ],
)
def test_a_discrete_model_of_continuous_data_has_no_pseudo_true_value(truth, params, model):
    scen = make_scenario(truth, params, model=model)
    with pytest.raises(ConfigError) as info:
        scen.check_estimand()
    assert info.value.key == "model" and "no pseudo-true value" in info.value.message


def test_a_callable_workers_cannot_receive_is_a_config_error(monkeypatch, helpers):
    """Where helpers are spawned (not Linux), a callable that cannot be pickled is
    refused for the key that asks for helpers; forked helpers (Linux) take it as it is."""
    import threading

    from mlesim import backends

    lock = threading.Lock()  # unpicklable, even by value

    def held(x):
        with lock:
            return x.mean(axis=1)

    config = {
        "estimators": {"e": {"_target_": held, "params": ["mu"]}},
        "n": [5],
        "replications": 100,
        "runner": {"n_jobs": 2, "chunk_size": 50, "progress": False},
    }
    if backends.FORK:
        forked = mlesim.run(config=config).replicates
        assert helpers  # the chunks were shared with a forked helper
        config["runner"]["n_jobs"] = 1
        pd.testing.assert_frame_equal(forked, mlesim.run(config=config).replicates)
        config["runner"]["n_jobs"] = 2
    monkeypatch.setattr(backends, "FORK", False)
    with pytest.raises(ConfigError) as info:
        mlesim.run(config=config)
    assert info.value.key == "runner.n_jobs"
