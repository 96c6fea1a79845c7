"""Figure helpers shared by the studies: simulation with MCSE error bars beside theory.

Every figure has labelled axes and a legend; simulated points carry ±2 MCSE bars
(about a 95% Monte Carlo interval).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mlesim.storage import atomic_write  # noqa: E402

MCSE_MULT = 2.0


def new_figure(
    ncols: int = 1, nrows: int = 1, width: float = 5.2, height: float = 4.0
) -> tuple[Figure, np.ndarray]:
    """A figure with a grid of axes (always returned as a 2-D array)."""
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, layout="constrained"
    )
    return fig, axes


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as PNG atomically and close it."""
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


def errorbars(
    ax: Axes, x: npt.ArrayLike, y: npt.ArrayLike, mcse: npt.ArrayLike, label: str, **kw
) -> None:
    """Simulated values with ±2 MCSE bars."""
    style = {"fmt": "o", "ms": 4, "capsize": 3, **kw}
    ax.errorbar(x, y, yerr=MCSE_MULT * np.asarray(mcse, dtype=float), label=label, **style)


def theory_curve(ax: Axes, x: Iterable[float], f: Callable, label: str, **kw) -> None:
    """A theory curve evaluated on a fine grid spanning ``x`` (log-spaced when x > 0)."""
    x = np.asarray(list(x), dtype=float)
    lo, hi = x.min(), x.max()
    grid = np.geomspace(lo, hi, 200) if lo > 0 else np.linspace(lo, hi, 200)
    ax.plot(grid, f(grid), **{"ls": "-", "lw": 1.5, **kw}, label=label)


def legend_outside(ax: Axes) -> None:
    """The legend to the right of the axes, where it hides no point."""
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


def by_estimator(summary: pd.DataFrame, param: str, **filters) -> dict[str, pd.DataFrame]:
    """Summary rows of ``param`` grouped by estimator (config order), sorted by n."""
    rows = summary[summary["param"] == param]
    for key, value in filters.items():
        rows = rows[rows[key] == value]
    return {
        est: rows[rows["estimator"] == est].sort_values("n")
        for est in dict.fromkeys(rows["estimator"])
    }


def label_axes(
    ax: Axes,
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    logx: bool = False,
    logy: bool = False,
) -> None:
    """Axis labels, optional log scales and title, and a legend."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def pm(value: float, mcse: float, digits: int = 3) -> str:
    """``"v ± m"`` for report text; ``"undefined"`` for a NaN value (never a fake
    ``0.000 ± 0.000``), ``"inf"`` for an infinite one, and no ``±`` when the Monte Carlo
    SE is undefined."""
    if value != value:  # NaN
        return "undefined"
    if value in (float("inf"), float("-inf")):
        return f"{value}"
    if mcse != mcse:
        return f"{value:.{digits}f} (MCSE undefined)"
    if mcse == 0 and value in (0.0, 1.0):  # a proportion of 0 or 1: binomial MCSE is 0
        return f"{value:.{digits}f} (all replicates alike)"
    return f"{value:.{digits}f} ± {mcse:.{digits}f}"


def mcse_note() -> str:
    """Standard caption fragment."""
    return "points: simulation ± 2 Monte Carlo SE; lines: theory"


def dodge(x: npt.ArrayLike, i: int, k: int, width: float = 0.04) -> np.ndarray:
    """``x`` scaled by exp(width · (i − (k − 1)/2)) so that series i of k side by side
    stay visible on a log axis (points of equal x no longer hide each other)."""
    return np.asarray(x, dtype=float) * np.exp(width * (i - (k - 1) / 2))


def band(
    ax: Axes, x: npt.ArrayLike, centre: npt.ArrayLike, mcse: npt.ArrayLike, label: str, **kw
) -> None:
    """A theory value ± 2 MCSE as a shaded band (where simulation should fall)."""
    x, centre = np.asarray(x, dtype=float), np.asarray(centre, dtype=float)
    half = MCSE_MULT * np.asarray(mcse, dtype=float)
    ax.fill_between(x, centre - half, centre + half, alpha=0.2, lw=0, label=label, **kw)


def cell_suffix(cell: dict) -> str:
    """File-name suffix for a design cell, e.g. ``_truth.params.p=0.3`` (empty if none)."""
    return "".join(f"_{k}={v}" for k, v in cell.items())


def cell_title(cell: dict) -> str:
    """Caption fragment for a design cell, e.g. `` (truth.params.p = 0.3)``."""
    return " (" + ", ".join(f"{k} = {v}" for k, v in cell.items()) + ")" if cell else ""
