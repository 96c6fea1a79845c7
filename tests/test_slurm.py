"""Hydra sweeps through hydra-submitit-launcher: the SLURM preset, and a two-job sweep run
by submitit's local executor (each job a separate process, as on a cluster)."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate

import mlesim.__main__ as cli
from mlesim.config import register_schema
from mlesim.engine import simulate
from mlesim.study import validate

SWEEP = ["n=[5]", "replications=20", "runner.progress=false", "study=summary"]


@pytest.fixture
def hydra_config():
    """Compose with the hydra node (launcher presets live there) and expose it as the
    current HydraConfig, as a launched job would see it."""
    register_schema()

    def _compose(*overrides):
        with initialize_config_dir(version_base="1.3", config_dir=cli.config_dir()):
            cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        return cfg

    yield _compose
    HydraConfig.instance().cfg = None


def test_the_slurm_preset_sizes_jobs_from_the_runner(hydra_config):
    cfg = hydra_config("hydra/launcher=slurm", "runner.n_jobs=6", "hydra.launcher.partition=short")
    launcher = instantiate(cfg.hydra.launcher)
    assert type(launcher).__name__ == "SlurmLauncher"
    params = launcher.params
    assert params["cpus_per_task"] == 6  # one CPU per joblib worker
    assert params["partition"] == "short"
    assert params["timeout_min"] > 0 and params["mem_gb"] > 0
    assert params["max_num_timeout"] > 0  # requeued jobs resume from their chunks
    assert params["submitit_folder"].startswith(str(cfg.hydra.sweep.dir))


def test_the_local_preset_uses_submitits_local_executor(hydra_config):
    cfg = hydra_config("hydra/launcher=local", "runner.n_jobs=2")
    launcher = instantiate(cfg.hydra.launcher)
    assert type(launcher).__name__ == "LocalLauncher"
    assert launcher.params["cpus_per_task"] == 2


def test_n_jobs_auto_asks_the_cluster_for_one_cpu(hydra_config):
    """runner.n_jobs=auto is no number of CPUs to request: one is asked for, and the
    job then uses the CPUs the cluster gives it (its affinity)."""
    cfg = hydra_config("hydra/launcher=local", "runner.n_jobs=auto")
    assert cfg.runner.n_jobs == "auto"
    assert instantiate(cfg.hydra.launcher).params["cpus_per_task"] == 1


def test_a_two_job_sweep_runs_through_submitit(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable,
        "-m",
        "mlesim",
        "-m",
        "hydra/launcher=local",
        "seed=1,2",
        *SWEEP,
        f"hydra.sweep.dir={sweep}",
    ]
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (sweep / ".submitit").is_dir()  # submitit ran the jobs
    tables = {}
    for job, seed in ((0, 1), (1, 2)):
        run = sweep / f"{job}_study"  # hydra.sweep.subdir: <job>_<name>
        summary = pd.read_csv(run / "summary.csv")
        assert summary["n_rep"].tolist() == [20, 20]
        tables[seed] = pd.read_parquet(run / "replicates.parquet")
        spec = validate(compose_plain(*SWEEP, f"seed={seed}"))
        pd.testing.assert_frame_equal(tables[seed], simulate(spec, progress=False))
    assert not tables[1]["estimate"].equals(tables[2]["estimate"])


def compose_plain(*overrides):
    register_schema()
    with initialize_config_dir(version_base="1.3", config_dir=cli.config_dir()):
        return compose("config", overrides=list(overrides))
