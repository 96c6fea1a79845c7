"""A user's own study, written as plain functions (the SimDesign way): a skew-normal data
generator and two robust estimators of location. mlesim imports this module from the
working directory; see conf/experiment/skewed_location.yaml and the README section
"Your own estimator".

Run from this directory:

    python -m mlesim --config-dir conf experiment=skewed_location
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def skew_normal(rng: np.random.Generator, size: tuple[int, int], a: float = 4.0) -> np.ndarray:
    """Skew-normal(a) draws of shape ``size`` = (R, n) (Azzalini 1985, Scand. J. Stat.
    12:171): X = δ|Z₀| + √(1 − δ²) Z₁ with δ = a/√(1 + a²), Z₀, Z₁ independent N(0, 1).
    Its mean is δ √(2/π) (0.7741 for a = 4)."""
    delta = a / np.sqrt(1.0 + a * a)
    z0 = np.abs(rng.standard_normal(size))
    z1 = rng.standard_normal(size)
    return delta * z0 + np.sqrt(1.0 - delta * delta) * z1


def trimmed_mean(x: np.ndarray, proportion: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric trimmed mean of every row of ``x`` (R, n), batched.

    Returns (estimates (R,), standard errors (R,)): ``scipy.stats.trim_mean`` and the
    Tukey–McLaughlin SE s_w / ((1 − 2g) √n), s_w the SD of the g-winsorized sample
    (Wilcox 2012, *Introduction to Robust Estimation*, §4.1).
    """
    n = x.shape[1]
    g = int(np.floor(proportion * n))
    xs = np.sort(x, axis=1)
    est = stats.trim_mean(x, proportion, axis=1)
    wins = np.clip(xs, xs[:, [g]], xs[:, [n - g - 1]])
    se = wins.std(axis=1, ddof=1) / ((1.0 - 2.0 * g / n) * np.sqrt(n))
    return est, se


def huber(x: np.ndarray, k: float = 1.345, max_iter: int = 100) -> dict:
    """Huber M-estimate of location of ONE data set ``x`` (n,) (``vectorized: false``):
    iteratively reweighted means with weights min(1, k / |r|), r = (x − μ)/s and the
    scale s fixed at MAD/0.6745 (Huber 1964, Ann. Math. Stat. 35:73).

    Returns a mapping with ``estimate``, ``se`` (the asymptotic sandwich
    s·sqrt(mean ψ²) / (mean ψ′ · √n)) and ``converged``.
    """
    mu = float(np.median(x))
    s = float(np.median(np.abs(x - mu)) / 0.6745)
    if s == 0:
        raise ValueError("MAD is 0: no scale for the Huber weights")
    for _ in range(max_iter):
        r = (x - mu) / s
        w = np.minimum(1.0, k / np.maximum(np.abs(r), 1e-12))
        new = float(np.sum(w * x) / np.sum(w))
        done = abs(new - mu) < 1e-10 * s
        mu = new
        if done:
            break
    r = (x - mu) / s
    psi, dpsi = np.clip(r, -k, k), (np.abs(r) <= k).astype(float)
    se = s * np.sqrt(np.mean(psi**2)) / (np.mean(dpsi) * np.sqrt(x.size))
    return {"estimate": mu, "se": se, "converged": done}
