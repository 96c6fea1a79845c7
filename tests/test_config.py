"""Tests of mlesim.config: composing the shipped tree through Hydra, value checks
(each error names its key), the schema, and the design grid."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import compose_config
from hydra.errors import ConfigCompositionException

import mlesim.__main__ as cli
from mlesim.errors import ConfigError
from mlesim.study import validate

BAD = [
    (["truth.family=nosuch"], "truth.family"),
    (["model=nosuch"], "model"),
    (["estimators.mle.kind=nosuch"], "estimators.mle.kind"),
    (["+estimators.other.fixed.mu=0"], "estimators.other.kind"),  # missing kind
    (["+estimators.mle.nosuch=1"], "estimators.mle.nosuch"),
    (["truth.params.sigma2=0"], "truth.params.sigma2"),
    (["truth.params.sigma2=-1"], "truth.params.sigma2"),
    (["+truth.params.tau=1"], "truth.params.tau"),
    (["truth=bernoulli", "truth.params.p=1.5"], "truth.params.p"),
    (["truth=bernoulli", "truth.params.p=0"], "truth.params.p"),
    (["truth=bernoulli", "truth.params.p=1"], "truth.params.p"),
    (["truth=poisson", "truth.params.lam=-1"], "truth.params.lam"),
    (["truth=exponential", "truth.params.rate=0"], "truth.params.rate"),
    (["n=[0]"], "n"),
    (["n=[10,0]"], "n"),
    (["n=[]"], "n"),
    (["n=[5,5]"], "n"),
    (["n=[2.5]"], "n"),
    (["replications=1"], "replications"),
    (["replications=0"], "replications"),
    (["seed=-1"], "seed"),
    (["confidence=1.0"], "confidence"),
    (["confidence=0"], "confidence"),
    (["confidence=1.5"], "confidence"),
    (["estimand=nosuch"], "estimand"),
    (["runner.backend=nosuch"], "runner.backend"),
    (["runner.n_jobs=0"], "runner.n_jobs"),
    (["runner.n_jobs=-2"], "runner.n_jobs"),
    (["runner.chunk_size=0"], "runner.chunk_size"),
    (["runner.max_chunk_mb=0"], "runner.max_chunk_mb"),
    (["+design.truth.params.nosuch=[1,2]"], "design.truth.params.nosuch"),
    (["+design.nosuch=[1,2]"], "design.nosuch"),
    (["+design.truth.params.mu=[]"], "design.truth.params.mu"),
    (["+design.truth.params.mu=[1,1]"], "design.truth.params.mu"),
    (["+design.truth.params.mu=1"], "design.truth.params.mu"),
    (["+design.truth.params=[1,2]"], "design.truth.params"),
    (["+design.n=[1,2]"], "design.n"),
    (["+design.seed=[1,2]"], "design.seed"),
    (["+design.truth.params.sigma2=[1,-1]"], "design.truth.params.sigma2"),  # bad grid value
    (["study=nosuch"], "study"),
    (["+analysis.nosuch=1"], "analysis.nosuch"),
    (["estimand=truth", "model=exponential"], "estimand"),
    (["contamination=outliers", "contamination.fraction=1.0"], "contamination.fraction"),
    (["contamination=outliers", "contamination.params.sigma2=0"], "contamination.params.sigma2"),
]


@pytest.mark.parametrize(("overrides", "key"), BAD, ids=[" ".join(o) for o, _ in BAD])
def test_invalid_value_names_its_key(overrides, key):
    cfg = compose_config(overrides)
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    assert info.value.key == key, str(info.value)
    assert str(info.value).startswith(f"{key}: ")


def test_error_messages_list_the_allowed_values():
    for overrides, allowed in [
        (["truth.family=nosuch"], ["bernoulli", "exponential", "normal", "poisson"]),
        (["runner.backend=nosuch"], ["loky", "sequential"]),
        (["estimand=nosuch"], ["auto", "truth", "pseudo_true"]),
        (["study=nosuch"], ["summary"]),
        (["estimators.mle.kind=nosuch"], ["mle", "map", "median"]),
    ]:
        with pytest.raises(ConfigError) as info:
            validate(compose_config(overrides))
        assert all(word in info.value.message for word in allowed), info.value.message


@pytest.mark.parametrize(
    "overrides",
    [["nosuch=1"], ["runner.chunk_size=abc"], ["runner.nosuch=1"], ["seed=abc"], ["truth=nosuch"]],
)
def test_schema_rejects_unknown_keys_and_wrong_types_at_compose(overrides):
    with pytest.raises(ConfigCompositionException):
        compose_config(overrides)


def test_default_config_is_valid():
    spec = validate(compose_config())
    assert spec["truth"] == {"family": "normal", "params": {"mu": 0.0, "sigma2": 1.0}}
    assert spec["estimators"] == {"mle": {"kind": "mle"}}
    assert [c.factors for c in spec.conditions] == [{"n": 10}, {"n": 100}, {"n": 1000}]
    assert spec.factor_names == ["n"]


def test_valid_overrides_reach_the_spec():
    spec = validate(
        compose_config(
            [
                "truth=poisson",
                "truth.params.lam=2.5",
                "n=[3,4]",
                "replications=2",
                "confidence=0.9",
                "runner.n_jobs=-1",
                "+estimators.avg={kind: mean}",
            ]
        )
    )
    assert spec["truth"] == {"family": "poisson", "params": {"lam": 2.5}}
    assert spec["n"] == [3, 4] and spec["replications"] == 2 and spec["confidence"] == 0.9
    assert list(spec["estimators"]) == ["mle", "avg"]


def test_a_single_sample_size_is_a_list():
    assert validate(compose_config(["n=7"]))["n"] == [7]


def test_design_grid_crosses_n_with_every_factor():
    spec = validate(
        compose_config(
            [
                "truth=bernoulli",
                "n=[10,20]",
                "+design.truth.params.p=[0.1,0.5,0.9]",
                "+design.confidence=[0.9,0.95]",
            ]
        )
    )
    assert spec.factor_names == ["n", "truth.params.p", "confidence"]
    assert len(spec.conditions) == 2 * 3 * 2
    assert [c.index for c in spec.conditions] == list(range(12))
    for cond in spec.conditions:
        assert cond.config["truth"]["params"]["p"] == cond.factors["truth.params.p"]
        assert cond.config["confidence"] == cond.factors["confidence"]
    assert spec.conditions[0].factors == {"n": 10, "truth.params.p": 0.1, "confidence": 0.9}
    assert spec.conditions[-1].factors == {"n": 20, "truth.params.p": 0.9, "confidence": 0.95}


PRESETS = sorted(p.stem for p in (Path(cli.config_dir()) / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS)
def test_every_experiment_preset_is_valid(preset):
    spec = validate(compose_config([f"experiment={preset}"]))
    assert "mle" in spec["estimators"]  # every preset labels its MLE `mle` (issue 2)


@pytest.mark.parametrize(
    "preset", sorted(p.stem for p in (Path(cli.config_dir()) / "experiment").glob("*.yaml"))
)
def test_each_condition_gets_its_own_copy_of_the_configuration(preset):
    """build_conditions copies the validated tree itself (OmegaConf's create and
    to_container took ~2 ms per condition): the same values and container types as
    OmegaConf's copy, and no dict or list shared with the original."""
    from omegaconf import OmegaConf

    from mlesim.config import _tree_copy

    spec = validate(compose_config([f"experiment={preset}"]))
    config = {**spec.config, "extra": (1, [2.0, None], {"a": (3,)})}
    copied = _tree_copy(config)
    assert copied == OmegaConf.to_container(OmegaConf.create(config))
    assert copied["extra"] == [1, [2.0, None], {"a": [3]}]

    def containers(node, out):
        if isinstance(node, dict | list):
            out.add(id(node))
            for value in node.values() if isinstance(node, dict) else node:
                containers(value, out)
        return out

    assert not containers(copied, set()) & containers(config, set())
