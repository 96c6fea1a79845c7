"""Hardening (issue 13): design values per cell, damaged chunks."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from mlesim.chunkfiles import chunk_files, saved_chunks
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


def test_a_damaged_chunk_is_recomputed_with_a_warning(tmp_path, caplog, monkeypatch):
    from mlesim import chunkfiles

    monkeypatch.setattr(chunkfiles, "GROUP_BYTES", 1)  # one chunk to a file
    spec = study_spec(_config(), n=[10], replications=300, runner={"chunk_size": 100})
    whole = run_pipeline(spec, tmp_path / "whole", progress=False)["replicates"]
    run = tmp_path / "damaged"
    run_pipeline(spec, run, progress=False)
    chunk = chunkfiles.chunk_files(run / "chunks")[1]
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the payload
    chunk.write_bytes(bytes(data))
    with caplog.at_level(logging.INFO, logger="mlesim"):
        again = run_pipeline(spec, run, progress=False)
    said = f"damaged chunk file {chunk.name}: its chunks are computed again"
    assert any(said in r.message for r in caplog.records)
    assert any("resumed 2 of 3 chunks" in r.message for r in caplog.records)
    pd.testing.assert_frame_equal(whole, again["replicates"])
    np.testing.assert_array_equal(
        pd.read_parquet(run / "replicates.parquet")["estimate"], whole["estimate"]
    )


def _cli(cwd, *args):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "mlesim", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_refused_command_leaves_a_finished_run_untouched(tmp_path):
    run = tmp_path / "run"
    assert _cli(tmp_path, "n=[5]", "replications=40", f"hydra.run.dir={run}").returncode == 0
    before = {p.name: p.read_bytes() for p in (run / ".hydra").iterdir()}
    refused = _cli(tmp_path, "n=[5]", "truth.params.sigma2=-1", f"hydra.run.dir={run}")
    assert refused.returncode == 2 and refused.stderr.startswith("mlesim: error: truth.params")
    assert {p.name: p.read_bytes() for p in (run / ".hydra").iterdir()} == before
    assert (run / "summary.csv").is_file()


def test_replay_refuses_a_chunk_made_by_another_configuration(tmp_path):
    from mlesim.replay import replay

    run = tmp_path / "run"
    assert _cli(tmp_path, "n=[5]", "replications=40", f"hydra.run.dir={run}").returncode == 0
    assert replay(run, {"n": 5.0}, "mle", 3).data["x"].shape == (5,)  # 5.0 finds n = 5
    # a later run of another truth is refused in this directory (another study) ...
    mu3 = ("n=[5]", "replications=40", "truth.params.mu=3")
    refused = _cli(tmp_path, *mu3, f"hydra.run.dir={run}")
    assert refused.returncode == 2 and "holds the results of another study" in refused.stderr
    # ... so make its chunks elsewhere and put them beside the first run's record, as a
    # copy by hand (or a crash of an older version) could
    other = tmp_path / "other"
    later = _cli(tmp_path, *mu3, f"hydra.run.dir={other}")
    assert later.returncode == 0
    for chunk in chunk_files(run / "chunks"):  # replaced by the other run's chunks
        chunk.unlink()
    for chunk in chunk_files(other / "chunks"):
        shutil.copy2(chunk, run / "chunks" / chunk.name)
    with pytest.raises(ValueError, match="not made by the configuration recorded there"):
        replay(run, {"n": 5}, "mle", 3)


def test_temporary_files_of_a_killed_writer_are_removed(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".summary.csv.abc.tmp").write_text("half")
    (run / "figures").mkdir()
    (run / "figures" / ".x.png.def.tmp").write_text("half")
    spec = study_spec(_config(), n=[5], replications=20)
    run_pipeline(spec, run, progress=False)
    assert not list(run.glob(".*.tmp")) and not list((run / "figures").glob(".*.tmp"))


@pytest.mark.parametrize("module", ["numpy", "scipy"])
def test_the_fingerprint_holds_numpy_and_scipy_versions(module, monkeypatch):
    """A different numpy or scipy may change the streams or the fits: a resume under
    another version recomputes instead of mixing."""
    import importlib

    from mlesim import checkpoint
    from mlesim.engine import plan

    task = plan(study_spec(_config(), n=[5], replications=20))[0]
    before = checkpoint.fingerprint(task)
    assert checkpoint.fingerprint(task) == before
    monkeypatch.setattr(importlib.import_module(module), "__version__", "0.0.0")
    assert checkpoint.fingerprint(task) != before


def test_ctrl_c_says_what_was_saved_and_how_to_resume(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "run"
    args = ["n=[2000]", "replications=100000", "runner.chunk_size=50", "runner.progress=false"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlesim", *args, f"hydra.run.dir={run}"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while saved_chunks(run / "chunks") < 3:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 130 and "Traceback" not in err, err[-2000:]
    assert len(lines) == 1 and lines[0].startswith("mlesim: interrupted: "), lines
    assert "run the same command again to resume" in lines[0]


def test_a_second_run_into_a_busy_directory_is_refused(tmp_path):
    from mlesim.lock import run_lock

    spec = study_spec(_config(), n=[5], replications=20)
    with run_lock(tmp_path / "run"), pytest.raises(ConfigError) as info:
        run_pipeline(spec, tmp_path / "run", progress=False)
    assert info.value.key == "hydra.run.dir" and f"pid {os.getpid()}" in info.value.message


def test_a_swallowed_ctrl_c_is_still_honoured():
    """A SIGINT whose KeyboardInterrupt lands in a finaliser (and is swallowed there) is
    recorded by the guard, and the engine's check between chunks raises it."""
    import signal

    from mlesim.interrupt import guard, raise_if_requested

    with guard():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            signal.pthread_sigmask(signal.SIG_BLOCK, [])  # a bytecode boundary
        except KeyboardInterrupt:
            pass  # what "Exception ignored in ..." amounts to
        with pytest.raises(KeyboardInterrupt):
            raise_if_requested()
    raise_if_requested()  # outside the guard the record is gone


def test_a_ctrl_c_during_start_up_is_one_line_and_status_130(tmp_path):
    """A Ctrl-C before the run (here: while the schema is registered) ends the command
    with one line and status 130, no traceback."""
    probe = (
        "import sys\n"
        "import mlesim.config as config\n"
        "def interrupted():\n"
        "    raise KeyboardInterrupt\n"
        "config.register_schema = interrupted\n"
        "from mlesim.__main__ import command\n"
        f"sys.argv = ['mlesim', 'n=[5]', 'hydra.run.dir={tmp_path / 'run'}']\n"
        "command()\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 130
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        "mlesim: interrupted; the chunks any run finished are kept in its run directory's "
        "chunks/ for a resume"
    ]
