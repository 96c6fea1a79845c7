"""Helpers that share a list of items with the main process (:class:`mlesim.backends.Pool`).

The items not yet taken are a range of positions ``[front, back]`` (:class:`Claims`):
each helper takes the next one from the front as soon as it is free, the main process
takes from the back between its other duties, so nobody waits to be handed work and
the two ends meet wherever the work splits evenly, whatever the items cost. A helper
sends ``(i, True, func(items[i]))`` — or ``(i, False, (exception, traceback text))`` —
for each item it takes, and ends when none is left.

Helpers are threads, or processes: forked from the main process where the platform
forks safely (Linux), so that they start in milliseconds with everything already
imported and built, the function and the list of items included (nothing is pickled on
the way there); spawned elsewhere (macOS, where forking a process that has loaded system
frameworks is unsafe; Windows), which costs a new interpreter importing the stack and
the function and items pickled once per helper. A process helper answers through a
pipe read by a thread of the main process, so that its result is taken off its hands at
once however busy the main process is.

A helper process ignores Ctrl-C (the main process answers it for the run, and stops the
helpers) and ends itself once the process that started it is no longer its parent (a
main process killed with ``kill -9``), checked once a second by a watchdog thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from mlesim import allocator

__all__ = [
    "FORK",
    "GONE",
    "Claims",
    "HelperTraceback",
    "Helpers",
    "orphan_watch",
    "process_context",
]

#: the start method of helper processes: ``fork`` on Linux, ``spawn`` elsewhere
FORK = sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()
#: seconds between two checks of a helper process's parent
PARENT_POLL = 1.0
#: seconds to wait for a stopped helper process (and for the reader thread) to be gone
JOIN_TIMEOUT = 5.0

#: a message saying helper ``h`` has ended: ``(GONE, h, exit code)``
GONE = -1


class Claims:
    """The positions not yet taken, ``[front, back]``, shared by the main process and
    its helpers: helpers take from the front, the main process from the back.

    Parameters
    ----------
    back : the last position to share (positions ``0..back``)
    context : a multiprocessing context when the helpers are processes (the counters
        then live in shared memory under a process-shared lock), else None (threads)
    """

    def __init__(self, back: int, context: Any = None):
        if context is None:
            self._lock: Any = threading.Lock()
            self._ends: Any = [0, back, 0]
        else:
            self._lock = context.Lock()
            self._ends = context.RawArray("q", [0, back, 0])  # front, back, stopped

    def take_front(self) -> int | None:
        """The next position from the front (a helper's), or None when none is left."""
        with self._lock:
            front, back, stopped = self._ends[0], self._ends[1], self._ends[2]
            if stopped or front > back:
                return None
            self._ends[0] = front + 1
            return front

    def take_back(self) -> int | None:
        """The next position from the back (the main process's), or None."""
        with self._lock:
            front, back = self._ends[0], self._ends[1]
            if front > back:
                return None
            self._ends[1] = back - 1
            return back

    def stop(self) -> None:
        """Let the helpers take nothing more (the main process still can)."""
        with self._lock:
            self._ends[2] = 1

    def front_back(self) -> tuple[int, int]:
        """``(front, back)``: positions below ``front`` were taken by helpers, those
        above ``back`` by the main process."""
        with self._lock:
            return self._ends[0], self._ends[1]


class Helpers:
    """``count`` helpers (processes, or threads when ``threads``) taking items of
    ``items`` from the front of ``claims`` and computing ``func`` of each.

    :meth:`get` returns the next message: ``(i, True, result)``, ``(i, False,
    (exception, traceback text))`` (the exception is raised again in the main process,
    the text as its cause) or ``(GONE, h, exit code)`` when helper ``h`` has ended.
    :meth:`close` stops them (a helper process still at work, on an item the main
    process then has no need of, is killed).
    """

    def __init__(self, func: Callable, items: Sequence, claims: Claims, count: int, threads: bool):
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.claims = claims
        self._processes: list[Any] = []
        self._pipes: dict[Connection, int] = {}
        self._reader: threading.Thread | None = None
        if threads:
            for h in range(count):
                threading.Thread(
                    target=self._thread, args=(h, func, items), name="mlesim", daemon=True
                ).start()
            return
        for stream in (sys.stdout, sys.stderr):  # (a forked helper would flush them too)
            if stream is not None:
                stream.flush()
        try:
            self._start(func, items, count)
        except BaseException:  # (a Ctrl-C, a failed fork): none of them is left behind
            self.close()
            raise
        self._reader = threading.Thread(target=self._read, name="mlesim-results", daemon=True)
        self._reader.start()

    def _start(self, func: Callable, items: Sequence, count: int) -> None:
        context = process_context()
        with _sigint_blocked():  # a helper ignores Ctrl-C from its first instruction on
            for h in range(count):
                out, into = context.Pipe(duplex=False)
                process = context.Process(
                    target=serve,
                    args=(func, items, self.claims, into, os.getpid()),
                    name="mlesim-helper",
                    daemon=True,
                )
                self._pipes[out] = h
                try:
                    process.start()
                    self._processes.append(process)
                finally:
                    into.close()

    def get(self, timeout: float | None = None) -> tuple[int, Any, Any] | None:
        """The next message, waiting at most ``timeout`` seconds (None: until one
        comes); None when none came in time."""
        try:
            return self._inbox.get(timeout=timeout)
        except queue.Empty:
            return None

    def ready(self) -> list[tuple[int, Any, Any]]:
        """The messages that have come (without waiting)."""
        out = []
        while not self._inbox.empty():
            out.append(self._inbox.get())
        return out

    def _thread(self, h: int, func: Callable, items: Sequence) -> None:
        try:
            while (i := self.claims.take_front()) is not None:
                self._inbox.put(compute(func, items, i))
        finally:
            self._inbox.put((GONE, h, 0))

    def _read(self) -> None:
        """The main process's reader thread: each helper's messages into the inbox."""
        waiting = list(self._pipes)
        while waiting:
            for conn in wait(waiting):
                try:
                    i, ok, value = conn.recv()
                except (EOFError, OSError):  # the helper has ended
                    waiting.remove(conn)
                    h = self._pipes[conn]
                    self._processes[h].join(timeout=JOIN_TIMEOUT)
                    self._inbox.put((GONE, h, self._processes[h].exitcode))
                    continue
                except Exception as err:  # noqa: BLE001 - a result that does not unpickle
                    i, ok, value = -2, False, (err, traceback.format_exc())
                self._inbox.put((i, ok, value))

    def close(self) -> None:
        """Stop the helpers; return once the processes and the reader are gone."""
        self.claims.stop()
        for process in self._processes:
            if process.is_alive():
                process.kill()
        for process in self._processes:
            process.join(timeout=JOIN_TIMEOUT)
        if self._reader is not None and self._reader.is_alive():
            self._reader.join(timeout=JOIN_TIMEOUT)
        for conn in self._pipes:
            conn.close()


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """SIGINT held back in this thread (and in the processes it starts, which inherit the
    mask) until the block ends: a Ctrl-C that lands while a helper is being started
    reaches the main process after it, and the helper, which unblocks it only once it
    ignores it, never (without this, a helper could die printing a KeyboardInterrupt
    traceback from multiprocessing's start-up code)."""
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - Windows
        yield
        return
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def process_context() -> Any:
    """The multiprocessing context of helper processes (:data:`FORK`)."""
    return multiprocessing.get_context("fork" if FORK else "spawn")


def compute(func: Callable, items: Sequence, i: int) -> tuple[int, bool, Any]:
    """``(i, True, func(items[i]))``, or ``(i, False, (exception, traceback text))``."""
    try:
        return i, True, func(items[i])
    except BaseException as err:  # noqa: BLE001 - raised again in the main process
        return i, False, portable(err)


def serve(func: Callable, items: Sequence, claims: Claims, results: Connection, parent: int):
    """A helper process's life: take items from the front of ``claims`` and send what
    :func:`compute` makes of each on ``results``, until none is left."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process answers a Ctrl-C
    if hasattr(signal, "pthread_sigmask"):  # (blocked since the fork: see Helpers)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if not die_with_parent(parent):  # (elsewhere than Linux: a watchdog instead)
        threading.Thread(
            target=orphan_watch, args=(parent,), name="mlesim-parent-watch", daemon=True
        ).start()
    allocator.tune()
    while (i := claims.take_front()) is not None:
        message = compute(func, items, i)
        try:
            results.send(message)  # (pickled whole before a byte is written)
        except OSError:  # the main process is gone
            return
        except Exception as err:  # noqa: BLE001 - the result does not pickle
            results.send((i, False, portable(err)))


def portable(err: BaseException) -> tuple[BaseException, str]:
    """``(err, its traceback as text)``, or, when ``err`` cannot travel between
    processes (pickled and back), a RuntimeError that names it in its place."""
    text = "".join(traceback.format_exception(err))
    try:
        pickle.loads(pickle.dumps(err))
    except Exception:  # noqa: BLE001 - any reason it cannot travel
        err = RuntimeError(f"{type(err).__name__}: {err}")
    return err, text


class HelperTraceback(Exception):
    """The traceback of an exception raised in a helper (as text): its cause."""

    def __str__(self) -> str:
        return "\n\nin a helper:\n" + str(self.args[0])


#: prctl(2) option: the signal this process gets when its parent dies (Linux)
PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> bool:
    """Ask the kernel to kill this helper the moment the process that started it
    (``parent``) dies — Linux's ``prctl(PR_SET_PDEATHSIG, SIGKILL)``; False elsewhere,
    where :func:`orphan_watch` alone ends it within :data:`PARENT_POLL` seconds. A forked
    helper shares the main process's descriptors, the run directory's lock
    (:mod:`mlesim.lock`) among them: after a ``kill -9`` of the run it must not hold the
    lock for that second, or a resume started at once would be refused."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
        return False
    if prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:  # pragma: no cover
        return False
    if os.getppid() != parent:  # the parent died before the request was made
        os._exit(1)
    return True


def orphan_watch(parent: int) -> None:
    """End this helper process once ``parent`` is no longer its parent (the run's main
    process was killed): nobody would read its results."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL)
    os._exit(1)
