"""Where chunks run: in this process, beside loky helper processes or helper threads
(:class:`Pool`), or on a dask.distributed cluster through joblib's dask backend.

``runner.backend=dask`` joins the scheduler at ``runner.dask.address`` or, when that is
null, starts a LocalCluster of ``runner.dask.n_workers`` processes with one thread each
(numerical code is single-threaded per chunk; processes avoid the GIL) and closes it at
the end. With dask the cluster's size, not ``runner.n_jobs``, sets the parallelism.
Results come back in completion order; the engine puts them in place by task, so the
backend never changes the answer.

loky workers die with the run: loky itself never notices that its parent is gone (a
worker left behind by a ``kill -9`` of the run blocks for ever writing a result to the
dead parent's pipe, or waits for work, and the idle timeout cannot end a blocked write),
so every helper starts a watchdog as it starts (loky's initializer, before any work):
a daemon thread that checks once a second that the helper's parent is still the process
that started the run (its pid is taken in that process, so a parent that died before the
helper got going is noticed too) and otherwise ends the helper with ``os._exit``. Only
the main process saves chunks, so a killed worker loses no saved result, and a resumed
run recomputes whatever it had in hand. Nothing is started in the main process
(``sequential``, ``n_jobs=1``, ``threading``), and what a chunk computes is unchanged.
Parent death is seen through ``os.getppid()``, i.e. on POSIX systems.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import pickle
import signal
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from mlesim import allocator
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


def _helper_start(parent: int) -> None:
    """A loky helper's initializer: glibc's allocator tuned (:mod:`mlesim.allocator`) and
    a watchdog that ends the helper once ``parent`` (the pid of the run's main process,
    taken there before the helper was started) is no longer its parent."""
    global _watchdog
    allocator.tune()
    # a Ctrl-C reaches the whole process group: only the main process answers it (a
    # helper stopped halfway through sending a result would leave loky's pipe torn)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if _watchdog is None and os.getpid() != parent:
        _watchdog = threading.Thread(
            target=_orphan_watch, args=(parent,), name="mlesim-parent-watch", daemon=True
        )
        _watchdog.start()


def stop_helpers() -> None:
    """Shut down loky's reusable executor if this process started one, and run the
    finalisers that release its queues' semaphores — what the interpreter's own exit
    would do — for a command that then ends with ``os._exit``."""
    import multiprocessing.util
    import sys

    module = sys.modules.get("joblib.externals.loky.reusable_executor")
    executor = getattr(module, "_executor", None)
    if executor is None:
        return
    processes = list(getattr(executor, "_processes", {}).values())
    executor.shutdown(wait=False)  # (a helper still starting is let finish: not torn)
    manager = getattr(executor, "_executor_manager_thread", None)
    if manager is not None:  # every wait is bounded: the command ends whatever happens
        manager.join(timeout=10)
    for process in processes:  # gone before their semaphores are
        process.join(timeout=5)
        if process.is_alive():
            process.terminate()
    multiprocessing.util._run_finalizers(0)  # noqa: SLF001 - the exit's own clean-up
    multiprocessing.util._run_finalizers()  # noqa: SLF001


def sendable(func: Callable, item: Any) -> None:
    """Raise :class:`pickle.PicklingError` (as loky would, later) unless ``func`` and
    ``item`` can be sent to a loky process: checked before the main process starts, so
    that a study gets the same answer whether or not it is large enough to use helpers."""
    from joblib.externals.loky.backend.reduction import dumps

    try:
        dumps((func, item))
    except (pickle.PicklingError, TypeError, AttributeError) as err:
        raise pickle.PicklingError(
            f"Could not pickle the task to send it to the workers: {err}"
        ) from err


def cores(n_jobs: int | str) -> int:
    """The processes (or threads) ``runner.n_jobs`` asks for: ``auto`` and ``-1`` are the
    cores this process may run on (its CPU affinity: a SLURM allocation or a cgroup's
    share, not the whole machine)."""
    if n_jobs in ("auto", -1):
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except (AttributeError, OSError):  # pragma: no cover - not on Linux
            return max(1, os.cpu_count() or 1)
    return int(n_jobs)


#: chunks sent ahead to each helper, so that it never waits for the main process
AHEAD = 2
#: seconds of work left (at the main process's pace) below which no helper is started:
#: a few times what a loky process takes to start (~0.3 s) plus what judging whether it
#: pays costs where it does not (:class:`Pace`), so that trying never costs a study much
HELPER_START = 3.0


class Pool:
    """Maps a function over items with the backend of ``runner`` (a context manager).

    Parameters
    ----------
    runner : the validated ``runner`` configuration (``backend``, ``n_jobs``, ``dask``)

    With loky or threading and ``n_jobs = k > 1`` the main process is one of the k: it
    computes items itself from the first moment, from the back of the list, while
    k − 1 helpers (loky processes, or threads) take them from the front. A study too
    small to pay for starting a process is thus done by the main process alone (see
    :meth:`_shared` for when helpers start and are retired); when the list runs out,
    the main process also computes the items still waiting at a helper that has not
    answered yet, and whichever copy comes first is used (a chunk's result does not
    depend on who computes it). The loky helpers are loky's reusable executor, kept
    warm for the next study of the same process (a sweep). A dask cluster is started on
    the first :meth:`imap_unordered` call, not before, so a fully resumed run starts
    none; :meth:`close` (or leaving the ``with`` block) shuts down whatever was started.
    """

    def __init__(self, runner: dict):
        self.runner = runner
        self._stack = contextlib.ExitStack()
        self._client = None
        self._executor: Any = None
        self._retired = False  # helpers judged not to pay (for the rest of the run)

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the dask client and cluster this pool started (if any), and the thread
        helpers (their queued items are cancelled). loky's helpers stay, warm for the
        next study of this process (a sweep); items they compute after the main process
        did them are dropped, and :func:`stop_helpers` ends them with the command."""
        self._client = None
        self._stack.close()
        if self._executor is not None and self.runner["backend"] != "loky":
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = None

    def imap_unordered(self, func: Callable, items: Iterable) -> Iterator[tuple[int, Any]]:
        """Yield ``(position, func(item))`` as each call finishes, in any order."""
        items = list(items)
        if not items:  # e.g. every chunk resumed: start no cluster
            return
        backend, k = self.runner["backend"], cores(self.runner["n_jobs"])
        if backend == "dask":
            from joblib import Parallel, delayed, parallel_config

            with parallel_config(backend="dask", client=self._dask_client()):
                yield from Parallel(n_jobs=-1, return_as="generator_unordered")(
                    delayed(_indexed)(func, i, item) for i, item in enumerate(items)
                )
        elif backend == "sequential" or k == 1 or len(items) == 1:
            yield from (_indexed(func, i, item) for i, item in enumerate(items))
        else:
            yield from self._shared(func, items, k - 1)

    def _dask_client(self) -> Any:
        if self._client is None:
            self._client = self._stack.enter_context(dask_client(self.runner["dask"]))
        return self._client

    def _helpers(self, count: int) -> Any:
        """The executor of ``count`` helpers (started once per pool)."""
        if self._executor is None:
            if self.runner["backend"] == "loky":
                from joblib.externals.loky import get_reusable_executor

                single = {
                    v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
                }
                self._executor = get_reusable_executor(
                    max_workers=count,
                    timeout=300,
                    env=single,
                    initializer=_helper_start,
                    initargs=(os.getpid(),),
                )
            else:
                self._executor = ThreadPoolExecutor(count, thread_name_prefix="mlesim")
        return self._executor

    def _shared(self, func: Callable, items: list, count: int) -> Iterator[tuple[int, Any]]:
        """Items done by the main process (from the back) and ``count`` helpers (from
        the front); each position is yielded once.

        The main process first works alone. It starts the helpers (unless they are
        warm already) only once it has timed a few items (:data:`PROBE_ITEMS`) and the
        items left would take it more than :data:`HELPER_START` seconds; and it retires
        them for good when, working beside them, it is so much slower per item that
        they do not pay (:class:`Pace`): two "cores" that share one physical core, or
        memory bandwidth, give no more than one.
        """
        if self.runner["backend"] == "loky":
            sendable(func, items[0])  # the same answer for a small study and a large one
        queue = collections.deque(range(len(items)))
        pace, started = Pace(count), time.perf_counter()
        while queue and (self._executor is None or self._retired):
            if not self._retired and pace.worth_helpers(len(queue)):
                break
            i = queue.pop()
            yield pace.alone(func, i, items[i])
        if not queue:
            return
        try:
            yield from self._share(func, items, queue, pace)
        finally:
            log.debug("pool: %s in %.2f s", pace, time.perf_counter() - started)

    def _share(
        self, func: Callable, items: list, queue: collections.deque, pace: Pace
    ) -> Iterator[tuple[int, Any]]:
        """The items of ``queue``: the helpers take them from the front (at most
        :data:`AHEAD` per helper sent ahead), the main process from the back."""
        executor = self._helpers(pace.count)
        flight: dict[Future, int] = {}
        done: set[int] = set(range(len(items))) - set(queue)
        while len(done) < len(items):
            if pace.retire_helpers():
                self._retired = True
            while queue and not self._retired and len(flight) < AHEAD * pace.count:
                i = queue.popleft()
                flight[executor.submit(_indexed, func, i, items[i])] = i
            for future in [f for f in flight if f.done()]:
                i = flight.pop(future)
                result = future.result()  # a helper's exception is raised here
                pace.answered = True
                if i not in done:
                    done.add(i)
                    yield result
            if queue:
                i = queue.pop()
            else:  # only items at helpers left: do those no working helper has begun
                waiting = [i for i in flight.values() if i not in done]
                if not waiting:
                    continue
                if pace.answered and not self._retired and len(waiting) <= pace.count:
                    wait(list(flight), return_when=FIRST_COMPLETED)  # being computed
                    continue
                i = waiting[-1]
            done.add(i)
            yield pace.beside(func, i, items[i])


#: items the main process times alone before it may start helpers
PROBE_ITEMS = 3
#: items the main process times beside working helpers before judging them
JUDGE_ITEMS = 5
#: the least gain, (1 + helpers) / (the main process's slowdown beside them), for which
#: helpers are kept
KEEP_GAIN = 1.25


class Pace:
    """The main process's seconds per item alone and beside ``count`` helpers, and
    what they say: start helpers? keep them?

    The first item is not timed (it pays for the study's first imports). The gain of
    helpers is judged from the main process's own items (all from the back of the
    list, so alike), as (1 + count) / slowdown, where the slowdown is the median time
    per item beside the helpers over the median alone: about 1 on real cores (a gain
    of 1 + count), about 1 + count where they share one core (no gain).
    """

    def __init__(self, count: int):
        self.count = count
        self.times_alone: list[float] = []
        self.times_beside: list[float] = []
        self.first = True
        self.answered = False  # has a helper returned an item (is one at work)?
        self.judged: bool | None = None

    def __repr__(self) -> str:
        return (
            f"{len(self.times_alone)} items timed alone, {len(self.times_beside)} beside "
            f"{self.count} helper(s), helpers kept: {self.judged}"
        )

    def alone(self, func: Callable, i: int, item: Any) -> tuple[int, Any]:
        """``_indexed(func, i, item)`` by the main process alone, timed."""
        return self._timed(self.times_alone, func, i, item)

    def beside(self, func: Callable, i: int, item: Any) -> tuple[int, Any]:
        """The same by the main process while helpers work (timed once they answer)."""
        return self._timed(self.times_beside if self.answered else [], func, i, item)

    def _timed(self, times: list, func: Callable, i: int, item: Any) -> tuple[int, Any]:
        start = time.perf_counter()
        out = _indexed(func, i, item)
        if not self.first:
            times.append(time.perf_counter() - start)
        self.first = False
        return out

    def worth_helpers(self, left: int) -> bool:
        """Whether to start helpers now: a few items timed, and ``left`` items would
        take the main process alone more than :data:`HELPER_START` seconds."""
        if len(self.times_alone) < PROBE_ITEMS - 1 and sum(self.times_alone) < HELPER_START / 4:
            return False
        if not self.times_alone:
            return False
        return statistics.median(self.times_alone) * left > HELPER_START

    def retire_helpers(self) -> bool:
        """True once (and from then on) the helpers are judged not to pay."""
        if self.judged is None and len(self.times_beside) >= JUDGE_ITEMS and self.times_alone:
            slowdown = statistics.median(self.times_beside) / statistics.median(self.times_alone)
            self.judged = (1 + self.count) / max(slowdown, 1e-9) >= KEEP_GAIN
            if not self.judged:
                log.debug(
                    "helpers retired: the main process ran %.1f× slower beside them", slowdown
                )
        return self.judged is False


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
