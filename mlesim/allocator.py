"""glibc's allocator, tuned for a simulation's large, short-lived arrays.

A chunk's data and temporaries are arrays of megabytes, allocated and freed thousands of
times. glibc serves blocks above its mmap threshold (128 KiB, rising to at most 32 MiB)
with fresh ``mmap`` calls and gives freed heap back to the system above its trim
threshold, so each new array is zero-filled page by page again: in a 6 × 200,000
variance study a quarter of the CPU time went to the kernel (half a million page faults,
against 30,000 for a plain numpy loop). Raising both thresholds keeps the pages in the
process for reuse (``mallopt(3)``): 8× fewer page faults and ~15 % less time. One arena
for every thread (``M_ARENA_MAX``): what the chunk writer's thread frees is reused by
the main thread instead of staying in an arena of its own (~50 MB less at the peak).

The command line and its helper processes call :func:`tune`; a Python session that
imports mlesim keeps its own allocator settings.
"""

from __future__ import annotations

import ctypes

#: mallopt(3) parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
#: blocks up to this size come from the heap, which keeps up to twice this much free
THRESHOLD = 1 << 30


def tune() -> bool:
    """Raise glibc's mmap and trim thresholds for this process and give its threads one
    arena; False where there is no glibc (macOS, musl, Windows), which changes nothing
    else."""
    try:  # the process's own symbols, glibc's among them (find_library runs ldconfig)
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, TypeError, AttributeError):  # no mallopt, or no dlopen(NULL)
        return False
    return (
        bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD))
        and bool(mallopt(M_TRIM_THRESHOLD, 2 * THRESHOLD))
        and bool(mallopt(M_ARENA_MAX, 1))
    )
