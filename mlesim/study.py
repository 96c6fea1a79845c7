"""The study compiled once: the configuration checked value by value
(:func:`mlesim.config.validate`), the study's own options checked
(:func:`mlesim.studies.check_study`), and every design cell built with its scenario —
the data-generating mechanism, the estimand and the methods — into the frozen
:class:`~mlesim.config.StudySpec` that the engine, the summary, the studies and replay
all read.

This is the entry point for a composed configuration; :mod:`mlesim.config` itself knows
nothing of the studies, so the layers point one way: config → studies → study.
"""

from __future__ import annotations

from omegaconf import DictConfig

from mlesim import config
from mlesim.chunks import check_size
from mlesim.config import StudySpec
from mlesim.studies import check_study


def validate(cfg: DictConfig | dict) -> StudySpec:
    """Check a composed configuration and compile it into a study.

    Raises
    ------
    ConfigError
        The first offending key, with what is allowed; a study too large for this
        machine (:func:`mlesim.chunks.check_size`).
    """
    spec = config.validate(cfg, study_check=check_study)
    check_size(spec)
    return spec
