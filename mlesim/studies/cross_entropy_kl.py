"""Study ``cross_entropy_kl``: cross-entropy is maximum likelihood, and on new data it
costs the entropy plus the KL divergence of the fit.

A categorical p over K categories, counts c ~ Multinomial(n, p). The MLE p̂ = c/n is the
empirical frequencies — the minimiser of the training cross-entropy −(1/n) Σ_i log q(y_i)
— and the Dirichlet(a) MAP is p̂ = (c + α)/(n + Kα), α = a − 1 pseudo-counts (a = 2:
add-one smoothing). For one fitted p̂ and a new draw Y ~ p, exactly

    E_Y[−log p̂(Y)] = −Σ_k p_k log p̂_k = H(p) + KL(p ‖ p̂),

the held-out cross-entropy (Cover & Thomas 2006, §2.3 and §5.4), ≥ H(p); its
exponential is the perplexity, ≥ exp(H(p)). KL(p ‖ p̂) = ∞ when some p̂_k = 0 < p_k: the
MLE after a category went unseen.

Exact theory beside the simulation:

(b) P(some category unseen) = 1 − Σ_{S ⊆ {1..K}} (−1)^{|S|} (1 − p_S)^n,
    p_S = Σ_{k∈S} p_k (inclusion–exclusion; Feller 1968, §IV.1).
(c) E KL(p ‖ p̂) for the smoothed estimate, exactly by its binomial marginals
    (:func:`mlesim.learning_theory.multinomial_kl_expectation`), and the asymptote
    (K − 1)/(2n) (E of Pearson's χ²/(2n)). For the MLE, E KL = ∞ (an unseen category has
    positive probability); shown instead is E[KL | every category seen], exactly:
    KL = Σ p_k log p_k + log n − Σ_k p_k log c_k on that event, and
    E[Σ_k p_k log c_k · 1{all c_k > 0}] and P(all c_k > 0) come from the stick-breaking
    recursion below.
(d) E perplexity = E Π_k p̂_k^{−p_k} is an expectation of a product of functions of the
    counts, exact by the same recursion: with q_k = p_k / Σ_{j≥k} p_j, the counts
    satisfy c_k | (c_1..c_{k−1}) ~ Bin(m, q_k), m = n − Σ_{j<k} c_j (the multinomial's
    conditional binomials), so V_K(m) = f_K(m) and
    V_k(m) = Σ_c Bin(c; m, q_k) f_k(c) V_{k+1}(m − c) give V_1(n) = E Π_k f_k(c_k), in
    O(K n²) operations (sums E[Σ_k g_k(c_k) Π_j f_j(c_j)] likewise, carrying a second
    array). Jensen: E perplexity ≥ exp(H(p) + E KL) > exp(H(p)), approached as n grows.

References
----------
Cover, T. M. & Thomas, J. A. (2006). *Elements of Information Theory*, 2nd ed. Wiley.
Feller, W. (1968). *An Introduction to Probability Theory and Its Applications* I, 3rd
ed. Wiley.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlesim import learning_theory as lt
from mlesim import plots
from mlesim.chunks import cell_tasks
from mlesim.engine import chunk_data
from mlesim.errors import ConfigError
from mlesim.families.learning import expand
from mlesim.studies._common import cell_scenario

if TYPE_CHECKING:
    from mlesim.studies import Rendered, StudyContext

OPTIONS: dict = {}
#: inclusion–exclusion sums over the 2^K subsets: at most this many categories
MAX_K = 12
#: the O(K n²) recursion is run for sample sizes up to this (larger: no exact line)
MAX_EXACT_N = 5000
#: rows of the binomial table per step of the recursion (memory ≈ BLOCK · n floats)
BLOCK = 256


# --------------------------------------------------------------------------- checks
def check(config: dict) -> None:
    """Needs a categorical truth of at most :data:`MAX_K` categories, the MLE, and no
    design factor besides n."""
    truth = config["truth"]
    if truth.get("family") != "categorical":
        raise ConfigError("truth", "study cross_entropy_kl needs truth=categorical")
    k = len([name for name in expand(truth.get("params") or {}) if name.startswith("p")])
    if k > MAX_K:
        raise ConfigError(
            "truth.params.p",
            f"study cross_entropy_kl sums over the 2^K subsets of categories; allowed: "
            f"K <= {MAX_K}, got K = {k}",
        )
    if "mle" not in pseudo_counts(config["estimators"]).values():
        raise ConfigError(
            "estimators",
            "study cross_entropy_kl needs the categorical MLE; add one, e.g. "
            "+estimators.mle={kind:mle}",
        )
    design = config.get("design") or {}
    if design:
        raise ConfigError(
            f"design.{next(iter(design))}",
            "study cross_entropy_kl draws against n alone; allowed: no design factor — "
            "sweep other settings with -m",
        )


def pseudo_counts(estimators: dict) -> dict[str, float | str]:
    """Label → the pseudo-count α its estimate adds to every count: ``"mle"`` for the
    MLE (kind mle, or loss ce: α = 0), a − 1 for the Dirichlet(a) MAP (a = concentration,
    default 2), ``"other"`` otherwise."""
    out: dict[str, float | str] = {}
    for label, spec in estimators.items():
        kind = spec.get("kind")
        if kind == "mle" or (kind == "loss" and spec.get("loss") == "ce"):
            out[label] = "mle"
        elif kind == "map":
            a = spec.get("concentration")
            alpha = (2.0 if a is None else float(a)) - 1.0
            out[label] = "mle" if alpha == 0 else alpha
        else:
            out[label] = "other"
    return out


# ----------------------------------------------------------------------- exact theory
def unseen_probability(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    """P(some category unseen in n draws) = 1 − Σ_S (−1)^{|S|} (1 − p_S)^n by
    inclusion–exclusion (module docstring, (b)); shape of ``n``."""
    p = np.asarray(p, dtype=float)
    n = np.asarray(n, dtype=float)
    seen = np.zeros(np.shape(n))
    for size in range(p.size + 1):
        for subset in itertools.combinations(range(p.size), size):
            rest = max(1.0 - float(p[list(subset)].sum()), 0.0)
            seen = seen + (-1.0) ** size * rest**n
    return np.clip(1.0 - seen, 0.0, 1.0)


def stick_breaking(p: np.ndarray, n: int, f, g=None) -> tuple[float, float]:
    """E Π_k f_k(c_k) and E[Σ_k g_k(c_k) Π_j f_j(c_j)] for c ~ Multinomial(n, p), by
    the recursion of the module docstring ((d)); ``f(k, c)`` and ``g(k, c)`` map the
    counts c = 0..n (an array) of category k to arrays. O(K n²) operations, the binomial
    table built :data:`BLOCK` rows at a time."""
    import scipy.stats as st

    p = np.asarray(p, dtype=float)
    counts = np.arange(n + 1)
    zero = lambda k, c: np.zeros(c.shape)  # noqa: E731
    g = zero if g is None else g
    last = p.size - 1
    v = f(last, counts).astype(float)
    w = g(last, counts) * v
    tail = p[last]
    for k in range(last - 1, -1, -1):
        tail += p[k]
        q = min(p[k] / tail, 1.0)
        fk, gk = f(k, counts), g(k, counts)
        rows = np.array([n]) if k == 0 else counts  # the first category: m = n only
        v_new, w_new = np.empty(rows.size), np.empty(rows.size)
        for start in range(0, rows.size, BLOCK):
            m = rows[start : start + BLOCK, None]
            pmf = st.binom.pmf(counts[None, :], m, q)  # 0 where c > m
            rest = np.clip(m - counts[None, :], 0, n)
            v_new[start : start + BLOCK] = (pmf * fk * v[rest]).sum(axis=1)
            w_new[start : start + BLOCK] = (pmf * fk * (gk * v[rest] + w[rest])).sum(axis=1)
        v, w = v_new, w_new
    return float(v[-1]), float(w[-1])


def _seen(k: int, c: np.ndarray) -> np.ndarray:
    return (c > 0).astype(float)


def conditional_mle(p: np.ndarray, n: int) -> tuple[float, float]:
    """(E[KL(p ‖ c/n) | all seen], E[perplexity of c/n | all seen]) exactly:
    KL = Σ p log p + log n − Σ_k p_k log c_k on that event (module docstring (c), (d))."""
    p = np.asarray(p, dtype=float)

    def log_term(k: int, c: np.ndarray) -> np.ndarray:
        return p[k] * np.log(np.maximum(c, 1))

    def inverse_power(k: int, c: np.ndarray) -> np.ndarray:
        return np.where(c > 0, (np.maximum(c, 1) / n) ** -p[k], 0.0)

    seen, weighted = stick_breaking(p, n, _seen, log_term)
    kl = float(p @ np.log(p)) + np.log(n) - weighted / seen
    perplexity = stick_breaking(p, n, inverse_power)[0] / seen
    return max(kl, 0.0), perplexity


def smoothed_perplexity(p: np.ndarray, n: int, alpha: float) -> float:
    """E Π_k p̂_k^{−p_k}, p̂_k = (c_k + α)/(n + Kα), exactly (module docstring (d))."""
    p = np.asarray(p, dtype=float)
    total = n + p.size * alpha
    return stick_breaking(p, n, lambda k, c: ((c + alpha) / total) ** -p[k])[0]


def exact_curves(p: np.ndarray, ns: np.ndarray, alpha: float | str) -> dict[str, np.ndarray]:
    """Per n: E KL and E perplexity (the MLE's given every category seen; NaN beyond
    :data:`MAX_EXACT_N`) of the estimate adding ``alpha`` ("mle": 0) to every count."""
    kl, pp = [], []
    for n in np.asarray(ns, dtype=int):
        if n > MAX_EXACT_N:
            kl.append(np.nan if alpha == "mle" else lt.multinomial_kl_expectation(p, n, alpha))
            pp.append(np.nan)
        elif alpha == "mle":
            a, b = conditional_mle(p, int(n))
            kl.append(a)
            pp.append(b)
        else:
            kl.append(lt.multinomial_kl_expectation(p, int(n), float(alpha)))
            pp.append(smoothed_perplexity(p, int(n), float(alpha)))
    return {"kl": np.array(kl), "perplexity": np.array(pp)}


# ------------------------------------------------------------------------ the data
def fitted(ctx: StudyContext, label: str, params: list[str]) -> pd.DataFrame:
    """The successful fits of ``label``: n, replicate and the estimates p̂ in the
    model's order (one row per fit)."""
    rows = ctx.replicates[(ctx.replicates["estimator"] == label) & ctx.replicates["converged"]]
    wide = rows.pivot_table(
        index=["n", "replicate"],
        columns="param",
        values="estimate",
        observed=True,
        aggfunc="first",
    )
    return wide[params].reset_index()


def held_out(p: np.ndarray, p_hat: np.ndarray) -> dict[str, np.ndarray]:
    """Per fit (rows of ``p_hat`` (R, K)): KL(p ‖ p̂) (∞ where some p̂_k = 0), the
    held-out cross-entropy H(p) + KL and the perplexity exp(H(p) + KL); each (R,)."""
    with np.errstate(divide="ignore"):
        kl = p @ (np.log(p)[:, None] - np.log(p_hat.T))
    ce = lt.entropy(p) + kl
    with np.errstate(over="ignore"):
        return {"kl": kl, "cross_entropy": ce, "perplexity": np.exp(ce)}


def per_replicate(ctx: StudyContext, p: np.ndarray, params: list[str]) -> pd.DataFrame:
    """One row per successful fit: estimator, n, replicate, kl, cross_entropy,
    perplexity, unseen (some p̂_k = 0)."""
    parts = []
    for label in ctx.spec["estimators"]:
        wide = fitted(ctx, label, params)
        p_hat = wide[params].to_numpy(float)
        parts.append(
            wide[["n", "replicate"]].assign(
                estimator=label, unseen=(p_hat <= 0).any(axis=1), **held_out(p, p_hat)
            )
        )
    return pd.concat(parts, ignore_index=True)


def averages(per: pd.DataFrame) -> pd.DataFrame:
    """Per (estimator, n): the share of fits with an unseen category and its binomial
    MCSE; the means and MCSEs (sd/√R') of kl, cross_entropy and perplexity over the
    R' fits where they are finite, and R'."""
    out = []
    for (label, n), rows in per.groupby(["estimator", "n"], sort=False):
        r = len(rows)
        share = rows["unseen"].mean()
        row = {"estimator": label, "n": n, "R": r, "unseen": share}
        row["unseen_mcse"] = np.sqrt(share * (1 - share) / r)
        finite = rows[np.isfinite(rows["kl"])]
        row["finite"] = len(finite)
        for name in ("kl", "cross_entropy", "perplexity"):
            row[name] = finite[name].mean()
            row[f"{name}_mcse"] = finite[name].std(ddof=1) / np.sqrt(len(finite))
        out.append(row)
    return pd.DataFrame(out)


def frequencies_check(ctx: StudyContext, label: str, params: list[str]) -> tuple[float, int]:
    """(max |p̂ − c/n|, fits compared): the MLE ``label`` against the empirical
    frequencies of every replicate's data, regenerated from the seed
    (:func:`mlesim.engine.chunk_data`, as in the run)."""
    worst, compared = 0.0, 0
    wide = fitted(ctx, label, params).set_index(["n", "replicate"])
    for cond in ctx.spec.conditions:
        n = cond.factors["n"]
        reps = int(ctx.replicates.loc[ctx.replicates["n"] == n, "replicate"].max()) + 1
        for task in cell_tasks(ctx.spec, cond, reps):
            y = chunk_data(task)[1]["y"]
            freq = np.stack([(y == k).sum(axis=1) for k in range(len(params))], axis=1) / n
            keys = pd.MultiIndex.from_product([[n], range(task.start, task.stop)])
            mine = wide.reindex(keys).to_numpy(float)
            ok = np.isfinite(mine).all(axis=1)
            worst = max(worst, float(np.abs(mine[ok] - freq[ok]).max(initial=0.0)))
            compared += int(ok.sum())
    return worst, compared


# ------------------------------------------------------------------------- figures
def _grid(ns) -> np.ndarray:
    return np.unique(np.round(np.geomspace(min(ns), max(ns), 40)).astype(int))


def _name(label: str, alpha: float | str, k: int) -> str:
    """A legend name: the label and its estimate."""
    if alpha == "mle":
        return f"{label}: p̂ = c/n"
    return f"{label}: p̂ = (c + {alpha:g})/(n + {k * alpha:g})"


def unseen_figure(ctx, p, table, alphas):
    """(b) Share of fits with an unseen category (held-out cross-entropy ∞) against n."""
    fig, axes = plots.new_figure(width=6.0, height=4.2)
    ax = axes[0, 0]
    grid = _grid(table["n"])
    labels = [lab for lab in ctx.spec["estimators"] if alphas[lab] != "other"]
    for i, label in enumerate(labels):
        rows = table[table["estimator"] == label].sort_values("n")
        x = plots.dodge(rows["n"], i, len(labels))
        plots.errorbars(
            ax,
            x,
            rows["unseen"],
            rows["unseen_mcse"],
            _name(label, alphas[label], p.size),
            color=f"C{i}",
        )
    mle = next(i for i, lab in enumerate(labels) if alphas[lab] == "mle")
    ax.plot(
        grid,
        unseen_probability(p, grid),
        color=f"C{mle}",
        lw=1.2,
        label="exact: 1 − P(all seen)\n(inclusion–exclusion)",
    )
    plots.label_axes(ax, "sample size n", "share of fits with some p̂_k = 0", None, logx=True)
    plots.legend_outside(ax)
    path = plots.save(fig, ctx.figdir / "cross_entropy_kl_unseen.png")
    caption = (
        "Share of fits with a category never seen (p̂_k = 0 < p_k: the held-out "
        "cross-entropy −Σ p_k log p̂_k is infinite) against n; line: the exact "
        "1 − P(every category seen) by inclusion–exclusion; smoothing never leaves a zero. "
        "Points: simulation ± 2 binomial Monte Carlo SE."
    )
    return path, caption


def held_out_figure(ctx, p, table, alphas):
    """(c), (d) E KL(p ‖ p̂) and the perplexity against n, exact lines beside."""
    fig, axes = plots.new_figure(ncols=2, width=5.0, height=4.2)
    kl_ax, pp_ax = axes[0]
    grid = _grid(table["n"])
    k = p.size
    labels = [lab for lab in ctx.spec["estimators"] if alphas[lab] != "other"]
    for i, label in enumerate(labels):
        alpha = alphas[label]
        rows = table[table["estimator"] == label].sort_values("n")
        x = plots.dodge(rows["n"], i, len(labels))
        name = _name(label, alpha, k) + (", all seen" if alpha == "mle" else "")
        style = {"color": f"C{i}"}
        plots.errorbars(kl_ax, x, rows["kl"], rows["kl_mcse"], name, **style)
        plots.errorbars(pp_ax, x, rows["perplexity"], rows["perplexity_mcse"], name, **style)
        exact = exact_curves(p, grid, alpha)
        kl_ax.plot(grid, exact["kl"], lw=1.2, **style)
        pp_ax.plot(grid, exact["perplexity"], lw=1.2, **style)
    kl_ax.plot(grid, (k - 1) / (2 * grid), "--", color="k", lw=1, label="(K − 1)/(2n)")
    pp_ax.axhline(np.exp(lt.entropy(p)), ls=":", color="k", lw=1.5, label="exp H(p)")
    pp_ax.plot([], [], color="grey", lw=1.2, label="lines: exact\n(estimator's colour)")
    plots.label_axes(
        kl_ax, "sample size n", "E KL(p ‖ p̂) (nats)", "KL divergence", logx=True, logy=True
    )
    plots.label_axes(
        pp_ax, "sample size n", "perplexity exp(H(p) + KL(p ‖ p̂))", "held-out perplexity", logx=True
    )
    kl_ax.get_legend().remove()
    legend = {}
    for ax in (kl_ax, pp_ax):
        for handle, name in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(name, handle)
    pp_ax.legend(
        list(legend.values()),
        list(legend),
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
    )
    path = plots.save(fig, ctx.figdir / "cross_entropy_kl_held_out.png")
    caption = (
        "Left: E KL(p ‖ p̂) against n (log scales) — for the smoothed estimate beside its "
        "exact value (binomial marginals) and the asymptote (K − 1)/(2n) (dashed); for "
        "the MLE, whose KL is infinite when a category goes unseen, the mean over the fits "
        "where every category was seen beside its exact conditional value. Right: the "
        "held-out perplexity exp(H(p) + KL) beside its exact expectation (stick-breaking "
        "recursion), above exp H(p) (dotted) and approaching it. Points: simulation ± 2 "
        "Monte Carlo SE."
    )
    return path, caption


# --------------------------------------------------------------------------- notes
def _g(value: float) -> str:
    return "0" if abs(value) < 1e-15 else f"{value:.4g}"


def _pm(value: float, mcse: float, exact: float | None = None) -> str:
    """``v ± m`` to the MCSE's second significant digit, and ``[exact]`` to as many
    decimals (4 significant digits when the MCSE is 0)."""
    if not np.isfinite(value):
        return "—"
    if not mcse > 0:
        text = f"{value:.4g}"
        return text if exact is None else f"{text} [{_g(exact)}]"
    d = max(0, 1 - int(np.floor(np.log10(mcse))))
    text = f"{value:.{d}f} ± {mcse:.{d}f}"
    return text if exact is None else f"{text} [{exact:.{d}f}]"


def check_note(worst: float, compared: int, label: str, p: np.ndarray) -> str:
    """(a) in numbers: the MLE against the frequencies; the cross-entropy identity."""
    verdict = "equals" if worst == 0 else f"differs by at most {worst:.3g} from"
    return (
        f"**Check (a): the MLE is the empirical frequencies.** Over all {compared} fits of "
        f"`{label}` (the data regenerated from the seed) p̂ {verdict} c/n "
        f"(max |p̂_k − c_k/n| = {worst:.3g}). The frequencies also minimise the training "
        "cross-entropy −(1/n) Σ log q(y_i): cross-entropy minimisation is maximum "
        "likelihood. On new data Y ~ p the expected loss of a fitted p̂ is exactly "
        "E_Y[−log p̂(Y)] = −Σ p_k log p̂_k = H(p) + KL(p ‖ p̂), its held-out "
        f"cross-entropy, with H(p) = {lt.entropy(p):.4f} nats here (perplexity floor "
        f"exp H(p) = {np.exp(lt.entropy(p)):.4f})."
    )


def unseen_note(p, table, alphas) -> str:
    """(b) in numbers."""
    mle = next(lab for lab, a in alphas.items() if a == "mle")
    rows = table[table["estimator"] == mle].sort_values("n")
    exact = unseen_probability(p, rows["n"].to_numpy())
    lines = [
        "**Seed claim (b): an unseen category makes the MLE's held-out cross-entropy "
        f"infinite.** Share of `{mle}` fits with some p̂_k = 0 ± binomial MCSE [exact "
        "1 − P(all seen)]:",
        "",
        "| n | share with a category unseen [exact] |",
        "|---|---|",
    ]
    for r, e in zip(rows.itertuples(), exact, strict=True):
        count = round(r.unseen * r.R)
        lines.append(f"| {r.n} | {_pm(r.unseen, r.unseen_mcse, e)} ({count}/{r.R}) |")
    smoothed = [lab for lab, a in alphas.items() if a not in ("mle", "other")]
    if smoothed:
        zero = table[table["estimator"].isin(smoothed)]["unseen"].max()
        lines += [
            "",
            f"Smoothed ({', '.join(smoothed)}): {zero:g} of its fits have a zero "
            "(every p̂_k ≥ α/(n + Kα) > 0), so its held-out cross-entropy is always "
            "finite.",
        ]
    return "\n".join(lines)


def divergence_note(p, table, alphas) -> str:
    """(c), (d) in numbers: E KL, the held-out cross-entropy and the perplexity."""
    k = p.size
    h = lt.entropy(p)
    lines = [
        "**Seed claims (c) and (d): E KL(p ‖ p̂) ≈ (K − 1)/(2n), and the held-out "
        "perplexity exp(H(p) + KL) stays above exp H(p), approaching it as n grows.** "
        "Simulation ± MCSE [exact]; for the MLE over the fits where every category was "
        "seen (the conditional expectation; its unconditional one is infinite):",
        "",
        "| estimator | n | fits | E KL [exact] | (K − 1)/(2n) | held-out cross-entropy "
        "[H + E KL] | perplexity [exact] |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, alpha in alphas.items():
        if alpha == "other":
            continue
        rows = table[table["estimator"] == label].sort_values("n")
        exact = exact_curves(p, rows["n"].to_numpy(), alpha)
        for j, r in enumerate(rows.itertuples()):
            kl, pp = exact["kl"][j], exact["perplexity"][j]
            lines.append(
                f"| {label} | {r.n} | {r.finite} of {r.R} | {_pm(r.kl, r.kl_mcse, kl)} | "
                f"{_g((k - 1) / (2 * r.n))} | "
                f"{_pm(r.cross_entropy, r.cross_entropy_mcse, h + kl)} | "
                f"{_pm(r.perplexity, r.perplexity_mcse, pp)} |"
            )
    lines += ["", _summary(p, table, alphas)]
    return "\n".join(lines)


def _summary(p, table, alphas) -> str:
    """The claims in one paragraph: E KL against (K − 1)/(2n) at the smallest and
    largest n, and the perplexity's approach to exp H(p)."""
    k, h = p.size, lt.entropy(p)
    smoothed = [lab for lab, a in alphas.items() if a not in ("mle", "other")]
    label = smoothed[0] if smoothed else next(lab for lab, a in alphas.items() if a == "mle")
    rows = table[table["estimator"] == label].sort_values("n")
    first, last = rows.iloc[0], rows.iloc[-1]
    ratio = [r.kl / ((k - 1) / (2 * r.n)) for r in (first, last)]
    above = bool((table["perplexity"].dropna() > np.exp(h)).all())
    return (
        f"For `{label}`, E KL / ((K − 1)/(2n)) is {ratio[0]:.2f} at n = {first.n} and "
        f"{ratio[1]:.2f} at n = {last.n}: the asymptote is a large-n value. Its mean "
        f"perplexity falls from {_pm(first.perplexity, first.perplexity_mcse)} at "
        f"n = {first.n} to {_pm(last.perplexity, last.perplexity_mcse)} at n = {last.n}; "
        f"every mean perplexity is {'above' if above else 'NOT above'} the floor "
        f"exp H(p) = {np.exp(h):.4f} (H(p) = {h:.4f} nats), as it must be (KL ≥ 0). By "
        "Jensen's inequality E perplexity ≥ exp(H(p) + E KL); the exact values include "
        "that gap."
    )


# -------------------------------------------------------------------------- render
def render(ctx: StudyContext) -> Rendered:
    """The frequency check, the unseen-category share and the held-out KL and
    perplexity against n, with exact values."""
    scen = cell_scenario(ctx.spec, {"n": int(ctx.summary["n"].min())})
    p = np.asarray(scen.theta, dtype=float)
    params = list(scen.model.params)
    alphas = pseudo_counts(ctx.spec["estimators"])
    table = averages(per_replicate(ctx, p, params))
    mle = next(lab for lab, a in alphas.items() if a == "mle")
    worst, compared = frequencies_check(ctx, mle, params)
    figures = [
        unseen_figure(ctx, p, table, alphas),
        held_out_figure(ctx, p, table, alphas),
    ]
    notes = [
        check_note(worst, compared, mle, p),
        unseen_note(p, table, alphas),
        divergence_note(p, table, alphas),
    ]
    return figures, notes
