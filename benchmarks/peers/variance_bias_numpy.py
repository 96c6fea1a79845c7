"""The variance_bias study written by hand: numpy on one core, what a user would write.

Peer of ``python -m mlesim experiment=variance_bias replications=R n=[...]`` for
``benchmarks/bench_speed.py`` (goal 1 of issue 12). For each n it draws R data sets of
n standard normal values (σ² = 1) with ``numpy.random.default_rng``, in chunks of at
most 1,000 replicates so memory stays bounded, and computes the three closed forms of
the preset's estimators from x̄ and SS = Σ(x − x̄)²:

- ``mle``: σ̂² = SS / n (the MLE, with the mean estimated by x̄);
- ``unbiased``: s² = SS / (n − 1);
- ``map``: the joint posterior mode under an inverse-gamma(shape 2, scale 1) prior on σ²
  and a flat prior on μ, (scale + SS/2) / (shape + n/2 + 1) (mlesim/priors.py, the
  normal's conjugate fast path: μ̂ = x̄ whatever σ², so one sweep is exact).

It prints the bias and MSE of each (with the bias's MCSE) per n, and of μ̂ = x̄ (the μ of
the MLE and of the MAP), as mlesim's summary.csv does. Run as a whole process
(the timing includes Python's start-up and numpy's import)::

    python benchmarks/peers/variance_bias_numpy.py --replications 200000 --n 2 5 10 30 100 1000
"""

import argparse
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core (before numpy is imported)

import numpy as np  # noqa: E402

MU, SIGMA2 = 0.0, 1.0  # conf/truth/normal.yaml
PRIOR_SHAPE, PRIOR_SCALE = 2.0, 1.0
CHUNK = 1000


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replications", type=int, default=200_000)
    parser.add_argument("--n", nargs="+", type=int, default=[2, 5, 10, 30, 100, 1000])
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    rows = (("mle", "mu"), ("mle", "sigma2"), ("unbiased", "sigma2"), ("map", "sigma2"))
    print("n,estimator,param,bias,bias_mcse,mse")
    for n in args.n:
        s1, s2 = np.zeros(len(rows)), np.zeros(len(rows))  # Σ (θ̂ − θ), Σ (θ̂ − θ)²
        done = 0
        while done < args.replications:
            r = min(CHUNK, args.replications - done)
            x = rng.normal(MU, np.sqrt(SIGMA2), size=(r, n))
            xbar = x.mean(axis=1)
            ss = ((x - xbar[:, None]) ** 2).sum(axis=1)
            errors = (
                xbar - MU,
                ss / n - SIGMA2,
                ss / (n - 1) - SIGMA2,
                (PRIOR_SCALE + ss / 2.0) / (PRIOR_SHAPE + n / 2.0 + 1.0) - SIGMA2,
            )
            for j, d in enumerate(errors):
                s1[j] += d.sum()
                s2[j] += (d * d).sum()
            done += r
        rr = args.replications
        for j, (name, param) in enumerate(rows):
            bias = s1[j] / rr
            mse = s2[j] / rr
            var = (s2[j] - rr * bias**2) / (rr - 1)
            print(f"{n},{name},{param},{bias:.6g},{np.sqrt(var / rr):.2g},{mse:.6g}")


if __name__ == "__main__":
    main()
