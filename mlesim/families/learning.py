"""The shared base of the families machine learning fits: their parameter vectors are
sized by the configuration (a regression's coefficients, a categorical's K
probabilities, a mixture's K components), so :attr:`Family.params` belongs to the
instance, built by :meth:`Family.configured` from the truth's ``params``.

A list parameter ``beta: [1.0, 2.0]`` names the scalars ``beta0, beta1``; a list of
rows ``beta: [[...], [...]]`` names ``beta1_0, beta1_1, ...`` (row k + 1, column j:
a softmax's class k + 1 against the reference class 0). Both forms are accepted, so a
sweep can vary one coefficient: ``truth.params.beta0=-3``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from mlesim.errors import ConfigError
from mlesim.families.base import Domain, Family

REAL, POSITIVE, UNIT = Domain("real"), Domain("positive"), Domain("unit")


def expand(params: Mapping[str, Any], key: str = "truth.params") -> dict[str, Any]:
    """``params`` with every list value spread into indexed scalars (see the module
    docstring); scalars pass through.

    Raises
    ------
    ConfigError
        At ``<key>.<name>`` for an empty list or ragged rows.
    """
    out: dict[str, Any] = {}
    for name, value in params.items():
        if not isinstance(value, list | tuple):
            out[name] = value
            continue
        if not value:
            raise ConfigError(f"{key}.{name}", "must not be empty")
        both = sorted(n for n in params if re.fullmatch(rf"{re.escape(name)}\d+(_\d+)?", n))
        if both:  # e.g. the shipped beta0, beta1 and a list beta: which one is meant?
            raise ConfigError(
                f"{key}.{name}",
                f"given both as a list and as {', '.join(both)}; allowed: one form — set "
                f"single entries as {both[0]}=<value>, or replace the mapping: "
                f"{key}={{{name}: [...], ...}}",
            )
        if all(isinstance(row, list | tuple) for row in value):
            widths = {len(row) for row in value}
            if len(widths) != 1:
                raise ConfigError(f"{key}.{name}", f"rows must have one length, got {widths}")
            for k, row in enumerate(value):
                for j, v in enumerate(row):
                    out[f"{name}{k + 1}_{j}"] = v
        else:
            for j, v in enumerate(value):
                out[f"{name}{j}"] = v
    return out


def indexed(names: list[str] | tuple[str, ...], stem: str) -> list[int]:
    """The indices j of the names ``<stem><j>`` among ``names``, sorted."""
    pattern = re.compile(rf"{re.escape(stem)}(\d+)$")
    return sorted(int(m.group(1)) for n in names if (m := pattern.match(n)))


def count(params: Mapping[str, Any], stem: str, key: str, least: int) -> int:
    """How many indexed parameters ``<stem>0, <stem>1, ...`` the (expanded) params
    give; they must run from 0 without gaps, at least ``least`` of them.

    Raises
    ------
    ConfigError
        At ``<key>.<stem>`` otherwise.
    """
    idx = indexed(list(params), stem)
    if len(idx) < least or idx != list(range(len(idx))):
        raise ConfigError(
            f"{key}.{stem}",
            f"give {stem} as a list of at least {least} numbers (or {stem}0, {stem}1, ...), "
            f"got indices {idx}",
        )
    return len(idx)


class LearningFamily(Family):
    """A family whose parameter names are set per instance (see the module docstring).

    Subclasses give class-level defaults for :attr:`params` (the shipped configuration)
    and implement :meth:`domain_of`.
    """

    #: the scalar estimators, contamination and the numerical projection do not apply
    iid_scalars: ClassVar[bool] = False

    @property
    def iid(self) -> bool:
        return self.iid_scalars

    @property
    def domains(self) -> dict[str, Domain]:  # type: ignore[override]
        return {name: self.domain_of(name) for name in self.params}

    def domain_of(self, name: str) -> Domain:
        """The domain of parameter ``name``."""
        raise NotImplementedError

    def check(self, params: Mapping[str, Any], key: str = "truth.params") -> np.ndarray:
        """As :meth:`Family.check`, after spreading list parameters (:func:`expand`)."""
        if not isinstance(params, Mapping):
            raise ConfigError(key, f"must be a mapping, got {params!r}")
        return super().check(expand(params, key), key)

    def settings_of(self) -> dict[str, Any]:
        """The settings that made this instance (for ``repr`` and reports)."""
        return {}

    def logpdf(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{self.name} data are not one array of scalars")

    def mean_var(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError(f"{self.name} data are not one array of scalars")

    def scipy_dist(self, theta: np.ndarray):
        raise NotImplementedError(f"{self.name} has no scipy.stats equivalent")

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.settings_of().items())
        return f"{type(self).__name__}({opts})"

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and other.params == self.params  # type: ignore[attr-defined]
            and other.settings_of() == self.settings_of()  # type: ignore[attr-defined]
        )

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.params))
