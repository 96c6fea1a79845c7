"""mlesim's own ``--help`` and ``--version`` (Hydra's ``--help`` is generic; it stays
available as ``--hydra-help``).

Everything listed comes from where it is defined, so the help cannot drift from the
program: the presets and the other config-group options from the files of the config
tree (the first sentence of their leading comment), the families from
:data:`mlesim.families.FAMILIES`, the estimator kinds from
:data:`mlesim.estimators.ESTIMATORS`, the defaults of the main keys from
``conf/config.yaml`` and their allowed values from :mod:`mlesim.config`. Nothing here
imports matplotlib, pandas or dask: the help costs what importing the registries costs
(scipy, about a second).
"""

from __future__ import annotations

import re
import shutil
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["config_dirs_given", "help_text", "preset_question", "version", "version_line"]

#: the help's width in columns: the terminal's, within these bounds; 100 in a pipe
MAX_WIDTH, MIN_WIDTH, PIPE_WIDTH = 120, 80, 100
#: a cell wider than this (but in the last column) puts the rest of its row below it
MAX_CELL = 26
#: joins the words of a command so that wrapping never breaks it (printed as a space)
NBSP = "\u00a0"
#: the flags with which Hydra takes an extra config directory
CONFIG_DIR_FLAGS = ("--config-dir", "-cd")


def version() -> str:
    """The installed mlesim version (``mlesim.__version__`` when not installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("mlesim")
    except PackageNotFoundError:
        import mlesim

        return str(getattr(mlesim, "__version__", "unknown"))


def version_line() -> str:
    """What ``mlesim --version`` prints."""
    return f"mlesim {version()}"


# --------------------------------------------------------------------- text layout
def _cols(text: str) -> int:
    """Terminal columns of ``text`` (combining accents, as in θ̂, take none)."""
    return sum(not unicodedata.combining(c) for c in text)


def _cmd(text: str) -> str:
    """``text`` kept on one line by :func:`_wrap` (a command to copy)."""
    return text.replace(" ", NBSP)


def _words(text: str) -> list[str]:
    """The words of ``text``, split at white space but :data:`NBSP`."""
    return re.split(r"[^\S\u00a0]+", text.strip())


def _shorten(text: str, width: int) -> str:
    """``text`` on one line of at most ``width`` columns, cut at a word with ``…``."""
    text = " ".join(_words(text))
    if _cols(text) <= width:
        return text
    out = ""
    for word in text.split(" "):
        candidate = f"{out} {word}" if out else word
        if _cols(candidate) > width - 2:
            break
        out = candidate
    return f"{out.rstrip(',;:—–-')} …"


def _wrap(text: str, width: int) -> list[str]:
    """``text`` wrapped at words into lines of at most ``width`` columns."""
    lines: list[str] = []
    for word in _words(text):
        if lines and _cols(lines[-1]) + 1 + _cols(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


def _rows(
    rows: Iterable[Sequence[str]], width: int, wrap: bool = False, indent: int = 2
) -> list[str]:
    """A table: every column but the last padded to its longest cell (a cell wider than
    :data:`MAX_CELL` puts the rest of its row on the next line); the last column
    shortened to one line (or, with ``wrap``, wrapped under itself) to fit ``width``."""
    rows = [list(r) for r in rows]
    if not rows:
        return []
    ncols = max(len(r) for r in rows)
    widths = [
        max((_cols(r[c]) for r in rows if c < len(r) - 1 and _cols(r[c]) <= MAX_CELL), default=0)
        for c in range(ncols - 1)
    ]
    out = []
    for row in rows:
        head = " " * indent
        for c, cell in enumerate(row[:-1]):
            if _cols(cell) > widths[c]:  # too wide for its column: the rest goes below
                out.append((head + cell).rstrip())
                head = " " * (indent + sum(w + 2 for w in widths[: c + 1]))
            else:
                head += cell + " " * (widths[c] + 2 - _cols(cell))
        room = max(width - _cols(head), 20)
        text = row[-1]
        if not text:
            out.append(head.rstrip())
        elif wrap:
            lines = _wrap(text, room)
            out.append(head + lines[0])
            out += [" " * _cols(head) + line for line in lines[1:]]
        else:
            out.append(head + _shorten(text, room))
    return out


# -------------------------------------------------------------------- the config tree
def preset_question(path: Path) -> str:
    """The first sentence of a preset file's leading comment (after ``# @package``)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return ""
    words = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("# @package") or (not words and not stripped):
            continue
        if not stripped.startswith("#"):
            break
        body = stripped.lstrip("#").strip()
        if words and (not body or line.lstrip("#").startswith("   ")):  # an example command
            break
        words.append(body)
    text = " ".join(" ".join(words).split())
    first = re.split(r"(?<=[.!?])\s+(?=[A-Z(])", text, maxsplit=1)[0]
    return first


def _group_options(group: Path) -> list[tuple[str, str]]:
    """(option, question) for each ``*.yaml`` of a config group directory."""
    if not group.is_dir():
        return []
    return [(p.stem, preset_question(p)) for p in sorted(group.glob("*.yaml"))]


def config_dirs_given(argv: Sequence[str]) -> list[Path]:
    """The directories named by ``--config-dir DIR`` / ``--config-dir=DIR`` / ``-cd DIR``."""
    out = []
    for i, arg in enumerate(argv):
        flag, eq, value = arg.partition("=")
        if flag in CONFIG_DIR_FLAGS and eq:
            out.append(Path(value))
        elif arg in CONFIG_DIR_FLAGS and i + 1 < len(argv):
            out.append(Path(argv[i + 1]))
    return out


def _defaults(conf: Path) -> dict[str, Any]:
    """``conf/config.yaml`` as plain data (interpolations left as written)."""
    from omegaconf import OmegaConf

    try:
        cfg = OmegaConf.load(conf / "config.yaml")
    except Exception:  # an unreadable tree: the help still lists everything else
        return {}
    return OmegaConf.to_container(cfg, resolve=False)  # type: ignore[return-value]


def _lookup(tree: dict[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _override(value: Any) -> str:
    """A value as it is written on the command line (``[10,100]``, ``{kind:mle}``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return "[" + ",".join(_override(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_override(v)}" for k, v in value.items()) + "}"
    return str(value)


# ---------------------------------------------------------------------- the sections
def _families(conf: Path) -> list[tuple[str, str]]:
    """(family, its parameters), then the truth group's other options (scipy, generator)."""
    from mlesim.families import FAMILIES

    rows = [(name, ", ".join(cls.params)) for name, cls in FAMILIES.items()]
    rows += [(f"truth={n}", q) for n, q in _group_options(conf / "truth") if n not in FAMILIES]
    return rows


def _summary(cls: type) -> str:
    """The first clause of a class's docstring, without Sphinx roles."""
    doc = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
    doc = re.sub(r",? ?:(?:func|class|mod|meth):`[^`]*`", "", doc)
    return re.split(r"(?<=[.;:])\s", doc, maxsplit=1)[0].rstrip(".;:, ")


def _estimators() -> list[tuple[str, str, str]]:
    """(kind, its options, what it is), then the user's own (``_target_``)."""
    from mlesim import learners  # noqa: F401  (registers the learning families' kinds)
    from mlesim.estimators import ESTIMATORS, LEARNERS

    rows = [
        (kind, ", ".join(cls.options) or "-", _summary(cls))
        for kind, cls in ESTIMATORS.items()
        if not cls.families
    ]
    rows += [
        (f"{kind} ({family})", ", ".join(cls.options) or "-", _summary(cls))
        for (family, kind), cls in sorted(LEARNERS.items())
    ]
    rows.append(("_target_", "params", "your own: {_target_:<module.function>,params:[<p>]}"))
    return rows


def _keys(conf: Path) -> list[tuple[str, str]]:
    """(key=default, what it does) for the main keys; allowed values from mlesim.config."""
    from mlesim.config import BACKENDS, COMPARE, ESTIMANDS, MCSE_MEASURES

    studies = sorted(
        p.stem for p in (Path(__file__).parent / "studies").glob("*.py") if p.name[0] != "_"
    )
    tree = _defaults(conf)
    groups = {k: v for d in tree.get("defaults", []) if isinstance(d, dict) for k, v in d.items()}
    what = [
        ("name", "the run's name: it writes to experiments/<name>/<date_time>-<pid>/"),
        ("study", "the analyses and figures to make: " + ", ".join(studies)),
        ("seed", "root seed; results depend on the config only, never on n_jobs or backend"),
        ("replications", "replicates per design cell, or auto (add chunks until stopping.*)"),
        ("n", "sample sizes (a design factor)"),
        ("truth", "the data's family (truth=<family>), its values truth.params.<p>=<value>"),
        ("model", "family the estimators assume; null: the truth's (else misspecified)"),
        ("contamination", "outliers mixed into the data (contamination=<name>); null: none"),
        ("estimand", " | ".join(ESTIMANDS) + ", or {<param>:<value>} for a generator"),
        ("estimators", "the methods compared: {<label>:{kind:<kind>,<option>:<value>}}"),
        (
            "design",
            "more crossed factors: {<dotted.key>:[<values>]}, e.g. 'design="
            "{truth.params.mu:[0,1]}'",
        ),
        ("confidence", "level of the Wald intervals whose coverage is measured"),
        (
            "compare",
            " | ".join(COMPARE) + ": each estimator on its own successful fits, or "
            "all on the replicates every estimator fitted",
        ),
        (
            "runner.n_jobs",
            "cores to use, the main process included (default 1); auto: all it may use",
        ),
        (
            "runner.backend",
            " | ".join(BACKENDS)
            + " (dask needs pip install 'mlesim[dask]', or '.[dask]' in a clone; "
            "its own log lines: MLESIM_DASK_LOGS=info)",
        ),
        (
            "runner.progress",
            "null: a progress bar on a terminal, else a log line every "
            "~10% (replicates, rate, ETA); true: the bar; false: neither",
        ),
        ("runner.resume", "reuse the chunks a stopped run saved in its directory"),
        (
            "stopping.target_mcse",
            "with replications=auto: stop a cell once the MCSE of stopping.measure is below this",
        ),
        ("stopping.measure", " | ".join(MCSE_MEASURES)),
        ("stopping.min_replications", "replicates before the first check"),
        ("stopping.max_replications", "replicates at most, whatever the MCSE"),
    ]
    rows = []
    for key, text in what:
        default = groups.get(key) if key in groups else _lookup(tree, key)
        rows.append((f"{key}={_override(default)}", text))
    return rows


def help_text(conf_dir: str | Path, argv: Sequence[str] = (), width: int | None = None) -> str:
    """mlesim's ``--help``: usage, presets, families, estimators, keys, how to set them.

    ``conf_dir`` is the shipped config tree; directories given in ``argv`` with
    ``--config-dir`` add their presets (``<dir>/experiment/*.yaml``).
    """
    conf = Path(conf_dir)
    if width is None:
        columns = shutil.get_terminal_size((PIPE_WIDTH, 24)).columns
        width = max(MIN_WIDTH, min(MAX_WIDTH, columns))
    presets = _group_options(conf / "experiment")
    for extra in config_dirs_given(argv):
        presets += [(n, q or f"(in {extra})") for n, q in _group_options(extra / "experiment")]

    def section(title: str, rows: Iterable[Sequence[str]], wrap: bool = False) -> list[str]:
        return ["", *_wrap(title, width), *_rows(rows, width, wrap=wrap)]

    out = [
        "usage: mlesim [experiment=<preset>] [<key>=<value> ...]",
        "       mlesim -m <key>=<a>,<b> ...     a sweep: a run per value (or combination)",
        "       mlesim -h | --version | --hydra-help | --shell-completion install=bash",
        "       python -m mlesim ...            the same",
        "",
        *_wrap(
            "Monte Carlo simulation studies of maximum likelihood and its rivals: bias, "
            "consistency, efficiency, coverage, each with its Monte Carlo SE. A run writes "
            "summary.csv, replicates.parquet, figures/ and report.md into its directory.",
            width,
        ),
        *section("Presets (experiment=<name>; any key below changes them):", presets),
        *section("Families (truth=<family>, model=<family>) and parameters:", _families(conf)),
        *section(
            "Estimators (+estimators.<label>={kind:<kind>,<option>:<value>}): kind, options",
            _estimators(),
        ),
        *section(
            "Contamination (contamination=<name>, then contamination.fraction=<ε>):",
            _group_options(conf / "contamination"),
        ),
        *section("Main keys (<key>=<default>; all of them: mlesim --cfg job):", _keys(conf), True),
        *section(
            "Setting them:",
            [
                ("<key>=<value>", "change a key: seed=7 n=[20,50] truth.params.mu=1"),
                ("+<key>=<value>", "add a key: +estimators.med={kind:median}"),
                ("~<key>", "remove a key: ~estimators.mle"),
                (
                    "-m <key>=<a>,<b>",
                    "a sweep, one run per combination, into experiments/multirun/ with a "
                    f"sweep_report.md of them all: {_cmd('-m truth=normal,gamma seed=1,2')}",
                ),
                ("hydra.run.dir=<dir>", "where the run writes"),
                (
                    "--config-dir <dir>",
                    "your own presets: <dir>/experiment/<name>.yaml, "
                    "first line " + _cmd("'# @package _global_'") + ", then experiment=<name>",
                ),
            ],
            True,
        ),
        *section(
            "Launchers of sweeps (-m hydra/launcher=<name>; they need pip install "
            "'mlesim[slurm]', or '.[slurm]' in a clone):",
            _group_options(conf / "hydra" / "launcher"),
        ),
        *section(
            "Other options:",
            [
                ("-h, --help", "this help (with --config-dir <dir>: your presets too)"),
                ("--version", "mlesim's version"),
                ("--hydra-help", "Hydra's own help and flags (--cfg, --info, ...)"),
                (
                    "--shell-completion",
                    "tab completion of keys and presets, for bash: "
                    + _cmd('eval "$(mlesim --shell-completion install=bash)"'),
                ),
            ],
            True,
        ),
    ]
    return "\n".join(out).replace(NBSP, " ") + "\n"
