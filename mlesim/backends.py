"""Where chunks run: in this process, on joblib's loky or threading workers, or on a
dask.distributed cluster through joblib's dask backend.

``runner.backend=dask`` joins the scheduler at ``runner.dask.address`` or, when that is
null, starts a LocalCluster of ``runner.dask.n_workers`` processes with one thread each
(numerical code is single-threaded per chunk; processes avoid the GIL) and closes it at
the end. With dask the cluster's size, not ``runner.n_jobs``, sets the parallelism.
Results come back in completion order; the engine puts them in place by task, so the
backend never changes the answer.

loky workers die with the run: loky itself never notices that its parent is gone (a
worker left behind by a ``kill -9`` of the run blocks for ever writing a result to the
dead parent's pipe, or waits for work, and the idle timeout cannot end a blocked write),
so the first chunk a worker runs starts a watchdog in it: a daemon thread that checks
once a second that the worker's parent is still the process that started the run (its
pid is taken in that process, before any work is sent, so a parent that died before the
worker got going is noticed too) and otherwise ends the worker with ``os._exit``. Only
the main process saves chunks, so a killed worker loses no saved result, and a resumed
run recomputes whatever it had in hand. Nothing is started in the main process
(``sequential``, ``n_jobs=1``, ``threading``), and what a chunk computes is unchanged.
Parent death is seen through ``os.getppid()``, i.e. on POSIX systems.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from joblib import Parallel, delayed, parallel_config

from mlesim.errors import ConfigError

log = logging.getLogger("mlesim")

#: seconds to wait for a LocalCluster's workers
DASK_TIMEOUT = 60
#: seconds to wait when joining a scheduler at runner.dask.address
JOIN_TIMEOUT = 10


#: the environment variable that sets how much of dask.distributed's own log shows with
#: runner.backend=dask: warning (unset: only what needs attention; the workers' log at
#: error), or debug, info, error for the scheduler, client and workers alike
DASK_LOGS_ENV = "MLESIM_DASK_LOGS"
DASK_LOG_LEVELS = ("debug", "info", "warning", "error")

#: seconds between two checks of a loky worker's parent
PARENT_POLL = 1.0

_watchdog: threading.Thread | None = None  # in a worker: its parent watchdog, once started


def _indexed(func: Callable, i: int, item: Any) -> tuple[int, Any]:
    return i, func(item)


def _orphan_watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL)
    os._exit(1)  # the run is gone: nobody will read this worker's results


def _with_parent_watch(func: Callable, parent: int, item: Any) -> Any:
    """``func(item)`` in a worker process of ``parent`` (the pid of the run's main
    process), which is made to exit once ``parent`` is no longer its parent."""
    global _watchdog
    if _watchdog is None and os.getpid() != parent:
        _watchdog = threading.Thread(
            target=_orphan_watch, args=(parent,), name="mlesim-parent-watch", daemon=True
        )
        _watchdog.start()
    return func(item)


class Pool:
    """Maps a function over items with the backend of ``runner`` (a context manager).

    Parameters
    ----------
    runner : the validated ``runner`` configuration (``backend``, ``n_jobs``, ``dask``)

    A dask cluster is started on the first :meth:`imap_unordered` call, not before, so a
    fully resumed run starts none; :meth:`close` (or leaving the ``with`` block) shuts
    down whatever was started.
    """

    def __init__(self, runner: dict):
        self.runner = runner
        self._stack = contextlib.ExitStack()
        self._client = None

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the dask client and cluster this pool started (if any)."""
        self._client = None
        self._stack.close()

    def imap_unordered(self, func: Callable, items: Iterable) -> Iterator[tuple[int, Any]]:
        """Yield ``(position, func(item))`` as each call finishes, in any order."""
        items = list(items)
        if not items:  # e.g. every chunk resumed: start no cluster
            return
        backend, n_jobs = self.runner["backend"], self.runner["n_jobs"]
        if backend == "dask":
            config = {"backend": "dask", "client": self._dask_client()}
            n_jobs = -1  # the cluster's cores
        elif backend == "sequential" or n_jobs == 1 or len(items) <= 1:
            yield from (_indexed(func, i, item) for i, item in enumerate(items))
            return
        elif backend == "loky":
            config = {"backend": "loky", "inner_max_num_threads": 1}
            func = functools.partial(_with_parent_watch, func, os.getpid())
        else:
            config = {"backend": backend}
        with parallel_config(**config):
            yield from Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
                delayed(_indexed)(func, i, item) for i, item in enumerate(items)
            )

    def _dask_client(self):
        if self._client is None:
            self._client = self._stack.enter_context(dask_client(self.runner["dask"]))
        return self._client


def dask_log_level() -> int | None:
    """The level of :data:`DASK_LOGS_ENV` (None when it is not set)."""
    value = os.environ.get(DASK_LOGS_ENV, "").strip().lower()
    if not value:
        return None
    if value not in DASK_LOG_LEVELS:
        raise ConfigError(
            DASK_LOGS_ENV,
            f"unknown log level {value!r}; allowed: {', '.join(DASK_LOG_LEVELS)}, or unset "
            "(warning)",
        )
    return getattr(logging, value.upper())


@contextlib.contextmanager
def dask_logs(level: int) -> Iterator[None]:
    """dask.distributed's loggers in this process (the scheduler of a LocalCluster, the
    client) at ``level`` while the block runs; as before afterwards. Their INFO lines
    (a dozen per cluster start and stop) would otherwise reach the run's console and
    log through the root logger."""
    logger = logging.getLogger("distributed")
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)


@contextlib.contextmanager
def dask_client(dask: dict) -> Iterator[Any]:
    """A dask.distributed Client: joined to ``dask['address']``, or to a LocalCluster of
    ``dask['n_workers']`` single-threaded worker processes started here and closed on exit.

    dask's own log shows warnings only (:func:`dask_logs`; the workers', errors), unless
    :data:`DASK_LOGS_ENV` asks for another level.
    """
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as err:  # pragma: no cover - dask is an optional extra
        raise RuntimeError(
            "runner.backend=dask needs dask.distributed: pip install 'mlesim[dask]', or "
            "'.[dask]' in a clone"
        ) from err
    asked = dask_log_level()
    with dask_logs(logging.WARNING if asked is None else asked):
        if dask.get("address"):
            log.info("joining the dask scheduler at %s", dask["address"])
            try:
                client = Client(dask["address"], timeout=JOIN_TIMEOUT, set_as_default=False)
            except (OSError, TimeoutError, ValueError, TypeError) as err:
                first = str(err).splitlines()[0] if str(err) else type(err).__name__
                raise ConfigError(
                    "runner.dask.address",
                    f"cannot reach a dask scheduler at {dask['address']!r} within {JOIN_TIMEOUT} s "
                    f"({first}); allowed: the address of a running scheduler, e.g. "
                    "tcp://10.0.0.5:8786, or null for a LocalCluster",
                ) from None
            with client:
                yield client
            return
        with (
            LocalCluster(
                n_workers=dask["n_workers"],
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=logging.ERROR if asked is None else asked,
            ) as cluster,
            Client(cluster, timeout=DASK_TIMEOUT, set_as_default=False) as client,
        ):
            log.info(
                "started a dask LocalCluster at %s with %d workers",
                cluster.scheduler_address,
                dask["n_workers"],
            )
            yield client
