"""Figure helpers shared by the studies: simulation with MCSE error bars beside theory.

Every figure has labelled axes and a legend; simulated points carry ±2 MCSE bars
(about a 95% Monte Carlo interval).

Public figures for any table of estimates or performance measures (rsimsum-style; each
returns a Figure and neither shows nor saves it): :func:`zip_plot`, :func:`forest_plot`,
:func:`nested_loop_plot`, :func:`heatmap` and :func:`sampling_distribution`.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd

from mlesim.storage import atomic_write

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MCSE_MULT = 2.0


@functools.cache
def pyplot():
    """``matplotlib.pyplot`` on the Agg backend, imported at the first figure drawn:
    importing this module (and the studies, the pipeline) does not import matplotlib,
    ~0.3 s that a command drawing no figure need not pay."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def new_figure(
    ncols: int = 1, nrows: int = 1, width: float = 5.2, height: float = 4.0
) -> tuple[Figure, np.ndarray]:
    """A figure with a grid of axes (always returned as a 2-D array)."""
    fig, axes = pyplot().subplots(
        nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, layout="constrained"
    )
    return fig, axes


#: resolution of the saved figures (dots per inch)
DPI = 110


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as PNG atomically and close it (drawn once: :func:`lay_out`)."""
    path = Path(path)
    lay_out(fig, DPI)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=DPI, format="png"))
    pyplot().close(fig)
    return path


def lay_out(fig: Figure, dpi: float) -> None:
    """Place the axes of ``fig`` by its layout engine (constrained) once, at ``dpi``, and
    fix them there. With an engine set, ``savefig`` draws the whole figure twice — once
    without output, only to lay it out, then for real; laid out here (the engine needs
    only the sizes of the axes' decorations) and freed of its engine, the figure is
    drawn once, to the same pixels."""
    engine = fig.get_layout_engine()
    if engine is None:
        return
    fig.set_dpi(dpi)  # lay out with the text sizes of the saved image
    engine.execute(fig)
    fig.set_layout_engine(None)  # (under rcParams asking for a layout, one is kept: it
    # then runs again at savefig, as before)


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


def legend_outside(ax: Axes, title: str | None = None) -> None:
    """The legend to the right of the axes, where it hides no point."""
    ax.legend(
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
        title=title,
        title_fontsize=8,
    )


def by_estimator(summary: pd.DataFrame, param: str, **filters) -> dict[str, pd.DataFrame]:
    """Summary rows of ``param`` grouped by estimator (config order), sorted by n."""
    rows = summary[summary["param"] == param]
    for key, value in filters.items():
        rows = rows[rows[key] == value]
    return {
        est: rows[rows["estimator"] == est].sort_values("n")
        for est in dict.fromkeys(rows["estimator"])
    }


def plain_log_ticks(axis, subs: Sequence[float] | None = None) -> None:
    """Ticks of a log axis labelled as plain numbers (``20``, ``0.05``), no ``2×10¹``: at
    1, 2, 5 × 10^k where their labels fit the axis, else at 1, 3 × 10^k, else at decades
    (every k-th when even those crowd) — no overlapping labels on a narrow panel or over
    many decades; ``subs`` fixes the multiples instead. Minor ticks unlabelled. Only
    ticks in view are made (matplotlib builds every tick it is given, a costly object,
    and its log locators give a decade beyond each end)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    major, minor = _log_locators()
    axis.set_major_locator(major(subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_locator(minor(subs="auto"))
    axis.set_minor_formatter(NullFormatter())


#: the multiples of 10^k tried for a log axis's labelled ticks, densest first
LOG_SUBS = ((1.0, 2.0, 5.0), (1.0, 3.0), (1.0,))


def _in_view(locs: npt.ArrayLike, vmin: float, vmax: float) -> np.ndarray:
    """The ``locs`` within [vmin, vmax] > 0 (to a relative 1e-9 on the log scale)."""
    locs = np.asarray(locs, dtype=float)
    lo, hi = sorted((vmin, vmax))
    if not (lo > 0 and math.isfinite(hi)):
        return locs
    pad = 1e-9 * max(1.0, math.log10(hi / lo))
    with np.errstate(divide="ignore", invalid="ignore"):
        e = np.log10(locs)
    return locs[(e >= math.log10(lo) - pad) & (e <= math.log10(hi) + pad)]


def _labels_fit(axis, locs: np.ndarray, vmin: float, vmax: float) -> bool:
    """Whether plain labels of ``locs`` (in view) stand clear of each other along
    ``axis``: on x, 0.3 em between neighbours (DejaVu Sans digits are 0.636 em
    wide, the point 0.318 em); on y, 1.5 em from centre to centre."""
    if len(locs) < 2 or axis is None or axis.axes is None:
        return True
    size = axis.get_major_ticks(1)[0].label1.get_fontsize()  # points
    box = axis.axes.bbox
    length = (box.width if axis.axis_name == "x" else box.height) * 72.0 / axis.figure.dpi
    lo, hi = sorted((vmin, vmax))
    if not (length > 0 and 0 < lo < hi < math.inf):
        return True
    locs = np.sort(locs)
    pos = (np.log10(locs) - math.log10(lo)) / math.log10(hi / lo) * length
    if axis.axis_name == "x":
        ems = np.array([sum(0.318 if ch == "." else 0.636 for ch in f"{v:g}") for v in locs])
        need = ((ems[1:] + ems[:-1]) / 2 + 0.3) * size
    else:
        need = 1.5 * size
    return bool(np.all(np.diff(pos) >= need))


@functools.cache
def _log_locators():
    """The classes of :func:`plain_log_ticks`'s major and minor locators (defined at the
    first call: they subclass matplotlib's LogLocator)."""
    from matplotlib.ticker import LogLocator

    class InViewLogLocator(LogLocator):
        """A base-10 LogLocator that returns only the ticks in view."""

        def __init__(self, subs="auto"):
            super().__init__(base=10.0, subs=subs)

        def tick_values(self, vmin, vmax):
            return _in_view(super().tick_values(vmin, vmax), vmin, vmax)

    class PlainLogLocator(InViewLogLocator):
        """Ticks at the densest of :data:`LOG_SUBS` whose labels fit the axis (at
        decades, the largest number of them that fits); at ``subs`` when given."""

        def __init__(self, subs=None):
            self._fixed = subs is not None
            self._last: tuple = ((), None)  # (the view and axes size, their ticks)
            super().__init__(subs=tuple(subs) if self._fixed else LOG_SUBS[0])

        def tick_values(self, vmin, vmax):
            if self._fixed:
                return super().tick_values(vmin, vmax)
            key: tuple = (vmin, vmax)
            if self.axis is not None and self.axis.axes is not None:
                box, label = self.axis.axes.bbox, self.axis.get_major_ticks(1)[0].label1
                key += (box.width, box.height, self.axis.figure.dpi, label.get_fontsize())
            if self._last[0] != key:  # (a figure's drawing asks again and again)
                self._last = (key, self._choose(vmin, vmax))
            return self._last[1].copy()

        def _choose(self, vmin, vmax):
            try:
                for subs in LOG_SUBS:
                    self.set_params(subs=subs, numticks="auto")
                    locs = super().tick_values(vmin, vmax)
                    if len(locs) and _labels_fit(self.axis, locs, vmin, vmax):
                        return locs
                for numticks in range(max(len(locs) - 1, 2), 1, -1):  # decades, thinned
                    self.set_params(numticks=numticks)
                    locs = super().tick_values(vmin, vmax)
                    if _labels_fit(self.axis, locs, vmin, vmax):
                        break
                return locs
            finally:
                self.set_params(subs=LOG_SUBS[0], numticks="auto")

    return PlainLogLocator, InViewLogLocator


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
        plain_log_ticks(ax.xaxis)
    if logy:
        ax.set_yscale("log")
        plain_log_ticks(ax.yaxis)
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


# ------------------------------------------------------------------ rsimsum-style figures
#
# A public API of figures for any long table of estimates or of performance measures
# (mlesim's replicates.parquet / summary.csv, mlesim.metrics.performance output, or
# anyone's table with other column names). Each returns a Figure; none shows or saves it.

_REFERENCE_ZERO = ("bias", "rel_bias", "modse_relerr", "rel_precision")
_REFERENCE_LEVEL = ("coverage", "becoverage")
_REFERENCE_ONE = ("efficiency",)
_COVER_COLOUR, _MISS_COLOUR = "tab:blue", "tab:red"


def _check_frame(df: object, name: str) -> None:
    """TypeError unless ``df`` is a DataFrame; ValueError if it has no rows."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(df).__name__}")
    if df.empty:
        raise ValueError(f"{name} has no rows")


def _require(df: pd.DataFrame, name: str, **roles: Hashable | Sequence[Hashable] | None) -> None:
    """ValueError naming the first role whose column(s) ``df`` lacks, and the columns present.

    Each keyword is a role (``estimate="b"``); a value may be a column name, a list
    of column names, or None (nothing required).
    """
    for role, cols in roles.items():
        for col in _as_list(cols):
            if not isinstance(col, Hashable) or col not in df.columns:
                have = ", ".join(repr(c) for c in df.columns)
                raise ValueError(
                    f"{role}={col!r} is not a column of {name}; its columns are: {have}"
                )


def _as_list(cols: Hashable | Sequence[Hashable] | None) -> list[Hashable]:
    """None → [], one column name → [name], a sequence of names → a list."""
    if cols is None:
        return []
    if isinstance(cols, str) or not isinstance(cols, Sequence):
        return [cols]
    return list(cols)


def _method_levels(values: pd.Series) -> list:
    """Methods in their declared order: a categorical's categories (those present),
    otherwise the order of first appearance (mlesim's: the configuration's)."""
    present = pd.unique(values.dropna())
    if isinstance(values.dtype, pd.CategoricalDtype):
        return [c for c in values.cat.categories if c in set(present)]
    return list(present)


def _factor_levels(values: pd.Series) -> list:
    """A design factor's levels in sorted order (an ordered categorical's own order)."""
    if isinstance(values.dtype, pd.CategoricalDtype) and values.cat.ordered:
        present = set(values.dropna())
        return [c for c in values.cat.categories if c in present]
    present = [v.item() if isinstance(v, np.generic) else v for v in pd.unique(values.dropna())]
    try:
        return sorted(present)
    except TypeError:  # mixed types: sort by text
        return sorted(present, key=str)


def _fmt_level(value: object) -> str:
    """A factor level for a label: numbers in ``g`` format (0.2, 1000), others as text."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return f"{float(value):g}"
    return str(value)


def _condition_label(cols: Sequence[Hashable], values: Sequence[object]) -> str:
    """``"n = 5, p = 0.2"``; ``"all"`` for no columns."""
    if not cols:
        return "all"
    return ", ".join(f"{c} = {_fmt_level(v)}" for c, v in zip(cols, values, strict=True))


def _conditions(df: pd.DataFrame, cols: Sequence[Hashable]) -> list[tuple]:
    """The combinations of ``cols`` present in ``df``, in lexicographic order of the
    sorted levels (a single ``()`` for no columns)."""
    if not cols:
        return [()]
    order = {c: {v: i for i, v in enumerate(_factor_levels(df[c]))} for c in cols}
    combos = {tuple(row) for row in df[list(cols)].dropna().itertuples(index=False, name=None)}
    return sorted(combos, key=lambda t: tuple(order[c][v] for c, v in zip(cols, t, strict=True)))


def _rows_of(df: pd.DataFrame, cols: Sequence[Hashable], values: Sequence[object]) -> pd.DataFrame:
    """The rows of ``df`` with ``cols == values``."""
    mask = np.ones(len(df), dtype=bool)
    for c, v in zip(cols, values, strict=True):
        mask &= (df[c] == v).to_numpy(dtype=bool)
    return df[mask]


def _is_measure_column(name: Hashable) -> bool:
    from mlesim.metrics import EXTENDED_COLUMNS, SUMMARY_COLUMNS

    return name in SUMMARY_COLUMNS or name in EXTENDED_COLUMNS or str(name).endswith("_mcse")


def _check_unique(df: pd.DataFrame, keys: Sequence[Hashable], name: str, ignore=()) -> None:
    """ValueError if several rows of ``df`` share the values of ``keys``, naming the
    columns that tell them apart (to add to ``by``/``factors``, or to filter on)."""
    keys = list(keys)
    dup = df.duplicated(keys, keep=False) if keys else pd.Series(len(df) > 1, index=df.index)
    if not dup.any():
        return
    first = df[dup].iloc[0]
    group = _rows_of(df, keys, [first[k] for k in keys]) if keys else df
    varying = [
        c
        for c in df.columns
        if c not in keys
        and c not in ignore
        and not _is_measure_column(c)
        and group[c].nunique(dropna=False) > 1
        and not (pd.api.types.is_float_dtype(df[c]) and df[c].nunique() == len(df))
    ]
    where = _condition_label(keys, [first[k] for k in keys]) if keys else "the whole table"
    hint = (
        f"; they differ in {', '.join(repr(c) for c in varying)}: add those columns to the "
        "grouping or filter the table first"
        if varying
        else "; filter the table first"
    )
    raise ValueError(f"{name} has {len(group)} rows for {where} where one is expected{hint}")


def _mcse_column(
    df: pd.DataFrame, name: str, measure: Hashable, mcse: Hashable | bool | None
) -> Hashable | None:
    """The MCSE column to draw: ``mcse`` itself; for None ``f"{measure}_mcse"`` when
    ``df`` has it (else no bars); for False none."""
    if mcse is False:
        return None
    if mcse is None or mcse is True:
        auto = f"{measure}_mcse"
        if auto in df.columns:
            return auto
        if mcse is True:
            _require(df, name, mcse=auto)
        return None
    _require(df, name, mcse=mcse)
    return mcse


def _reference_value(measure: Hashable, reference: float | None, level: float) -> float | None:
    """``reference``, or for None the measure's target: 0 for bias-like measures, the
    nominal ``level`` for coverage, 1 for efficiency, else none; NaN draws none."""
    if reference is None:
        if measure in _REFERENCE_ZERO:
            return 0.0
        if measure in _REFERENCE_LEVEL:
            return float(level)
        if measure in _REFERENCE_ONE:
            return 1.0
        return None
    reference = float(reference)
    return reference if math.isfinite(reference) else None


def _constant_or_column(
    df: pd.DataFrame, spec: float | Hashable, role: str, name: str
) -> np.ndarray:
    """Shape ``(len(df),)`` floats: ``spec`` as a number, or column ``spec``."""
    if isinstance(spec, numbers.Real) and not isinstance(spec, bool):
        return np.full(len(df), float(spec))
    _require(df, name, **{role: spec})
    return df[spec].to_numpy(dtype=float, na_value=np.nan)


def _panel_constant(values: np.ndarray, role: str, where: str) -> float:
    """The single finite value of ``values`` (NaN if none); ValueError if several."""
    finite = np.unique(values[np.isfinite(values)])
    if finite.size > 1:
        shown = ", ".join(f"{v:g}" for v in finite[:5])
        raise ValueError(
            f"{role} takes several values ({shown}) within {where}; one panel needs one "
            "value: add the columns that set it to by, or filter the table first"
        )
    return float(finite[0]) if finite.size else float("nan")


def _usable_mask(df: pd.DataFrame, converged: Hashable | None) -> np.ndarray:
    """True where ``converged`` (when it is a column) is True; missing counts as False."""
    if converged is None or converged not in df.columns:
        return np.ones(len(df), dtype=bool)
    return df[converged].astype("boolean").fillna(False).to_numpy(dtype=bool)


def _check_replicates_unique(
    df: pd.DataFrame, replicate: Hashable | None, keys: Sequence[Hashable], name: str
) -> None:
    """A replicate id appearing twice within a panel means the panel mixes conditions
    (several n, parameters, ...): ValueError naming the columns that differ."""
    if replicate is None or replicate not in df.columns:
        return
    _check_unique(df, [*keys, replicate], name)


def _colours(methods: Sequence[object]) -> dict[object, str]:
    """One colour of the default cycle per method, the same in every panel."""
    cycle = pyplot().rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    return {m: cycle[i % len(cycle)] for i, m in enumerate(methods)}


def _fig_legend(fig: Figure, axes: Iterable[Axes], ncols: int | None = None) -> None:
    """One legend for the whole figure, below the panels (it hides no data); entries
    collected from every panel, each label once."""
    handles: dict[str, object] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    if handles:
        fig.legend(
            list(handles.values()),
            list(handles),
            loc="outside lower center",
            ncols=ncols or min(len(handles), 4),
            fontsize=8,
            frameon=False,
        )


def zip_plot(
    replicates: pd.DataFrame,
    true_value: float | Hashable,
    *,
    estimate: Hashable = "estimate",
    se: Hashable = "se",
    method: Hashable | None = "estimator",
    level: float = 0.95,
    by: Hashable | Sequence[Hashable] | None = None,
    converged: Hashable | None = "converged",
    replicate: Hashable | None = "replicate",
    ties: str = "average",
) -> Figure:
    """Zip plot of the Wald intervals: how coverage is reached or missed.

    Morris, White & Crowther (2019), "Using simulation studies to evaluate statistical
    methods", *Stat Med* 38:2074, Fig. 4; rsimsum's ``autoplot(type = "zip")``. Per
    replicate ``i`` the interval ``theta_i +/- z se_i`` with ``z = Phi^{-1}((1 + level)/2)``
    is drawn as a horizontal segment at height the fractional centile of
    ``|z_i| = |theta_i - theta| / se_i``, i.e. ``100 * rank(|z_i|) / max(rank)`` (average
    ranks for ties, as R's ``rank`` in rsimsum; ``0/0`` counts as ``|z| = 0``). Intervals covering
    ``theta`` are blue, the others red; since an interval covers exactly when
    ``|z_i| <= z``, the non-coverers are the top centiles and the coverage line
    separates them. Horizontal lines: the coverage ``p`` (solid), ``p +/- 2 MCSE`` with
    the binomial ``MCSE = sqrt(p (1 - p) / nsim)`` (dashed; Morris Table 6) and the
    nominal ``level`` (dotted, green). The dash-dotted vertical line is ``theta``.

    Parameters
    ----------
    replicates : DataFrame
        One row per replicate (per method and condition), e.g. mlesim's
        ``replicates.parquet``.
    true_value : float or column name
        The true value ``theta``: a number, or a column constant within each panel
        (for mlesim output e.g. ``"truth.params.p"``).
    estimate, se : column names
        Estimates ``theta_i`` and model-based standard errors ``se_i``.
    method : column name or None
        Column naming the methods: one row of panels per method (None: one row).
    level : float
        Nominal level of the intervals, in (0, 1).
    by : column name, list of column names, or None
        Conditions (one column of panels per combination, lexicographic order), e.g.
        ``["n"]``; every panel must hold one condition (mlesim output with several
        ``n``, parameters or design cells needs them in ``by``, or filtered out).
    converged : column name or None
        Where it is a column, rows not True are left out (as by
        :func:`mlesim.metrics.performance`); so are rows without a finite estimate and
        a finite ``se >= 0``. The coverage shown is then the summary's.
    replicate : column name or None
        Where it is a column, a replicate id seen twice in a panel raises ValueError
        (the panel would mix conditions).
    ties : {"average", "ordinal"}
        Ranks of tied ``|z|``: ``"average"`` (rsimsum's; with discrete estimates,
        such as a proportion's, tied intervals share one height) or ``"ordinal"``
        (ties broken by the estimate, so every interval has its own height and the
        coverage line separates coverers from non-coverers exactly).

    Returns
    -------
    Figure
        ``len(methods)`` rows × ``len(conditions)`` columns of panels (without
        ``by``, one row of ``len(methods)`` panels). Each panel's
        intervals are two ``LineCollection``\\ s (gids ``"zip:covering"`` and
        ``"zip:not covering"``); its lines have gids ``"zip:coverage"``,
        ``"zip:coverage-2mcse"``, ``"zip:coverage+2mcse"``, ``"zip:nominal"`` and
        ``"zip:true"``; intervals of zero width (``se = 0``) are also marked by ticks.

    Raises
    ------
    ValueError
        A column missing (naming it and the columns present), a level outside (0, 1),
        an unknown ``ties``, or a panel with several true values or repeated replicate ids.
    """
    from matplotlib.collections import LineCollection
    from scipy import stats

    from mlesim.metrics import coverage, wald_z

    _check_frame(replicates, "replicates")
    replicates = replicates.reset_index(drop=True)  # positions below; any index works
    crit = wald_z(level)
    if ties not in ("average", "ordinal"):
        raise ValueError(f"ties must be 'average' or 'ordinal', got {ties!r}")
    by_cols = _as_list(by)
    _require(replicates, "replicates", estimate=estimate, se=se, method=method, by=by_cols)
    theta_all = _constant_or_column(replicates, true_value, "true_value", "replicates")
    est_all = replicates[estimate].to_numpy(dtype=float, na_value=np.nan)
    se_all = replicates[se].to_numpy(dtype=float, na_value=np.nan)
    ok = (
        np.isfinite(est_all)
        & np.isfinite(se_all)
        & (se_all >= 0)
        & _usable_mask(replicates, converged)
    )
    methods = [None] if method is None else _method_levels(replicates[method])
    conds = _conditions(replicates, by_cols)
    # methods down, conditions across (rsimsum's facet_grid); without by, methods across
    nrows, ncols = (len(methods), len(conds)) if by_cols else (1, len(methods))
    fig, axes = pyplot().subplots(
        nrows,
        ncols,
        figsize=(0.6 + 3.2 * ncols, 1.0 + 3.0 * nrows),
        squeeze=False,
        sharex="col" if by_cols else "all",
        sharey=True,
        layout="constrained",
    )
    for j, cond in enumerate(conds):
        in_cond = _rows_of(replicates, by_cols, cond)
        for i, m in enumerate(methods):
            ax = axes[i, j] if by_cols else axes[0, i]
            rows = in_cond if m is None else in_cond[in_cond[method] == m]
            where = f"the panel {_condition_label(by_cols, cond)}" + (
                "" if m is None else f", {method} = {m}"
            )
            _check_replicates_unique(rows, replicate, [], f"replicates ({where})")
            pos = replicates.index.get_indexer(rows.index)
            keep = pos[ok[pos]]
            e, s = est_all[keep], se_all[keep]
            theta = _panel_constant(theta_all[pos], "true_value", where)
            title = ("" if m is None else f"{m}") + (
                f" ({_condition_label(by_cols, cond)})" if by_cols else ""
            )
            if e.size == 0 or not math.isfinite(theta):
                ax.set_title(f"{title}\nno usable replicates", fontsize=9)
                continue
            lower, upper = e - crit * s, e + crit * s
            covers = (lower <= theta) & (theta <= upper)  # as mlesim.metrics.coverage
            dist = np.abs(e - theta)
            with np.errstate(divide="ignore", invalid="ignore"):
                absz = np.where(dist == 0, 0.0, dist / s)
            if ties == "average":
                ranks = stats.rankdata(absz, method="average")
            else:
                ranks = np.empty(e.size)
                ranks[np.lexsort((e, absz))] = np.arange(1, e.size + 1)
            centile = 100.0 * ranks / ranks.max()
            lw = float(np.clip(250.0 / e.size, 0.4, 1.5))
            for mask, colour, label in (
                (covers, _COVER_COLOUR, "covering"),
                (~covers, _MISS_COLOUR, "not covering"),
            ):
                segs = np.stack(
                    [
                        np.column_stack([lower[mask], centile[mask]]),
                        np.column_stack([upper[mask], centile[mask]]),
                    ],
                    axis=1,
                )
                coll = LineCollection(
                    segs, colors=colour, linewidths=lw, label=f"interval {label} θ"
                )
                coll.set_gid(f"zip:{label}")
                ax.add_collection(coll)
                flat = mask & (lower == upper)  # se = 0: a point, shown as a tick
                if flat.any():
                    ax.plot(
                        lower[flat],
                        centile[flat],
                        ls="none",
                        marker="|",
                        ms=4,
                        color=colour,
                        gid=f"zip:{label} (se = 0)",
                    )
            ax.autoscale_view()
            cov, cov_mcse = coverage(e, s, theta, level)
            ax.axvline(theta, color="0.3", ls="-.", lw=1.0, label="true value θ", gid="zip:true")
            ax.axhline(100 * cov, color="k", lw=1.4, label="coverage", gid="zip:coverage")
            if math.isfinite(cov_mcse):
                for sign, gid in ((-1, "zip:coverage-2mcse"), (1, "zip:coverage+2mcse")):
                    ax.axhline(
                        100 * (cov + sign * MCSE_MULT * cov_mcse),
                        color="k",
                        ls="--",
                        lw=0.9,
                        label="coverage ± 2 MCSE",
                        gid=gid,
                    )
            ax.axhline(
                100 * level,
                color="tab:green",
                ls=":",
                lw=1.6,
                label=f"nominal {100 * level:g}%",
                gid="zip:nominal",
            )
            dropped = len(rows) - e.size
            note = f", {dropped} left out" if dropped else ""
            ax.set_title(
                f"{title}\ncoverage {pm(cov, cov_mcse)} ({e.size} intervals{note})", fontsize=9
            )
            ax.set_ylim(0, 101)
    for ax in axes[-1, :]:
        ax.set_xlabel(f"{100 * level:g}% Wald interval")
    for ax in axes[:, 0]:
        ax.set_ylabel("fractional centile of |z|")
    for ax in axes.ravel():
        ax.grid(alpha=0.2)
    _fig_legend(fig, axes.ravel(), ncols=5)
    return fig


def forest_plot(
    summary: pd.DataFrame,
    measure: Hashable = "bias",
    *,
    mcse: Hashable | bool | None = None,
    method: Hashable | None = "estimator",
    by: Hashable | Sequence[Hashable] | None = ("n",),
    reference: float | None = None,
    level: float = 0.95,
) -> Figure:
    """Forest (lollipop) plot of a performance measure with ±2 MCSE bars.

    rsimsum's ``autoplot(type = "forest")`` / ``"lolly"`` turned on its side: one row
    per condition (the combinations of ``by``, lexicographic order, top to bottom),
    within a row one point per method at ``measure`` with a horizontal bar
    ``measure +/- 2 MCSE`` (about a 95% Monte Carlo interval; Morris, White &
    Crowther 2019, *Stat Med* 38:2074, Section 5.2), joined to the reference value by
    a thin stick. The reference line (dotted) is ``reference``, by default 0 for
    ``bias``, ``rel_bias``, ``modse_relerr`` and ``rel_precision``, ``level`` for
    ``coverage`` and ``becoverage``, 1 for ``efficiency``, and none otherwise.

    Parameters
    ----------
    summary : DataFrame
        One row per condition and method, e.g. mlesim's ``summary.csv`` or the output
        of :func:`mlesim.metrics.performance`.
    measure : column name
        The measure to draw.
    mcse : column name, bool or None
        Its Monte Carlo SE: None uses ``f"{measure}_mcse"`` when present (no bars
        otherwise), True requires it, False draws no bars.
    method : column name or None
        Column naming the methods (None: a single method).
    by : column name, list of column names, or None
        Columns that make a condition; None or ``()`` gives a single row.
    reference : float or None
        Value of the reference line; None the default above, NaN none.
    level : float
        Nominal level, the default reference for coverage.

    Returns
    -------
    Figure
        One Axes; each method's points are the data line of an errorbar with gid
        ``f"forest:{method}"`` (x: the measure, y: the row positions ``-row`` plus a
        small offset per method; the y tick labels name the conditions).

    Raises
    ------
    ValueError
        A column missing (naming it and the columns present), or several rows for one
        condition and method (naming the columns that differ).
    """
    _check_frame(summary, "summary")
    by_cols = _as_list(by)
    _require(summary, "summary", measure=measure, method=method, by=by_cols)
    mcse_col = _mcse_column(summary, "summary", measure, mcse)
    keys = by_cols + ([] if method is None else [method])
    _check_unique(summary, keys, "summary")
    ref = _reference_value(measure, reference, level)
    conds = _conditions(summary, by_cols)
    methods = [None] if method is None else _method_levels(summary[method])
    colours = _colours(methods)
    k = len(methods)
    step = min(0.7 / k, 0.22)
    height = max(2.4, 0.9 + len(conds) * max(0.45, 0.2 * k))
    fig, axes = new_figure(width=6.4, height=height)
    ax = axes[0, 0]
    for r in range(len(conds)):
        if r % 2:
            ax.axhspan(-r - 0.5, -r + 0.5, color="0.93", lw=0, zorder=0)
    if ref is not None:
        ax.axvline(ref, color="k", ls=":", lw=1.2, label=f"reference ({ref:g})", zorder=1)
    markers = "osD^vP*X"
    for j, m in enumerate(methods):
        rows = summary if m is None else summary[summary[method] == m]
        ys, xs, errs = [], [], []
        for r, cond in enumerate(conds):
            hit = _rows_of(rows, by_cols, cond)
            if hit.empty:
                continue
            ys.append(-r - (j - (k - 1) / 2) * step)
            xs.append(float(hit[measure].iloc[0]))
            errs.append(float(hit[mcse_col].iloc[0]) if mcse_col is not None else np.nan)
        ys_a, xs_a = np.asarray(ys), np.asarray(xs, dtype=float)
        if ref is not None:
            ax.hlines(ys_a, ref, xs_a, color=colours[m], lw=0.8, alpha=0.5, zorder=2)
        cont = ax.errorbar(
            xs_a,
            ys_a,
            xerr=MCSE_MULT * np.asarray(errs) if mcse_col is not None else None,
            fmt=markers[j % len(markers)],
            ms=5,
            capsize=3,
            color=colours[m],
            label=measure if m is None else str(m),
            zorder=3,
        )
        cont.lines[0].set_gid(f"forest:{m}" if m is not None else "forest:")
    ax.set_yticks([-r for r in range(len(conds))])
    ax.set_yticklabels([_condition_label(by_cols, c) for c in conds], fontsize=8)
    ax.set_ylim(-len(conds) + 0.5, 0.5)
    ax.set_xlabel(f"{measure}" + (" (± 2 MCSE)" if mcse_col is not None else ""))
    ax.set_ylabel(", ".join(map(str, by_cols)) if by_cols else "")
    ax.grid(axis="x", alpha=0.3)
    if method is not None or ref is not None:
        legend_outside(ax, None if method is None else str(method))
    return fig


#: the markers of the methods in a nested-loop plot
NLP_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def nested_loop_plot(
    summary: pd.DataFrame,
    measure: Hashable = "bias",
    *,
    factors: Hashable | Sequence[Hashable],
    method: Hashable | None = "estimator",
    mcse: Hashable | bool | None = None,
    reference: float | None = None,
    level: float = 0.95,
) -> Figure:
    """Nested loop plot of a measure over every condition of a factorial design.

    Rücker & Schwarzer (2014), "Presenting simulation results in a nested loop plot",
    *BMC Med Res Methodol* 14:129; rsimsum's ``autoplot(type = "nlp")``. The
    conditions are the full product of the sorted levels of ``factors``, ordered
    lexicographically (the first factor changes slowest), numbered 1..K along the x
    axis. Each method's measure is a step line (one step per condition, drawn as
    ``steps-post`` over ``[k - 1/2, k + 1/2]``) with ±2 MCSE bars; a missing
    condition leaves a gap. Beneath, in its own strip, the "nested loop": one step
    line per factor, its level (rescaled into the factor's band) at each condition,
    labelled ``"factor: level1, level2, ..."`` (lowest level at the bottom of the
    band). The dotted reference line is as in :func:`forest_plot`.

    Parameters
    ----------
    summary : DataFrame
        One row per condition and method (e.g. mlesim's ``summary.csv``).
    measure : column name
        The measure to draw.
    factors : column name or list of column names
        The design factors, outermost first (e.g. ``["n", "truth.params.p"]``).
    method : column name or None
        Column naming the methods (None: a single method).
    mcse : column name, bool or None
        As in :func:`forest_plot` (None: ``f"{measure}_mcse"`` when present).
    reference : float or None
        Reference line; None the measure's default, NaN none.
    level : float
        Nominal level, the default reference for coverage.

    Returns
    -------
    Figure
        Two Axes sharing x: the measure (step lines with gid ``f"nlp:{method}"``,
        ``len(ydata) == K + 1``, the last value repeated) and the strip (step lines
        with gid ``f"nlp-factor:{factor}"``, label texts with gid
        ``f"nlp-label:{factor}"``).

    Raises
    ------
    ValueError
        A column missing (naming it and the columns present), no factors, or several
        rows for one condition and method (naming the columns that differ).
    """
    import itertools

    _check_frame(summary, "summary")
    fac = _as_list(factors)
    if not fac:
        raise ValueError("factors must name at least one column")
    _require(summary, "summary", measure=measure, method=method, factors=fac)
    mcse_col = _mcse_column(summary, "summary", measure, mcse)
    _check_unique(summary, fac + ([] if method is None else [method]), "summary")
    ref = _reference_value(measure, reference, level)
    levels = [_factor_levels(summary[f]) for f in fac]
    scenarios = list(itertools.product(*levels))
    n_sc = len(scenarios)
    x = np.arange(1, n_sc + 1, dtype=float)
    edges = np.arange(n_sc + 1, dtype=float) + 0.5
    methods = [None] if method is None else _method_levels(summary[method])
    colours = _colours(methods)

    strip_h = 0.25 + 0.5 * len(fac)
    fig = pyplot().figure(
        figsize=(min(max(6.5, 2.8 + 0.22 * n_sc), 16.0), 3.6 + strip_h), layout="constrained"
    )
    grid = fig.add_gridspec(2, 1, height_ratios=[3.2, strip_h])
    ax = fig.add_subplot(grid[0])
    axf = fig.add_subplot(grid[1], sharex=ax)

    index = {tuple(s): i for i, s in enumerate(scenarios)}
    k = len(methods)
    for j, m in enumerate(methods):
        rows = summary if m is None else summary[summary[method] == m]
        vals = np.full(n_sc, np.nan)
        errs = np.full(n_sc, np.nan)
        for _, row in rows.iterrows():
            i = index[tuple(row[f] for f in fac)]
            vals[i] = float(row[measure])
            if mcse_col is not None:
                errs[i] = float(row[mcse_col])
        label = measure if m is None else str(m)
        ax.step(
            edges,
            np.append(vals, vals[-1]),
            where="post",
            color=colours[m],
            lw=1.6,
            label=label,
            gid=f"nlp:{m}" if m is not None else "nlp:",
        )
        # a marker per method, dodged, so that a method whose line lies under another's
        # (equal values) still shows
        ax.errorbar(
            x + (j - (k - 1) / 2) * min(0.5 / k, 0.15),
            vals,
            yerr=None if mcse_col is None else MCSE_MULT * errs,
            fmt=NLP_MARKERS[j % len(NLP_MARKERS)],
            ms=4,
            color=colours[m],
            ecolor=colours[m],
            elinewidth=1.0,
            capsize=2,
            alpha=0.8,
        )
    if ref is not None:
        ax.axhline(ref, color="k", ls=":", lw=1.2, label=f"reference ({ref:g})")
    ax.set_ylabel(str(measure) + (" (± 2 MCSE)" if mcse_col is not None else ""))
    ax.grid(axis="y", alpha=0.3)
    ax.tick_params(labelbottom=False)
    legend_outside(ax, None if method is None else str(method))
    # boundaries between the levels of the outermost factor, in both panels
    outer = [s[0] for s in scenarios]
    for i in range(1, n_sc):
        if outer[i] != outer[i - 1]:
            for a in (ax, axf):
                a.axvline(i + 0.5, color="0.6", lw=0.6, alpha=0.6)

    band = 0.55
    for fi, (f, lev) in enumerate(zip(fac, levels, strict=True)):
        base = len(fac) - 1 - fi  # outermost factor on top, next to the measure
        pos = {v: p for p, v in enumerate(lev)}
        codes = np.array([pos[s[fi]] for s in scenarios], dtype=float)
        y = base + (codes / (len(lev) - 1) if len(lev) > 1 else np.full(n_sc, 0.5)) * band
        axf.step(
            edges,
            np.append(y, y[-1]),
            where="post",
            color="0.2",
            lw=1.2,
            gid=f"nlp-factor:{f}",
        )
        axf.text(
            0.6,
            base + band + 0.07,
            f"{f}: " + ", ".join(_fmt_level(v) for v in lev),
            fontsize=8,
            ha="left",
            va="bottom",
            gid=f"nlp-label:{f}",
        )
    axf.set_ylim(-0.15, len(fac) + 0.05)
    axf.set_yticks([])
    for side in ("left", "right", "top"):
        axf.spines[side].set_visible(False)
    axf.set_xlim(0.5, n_sc + 0.5)
    if n_sc <= 40:
        axf.set_xticks(x)
        axf.tick_params(axis="x", labelsize=7)
    sizes = " × ".join(str(len(lev)) for lev in levels)
    axf.set_xlabel(
        f"{sizes} = {n_sc} conditions, ordered by {', '.join(map(str, fac))} "
        "(first factor outermost)"
    )
    return fig


def heatmap(
    summary: pd.DataFrame,
    measure: Hashable,
    *,
    x: Hashable,
    y: Hashable,
    method: Hashable | None = None,
    fmt: str = ".3f",
    mcse: Hashable | bool | None = None,
    center: float | None = None,
    level: float = 0.95,
) -> Figure:
    """Heat map of a measure over two design factors, one panel per method.

    rsimsum's ``autoplot(type = "heat")`` with the factors on the axes: cell
    ``(x_level, y_level)`` is coloured by ``measure`` on a colour scale shared by all
    panels and annotated with ``format(value, fmt)``, and beneath it, in brackets, its
    Monte Carlo SE (Morris, White & Crowther 2019, *Stat Med* 38:2074, Table 6). For
    a measure with a target (``center``; by default 0 for bias-like measures,
    ``level`` for coverage, 1 for efficiency, as the reference of
    :func:`forest_plot`) the scale is diverging and symmetric about it (``RdBu_r``),
    otherwise sequential (``viridis``). Missing cells are left blank.

    Parameters
    ----------
    summary : DataFrame
        One row per condition (and method).
    measure : column name
        The measure to draw.
    x, y : column names
        The factors on the horizontal and vertical axes (levels sorted).
    method : column name or None
        Column naming the methods, one panel each; None: one panel (then ``x``, ``y``
        must identify a row).
    fmt : str
        Format spec of the cell values.
    mcse : column name, bool or None
        None shows ``f"{measure}_mcse"`` when present, False none.
    center : float or None
        Centre of a diverging scale; None the measure's default, NaN a sequential scale.
    level : float
        Nominal level, the default centre for coverage.

    Returns
    -------
    Figure
        One image Axes per method and a colourbar labelled with ``measure``; each cell's
        text (gid ``"heatmap:cell"``) reads ``format(value, fmt)`` and, when an MCSE is
        shown, ``"\\n(" + format(mcse, fmt) + ")"``.

    Raises
    ------
    ValueError
        A column missing (naming it and the columns present), or several rows for one
        cell (naming the columns that differ).
    """
    from matplotlib.colors import Normalize
    from matplotlib.ticker import MaxNLocator

    _check_frame(summary, "summary")
    _require(summary, "summary", measure=measure, x=x, y=y, method=method)
    mcse_col = _mcse_column(summary, "summary", measure, mcse)
    _check_unique(summary, [x, y] + ([] if method is None else [method]), "summary")
    xs, ys = _factor_levels(summary[x]), _factor_levels(summary[y])
    methods = [None] if method is None else _method_levels(summary[method])
    values = summary[measure].to_numpy(dtype=float, na_value=np.nan)
    finite = values[np.isfinite(values)]
    mid = _reference_value(measure, center, level)
    if finite.size == 0:
        norm, cmap = Normalize(0.0, 1.0), "viridis"
    elif mid is not None:
        half = float(np.max(np.abs(finite - mid))) or 1e-12
        norm, cmap = Normalize(mid - half, mid + half), "RdBu_r"
    else:
        lo, hi = float(finite.min()), float(finite.max())
        norm, cmap = Normalize(lo, hi if hi > lo else lo + 1e-12), "viridis"
    colormap = pyplot().get_cmap(cmap)
    fig, axes = new_figure(
        ncols=len(methods), width=1.4 + 0.85 * len(xs), height=1.3 + 0.5 * len(ys)
    )
    image = None
    for ax, m in zip(axes[0], methods, strict=True):
        rows = summary if m is None else summary[summary[method] == m]
        grid = np.full((len(ys), len(xs)), np.nan)
        errs = np.full((len(ys), len(xs)), np.nan)
        xi = {v: i for i, v in enumerate(xs)}
        yi = {v: i for i, v in enumerate(ys)}
        for _, row in rows.iterrows():
            grid[yi[row[y]], xi[row[x]]] = float(row[measure])
            if mcse_col is not None:
                errs[yi[row[y]], xi[row[x]]] = float(row[mcse_col])
        image = ax.imshow(grid, origin="lower", aspect="auto", cmap=colormap, norm=norm)
        for r in range(len(ys)):
            for c in range(len(xs)):
                v = grid[r, c]
                if np.isnan(v):
                    continue
                text = format(v, fmt)
                if mcse_col is not None and np.isfinite(errs[r, c]):
                    text += "\n(" + format(errs[r, c], fmt) + ")"
                red, green, blue, _ = colormap(norm(v)) if np.isfinite(v) else (1, 1, 1, 1)
                dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
                ax.text(
                    c,
                    r,
                    text,
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if dark else "black",
                    gid="heatmap:cell",
                )
        ax.set_xticks(range(len(xs)), [_fmt_level(v) for v in xs])
        ax.set_yticks(range(len(ys)), [_fmt_level(v) for v in ys])
        ax.set_xlabel(str(x))
        ax.set_ylabel(str(y))
        if m is not None:
            ax.set_title(f"{method} = {m}", fontsize=10)
    label = str(measure) + (" (MCSE in brackets)" if mcse_col is not None else "")
    # the bar spans the data (and the centre), not the symmetric scale's empty half
    lo, hi = (norm.vmin, norm.vmax) if finite.size == 0 else (finite.min(), finite.max())
    if mid is not None:
        lo, hi = min(lo, mid), max(hi, mid)
    if hi <= lo:
        lo, hi = norm.vmin, norm.vmax
    fig.colorbar(
        image,
        ax=list(axes.ravel()),
        label=label,
        shrink=0.9,
        boundaries=np.linspace(lo, hi, 257),
        ticks=MaxNLocator(6),
    )
    return fig


def _lattice_edges(values: np.ndarray, bins: int, common: np.ndarray) -> np.ndarray:
    """Bin edges for one method's estimates: one bin per lattice point when they take at
    most ``bins`` distinct values (width the smallest gap), else ``common``."""
    uniq = np.unique(values)
    if uniq.size == 1:
        return np.array([uniq[0] - 0.5, uniq[0] + 0.5]) if common.size < 2 else common
    if uniq.size > bins:
        return common
    gap = float(np.min(np.diff(uniq)))
    return np.arange(uniq[0] - gap / 2, uniq[-1] + gap, gap)


def sampling_distribution(
    replicates: pd.DataFrame,
    *,
    true_value: float | Hashable,
    crlb: Hashable | Mapping[object, float],
    n_values: Sequence[object] | None = None,
    estimate: Hashable = "estimate",
    method: Hashable | None = "estimator",
    bins: int = 40,
    n: Hashable = "n",
    converged: Hashable | None = "converged",
    replicate: Hashable | None = "replicate",
) -> Figure:
    """Histogram of the estimates at several sample sizes against N(θ, CRLB).

    For each sample size ``n`` (one panel each) the density histogram of the usable
    estimates ``theta_i`` of every method (overlaid, one colour each) and the density
    of ``N(theta, I(theta)^{-1} / n)``, the normal limit of an efficient estimator
    (Cramér-Rao bound; e.g. Casella & Berger 2002, *Statistical Inference*, Thm
    10.1.12). The normal curve is evaluated on ``theta +/- 5 sd`` joined with the
    range of the estimates, so it integrates to 1 within ``6e-7``. Estimates on a
    lattice (at most ``bins`` distinct values, as a proportion's) get one bin per
    lattice point, so the histogram's density is comparable with the curve.

    Parameters
    ----------
    replicates : DataFrame
        One row per replicate (per method and ``n``); filter it to one design cell
        and one parameter first (a replicate id seen twice in a panel raises).
    true_value : float or column name
        ``theta``, constant within each panel.
    crlb : column name or mapping
        The Cramér-Rao variance bound at each ``n``: a column (constant within each
        panel) or a mapping ``n -> variance`` (e.g.
        ``dict(zip(summary["n"], summary["crlb"]))``). A missing, non-finite or
        non-positive bound draws no curve.
    n_values : sequence or None
        The sample sizes to show (None: all, sorted).
    estimate : column name
        The estimates.
    method : column name or None
        Column naming the methods (None: one histogram per panel).
    bins : int
        Number of histogram bins (or the lattice rule above).
    n : column name
        Column holding the sample size.
    converged : column name or None
        Where it is a column, rows not True are left out; so are non-finite estimates.
    replicate : column name or None
        Where it is a column, checked to be unique within each panel and method.

    Returns
    -------
    Figure
        One Axes per ``n`` (up to 4 per row); the normal curve has gid
        ``"sampling:normal"``, the true value's line ``"sampling:true"``.

    Raises
    ------
    ValueError
        A column missing (naming it and the columns present), an ``n`` in ``n_values``
        that is not in the table, a ``crlb`` mapping without an entry for a shown
        ``n``, or a panel with several true values or bounds.
    """
    from scipy import stats

    _check_frame(replicates, "replicates")
    replicates = replicates.reset_index(drop=True)  # positions below; any index works
    if not (isinstance(bins, numbers.Integral) and bins >= 1):
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    _require(replicates, "replicates", estimate=estimate, method=method, n=n)
    theta_all = _constant_or_column(replicates, true_value, "true_value", "replicates")
    is_map = isinstance(crlb, Mapping)
    crlb_all = None if is_map else _constant_or_column(replicates, crlb, "crlb", "replicates")
    present = _factor_levels(replicates[n])
    if n_values is None:
        shown = present
    else:
        shown = list(n_values)
        missing = [v for v in shown if v not in set(present)]
        if missing:
            raise ValueError(
                f"n_values {missing!r} not in column {n!r}; its values are: {present!r}"
            )
    if is_map:
        lacking = [v for v in shown if v not in crlb]
        if lacking:
            raise ValueError(
                f"crlb has no variance for n = {lacking!r}; its keys are {list(crlb)!r}"
            )
    est_all = replicates[estimate].to_numpy(dtype=float, na_value=np.nan)
    ok = np.isfinite(est_all) & _usable_mask(replicates, converged)
    methods = [None] if method is None else _method_levels(replicates[method])
    colours = _colours(methods)
    ncols = min(len(shown), 4)
    nrows = -(-len(shown) // ncols)
    fig, axes = new_figure(ncols=ncols, nrows=nrows, width=3.7, height=3.1)
    flat = axes.ravel()
    for ax in flat[len(shown) :]:
        ax.set_axis_off()
    for ax, nv in zip(flat, shown, strict=False):
        rows = replicates[replicates[n] == nv]
        where = f"the panel {n} = {_fmt_level(nv)}"
        _check_replicates_unique(
            rows, replicate, [] if method is None else [method], f"replicates ({where})"
        )
        pos = replicates.index.get_indexer(rows.index)
        theta = _panel_constant(theta_all[pos], "true_value", where)
        var = float(crlb[nv]) if is_map else _panel_constant(crlb_all[pos], "crlb", where)
        keep = pos[ok[pos]]
        data = est_all[keep]
        if data.size:
            common = np.histogram_bin_edges(data, bins=bins)
            for m in methods:
                sel = keep if m is None else keep[(replicates[method].to_numpy()[keep] == m)]
                if sel.size == 0:
                    continue
                ax.hist(
                    est_all[sel],
                    bins=_lattice_edges(est_all[sel], bins, common),
                    density=True,
                    histtype="stepfilled",
                    alpha=0.3 if len(methods) > 1 else 0.5,
                    color=colours[m],
                    edgecolor=colours[m],
                    lw=1.0,
                    label=f"estimate ({estimate})" if m is None else str(m),
                )
        if math.isfinite(var) and var > 0 and math.isfinite(theta):
            sd = math.sqrt(var)
            lo, hi = theta - 3.5 * sd, theta + 3.5 * sd
            if data.size:
                lo, hi = min(lo, data.min()), max(hi, data.max())
            pad = 0.03 * (hi - lo)
            grid = np.linspace(theta - 5 * sd, theta + 5 * sd, 401)
            if data.size:
                grid = np.union1d(grid, np.linspace(data.min(), data.max(), 201))
            ax.plot(
                grid,
                stats.norm.pdf(grid, theta, sd),
                color="k",
                lw=1.4,
                label="N(θ, CRLB)",
                gid="sampling:normal",
            )
            ax.set_xlim(lo - pad, hi + pad)  # the curve's tails beyond are ~0
        if math.isfinite(theta):
            ax.axvline(theta, color="k", ls="--", lw=0.9, label="true value θ", gid="sampling:true")
        ax.set_title(f"{n} = {_fmt_level(nv)} ({data.size} estimates)", fontsize=10)
        ax.set_xlabel(str(estimate))
        ax.set_ylabel("density")
        ax.grid(alpha=0.2)
    _fig_legend(fig, flat)
    return fig
