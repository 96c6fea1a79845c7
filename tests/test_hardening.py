"""Hardening (issue 13): design values per cell, damaged chunks."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from mlesim.engine import simulate
from mlesim.errors import ConfigError
from mlesim.metrics import wald_z
from mlesim.pipeline import run_pipeline
from mlesim.summarise import summarise
from tests.conftest import Z, compose_config, study_spec


def _config(*overrides: str) -> dict:
    config = OmegaConf.to_container(compose_config(list(overrides)), resolve=True)
    config.pop("hydra", None)
    return config


def test_a_design_over_confidence_is_applied_per_cell():
    """Normal mean, known law: the Wald interval x̄ ± z s/√n at n = 200 covers with
    probability close to the nominal level; the 0.5 cell must report ~0.5, not 0.95
    (before, both cells were summarised at the top-level 0.95)."""
    spec = study_spec(
        _config(),
        n=[200],
        replications=4000,
        design={"confidence": [0.5, 0.95]},
        estimators={"mean": {"kind": "mean"}},
    )
    out = summarise(spec, simulate(spec)).set_index("confidence")
    for level in (0.5, 0.95):
        row = out.loc[level]
        # the t-correction at n = 200 moves coverage by < 0.002: far below 4 MCSE here
        assert abs(row["coverage"] - level) < Z * row["coverage_mcse"], (level, row["coverage"])
    assert wald_z(0.5) < 1  # the two cells really use different intervals


@pytest.mark.parametrize(
    ("design", "key"),
    [
        ({"confidence": [0.5, 1.5]}, "design.confidence"),
        ({"estimand": ["auto", "bogus"]}, "design.estimand"),
        ({"stopping": {"min_replications": [-5, 10]}}, "design.stopping.min_replications"),
        ({"analysis": {"delta": [0.1, 0.2]}}, "design.analysis.delta"),
        ({"truth": {"params": {"mu": [0, 0.0]}}}, "design.truth.params.mu"),
    ],
)
def test_design_values_are_checked_per_cell(design, key):
    with pytest.raises(ConfigError) as info:
        study_spec(_config(), n=[5], replications=10, design=design)
    assert info.value.key == key and "\n" not in str(info.value)


def test_a_damaged_chunk_is_recomputed_with_a_warning(tmp_path, caplog):
    spec = study_spec(_config(), n=[10], replications=300, runner={"chunk_size": 100})
    whole = run_pipeline(spec, tmp_path / "whole", progress=False)["replicates"]
    run = tmp_path / "damaged"
    run_pipeline(spec, run, progress=False)
    chunk = sorted((run / "chunks").glob("*.npz"))[1]
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the payload
    chunk.write_bytes(bytes(data))
    with caplog.at_level(logging.INFO, logger="mlesim"):
        again = run_pipeline(spec, run, progress=False)
    assert any(f"damaged chunk {chunk.name} is recomputed" in r.message for r in caplog.records)
    assert any("resumed 2 of 3 chunks" in r.message for r in caplog.records)
    pd.testing.assert_frame_equal(whole, again["replicates"])
    np.testing.assert_array_equal(
        pd.read_parquet(run / "replicates.parquet")["estimate"], whole["estimate"]
    )
