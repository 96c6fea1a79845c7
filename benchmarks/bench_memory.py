"""Peak memory of a study with 10^9 draws in all: replications=1000000, n=[1000].

The normal truth and its MLE, run through the command line exactly as a user would
(``python -m mlesim ...``) in a child process; this script waits for it and reads the
child's peak resident set size from ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` (the
largest of the waited-for descendants: with ``--n-jobs 1`` the one process that does
everything). The target is < 1 GB: data exist one chunk at a time (a chunk stays under
``runner.max_chunk_mb``), finished chunks go to disk, and the tables use categorical
estimator / param columns.

    python benchmarks/bench_memory.py                  # the full 10^9 draws
    python benchmarks/bench_memory.py --replications 100000   # a quick look
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from mlesim.chunkfiles import saved_chunks


def run(replications: int, n: int, n_jobs: int, max_chunk_mb: float, keep: bool) -> dict:
    """Run the study in a child process; return peak RSS (MB), wall time (s) and sizes."""
    outdir = Path(tempfile.mkdtemp(prefix="mlesim-bench-memory-"))
    cmd = [
        sys.executable,
        "-m",
        "mlesim",
        "truth=normal",
        f"n=[{n}]",
        f"replications={replications}",
        "estimators={mle:{kind:mle}}",
        f"runner.n_jobs={n_jobs}",
        f"runner.max_chunk_mb={max_chunk_mb}",
        "runner.progress=false",
        f"hydra.run.dir={outdir}",
    ]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=tempfile.gettempdir(), stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    rows = pd.read_parquet(outdir / "replicates.parquet", columns=["replicate"]).shape[0]
    chunks = saved_chunks(outdir / "chunks")
    disk = sum(p.stat().st_size for p in outdir.rglob("*") if p.is_file())
    if keep:
        print(f"run dir kept: {outdir}")
    else:
        shutil.rmtree(outdir, ignore_errors=True)
    return {
        "peak_rss_mb": peak_kb / 1024,
        "wall_s": wall,
        "rows": rows,
        "chunks": chunks,
        "disk_mb": disk / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=1_000_000)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--max-chunk-mb", type=float, default=64.0)
    parser.add_argument("--keep", action="store_true", help="keep the run directory")
    args = parser.parse_args()
    res = run(args.replications, args.n, args.n_jobs, args.max_chunk_mb, args.keep)
    draws = args.replications * args.n
    print(
        f"draws: {draws:.3g} (replications={args.replications}, n={args.n}, "
        f"n_jobs={args.n_jobs}, max_chunk_mb={args.max_chunk_mb:g})\n"
        f"chunks: {res['chunks']}; replicate rows: {res['rows']}; "
        f"run dir on disk: {res['disk_mb']:.0f} MB\n"
        f"peak RSS (largest process): {res['peak_rss_mb']:.0f} MB "
        f"({'under' if res['peak_rss_mb'] < 1024 else 'OVER'} the 1 GB target)\n"
        f"wall time: {res['wall_s']:.1f} s"
    )


if __name__ == "__main__":
    main()
