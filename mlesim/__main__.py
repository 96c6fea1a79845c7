"""Command line: ``python -m mlesim experiment=<name> [key=value ...]`` (also ``mlesim``).

Hydra composes the configuration; this module only wires validation, the engine,
the summary and the study's figures together (see :mod:`mlesim.pipeline`). Bad
input — an unknown key, a wrong type, a value out of its domain, an unwritable run
directory — ends the program with one line on stderr, ``mlesim: error: <key>: <what
is wrong>; allowed: <values>``, exit status 2, and no result files.

``--help`` and ``--version`` are mlesim's own (:mod:`mlesim.cli_help`), answered before
Hydra starts; Hydra's help is ``--hydra-help``, and its other flags (``--cfg``,
``--info``, ``--shell-completion``, ``--config-dir``) pass through.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from omegaconf import DictConfig, OmegaConf

from mlesim.error_lines import (
    hydra_error_line,
    omegaconf_error_line,
    raised_in,
    run_dir_error_line,
)
from mlesim.errors import ConfigError

__all__ = ["config_dir", "hydra_error_line", "launcher_line", "main", "task"]

#: exit status for input mlesim refuses (as argparse uses for bad arguments)
EXIT_BAD_INPUT = 2

#: Hydra launcher plugins that an extra of mlesim installs (pyproject.toml), by the
#: prefix of the launcher configs the plugin registers: (extra, plugin package);
#: hydra-submitit-launcher registers submitit_slurm and submitit_local, which
#: conf/hydra/launcher/{slurm,local}.yaml extend
LAUNCHER_EXTRAS = {"submitit_": ("slurm", "hydra-submitit-launcher")}


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
    """How many finished chunks the files in ``chunks`` hold (0 when it does not exist)."""
    from mlesim.chunkfiles import saved_chunks

    return saved_chunks(chunks)


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


def _is_flag(arg: str, flag: str, shortest: str, short: str | None = None) -> bool:
    """``arg`` is ``flag``, an abbreviation of it argparse (Hydra's parser) would take
    (at least ``shortest``), or its ``short`` form."""
    return arg == short or (arg.startswith(shortest) and flag.startswith(arg))


def own_flags(args: list[str]) -> None:
    """Answer ``--help`` / ``-h`` and ``--version`` and exit 0; anything else (and
    every flag next to ``--shell-completion``, Hydra's) is left to Hydra."""
    if any(_is_flag(a, "--shell-completion", "--s", "-sc") for a in args):
        return
    if any(_is_flag(a, "--help", "--he", "-h") for a in args):
        from mlesim.cli_help import help_text

        _print_and_exit(help_text(config_dir(), args))
    if any(_is_flag(a, "--version", "--v") for a in args):
        from mlesim.cli_help import version_line

        _print_and_exit(version_line() + "\n")


def _reader_gone() -> NoReturn:
    """stdout's reader has gone (``mlesim --help | head``): end quietly, status 0 (the
    interpreter's last flush then writes to /dev/null instead of raising again)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(0)


def _print_and_exit(text: str) -> NoReturn:
    """Write ``text`` to stdout and exit 0, also when the reader stops early."""
    try:
        if hasattr(sys.stdout, "reconfigure"):  # a non-UTF-8 terminal: θ̂ as ?, not a crash
            sys.stdout.reconfigure(errors="replace")
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        _reader_gone()
    sys.exit(0)


def _flushed(app) -> None:
    """``app()``, then flush stdout, so that a reader that has gone (``mlesim --cfg job |
    head``) is noticed here rather than in the interpreter's last flush."""
    try:
        app()
    except SystemExit:
        sys.stdout.flush()
        raise
    sys.stdout.flush()


def launcher_line(err: Exception, argv: list[str] | None = None) -> str | None:
    """The line for a ``hydra/launcher`` Hydra cannot find, naming the extra that
    installs its plugin (``pip install 'mlesim[slurm]'``); None for other errors.

    Hydra cannot tell a missing plugin from a misspelt name: both are a config missing
    from the ``hydra/launcher`` group. A launcher of a plugin an extra installs (chosen
    directly or through a preset such as ``hydra/launcher=slurm``, as read from
    ``argv``, default ``sys.argv``) gets the install line; another name gets Hydra's
    options, and the install line too when the plugin's own launchers are not among them.
    """
    from hydra.errors import MissingConfigException

    missing = getattr(err, "missing_cfg_file", None)
    if not isinstance(err, MissingConfigException) or not missing:
        return None
    group, _, name = str(missing).rpartition("/")
    if group != "hydra/launcher":
        return None
    for prefix, (extra, package) in LAUNCHER_EXTRAS.items():
        if name.startswith(prefix):
            chosen = [
                a.split("=", 1)[1]
                for a in (sys.argv[1:] if argv is None else argv)
                if a.lstrip("+").startswith("hydra/launcher=")
            ]
            via = f"{chosen[-1]} needs {name}" if chosen and chosen[-1] != name else name
            return (
                f"hydra/launcher: {via}, a launcher of the Hydra plugin {package}, which is "
                f"not installed; allowed: pip install 'mlesim[{extra}]' (or '.[{extra}]' in a "
                "clone), or hydra/launcher=basic (the runs of the sweep one after another on "
                "this machine)"
            )
    line = hydra_error_line(err)
    options = err.options or []
    absent = [
        f"pip install 'mlesim[{extra}]' (or '.[{extra}]' in a clone) for {prefix}*"
        for prefix, (extra, _) in LAUNCHER_EXTRAS.items()
        if not any(o.startswith(prefix) for o in options)
    ]
    if absent:
        line += "; a plugin's launchers need the plugin: " + ", ".join(absent)
    return line


#: the jobs of this process's sweep that failed (their error.txt says why)
FAILED_JOBS: list[str] = []


class _JobStopped(Exception):
    """A job of a sweep was refused; the sweep goes on."""


def task(cfg: DictConfig) -> None:
    """One Hydra job: validate, simulate, summarise, draw, report.

    Alone, a refusal is one line and exit status 2. In a sweep (``-m``) it is the same
    line on stderr and in the job's ``error.txt``, and the sweep goes on: the other jobs
    run, the sweep report lists the failed one, and :func:`main` exits with status 2.
    """
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    if not _multirun(hydra_cfg):
        _run_job(cfg, hydra_cfg, refuse, _discard_empty_run_dir)
        return
    outdir = Path(hydra_cfg.runtime.output_dir)

    def fail(line: str) -> NoReturn:
        line = " ".join(line.split())
        print(f"mlesim: error: {line}", file=sys.stderr)
        from mlesim.storage import write_text

        write_text(outdir / "error.txt", line + "\n")  # the sweep report reads it
        FAILED_JOBS.append(outdir.name)
        raise _JobStopped(line)

    (outdir / "error.txt").unlink(missing_ok=True)  # an earlier attempt's
    try:
        _run_job(cfg, hydra_cfg, fail, lambda _outdir: None)
    except _JobStopped:
        return


def _multirun(hydra_cfg: DictConfig) -> bool:
    return hydra_cfg.mode is not None and str(hydra_cfg.mode).endswith("MULTIRUN")


def _run_job(cfg: DictConfig, hydra_cfg: DictConfig, stop, discard) -> None:
    """Validate, simulate, summarise, draw, report; a refusal calls ``stop(line)`` (which
    does not return) after ``discard(outdir)`` where the run dir holds nothing else."""
    from omegaconf.errors import OmegaConfBaseException

    from mlesim import collector
    from mlesim.config import pin_overrides
    from mlesim.interrupt import guard
    from mlesim.lock import RunDirInUse
    from mlesim.pipeline import run_pipeline
    from mlesim.study import validate

    outdir = Path(hydra_cfg.runtime.output_dir)
    try:
        check_run_dir(hydra_cfg)
    except ConfigError as err:  # the run dir is the current directory: remove nothing else
        stop(str(err))
    try:
        task_overrides = OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False)
        for key in pin_overrides(cfg, task_overrides):
            logging.getLogger("mlesim").info(
                "%s given on the command line replaces design.%s", key, key
            )
        spec = validate(cfg)
    except ConfigError as err:
        _restore_finished_run(outdir)
        discard(outdir)
        stop(str(err))
    except OmegaConfBaseException as err:  # e.g. an interpolation to a missing key
        _restore_finished_run(outdir)
        discard(outdir)
        stop(omegaconf_error_line(err) or f"config: {str(err).splitlines()[0]}")
    chunks = outdir / "chunks"
    collector.resume()  # the imports and the study stay; collect what the run makes
    try:
        with guard():
            run_pipeline(spec, outdir, startup=process_age())
    except RunDirInUse as err:  # another run's directory: touch nothing
        _restore_finished_run(outdir)
        stop(str(err))
    except ConfigError as err:  # a plugin broke its contract for a whole chunk
        if chunks.is_dir() and not _saved(chunks):  # nothing worth resuming
            shutil.rmtree(chunks, ignore_errors=True)
        discard(outdir)
        stop(str(err))
    except KeyboardInterrupt:
        print(
            f"mlesim: interrupted: {_saved(chunks)} finished chunk(s) are saved in {chunks}; "
            "run the same command again to resume",
            file=sys.stderr,
        )
        sys.exit(130)
    except OSError as err:  # a read-only run directory, a full disk
        stop(
            f"hydra.run.dir: cannot write to {outdir} ({err.strerror or err}); "
            f"{_saved(chunks)} finished chunk(s) are kept for a resume; allowed: a writable "
            "directory with free space"
        )


def process_age() -> float | None:
    """Seconds since this process started (from Linux's ``/proc``; None elsewhere)."""
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            started = int(fh.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        with open("/proc/uptime", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
        return max(0.0, uptime - started / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def check_run_dir(hydra_cfg: DictConfig) -> None:
    """Refuse an empty ``hydra.run.dir`` (Hydra would write the run into the current
    directory, mixing it with whatever is there)."""
    if _multirun(hydra_cfg):
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


#: ``mode:`` as a key in a YAML file (block or flow style, quoted or not)
_MODE_KEY = re.compile(r"""(^|[\s{,])["']?mode["']?\s*:""", re.M)
#: an override that could set ``hydra.mode`` or add configs from elsewhere: a ``mode``
#: key (``hydra.mode=``, ``+hydra.mode=``, ``hydra={mode:...}``), a whole ``hydra=``
#: value, a search path, a ``hydra/`` group
_MODE_ARG = re.compile(r"(^|[.+~/{,\s])mode\s*[=:]|^[+~]*hydra\s*=|searchpath|hydra/")
#: a flag that could: -m/--multirun (and argparse's abbreviations), --config-dir,
#: --config-path, --config-name (-cd, -cp, -cn)
_MODE_FLAG = re.compile(r"^-(m|-m|c|-c)")
#: the config sources of a plain command: Hydra's own, mlesim's config tree, schemas
_PLAIN_SOURCES = {"hydra", "main", "schema"}


@contextmanager
def _one_composition(args: list[str]) -> Iterator[None]:
    """Hydra (1.3) composes the whole configuration twice per command, the first time
    (``Hydra.get_mode``) only to read ``hydra.mode`` (~0.18 s here). Where nothing can
    set it (:func:`_mode_unset`, and no ``-m``, ``--config-dir``/``-path``/``-name``
    flag) its answer is None, Hydra's own for an unset mode, without composing; anything
    else keeps Hydra's way. Only for this call of the app."""
    from hydra._internal.hydra import Hydra

    own = getattr(Hydra, "get_mode", None)
    if own is None or any(_MODE_FLAG.search(a) for a in args):
        yield
        return

    def get_mode(self: Any, config_name: str | None, overrides: list[str]) -> Any:
        return None if _mode_unset(self, overrides) else own(self, config_name, overrides)

    Hydra.get_mode = get_mode
    try:
        yield
    finally:
        Hydra.get_mode = own


def _mode_unset(hydra: Any, overrides: list[str]) -> bool:
    """Whether nothing can set ``hydra.mode`` for this Hydra and these overrides: its
    config sources are Hydra's own and mlesim's tree (no ``--config-dir``, no search-path
    plugin installed), no override names a mode, a search path, a ``hydra/`` group or a
    whole ``hydra=`` value, and no file of mlesim's tree has a ``mode:`` key."""
    try:
        sources = {source.provider for source in hydra.config_loader.get_sources()}
    except AttributeError:  # another Hydra: ask it
        return False
    if not sources <= _PLAIN_SOURCES or any(_MODE_ARG.search(o) for o in overrides):
        return False
    return not any(
        _MODE_KEY.search(p.read_text(encoding="utf-8", errors="replace"))
        for p in Path(config_dir()).rglob("*.yaml")
    )


def main() -> None:
    """Console-script entry point.

    Hydra's own composition errors (unknown key, wrong type, unknown group option,
    unparsable override) and a run directory Hydra cannot create are reported as one
    line and exit status 2, like mlesim's own value checks in :func:`task`.
    """
    own_flags(sys.argv[1:])
    FAILED_JOBS.clear()  # this command's sweep only
    import hydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from mlesim.config import register_schema

    register_schema()
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # let composition errors reach us
    app = hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")(task)
    try:
        with _one_composition(sys.argv[1:]):
            _flushed(app)
        if FAILED_JOBS:
            refuse(
                f"sweep: {len(FAILED_JOBS)} job(s) failed ({', '.join(FAILED_JOBS)}); each "
                "job's error.txt says why, and the sweep's sweep_report.md lists them"
            )
    except (HydraException, OmegaConfBaseException) as err:
        refuse(launcher_line(err) or hydra_error_line(err))
    except AssertionError as err:  # Hydra's composition asserts on a key under a null group
        if "Unexpected type for root" not in str(err):
            raise
        refuse(
            "contamination: a key was set under a group that is null (no contamination, e.g. "
            "contamination.fraction=0.1 alone); allowed: choose the group first, e.g. "
            "contamination=outliers contamination.fraction=0.1"
        )
    except BrokenPipeError:  # e.g. `mlesim --cfg job | head`: the reader has gone
        _reader_gone()
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


def command() -> NoReturn:
    """The command (``python -m mlesim``, the ``mlesim`` script): one BLAS thread per
    process (:mod:`mlesim.blas`) and glibc's allocator tuned (:mod:`mlesim.allocator`),
    :func:`main`, then an exit that skips the interpreter's teardown of every module and
    object, which takes 0.2–1 s after a run that imported pandas and matplotlib.
    Everything is written by then (atomic files), the helpers are stopped (by the run's
    pool), multiprocessing's finalisers run (:func:`mlesim.backends.run_finalisers`), and
    the log and the streams are flushed and closed here."""
    from mlesim import collector
    from mlesim.allocator import tune
    from mlesim.blas import one_thread

    collector.pause()  # until the study is validated (mlesim.collector)
    one_thread()  # (before numpy is imported)
    tune()
    try:
        main()
        status = 0
    except SystemExit as stop:
        status = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if not isinstance(stop.code, int | None):
            print(stop.code, file=sys.stderr)
    except KeyboardInterrupt:  # a Ctrl-C outside a study's run (start-up, a sweep's end)
        print(
            "mlesim: interrupted; the chunks any run finished are kept in its run "
            "directory's chunks/ for a resume",
            file=sys.stderr,
        )
        status = 130
    if "mlesim.backends" in sys.modules:
        from mlesim.backends import run_finalisers

        run_finalisers()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that has gone
            pass
    os._exit(status)


if __name__ == "__main__":
    command()
