"""runner.backend=dask: a LocalCluster started for the run and closed after it (no worker
process or port left behind), or an existing cluster joined by address and left running."""

from __future__ import annotations

import logging
import re
import socket
import time

import pandas as pd
import psutil
from conftest import study_spec

from mlesim.engine import simulate

BASE = {
    "truth": {"family": "poisson", "params": {"lam": 2.0}},
    "n": [3, 30],
    "replications": 24,
    "estimators": {"mle": {"kind": "mle"}, "mean": {"kind": "mean"}},
    "runner": {"chunk_size": 5},
}


def make_spec(**runner):
    return study_spec(BASE, runner)


def workers(proc: psutil.Process) -> set[int]:
    """Live descendant processes, but multiprocessing's resource tracker (one per
    process that ever spawned, by design alive until it exits)."""
    out = set()
    for child in proc.children(recursive=True):
        try:
            if child.is_running() and "resource_tracker" not in " ".join(child.cmdline()):
                out.add(child.pid)
        except psutil.NoSuchProcess:
            pass
    return out


def new_children(before: set[int], wait: float = 20.0) -> set[int]:
    """Child processes that were not there ``before`` and are still alive after ``wait``."""
    me = psutil.Process()
    deadline = time.monotonic() + wait
    while True:
        extra = workers(me) - before
        if not extra or time.monotonic() > deadline:
            return extra
        time.sleep(0.2)


def listening(address: str) -> bool:
    host, port = re.fullmatch(r"tcp://([\d.]+):(\d+)", address).groups()
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, int(port))) == 0


def test_a_local_cluster_runs_the_chunks_and_is_closed(alarm, caplog):
    alarm(150)
    before = workers(psutil.Process())
    serial = simulate(make_spec(n_jobs=1), progress=False)
    with caplog.at_level(logging.INFO, logger="mlesim"):
        on_dask = simulate(
            make_spec(backend="dask", dask={"address": None, "n_workers": 2}), progress=False
        )
    pd.testing.assert_frame_equal(serial, on_dask, check_exact=True)
    started = re.search(r"started a dask LocalCluster at (\S+) with 2 workers", caplog.text)
    assert started, caplog.text
    assert not new_children(before), "dask worker processes outlived the run"
    assert not listening(started.group(1)), "the scheduler port is still open"


def test_joining_a_cluster_by_address_leaves_it_running(alarm):
    from dask.distributed import Client, LocalCluster

    alarm(120)
    with LocalCluster(
        n_workers=2, processes=False, threads_per_worker=1, dashboard_address=None
    ) as cluster:
        seen = cluster.scheduler.transition_counter
        dask = {"address": cluster.scheduler_address, "n_workers": 1}
        table = simulate(make_spec(backend="dask", dask=dask), progress=False)
        assert cluster.scheduler.transition_counter > seen  # the chunks ran there
        with Client(cluster) as client:  # and mlesim did not close it
            assert len(client.scheduler_info()["workers"]) == 2
    assert len(table) == 2 * 24 * 2
    pd.testing.assert_frame_equal(table, simulate(make_spec(), progress=False), check_exact=True)


def test_a_fully_resumed_run_starts_no_cluster(tmp_path, caplog):
    from mlesim.checkpoint import ChunkStore
    from mlesim.engine import run_study

    run_study(make_spec(), ChunkStore(tmp_path))
    with caplog.at_level(logging.INFO, logger="mlesim"):
        sim = run_study(
            make_spec(backend="dask", dask={"address": None, "n_workers": 2}),
            ChunkStore(tmp_path),
        )
    assert sim.resumed == sim.chunks == 2 * 5
    assert "dask" not in caplog.text
