"""Run a study from Python — a notebook, a script, another project's tests — with the same
configuration system and the same results as the command line.

>>> import mlesim
>>> res = mlesim.run("variance_bias", overrides=["n=[5,10]", "replications=200"])
>>> res.summary.loc[0, ["n", "estimator", "param"]].tolist()
[5, 'mle', 'sigma2']

``overrides`` are the command line's ``key=value`` strings; ``config`` a mapping of
top-level keys that replace the composed ones (its estimators and generators may be
Python callables defined right there — they work with any ``runner.n_jobs`` on Linux,
where helper processes are forked, and elsewhere with more workers where they can be
pickled). Nothing is written unless ``run_dir`` is given; then the run
directory is the command line's (summary.csv, replicates.parquet, figures, report.md).
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from mlesim.config import StudySpec, register_schema
from mlesim.errors import ConfigError
from mlesim.plugins import TARGET, register_local
from mlesim.study import validate


@dataclass
class Results:
    """A finished study.

    Attributes
    ----------
    summary : summary.csv's table (one row per cell × estimator × parameter)
    replicates : replicates.parquet's table (one row per replicate × estimator × parameter)
    failures : failures.csv's table;  extended : summary_extended.csv's table
    spec : the compiled study;  run_dir : where its files are, or None (nothing written)
    """

    summary: pd.DataFrame
    replicates: pd.DataFrame
    failures: pd.DataFrame
    extended: pd.DataFrame
    spec: StudySpec
    run_dir: Path | None = None
    _figures: list[Path] = field(default_factory=list, repr=False)

    @property
    def config(self) -> dict:
        """The validated configuration (plain containers)."""
        return self.spec.config

    def figures(self, directory: str | Path | None = None) -> list[Path]:
        """The study's figures as PNG files (drawn into ``directory``, the run directory's
        ``figures/``, or a temporary directory); in Jupyter show one with
        ``IPython.display.Image(path)``."""
        from mlesim.studies import render_study

        if self._figures and directory is None:
            return list(self._figures)
        base = self.run_dir / "figures" if self.run_dir is not None else None
        out = Path(directory or base or tempfile.mkdtemp(prefix="mlesim-figures-"))
        drawn, _ = render_study(self.spec, self.replicates, self.summary, out)
        self._figures = [Path(p) for p, _ in drawn]
        return list(self._figures)

    def _repr_html_(self) -> str:
        shown = [
            c
            for c in (*self.spec.factor_names, "estimator", "param", "true_value", "n_rep")
            if c in self.summary
        ]
        shown += ["bias", "bias_mcse", "empse", "rmse", "coverage", "efficiency"]
        cfg = self.spec.config
        head = (
            f"<p><b>mlesim</b> {cfg['name']} (study <code>{cfg['study']}</code>): "
            f"{cfg['replications']} replications per cell, seed {cfg['seed']}</p>"
        )
        return head + self.summary[shown].to_html(index=False, float_format="{:.4g}".format)

    def __repr__(self) -> str:
        cfg = self.spec.config
        return (
            f"Results({cfg['name']}: {len(self.summary)} summary rows, "
            f"{len(self.replicates)} replicate rows, {len(self.failures)} failures)"
        )


def compose_config(experiment: str | None = None, overrides: Sequence[str] = ()) -> dict:
    """The configuration the command line would compose, as plain containers; a bad
    override raises :class:`ConfigError` with the command line's one line."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from mlesim.__main__ import config_dir
    from mlesim.error_lines import hydra_error_line

    register_schema()
    wanted = ([f"experiment={experiment}"] if experiment else []) + list(overrides)
    try:
        with initialize_config_dir(version_base="1.3", config_dir=config_dir()):
            cfg = compose("config", overrides=wanted)
        return OmegaConf.to_container(cfg, resolve=True)
    except (HydraException, OmegaConfBaseException) as err:  # as the command line says it
        key, _, message = hydra_error_line(err).partition(": ")
        raise ConfigError(key, message or key) from None


def _hand_over(value: Any) -> Any:
    """``config`` with every callable ``_target_`` replaced by its ``local:`` name."""
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            out[k] = register_local(v) if k == TARGET and callable(v) else _hand_over(v)
        return out
    if isinstance(value, list | tuple):
        return [_hand_over(v) for v in value]
    return value


def run(
    experiment: str | None = None,
    overrides: Sequence[str] = (),
    *,
    config: Mapping[str, Any] | None = None,
    run_dir: str | Path | None = None,
    progress: bool = False,
) -> Results:
    """Run a study and return its :class:`Results`.

    Parameters
    ----------
    experiment : a preset of ``conf/experiment`` (as ``experiment=<name>``), or None
    overrides : command-line overrides, e.g. ``["n=[5,10]", "replications=2000"]``
    config : top-level keys that replace the composed ones, e.g.
        ``{"estimators": {...}, "truth": {...}}``; a ``_target_`` may be a Python
        callable (an estimator or a generator defined in the notebook)
    run_dir : write the run directory there (summary.csv, figures, report.md, chunks
        for resume), as the command line does; None writes nothing
    progress : show a progress bar

    Raises
    ------
    ConfigError
        A bad configuration, naming the key and what is allowed.
    """
    from mlesim.engine import run_study
    from mlesim.pipeline import run_pipeline
    from mlesim.summarise import split_summary, summarise

    composed = compose_config(experiment, overrides)
    composed.pop("hydra", None)
    composed.update(_hand_over(dict(config or {})))  # a given key replaces the composed one
    spec = validate(composed)
    if run_dir is not None:
        out = run_pipeline(spec, Path(run_dir), progress=progress)
        extended = pd.read_csv(Path(run_dir) / "summary_extended.csv")
        figures = [Path(p) for p, _ in out["figures"]]
        return Results(
            out["summary"],
            out["replicates"],
            out["failures"],
            extended,
            spec,
            Path(run_dir),
            figures,
        )
    try:
        sim = run_study(spec, progress=progress)
    except pickle.PicklingError as err:  # a session's callable that workers cannot get
        raise ConfigError(
            "runner.n_jobs",
            f"a callable cannot be sent to worker processes ({err}); allowed: "
            "runner.n_jobs=1, or a callable defined in an importable module",
        ) from None
    extended = summarise(spec, sim.replicates, extended=True)
    summary = split_summary(extended, spec.factor_names)
    return Results(summary, sim.replicates, sim.failures, extended, spec)
