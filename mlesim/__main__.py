"""Command line: ``python -m mlesim experiment=<name> [key=value ...]`` (also ``mlesim``).

Hydra composes the configuration; this module only wires validation, the engine,
the summary and the study's figures together (see :mod:`mlesim.pipeline`). Bad
input — an unknown key, a wrong type, a value out of its domain, an unwritable run
directory — ends the program with one line on stderr, ``mlesim: error: <key>: <what
is wrong>; allowed: <values>``, exit status 2, and no result files.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from mlesim.config import register_schema
from mlesim.error_lines import (
    hydra_error_line,
    omegaconf_error_line,
    raised_in,
    run_dir_error_line,
)
from mlesim.errors import ConfigError

__all__ = ["config_dir", "hydra_error_line", "main", "task"]

#: exit status for input mlesim refuses (as argparse uses for bad arguments)
EXIT_BAD_INPUT = 2


def config_dir() -> str:
    """Absolute path of the config tree: the packaged copy if present, else the repo's."""
    here = Path(__file__).resolve().parent
    packaged = here / "conf"
    return str(packaged if packaged.is_dir() else here.parent / "conf")


def refuse(line: str) -> NoReturn:
    """Print ``mlesim: error: <line>`` as one line on stderr and exit with status 2."""
    print(f"mlesim: error: {' '.join(line.split())}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


def _discard_empty_run_dir(outdir: Path) -> None:
    """Remove a run dir that holds only what Hydra wrote before validation failed.

    The parent goes too when it is left empty and is the default layout's
    ``experiments/<name>/``; a directory the user named is never removed.
    """
    if not outdir.is_dir():
        return
    if all(p.name == ".hydra" or p.suffix == ".log" for p in outdir.iterdir()):
        shutil.rmtree(outdir, ignore_errors=True)
        parent = outdir.parent
        if parent.parent.name == "experiments" and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()


def task(cfg: DictConfig) -> None:
    """One Hydra job: validate, simulate, summarise, draw, report."""
    from omegaconf.errors import OmegaConfBaseException

    from mlesim.config import check_overrides
    from mlesim.pipeline import run_pipeline
    from mlesim.study import validate

    hydra_cfg = HydraConfig.get()
    outdir = Path(hydra_cfg.runtime.output_dir)
    try:
        spec = validate(cfg)
        check_overrides(spec.config, list(hydra_cfg.overrides.task))
    except ConfigError as err:
        _discard_empty_run_dir(outdir)
        refuse(str(err))
    except OmegaConfBaseException as err:  # e.g. an interpolation to a missing key
        _discard_empty_run_dir(outdir)
        refuse(omegaconf_error_line(err) or f"config: {str(err).splitlines()[0]}")
    try:
        run_pipeline(spec, outdir)
    except ConfigError as err:  # a plugin broke its contract for a whole chunk
        chunks = outdir / "chunks"
        if chunks.is_dir() and not any(chunks.glob("*.npz")):  # nothing worth resuming
            shutil.rmtree(chunks, ignore_errors=True)
        _discard_empty_run_dir(outdir)
        refuse(str(err))


def main() -> None:
    """Console-script entry point.

    Hydra's own composition errors (unknown key, wrong type, unknown group option,
    unparsable override) and a run directory Hydra cannot create are reported as one
    line and exit status 2, like mlesim's own value checks in :func:`task`.
    """
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    register_schema()
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # let composition errors reach us
    app = hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")(task)
    try:
        app()
    except (HydraException, OmegaConfBaseException) as err:
        refuse(hydra_error_line(err))
    except OSError as err:
        if raised_in(err, task.__code__):  # the study itself failed: not an input error
            raise
        refuse(run_dir_error_line(err))


if __name__ == "__main__":
    main()
