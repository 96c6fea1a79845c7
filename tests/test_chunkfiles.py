"""Chunk files hold several chunks each (mlesim.chunkfiles): groups are bounded in bytes
and in time, a file goes once all its chunks are saved again, files written before
groups still resume, and resumed chunks are read one file at a time."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from conftest import study_spec

from mlesim import checkpoint, chunkfiles
from mlesim.checkpoint import ChunkStore
from mlesim.chunkfiles import (
    FAIL_FIELDS,
    ROW_FIELDS,
    GroupWriter,
    Saved,
    _pack,
    chunk_files,
    read_manifest,
    saved_chunks,
)
from mlesim.engine import plan, run_study, simulate
from mlesim.work import run_task

BASE = {
    "truth": {"family": "normal", "params": {"mu": 1.0, "sigma2": 2.0}},
    "n": [5, 10],
    "replications": 64,
    "estimators": {"mle": {"kind": "mle"}, "s2": {"kind": "unbiased_variance"}},
    "runner": {"chunk_size": 8},
}


def make_spec(**changes):
    return study_spec(BASE, **changes)


def saved(store: ChunkStore, task) -> Saved:
    result = run_task(task)
    return Saved(task.key, task.chunk, store.fingerprint(task), "", result)


def test_a_group_holds_at_most_group_bytes(tmp_path, monkeypatch):
    store = ChunkStore(None)
    items = [saved(store, t) for t in plan(make_spec())[:10]]
    monkeypatch.setattr(chunkfiles, "GROUP_BYTES", 3 * items[0].nbytes)
    writer = GroupWriter(tmp_path, lambda path, batch: None)
    for item in items:
        writer.put(item)
    writer.close()
    sizes = [len(read_manifest(p).keys) for p in chunk_files(tmp_path)]
    assert sum(sizes) == 10 and max(sizes) <= 3 and len(sizes) >= 4


def test_a_chunk_reaches_its_file_without_a_flush(tmp_path):
    """What a kill -9 can lose: the chunks of the last GROUP_SECONDS or so."""
    store = ChunkStore(None)
    writer = GroupWriter(tmp_path, lambda path, batch: None)
    put = time.monotonic()
    writer.put(saved(store, plan(make_spec())[0]))
    while saved_chunks(tmp_path) == 0:
        assert time.monotonic() - put < 10 * chunkfiles.GROUP_SECONDS + 5
        time.sleep(0.01)
    writer.close()
    assert saved_chunks(tmp_path) == 1


def test_a_failed_write_is_raised_by_the_next_flush(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    store = ChunkStore(blocker / "chunks")
    task = plan(make_spec())[0]
    store.save(task, run_task(task), keep=False)
    with pytest.raises(OSError):
        store.flush()


def test_a_file_goes_once_every_chunk_in_it_is_saved_again(tmp_path):
    tasks = plan(make_spec())[:4]
    first = ChunkStore(tmp_path)
    for task in tasks:
        first.save(task, run_task(task))
    first.flush()
    (old,) = chunk_files(tmp_path)
    again = ChunkStore(tmp_path, resume=False)
    for task in tasks[:2]:
        again.save(task, run_task(task))
    again.flush()
    assert old.exists() and len(chunk_files(tmp_path)) == 2  # chunks 2 and 3 live there
    for task in tasks[2:]:
        again.save(task, run_task(task))
    again.flush()
    assert not old.exists() and saved_chunks(tmp_path) == 4


def _write_legacy(store: ChunkStore, task, result) -> None:
    """A chunk file as mlesim wrote them before groups: one chunk, named by it."""
    np.savez(
        store.root / f"c{task.key:016x}-{task.chunk:06d}.npz",
        fingerprint=np.asarray(store.fingerprint(task)),
        config_fingerprint=np.asarray(store.fingerprint(task, versions=False)),
        rows=_pack([result], ROW_FIELDS),
        fails=_pack([result], FAIL_FIELDS),
    )


def test_chunk_files_written_before_groups_resume(tmp_path):
    spec = make_spec()
    tasks = plan(spec)
    store = ChunkStore(tmp_path)
    tmp_path.mkdir(exist_ok=True)
    for task in tasks[::2]:
        _write_legacy(store, task, run_task(task))
    sim = run_study(spec, ChunkStore(tmp_path))
    assert (sim.resumed, sim.chunks) == (len(tasks[::2]), len(tasks))
    pd.testing.assert_frame_equal(sim.replicates, simulate(spec, progress=False))
    assert ChunkStore(tmp_path).provenance(tasks[0]) == "same"
    other = plan(make_spec(seed=5))[0]
    assert ChunkStore(tmp_path).provenance(other) in ("other", "missing")


def test_resumed_chunks_are_read_one_file_at_a_time(tmp_path, monkeypatch):
    """A group holds chunks in the order they finished (helpers take from both ends);
    the run reads each file once whatever the order of its chunks."""
    monkeypatch.setattr(checkpoint, "KEEP_BYTES", 1)  # keeps one file's payload read
    spec = make_spec()
    tasks = plan(spec)
    monkeypatch.setattr(chunkfiles, "GROUP_BYTES", 5 * len(run_task(tasks[0])["est"]) * 29)
    store = ChunkStore(tmp_path)
    half = len(tasks) // 2
    order = [t for pair in zip(tasks[:half], tasks[half:][::-1], strict=True) for t in pair]
    for task in order:  # front and back in turn
        store.save(task, run_task(task), keep=False)
    store.flush()
    files = chunk_files(tmp_path)
    assert len(files) >= 3
    reads = []
    real = chunkfiles.read_payload
    monkeypatch.setattr(checkpoint, "read_payload", lambda p: reads.append(p) or real(p))
    sim = run_study(spec, ChunkStore(tmp_path))
    assert sim.resumed == len(tasks)
    # pending() checks each file once, then the assembly reads each once more
    assert set(reads) == set(files) and all(reads.count(f) <= 2 for f in files)
    pd.testing.assert_frame_equal(sim.replicates, simulate(spec, progress=False))


def test_saved_chunks_counts_chunks_not_files_and_skips_damage(tmp_path):
    tasks = plan(make_spec())
    store = ChunkStore(tmp_path)
    for task in tasks[:5]:
        store.save(task, run_task(task))
    store.flush()
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    (tmp_path / ".half.npz.tmp").write_bytes(b"partial")
    assert saved_chunks(tmp_path) == 5
    assert saved_chunks(tmp_path / "absent") == 0
