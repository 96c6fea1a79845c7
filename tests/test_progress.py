"""Progress of a run (issue 11): a tqdm bar on a terminal; elsewhere (nohup, a SLURM log)
with ``runner.progress`` null, an INFO line on the ``mlesim`` logger about every 10% of
the chunks; ``true`` forces the bar, ``false`` silences both. And ``runner.backend=dask``
keeps dask.distributed's INFO lines off the console."""

from __future__ import annotations

import io
import logging
import re
import sys

import pytest
from conftest import study_spec

from mlesim.backends import DASK_LOGS_ENV, dask_log_level, dask_logs
from mlesim.checkpoint import ChunkStore
from mlesim.engine import run_study, simulate
from mlesim.errors import ConfigError

BASE = {
    "truth": {"family": "normal", "params": {"mu": 1.0, "sigma2": 2.0}},
    "n": [5, 10],
    "replications": 200,
    "estimators": {"mean": {"kind": "mean"}},
    "runner": {"chunk_size": 4, "n_jobs": 1},
}
#: ``progress: <done>/<total> replicates (<pct>%), <c>/<C> chunks, <rate> replicates/s, ...``
LINE = re.compile(
    r"^progress: (\d+)/(\d+) replicates \((\d+)%\), (\d+)/(\d+) chunks, [\d,.e+-]+ "
    r"replicates/s, (ETA|took) "
)


def not_a_terminal(monkeypatch) -> io.StringIO:
    """sys.stderr as a file that is not a terminal (as under nohup or SLURM); called in
    the test itself (pytest's capture resets sys.stderr between a fixture and the test)."""
    fake = io.StringIO()
    monkeypatch.setattr(sys, "stderr", fake)
    return fake


def progress_lines(caplog) -> list[re.Match]:
    lines = [r.getMessage() for r in caplog.records if r.name == "mlesim"]
    lines = [line for line in lines if line.startswith("progress:")]
    matches = [LINE.match(line) for line in lines]
    assert all(matches), lines
    return matches


def test_a_run_off_a_terminal_logs_about_every_tenth(caplog, monkeypatch):
    stderr = not_a_terminal(monkeypatch)
    spec = study_spec(BASE)  # 2 cells × 50 chunks of 4 replicates
    with caplog.at_level(logging.INFO, logger="mlesim"):
        sim = run_study(spec, progress=None)
    assert sim.chunks == 100
    lines = progress_lines(caplog)
    assert 5 <= len(lines) <= 11, [m.string for m in lines]
    done = [int(m.group(1)) for m in lines]
    assert done == sorted(done) and len(set(done)) == len(done)  # forward, never twice
    assert all(int(m.group(2)) == 400 and int(m.group(5)) == 100 for m in lines)
    last = lines[-1]
    assert (last.group(1), last.group(3), last.group(4), last.group(6)) == (
        "400",
        "100",
        "100",
        "took",
    )
    assert all(m.group(6) == "ETA" for m in lines[:-1])
    assert stderr.getvalue() == ""  # no bar in a log file


def test_resumed_chunks_count_as_done(caplog, tmp_path, monkeypatch):
    not_a_terminal(monkeypatch)
    run_study(study_spec(BASE, replications=100), ChunkStore(tmp_path), progress=False)
    with caplog.at_level(logging.INFO, logger="mlesim"):
        sim = run_study(study_spec(BASE), ChunkStore(tmp_path), progress=None)
    assert sim.resumed == 50
    lines = progress_lines(caplog)
    assert 1 <= len(lines) <= 6, [m.string for m in lines]  # the second half only
    assert int(lines[0].group(1)) > 200 and int(lines[0].group(3)) > 50
    assert lines[-1].group(1) == "400" and lines[-1].group(3) == "100"


@pytest.mark.parametrize("progress", [False, True])
def test_false_is_silent_and_true_is_the_bar(progress, caplog, monkeypatch):
    stderr = not_a_terminal(monkeypatch)
    with caplog.at_level(logging.INFO, logger="mlesim"):
        run_study(study_spec(BASE), progress=progress)
    assert progress_lines(caplog) == []
    if progress:
        assert "chunks" in stderr.getvalue() and "100/100" in stderr.getvalue()
    else:
        assert stderr.getvalue() == ""


# ---------------------------------------------------------------------------- dask
def test_dask_keeps_its_info_lines_off_the_console(alarm, caplog, monkeypatch):
    pytest.importorskip("distributed")
    alarm(120)
    monkeypatch.delenv(DASK_LOGS_ENV, raising=False)
    logger = logging.getLogger("distributed")
    before = logger.level
    # as under Hydra: the root logger has the handlers, and distributed's lines reach them
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logger, "propagate", True)
    logger.setLevel(logging.INFO)  # distributed's default
    try:
        spec = study_spec(
            BASE, {"backend": "dask", "dask": {"address": None, "n_workers": 1}}, n=[5]
        )
        with caplog.at_level(logging.INFO):
            simulate(spec, progress=False)
        assert logger.level == logging.INFO  # put back after the run
    finally:
        logger.setLevel(before)
    assert "started a dask LocalCluster" in caplog.text  # the run did use dask
    chatter = [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.name.startswith("distributed") and r.levelno < logging.WARNING
    ]
    assert not chatter, chatter


def test_dask_log_level_from_the_environment(monkeypatch):
    monkeypatch.delenv(DASK_LOGS_ENV, raising=False)
    assert dask_log_level() is None
    monkeypatch.setenv(DASK_LOGS_ENV, " INFO ")
    assert dask_log_level() == logging.INFO
    monkeypatch.setenv(DASK_LOGS_ENV, "loud")
    with pytest.raises(ConfigError, match=f"^{DASK_LOGS_ENV}: unknown log level 'loud'"):
        dask_log_level()
    logger = logging.getLogger("distributed")
    before = logger.level
    with dask_logs(logging.ERROR):
        assert logger.getEffectiveLevel() == logging.ERROR
    assert logger.level == before


def test_the_run_log_says_where_the_time_went(tmp_path, caplog):
    """One INFO line names each phase with its seconds, which add up to the total."""
    import logging
    import re

    from conftest import study_spec
    from test_contract import _base_config

    from mlesim.pipeline import run_pipeline

    spec = study_spec(_base_config(), {"progress": False}, n=[5], replications=50)
    with caplog.at_level(logging.INFO, logger="mlesim"):
        run_pipeline(spec, tmp_path / "run", progress=False)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("time: ")]
    assert len(lines) == 1, lines
    phases = dict(re.findall(r"([a-z -]+?) (\d+\.\d\d) s", lines[0].removeprefix("time: ")))
    names = ["set-up", "simulation", "summary and tables", "figures", "report"]
    assert [k.strip(", ") for k in phases][: len(names)] == names, lines[0]
    total = float(re.search(r"total (\d+\.\d\d) s", lines[0]).group(1))
    assert abs(sum(float(v) for k, v in phases.items() if "total" not in k) - total) < 0.03
