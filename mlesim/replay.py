"""Replay: regenerate one replicate of a finished run from its seed and refit an
estimator on it — the way to look at a data set that made a fit fail (failures.csv
says which: the design factors, ``estimator`` and ``replicate``)."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from mlesim.checkpoint import ChunkStore
from mlesim.config import StudySpec
from mlesim.engine import chunk_data, locate
from mlesim.failures import fit_safely
from mlesim.study import validate


def read_spec(run_dir: str | Path) -> StudySpec:
    """The validated study of a run directory: from ``chunks/config.json`` (written by
    every run), else Hydra's ``.hydra/config.yaml``."""
    run_dir = Path(run_dir)
    saved, composed = run_dir / "chunks" / "config.json", run_dir / ".hydra" / "config.yaml"
    if saved.is_file():
        config = json.loads(saved.read_text(encoding="utf-8"))
    elif composed.is_file():
        config = OmegaConf.to_container(OmegaConf.load(composed), resolve=True)
    else:
        raise FileNotFoundError(f"{run_dir} holds neither chunks/config.json nor .hydra/")
    return validate(config)


@dataclass(frozen=True)
class Replay:
    """One replicate regenerated from the seed.

    Attributes
    ----------
    data : the replicate's data set, a mapping of arrays (``{"x": (n,)}`` for a family)
    estimate : (k,) the estimator's estimate of it, refitted with its whole chunk as in
        the run (NaN where the fit failed)
    reason : why the fit failed ('' when it did not)
    seed, condition_key, chunk, row : where the data set comes from
    """

    data: dict
    estimate: np.ndarray
    reason: str
    seed: int
    condition_key: int
    chunk: int
    row: int

    @property
    def x(self) -> np.ndarray:
        """The i.i.d. sample ``data["x"]``, shape (n,)."""
        return self.data["x"]


def replay(run_dir: str | Path, factors: dict, estimator: str, replicate: int) -> Replay:
    """Regenerate replicate ``replicate`` of the cell ``factors`` and refit ``estimator``.

    The data come from ``SeedSequence(seed, spawn_key=(condition_key, chunk))`` exactly as
    in the run; the configuration is read from ``<run_dir>/chunks/config.json`` (written
    by every run) or Hydra's ``<run_dir>/.hydra/config.yaml``.

    Parameters
    ----------
    run_dir : the run directory
    factors : the cell's design factors as in failures.csv, e.g. ``{"n": 10}``
    estimator : an estimator label of the run
    replicate : the replicate number (0-based, as in failures.csv)
    """
    spec = read_spec(run_dir)
    task, row = locate(spec, factors, replicate)
    made = ChunkStore(Path(run_dir) / "chunks").provenance(task)
    if made == "other":
        raise ValueError(
            f"the chunk of replicate {replicate} in {run_dir} was not made by the configuration "
            "recorded there (the directory was reused by another run): replay would "
            "regenerate different data; replay from the run directory that made it"
        )
    if made != "same":
        why = {
            "version": "was made with other mlesim, numpy or scipy versions",
            "unknown": "cannot be checked (an older chunk format)",
            "missing": "is not there (chunks/ deleted?)",
        }[made]
        warnings.warn(
            f"replay: the chunk of replicate {replicate} {why}; the data are regenerated from "
            "the recorded configuration and seed and may differ if the versions changed",
            stacklevel=2,
        )
    scen, data = chunk_data(task)
    labels = [e.label for e in scen.estimators()]
    if estimator not in labels:
        raise KeyError(f"no estimator {estimator!r} in {run_dir}; have: {', '.join(labels)}")
    est = scen.estimators()[labels.index(estimator)]
    values, _, _, reason = fit_safely(est, data)
    one = {name: value[row].copy() for name, value in data.items()}
    return Replay(one, values[row].copy(), reason[row], task.seed, task.key, task.chunk, row)
