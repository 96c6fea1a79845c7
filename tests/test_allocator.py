"""The allocator tuning takes on glibc and is a no-op elsewhere."""

from __future__ import annotations

import platform

from mlesim.allocator import tune


def test_tune_takes_on_glibc_only():
    assert tune() is (platform.libc_ver()[0] == "glibc")
