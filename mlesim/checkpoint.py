"""Checkpoints: every finished chunk is saved, so a killed run resumes where it stopped.

Finished chunks go to ``<run dir>/chunks/`` several to a file (:mod:`mlesim.chunkfiles`),
each file in one atomic step (:func:`mlesim.storage.atomic_write`): a reader sees the
whole file or none. Each chunk carries a *fingerprint*, a SHA-256 of everything that
determines its content — the condition's configuration (truth, model, contamination,
estimator specs, design values), the seed, the condition key, the chunk index and
bounds, the mlesim, numpy and scipy versions, and the source of every plugin module the
condition names (``_target_``). A run with ``runner.resume=true`` skips a chunk saved
with the expected fingerprint and recomputes one whose fingerprint differs (stale: made
by another configuration). A file whose chunks have all been saved again since (stale,
damaged, or ``runner.resume=false``) is deleted once their new file is in place.

Without a run directory (``ChunkStore(None)``) the store keeps results in memory, so
the engine has one code path. With one, the chunks saved in this run are also kept in
memory (up to :data:`KEEP_BYTES`) unless the caller assembles them as they arrive
(``save(..., keep=False)``, :class:`mlesim.assembly.Assembly`), so assembling the tables
reads none of them back.

Durability: a file is renamed into place whole, so a killed run (Ctrl-C, ``kill -9``, a
job's time limit) loses no chunk already in a file. The files are written by one thread
beside the computation, a group at a time (:class:`mlesim.chunkfiles.GroupWriter`:
creating a file costs ~1 ms of system time on some file systems, as much as a small
chunk's work), so a ``kill -9`` also loses the chunks finished in the last
:data:`~mlesim.chunkfiles.GROUP_SECONDS` (a quarter of a second) or being written;
Ctrl-C writes them first. Files are not fsynced (that would cost a disk flush per
file): after a power cut or an OS crash the files written in the last seconds before it
(the file system's commit interval, ~5–30 s) may be missing or empty, and a resumed run
finds them by their fingerprints and the zip's CRC and computes their chunks again.
Nothing wrong is ever read back.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy

from mlesim.chunkfiles import (
    Damaged,
    GroupWriter,
    Manifest,
    Saved,
    chunk_files,
    chunk_of,
    read_manifest,
    read_payload,
)
from mlesim.plugins import source_digest, targets_in

if TYPE_CHECKING:
    from mlesim.chunks import Task
    from mlesim.config import Condition

log = logging.getLogger("mlesim")

#: bump when what a chunk's saved arrays mean changes (old chunks then count as stale)
FORMAT = 1

#: configuration keys that cannot change a chunk's content (chunk bounds and design
#: values enter the fingerprint separately)
IGNORED_KEYS = frozenset(
    {
        "name",
        "study",
        "analysis",
        "runner",
        "replications",
        "stopping",
        "confidence",
        "compare",
        "estimand",
        "design",
        "n",
        "hydra",
    }
)


@functools.cache
def mlesim_version() -> str:
    """The installed mlesim version ('unknown' when not installed)."""
    try:
        return version("mlesim")
    except PackageNotFoundError:  # pragma: no cover - the package is installed in use
        return "unknown"


def fingerprint(task: Task, versions: bool = True) -> str:
    """SHA-256 (hex) of everything that determines the content of ``task``'s chunk;
    ``versions=False`` leaves out the mlesim, numpy and scipy versions (the configuration
    alone, which :func:`mlesim.replay.replay` checks).

    The hash is of the JSON (sorted keys) of: the format, the versions, the condition's
    configuration less :data:`IGNORED_KEYS`, its factors, the seed, the condition key,
    the chunk index and bounds, the model's parameter order and the source digest of
    every plugin module the configuration names."""
    return _chunk_hash(task, condition_json(task, versions))


def condition_json(task: Task, versions: bool = True) -> str:
    """The part of :func:`fingerprint`'s JSON shared by every chunk of ``task``'s
    condition: the sorted-keys JSON object without the chunk's index and bounds, less
    its braces (a store computes it once per condition)."""
    config = {k: v for k, v in task.condition.config.items() if k not in IGNORED_KEYS}
    content: dict = {"format": FORMAT}
    if versions:  # a different version may change the streams or the fits
        content.update(mlesim=mlesim_version(), numpy=np.__version__, scipy=scipy.__version__)
    content |= {
        "config": config,
        "factors": task.condition.factors,
        "seed": task.seed,
        "condition_key": task.key,
    }
    scen = task.condition.scenario
    if scen is not None:  # the parameters' order (an estimand mapping's keys) sets columns
        content["params"] = list(scen.model.params)
    plugins = targets_in(task.condition.config)
    if plugins:  # an edited plugin module makes its chunks stale
        path = scen.search_path if scen is not None else None
        content["plugins"] = {t: source_digest(t, path) for t in plugins}
    return json.dumps(content, sort_keys=True, default=repr)[1:-1]


def _chunk_hash(task: Task, shared: str) -> str:
    """SHA-256 of ``json.dumps(content, sort_keys=True)`` with the chunk's own keys put
    in their sorted places: "chunk" sorts before every shared key, "start" and "stop"
    after them."""
    canon = f'{{"chunk": {task.chunk}, {shared}, "start": {task.start}, "stop": {task.stop}}}'
    return hashlib.sha256(canon.encode()).hexdigest()


#: bytes of this run's chunk results a store with a run directory keeps in memory as
#: well (chunks beyond it are read back from their files when the tables are assembled),
#: and bytes of chunk files' payloads it keeps read for the next chunk of the same file
KEEP_BYTES = 2**28


@dataclass(frozen=True)
class _Entry:
    """One saved chunk: the ``index``-th of the file ``path``."""

    path: Path
    index: int
    fingerprint: str
    config_fingerprint: str


class ChunkStore:
    """Finished chunks, on disk under ``root`` or in memory when ``root`` is None.

    Parameters
    ----------
    root : directory of the chunk files (created when the first chunk is saved), or None
    resume : reuse chunks saved by an earlier run when their fingerprint matches
    """

    def __init__(self, root: str | Path | None, resume: bool = True):
        self.root = None if root is None else Path(root)
        self.resume = resume
        self._memory: dict[tuple[int, int], tuple[str, dict]] = {}
        self._kept = 0  # bytes of results held in _memory beside their files
        self._fresh: set[tuple[int, int]] = set()
        self._shared: dict[tuple[int, bool], tuple[Condition, str]] = {}  # condition_json
        self._writer: GroupWriter | None = None
        self._lock = threading.Lock()  # the index below is also updated by the writer
        self._entries: dict[tuple[int, int], list[_Entry]] = {}  # newest file first
        self._manifests: dict[Path, Manifest] = {}
        self._live: dict[Path, set[tuple[int, int]]] = {}  # chunks not saved again since
        self._payloads: OrderedDict[Path, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._cached = 0  # bytes in _payloads
        self._damaged: set[Path] = set()
        self._used: set[Path] = set()  # files a chunk was read from: never deleted
        self._unreadable: list[Path] = []  # deleted when this store first writes
        if self.root is not None and self.root.is_dir():
            for path in chunk_files(self.root):  # oldest first
                try:
                    self._add(path, read_manifest(path))
                except Damaged as err:
                    log.warning(
                        "damaged chunk file %s is ignored: its chunks are computed again (%s)",
                        path.name,
                        err,
                    )
                    self._unreadable.append(path)

    def fingerprint(self, task: Task, versions: bool = True) -> str:
        """:func:`fingerprint` of ``task``, its condition's part computed once."""
        key = (id(task.condition), versions)
        hit = self._shared.get(key)
        if hit is None or hit[0] is not task.condition:  # (holding it keeps the id unique)
            hit = self._shared[key] = (task.condition, condition_json(task, versions))
        return _chunk_hash(task, hit[1])

    def done(self, task: Task) -> bool:
        """True when the chunk need not be computed: saved in this run, or (resume)
        saved earlier with a matching fingerprint."""
        ident = (task.key, task.chunk)
        if ident in self._fresh:
            return True
        if not self.resume:
            return False
        return self._read(task) is not None  # the whole file: a damaged payload is redone

    def pending(self, tasks: Iterable[Task]) -> list[Task]:
        """The tasks whose chunk must still be computed, in the given order (their
        files checked one at a time, :meth:`by_file`)."""
        tasks = list(tasks)
        done = {id(t) for t in self.by_file(tasks) if self.done(t)}
        self.forget_read()  # (read again when the resumed chunks are assembled)
        return [t for t in tasks if id(t) not in done]

    def save(self, task: Task, result: dict[str, np.ndarray], keep: bool = True) -> None:
        """Store ``result`` (the arrays of :data:`~mlesim.work.RESULT_KEYS`) for
        ``task``: at once for this store, in a file once the store's writer thread has
        written it (:meth:`flush` waits for that). ``keep=False``: a store with a run
        directory does not also keep the result in memory (the caller has it;
        :meth:`load` reads the file)."""
        fp = self.fingerprint(task)
        ident = (task.key, task.chunk)
        self._fresh.add(ident)
        if self.root is None:  # (memory is where this store keeps them, whatever keep)
            self._memory[ident] = (fp, result)
            return
        saved = Saved(task.key, task.chunk, fp, self.fingerprint(task, versions=False), result)
        if keep and self._kept + saved.nbytes <= KEEP_BYTES:
            self._memory[ident] = (fp, result)
            self._kept += saved.nbytes
        if self._writer is None:
            self._start_writing()
        self._writer.put(saved)

    def _start_writing(self) -> None:
        """Before this store's first file: clear what a killed writer left (its
        temporary files, under the run's lock; not when a store only reads, as
        :mod:`mlesim.replay` does beside a run) and the damaged files, whose chunks
        are being computed again."""
        for tmp in self.root.glob(".*.tmp") if self.root.is_dir() else ():
            tmp.unlink(missing_ok=True)
        for path in self._unreadable:
            path.unlink(missing_ok=True)
        self._unreadable = []
        self._writer = GroupWriter(self.root, self._written)

    def flush(self) -> None:
        """Wait until every chunk saved so far is in its file; raise the first error
        (e.g. a full disk) of a write."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()

    def provenance(self, task: Task) -> str:
        """Who made ``task``'s saved chunk: ``"same"`` (this configuration and versions),
        ``"version"`` (this configuration, other mlesim/numpy/scipy versions),
        ``"other"`` (another configuration), ``"unknown"`` (a file without the
        configuration's fingerprint) or ``"missing"`` (none, e.g. chunks/ deleted)."""
        entries = self._entries.get((task.key, task.chunk), [])
        if not entries:  # (a damaged file may have held it)
            return "unknown" if self._unreadable or self._damaged else "missing"
        if any(e.fingerprint == self.fingerprint(task) for e in entries):
            return "same"
        if not any(e.config_fingerprint for e in entries):
            return "unknown"
        config = self.fingerprint(task, versions=False)
        return "version" if any(e.config_fingerprint == config for e in entries) else "other"

    def load(self, task: Task) -> dict[str, np.ndarray]:
        """The stored result of ``task``; KeyError if absent or stale."""
        result = self._read(task)
        if result is None:
            raise KeyError(f"no up-to-date chunk {task.key:016x}-{task.chunk:06d}")
        return result

    def results(self, tasks: Iterable[Task]) -> Iterator[dict[str, np.ndarray]]:
        """The stored results of ``tasks``, one at a time, in order."""
        try:
            for task in tasks:
                yield self.load(task)
        finally:
            self.forget_read()

    def forget_read(self) -> None:
        """Let go of the files' contents kept for their next chunk."""
        self._payloads.clear()
        self._cached = 0

    def by_file(self, tasks: Iterable[Task]) -> list[Task]:
        """``tasks`` in the order their chunks lie in the files (loading them in this
        order reads each file once)."""
        order = {path: i for i, path in enumerate(self._manifests)}

        def where(task: Task) -> tuple[int, int]:
            entries = self._entries.get((task.key, task.chunk))
            return (order.get(entries[0].path, -1), entries[0].index) if entries else (-1, 0)

        return sorted(tasks, key=where)

    def _read(self, task: Task) -> dict | None:
        """The chunk's arrays if it is saved with the expected fingerprint in a file that
        reads whole (the zip's CRC checks every byte of the payload), else None."""
        ident = (task.key, task.chunk)
        if ident in self._memory or self.root is None:
            fp, result = self._memory.get(ident, (None, None))
            return result if fp == self.fingerprint(task) else None
        entries = self._entries.get(ident)
        if not entries:
            return None  # (before the fingerprint, which costs more than a lookup)
        expected = self.fingerprint(task)
        for entry in entries:
            if entry.fingerprint != expected:
                log.debug("stale chunk %s in %s is recomputed", entry.index, entry.path.name)
                continue
            payload = self._payload(entry.path)
            if payload is not None:
                self._used.add(entry.path)
                return chunk_of(self._manifests[entry.path], payload, entry.index)
        return None

    def _payload(self, path: Path) -> tuple[np.ndarray, np.ndarray] | None:
        """A file's rows and fails, kept for its next chunk (up to :data:`KEEP_BYTES` of
        files, the most recent kept); None if the file is damaged (said once)."""
        if path in self._damaged:
            return None
        if path in self._payloads:
            self._payloads.move_to_end(path)
            return self._payloads[path]
        try:
            payload = read_payload(path)
        except Damaged as err:
            log.warning("damaged chunk file %s: its chunks are computed again (%s)", path.name, err)
            self._damaged.add(path)
            return None
        self._payloads[path] = payload
        self._cached += _nbytes(payload)
        while len(self._payloads) > 1 and self._cached > KEEP_BYTES:
            self._cached -= _nbytes(self._payloads.popitem(last=False)[1])
        return payload

    def _add(self, path: Path, manifest: Manifest) -> None:
        """Index the chunks of the file ``path`` (newer than every file indexed): the
        older files' copies of its chunks are no longer live."""
        idents = manifest.idents()
        self._manifests[path] = manifest
        self._live[path] = set(idents)
        for ident in idents:
            for entry in self._entries.get(ident, []):
                self._live[entry.path].discard(ident)
        for i, ident in enumerate(idents):
            entry = _Entry(
                path, i, str(manifest.fingerprints[i]), str(manifest.config_fingerprints[i])
            )
            self._entries.setdefault(ident, []).insert(0, entry)

    def _written(self, path: Path, manifest: Manifest) -> None:
        """(In the writer thread) index a new file; delete the files none of whose
        chunks is left unsaved since."""
        saved = set(manifest.idents())
        with self._lock:
            done = set()
            for ident in saved:
                for entry in self._entries.get(ident, []):
                    live = self._live[entry.path]
                    if live and live <= saved:
                        done.add(entry.path)  # (its last live chunks are in this file)
            self._add(path, manifest)
            done -= self._used
            for old in done:
                self._forget(old)
        for old in done:
            old.unlink(missing_ok=True)

    def _forget(self, path: Path) -> None:
        """Drop a file from the index (under the lock)."""
        manifest = self._manifests.pop(path)
        del self._live[path]
        payload = self._payloads.pop(path, None)
        self._cached -= 0 if payload is None else _nbytes(payload)
        for ident in manifest.idents():
            entries = [e for e in self._entries.get(ident, []) if e.path != path]
            if entries:
                self._entries[ident] = entries
            else:
                self._entries.pop(ident, None)


def _nbytes(payload: tuple[np.ndarray, np.ndarray]) -> int:
    return payload[0].nbytes + payload[1].nbytes
