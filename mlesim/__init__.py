"""mlesim: Monte Carlo simulation studies of estimators.

From Python: ``mlesim.run(...)`` (:mod:`mlesim.api`) runs a study as the command line
does and returns its tables; :mod:`mlesim.testing` checks an estimator in a test suite.
They are imported on first use, so the command line starts without them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Results", "run", "testing"]


def __getattr__(name: str) -> Any:
    if name in ("run", "Results"):
        from mlesim import api

        return getattr(api, name)
    if name == "testing":
        import importlib

        return importlib.import_module("mlesim.testing")
    raise AttributeError(f"module 'mlesim' has no attribute {name!r}")
