"""results/ curation: the newest run of each study is copied, and a study already
curated with no newer run is kept and still listed."""

from __future__ import annotations

from pathlib import Path

from mlesim.curate import build


def _run(root: Path, name: str, text: str) -> None:
    run = root / name / "2026-01-01_00-00-00-000000"
    (run / "figures").mkdir(parents=True)
    (run / "summary.csv").write_text(text)
    (run / "report.md").write_text(f"# {name}\n\n**Key.** {text}\n")


def test_new_runs_replace_and_old_studies_stay(tmp_path):
    runs, out = tmp_path / "experiments", tmp_path / "results"
    _run(runs, "alpha", "a1")
    _run(runs, "beta", "b1")
    build(runs, out)
    assert (out / "beta" / "summary.csv").read_text() == "b1"
    runs2 = tmp_path / "experiments2"
    _run(runs2, "alpha", "a2")  # only alpha is rerun
    report = build(runs2, out).read_text()
    assert (out / "alpha" / "summary.csv").read_text() == "a2"
    assert (out / "beta" / "summary.csv").read_text() == "b1"
    assert "## alpha" in report and "## beta" in report and "**Key.** b1" in report
