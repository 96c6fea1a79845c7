"""Helper processes die with their run: a ``kill -9`` of the main process leaves no
helper behind, and the watchdog that ensures it changes no result and is never started
in the main process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import psutil
from conftest import study_spec

from mlesim.chunkfiles import saved_chunks
from mlesim.engine import simulate

#: a run far too long to finish during the test: 2000 chunks of 50 replicates
LONG_RUN = [
    "truth=normal",
    "n=[20000]",  # ~10 ms a chunk: enough work left for the main process to start helpers
    "replications=100000",
    "runner.n_jobs=3",  # the main process and two helper processes
    "runner.chunk_size=50",
    "runner.progress=false",
]


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    """The processes of ``procs`` still running (a zombie, dead but not yet reaped by
    whoever adopted it, counts as gone)."""
    out = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except psutil.NoSuchProcess:
            pass
    return out


def describe(procs: list[psutil.Process]) -> list[str]:
    out = []
    for proc in procs:
        try:
            out.append(f"{proc.pid}: {' '.join(proc.cmdline())[:120]}")
        except psutil.Error:
            out.append(f"{proc.pid}: ?")
    return out


def lock_free_within(run_dir: Path, seconds: float) -> bool:
    """Whether the run directory's lock can be taken within ``seconds``."""
    from mlesim.lock import RunDirInUse, run_lock

    deadline = time.monotonic() + seconds
    while True:
        try:
            with run_lock(run_dir):
                return True
        except RunDirInUse:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)


def test_workers_die_when_the_run_is_killed(tmp_path: Path):
    run_dir = tmp_path / "run"
    err = tmp_path / "stderr.txt"
    with open(err, "w") as stderr:
        main = subprocess.Popen(
            [sys.executable, "-m", "mlesim", *LONG_RUN, f"hydra.run.dir={run_dir}"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    descendants: list[psutil.Process] = []
    main_cmdline = psutil.Process(main.pid).cmdline()
    try:
        deadline = time.monotonic() + 60
        while saved_chunks(run_dir / "chunks") < 3:
            assert main.poll() is None, f"the run ended early:\n{err.read_text()}"
            assert time.monotonic() < deadline, f"no chunks saved:\n{err.read_text()}"
            time.sleep(0.1)
        while True:  # the helpers start once the main process has timed a chunk
            descendants = psutil.Process(main.pid).children(recursive=True)
            workers = [p for p in descendants if p.cmdline() == main_cmdline]  # forked
            if len(workers) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert len(workers) == 2, describe(descendants)

        os.kill(main.pid, signal.SIGKILL)
        main.wait(timeout=10)
        killed = time.monotonic()
        # the forked helpers share the run directory's lock: they die with the main
        # process (the kernel kills them), so a resume started at once is not refused
        assert lock_free_within(run_dir, 0.5), describe(alive(descendants))
        while alive(descendants) and time.monotonic() - killed < 30:
            time.sleep(0.2)
        left = alive(descendants)
        assert not left, (
            f"{time.monotonic() - killed:.0f} s after the kill, still running: {describe(left)}"
        )
    finally:  # whatever happened, leave none of this test's processes behind
        if main.poll() is None:
            main.kill()
            main.wait()
        for proc in alive(descendants):
            proc.kill()


BASE = {
    "truth": {"family": "poisson", "params": {"lam": 3.0}},
    "n": [5, 40],
    "replications": 30,
    "estimators": {"mle": {"kind": "mle"}, "mean": {"kind": "mean"}},
    "runner": {"chunk_size": 4},
}


def watchdogs() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "mlesim-parent-watch"]


def test_a_normal_parallel_run_finishes_with_the_sequential_table(helpers):
    one = simulate(study_spec(BASE, {"n_jobs": 1}), progress=False)
    assert not watchdogs()
    two = simulate(study_spec(BASE, {"n_jobs": 2, "backend": "loky"}), progress=False)
    assert helpers
    assert len(one) == 2 * 30 * 2  # 2 sample sizes × 30 replicates × 2 estimators of lam
    pd.testing.assert_frame_equal(one, two, check_exact=True)
    # the watchdog runs in the helpers only: the main process is no helper of its own
    assert not watchdogs()
