"""Families, estimators and studies register themselves and declare what they offer;
nothing lists them by hand and nothing probes them with hasattr."""

from __future__ import annotations

import numpy as np
import pytest

import mlesim.learners  # noqa: F401  (registers the learning families' kinds)
from mlesim.estimators import ESTIMATORS, Estimator, PluginEstimator, make_estimator
from mlesim.families import FAMILIES, get_family
from mlesim.families.base import ABILITIES, REGISTRY, Domain, Family
from mlesim.studies import STUDIES

METHODS = {"moments": "moments_estimate", "projection": "project_moments"}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_declared_abilities_are_the_implemented_ones(name):
    cls = FAMILIES[name]
    assert set(METHODS) == set(ABILITIES)
    for ability, method in METHODS.items():
        implemented = getattr(cls, method) is not getattr(Family, method)
        assert (ability in cls.provides) == implemented, (name, ability)


def test_a_new_family_is_one_class():
    class Shifted(Family):
        name = "shifted_test_only"
        params = ("mu",)
        domains = {"mu": Domain("real")}

    try:
        assert FAMILIES["shifted_test_only"] is Shifted
        assert isinstance(get_family("shifted_test_only"), Shifted)
        with pytest.raises(NotImplementedError, match="does not provide 'moments'"):
            Shifted().moments_estimate(np.zeros((1, 3)))
    finally:
        del REGISTRY["shifted_test_only"]


def test_an_undeclared_ability_is_refused_at_class_definition():
    with pytest.raises(TypeError, match="unknown"):

        class Bad(Family):
            provides = frozenset({"telepathy"})


def test_a_new_estimator_kind_is_one_class():
    class Twice(Estimator):
        kind = "twice_test_only"

        def _fit(self, x):
            est = 2 * x.mean(axis=1, keepdims=True)
            return est, np.full_like(est, np.nan), np.zeros(x.shape[0], dtype=int)

    try:
        est = make_estimator("t", {"kind": "twice_test_only"}, get_family("poisson"))
        assert isinstance(est, Twice) and est.fit(np.ones((2, 3))).params_[0, 0] == 2.0
    finally:
        del ESTIMATORS["twice_test_only"]


def test_the_registries_hold_the_built_ins():
    assert {"bernoulli", "poisson", "normal", "student_t", "negative_binomial"} <= set(FAMILIES)
    assert {
        "mle",
        "map",
        "mean",
        "median",
        "moments",
        "unbiased_variance",
        "huber",
        "tukey",
        "trimmed_mean",
        "winsorized_mean",
        "loss",
        "ridge",
        "lasso",
        "firth",
        "hodges_lehmann",
    } == set(ESTIMATORS)
    assert "plugin" not in ESTIMATORS and PluginEstimator.register is False
    assert set(STUDIES) == {
        "summary",
        "variance_bias",
        "coin_flip",
        "consistency",
        "crlb_efficiency",
        "asymptotic_normality",
        "misspecification",
        "map_vs_mle",
        "robustness",
        "sensitivity_curve",
        "loss_equivalence",
        "regularisation",
        "class_imbalance",
        "cross_entropy_kl",
        "mixture_collapse",
    }
