"""The command pauses Python's cyclic collector for its start-up and freezes what it
imported before the simulation (mlesim.collector); a session keeps its collector."""

from __future__ import annotations

import gc
import subprocess
import sys

from mlesim import collector


def test_resume_leaves_a_running_collector_alone():
    frozen = gc.get_freeze_count()
    collector.resume()
    assert gc.isenabled() and gc.get_freeze_count() == frozen


def test_resume_leaves_a_collector_its_owner_turned_off_alone():
    gc.disable()
    try:
        collector.pause()  # (already off: not ours)
        collector.resume()
        assert not gc.isenabled() and gc.get_freeze_count() == 0
    finally:
        gc.enable()


def test_pause_then_resume_freezes_and_collects_again():
    from mlesim.sweep import SweepReport

    try:
        collector.pause()
        assert not gc.isenabled()
        SweepReport().on_multirun_start(config=None)  # a sweep's submitting process
        assert gc.isenabled() and gc.get_freeze_count() > 0
        frozen = gc.get_freeze_count()
        collector.resume()  # (a job after it: nothing more)
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
        gc.enable()


def test_the_command_collects_during_its_run_with_its_imports_frozen(tmp_path):
    """Inside the pipeline (after start-up) the collector runs and the objects of the
    start-up are frozen; without mlesim.collector the freeze count would be 0."""
    probe = (
        "import gc, sys\n"
        "import mlesim.pipeline as P\n"
        "seen = {}\n"
        "inner = P.run_pipeline\n"
        "def spy(*a, **k):\n"
        "    seen.update(enabled=gc.isenabled(), frozen=gc.get_freeze_count())\n"
        "    return inner(*a, **k)\n"
        "P.run_pipeline = spy\n"
        "from mlesim.__main__ import command\n"
        "import os\n"
        "_exit = os._exit\n"
        "os._exit = lambda code: (print(seen, flush=True), _exit(code))\n"
        "sys.argv = ['mlesim', 'n=[5]', 'replications=20', 'runner.progress=false',\n"
        f"            'hydra.run.dir={tmp_path / 'run'}']\n"
        "command()\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = eval(out.stdout.strip().splitlines()[-1])
    assert seen["enabled"] is True
    assert seen["frozen"] > 20_000  # the modules of numpy, pandas, Hydra, ... (~0.1-0.2 M)
