"""Writing tables and text: atomic file writes (write beside the target, then rename —
POSIX ``rename`` is atomic) and the Markdown tables of the reports."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``path`` in one step.

    A reader never sees a half-written file; a crash leaves the old file (or none).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write ``text`` to ``path``."""

    def _w(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)

    return atomic_write(path, _w)


def write_csv(path: str | os.PathLike, df: pd.DataFrame) -> Path:
    """Atomically write ``df`` as CSV without its index."""
    return atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))


def write_parquet(path: str | os.PathLike, df: pd.DataFrame) -> Path:
    """Atomically write ``df`` as Parquet without its index, dictionary-encoding every
    column but the floating ones (estimates and SEs, nearly all distinct: trying a
    dictionary for them cost a quarter of the time of a 6-million-row table, and the
    file came out larger)."""
    coded = [str(c) for c, t in df.dtypes.items() if t.kind != "f"]
    return atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False, use_dictionary=coded))


def markdown_table(df: pd.DataFrame, digits: int = 4) -> str:
    """A DataFrame as a GitHub Markdown table (no extra dependency)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        cells = [_cell(v, digits) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value, digits: int) -> str:
    """A table cell: floats to ``digits`` significant digits, rounding noise
    (|v| < 1e-12, e.g. an exact theory of 0 computed as −1.1e-16) as 0."""
    if not isinstance(value, float):
        return str(value)
    if value != 0 and abs(value) < 1e-12:
        return "0"
    return f"{value:.{digits}g}"
