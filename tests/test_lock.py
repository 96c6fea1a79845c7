"""The run-directory lock (issue 13, item 5): one run at a time in a run directory, a
second one refused in one line naming the holder, no stale lock after a SIGKILL, and a
refused run touches none of the holder's files."""

from __future__ import annotations

import errno
import json
import os
import pickle
import selectors
import signal
import subprocess
import sys
import threading
import time

import pytest

import mlesim.lock as lock_module
from mlesim.errors import ConfigError
from mlesim.lock import LOCK_NAME, RunDirInUse, run_lock

#: a child process that takes the lock on argv[1], says so, and waits to be killed
HOLD = """
import sys, time
from mlesim.lock import run_lock
with run_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""

#: a child process that, from when argv[2] exists and for argv[3] seconds, takes and
#: releases the lock on argv[1] as fast as it can; while it holds the lock it creates
#: argv[1]/inside with O_EXCL, which fails if another process holds it too
CHURN = """
import os, sys, time
from mlesim.lock import RunDirInUse, run_lock
directory, go, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
marker = os.path.join(directory, "inside")
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.001)
held = refused = 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    try:
        with run_lock(directory):
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            os.unlink(marker)
            held += 1
    except RunDirInUse:
        refused += 1
print(held, refused)
"""


def _start(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _await_line(proc: subprocess.Popen, timeout: float = 30.0) -> str:
    """The child's first line of stdout, waiting at most ``timeout`` seconds."""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise AssertionError(f"child {proc.pid} said nothing in {timeout} s")
    line = proc.stdout.readline()
    if not line:
        raise AssertionError(f"child {proc.pid} failed: {proc.stderr.read()}")
    return line.strip()


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    proc.stderr.close()


def test_second_lock_in_this_process_is_refused_naming_this_pid(tmp_path):
    run = tmp_path / "run"
    with run_lock(run) as me:
        assert me.pid == os.getpid()
        record = json.loads((run / LOCK_NAME).read_text())
        assert record == {"pid": me.pid, "host": me.host, "started": me.started}
        with pytest.raises(ConfigError) as refused:
            with run_lock(run):
                pytest.fail("took a lock that is held")
        err = refused.value
        assert isinstance(err, RunDirInUse)
        assert err.key == "hydra.run.dir"
        assert f"pid {os.getpid()} on {me.host}, since {me.started}" in err.message
        assert "in use by another mlesim run" in err.message
        assert "allowed: wait for it, or use another run directory" in err.message
        assert "\n" not in str(err)
        assert (run / LOCK_NAME).is_file()  # the refused attempt left the record alone
        assert json.loads((run / LOCK_NAME).read_text())["pid"] == me.pid
    assert not (run / LOCK_NAME).exists()  # a finished run leaves nothing behind
    with run_lock(run):  # released: it can be taken again
        pass


def test_key_names_the_setting(tmp_path):
    with run_lock(tmp_path):
        with pytest.raises(RunDirInUse) as refused:
            with run_lock(tmp_path, key="run_dir"):
                pass
    assert str(refused.value).startswith("run_dir: ")


def test_refusal_survives_pickling(tmp_path):
    """The refusal may cross a process boundary (joblib, dask) as its own class."""
    with run_lock(tmp_path):
        with pytest.raises(RunDirInUse) as refused:
            with run_lock(tmp_path):
                pass
    again = pickle.loads(pickle.dumps(refused.value))
    assert type(again) is RunDirInUse
    assert (again.key, again.message) == (refused.value.key, refused.value.message)


def test_lock_is_released_when_the_block_raises(tmp_path):
    with pytest.raises(KeyError):
        with run_lock(tmp_path):
            raise KeyError("boom")
    assert not (tmp_path / LOCK_NAME).exists()
    with run_lock(tmp_path):
        pass


def test_run_directory_is_created(tmp_path):
    run = tmp_path / "a" / "b" / "run"
    with run_lock(run):
        assert (run / LOCK_NAME).is_file()
    assert run.is_dir()


def test_child_holder_is_named_and_sigkill_leaves_no_stale_lock(tmp_path):
    run = tmp_path / "run"
    child = _start(HOLD, str(run))
    try:
        assert _await_line(child) == "locked"
        with pytest.raises(RunDirInUse) as refused:
            with run_lock(run):
                pytest.fail("took a lock a child holds")
        assert refused.value.key == "hydra.run.dir"
        assert f"(pid {child.pid} on " in refused.value.message
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        _kill(child)
    assert json.loads((run / LOCK_NAME).read_text())["pid"] == child.pid  # file stays
    with run_lock(run) as me:  # at once: the kernel dropped the dead child's lock
        assert json.loads((run / LOCK_NAME).read_text())["pid"] == me.pid == os.getpid()
    assert not (run / LOCK_NAME).exists()


def test_refused_run_leaves_the_holders_temporary_files(tmp_path):
    """The refusal comes before anything could delete ``chunks/.*.tmp``."""
    run = tmp_path / "run"
    child = _start(HOLD, str(run))
    try:
        assert _await_line(child) == "locked"
        half_written = run / "chunks" / ".c0000000000000000-000000.npz.abc.tmp"
        half_written.parent.mkdir(parents=True)
        half_written.write_bytes(b"half")
        before = sorted(p.relative_to(run) for p in run.rglob("*"))
        with pytest.raises(RunDirInUse):
            with run_lock(run):
                pass
        assert sorted(p.relative_to(run) for p in run.rglob("*")) == before
        assert half_written.read_bytes() == b"half"
    finally:
        _kill(child)


def test_two_directories_do_not_interfere(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    child = _start(HOLD, str(first))
    try:
        assert _await_line(child) == "locked"
        with run_lock(first / "sub"):  # a directory inside a locked one is another one
            pass
        with run_lock(second) as me:
            assert json.loads((second / LOCK_NAME).read_text())["pid"] == me.pid
            with pytest.raises(RunDirInUse) as refused:
                with run_lock(first):
                    pass
            assert f"(pid {child.pid} on " in refused.value.message
        assert json.loads((first / LOCK_NAME).read_text())["pid"] == child.pid
    finally:
        _kill(child)


def test_threads_racing_for_one_directory_get_it_once(tmp_path):
    threads = 8
    start, done = threading.Barrier(threads), threading.Barrier(threads)
    won, refused, errors = [], [], []

    def attempt() -> None:
        try:
            start.wait(timeout=10)
            try:
                with run_lock(tmp_path):
                    won.append(threading.get_ident())
                    done.wait(timeout=10)  # hold until every thread has tried
                    return
            except RunDirInUse as err:
                refused.append(err.message)
            done.wait(timeout=10)
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    pool = [threading.Thread(target=attempt) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=30)
    assert not errors
    assert len(won) == 1 and len(refused) == threads - 1
    assert all(f"(pid {os.getpid()} on " in m for m in refused)
    assert not (tmp_path / LOCK_NAME).exists()


def test_processes_churning_on_one_directory_never_hold_it_together(tmp_path):
    """Four processes take and release the lock (which deletes the lock file) as fast
    as they can, all at once: never two holders at a time, every process gets it now
    and then, and it can be taken afterwards."""
    run, go = tmp_path / "run", tmp_path / "go"
    run.mkdir()
    children = [_start(CHURN, str(run), str(go), "0.5") for _ in range(4)]
    try:
        for child in children:
            assert _await_line(child) == "ready"
        go.touch()
        counts = []
        for child in children:
            out, err = child.communicate(timeout=60)
            assert child.returncode == 0, err
            counts.append(tuple(map(int, out.split())))
    finally:
        for child in children:
            _kill(child)
    assert all(held > 0 for held, _ in counts), counts
    assert sum(refused for _, refused in counts) > 0, counts  # they did contend
    assert not (run / "inside").exists()
    with run_lock(run):
        pass


def test_file_system_without_locking_runs_unlocked_with_a_warning(tmp_path, monkeypatch, caplog):
    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(lock_module.fcntl, "flock", no_flock)
    with caplog.at_level("WARNING", logger="mlesim"):
        with run_lock(tmp_path) as me:
            assert me.pid == os.getpid()
    assert "cannot lock run directory" in caplog.text
    assert not (tmp_path / LOCK_NAME).exists()


def test_other_lock_errors_are_not_hidden(tmp_path, monkeypatch):
    def bad_flock(fd, op):
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))

    monkeypatch.setattr(lock_module.fcntl, "flock", bad_flock)
    with pytest.raises(OSError) as raised:
        with run_lock(tmp_path):
            pass
    assert raised.value.errno == errno.EBADF


def test_refusal_is_quick(tmp_path):
    with run_lock(tmp_path):
        began = time.monotonic()
        with pytest.raises(RunDirInUse):
            with run_lock(tmp_path):
                pass
        assert time.monotonic() - began < 1.0
