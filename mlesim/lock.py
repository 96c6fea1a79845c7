"""One run at a time in a run directory.

Two processes writing into the same run directory (the same ``hydra.run.dir``, or a
resume started while the first run is still going) would spoil each other's chunk
checkpoints: the second one's :class:`~mlesim.checkpoint.ChunkStore` deletes the
``chunks/.*.tmp`` files the first one is still writing. :func:`run_lock` takes a lock
on the run directory first, and refuses a second run with one line naming the holder
(its pid, host and start time), before it has touched anything.

How it works
------------
The lock is an ``fcntl.flock(LOCK_EX | LOCK_NB)`` on ``<run dir>/.mlesim.lock``. The
kernel drops an flock when the last descriptor of its open file is closed, so when
the holding process exits, however it exits (SIGKILL, the out-of-memory killer, a
crash), the lock goes with it: there is never a stale lock to clean up, and
the pid written in the file is only a description of the holder, never the lock itself.

The holder writes its pid, host and start time (JSON, one line) into the file once it
holds the lock. On release it deletes the file and only then unlocks, so a finished
run leaves nothing behind; a killed run leaves the file, unlocked, which the next run
simply takes over. A process that locked a file which was deleted meanwhile (it opened
the file just before the holder released) notices that the path no longer leads to the
file it locked and starts over, so two runs never both hold the lock.

Every call opens its own file, and flocks on separate opens exclude each other even in
one process: a second :func:`run_lock` on the same directory, from another thread of
the same process too, is refused. There is no module state. The descriptor is
close-on-exec, so programs the run starts do not inherit the lock; a child made by a
bare ``fork`` (multiprocessing's "fork" start method) shares it until it exits — mlesim's
forked helpers (:mod:`mlesim.helpers`) are killed by the kernel the moment the main
process dies, so a ``kill -9`` of a run releases the lock at once.

Platforms and file systems
--------------------------
Linux (and other POSIX systems with ``fcntl.flock``); mlesim runs on Linux, so Windows
is not supported. On NFS, Linux implements flock with NFS byte-range locks, so the lock
holds across hosts sharing the directory (unless mounted with ``nolock``/``local_lock``:
then it holds per host). Where a file system offers no locking at all (e.g. Lustre
mounted without ``flock``), the run goes ahead unlocked with a warning, as mlesim
did before there was a lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mlesim.errors import ConfigError

log = logging.getLogger("mlesim")

#: name of the lock file inside the run directory
LOCK_NAME = ".mlesim.lock"

#: errors of a file system that cannot lock (the run then goes ahead unlocked)
_NO_LOCKING = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS})

#: a refused caller reads the holder's record up to this many times, ``_PAUSE`` seconds
#: apart, when the record is momentarily empty (the holder has locked but not yet
#: written it); also bounds the start-overs after a concurrent release
_ATTEMPTS = 50
_PAUSE = 0.01


class RunDirInUse(ConfigError):
    """The run directory is locked by another mlesim run (a :class:`ConfigError`, so
    it is reported as one line; its own class so a caller can tell it apart and leave
    the other run's files alone)."""


@dataclass(frozen=True)
class Holder:
    """Who holds a run directory: process id, host name and start time (ISO 8601)."""

    pid: int
    host: str
    started: str

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}, since {self.started}"

    def to_json(self) -> str:
        return json.dumps({"pid": self.pid, "host": self.host, "started": self.started})

    @classmethod
    def from_json(cls, text: str) -> Holder | None:
        """The holder recorded in ``text``, or None if it is empty or unreadable."""
        try:
            data = json.loads(text)
            return cls(int(data["pid"]), str(data["host"]), str(data["started"]))
        except (ValueError, TypeError, KeyError):
            return None

    @classmethod
    def me(cls) -> Holder:
        """This process, now."""
        started = datetime.now().astimezone().isoformat(timespec="seconds")
        return cls(os.getpid(), socket.gethostname(), started)


def _same_file(fd: int, path: Path) -> bool:
    """True if ``path`` still names the file open as ``fd`` (not deleted or replaced)."""
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _read_holder(fd: int) -> Holder | None:
    return Holder.from_json(os.pread(fd, 4096, 0).decode("utf-8", "replace"))


@contextlib.contextmanager
def run_lock(directory: str | os.PathLike, *, key: str = "hydra.run.dir") -> Iterator[Holder]:
    """Hold the run directory ``directory`` for this process while the block runs.

    The directory is created if needed. Inside the block ``<directory>/.mlesim.lock``
    is flocked and records this process (pid, host, start time); on leaving the block,
    normally or by an exception, the file is deleted and the lock released. A run
    killed outright (SIGKILL) leaves no stale lock: the kernel releases an flock with
    its process (see the module docstring).

    Parameters
    ----------
    directory : the run directory
    key : the configuration key named in the refusal (``"hydra.run.dir"`` for the
        command line; e.g. ``"run_dir"`` for :func:`mlesim.run`)

    Yields
    ------
    Holder
        This process's record, as written into the lock file.

    Raises
    ------
    RunDirInUse
        (a :class:`~mlesim.errors.ConfigError` with key ``key``) when another run holds
        the directory — another process, or another ``run_lock`` in this one. Nothing
        in the directory has been changed then.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    fd = _acquire(path, key)
    if fd is None:  # the file system cannot lock
        yield Holder.me()
        return
    try:
        me = Holder.me()
        os.ftruncate(fd, 0)
        os.pwrite(fd, (me.to_json() + "\n").encode(), 0)
        yield me
    finally:
        # delete while still holding the lock, then unlock: whoever locks the deleted
        # file afterwards sees that the path no longer leads to it and starts over
        try:
            with contextlib.suppress(FileNotFoundError):
                if _same_file(fd, path):
                    path.unlink()
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)  # (closing alone would release the lock too)


def _acquire(path: Path, key: str) -> int | None:
    """An open descriptor of ``path`` holding its flock; None if the file system cannot
    lock; RunDirInUse if another run holds it."""
    holder = None
    for _ in range(_ATTEMPTS):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = _same_file(fd, path)  # else: a file its holder deleted on release
        except BlockingIOError:  # EWOULDBLOCK: another run holds it
            locked = False
            try:
                holder = _read_holder(fd)
            except OSError:
                holder = None
        except OSError as err:
            os.close(fd)
            if err.errno not in _NO_LOCKING:
                raise
            with contextlib.suppress(OSError):
                path.unlink()
            log.warning(
                "cannot lock run directory %s (%s): a second run into it is not detected",
                path.parent,
                err.strerror or err,
            )
            return None
        except BaseException:
            os.close(fd)
            raise
        if locked:
            return fd
        os.close(fd)
        if holder is not None:
            break
        time.sleep(_PAUSE)  # held, but its record is not written yet (or being deleted)
    who = str(holder) if holder is not None else "holder unknown"
    raise RunDirInUse(
        key,
        f"{str(path.parent)!r} is in use by another mlesim run ({who}); allowed: wait for "
        "it, or use another run directory",
    )
