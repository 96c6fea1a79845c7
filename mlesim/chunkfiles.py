"""The files of a run's ``chunks/`` directory: several finished chunks to a file, written
by one thread beside the computation (:class:`GroupWriter`).

A *group file* ``g-<time>-<pid>-<sequence>.npz`` (numpy's uncompressed zip) holds the
chunks that were waiting when it was written, one after another:

- ``keys``, ``chunks`` : (G,) the condition key and chunk index of each chunk;
- ``fingerprints``, ``config_fingerprints`` : (G,) their SHA-256s
  (:func:`mlesim.checkpoint.fingerprint`, with and without the versions);
- ``row_stops``, ``fail_stops`` : (G,) where each chunk's rows and failures end;
- ``rows``, ``fails`` : the chunks' rows of the replicates table and failed fits, as
  structured arrays (:data:`ROW_FIELDS`, :data:`FAIL_FIELDS`).

A file costs about a millisecond of system time to create whatever its size (the scale
study of issue 12 saved 1287 chunks in 2 s of CPU one file each, 0.4 s in groups), so a
group is written once :data:`GROUP_BYTES` are waiting or its oldest chunk has waited
:data:`GROUP_SECONDS`. Files written by mlesim before groups, ``c<key>-<chunk>.npz``
with one chunk (``fingerprint``, ``config_fingerprint``, ``rows``, ``fails``), are read
as groups of one.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlesim.storage import atomic_write
from mlesim.work import FAIL_FIELDS, RESULT_KEYS, ROW_FIELDS  # (a chunk's arrays)

#: a group is written once this many bytes of results are waiting ...
GROUP_BYTES = 2**24
#: ... or once its oldest chunk has waited this long (what a ``kill -9`` may lose)
GROUP_SECONDS = 0.25

_GROUP = re.compile(r"g-[0-9a-f]+-\d+-\d+\.npz")
_LEGACY = re.compile(r"c([0-9a-f]{16})-(\d{6,})\.npz")


class Damaged(Exception):
    """A chunk file that does not read whole (truncated, flipped bytes, not a zip of
    arrays): whatever numpy or zipfile raised, in one type."""


@contextmanager
def _opened(path: Path) -> Iterator[np.lib.npyio.NpzFile]:
    """``np.load(path)`` of a chunk file, any error of it (or of reading it) as
    :class:`Damaged`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("not a zip of arrays")
            yield data
    except Damaged:
        raise
    except Exception as err:  # noqa: BLE001 - zipfile and numpy raise many kinds
        raise Damaged(f"{type(err).__name__}: {err}") from err


@dataclass(frozen=True)
class Saved:
    """One finished chunk waiting to be written: its identity, fingerprints and arrays."""

    key: int
    chunk: int
    fingerprint: str
    config_fingerprint: str
    result: dict[str, np.ndarray]

    @property
    def nbytes(self) -> int:
        return sum(self.result[name].nbytes for name in RESULT_KEYS)


@dataclass(frozen=True)
class Manifest:
    """What a chunk file holds, without its payload: (G,) arrays as in the module doc
    (``row_stops`` None for a file of one chunk written before groups)."""

    keys: np.ndarray
    chunks: np.ndarray
    fingerprints: np.ndarray
    config_fingerprints: np.ndarray
    row_stops: np.ndarray | None
    fail_stops: np.ndarray | None

    def idents(self) -> list[tuple[int, int]]:
        """(condition key, chunk index) of each chunk, in the file's order."""
        return list(zip(self.keys.tolist(), self.chunks.tolist(), strict=True))


#: the arrays of a group file that say what it holds (:class:`Manifest`'s fields)
MANIFEST_FIELDS = (
    "keys",
    "chunks",
    "fingerprints",
    "config_fingerprints",
    "row_stops",
    "fail_stops",
)


def group_name(sequence: int) -> str:
    """A new group file's name: unique across runs and processes writing into the
    directory one after another (the run lock allows one at a time)."""
    return f"g-{time.time_ns():x}-{os.getpid()}-{sequence:05d}.npz"


def _pack(results: list[dict[str, np.ndarray]], fields: tuple) -> np.ndarray:
    """The columns ``fields`` of every result, one after another, as one structured
    array (strings as wide as the widest)."""
    dtype = []
    for name, code in fields:
        if code == "U":
            width = max((len(s) for r in results for s in r[name]), default=1)
            code = f"U{max(1, width)}"
        dtype.append((name, code))
    out = np.empty(sum(len(r[fields[0][0]]) for r in results), dtype=dtype)
    for name, _ in fields:
        column, start = out[name], 0
        for r in results:
            column[start : start + len(r[name])] = r[name]
            start += len(r[name])
    return out


def write_group(path: Path, batch: list[Saved]) -> Manifest:
    """Write ``batch`` to ``path`` in one atomic step (a reader sees all or nothing);
    returns the file's manifest."""
    results = [s.result for s in batch]
    manifest = Manifest(
        np.array([s.key for s in batch], dtype=np.uint64),
        np.array([s.chunk for s in batch], dtype=np.int64),
        np.array([s.fingerprint for s in batch]),
        np.array([s.config_fingerprint for s in batch]),
        np.cumsum([len(r["est"]) for r in results], dtype=np.int64),
        np.cumsum([len(r["fail_est"]) for r in results], dtype=np.int64),
    )

    def _write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                **{name: getattr(manifest, name) for name in MANIFEST_FIELDS},
                rows=_pack(results, ROW_FIELDS),
                fails=_pack(results, FAIL_FIELDS),
            )

    atomic_write(path, _write)
    return manifest


def read_manifest(path: Path) -> Manifest:
    """The manifest of a chunk file; :class:`Damaged` if it cannot be read."""
    with _opened(path) as data:
        if "keys" in data.files:
            fields = {name: data[name] for name in MANIFEST_FIELDS}
            return Manifest(**fields | {"keys": fields["keys"].astype(np.uint64)})
        found = _LEGACY.fullmatch(path.name)  # a chunk file written before groups
        if found is None:
            raise ValueError(f"{path.name} is not a chunk file")
        config = str(data["config_fingerprint"]) if "config_fingerprint" in data.files else ""
        return Manifest(
            np.array([int(found.group(1), 16)], dtype=np.uint64),
            np.array([int(found.group(2))]),
            np.array([str(data["fingerprint"])]),
            np.array([config]),
            None,
            None,
        )


def read_payload(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The ``rows`` and ``fails`` of a chunk file, every byte checked against the zip's
    CRC; :class:`Damaged` if they do not read whole."""
    with _opened(path) as data:
        return data["rows"], data["fails"]


def chunk_of(
    manifest: Manifest, payload: tuple[np.ndarray, np.ndarray], i: int
) -> dict[str, np.ndarray]:
    """The arrays (:data:`RESULT_KEYS`) of the ``i``-th chunk of a file."""
    rows, fails = payload
    if manifest.row_stops is not None:
        r0 = 0 if i == 0 else int(manifest.row_stops[i - 1])
        f0 = 0 if i == 0 else int(manifest.fail_stops[i - 1])
        rows = rows[r0 : int(manifest.row_stops[i])]
        fails = fails[f0 : int(manifest.fail_stops[i])]
    out = {name: rows[name] for name, _ in ROW_FIELDS}
    out.update({name: fails[name] for name, _ in FAIL_FIELDS})
    return out


def chunk_files(root: Path) -> list[Path]:
    """The chunk files of a directory, oldest first: the files named as mlesim names
    them (groups, and single chunks of earlier versions), not a writer's temporary
    files nor anything else a user put there."""
    if not root.is_dir():
        return []
    names = (p for p in root.glob("*.npz") if _GROUP.fullmatch(p.name) or _LEGACY.fullmatch(p.name))
    return sorted((p for p in names if p.is_file()), key=_age)


def _age(path: Path) -> tuple[int, int, int | str]:
    """Sort key, oldest first: files of earlier versions, then groups by the time and
    sequence in their names."""
    if path.name.startswith("c"):
        return (0, 0, path.name)
    _, stamp, _, seq = path.stem.split("-")
    return (1, int(stamp, 16), int(seq))


def saved_chunks(root: str | os.PathLike) -> int:
    """How many distinct chunks the files under ``root`` hold (0 without it); a file
    that does not read is not counted."""
    seen: set[tuple[int, int]] = set()
    for path in chunk_files(Path(root)):
        try:
            m = read_manifest(path)
        except Damaged:
            continue
        seen.update(m.idents())
    return len(seen)


class GroupWriter:
    """A thread that writes the chunks handed to :meth:`put` in groups, in order.

    ``written(path, manifest)`` is called in the thread after each file is in place. The
    first error of a write (e.g. a full disk) is raised by the next :meth:`put` or
    :meth:`flush`; the chunks of that group are not saved.
    """

    def __init__(self, root: Path, written: Callable[[Path, Manifest], None]):
        self.root = root
        self._written = written
        self._cond = threading.Condition()
        self._queue: list[Saved] = []
        self._bytes = 0
        self._since = 0.0  # when the oldest waiting chunk was put
        self._busy = False
        self._flushing = 0
        self._closing = False
        self._error: BaseException | None = None
        self._sequence = 0
        self._thread = threading.Thread(target=self._loop, name="mlesim-chunks", daemon=True)
        self._thread.start()
        atexit.register(self._at_exit)  # (a daemon thread would not finish at exit)

    def _at_exit(self) -> None:
        """At the interpreter's exit, write what is queued (a Python session that saved
        chunks and never flushed its store)."""
        try:
            self.close()
        except Exception as err:  # noqa: BLE001 - nothing to raise into at exit
            print(f"mlesim: chunks not saved at exit: {err}", file=sys.stderr)

    def put(self, saved: Saved) -> None:
        """Queue one chunk (it is in a file within :data:`GROUP_SECONDS` or so)."""
        with self._cond:
            self._raise_failed()
            first = not self._queue
            if first:
                self._since = time.monotonic()
            self._queue.append(saved)
            self._bytes += saved.nbytes
            if first or self._bytes >= GROUP_BYTES:  # (the thread times the first one)
                self._cond.notify_all()

    def flush(self) -> None:
        """Wait until every chunk put so far is in a file; raise the first error."""
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._queue or self._busy:
                    self._cond.wait()
            finally:
                self._flushing -= 1
            self._raise_failed()

    def close(self) -> None:
        """:meth:`flush`, then end the thread."""
        atexit.unregister(self._at_exit)
        try:
            self.flush()
        finally:
            with self._cond:
                self._closing = True
                self._cond.notify_all()

    def _raise_failed(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _ready(self) -> float | None:
        """0 when the queue should be written now, else how long to wait (None: until
        something is put)."""
        if not self._queue:
            return None
        if self._flushing or self._bytes >= GROUP_BYTES:
            return 0.0
        return max(0.0, self._since + GROUP_SECONDS - time.monotonic())

    def _take(self) -> list[Saved]:
        """The oldest waiting chunks, up to :data:`GROUP_BYTES` (at least one)."""
        size, count = 0, 0
        for saved in self._queue:
            if count and size + saved.nbytes > GROUP_BYTES:
                break
            size, count = size + saved.nbytes, count + 1
        batch, self._queue = self._queue[:count], self._queue[count:]
        self._bytes -= size
        if self._queue:
            self._since = time.monotonic()  # (the rest waits no longer than a group takes)
        return batch

    def _loop(self) -> None:
        while True:
            with self._cond:
                while (wait := self._ready()) != 0.0:
                    if self._closing and not self._queue:
                        return
                    self._cond.wait(wait)
                batch = self._take()
                self._busy = True
                self._sequence += 1
                path = self.root / group_name(self._sequence)
            try:
                self._written(path, write_group(path, batch))
            except BaseException as err:  # noqa: BLE001 - handed to the main thread
                with self._cond:
                    self._error = self._error or err
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
