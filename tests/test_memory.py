"""Memory: the engine's working-set constant is an honest upper bound (measured with
tracemalloc for every family and estimator), and the replicates table is compact.
The 10^9-draw figure is benchmarks/bench_memory.py's job, not a test's."""

from __future__ import annotations

import tracemalloc

import pytest

from mlesim.config import Condition
from mlesim.engine import WORKING_BYTES, Task, run_task, simulate
from mlesim.errors import ConfigError
from mlesim.estimators import ESTIMATORS
from mlesim.families import FAMILIES
from mlesim.scenarios import Scenario
from mlesim.study import validate

#: a typical parameter of each family (a new family needs a line here)
PARAMS = {
    "bernoulli": {"p": 0.3},
    "poisson": {"lam": 2.0},
    "exponential": {"rate": 2.0},
    "normal": {"mu": 0.0, "sigma2": 1.0},
    "gamma": {"shape": 2.0, "rate": 1.0},
    "weibull": {"shape": 1.5, "scale": 1.0},
    "student_t": {"mu": 0.0, "sigma": 1.0, "nu": 5.0},
    "cauchy": {"mu": 0.0, "sigma": 1.0},
    "laplace": {"mu": 0.0, "b": 1.0},
    "lognormal": {"mu": 0.0, "sigma2": 1.0},
    "beta": {"a": 2.0, "b": 3.0},
    "negative_binomial": {"mu": 3.0, "size": 2.0},
}
ROWS, N = 100, 400
GROSS = {"family": "normal", "params": {"mu": 0.0, "sigma2": 100.0}, "fraction": 0.05}


def learning_config(family: str) -> dict:
    """A family whose data are not i.i.d. scalars: its shipped truth and every variant
    of its estimators from the contract test."""
    from test_contract import LEARNER_SPECS, TRUTH_CONFIGS

    specs = {
        f"{k}_{label}": spec
        for (f, k), v in LEARNER_SPECS.items()
        if f == family
        for label, spec in v
    }
    return {
        "truth": dict(TRUTH_CONFIGS[family]),
        "model": None,
        "contamination": None,
        "estimand": "auto",
        "estimators": specs,
    }


def config(family: str, contamination: dict | None = None) -> dict:
    if family not in PARAMS:
        return learning_config(family)
    kinds = {}
    for kind in ESTIMATORS:
        spec = {"truth": {"family": family, "params": PARAMS[family]}, "model": None}
        spec |= {"contamination": None, "estimand": "auto", "estimators": {kind: {"kind": kind}}}
        try:
            Scenario.from_config(spec, n=N).estimators()
        except ConfigError:
            continue  # this estimator does not apply to the family
        kinds[kind] = {"kind": kind}
    return {
        "truth": {"family": family, "params": PARAMS[family]},
        "model": None,
        "contamination": contamination,
        "estimand": "auto",
        "estimators": kinds,
    }


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_chunk_stays_within_the_working_set_constant(family):
    """Peak bytes allocated while one chunk is simulated and every applicable estimator
    fitted, per observation, against engine.WORKING_BYTES (which sizes the chunks)."""
    scenario = Scenario.from_config(config(family), n=N) if family not in PARAMS else None
    if scenario is None and family not in PARAMS:
        pytest.fail(f"add a typical parameter of {family!r} to PARAMS")
    width = 1 if scenario is None else scenario.truth.width  # numbers per observation
    cases = [config(family)]
    if family == "normal":
        cases.append(config(family, GROSS))  # contamination draws two more arrays
    for cfg in cases:
        task = Task(Condition(0, {"n": N}, cfg, Scenario.from_config(cfg, n=N)), 0, 0, ROWS, 1)
        tracemalloc.start()
        try:
            run_task(task)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        per_obs = peak / (ROWS * N * width)
        assert per_obs <= WORKING_BYTES, (
            f"{family} ({', '.join(cfg['estimators'])}): {per_obs:.0f} bytes per observation "
            f"> WORKING_BYTES = {WORKING_BYTES}"
        )


def test_the_replicates_table_is_compact():
    spec = validate(
        {
            "truth": {"family": "normal", "params": {"mu": 0.0, "sigma2": 1.0}},
            "n": [5],
            "replications": 2000,
            "estimators": {"mle": {"kind": "mle"}, "mean": {"kind": "mean"}},
        }
    )
    table = simulate(spec, progress=False)
    assert table["estimator"].dtype == "category" and table["param"].dtype == "category"
    assert list(table["estimator"].cat.categories) == ["mle", "mean"]
    assert list(table["param"].cat.categories) == ["mu", "sigma2"]
    per_row = table.memory_usage(deep=True, index=False).sum() / len(table)
    assert per_row < 40  # n, replicate, estimate, se: 8 bytes each; codes and flag: 1
