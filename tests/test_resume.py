"""Checkpoint and resume: a run killed with SIGKILL and run again gives the table of an
uninterrupted run, reusing the chunks it had finished; stale chunks are recomputed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import study_spec

from mlesim import chunkfiles
from mlesim.checkpoint import ChunkStore, fingerprint
from mlesim.chunkfiles import chunk_files, saved_chunks
from mlesim.engine import plan, run_study, simulate
from mlesim.pipeline import run_pipeline
from mlesim.study import validate

# 400 chunks of 50 data sets of n = 2000 on one core: a second or two, long enough to kill
# half-way (chunks reach their files a group every quarter of a second)
KILLED = [
    "truth=normal",
    "n=[2000]",
    "replications=20000",
    "runner.n_jobs=1",
    "runner.chunk_size=50",
    "runner.progress=false",
    "study=summary",
    "seed=11",
]
CHUNKS = 400

BASE = {
    "truth": {"family": "normal", "params": {"mu": 1.0, "sigma2": 2.0}},
    "n": [5, 10],
    "replications": 30,
    "estimators": {"mle": {"kind": "mle"}, "s2": {"kind": "unbiased_variance"}},
    "runner": {"chunk_size": 8},
}


def make_spec(runner=None, **changes):
    return study_spec(BASE, runner, **changes)


def mlesim_cmd(run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "mlesim", *KILLED, f"hydra.run.dir={run_dir}"]


def wait_for_chunks(chunks: Path, proc: subprocess.Popen, at_least: int) -> None:
    """Poll until ``at_least`` chunks are in files (the run is under way)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if saved_chunks(chunks) >= at_least:
            return
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.005)
    proc.kill()
    pytest.fail("no chunk files appeared within 120 s")


def test_a_killed_run_resumes_to_the_uninterrupted_table(tmp_path, compose_cfg):
    killed = tmp_path / "killed"
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.Popen(
        mlesim_cmd(killed), cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    wait_for_chunks(killed / "chunks", proc, at_least=20)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "replicates.parquet").exists()
    kept = {p.name: p.stat().st_mtime_ns for p in chunk_files(killed / "chunks")}
    saved = saved_chunks(killed / "chunks")
    assert 20 <= saved < CHUNKS  # killed half-way

    again = subprocess.run(
        mlesim_cmd(killed), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr[-2000:]
    found = re.search(r"resumed (\d+) of (\d+) chunks", again.stdout + again.stderr)
    assert found, again.stdout[-2000:]
    assert int(found.group(2)) == CHUNKS and int(found.group(1)) >= saved
    for name, mtime in kept.items():  # finished chunks were reused, not rewritten
        assert (killed / "chunks" / name).stat().st_mtime_ns == mtime

    whole = tmp_path / "whole"
    run_pipeline(validate(compose_cfg(*KILLED)), whole, progress=False)
    resumed = pd.read_parquet(killed / "replicates.parquet")
    uninterrupted = pd.read_parquet(whole / "replicates.parquet")
    assert len(uninterrupted) == 20000 * 2
    pd.testing.assert_frame_equal(resumed, uninterrupted, check_exact=True)
    pd.testing.assert_frame_equal(
        pd.read_csv(killed / "summary.csv"), pd.read_csv(whole / "summary.csv"), check_exact=True
    )


def test_a_finished_run_is_resumed_entirely(tmp_path):
    spec = make_spec()
    first = run_study(spec, ChunkStore(tmp_path))
    second = run_study(spec, ChunkStore(tmp_path))
    assert (first.resumed, second.resumed, second.chunks) == (0, 8, 8)
    pd.testing.assert_frame_equal(first.replicates, second.replicates, check_exact=True)


def test_stale_chunks_are_recomputed(tmp_path):
    """Chunks of another seed carry another fingerprint; their files go once every chunk
    they hold is saved again."""
    run_study(make_spec(seed=1), ChunkStore(tmp_path))
    old = {p.name for p in chunk_files(tmp_path)}
    sim = run_study(make_spec(seed=2), ChunkStore(tmp_path))
    assert sim.resumed == 0
    assert old and not old & {p.name for p in chunk_files(tmp_path)}
    assert saved_chunks(tmp_path) == 8
    fresh = simulate(make_spec(seed=2), progress=False)
    pd.testing.assert_frame_equal(sim.replicates, fresh, check_exact=True)


def test_the_fingerprint_covers_what_determines_a_chunk():
    base = plan(make_spec())[0]
    changed = [
        plan(make_spec(seed=3))[0],
        plan(make_spec(truth={"family": "normal", "params": {"mu": 1.0, "sigma2": 3.0}}))[0],
        plan(make_spec(estimators={"mle": {"kind": "mle"}}))[0],
        plan(make_spec(runner={"chunk_size": 9}))[0],  # other bounds
    ]
    assert len({fingerprint(t) for t in [base, *changed]}) == 5
    same = [  # settings that cannot change a chunk's numbers
        plan(make_spec(runner={"n_jobs": 2, "backend": "threading"}))[0],
        plan(make_spec(confidence=0.9, replications=60, n=[5, 10, 20]))[0],
    ]
    assert {fingerprint(t) for t in same} == {fingerprint(base)}


def test_the_fingerprint_is_the_hash_of_the_whole_description(monkeypatch):
    """The fingerprint assembled from a condition's shared part (computed once per
    condition by a store) is the SHA-256 of the whole description's sorted-keys JSON,
    as written before the split: chunk files of earlier runs still resume."""
    import hashlib
    import json

    import scipy

    from mlesim import checkpoint

    spec = make_spec(runner={"chunk_size": 4}, n=[5, 10, 20])
    store = ChunkStore(None)
    for task in plan(spec):
        for versions in (True, False):
            config = task.condition.config
            content = {
                "format": checkpoint.FORMAT,
                "config": {k: v for k, v in config.items() if k not in checkpoint.IGNORED_KEYS},
                "factors": task.condition.factors,
                "seed": task.seed,
                "condition_key": task.key,
                "chunk": task.chunk,
                "start": task.start,
                "stop": task.stop,
                "params": list(task.condition.scenario.model.params),
            }
            if versions:
                content.update(
                    mlesim=checkpoint.mlesim_version(),
                    numpy=np.__version__,
                    scipy=scipy.__version__,
                )
            whole = json.dumps(content, sort_keys=True, default=repr).encode()
            expected = hashlib.sha256(whole).hexdigest()
            assert fingerprint(task, versions) == expected
            assert store.fingerprint(task, versions) == expected


def test_a_damaged_chunk_file_is_recomputed(tmp_path, monkeypatch):
    monkeypatch.setattr(chunkfiles, "GROUP_BYTES", 1)  # one chunk to a file
    spec = make_spec()
    ref = run_study(spec, ChunkStore(tmp_path)).replicates
    assert len(chunk_files(tmp_path)) == 8
    victim = chunk_files(tmp_path)[3]
    victim.write_bytes(victim.read_bytes()[:100])  # truncated (not by mlesim: it writes atomically)
    (tmp_path / ".left-by-a-kill.npz.tmp").write_bytes(b"partial")
    sim = run_study(spec, ChunkStore(tmp_path))
    assert sim.resumed == 7
    assert not list(tmp_path.glob(".*.tmp"))
    pd.testing.assert_frame_equal(sim.replicates, ref, check_exact=True)


def test_resume_false_recomputes_every_chunk(tmp_path):
    spec = make_spec()
    run_study(spec, ChunkStore(tmp_path))
    before = {p.name for p in chunk_files(tmp_path)}
    sim = run_study(make_spec(runner={"resume": False}), ChunkStore(tmp_path, resume=False))
    assert sim.resumed == 0
    after = {p.name for p in chunk_files(tmp_path)}
    assert before and after and not before & after  # written again, the old files gone
    assert saved_chunks(tmp_path) == 8


def test_raising_replications_reuses_the_full_chunks(tmp_path):
    """30 replicates in chunks of 8 end in a partial chunk (24..29); at 50 it is 24..31,
    another chunk, so only the three full chunks of each cell are reused."""
    run_study(make_spec(replications=30), ChunkStore(tmp_path))
    sim = run_study(make_spec(replications=50), ChunkStore(tmp_path))
    assert (sim.resumed, sim.chunks) == (2 * 3, 2 * 7)
    fresh = simulate(make_spec(replications=50), progress=False)
    pd.testing.assert_frame_equal(sim.replicates, fresh, check_exact=True)


def test_chunk_files_round_trip_every_array(tmp_path):
    spec = make_spec(n=[1], estimators={"s2": {"kind": "unbiased_variance"}})
    task = plan(spec)[0]
    on_disk = ChunkStore(tmp_path)
    from mlesim.engine import run_task

    result = run_task(task)
    on_disk.save(task, result)
    on_disk.flush()  # (the file is written by the store's thread)
    back = ChunkStore(tmp_path).load(task)
    for key, value in result.items():
        np.testing.assert_array_equal(back[key], value)
    assert back["fail_reason"].tolist() == ["non-finite estimate"] * 8
