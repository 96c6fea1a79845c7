"""Smoke test: every preset runs end to end through the real CLI in one sweep.

DESIGN.md: "one smoke test sweeps experiment=glob(*) with tiny replications".
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

PRESETS = sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "experiment").glob("*.yaml"))


def test_every_preset_runs_in_one_sweep(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "mlesim",
        "-m",
        "experiment=glob(*)",
        "replications=40",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    runs = sorted(p for p in (tmp_path / "sweep").glob("*_*") if p.is_dir())
    report = (tmp_path / "sweep" / "sweep_report.md").read_text()  # the sweep callback's
    assert f"{len(PRESETS)} runs, {len(PRESETS)} finished" in report
    names = sorted(p.name.split("_", 1)[1] for p in runs)
    assert names == PRESETS
    for run in runs:
        summary = pd.read_csv(run / "summary.csv")
        assert summary["estimator"].str.startswith("mle").any(), run.name
        assert (summary["n_rep"] + summary["n_failed"] == 40).all(), run.name
        assert list((run / "figures").glob("*.png")), run.name
        assert (run / "report.md").read_text().startswith("# ")
