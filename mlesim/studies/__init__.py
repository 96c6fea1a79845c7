"""Studies: the analyses and figures each experiment preset asks for (``study: <name>``).

Each study is one module of this package (found by name, no list to edit). It defines
``OPTIONS`` (the ``analysis.*`` keys it reads, with defaults), ``check(config)`` for its
requirements, and
``render(ctx) -> (figures, notes)`` where figures is a list of (path, caption) and notes
a list of Markdown paragraphs for the run's report.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mlesim.config import StudySpec
from mlesim.errors import ConfigError

#: the studies: every public module of this package (a new study is one module)
STUDIES = tuple(
    sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
)


#: what a study's ``render`` returns: figures [(path, caption)] and report notes (Markdown)
Rendered = tuple[list[tuple[Path, str]], list[str]]


@dataclass
class StudyContext:
    """What a study's ``render`` receives.

    Attributes
    ----------
    spec : the validated study; replicates, summary : the run's tables;
    figdir : where to write figures; options : ``analysis.*`` merged over OPTIONS.
    """

    spec: StudySpec
    replicates: pd.DataFrame
    summary: pd.DataFrame
    figdir: Path
    options: dict[str, Any]

    @property
    def design_keys(self) -> list[str]:
        """Design factors other than n."""
        return [k for k in self.spec.factor_names if k != "n"]


def _module(name: str):
    return importlib.import_module(f"mlesim.studies.{name}")


def check_study(config: dict) -> None:
    """Validate ``study`` and ``analysis.*`` against the study's OPTIONS."""
    name = config["study"]
    if name not in STUDIES:
        raise ConfigError("study", f"unknown study {name!r}; allowed: {', '.join(STUDIES)}")
    mod = _module(name)
    options = mod.OPTIONS
    for key in config.get("analysis") or {}:
        if key not in options:
            allowed = ", ".join(options) or "none"
            raise ConfigError(
                f"analysis.{key}", f"unknown option for study {name}; allowed: {allowed}"
            )
    mod.check(config)


def render_study(
    spec: StudySpec, replicates: pd.DataFrame, summary: pd.DataFrame, figdir: Path
) -> tuple[list[tuple[Path, str]], list[str]]:
    """Make the study's figures in ``figdir``; return (figures, report notes)."""
    mod = _module(spec["study"])
    options = {**mod.OPTIONS, **(spec["analysis"] or {})}
    figdir = Path(figdir)
    figdir.mkdir(parents=True, exist_ok=True)
    return mod.render(StudyContext(spec, replicates, summary, figdir, options))
