"""Ctrl-C that always stops a run.

Python turns SIGINT into a KeyboardInterrupt in whatever code runs at that moment; when
that is a finaliser or a weakref callback (a temporary file's cleanup, a garbage-collected
array), Python prints "Exception ignored" and carries on, and the run finishes as if no
one had asked it to stop. :func:`guard` records the request as well, and the engine calls
:func:`raise_if_requested` after every chunk, so the request is honoured there at the
latest. The record is process state by nature (a signal is delivered to the process).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_requested = threading.Event()


def _on_sigint(signum, frame) -> None:
    _requested.set()
    raise KeyboardInterrupt


@contextmanager
def guard() -> Iterator[None]:
    """Within the block, SIGINT both raises KeyboardInterrupt and is recorded (main
    thread only; elsewhere the block runs unguarded)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _requested.clear()
    previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        _requested.clear()  # first: a Ctrl-C now goes to the old handler, unrecorded
        signal.signal(signal.SIGINT, previous)


def raise_if_requested() -> None:
    """Raise KeyboardInterrupt if a SIGINT arrived (and was swallowed) since :func:`guard`."""
    if _requested.is_set():
        raise KeyboardInterrupt
