"""The pool shares a run between the main process and its helpers: a small run never
starts one, a long one does, every item is yielded exactly once, and a helper that
never answers holds nothing up."""

from __future__ import annotations

import threading
import time

import pytest

from mlesim import backends
from mlesim.backends import Pool, cores


def runner(n_jobs, backend="threading"):
    return {"backend": backend, "n_jobs": n_jobs, "dask": {"address": None, "n_workers": 1}}


def who(seconds):
    time.sleep(seconds)
    return threading.current_thread().name


def test_a_small_run_is_done_by_the_main_process_alone():
    with Pool(runner(2)) as pool:
        out = dict(pool.imap_unordered(who, [0.001] * 20))
        assert pool._executor is None  # no helper was started
    assert sorted(out) == list(range(20))
    assert set(out.values()) == {threading.current_thread().name}


def test_a_long_run_shares_the_items_with_a_helper(monkeypatch):
    monkeypatch.setattr(backends, "HELPER_START", 0.05)
    with Pool(runner(2)) as pool:
        seen = [i for i, _ in pool.imap_unordered(who, [0.01] * 60)]
        names = {name for _, name in pool.imap_unordered(who, [0.01] * 60)}  # warm now
    assert sorted(seen) == list(range(60))  # each exactly once
    assert threading.current_thread().name in names and len(names) == 2


def test_items_held_by_a_helper_that_never_answers_are_done_by_the_main_process(monkeypatch):
    """The helper is stuck on its first item; the main process does all the others and,
    having no answer from any helper, the ones waiting at it too."""
    monkeypatch.setattr(backends, "HELPER_START", 0.0)
    release = threading.Event()
    main = threading.current_thread().name

    def stuck(i):
        if threading.current_thread().name != main:
            release.wait(10)
        return i

    with Pool(runner(2)) as pool:
        started = time.monotonic()
        out = sorted(i for i, _ in pool.imap_unordered(stuck, range(10)))
        assert time.monotonic() - started < 5  # nobody waited for the stuck helper
    release.set()
    assert out == list(range(10))


def test_an_item_that_fails_raises_in_the_main_process(monkeypatch):
    monkeypatch.setattr(backends, "HELPER_START", 0.0)

    def boom(i):
        time.sleep(0.01)
        if i == 3:
            raise ValueError("item 3")
        return i

    with Pool(runner(2)) as pool, pytest.raises(ValueError, match="item 3"):
        list(pool.imap_unordered(boom, range(8)))


def test_auto_is_the_cores_this_process_may_use():
    import os

    assert cores("auto") == cores(-1) == len(os.sched_getaffinity(0))
    assert cores(3) == 3


def test_helpers_that_slow_the_main_process_down_are_retired(monkeypatch):
    """Two "cores" that are one: an item takes twice as long while another is being
    worked on, so the main process runs half as fast beside a helper. The helper is
    retired, the main process finishes alone, and every item comes once."""
    monkeypatch.setattr(backends, "HELPER_START", 0.05)
    busy, guard = [0], threading.Lock()

    def one_core(i):  # 10 ms alone, 20 ms while another item is being worked on
        with guard:
            busy[0] += 1
            shared = busy[0] > 1
        time.sleep(0.02 if shared else 0.01)
        with guard:
            busy[0] -= 1
        return i

    with Pool(runner(2)) as pool:
        out = sorted(i for i, _ in pool.imap_unordered(one_core, range(80)))
        assert pool._retired
        again = sorted(i for i, _ in pool.imap_unordered(one_core, range(5)))  # alone now
    assert out == list(range(80)) and again == list(range(5))


def test_helpers_on_real_cores_are_kept(monkeypatch):
    monkeypatch.setattr(backends, "HELPER_START", 0.05)
    with Pool(runner(2)) as pool:
        list(pool.imap_unordered(who, [0.01] * 80))  # sleeping threads do not contend
        assert not pool._retired
