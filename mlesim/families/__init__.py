"""Parametric families: sampling, log-density, Fisher information and MLE.

``get_family(name)`` returns a family by its DESIGN.md name, or any continuous
``scipy.stats`` distribution as ``"scipy:<name>"`` (the generic, slower path);
``FAMILIES`` lists the named ones.
"""

from __future__ import annotations

from mlesim.errors import ConfigError
from mlesim.families.base import Domain, Family, FitResult
from mlesim.families.closed_form import Bernoulli, Exponential, Normal, Poisson
from mlesim.families.counts import NegativeBinomial
from mlesim.families.generic import PREFIX, ScipyFamily
from mlesim.families.location_scale import Cauchy, Laplace, StudentT
from mlesim.families.positive import Beta, Gamma, Lognormal, Weibull

FAMILIES: dict[str, type[Family]] = {
    cls.name: cls
    for cls in (
        Bernoulli,
        Poisson,
        Exponential,
        Normal,
        Gamma,
        Weibull,
        StudentT,
        Cauchy,
        Laplace,
        Lognormal,
        Beta,
        NegativeBinomial,
    )
}


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
