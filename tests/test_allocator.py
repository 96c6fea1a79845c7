"""The allocator tuning takes on glibc and is a no-op elsewhere."""

from __future__ import annotations

import os
import platform

from mlesim.allocator import tune


def test_tune_takes_on_glibc_only():
    assert tune() is (platform.libc_ver()[0] == "glibc")


def test_the_command_runs_one_blas_thread_unless_the_user_set_a_count():
    """numpy's OpenBLAS reads its thread count when numpy is imported: the command sets
    one (mlesim.blas) before that, and keeps a count the user set."""
    import subprocess
    import sys

    probe = (
        "import os; from mlesim.blas import one_thread; one_thread(); import numpy; "
        "from threadpoolctl import threadpool_info; "
        "print(max(i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'))"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "1", out.stderr
    env["OPENBLAS_NUM_THREADS"] = "2"
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "2", out.stderr
