"""One BLAS thread per process for the command line.

mlesim's parallelism is across chunks (``runner.n_jobs``: the main process and its
helpers, one core each). Its estimators multiply and solve many small matrices at once,
which gains nothing from BLAS threads; left at OpenBLAS's default (a thread per core),
those threads fight the helpers for the cores — the Cauchy-efficiency preset took 2.1 s
to simulate with ``n_jobs=2`` against 1.4 s with one BLAS thread per process, and 2.1 s
on one core either way. The variables must be set before numpy is imported, so the
command does it first (:func:`mlesim.__main__.command`); a value the user set is kept.
A Python session that imports mlesim keeps its own settings.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

__all__ = ["THREAD_VARIABLES", "one_thread"]

#: the variables OpenBLAS, OpenMP and MKL read their thread count from, at load time
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def one_thread(environ: MutableMapping[str, str] = os.environ) -> None:
    """Set each of :data:`THREAD_VARIABLES` to 1 in ``environ`` unless it is set."""
    for name in THREAD_VARIABLES:
        environ.setdefault(name, "1")
