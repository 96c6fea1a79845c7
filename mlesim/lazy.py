"""Modules imported when first used, so that a run imports only what it needs.

``scipy.stats`` alone takes ~0.6 s to import, longer than a small study's simulation;
most runs never touch it. ``st = lazy_module("scipy.stats")`` at the top of a module
gives a stand-in that imports ``scipy.stats`` at the first ``st.<name>`` and is then
as fast as the module (each name is looked up once and kept).
"""

from __future__ import annotations

import importlib
from typing import Any


class LazyModule:
    """Stands in for the module ``name`` until an attribute of it is asked for.

    Parameters
    ----------
    name : the module's dotted name, as for :func:`importlib.import_module`
    """

    def __init__(self, name: str):
        object.__setattr__(self, "_name", name)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") or "_name" not in self.__dict__:  # (copy, pickle probes)
            raise AttributeError(attr)
        value = getattr(importlib.import_module(self._name), attr)
        object.__setattr__(self, attr, value)  # later look-ups are plain attribute reads
        return value

    def __reduce__(self) -> tuple:
        return lazy_module, (self._name,)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_module(name: str) -> Any:
    """A :class:`LazyModule` for ``name`` (typed ``Any``: used exactly like the module)."""
    return LazyModule(name)
