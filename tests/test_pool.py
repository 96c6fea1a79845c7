"""The pool shares a run between the main process and its helpers: a small run never
starts one, a long one does, every item is yielded exactly once, a helper that never
answers holds nothing up, and helpers that do not pay (the main process waits for the
CPU beside them) are retired."""

from __future__ import annotations

import os
import threading
import time

import pytest

from mlesim import backends
from mlesim.backends import Pace, Pool, cores


def runner(n_jobs, backend="threading"):
    return {"backend": backend, "n_jobs": n_jobs, "dask": {"address": None, "n_workers": 1}}


def who(seconds):
    time.sleep(seconds)
    return threading.current_thread().name


def where(seconds):
    time.sleep(seconds)
    return os.getpid()


def spin(seconds):
    """Pure-Python work of ``seconds`` of this thread's CPU time (it holds the GIL)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass
    return threading.current_thread().name


def test_a_small_run_never_spawns_a_helper(monkeypatch):
    """Where helpers are spawned (a new interpreter each), a run shorter than a few
    seconds is done by the main process alone."""
    monkeypatch.setattr(backends, "FORK", False)
    with Pool(runner(2, "loky")) as pool:
        out = dict(pool.imap_unordered(where, [0.001] * 20))
    assert sorted(out) == list(range(20))
    assert set(out.values()) == {os.getpid()}  # no helper was started


def test_forked_helpers_and_threads_start_with_the_computation():
    for backend, work in (("loky", where), ("threading", who)):
        with Pool(runner(2, backend)) as pool:
            out = dict(pool.imap_unordered(work, [0.02] * 6))
        here = os.getpid() if backend == "loky" else threading.current_thread().name
        assert sorted(out) == list(range(6)) and set(out.values()) - {here}, backend


@pytest.mark.parametrize("backend", ["threading", "loky"])
def test_a_long_run_shares_the_items_with_a_helper(backend):
    with Pool(runner(2, backend)) as pool:
        out = list(pool.imap_unordered(where if backend == "loky" else who, [0.01] * 60))
    assert sorted(i for i, _ in out) == list(range(60))  # each exactly once
    here = os.getpid() if backend == "loky" else threading.current_thread().name
    assert here in {w for _, w in out} and len({w for _, w in out}) == 2


def test_helpers_take_the_next_item_as_soon_as_they_are_free(helpers):
    """Cheap items at the front, dear ones at the back (the main process's end): the
    helper is not held to the main process's pace, so it does most of the cheap ones
    and the two finish together (the helper is never kept waiting for work). The
    helper is never retired here (``helpers``): items that sleep use no CPU, which Pace
    reads as a main thread waiting for the GIL, and retiring the helper after the main
    thread's fifth item raced with the helper's hundredth (92 of 100 once, in a full
    run of the suite)."""
    items = [0.001] * 100 + [0.02] * 20
    with Pool(runner(2)) as pool:
        out = dict(pool.imap_unordered(who, items))
    main = threading.current_thread().name
    assert sorted(out) == list(range(120))
    assert sum(1 for i in range(100) if out[i] != main) >= 95  # handed 2 at a time: ~80


def test_items_held_by_a_helper_that_never_answers_are_done_by_the_main_process():
    """The helper is stuck on its first item; the main process does all the others and,
    having no answer from any helper, the one held by it too."""
    release = threading.Event()
    main = threading.current_thread().name

    def stuck(i):
        if threading.current_thread().name != main:
            release.wait(10)
        time.sleep(0.05)
        return i

    with Pool(runner(2)) as pool:
        started = time.monotonic()
        out = sorted(i for i, _ in pool.imap_unordered(stuck, range(10)))
        assert time.monotonic() - started < 5  # nobody waited for the stuck helper
    release.set()
    assert out == list(range(10))


def boom(i):
    time.sleep(0.02)
    if i == 3:
        raise ValueError("item 3")
    return i


@pytest.mark.parametrize("backend", ["threading", "loky"])
def test_an_item_that_fails_raises_in_the_main_process(backend):
    with Pool(runner(2, backend)) as pool, pytest.raises(ValueError, match="item 3") as info:
        list(pool.imap_unordered(boom, range(40)))
    if info.value.__cause__ is not None:  # raised in a helper: its traceback comes along
        assert "in a helper" in str(info.value.__cause__)
        assert "boom" in str(info.value.__cause__)


def test_auto_is_the_cores_this_process_may_use():
    assert cores("auto") == cores(-1) == len(os.sched_getaffinity(0))
    assert cores(3) == 3


def test_helper_threads_that_hold_the_gil_are_retired():
    """Pure-Python items on helper threads: the main thread waits for the GIL half the
    time, i.e. twice the wall time per second of its CPU time. The helper is retired,
    the main process finishes alone, and every item comes once. (The threads take turns
    every millisecond, so that each item of 10 ms spans many turns.)"""
    import sys

    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    try:
        with Pool(runner(2)) as pool:
            out = sorted(i for i, _ in pool.imap_unordered(spin, [0.01] * 60))
            assert pool._retired
            again = sorted(i for i, _ in pool.imap_unordered(spin, [0.01] * 5))  # alone now
    finally:
        sys.setswitchinterval(interval)
    assert out == list(range(60)) and again == list(range(5))


def test_helpers_that_do_not_slow_the_main_process_are_kept():
    pace = Pace(1)
    pace.beside_times = [(0.011, 0.01)] * backends.JUDGE_ITEMS  # 10 % slower: kept
    assert not pace.retire_helpers() and pace.judged
    shared = Pace(1)
    shared.beside_times = [(0.02, 0.01)] * backends.JUDGE_ITEMS  # half the CPU: retired
    assert shared.retire_helpers()
    waiting = Pace(1)  # a main process that waited alone too (its own I/O): kept
    waiting.alone_times = [(0.02, 0.01)] * 3
    waiting.beside_times = [(0.022, 0.01)] * backends.JUDGE_ITEMS
    assert not waiting.retire_helpers()


def test_spawned_helpers_start_after_a_probe_of_a_few_items():
    pace = Pace(1)
    assert not pace.worth_helpers(10**6)  # nothing timed yet
    pace.alone_times = [(0.1, 0.1)] * (backends.PROBE_ITEMS - 1)
    assert pace.worth_helpers(100) and not pace.worth_helpers(10)


def test_no_more_helpers_are_started_than_there_are_items_for_them(monkeypatch):
    """With many cores and a few chunks, the main process starts one helper per chunk
    it leaves to them, not one per core."""
    from mlesim import helpers

    counts = []
    real = helpers.Helpers.__init__

    def counted(self, func, items, claims, count, threads):
        counts.append(count)
        real(self, func, items, claims, count, threads)

    monkeypatch.setattr(helpers.Helpers, "__init__", counted)
    with Pool(runner(16, "loky")) as pool:
        out = sorted(i for i, _ in pool.imap_unordered(where, [0.05] * 4))
    assert out == [0, 1, 2, 3] and counts == [3]
