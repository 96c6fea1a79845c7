"""Helper processes (mlesim.helpers): forked on Linux (nothing pickled on the way there),
spawned elsewhere; each position is taken once from one end or the other; a helper's
exception, an exception or result that cannot travel, and a helper that dies all reach
the main process as one clear outcome."""

from __future__ import annotations

import logging
import os
import pickle
import threading
import time

import numpy as np
import pytest

from mlesim import backends, helpers
from mlesim.backends import Pool, sendable
from mlesim.helpers import Claims

MAIN = os.getpid()


def runner(n_jobs=2, backend="loky"):
    return {"backend": backend, "n_jobs": n_jobs, "dask": {"address": None, "n_workers": 1}}


def pid_after(seconds):
    time.sleep(seconds)
    return os.getpid()


class Unpicklable(Exception):
    def __init__(self, lock):
        super().__init__("holds a lock")
        self.lock = lock

    def __reduce__(self):
        raise TypeError("cannot pickle a lock")


def test_each_position_is_taken_once_from_one_end_or_the_other():
    claims = Claims(999)
    fronts, backs = [], []

    def front():
        while (i := claims.take_front()) is not None:
            fronts.append(i)

    threads = [threading.Thread(target=front) for _ in range(3)]
    for t in threads:
        t.start()
    while (i := claims.take_back()) is not None:
        backs.append(i)
    for t in threads:
        t.join()
    assert sorted(fronts + backs) == list(range(1000))
    assert not fronts or not backs or max(fronts) < min(backs)  # the ends met once


def test_stopped_claims_give_helpers_nothing_but_the_main_process_the_rest():
    claims = Claims(9)
    assert claims.take_front() == 0
    claims.stop()
    assert claims.take_front() is None
    assert [claims.take_back() for _ in range(9)] == list(range(9, 0, -1))
    assert claims.take_back() is None


@pytest.mark.skipif(not helpers.FORK, reason="helpers are forked on Linux only")
def test_forked_helpers_need_nothing_pickled():
    """A function defined here (a closure: pickle refuses it) runs in a forked helper."""
    offset = 10

    def closure(i):
        time.sleep(0.01)
        return i + offset, os.getpid()

    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps(closure)
    with Pool(runner()) as pool:
        out = dict(pool.imap_unordered(closure, range(60)))
    assert sorted(out) == list(range(60)) and all(v[0] == i + 10 for i, v in out.items())
    assert {pid for _, pid in out.values()} - {MAIN}  # a helper did some


def raise_unpicklable(i):
    time.sleep(0.01)
    if os.getpid() != MAIN:
        raise Unpicklable(threading.Lock())
    return i


def test_an_exception_that_cannot_travel_is_named_in_a_runtime_error():
    with Pool(runner()) as pool, pytest.raises(RuntimeError, match="Unpicklable: holds a lock"):
        list(pool.imap_unordered(raise_unpicklable, range(60)))


def lock_result(i):
    time.sleep(0.01)
    return threading.Lock() if os.getpid() != MAIN else i


def test_a_result_that_cannot_travel_raises_in_the_main_process():
    with Pool(runner()) as pool, pytest.raises((TypeError, pickle.PicklingError), match="lock"):
        list(pool.imap_unordered(lock_result, range(60)))


def die_in_helper(i):
    time.sleep(0.01)
    if os.getpid() != MAIN and i == 5:
        os._exit(9)  # killed, as by the kernel's out-of-memory killer
    return i


def test_a_helper_that_dies_leaves_its_items_to_the_main_process(caplog):
    with caplog.at_level(logging.WARNING, logger="mlesim"), Pool(runner()) as pool:
        out = sorted(i for i, _ in pool.imap_unordered(die_in_helper, range(60)))
    assert out == list(range(60))
    assert "a helper process ended (exit code 9)" in caplog.text


def test_spawned_helpers_give_the_same_results(monkeypatch):
    """Where helpers are spawned (not Linux) the function and items are pickled once per
    helper and the helper starts a new interpreter; forced here on Linux."""
    monkeypatch.setattr(helpers, "FORK", False)
    monkeypatch.setattr(backends, "FORK", False)
    monkeypatch.setattr(backends, "SPAWN_START", 0.0)
    items = [0.05] * 40
    with Pool(runner()) as pool:
        out = dict(pool.imap_unordered(pid_after, items))
    assert sorted(out) == list(range(40))
    assert set(out.values()) - {MAIN}  # a spawned helper did some
    with pytest.raises(pickle.PicklingError, match="Could not pickle"):
        sendable(lambda x: x, 1)


def test_helpers_are_gone_when_the_call_ends():
    import multiprocessing

    with Pool(runner()) as pool:
        assert sorted(i for i, _ in pool.imap_unordered(pid_after, [0.01] * 60)) == list(range(60))
        assert pool._helpers is None
    assert not [p for p in multiprocessing.active_children() if p.name == "mlesim-helper"]


def test_results_are_the_same_whoever_computes_them(helpers):
    def draw(seed):
        return np.random.default_rng(seed).standard_normal(1000).sum(), os.getpid()

    with Pool(runner(1)) as one, Pool(runner(3)) as three:
        a = dict(one.imap_unordered(draw, range(200)))
        b = dict(three.imap_unordered(draw, range(200)))
    assert helpers and {i: v[0] for i, v in a.items()} == {i: v[0] for i, v in b.items()}


def stuck_at_zero(i):
    """Position 0 never comes back from a helper (a helper deadlocked after the fork);
    each item is CPU work, so that the helpers are not retired."""
    if i == 0 and os.getpid() != MAIN:
        time.sleep(10**6)
    end = time.thread_time() + 0.02
    while time.thread_time() < end:
        pass
    return i


def test_a_stuck_helper_beside_working_ones_holds_nothing_up(alarm):
    """Two helpers, one stuck on its first item: the other answers, and the main
    process, having waited a few times its slowest item, computes the stuck one too."""
    alarm(30)
    started = time.monotonic()
    with Pool(runner(3)) as pool:
        out = sorted(i for i, _ in pool.imap_unordered(stuck_at_zero, range(40)))
    assert out == list(range(40))
    assert time.monotonic() - started < 10


class BadReduce:
    def __reduce__(self):
        raise ValueError("cannot reduce")


def bad_result(i):
    time.sleep(0.01)
    return BadReduce() if os.getpid() != MAIN else i


def test_a_result_whose_pickling_fails_otherwise_raises_too():
    with Pool(runner()) as pool, pytest.raises(ValueError, match="cannot reduce"):
        list(pool.imap_unordered(bad_result, range(40)))


def test_helpers_started_before_a_failed_start_are_stopped(monkeypatch):
    """A Ctrl-C (or a failed fork) while the second helper starts: the first one, already
    running, is stopped with the rest, not left behind."""
    import multiprocessing

    real = helpers.process_context()
    started = []

    class Context:
        def __getattr__(self, name):
            return getattr(real, name)

        def Process(self, *args, **kwargs):  # noqa: N802 - multiprocessing's name
            process = real.Process(*args, **kwargs)
            start = process.start

            def failing_start():
                if started:
                    raise KeyboardInterrupt
                started.append(process)
                start()

            process.start = failing_start
            return process

    monkeypatch.setattr(helpers, "process_context", Context)
    monkeypatch.setattr(backends, "process_context", Context)
    with pytest.raises(KeyboardInterrupt), Pool(runner(3)) as pool:
        list(pool.imap_unordered(pid_after, [0.01] * 40))
    assert started and not started[0].is_alive()
    assert not [p for p in multiprocessing.active_children() if p.name == "mlesim-helper"]


def test_patience_counts_the_main_processs_first_item(monkeypatch):
    """The first item is not timed for judging helpers (it pays for imports), but the
    main process's first item is often its costliest (from the back of the plan): the
    wait for a helper's item at the end is measured against it too."""
    monkeypatch.setattr(backends, "MIN_PATIENCE", 0.0)
    pace = backends.Pace(1)
    pace.beside(time.sleep, 0, 0.2)  # the first: untimed for the judgement
    pace.beside(time.sleep, 1, 0.01)
    assert pace.patience() >= backends.PATIENCE * 0.2
