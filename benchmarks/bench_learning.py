"""Batched learners (mlesim) against a loop of statsmodels / scikit-learn fits, on
identical data in one process.

Run from the repository root::

    python benchmarks/bench_learning.py            # --help lists the options

Cases (issue 10):

- logistic regression, R = 10,000 data sets of n = 200 with d = 3 coefficients:
  mlesim's ``mle`` (batched IRLS, with SEs from the information) against a loop of
  ``statsmodels.Logit(y, X).fit(method="newton")`` (estimates and SEs);
- a two-component Gaussian mixture, R = 2,000 data sets of n = 200: mlesim's batched EM
  against a loop of ``sklearn.mixture.GaussianMixture(2, tol=1e-10, reg_covar=0)``
  started from the same quantile start (same weights, means, variances), so both climb
  to the same maximum.

When a loop would take longer than ``--budget`` seconds it is timed on a random
subsample of ``--subsample`` data sets and its time per fit extrapolated to all R (the
output says so); the agreement is measured on the replicates both fitted: the largest
|mlesim − other| / max(1, |other|) over parameters and replicates.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from mlesim.estimators import make_estimator
from mlesim.families import get_family


def logistic_data(R: int, n: int, seed: int) -> dict:
    fam = get_family("logistic_regression").configured({"params": {"beta": [-1.0, 1.0, -0.5]}})
    theta = fam.check({"beta": [-1.0, 1.0, -0.5]})
    return fam, fam.sample(np.random.default_rng(seed), theta, (R, n))


def mixture_data(R: int, n: int, seed: int) -> dict:
    cfg = {"params": {"weights": [0.4, 0.6], "means": [-1.5, 1.5], "variances": [1.0, 1.0]}}
    fam = get_family("gaussian_mixture").configured(cfg)
    return fam, fam.sample(np.random.default_rng(seed), fam.check(cfg["params"]), (R, n))


def timed(func):
    start = time.perf_counter()
    out = func()
    return out, time.perf_counter() - start


def loop_rows(R: int, budget_fit, budget: float, subsample: int, rng) -> np.ndarray:
    """All rows, or a random subsample when the loop would exceed the budget."""
    per_fit = budget_fit()
    if per_fit * R <= budget:
        return np.arange(R)
    return np.sort(rng.choice(R, size=min(subsample, R), replace=False))


def bench_logistic(R: int, n: int, budget: float, subsample: int) -> dict:
    import statsmodels.api as sm

    fam, data = logistic_data(R, n, seed=1)
    est = make_estimator("mle", {"kind": "mle"}, fam)
    _, t_ours = timed(lambda: est.fit(data))

    def one(r):
        return sm.Logit(data["y"][r], data["X"][r]).fit(
            disp=0, method="newton", tol=1e-10, maxiter=100
        )

    rng = np.random.default_rng(0)
    rows = loop_rows(R, lambda: timed(lambda: one(0))[1], budget, subsample, rng)
    fits, t_loop = timed(lambda: [one(r) for r in rows])
    theirs = np.array([f.params for f in fits])
    ses = np.array([f.bse for f in fits])
    ok = est.converged_[rows]
    diff = np.abs(est.params_[rows][ok] - theirs[ok]) / np.maximum(1, np.abs(theirs[ok]))
    se_diff = np.abs(est.se_[rows][ok] - ses[ok]) / ses[ok]
    return {
        "case": "logistic MLE (d = 3) vs statsmodels Logit loop",
        "R": R,
        "n": n,
        "mlesim_s": t_ours,
        "other_s": t_loop * R / rows.size,
        "timed": "all" if rows.size == R else f"{rows.size} (extrapolated)",
        "max_diff": diff.max(),
        "max_se_diff": se_diff.max(),
        "failed": int((~est.converged_).sum()),
    }


def bench_mixture(R: int, n: int, budget: float, subsample: int) -> dict:
    from sklearn.mixture import GaussianMixture

    from mlesim.mixture import quantile_init

    fam, data = mixture_data(R, n, seed=2)
    # one start each, like for like (mlesim's default is 5 starts)
    est = make_estimator("mle", {"kind": "mle", "max_iter": 5000, "n_init": 1}, fam)
    _, t_ours = timed(lambda: est.fit(data))
    x = data["x"]
    w0, m0, v0 = quantile_init(x, 2)

    def one(r):
        gm = GaussianMixture(
            2,
            tol=1e-10,
            max_iter=5000,
            reg_covar=0.0,
            weights_init=w0[r],
            means_init=m0[r][:, None],
            precisions_init=(1 / v0[r])[:, None, None],
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gm.fit(x[r][:, None])
        order = np.argsort(gm.means_.ravel())
        return np.r_[gm.weights_[order], gm.means_.ravel()[order], gm.covariances_.ravel()[order]]

    rng = np.random.default_rng(0)
    rows = loop_rows(R, lambda: timed(lambda: one(0))[1], budget, subsample, rng)
    theirs, t_loop = timed(lambda: np.array([one(r) for r in rows]))
    ok = est.converged_[rows]
    diff = np.abs(est.params_[rows][ok] - theirs[ok]) / np.maximum(1, np.abs(theirs[ok]))
    return {
        "case": "Gaussian mixture EM (K = 2) vs scikit-learn GaussianMixture loop",
        "R": R,
        "n": n,
        "mlesim_s": t_ours,
        "other_s": t_loop * R / rows.size,
        "timed": "all" if rows.size == R else f"{rows.size} (extrapolated)",
        "max_diff": diff.max(),
        "max_se_diff": np.nan,
        "failed": int((~est.converged_).sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logistic-reps", type=int, default=10_000)
    parser.add_argument("--mixture-reps", type=int, default=2_000)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per loop at most")
    parser.add_argument("--subsample", type=int, default=1000)
    args = parser.parse_args()
    rows = [
        bench_logistic(args.logistic_reps, args.n, args.budget, args.subsample),
        bench_mixture(args.mixture_reps, args.n, args.budget, args.subsample),
    ]
    print(
        "| case | R | n | mlesim s | loop s (all R) | ratio | max rel. diff | max SE rel. diff "
        "| mlesim failed | loop fits timed |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['case']} | {r['R']} | {r['n']} | {r['mlesim_s']:.2f} | {r['other_s']:.1f} | "
            f"{r['other_s'] / r['mlesim_s']:.0f}x | {r['max_diff']:.1e} | {r['max_se_diff']:.1e} | "
            f"{r['failed']} | {r['timed']} |"
        )


if __name__ == "__main__":
    main()
