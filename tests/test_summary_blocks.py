"""The summary is made a few whole cells at a time (summarise.blocks): the same table
whatever the block size and whatever the order of the replicates' rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import study_spec

from mlesim import summarise as summary_module
from mlesim.engine import simulate


@pytest.mark.parametrize("compare", ["own", "common"])
def test_blocks_of_cells_give_the_summary_of_the_whole_table(monkeypatch, compare):
    spec = study_spec(
        {
            "truth": {"family": "normal", "params": {"mu": 0.0, "sigma2": 1.0}},
            "n": [1, 3, 6],  # n = 1: s² fails (0/0), so common replicates matter
            "replications": 40,
            "design": {"truth.params.mu": [0.0, 2.0]},
            "compare": compare,
            "estimators": {
                "mle": {"kind": "mle"},
                "s2": {"kind": "unbiased_variance"},
                "mean": {"kind": "mean"},
            },
        },
        {},
    )
    reps = simulate(spec, progress=False)
    shuffled = reps.iloc[np.random.default_rng(1).permutation(len(reps))]
    whole = summary_module.summarise(spec, reps, extended=True)
    whole_shuffled = summary_module.summarise(spec, shuffled, extended=True)  # (sums in
    assert (whole["n_failed"] > 0).any()  # another order: equal to the last bits only)
    pd.testing.assert_frame_equal(whole_shuffled, whole, rtol=1e-12)
    monkeypatch.setattr(summary_module, "BLOCK_ROWS", 50)  # a cell has 200 rows
    assert len(list(summary_module.blocks(reps, spec.factor_names))) == 6
    pd.testing.assert_frame_equal(
        summary_module.summarise(spec, reps, extended=True), whole, check_exact=True
    )
    assert len(list(summary_module.blocks(shuffled, spec.factor_names))) == 6
    pd.testing.assert_frame_equal(
        summary_module.summarise(spec, shuffled, extended=True), whole_shuffled, check_exact=True
    )


def test_cells_laid_out_in_runs_are_found_by_comparing_neighbours():
    """Cell boundaries from neighbouring rows: integer, float (NaN a value like any
    other), categorical and string factors; a cell in two runs is not contiguous."""
    a = np.repeat([1, 1, 2, 2], 3)
    b = np.repeat([0.5, np.nan, 0.5, np.nan], 3)
    c = pd.Categorical(np.repeat(["x", "y", "x", "y"], 3))
    d = np.repeat(np.array(["p", "q", "p", "q"], dtype=object), 3)
    df = pd.DataFrame({"a": a, "b": b, "c": c, "d": d})
    for names in (["a", "b"], ["a", "c"], ["a", "d"], ["a", "b", "c", "d"]):
        np.testing.assert_array_equal(summary_module._cell_starts(df, names), [3, 6, 9])
    np.testing.assert_array_equal(summary_module._cell_starts(df, ["a"]), [6])
    split = df.iloc[[0, 1, 3, 4, 2, 5, 6, 7, 8, 9, 10, 11]]  # cell (1, 0.5) in two runs
    assert summary_module._cell_starts(split, ["a", "b"]) is None
    assert summary_module._cell_starts(df, ["b"]) is None  # b alone: its cells interleave
