"""Where chunks run: in this process, beside helper processes or helper threads
(:class:`Pool`), or on a dask.distributed cluster through joblib's dask backend.

``runner.backend=dask`` joins the scheduler at ``runner.dask.address`` or, when that is
null, starts a LocalCluster of ``runner.dask.n_workers`` processes with one thread each
(numerical code is single-threaded per chunk; processes avoid the GIL) and closes it at
the end. With dask the cluster's size, not ``runner.n_jobs``, sets the parallelism.
Results come back in completion order; the engine puts them in place by task, so the
backend never changes the answer.

``runner.backend=loky`` shares the chunks between the main process and helper
processes, ``threading`` with helper threads (:mod:`mlesim.helpers`: forked processes on
Linux, which start in milliseconds; spawned ones elsewhere). Helper processes die with
the run (killed by the kernel with it on Linux, ended by a watchdog elsewhere), only the
main process saves chunks (a killed helper loses no saved result; a resumed run
recomputes whatever it had in hand), and what a chunk computes is unchanged. Nothing is
started in the main process with ``sequential`` or ``n_jobs=1``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from mlesim.errors import ConfigError
from mlesim.helpers import FORK, GONE, Claims, Helpers, HelperTraceback, process_context

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


def _indexed(func: Callable, i: int, item: Any) -> tuple[int, Any]:
    return i, func(item)


def run_finalisers() -> None:
    """Run multiprocessing's finalisers, as the interpreter's exit would (they release
    the semaphores of spawned helpers' shared counters), for a command that then ends
    with ``os._exit``. The helpers themselves are stopped by their :class:`Pool` (and a
    helper whose main process is gone ends with it)."""
    import sys

    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        util._run_finalizers(0)  # noqa: SLF001 - the exit's own clean-up
        util._run_finalizers()  # noqa: SLF001


def sendable(func: Callable, item: Any) -> None:
    """Raise :class:`pickle.PicklingError` unless ``func`` and ``item`` can be sent to a
    spawned helper process (where helpers are not forked): checked before the main
    process starts, so that a study gets the same answer whether or not it is large
    enough to use helpers."""
    from multiprocessing.reduction import ForkingPickler

    try:
        ForkingPickler.dumps((func, item))
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


#: seconds of work left (at the main process's pace) below which no spawned helper is
#: started (where helpers are not forked): a few times what a new interpreter takes to
#: import the stack (~0.5 s) plus what judging whether it pays costs where it does not
#: (:class:`Pace`), so that trying never costs a study much. Forked helpers and threads,
#: which start in milliseconds, start with the computation.
SPAWN_START = 3.0


class Pool:
    """Maps a function over items with the backend of ``runner`` (a context manager).

    Parameters
    ----------
    runner : the validated ``runner`` configuration (``backend``, ``n_jobs``, ``dask``)

    With loky or threading and ``n_jobs = k > 1`` the main process is one of the k: it
    computes items itself from the first moment, from the back of the list, while
    k − 1 helpers (:mod:`mlesim.helpers`: processes, or threads) each take the next one
    from the front as soon as they are free (see :meth:`_shared` for when helpers
    start and are retired); when the list runs out, the main process waits for the
    helpers' last items, or computes those itself when no helper has answered yet or an
    answer is overdue (:meth:`Pace.patience`: a helper that is stuck or failed to
    start): whichever copy comes first is used, since a chunk's result does not depend
    on who computes it. Helpers serve one
    :meth:`imap_unordered` call and are stopped at its end. A dask cluster is started
    on the first :meth:`imap_unordered` call, not before, so a fully resumed run starts
    none; :meth:`close` (or leaving the ``with`` block) shuts down whatever was started.
    """

    def __init__(self, runner: dict):
        self.runner = runner
        self._stack = contextlib.ExitStack()
        self._client = None
        self._helpers: Helpers | None = None  # those of the call under way
        self._retired = False  # helpers judged not to pay (for the rest of the run)

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the dask client and cluster this pool started (if any) and stop the
        helpers of a call left unfinished."""
        self._client = None
        self._stack.close()
        self._stop_helpers()

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

    def _stop_helpers(self) -> None:
        if self._helpers is not None:
            self._helpers.close()
            self._helpers = None

    def _shared(self, func: Callable, items: list, count: int) -> Iterator[tuple[int, Any]]:
        """Items done by the main process (from the back) and ``count`` helpers (from
        the front); each position is yielded once.

        Forked helpers and threads start with the computation. Where helpers are
        spawned, the main process first works alone and starts them only once it has
        timed a few items (:data:`PROBE_ITEMS`) and the items left would take it more
        than :data:`SPAWN_START` seconds. It retires the helpers for good when, working
        beside them, it waits for the CPU so much that they do not pay (:class:`Pace`):
        helpers on cores that other work already keeps busy, or threads that hold the GIL.
        """
        threads = self.runner["backend"] == "threading"
        if not threads and not FORK:
            sendable(func, items[0])  # the same answer for a small study and a large one
        # processes: is the main process waiting for a core? (its own threads' GIL
        # turns do not count); threads: is the main thread waiting for the GIL?
        pace = Pace(count, time.thread_time if threads else time.process_time)
        last, started = len(items) - 1, time.perf_counter()
        spawned = not threads and not FORK
        while last >= 0 and (self._retired or (spawned and not pace.worth_helpers(last + 1))):
            yield pace.alone(func, last, items[last])
            last -= 1
        if last < 0:
            return
        count = pace.count = min(count, last)  # (no more helpers than items for them)
        claims = Claims(last, None if threads else process_context())
        self._helpers = Helpers(func, items, claims, count, threads)
        try:
            yield from self._share(func, items, claims, pace)
        finally:
            self._stop_helpers()
            log.debug("pool: %s in %.2f s", pace, time.perf_counter() - started)

    def _share(
        self, func: Callable, items: list, claims: Claims, pace: Pace
    ) -> Iterator[tuple[int, Any]]:
        """Positions ``0..back`` of ``claims``: the helpers take them from the front,
        the main process from the back; then the main process waits for the helpers'
        last items (or computes them, see :class:`Pool`)."""
        helpers, count = self._helpers, pace.count
        done: set[int] = set()
        gone = 0  # helpers that have ended
        total = claims.front_back()[1] + 1

        def take(message: tuple) -> Iterator[tuple[int, Any]]:
            nonlocal gone
            i, ok, value = message
            if i == GONE:
                gone += 1
                if value not in (0, None):
                    log.warning(
                        "a helper process ended (exit code %s); the main process does its items",
                        value,
                    )
            elif not ok:
                err, text = value
                err.__cause__ = HelperTraceback(text)
                raise err
            elif i not in done:
                pace.answered = True
                done.add(i)
                yield i, value

        while len(done) < total:
            for message in helpers.ready():
                yield from take(message)
            if not self._retired and pace.retire_helpers():
                self._retired = True
                claims.stop()
            i = claims.take_back()
            if i is None:  # only items taken by helpers are left
                waiting = [j for j in range(claims.front_back()[0]) if j not in done]
                if not waiting:
                    continue
                if pace.answered and gone < count and not self._retired:
                    message = helpers.get(timeout=pace.patience())  # being computed
                    if message is not None:
                        yield from take(message)
                        continue  # (none in time: a helper is stuck, do its last item)
                i = waiting[-1]
            done.add(i)
            yield pace.beside(func, i, items[i])


#: items the main process times alone before it may start spawned helpers
PROBE_ITEMS = 3
#: items the main process times beside working helpers before judging them
JUDGE_ITEMS = 5
#: the least gain, (1 + helpers) / (the main process's slowdown beside them), for which
#: helpers are kept
KEEP_GAIN = 1.25
#: at the end, the main process waits for a helper's item this many times its own slowest
#: item (at least MIN_PATIENCE seconds) before it computes the item too
PATIENCE, MIN_PATIENCE = 4.0, 1.0


class Pace:
    """The main process's items timed alone and beside ``count`` helpers, and what they
    say: start (spawned) helpers? keep them?

    The gain of helpers is (1 + count) / slowdown, where the slowdown is how much
    longer the main process waits per second of its own CPU time beside the helpers
    than alone (wall time over ``cpu`` time, summed over its items; alone, where no item
    was timed alone, it waits for nothing): about 1 on free cores (a gain of 1 + count),
    about 1 + count where all share one core, whatever each item costs. ``cpu`` is the
    process's CPU clock for helper processes (the question is whether the main process
    has a core: its own threads — the chunk writer, the results reader — taking turns
    with the GIL do not count) and the main thread's for helper threads (whether the
    GIL lets it run).
    The first item is not timed (it pays for the study's first imports).
    """

    def __init__(self, count: int, cpu: Callable[[], float] = time.process_time):
        self.count = count
        self.cpu = cpu  # the CPU clock the waiting is judged by
        self.alone_times: list[tuple[float, float]] = []  # (wall, CPU) seconds per item
        self.beside_times: list[tuple[float, float]] = []
        self.first = True
        self.longest = 0.0  # wall seconds of the longest item, the first included
        self.answered = False  # has a helper returned an item (is one at work)?
        self.judged: bool | None = None

    def __repr__(self) -> str:
        return (
            f"{len(self.alone_times)} items timed alone, {len(self.beside_times)} beside "
            f"{self.count} helper(s), helpers kept: {self.judged}"
        )

    def alone(self, func: Callable, i: int, item: Any) -> tuple[int, Any]:
        """``_indexed(func, i, item)`` by the main process alone, timed."""
        return self._timed(self.alone_times, func, i, item)

    def beside(self, func: Callable, i: int, item: Any) -> tuple[int, Any]:
        """The same by the main process while helpers work (timed once they answer)."""
        return self._timed(self.beside_times if self.answered else [], func, i, item)

    def _timed(self, times: list, func: Callable, i: int, item: Any) -> tuple[int, Any]:
        wall, cpu = time.perf_counter(), self.cpu()
        out = _indexed(func, i, item)
        wall = time.perf_counter() - wall
        if not self.first:
            times.append((wall, self.cpu() - cpu))
        self.first = False
        self.longest = max(self.longest, wall)
        return out

    def worth_helpers(self, left: int) -> bool:
        """Whether to start spawned helpers now: a few items timed, and ``left`` items
        would take the main process alone more than :data:`SPAWN_START` seconds."""
        walls = [wall for wall, _ in self.alone_times]
        if len(walls) < PROBE_ITEMS - 1 and sum(walls) < SPAWN_START / 4:
            return False
        return bool(walls) and statistics.median(walls) * left > SPAWN_START

    def patience(self) -> float:
        """Seconds to wait for a helper's item at the end before the main process
        computes it too: :data:`PATIENCE` times its own slowest item so far (its first
        included: from the back of the plan it is often the costliest), at least
        :data:`MIN_PATIENCE` (a helper that is stuck holds nothing up for long)."""
        return max(MIN_PATIENCE, PATIENCE * self.longest)

    def retire_helpers(self) -> bool:
        """True once (and from then on) the helpers are judged not to pay."""
        if self.judged is None and len(self.beside_times) >= JUDGE_ITEMS:
            alone = _wait_ratio(self.alone_times) if self.alone_times else 1.0
            slowdown = _wait_ratio(self.beside_times) / alone
            self.judged = (1 + self.count) / max(slowdown, 1e-9) >= KEEP_GAIN
            if not self.judged:
                log.debug(
                    "helpers retired: the main process ran %.1f× slower beside them", slowdown
                )
        return self.judged is False


def _wait_ratio(times: list[tuple[float, float]]) -> float:
    """Wall seconds per CPU second of the main thread over ``times`` ((wall, CPU) pairs)."""
    return sum(wall for wall, _ in times) / max(sum(cpu for _, cpu in times), 1e-9)


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
