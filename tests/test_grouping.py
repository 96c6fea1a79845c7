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


@pytest.mark.parametrize("count", [1, 7, 40_000])  # (int16 radix sort, and wider ids)
def test_first_rows_are_each_group_s_first_occurrence(count):
    from mlesim.metrics import first_rows

    ids = np.random.default_rng(count).integers(0, count, 100_000)
    ids, count = np.unique(ids, return_inverse=True)[1], np.unique(ids).size
    np.testing.assert_array_equal(first_rows(ids, count), np.unique(ids, return_index=True)[1])


def test_methods_on_the_same_replicates_pair_as_when_matched_by_id():
    """rel_precision pairs B with A by replicate id; identical id lists (the usual case)
    are paired as they stand, and give what matching gives."""
    from mlesim.metrics import _paired

    rng = np.random.default_rng(2)
    rep = np.arange(0, 300, 3)
    b, a = rng.normal(size=rep.size), rng.normal(size=rep.size)
    same = _paired(rep, b, rep.copy(), a)
    perm = rng.permutation(rep.size)  # the same ids in another order: matched by id
    matched = _paired(rep, b, rep[perm], a[perm])
    for x, y in zip(same, matched, strict=True):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="unique"):
        _paired(np.array([1, 1]), b[:2], np.array([1, 1]), a[:2])


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.uint8])
def test_narrow_integer_columns_group_without_wrapping(dtype):
    values = np.array([-100, 0, 100, 0, -100], dtype=np.int64)
    values = values if np.issubdtype(dtype, np.signedinteger) else values + 100
    df = pd.DataFrame({"g": values.astype(dtype)})
    ids, count = group_ids(df, ["g"])
    np.testing.assert_array_equal(ids, df.groupby("g").ngroup().to_numpy())
    assert count == 3
