"""Configuration: the typed schema registered with Hydra, and value checks.

The schema (:class:`MlesimConf`) catches unknown keys and wrong types when Hydra
composes the config; :func:`validate` then checks values (domains, ranges, names)
and returns a :class:`StudySpec`, raising :class:`~mlesim.errors.ConfigError` with
the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from mlesim.errors import ConfigError

BACKENDS = ("loky", "threading", "sequential", "dask")
ESTIMANDS = ("auto", "truth", "pseudo_true")


@dataclass
class TruthConf:
    family: str = "normal"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class ContaminationConf:
    family: str = "normal"
    params: dict[str, Any] = field(default_factory=dict)
    fraction: float = 0.05


@dataclass
class DaskConf:
    address: str | None = None
    n_workers: int = 2


@dataclass
class RunnerConf:
    n_jobs: int = 1
    backend: str = "loky"
    chunk_size: int | None = None
    max_chunk_mb: float = 64.0
    progress: bool | None = None
    resume: bool = True
    dask: DaskConf = field(default_factory=DaskConf)


@dataclass
class MlesimConf:
    name: str = "study"
    study: str = "summary"
    seed: int = 2026
    replications: Any = 1000
    n: Any = field(default_factory=lambda: [10, 100, 1000])
    truth: TruthConf = field(default_factory=TruthConf)
    model: str | None = None
    contamination: ContaminationConf | None = None
    estimand: str = "auto"
    estimators: dict[str, Any] = field(default_factory=dict)
    design: dict[str, Any] = field(default_factory=dict)
    confidence: float = 0.95
    analysis: dict[str, Any] = field(default_factory=dict)
    runner: RunnerConf = field(default_factory=RunnerConf)


def register_schema() -> None:
    """Register the schema as ``mlesim_schema`` in Hydra's ConfigStore (idempotent)."""
    ConfigStore.instance().store(name="mlesim_schema", node=MlesimConf)


@dataclass(frozen=True)
class Condition:
    """One cell of the design grid.

    ``factors`` maps column names (``n`` first, then dotted design keys) to values;
    ``config`` is the full plain configuration with the design values applied.
    """

    index: int
    factors: dict
    config: dict


@dataclass(frozen=True)
class StudySpec:
    """A validated study: plain data, picklable, the input of :mod:`mlesim.engine`."""

    config: dict
    conditions: tuple[Condition, ...]

    @property
    def factor_names(self) -> list[str]:
        return list(self.conditions[0].factors)

    def __getitem__(self, key: str) -> Any:
        return self.config[key]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def check_int(v: Any, key: str, low: int) -> int:
    """``v`` as an int ≥ ``low`` or ConfigError."""
    if not _is_int(v) or v < low:
        raise ConfigError(key, f"must be an integer >= {low}, got {v!r}")
    return v


def check_sizes(n: Any) -> list[int]:
    """The list of sample sizes: a non-empty list of distinct integers ≥ 1."""
    values = [n] if _is_int(n) else n
    if not isinstance(values, list) or not values:
        raise ConfigError("n", f"must be a non-empty list of integers >= 1, got {n!r}")
    for v in values:
        check_int(v, "n", 1)
    if len(set(values)) != len(values):
        raise ConfigError("n", f"sample sizes must be distinct, got {values}")
    return list(values)


def flatten(mapping: dict, prefix: str = "") -> dict[str, Any]:
    """Nested mapping → {dotted.key: leaf}; lists are leaves."""
    out = {}
    for k, v in mapping.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def get_path(config: dict, key: str) -> Any:
    """Value at dotted ``key``; KeyError if absent."""
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def set_path(config: dict, key: str, value: Any) -> None:
    """Set dotted ``key`` in nested dict ``config`` (its parents must exist)."""
    *parents, last = key.split(".")
    node = config
    for part in parents:
        node = node[part]
    node[last] = value


def check_design(config: dict) -> dict[str, list]:
    """Validate ``design``: dotted keys of existing scalar settings → non-empty lists."""
    design = flatten(config.get("design") or {})
    for key, values in design.items():
        dkey = f"design.{key}"
        if key == "n":
            raise ConfigError(dkey, "sample sizes go in the top-level 'n' list")
        if key.split(".")[0] in ("design", "runner", "seed", "replications", "name", "study"):
            raise ConfigError(
                dkey,
                "cannot vary this key; allowed: truth.*, contamination.*, "
                "estimators.*, confidence, analysis.*",
            )
        try:
            current = get_path(config, key)
        except KeyError:
            raise ConfigError(dkey, f"no such config key {key!r} to vary") from None
        if isinstance(current, dict | list):
            raise ConfigError(dkey, f"{key!r} is not a single value and cannot be varied")
        if not isinstance(values, list) or not values:
            raise ConfigError(dkey, f"must be a non-empty list of values, got {values!r}")
        if len(set(map(repr, values))) != len(values):
            raise ConfigError(dkey, f"values must be distinct, got {values}")
    return design


def check_runner(runner: dict) -> None:
    """Validate ``runner.*``."""
    n_jobs = runner["n_jobs"]
    if not _is_int(n_jobs) or (n_jobs < 1 and n_jobs != -1):
        raise ConfigError(
            "runner.n_jobs", f"must be an integer >= 1 or -1 (all cores), got {n_jobs!r}"
        )
    if runner["backend"] not in BACKENDS:
        raise ConfigError(
            "runner.backend",
            f"unknown backend {runner['backend']!r}; allowed: {', '.join(BACKENDS)}",
        )
    if runner["chunk_size"] is not None:
        check_int(runner["chunk_size"], "runner.chunk_size", 1)
    mb = runner["max_chunk_mb"]
    if not _is_number(mb) or not mb > 0:
        raise ConfigError("runner.max_chunk_mb", f"must be a number > 0, got {mb!r}")


def check_scalars(config: dict) -> None:
    """Validate the top-level scalar keys."""
    check_int(config["seed"], "seed", 0)
    check_int(config["replications"], "replications", 2)
    level = config["confidence"]
    if not _is_number(level) or not 0 < level < 1:
        raise ConfigError("confidence", f"must be a number in (0, 1), got {level!r}")
    if config["estimand"] not in ESTIMANDS:
        raise ConfigError(
            "estimand", f"unknown {config['estimand']!r}; allowed: {', '.join(ESTIMANDS)}"
        )
    if not isinstance(config["estimators"], dict) or not config["estimators"]:
        raise ConfigError("estimators", "must map at least one label to {kind: ...}")


def build_conditions(config: dict, design: dict[str, list]) -> tuple[Condition, ...]:
    """The design grid: every n crossed with every combination of design values."""
    keys = list(design)
    out = []
    for i, (n, *values) in enumerate(itertools.product(config["n"], *design.values())):
        cfg = OmegaConf.to_container(OmegaConf.create(config))
        for key, value in zip(keys, values, strict=True):
            set_path(cfg, key, value)
        factors = {"n": n, **dict(zip(keys, values, strict=True))}
        out.append(Condition(i, factors, cfg))
    return tuple(out)


def validate(cfg: DictConfig | dict) -> StudySpec:
    """Check every value of a composed config and expand the design grid.

    Raises
    ------
    ConfigError
        The first offending key, with what is allowed.
    """
    from mlesim.scenarios import Scenario
    from mlesim.studies import check_study

    if isinstance(cfg, DictConfig):
        config = OmegaConf.to_container(cfg, resolve=True)
    else:
        config = OmegaConf.to_container(OmegaConf.merge(OmegaConf.structured(MlesimConf), cfg))
    config.pop("hydra", None)
    allowed = [f.name for f in dataclasses.fields(MlesimConf)]
    for key in config:
        if key not in allowed:
            raise ConfigError(key, f"unknown key; allowed: {', '.join(allowed)}")
    check_scalars(config)
    config["n"] = check_sizes(config["n"])
    check_runner(config["runner"])
    check_study(config)
    design = check_design(config)
    config["design"] = design
    conditions = build_conditions(config, design)
    for cond in conditions:
        Scenario.from_config(cond.config, n=cond.factors["n"]).estimators()
    return StudySpec(config, conditions)
