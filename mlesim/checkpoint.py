"""Checkpoints: every finished chunk is saved, so a killed run resumes where it stopped.

A chunk's results go to ``<run dir>/chunks/c<condition key>-<chunk>.npz`` in one atomic
step (:func:`mlesim.storage.atomic_write`): a reader sees the whole file or none. Each
file carries a *fingerprint*, a SHA-256 of everything that determines its content — the
condition's configuration (truth, model, contamination, estimator specs, design values),
the seed, the condition key, the chunk index and bounds, the mlesim, numpy and scipy
versions, and the source of every plugin module the condition names (``_target_``). A run
with ``runner.resume=true`` skips a chunk whose file holds the expected fingerprint and
recomputes one whose fingerprint differs (stale: made by another configuration).

Without a run directory (``ChunkStore(None)``) the store keeps results in memory, so
the engine has one code path. With one, the chunks saved in this run are also kept in
memory (up to :data:`KEEP_BYTES`) unless the caller assembles them as they arrive
(``save(..., keep=False)``, :class:`mlesim.assembly.Assembly`), so assembling the tables
reads none of them back.

Durability: a chunk file is renamed into place whole, so a killed run (Ctrl-C, ``kill
-9``, a job's time limit) loses no saved chunk. The files are written by one thread
beside the computation (creating a file costs ~1 ms on some file systems, as much as
a small chunk's work), so a ``kill -9`` also loses the chunks still queued for writing
(a fraction of a second's worth); Ctrl-C writes them first. Files are not fsynced one
by one (that would cost a disk flush per chunk): after a power cut or an OS crash the
chunks written in the last seconds before it (the file system's commit interval, ~5–30
s) may be missing or empty, and a resumed run finds them by their fingerprint and the
zip's CRC and computes them again. Nothing wrong is ever read back.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import zipfile
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy

from mlesim.plugins import source_digest, targets_in
from mlesim.storage import atomic_write

if TYPE_CHECKING:
    from mlesim.chunks import Task
    from mlesim.config import Condition

log = logging.getLogger("mlesim")

#: bump when the layout of a chunk file changes (old files then count as stale)
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

#: arrays of a chunk result (see :func:`mlesim.engine.run_task`), stored as two
#: structured arrays: one entry per row of the replicates table, one per failed fit
ROW_FIELDS = (
    ("est", "i2"),
    ("replicate", "i8"),
    ("param", "i2"),
    ("estimate", "f8"),
    ("se", "f8"),
    ("converged", "?"),
)
FAIL_FIELDS = (("fail_est", "i2"), ("fail_row", "i8"), ("fail_reason", "U"))
RESULT_KEYS = tuple(name for name, _ in ROW_FIELDS + FAIL_FIELDS)

#: bytes of this run's chunk results a store with a run directory keeps in memory as
#: well (chunks beyond it are read back from their files when the tables are assembled)
KEEP_BYTES = 2**28


def _pack(result: dict[str, np.ndarray], fields: tuple) -> np.ndarray:
    """Columns of ``result`` named in ``fields`` as one structured array."""
    dtype = [
        (name, f"U{max(1, max(map(len, result[name]), default=1))}" if code == "U" else code)
        for name, code in fields
    ]
    out = np.empty(len(result[fields[0][0]]), dtype=dtype)
    for name, _ in fields:
        out[name] = result[name]
    return out


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


def chunk_name(task: Task) -> str:
    """File name of a chunk: condition key (16 hex digits) and chunk index."""
    return f"c{task.key:016x}-{task.chunk:06d}.npz"


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
        self._writer: ThreadPoolExecutor | None = None  # writes the files, in order
        self._writing: list[Future] = []
        self._shared: dict[tuple[int, bool], tuple[Condition, str]] = {}  # condition_json
        if self.root is not None and self.root.is_dir():
            for tmp in self.root.glob(".*.tmp"):  # left by a killed writer
                tmp.unlink(missing_ok=True)

    def fingerprint(self, task: Task, versions: bool = True) -> str:
        """:func:`fingerprint` of ``task``, its condition's part computed once."""
        key = (id(task.condition), versions)
        hit = self._shared.get(key)
        if hit is None or hit[0] is not task.condition:  # (holding it keeps the id unique)
            hit = self._shared[key] = (task.condition, condition_json(task, versions))
        return _chunk_hash(task, hit[1])

    def path(self, task: Task) -> Path | None:
        """Where ``task``'s chunk is stored (None in memory)."""
        return None if self.root is None else self.root / chunk_name(task)

    def done(self, task: Task) -> bool:
        """True when the chunk need not be computed: saved in this run, or (resume)
        saved earlier with a matching fingerprint."""
        ident = (task.key, task.chunk)
        if ident in self._fresh:
            return True
        if not self.resume:
            return False
        return self._read(task) is not None  # the whole chunk: a damaged payload is redone

    def pending(self, tasks: Iterable[Task]) -> list[Task]:
        """The tasks whose chunk must still be computed, in the given order."""
        return [t for t in tasks if not self.done(t)]

    def save(self, task: Task, result: dict[str, np.ndarray], keep: bool = True) -> None:
        """Store ``result`` (the arrays of :data:`RESULT_KEYS`) for ``task``: at once for
        this store, in its file once the store's writer thread has written it
        (:meth:`flush` waits for that). ``keep=False``: a store with a run directory
        does not also keep the result in memory (the caller has it; :meth:`load`
        reads the file)."""
        fp = self.fingerprint(task)
        ident = (task.key, task.chunk)
        self._fresh.add(ident)
        if self.root is None:  # (memory is where this store keeps them, whatever keep)
            self._memory[ident] = (fp, result)
            return
        size = sum(result[name].nbytes for name in RESULT_KEYS)
        if keep and self._kept + size <= KEEP_BYTES:
            self._memory[ident] = (fp, result)
            self._kept += size
        config_fp = self.fingerprint(task, versions=False)

        def _write(tmp: str) -> None:  # (in the writer thread: packing copies every row)
            with open(tmp, "wb") as fh:
                np.savez(
                    fh,
                    fingerprint=np.asarray(fp),
                    config_fingerprint=np.asarray(config_fp),
                    rows=_pack(result, ROW_FIELDS),
                    fails=_pack(result, FAIL_FIELDS),
                )

        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="mlesim-chunks")
        self._writing = [f for f in self._writing if not f.done() or f.exception()]
        self._raise_failed()
        self._writing.append(self._writer.submit(atomic_write, self.path(task), _write))

    def flush(self) -> None:
        """Wait until every chunk saved so far is in its file; raise the first error
        (e.g. a full disk) of a write."""
        for future in self._writing:
            future.exception()  # waits
        self._raise_failed()
        self._writing = []

    def _raise_failed(self) -> None:
        for future in self._writing:
            if future.done() and future.exception() is not None:
                raise future.exception()

    def provenance(self, task: Task) -> str:
        """Who made ``task``'s chunk file: ``"same"`` (this configuration and versions),
        ``"version"`` (this configuration, other mlesim/numpy/scipy versions),
        ``"other"`` (another configuration), ``"unknown"`` (a file without the
        configuration's fingerprint) or ``"missing"`` (no file, e.g. chunks/ deleted)."""
        path = self.path(task)
        if path is None or not path.is_file():
            return "missing"
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["fingerprint"]) == self.fingerprint(task):
                    return "same"
                if "config_fingerprint" not in data.files:
                    return "unknown"
                same = str(data["config_fingerprint"]) == self.fingerprint(task, versions=False)
                return "version" if same else "other"
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return "unknown"

    def load(self, task: Task) -> dict[str, np.ndarray]:
        """The stored result of ``task``; KeyError if absent or stale."""
        result = self._read(task)
        if result is None:
            raise KeyError(f"no up-to-date chunk {chunk_name(task)}")
        return result

    def results(self, tasks: Iterable[Task]) -> Iterator[dict[str, np.ndarray]]:
        """The stored results of ``tasks``, one at a time, in order."""
        for task in tasks:
            yield self.load(task)

    def _read(self, task: Task, fingerprint_only: bool = False) -> dict | None:
        """The chunk's arrays if its file holds the expected fingerprint and reads whole
        (the zip's CRC checks every byte of the payload), else None."""
        ident = (task.key, task.chunk)
        if self.root is not None and ident not in self._memory and not self.path(task).is_file():
            return None  # (before the fingerprint, which costs more than a stat)
        expected = self.fingerprint(task)
        if ident in self._memory or self.root is None:
            fp, result = self._memory.get(ident, (None, None))
            return result if fp == expected else None
        path = self.path(task)
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["fingerprint"]) != expected:
                    log.debug("stale chunk %s is recomputed", path.name)
                    return None
                if fingerprint_only:
                    return {}
                rows, fails = data["rows"], data["fails"]
                out = {name: rows[name] for name, _ in ROW_FIELDS}
                out.update({name: fails[name] for name, _ in FAIL_FIELDS})
                return out
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            log.warning("damaged chunk %s is recomputed (%s)", path.name, type(err).__name__)
            return None
