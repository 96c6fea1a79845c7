"""Tables written to disk read back exactly; the replicates' floats are stored plainly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from mlesim.storage import write_parquet


def test_parquet_round_trip_is_exact_and_floats_skip_the_dictionary(tmp_path):
    rng = np.random.default_rng(3)
    df = pd.DataFrame(
        {
            "n": np.repeat([2, 1000], 50),
            "estimator": pd.Categorical(["mle", "s2"] * 50),
            "replicate": np.arange(100, dtype=np.int64),
            "estimate": np.r_[rng.normal(size=97), np.nan, np.inf, -0.0],
            "se": rng.gamma(2.0, size=100),
            "converged": rng.random(100) < 0.9,
        }
    )
    path = write_parquet(tmp_path / "r.parquet", df)
    back = pd.read_parquet(path)
    pd.testing.assert_frame_equal(back, df, check_exact=True)
    assert np.signbit(back["estimate"].iloc[-1])  # -0.0 kept
    meta = pq.ParquetFile(path).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(6)}
    assert not any("DICTIONARY" in e for e in encodings["estimate"] + encodings["se"])
    assert any("DICTIONARY" in e for e in encodings["n"])
