"""The public figures of mlesim.plots (zip, forest, nested loop, heat map, sampling
distribution): their content checked against mlesim's own tables and against an
external, rsimsum-shaped table."""

from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import mlesim
from mlesim import plots
from mlesim.metrics import coverage, performance

P = "truth.params.p"
METHODS = ("CC", "MI_T", "MI_LOGT")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def coin():
    """coin_flip with the factors given out of order (n = 20, 5; p = 0.5, 0.2), so that
    the figures' own ordering is tested, not the run's."""
    res = mlesim.run(
        "coin_flip",
        overrides=["replications=200", "n=[20,5]", f"design.{P}=[0.5,0.2]"],
    )
    return res.summary, res.replicates


@pytest.fixture(scope="module")
def misim() -> pd.DataFrame:
    """A frame shaped like rsimsum's MIsim: 1000 datasets × methods CC, MI_T, MI_LOGT,
    columns dataset, method, b (estimate), se; true value 0.5."""
    rng = np.random.default_rng(1000)
    # (bias, empirical SE, mean model SE): CC under-covers a little (se too small)
    truth = {"CC": (0.017, 0.21, 0.18), "MI_T": (-0.001, 0.15, 0.155), "MI_LOGT": (0.0, 0.16, 0.16)}
    rows = []
    for dataset in range(1, 1001):
        for m in METHODS:
            bias, emp, mod = truth[m]
            b = 0.5 + bias + emp * rng.standard_normal()
            rows.append((dataset, m, b, mod * np.exp(0.1 * rng.standard_normal())))
    return pd.DataFrame(rows, columns=["dataset", "method", "b", "se"])


def _by_gid(ax, gid: str):
    """The artists of ``ax`` with gid ``gid``."""
    return [a for a in ax.get_children() if a.get_gid() == gid]


def _one(ax, gid: str):
    found = _by_gid(ax, gid)
    assert len(found) == 1, (gid, found)
    return found[0]


def _summary_row(summary: pd.DataFrame, **values) -> pd.Series:
    mask = np.ones(len(summary), dtype=bool)
    for k, v in values.items():
        mask &= (summary[k.replace("__", ".")] == v).to_numpy()
    assert mask.sum() == 1
    return summary[mask].iloc[0]


# ----------------------------------------------------------------------------- zip


@pytest.mark.parametrize("ties", ["average", "ordinal"])
def test_zip_plot_draws_every_interval_and_the_summarys_coverage(coin, ties):
    summary, reps = coin
    fig = plots.zip_plot(reps, P, by=["n", P], ties=ties)
    assert isinstance(fig, Figure)
    conds = [(5, 0.2), (5, 0.5), (20, 0.2), (20, 0.5)]  # lexicographic, sorted levels
    axes = np.array(fig.axes).reshape(2, 4)
    for i, est in enumerate(["mle", "map"]):  # the configuration's order
        for j, (n, p) in enumerate(conds):
            ax = axes[i, j]
            assert ax.get_title().startswith(f"{est} (n = {n}, {P} = {p:g})")
            row = _summary_row(summary, n=n, truth__params__p=p, estimator=est)
            hit = _one(ax, "zip:covering").get_segments()
            miss = _one(ax, "zip:not covering").get_segments()
            assert len(hit) + len(miss) == row["n_rep"] == 200
            assert len(hit) / (len(hit) + len(miss)) == pytest.approx(row["coverage"], abs=1e-12)
            # every segment is horizontal, and covers θ exactly when drawn as covering
            for segs, covers in ((hit, True), (miss, False)):
                for seg in segs:
                    assert seg[0, 1] == seg[1, 1]
                    assert (seg[0, 0] <= p <= seg[1, 0]) == covers
            # the zip: non-coverers (largest |z|) rank above every coverer
            top_hit = max(s[0, 1] for s in hit)
            assert not miss or top_hit < min(s[0, 1] for s in miss)
            if ties == "ordinal":  # one height per interval: coverers fill 0..coverage
                assert top_hit == pytest.approx(100 * row["coverage"])
            line = _one(ax, "zip:coverage").get_ydata()
            assert np.allclose(line, 100 * row["coverage"])
            for sign, gid in ((-1, "zip:coverage-2mcse"), (1, "zip:coverage+2mcse")):
                y = 100 * (row["coverage"] + sign * 2 * row["coverage_mcse"])
                assert np.allclose(_one(ax, gid).get_ydata(), y)
            assert np.allclose(_one(ax, "zip:nominal").get_ydata(), 95.0)
            assert np.allclose(_one(ax, "zip:true").get_xdata(), p)
    assert axes[1, 0].get_xlabel() == "95% Wald interval"
    assert "centile" in axes[0, 0].get_ylabel()
    assert [t.get_text() for t in fig.legends[0].get_texts()][:2] == [
        "interval covering θ",
        "interval not covering θ",
    ]


def test_zip_plot_on_an_external_misim_like_frame(misim):
    fig = plots.zip_plot(misim, 0.5, estimate="b", se="se", method="method", replicate="dataset")
    assert len(fig.axes) == 3  # one row of panels, no by
    for ax, m in zip(fig.axes, METHODS, strict=True):  # first-appearance order
        assert ax.get_title().startswith(m)
        rows = misim[misim["method"] == m]
        hit = _one(ax, "zip:covering").get_segments()
        miss = _one(ax, "zip:not covering").get_segments()
        assert len(hit) + len(miss) == 1000
        cov, mcse = coverage(rows["b"], rows["se"], 0.5)
        assert len(hit) / 1000 == pytest.approx(cov, abs=1e-12)
        assert np.allclose(_one(ax, "zip:coverage").get_ydata(), 100 * cov)
        assert np.allclose(_one(ax, "zip:coverage+2mcse").get_ydata(), 100 * (cov + 2 * mcse))
        # continuous |z|: centiles are k / 1000, each once
        heights = sorted(s[0, 1] for s in [*hit, *miss])
        assert np.allclose(heights, np.arange(1, 1001) / 10)


def test_zip_plot_refuses_a_panel_that_mixes_conditions(coin):
    _, reps = coin
    with pytest.raises(ValueError, match=r"'n'.*'truth\.params\.p'|'truth\.params\.p'.*'n'"):
        plots.zip_plot(reps, P)  # every panel would hold 4 conditions


# -------------------------------------------------------------------------- forest


def test_forest_plot_points_are_the_summarys_measure_with_2_mcse_bars(coin):
    summary, _ = coin
    fig = plots.forest_plot(summary, "bias", by=["n", P])
    ax = fig.axes[0]
    conds = [(5, 0.2), (5, 0.5), (20, 0.2), (20, 0.5)]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [f"n = {n}, {P} = {p:g}" for n, p in conds]
    ticks = ax.get_yticks()
    for cont in ax.containers:
        est = cont.get_label()
        line = cont.lines[0]
        assert line.get_gid() == f"forest:{est}"
        want = [_summary_row(summary, n=n, truth__params__p=p, estimator=est) for n, p in conds]
        assert np.allclose(line.get_xdata(), [w["bias"] for w in want])
        # each point sits in its condition's row (within half a row of the tick)
        assert np.all(np.abs(np.asarray(line.get_ydata()) - ticks) < 0.5)
        bars = cont.lines[2][0].get_segments()
        half = [(seg[1, 0] - seg[0, 0]) / 2 for seg in bars]
        assert np.allclose(half, [2 * w["bias_mcse"] for w in want])
    assert sorted(c.get_label() for c in ax.containers) == ["map", "mle"]
    ref = [ln for ln in ax.get_lines() if ln.get_label() == "reference (0)"]
    assert len(ref) == 1 and np.allclose(ref[0].get_xdata(), 0.0)
    assert ax.get_xlabel() == "bias (± 2 MCSE)"
    # the legend sits outside the axes, where it hides no point
    fig.canvas.draw()
    legend_box = ax.get_legend().get_window_extent()
    assert legend_box.x0 >= ax.get_window_extent().x1


def test_forest_plot_names_what_tells_duplicate_rows_apart(coin):
    summary, _ = coin
    with pytest.raises(ValueError, match=r"differ in 'truth\.params\.p'"):
        plots.forest_plot(summary, "bias")  # by=("n",) leaves two p per row


def test_forest_plot_from_performance_on_an_external_frame(misim):
    perf = performance(
        misim, 0.5, by="method", estimate="b", se="se", method="method", replicate="dataset"
    )
    fig = plots.forest_plot(perf, "coverage", method="method", by=None)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["all"]
    for m in METHODS:
        row = perf[perf["method"] == m].iloc[0]
        (line,) = [ln for ln in ax.get_lines() if ln.get_gid() == f"forest:{m}"]
        assert np.allclose(line.get_xdata(), row["coverage"])
    ref = [ln for ln in ax.get_lines() if ln.get_label() == "reference (0.95)"]
    assert len(ref) == 1 and np.allclose(ref[0].get_xdata(), 0.95)
    # bias of CC is the largest and the plot shows it
    bias_fig = plots.forest_plot(perf, "bias", method="method", by=())
    xs = {
        ln.get_gid(): ln.get_xdata()[0]
        for ln in bias_fig.axes[0].get_lines()
        if str(ln.get_gid()).startswith("forest:")
    }
    assert max(xs, key=lambda g: abs(xs[g])) == "forest:CC"


# --------------------------------------------------------------------- nested loop


def test_nested_loop_plot_orders_conditions_lexicographically(coin):
    summary, _ = coin
    assert list(summary["n"].drop_duplicates()) == [20, 5]  # the run's order is not sorted
    fig = plots.nested_loop_plot(summary, "bias", factors=["n", P])
    ax, strip = fig.axes
    scenarios = list(itertools.product([5, 20], [0.2, 0.5]))
    for est in ("mle", "map"):
        line = _one(ax, f"nlp:{est}")
        want = [_summary_row(summary, n=n, truth__params__p=p, estimator=est) for n, p in scenarios]
        heights = np.asarray(line.get_ydata())
        assert len(heights) == len(scenarios) + 1 and heights[-1] == heights[-2]
        assert np.allclose(heights[:-1], [w["bias"] for w in want])
        assert np.allclose(line.get_xdata(), np.arange(5) + 0.5)
    # the nested loop: each factor's line steps through its levels in product order
    for f, col in (("n", 0), (P, 1)):
        y = np.asarray(_one(strip, f"nlp-factor:{f}").get_ydata())[:-1]
        codes = np.unique(y, return_inverse=True)[1]
        expected_levels = sorted({s[col] for s in scenarios})
        assert list(codes) == [expected_levels.index(s[col]) for s in scenarios]
    assert _one(strip, "nlp-label:n").get_text() == "n: 5, 20"
    assert _one(strip, f"nlp-label:{P}").get_text() == f"{P}: 0.2, 0.5"
    assert strip.get_xlabel().startswith("2 × 2 = 4 conditions")
    assert ax.get_ylabel() == "bias (± 2 MCSE)"
    # the outermost factor's label lies below the measure panel, above its own line
    n_line = np.asarray(_one(strip, "nlp-factor:n").get_ydata())
    assert _one(strip, "nlp-label:n").get_position()[1] > n_line.max()


def test_nested_loop_plot_leaves_a_gap_for_a_missing_condition(coin):
    summary, _ = coin
    drop = (summary["n"] == 20) & (summary[P] == 0.5) & (summary["estimator"] == "map")
    fig = plots.nested_loop_plot(summary[~drop], "coverage", factors=["n", P])
    heights = np.asarray(_one(fig.axes[0], "nlp:map").get_ydata())
    assert np.isnan(heights[3]) and np.isfinite(heights[:3]).all()
    assert np.isfinite(_one(fig.axes[0], "nlp:mle").get_ydata()).all()


# ------------------------------------------------------------------------- heatmap


@pytest.mark.parametrize(("fmt", "mcse"), [(".3f", None), (".2f", False)])
def test_heatmap_cells_read_the_formatted_values(coin, fmt, mcse):
    summary, _ = coin
    fig = plots.heatmap(summary, "coverage", x="n", y=P, method="estimator", fmt=fmt, mcse=mcse)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["estimator = mle", "estimator = map"]
    for ax in panels:
        est = ax.get_title().split(" = ")[1]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["5", "20"]
        assert [t.get_text() for t in ax.get_yticklabels()] == ["0.2", "0.5"]
        cells = _by_gid(ax, "heatmap:cell")
        assert len(cells) == 4
        for text in cells:
            c, r = text.get_position()
            row = _summary_row(
                summary, n=[5, 20][int(c)], truth__params__p=[0.2, 0.5][int(r)], estimator=est
            )
            want = format(row["coverage"], fmt)
            if mcse is None:
                want += "\n(" + format(row["coverage_mcse"], fmt) + ")"
            assert text.get_text() == want
    colourbar = [ax for ax in fig.axes if ax not in panels]
    assert len(colourbar) == 1 and colourbar[0].get_ylabel().startswith("coverage")


# ----------------------------------------------------------- sampling distribution


def test_sampling_distribution_curve_is_the_normal_at_the_truth(coin):
    summary, reps = coin
    cell = summary[summary[P] == 0.5]
    crlb = dict(zip(cell["n"], cell["crlb"], strict=True))
    sub = reps[reps[P] == 0.5]
    fig = plots.sampling_distribution(sub, true_value=P, crlb=crlb)
    assert [ax.get_title() for ax in fig.axes] == [
        "n = 5 (400 estimates)",
        "n = 20 (400 estimates)",
    ]
    for ax, n in zip(fig.axes, (5, 20), strict=True):
        curve = _one(ax, "sampling:normal")
        x, y = np.asarray(curve.get_xdata()), np.asarray(curve.get_ydata())
        assert np.trapezoid(y, x) == pytest.approx(1.0, abs=1e-4)
        assert np.trapezoid(x * y, x) == pytest.approx(0.5, abs=1e-4)
        var = np.trapezoid((x - 0.5) ** 2 * y, x)
        assert var == pytest.approx(crlb[n], rel=1e-3)
        assert np.allclose(_one(ax, "sampling:true").get_xdata(), 0.5)
        # the histograms are densities: each method's bars integrate to 1
        for patch in ax.patches:
            verts = patch.get_path().vertices
            area = np.trapezoid(verts[:, 1], verts[:, 0])
            assert abs(area) == pytest.approx(1.0, rel=1e-9)
        assert ax.get_ylabel() == "density"
    # crlb as a column, and one n only
    with_col = sub.assign(crlb=sub["n"].map(crlb))
    one = plots.sampling_distribution(with_col, true_value=0.5, crlb="crlb", n_values=[20])
    (curve,) = _by_gid(one.axes[0], "sampling:normal")
    x, y = curve.get_xdata(), curve.get_ydata()
    assert x[np.argmax(y)] == pytest.approx(0.5, abs=1e-9)
    assert y.max() == pytest.approx(1 / np.sqrt(2 * np.pi * crlb[20]))


def test_sampling_distribution_wants_a_bound_for_every_n(coin):
    summary, reps = coin
    with pytest.raises(ValueError, match=r"crlb has no variance for n = \[20\]"):
        plots.sampling_distribution(reps[reps[P] == 0.5], true_value=0.5, crlb={5: 0.05})


# ------------------------------------------------------------------ missing columns


@pytest.mark.parametrize(
    ("draw", "missing"),
    [
        (lambda s, r: plots.zip_plot(r.drop(columns="se"), P, by=["n", P]), "se='se'"),
        (lambda s, r: plots.zip_plot(r, "truth", by=["n", P]), "true_value='truth'"),
        (lambda s, r: plots.zip_plot(r, P, by=["n", "p"]), "by='p'"),
        (lambda s, r: plots.forest_plot(s, "bogus", by=["n", P]), "measure='bogus'"),
        (lambda s, r: plots.forest_plot(s, "bias", mcse="bias_se", by=["n", P]), "mcse='bias_se'"),
        (lambda s, r: plots.nested_loop_plot(s, factors=["n", "p"]), "factors='p'"),
        (lambda s, r: plots.heatmap(s, "coverage", x="n", y="p"), "y='p'"),
        (
            lambda s, r: plots.sampling_distribution(r, true_value=0.5, crlb={}, estimate="b"),
            "estimate='b'",
        ),
        (lambda s, r: plots.sampling_distribution(r, true_value=0.5, crlb="crlb"), "crlb='crlb'"),
    ],
)
def test_a_missing_column_is_named_with_the_columns_present(coin, draw, missing):
    summary, reps = coin
    with pytest.raises(ValueError, match="is not a column of") as err:
        draw(summary, reps)
    assert missing in str(err.value)
    assert "'estimator'" in str(err.value)  # the columns present are listed


# ------------------------------------------- an external factorial frame (relhaz-like)
@pytest.fixture(scope="module")
def relhaz() -> pd.DataFrame:
    """Shaped like rsimsum's relhaz: datasets × n ∈ {50, 250} × baseline × model
    (Cox, Exp, RP(2)), columns dataset, n, baseline, model, theta, se; true −0.5."""
    rng = np.random.default_rng(2019)
    rows = []
    for n in (50, 250):
        for baseline in ("Exponential", "Weibull"):
            for dataset in range(200):
                for model, shift in (("Cox", 0.0), ("Exp", 0.05), ("RP(2)", 0.01)):
                    sd = 2 / np.sqrt(n)
                    theta = -0.5 + shift * (baseline == "Weibull") + sd * rng.standard_normal()
                    rows.append((dataset, n, baseline, model, theta, sd))
    return pd.DataFrame(rows, columns=["dataset", "n", "baseline", "model", "theta", "se"])


def test_nested_loop_and_heatmap_on_an_external_factorial_frame(relhaz):
    perf = performance(
        relhaz,
        -0.5,
        by=["n", "baseline", "model"],
        estimate="theta",
        se="se",
        method="model",
        replicate="dataset",
    )
    fig = plots.nested_loop_plot(perf, "bias", factors=["baseline", "n"], method="model")
    ax, _ = fig.axes
    scenarios = list(itertools.product(["Exponential", "Weibull"], [50, 250]))
    for model in ("Cox", "Exp", "RP(2)"):
        heights = np.asarray(_one(ax, f"nlp:{model}").get_ydata())[:-1]
        want = [
            perf[(perf["baseline"] == b) & (perf["n"] == n) & (perf["model"] == model)][
                "bias"
            ].iloc[0]
            for b, n in scenarios
        ]
        assert np.allclose(heights, want)
    heat = plots.heatmap(perf, "coverage", x="n", y="baseline", method="model", fmt=".2f")
    texts = [t.get_text() for a in heat.axes for t in a.texts]
    cov = perf["coverage"].map(lambda v: f"{v:.2f}")
    assert all(any(t.startswith(c) for t in texts) for c in cov)
    assert len(heat.axes) >= 3  # a panel per model (and the colourbar)
