"""A run's fixed cost in its figures: matplotlib (and scipy's heavy subpackages) imported
only when a figure is drawn or a function needs them; a figure laid out once and drawn
once, to the same pixels; log axes that build only the ticks in view and whose plain
labels never overlap."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from mlesim import plots
from mlesim.studies import STUDIES

PACKAGE = Path(plots.__file__).parent
#: modules whose import must not pull these in (each costs 0.3-0.9 s to import)
HEAVY = ("matplotlib", "scipy.stats", "scipy.optimize", "scipy.integrate")
#: the figure-side modules: the studies, the figure helpers, report and summary tables
FIGURE_SIDE = [
    PACKAGE / "plots.py",
    PACKAGE / "report.py",
    PACKAGE / "summarise.py",
    PACKAGE / "metrics.py",
    PACKAGE / "analysis.py",
    *sorted((PACKAGE / "studies").glob("*.py")),
]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _top_level_imports(path: Path) -> list[str]:
    """The modules a file imports when it is imported (module level, outside
    ``if TYPE_CHECKING:``), ``from a import b`` listed as both ``a`` and ``a.b``."""
    names = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
    return names


@pytest.mark.parametrize("path", FIGURE_SIDE, ids=lambda p: p.name)
def test_figure_side_modules_import_no_heavy_package_at_module_level(path):
    heavy = [
        name
        for name in _top_level_imports(path)
        if any(name == h or name.startswith(h + ".") for h in HEAVY)
    ]
    assert not heavy, f"{path.name} imports {heavy} at module level: import inside the function"


def test_importing_the_pipeline_and_every_study_imports_no_matplotlib():
    code = (
        "import importlib, sys\n"
        "import mlesim.pipeline, mlesim.plots, mlesim.report\n"
        f"for name in {list(STUDIES)!r}:\n"
        "    importlib.import_module('mlesim.studies.' + name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout


def _log_figure(xmax: float = 1000.0, width: float = 4.0) -> Figure:
    """Two panels with log x (1 … xmax) and log y, as the studies draw them."""
    fig, axes = plots.new_figure(ncols=2, width=width, height=3.0)
    x = np.geomspace(1.0, xmax, 12)
    for ax in axes[0]:
        plots.errorbars(ax, x, 1 / np.sqrt(x), 0.05 / np.sqrt(x), "simulated")
        ax.plot(x, 1 / np.sqrt(x), label="theory")
        plots.label_axes(ax, "sample size n", "RMSE", "panel", logx=True, logy=True)
    return fig


def _png(path: Path) -> np.ndarray:
    return plt.imread(str(path))


def test_save_draws_once_and_gives_the_pixels_of_a_plain_savefig(tmp_path, monkeypatch):
    """With its layout engine a figure's savefig draws it twice (once only to lay it
    out); :func:`mlesim.plots.save` lays it out and draws it once, to the same image."""
    reference = _log_figure()
    reference.savefig(tmp_path / "reference.png", dpi=plots.DPI, format="png")
    draws = []
    original = Figure.draw
    monkeypatch.setattr(Figure, "draw", lambda self, r: draws.append(1) or original(self, r))
    plots.save(_log_figure(), tmp_path / "saved.png")
    assert len(draws) == 1
    assert np.array_equal(_png(tmp_path / "saved.png"), _png(tmp_path / "reference.png"))


def _labels(axis, renderer) -> list:
    """The visible, non-empty tick labels of ``axis`` in view, as (text, extent)."""
    lo, hi = sorted(axis.get_view_interval())
    index = 0 if axis.axis_name == "x" else 1
    return [
        (t.get_text(), t.get_window_extent(renderer))
        for t in axis.get_ticklabels()
        if t.get_visible() and t.get_text() and lo <= t.get_position()[index] <= hi
    ]


def _drawn(fig: Figure):
    plots.lay_out(fig, plots.DPI)
    fig.canvas.draw()
    return fig.canvas.get_renderer()


@pytest.mark.parametrize(("xmax", "width"), [(1000.0, 4.0), (3000.0, 2.6), (1e6, 2.6), (50.0, 2.6)])
def test_plain_log_labels_never_overlap(xmax, width):
    fig = _log_figure(xmax, width)
    renderer = _drawn(fig)
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            labels = _labels(axis, renderer)
            assert len(labels) >= 2, [s for s, _ in labels]
            assert all("×" not in s and "^" not in s for s, _ in labels)  # plain numbers
            boxes = sorted((b for _, b in labels), key=lambda b: b.x0 if axis is ax.xaxis else b.y0)
            for a, b in zip(boxes, boxes[1:], strict=False):
                gap = b.x0 - a.x1 if axis is ax.xaxis else b.y0 - a.y1
                assert gap > 0, [s for s, _ in labels]


def test_plain_log_ticks_keep_1_2_5_where_they_fit():
    fig = _log_figure(100.0, 5.0)
    renderer = _drawn(fig)
    texts = [s for s, _ in _labels(fig.axes[0].xaxis, renderer)]
    assert texts == ["1", "2", "5", "10", "20", "50", "100"]


def test_log_axes_build_only_the_ticks_in_view():
    """matplotlib builds a Tick (five artists) for every location its locator gives;
    the log locators give a decade beyond each end of the view."""
    fig = _log_figure(1000.0, 4.0)
    _drawn(fig)
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for locs, built in (
                (axis.get_majorticklocs(), axis.majorTicks),
                (axis.get_minorticklocs(), axis.minorTicks),
            ):
                assert np.all((locs >= lo * (1 - 1e-9)) & (locs <= hi * (1 + 1e-9)))
                assert len(built) <= max(len(locs), 1)


def test_plain_log_ticks_with_fixed_multiples():
    fig, axes = plots.new_figure()
    ax = axes[0, 0]
    ax.plot([10, 10_000], [1, 2], label="line")
    plots.label_axes(ax, "n", "y", logx=True)
    plots.plain_log_ticks(ax.xaxis, subs=(1.0,))
    texts = [s for s, _ in _labels(ax.xaxis, _drawn(fig))]
    assert texts == ["10", "100", "1000", "10000"]
