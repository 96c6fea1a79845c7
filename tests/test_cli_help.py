"""The command line explains itself (issue 11): ``--help`` lists the presets, families,
estimators and main keys from their registries; ``--version``; ``--shell-completion``
passes through to Hydra; a launcher whose plugin is missing names the extra to install.

Most cases run :func:`mlesim.__main__.main` in this process; two run the real command
(``| head`` and a reader that has gone), as a pipe cannot be faked in-process.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from conftest import compose_config, run_in_process
from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from omegaconf import OmegaConf

import mlesim.__main__ as cli
from mlesim.cli_help import help_text, preset_question
from mlesim.estimators import ESTIMATORS
from mlesim.families import FAMILIES

PRESETS = Path(cli.config_dir()) / "experiment"
#: the keys the help must explain (issue 11)
MAIN_KEYS = (
    "seed",
    "replications",
    "n",
    "truth",
    "model",
    "contamination",
    "estimand",
    "estimators",
    "design",
    "confidence",
    "compare",
    "runner.n_jobs",
    "runner.backend",
    "stopping.target_mcse",
    "stopping.measure",
    "stopping.min_replications",
    "stopping.max_replications",
)


def section(text: str, title: str) -> list[str]:
    """The lines of the help's section whose title starts with ``title``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start + 1 : end]


@pytest.fixture(scope="module")
def help_out(tmp_path_factory) -> str:
    """What ``mlesim --help`` prints (in-process), checked to exit 0 with nothing on stderr."""
    mp = pytest.MonkeyPatch()
    cwd = tmp_path_factory.mktemp("help")
    mp.chdir(cwd)
    mp.setattr(sys, "argv", ["mlesim", "--help"])
    try:
        with pytest.raises(SystemExit) as exc:
            from contextlib import redirect_stdout
            from io import StringIO

            buf = StringIO()
            with redirect_stdout(buf):
                cli.main()
    finally:
        mp.undo()
    assert exc.value.code == 0
    assert not any(cwd.iterdir()), "--help wrote files"
    return buf.getvalue()


# ---------------------------------------------------------------------------- --help
def test_help_is_mlesims_own(help_out):
    assert help_out.startswith("usage: mlesim ")
    assert "powered by Hydra" not in help_out  # Hydra's generic help


@pytest.mark.parametrize("flag", ["-h", "--he"])
def test_short_and_abbreviated_help(flag, tmp_path, monkeypatch, capsys, help_out):
    code, out, err = run_in_process([flag], tmp_path, monkeypatch, capsys)
    assert (code, err) == (0, "")
    assert out == help_out


def test_help_lists_every_preset_with_its_question(help_out):
    rows = section(help_out, "Presets")
    names = sorted(p.stem for p in PRESETS.glob("*.yaml"))
    assert len(names) >= 5
    for name in names:
        row = next((r for r in rows if r.split()[0] == name), None)
        assert row, f"preset {name} missing from --help"
        question = preset_question(PRESETS / f"{name}.yaml")
        assert question, f"{name}.yaml has no leading comment"
        assert " ".join(question.split()[:3]) in row, row


def test_preset_question_is_the_first_sentence(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "# @package _global_\n# Does the median beat the mean\n# at the Laplace? Then more.\n"
        "#   python -m mlesim experiment=mine\nname: mine\n"
    )
    assert preset_question(path) == "Does the median beat the mean at the Laplace?"
    path.write_text("name: mine\n")
    assert preset_question(path) == ""


def test_help_lists_every_family_with_its_parameters(help_out):
    rows = section(help_out, "Families")
    assert len(FAMILIES) >= 10
    for name, cls in FAMILIES.items():
        wanted = re.compile(rf"^\s+{re.escape(name)}\s+{re.escape(', '.join(cls.params))}$")
        assert any(wanted.match(r) for r in rows), f"{name} {cls.params} missing: {rows}"
    assert any(r.split()[0] == "truth=scipy" for r in rows)  # the generic path


def test_help_lists_every_estimator_with_its_options(help_out):
    rows = section(help_out, "Estimators")
    assert len(ESTIMATORS) >= 8
    import mlesim.learners  # noqa: F401  (the learning families' kinds)
    from mlesim.estimators import LEARNERS

    entries = [(k, c) for k, c in ESTIMATORS.items() if not c.families]
    entries += [(f"{kind} ({fam})", c) for (fam, kind), c in LEARNERS.items()]
    assert len(entries) > len(ESTIMATORS)
    for kind, cls in entries:
        options = ", ".join(cls.options) or "-"
        wanted = re.compile(rf"^\s+{re.escape(kind)}(\s+{re.escape(options)})?(\s|$)")
        assert any(wanted.match(r) for r in rows), f"{kind} ({options}) missing: {rows}"


def test_help_explains_the_main_keys_with_their_defaults(help_out):
    rows = section(help_out, "Main keys")
    shown = {m.group(1): m.group(2) for r in rows if (m := re.match(r"^  (\S+?)=(\S*)", r))}
    missing = [k for k in MAIN_KEYS if k not in shown]
    assert not missing, f"keys missing from --help: {missing}"
    cfg = compose_config()
    for key, default in shown.items():  # no key the config lacks, and the true default
        if key in ("truth", "contamination"):  # group choices, not values
            continue
        assert OmegaConf.select(cfg, key, default="<absent>") != "<absent>", key
        value = OmegaConf.to_container(cfg)
        for part in key.split("."):
            value = value[part]
        compact = re.sub(r"[\s'\"]", "", str(value)).replace("None", "null")
        assert default.lower() == compact.lower(), (key, default, value)
    assert shown["truth"] == "normal" and shown["contamination"] == "null"


def test_help_says_how_to_set_keys_and_where_the_rest_is(help_out):
    for text in (
        "<key>=<value>",
        "+estimators.med={kind:median}",
        "-m <key>=<a>,<b>",
        "--config-dir <dir>",
        "--hydra-help",
        "--shell-completion install=bash",
        "--version",
        "pip install 'mlesim[slurm]'",
        "MLESIM_DASK_LOGS",
    ):
        assert text in help_out, text


def test_help_fits_the_width_and_lists_my_presets(tmp_path):
    mine = tmp_path / "my" / "experiment"
    mine.mkdir(parents=True)
    (mine / "mine.yaml").write_text("# @package _global_\n# My own question?\nname: mine\n")
    text = help_text(cli.config_dir(), ["--config-dir", str(tmp_path / "my")], width=80)
    for line in text.splitlines():
        assert sum(not unicodedata.combining(c) for c in line) <= 80, line
    assert any(r.split() == ["mine", "My", "own", "question?"] for r in section(text, "Presets"))


# ------------------------------------------------------------ --version, completion
def test_version_prints_the_installed_version(tmp_path, monkeypatch, capsys):
    code, out, err = run_in_process(["--version"], tmp_path, monkeypatch, capsys)
    assert (code, err) == (0, "")
    assert out == f"mlesim {importlib.metadata.version('mlesim')}\n"


def test_shell_completion_passes_through_to_hydra(tmp_path, monkeypatch, capsys):
    code, out, err = run_in_process(
        ["--shell-completion", "install=bash"], tmp_path, monkeypatch, capsys
    )
    assert code == 0, err
    assert "hydra_bash_completion" in out and "complete " in out
    assert not any(tmp_path.iterdir())


# --------------------------------------------------------------- missing launchers
@pytest.fixture
def no_submitit(monkeypatch):
    """Hydra as if hydra-submitit-launcher were not installed: its launcher configs are
    not in the ConfigStore (the plugin scan, which would register them, has been done)."""
    Plugins.instance()
    launchers = ConfigStore.instance().repo["hydra"]["launcher"]
    for name in [n for n in launchers if n.startswith("submitit_")]:
        monkeypatch.delitem(launchers, name)


def one_error_line(code: int, out: str, err: str) -> str:
    assert code == 2, err
    assert "Traceback" not in err + out
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("mlesim: error: hydra/launcher: "), lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("launcher", "says"),
    [
        ("slurm", "slurm needs submitit_slurm, a launcher of the Hydra plugin"),
        ("submitit_local", "submitit_local, a launcher of the Hydra plugin"),
        ("nosuch", "unknown option 'nosuch'; allowed: basic, local, slurm;"),
    ],
)
def test_a_launcher_without_its_plugin_names_the_extra(
    launcher, says, no_submitit, tmp_path, monkeypatch, capsys
):
    args = ["-m", f"hydra/launcher={launcher}", "seed=1,2"]
    line = one_error_line(*run_in_process(args, tmp_path, monkeypatch, capsys))
    assert says in line
    assert "pip install 'mlesim[slurm]'" in line
    assert not any(tmp_path.iterdir()), "a refused sweep left files"


def test_an_unknown_launcher_with_the_plugin_installed(tmp_path, monkeypatch, capsys):
    args = ["-m", "hydra/launcher=nosuch", "seed=1,2"]
    line = one_error_line(*run_in_process(args, tmp_path, monkeypatch, capsys))
    assert "unknown option 'nosuch'; allowed: basic, local, slurm, submitit_local" in line
    assert "pip install" not in line  # nothing is missing: a misspelt name


def test_launcher_extras_match_the_package_extras():
    requires = importlib.metadata.requires("mlesim") or []
    for extra, package in cli.LAUNCHER_EXTRAS.values():
        assert any(
            r.startswith(package) and re.search(rf"extra\s*==\s*['\"]{extra}['\"]", r)
            for r in requires
        ), f"{package} is not in the extra [{extra}]: {requires}"


# ----------------------------------------------------------- the real command, piped
def test_help_piped_into_head_exits_quietly(tmp_path):
    script = shutil.which("mlesim") or str(Path(sys.executable).with_name("mlesim"))
    proc = subprocess.run(
        ["bash", "-c", 'set -o pipefail; "$0" --help | head -3', script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.splitlines()[0].startswith("usage: mlesim")
    assert len(proc.stdout.splitlines()) == 3


def test_help_to_a_reader_that_has_gone_is_quiet_and_light(tmp_path):
    """The reader closes the pipe before mlesim writes (``mlesim --help | true``): exit 0,
    no traceback; and the help loads neither matplotlib, pandas nor dask."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    proc = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "mlesim", "--help"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()  # before the interpreter has even started importing
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, err[-2000:]
    imported = {line.split("|")[-1].strip() for line in err.splitlines() if "|" in line}
    assert "mlesim.families" in imported  # the registries were loaded (so the help ran)
    assert not [line for line in err.splitlines() if "|" not in line], err[-2000:]
    heavy = {m for m in imported if m.split(".")[0] in ("matplotlib", "pandas", "dask")}
    assert not heavy, sorted(heavy)
