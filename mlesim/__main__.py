"""Command line: ``python -m mlesim experiment=<name> [key=value ...]`` (also ``mlesim``).

Hydra composes the configuration; this module only wires validation, the engine,
the summary and the study's figures together (see :mod:`mlesim.pipeline`).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from mlesim.config import register_schema
from mlesim.errors import ConfigError


def config_dir() -> str:
    """Absolute path of the config tree: the packaged copy if present, else the repo's."""
    here = Path(__file__).resolve().parent
    packaged = here / "conf"
    return str(packaged if packaged.is_dir() else here.parent / "conf")


def _discard_empty_run_dir(outdir: Path) -> None:
    """Remove a run dir that holds only what Hydra wrote before validation failed."""
    if not outdir.is_dir():
        return
    if all(p.name == ".hydra" or p.suffix == ".log" for p in outdir.iterdir()):
        shutil.rmtree(outdir, ignore_errors=True)
        parent = outdir.parent
        if parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()


def task(cfg: DictConfig) -> None:
    """One Hydra job: validate, simulate, summarise, draw, report."""
    from mlesim.config import validate
    from mlesim.pipeline import run_pipeline

    outdir = Path(HydraConfig.get().runtime.output_dir)
    try:
        spec = validate(cfg)
    except ConfigError as err:
        print(f"mlesim: error: {err}", file=sys.stderr)
        _discard_empty_run_dir(outdir)
        sys.exit(2)
    run_pipeline(spec, outdir)


def hydra_error_line(err: Exception) -> str:
    """One line naming the key and what is allowed, for Hydra/OmegaConf composition errors."""
    from hydra.errors import MissingConfigException, OverrideParseException

    if isinstance(err, MissingConfigException) and err.missing_cfg_file:
        group, _, name = err.missing_cfg_file.rpartition("/")
        options = ", ".join(err.options or []) or "none"
        return f"{group or 'config'}: unknown option {name!r}; allowed: {options}"
    if isinstance(err, OverrideParseException):
        return f"{err.override}: cannot parse override ({err.message.splitlines()[0]})"
    cause = err.__cause__
    key = getattr(cause, "full_key", None)
    if key:
        detail = str(cause).splitlines()[0]
        if "not in" in detail:
            detail = f"unknown key ({detail})"
        return f"{key}: {detail}"
    return " ".join(str(err).split())


def main() -> None:
    """Console-script entry point.

    Hydra's own composition errors (unknown key, wrong type, unknown group option,
    unparsable override) are reported as one line and exit status 2, like ours.
    """
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    register_schema()
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # let composition errors reach us
    app = hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")(task)
    try:
        app()
    except (HydraException, OmegaConfBaseException) as err:
        print(f"mlesim: error: {hydra_error_line(err)}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
