"""Parametric families: sampling, log-density, Fisher information and MLE.

``get_family(name)`` returns a family by its DESIGN.md name, or any continuous
``scipy.stats`` distribution as ``"scipy:<name>"`` (the generic, slower path);
``FAMILIES`` lists the named ones.
"""

from __future__ import annotations

from mlesim.errors import ConfigError
from mlesim.families import (  # noqa: F401  (each module registers its families)
    closed_form,
    counts,
    finite,
    location_scale,
    positive,
    regression,
)
from mlesim.families.base import REGISTRY, Domain, Family, FitResult
from mlesim.families.generic import PREFIX, ScipyFamily

#: the named families, registered by their own class definitions (the imports above)
FAMILIES: dict[str, type[Family]] = REGISTRY


def get_family(name: str, key: str = "truth.family") -> Family:
    """Instantiate the family called ``name`` (a FAMILIES key or ``scipy:<name>``).

    Raises
    ------
    ConfigError
        If ``name`` is unknown; the message lists the allowed names.
    """
    if isinstance(name, str) and name.startswith(PREFIX):
        return ScipyFamily(name[len(PREFIX) :], key=key)
    if name not in FAMILIES:
        allowed = ", ".join(sorted(FAMILIES))
        raise ConfigError(key, f"unknown family {name!r}; allowed: {allowed}, or scipy:<name>")
    return FAMILIES[name]()


__all__ = ["FAMILIES", "Domain", "Family", "FitResult", "ScipyFamily", "get_family"]
