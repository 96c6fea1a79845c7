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


def _damage_central_directory(path) -> None:
    """Set the compression method of the zip's first central-directory entry to one
    zipfile does not know: reading then raises NotImplementedError, not BadZipFile."""
    data = bytearray(path.read_bytes())
    at = data.rfind(b"PK\x01\x02")
    while data.rfind(b"PK\x01\x02", 0, at) != -1:
        at = data.rfind(b"PK\x01\x02", 0, at)
    data[at + 10 : at + 12] = (99).to_bytes(2, "little")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["method", "npy", "truncated"])
@pytest.mark.parametrize("resume", [True, False])
def test_any_damaged_file_is_recomputed_never_a_crash(tmp_path, damage, resume):
    spec = make_spec()
    ref = run_study(spec, ChunkStore(tmp_path)).replicates
    (victim,) = chunk_files(tmp_path)
    if damage == "method":
        _damage_central_directory(victim)
    elif damage == "npy":
        with open(victim, "wb") as fh:
            np.save(fh, np.arange(3))
    else:
        victim.write_bytes(victim.read_bytes()[:-50])
    assert saved_chunks(tmp_path) == 0
    sim = run_study(spec, ChunkStore(tmp_path, resume=resume))
    assert sim.resumed == 0 and saved_chunks(tmp_path) == 16
    assert not victim.exists()  # (the store deleted it before writing its chunks again)
    pd.testing.assert_frame_equal(sim.replicates, ref, check_exact=True)


def test_a_users_files_are_neither_read_nor_deleted(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "notes.npz").write_bytes(b"mine")
    (tmp_path / "g-1-2-3.npz").mkdir()  # a directory with a chunk file's name
    spec = make_spec()
    run_study(spec, ChunkStore(tmp_path))
    sim = run_study(spec, ChunkStore(tmp_path))
    assert sim.resumed == 16
    assert (tmp_path / "notes.npz").read_bytes() == b"mine" and (tmp_path / "g-1-2-3.npz").is_dir()


def test_the_files_contents_are_let_go_after_a_resume(tmp_path):
    spec = make_spec()
    run_study(spec, ChunkStore(tmp_path))
    store = ChunkStore(tmp_path)
    assert run_study(spec, store).resumed == 16
    assert not store._payloads and store._cached == 0


def test_a_file_goes_once_its_chunks_are_saved_again_across_two_runs(tmp_path):
    """Seed 1 saves both cells in one file; seed 2 saves them again, one cell per run
    (store): the old file goes after the second."""
    run_study(make_spec(seed=1), ChunkStore(tmp_path))
    (old,) = chunk_files(tmp_path)
    run_study(make_spec(seed=2, n=[5]), ChunkStore(tmp_path))
    assert old.exists()
    run_study(make_spec(seed=2, n=[10]), ChunkStore(tmp_path))
    assert not old.exists() and saved_chunks(tmp_path) == 16


def test_chunks_saved_without_a_flush_are_written_at_exit(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys; sys.path[:0] = [sys.argv[2]];"
        "from test_chunkfiles import make_spec;"
        "from mlesim.checkpoint import ChunkStore; from mlesim.engine import plan;"
        "from mlesim.work import run_task;"
        "store = ChunkStore(sys.argv[1]);"
        "[store.save(t, run_task(t)) for t in plan(make_spec())[:3]]"
    )
    tests = str(__import__("pathlib").Path(__file__).parent)
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path), tests], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert saved_chunks(tmp_path) == 3


def test_a_reader_leaves_a_writers_temporary_files_alone(tmp_path):
    """replay() beside a running run opens a store on its chunks/: only a store that
    writes clears what a killed writer left."""
    run_study(make_spec(), ChunkStore(tmp_path))
    tmp = tmp_path / ".g-1-2-3.npz.abc.tmp"
    tmp.write_bytes(b"being written")
    ChunkStore(tmp_path).provenance(plan(make_spec())[0])
    assert tmp.exists()
    run_study(make_spec(seed=9), ChunkStore(tmp_path))
    assert not tmp.exists()


def test_old_single_chunk_files_past_a_million_chunks_are_read(tmp_path):
    from mlesim.chunkfiles import read_manifest

    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / f"c{7:016x}-{1234567}.npz"
    np.savez(path, fingerprint=np.asarray("f"), rows=np.zeros(0), fails=np.zeros(0))
    assert chunk_files(tmp_path) == [path]
    m = read_manifest(path)
    assert (int(m.keys[0]), int(m.chunks[0])) == (7, 1234567)


def test_a_chunk_in_a_damaged_file_has_unknown_provenance(tmp_path):
    run_study(make_spec(), ChunkStore(tmp_path))
    (victim,) = chunk_files(tmp_path)
    victim.write_bytes(b"PK")
    assert ChunkStore(tmp_path).provenance(plan(make_spec())[0]) == "unknown"
