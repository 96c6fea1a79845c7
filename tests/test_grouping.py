"""metrics.group_ids numbers groups as pandas' groupby(sort=True, observed=True,
dropna=False) does, for every kind of column the tables hold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlesim.metrics import _group_positions, group_ids


def frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "n": rng.choice([10, 2, 1000], rows),
            "eps": rng.choice([0.0, 0.1, np.nan], rows),
            "estimator": pd.Categorical.from_codes(rng.integers(0, 3, rows), ["mle", "b", "a"]),
            "param": pd.Categorical.from_codes(rng.integers(-1, 2, rows), ["sigma2", "mu"]),
            "label": rng.choice(["x", "y"], rows),
            "replicate": rng.integers(0, 50, rows),
        }
    )


@pytest.mark.parametrize(
    "columns",
    [
        ["n"],
        ["estimator"],
        ["n", "eps", "estimator", "param"],
        ["label", "replicate"],
        ["n", "replicate", "param"],
    ],
)
def test_group_ids_follow_pandas_groupby(columns):
    df = frame(3000)
    ids, count = group_ids(df, columns)
    expected = df.groupby(columns, sort=True, observed=True, dropna=False).ngroup().to_numpy()
    assert count == expected.max() + 1
    np.testing.assert_array_equal(ids, expected)


def test_group_positions_are_pandas_groups_in_order():
    df = frame(500, seed=1)
    by = ["n", "eps", "estimator", "param"]
    fast = _group_positions(df, by)
    slow = df.reset_index(drop=True).groupby(by, sort=True, observed=True, dropna=False)
    slow = {key: g.index.to_numpy() for key, g in slow}
    assert len(fast) == len(slow)
    for (k1, v1), (k2, v2) in zip(fast.items(), slow.items(), strict=True):
        assert all(a == b or (a != a and b != b) for a, b in zip(k1, k2, strict=True))
        np.testing.assert_array_equal(v1, v2)


def test_nullable_integers_and_an_empty_table_group_as_pandas_does():
    from mlesim.metrics import performance

    df = pd.DataFrame(
        {
            "n": pd.array([1, None, 2, 1], dtype="Int64"),
            "estimate": [1.0, 2.0, 3.0, 4.0],
            "se": [1.0] * 4,
        }
    )
    ids, count = group_ids(df, ["n"])
    np.testing.assert_array_equal(ids, df.groupby("n", dropna=False).ngroup().to_numpy())
    assert count == 3
    assert performance(df.iloc[:0], 0.0, by="n").empty
    assert len(performance(df, 0.0, by="n")) == 3
