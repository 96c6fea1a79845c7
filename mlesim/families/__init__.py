"""Parametric families: sampling, log-density, Fisher information and MLE.

``get_family(name)`` returns a family by its DESIGN.md name; ``FAMILIES`` lists them.
"""

from __future__ import annotations

from mlesim.errors import ConfigError
from mlesim.families.base import Domain, Family, FitResult
from mlesim.families.closed_form import Bernoulli, Exponential, Normal, Poisson

FAMILIES: dict[str, type[Family]] = {
    cls.name: cls for cls in (Bernoulli, Poisson, Exponential, Normal)
}


def get_family(name: str, key: str = "truth.family") -> Family:
    """Instantiate the family called ``name``.

    Raises
    ------
    ConfigError
        If ``name`` is unknown; the message lists the allowed names.
    """
    if name not in FAMILIES:
        raise ConfigError(key, f"unknown family {name!r}; allowed: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]()


__all__ = ["FAMILIES", "Domain", "Family", "FitResult", "get_family"]
