"""Shared fixtures: a seeded generator, Hydra composition, validated specs, scenarios,
a time limit, and Monte Carlo checks.

Hypothesis runs derandomized (a fixed example sequence, no example database), so the
property tests are as reproducible as the fixed-seed ones.
"""

from __future__ import annotations

import copy
import logging
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hypothesis import settings
from omegaconf import DictConfig

import mlesim.__main__ as cli
from mlesim.config import StudySpec, register_schema
from mlesim.scenarios import Scenario
from mlesim.study import validate


def pytest_sessionstart(session: pytest.Session) -> None:
    """Where Python writes no bytecode (``PYTHONDONTWRITEBYTECODE``), compile mlesim's
    modules once, so that the suite's commands (``python -m mlesim`` in subprocesses) do
    not each compile its ~17,000 lines again; elsewhere their first import does it."""
    if sys.flags.dont_write_bytecode:
        import compileall

        compileall.compile_dir(Path(cli.__file__).parent, quiet=1)


#: Monte Carlo tolerance (DESIGN.md): |estimate − theory| < Z · MCSE
Z = 4.0

settings.register_profile("mlesim", derandomize=True, database=None)
settings.load_profile("mlesim")


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh generator with a fixed seed for each test."""
    return np.random.default_rng(20260101)


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """Compose ``config`` from the shipped config tree with command-line ``overrides``."""
    register_schema()
    with initialize_config_dir(version_base="1.3", config_dir=cli.config_dir()):
        return compose("config", overrides=list(overrides))


@pytest.fixture
def compose_cfg() -> Callable[..., DictConfig]:
    """``compose_cfg(*overrides)`` → the composed (unvalidated) configuration."""
    return lambda *overrides: compose_config(overrides)


def study_spec(base: dict, runner: dict | None = None, **changes: Any) -> StudySpec:
    """A validated StudySpec: a copy of ``base`` with ``runner`` merged into its
    ``runner`` and the other top-level keys replaced by ``changes``."""
    config = copy.deepcopy(base)
    config["runner"] = {**config.get("runner", {}), **(runner or {})}
    config.update(changes)
    return validate(config)


@pytest.fixture
def helpers(monkeypatch) -> list:
    """Helpers that start with the computation (spawned ones too) and are never retired,
    so that a small study's parallel run really shares its chunks (where helpers are
    spawned, a pool left alone does them all in the main process). The list collects
    how many chunks were shared with the helpers in each run: a test asserts it is not
    empty."""
    from mlesim import backends

    monkeypatch.setattr(backends, "SPAWN_START", 0.0)
    monkeypatch.setattr(backends, "KEEP_GAIN", 0.0)
    sent: list = []
    share = backends.Pool._share

    def counted(self, func, items, claims, pace):
        sent.append(claims.front_back()[1] + 1)  # the positions shared with helpers
        return share(self, func, items, claims, pace)

    monkeypatch.setattr(backends.Pool, "_share", counted)
    return sent


@pytest.fixture
def alarm() -> Iterator[Callable[[int], Any]]:
    """``alarm(seconds)``: fail a test that runs longer instead of hanging CI."""

    def _raise(signum, frame):
        raise TimeoutError("test took too long")

    previous = signal.signal(signal.SIGALRM, _raise)
    yield signal.alarm
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def make_scenario(
    family: str,
    params: dict[str, Any],
    n: int = 10,
    model: str | None = None,
    contamination: dict | None = None,
    estimand: str = "auto",
    estimators: dict | None = None,
) -> Scenario:
    """A Scenario from keyword arguments (the plain-config form the engine uses)."""
    config = {
        "truth": {"family": family, "params": params},
        "model": model,
        "contamination": contamination,
        "estimand": estimand,
        "estimators": estimators or {"mle": {"kind": "mle"}},
    }
    return Scenario.from_config(config, n=n)


def assert_mc_close(values: np.ndarray, theory: float, what: str = "mean") -> None:
    """|mean(values) − theory| < Z · MCSE with MCSE = sd(values) / √R."""
    values = np.asarray(values, dtype=float)
    r = values.size
    mcse = values.std(ddof=1) / np.sqrt(r)
    diff = values.mean() - theory
    assert abs(diff) < Z * mcse, (
        f"{what}: MC mean {values.mean():.6g} vs theory {theory:.6g} "
        f"(diff {diff:.3g}, MCSE {mcse:.3g}, R={r})"
    )


def variance_mcse(values: np.ndarray) -> tuple[float, float]:
    """Sample variance of ``values`` and its MCSE sqrt((m4 − s⁴) / R)."""
    values = np.asarray(values, dtype=float)
    dev = values - values.mean()
    var = float(np.mean(dev**2) * values.size / (values.size - 1))
    m4 = float(np.mean(dev**4))
    return var, float(np.sqrt(max(m4 - var**2, 0.0) / values.size))


def run_in_process(args: list[str], cwd: Path, monkeypatch, capsys) -> tuple[int, str, str]:
    """Run ``mlesim <args>`` through :func:`mlesim.__main__.main` in this process."""
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["mlesim", *args])
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")  # what main() sets; undone after the test
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    code: int | str | None = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = exc.code
    finally:
        GlobalHydra.instance().clear()
        for handler in set(root.handlers) - set(handlers):  # Hydra's job logging
            handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
    out, err = capsys.readouterr()
    return (code if isinstance(code, int) else 1), out, err
