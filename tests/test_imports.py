"""A run imports what it needs when it needs it: importing the command line's modules
pulls in neither scipy.stats (~0.6 s) nor matplotlib, and a closed-form study computes
and summarises without scipy.stats."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("scipy.stats", "matplotlib", "dask", "sklearn", "statsmodels")


def imported(code: str) -> set[str]:
    """The HEAVY modules present after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_the_command_lines_modules_import_nothing_heavy():
    assert (
        imported("import mlesim.__main__, mlesim.pipeline, mlesim.study, mlesim.cli_help") == set()
    )


def test_help_imports_nothing_heavy():
    code = (
        "from mlesim.cli_help import help_text\n"
        "from mlesim.__main__ import config_dir\n"
        "help_text(config_dir(), ['--help'])"
    )
    assert imported(code) == set()


def test_a_closed_form_study_runs_and_summarises_without_scipy_stats():
    code = (
        "from mlesim.api import compose_config, validate\n"
        "from mlesim.engine import run_study\n"
        "from mlesim.summarise import summarise\n"
        "spec = validate(compose_config('variance_bias', ['replications=50', 'n=[3,30]']))\n"
        "summarise(spec, run_study(spec, progress=False).replicates, extended=True)"
    )
    assert "scipy.stats" not in imported(code)


def test_a_helper_process_imports_no_tables_and_no_hydra():
    """What a spawned helper needs to run a chunk (mlesim.work, the Task it is sent, the
    parent watchdog) starts in a fraction of a second: no pandas, Hydra or omegaconf."""
    probe = (
        "import mlesim.work, mlesim.chunks, mlesim.backends, sys\n"
        "print(' '.join(m for m in ('pandas', 'hydra', 'omegaconf', 'scipy.stats') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []


def test_a_lazy_module_pickles_and_copies_as_itself():
    import copy
    import pickle

    from mlesim.lazy import lazy_module

    special = lazy_module("scipy.special")
    for other in (pickle.loads(pickle.dumps(special)), copy.deepcopy(special)):
        assert other.ndtri(0.5) == 0.0
