"""Command line: ``python -m mlesim experiment=<name> [key=value ...]`` (also ``mlesim``).

Hydra composes the configuration; this module only wires validation, the engine,
the summary and the study's figures together (see :mod:`mlesim.pipeline`). Bad
input — an unknown key, a wrong type, a value out of its domain, an unwritable run
directory — ends the program with one line on stderr, ``mlesim: error: <key>: <what
is wrong>; allowed: <values>``, exit status 2, and no result files.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

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


def _saved(chunks: Path) -> int:
    """How many finished chunk files ``chunks`` holds (0 when it does not exist)."""
    return len(list(chunks.glob("*.npz"))) if chunks.is_dir() else 0


def _restore_finished_run(outdir: Path) -> None:
    """Put back the ``.hydra/`` record of a finished run that a refused command's Hydra
    overwrote (the pipeline keeps a copy in ``chunks/hydra``)."""
    kept = outdir / "chunks" / "hydra"
    if kept.is_dir():
        shutil.copytree(kept, outdir / ".hydra", dirs_exist_ok=True)


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
            top = parent.parent  # and experiments/ itself when the refused run made it
            if top.is_dir() and not any(top.iterdir()):
                top.rmdir()


def task(cfg: DictConfig) -> None:
    """One Hydra job: validate, simulate, summarise, draw, report."""
    from omegaconf.errors import OmegaConfBaseException

    from mlesim.config import pin_overrides
    from mlesim.lock import RunDirInUse
    from mlesim.pipeline import run_pipeline
    from mlesim.study import validate

    hydra_cfg = HydraConfig.get()
    outdir = Path(hydra_cfg.runtime.output_dir)
    try:
        check_run_dir(hydra_cfg)
    except ConfigError as err:  # the run dir is the current directory: remove nothing else
        refuse(str(err))
    try:
        task_overrides = OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False)
        for key in pin_overrides(cfg, task_overrides):
            logging.getLogger("mlesim").info(
                "%s given on the command line replaces design.%s", key, key
            )
        spec = validate(cfg)
    except ConfigError as err:
        _restore_finished_run(outdir)
        _discard_empty_run_dir(outdir)
        refuse(str(err))
    except OmegaConfBaseException as err:  # e.g. an interpolation to a missing key
        _restore_finished_run(outdir)
        _discard_empty_run_dir(outdir)
        refuse(omegaconf_error_line(err) or f"config: {str(err).splitlines()[0]}")
    chunks = outdir / "chunks"
    try:
        run_pipeline(spec, outdir)
    except RunDirInUse as err:  # another run's directory: touch nothing
        _restore_finished_run(outdir)
        refuse(str(err))
    except ConfigError as err:  # a plugin broke its contract for a whole chunk
        if chunks.is_dir() and not _saved(chunks):  # nothing worth resuming
            shutil.rmtree(chunks, ignore_errors=True)
        _discard_empty_run_dir(outdir)
        refuse(str(err))
    except KeyboardInterrupt:
        print(
            f"mlesim: interrupted: {_saved(chunks)} finished chunk(s) are saved in {chunks}; "
            "run the same command again to resume",
            file=sys.stderr,
        )
        sys.exit(130)
    except OSError as err:  # a read-only run directory, a full disk
        refuse(
            f"hydra.run.dir: cannot write to {outdir} ({err.strerror or err}); "
            f"{_saved(chunks)} finished chunk(s) are kept for a resume; allowed: a writable "
            "directory with free space"
        )


def check_run_dir(hydra_cfg: DictConfig) -> None:
    """Refuse an empty ``hydra.run.dir`` (Hydra would write the run into the current
    directory, mixing it with whatever is there)."""
    if hydra_cfg.mode is not None and str(hydra_cfg.mode).endswith("MULTIRUN"):
        return
    if not str(hydra_cfg.run.dir or "").strip() or str(hydra_cfg.run.dir).strip() == ".":
        here = Path(hydra_cfg.runtime.output_dir)
        shutil.rmtree(here / ".hydra", ignore_errors=True)  # what Hydra wrote for this run
        log = here / f"{hydra_cfg.job.name}.log"
        if log.is_file() and log.stat().st_size == 0:  # Hydra's, still empty: nothing of yours
            log.unlink()
        raise ConfigError(
            "hydra.run.dir",
            "is empty, which would write the run into the current directory; allowed: a "
            "directory for this run, e.g. hydra.run.dir=experiments/my_run",
        )


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
    except AssertionError as err:  # Hydra's composition asserts on a key under a null group
        if "Unexpected type for root" not in str(err):
            raise
        refuse(
            "contamination: a key was set under a group that is null (no contamination, e.g. "
            "contamination.fraction=0.1 alone); allowed: choose the group first, e.g. "
            "contamination=outliers contamination.fraction=0.1"
        )
    except BrokenPipeError:  # e.g. `mlesim --help | head`: the reader has gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except OSError as err:
        if raised_in(err, task.__code__):  # the study itself failed: not an input error
            raise
        if err.errno == errno.ENAMETOOLONG and "hydra/conf" in str(err.filename):
            refuse(  # Hydra looked the key up as a config group file: not the run dir
                "overrides: a key is too long to be a config name (an estimator label of "
                f"{len(Path(str(err.filename)).name)} characters?); allowed: labels of a few "
                "words, e.g. +estimators.med={kind:median}"
            )
        refuse(run_dir_error_line(err))
    except ValueError as err:  # Hydra's composition: e.g. contamination=null
        if raised_in(err, task.__code__):
            raise
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        refuse(
            f"overrides: {first}; allowed: a group option such as contamination=outliers, or "
            "~contamination to drop the group"
        )


if __name__ == "__main__":
    main()
