"""Build the curated ``results/`` report from the newest run of each study.

``python -m mlesim.curate`` (from the repository root) looks under ``experiments/``
for run directories (those holding a ``summary.csv``), takes the newest per
experiment name, copies its ``summary.csv``, ``report.md`` and ``figures/`` to
``results/<name>/`` and writes ``results/REPORT.md`` linking them — and the studies
already curated in ``results/`` with no run under ``experiments/``, unchanged — after
the hand-written ``results/NOTES.md`` if there is one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from omegaconf import OmegaConf

from mlesim.storage import write_text


def run_name(run: Path) -> str:
    """The ``name`` a run was made with (from its .hydra record; else its folder)."""
    record = run / ".hydra" / "config.yaml"
    if record.exists():
        return str(OmegaConf.load(record).get("name", run.parent.name))
    return run.parent.name


def newest_runs(root: Path) -> dict[str, Path]:
    """Newest run directory (by summary.csv mtime) for each run ``name`` under ``root``."""
    out: dict[str, Path] = {}
    for summary in sorted(root.rglob("summary.csv"), key=lambda p: p.stat().st_mtime):
        out[run_name(summary.parent)] = summary.parent
    return dict(sorted(out.items()))


def copy_run(run: Path, dest: Path) -> None:
    """Replace ``dest`` with the run's summary, report and figures."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in ("summary.csv", "report.md", "failures.csv"):
        if (run / name).exists():
            shutil.copy2(run / name, dest / name)
    if (run / "figures").is_dir():
        shutil.copytree(run / "figures", dest / "figures")
    hydra = run / ".hydra" / "overrides.yaml"
    if hydra.exists():
        shutil.copy2(hydra, dest / "overrides.yaml")


def first_paragraphs(report: Path, limit: int = 3) -> list[str]:
    """The bold-headed notes of a run report (its key numbers), each with the table it
    introduces when it ends with a colon."""
    if not report.exists():
        return []
    paras = report.read_text(encoding="utf-8").split("\n\n")
    out = []
    for i, p in enumerate(paras):
        if not p.startswith("**"):
            continue
        text = p.strip()
        if text.endswith(":") and i + 1 < len(paras) and paras[i + 1].startswith("|"):
            text += "\n\n" + paras[i + 1].strip()  # the table the note introduces
        out.append(text)
    return out[:limit]


def build(root: Path = Path("experiments"), out: Path = Path("results")) -> Path:
    """Copy the newest run of every study to ``out`` and write ``out/REPORT.md``."""
    runs = newest_runs(root)
    lines = [
        "# mlesim results",
        "",
        "The newest run of each study, copied by `python -m mlesim.curate`. Each folder "
        "holds the run's `summary.csv` (every measure with its Monte Carlo SE), its "
        "`report.md` and `figures/`; `overrides.yaml` records the command-line overrides.",
        "",
    ]
    notes = out / "NOTES.md"
    if notes.exists():  # hand-written reading notes, kept across rebuilds
        lines += [notes.read_text(encoding="utf-8").strip(), ""]
    kept = {s.parent.name for s in out.glob("*/summary.csv")} - set(runs)
    for name in sorted(set(runs) | kept):
        dest = out / name
        if name in runs:  # else: a study with no newer run keeps its curated copy
            copy_run(runs[name], dest)
        lines += [
            f"## {name}",
            "",
            f"[report]({name}/report.md) · [summary.csv]({name}/summary.csv)",
            "",
        ]
        for fig in sorted((dest / "figures").glob("*.png")):
            lines += [f"![{fig.stem}]({name}/figures/{fig.name})", ""]
        lines += [p + "\n" for p in first_paragraphs(dest / "report.md")]
    return write_text(out / "REPORT.md", "\n".join(lines))


if __name__ == "__main__":
    print(build())
