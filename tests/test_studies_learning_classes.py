"""The class_imbalance, cross_entropy_kl and mixture_collapse studies: each preset run
small through the pipeline, its claims checked against exact theory within 4 Monte
Carlo SE, its figures and notes present, its check() refusing bad configurations in one
line; and the exact formulas behind the theory lines against enumeration or direct
simulation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.special as sc
from conftest import Z, compose_config, run_in_process

from mlesim import learning_theory as lt
from mlesim import regression
from mlesim.errors import ConfigError
from mlesim.learners import _balanced
from mlesim.pipeline import run_pipeline
from mlesim.studies import StudyContext, render_study
from mlesim.studies import class_imbalance as ci
from mlesim.studies import cross_entropy_kl as ck
from mlesim.studies import mixture_collapse as mc
from mlesim.study import validate

NORMAL = {"dist": "normal", "rho": 0.0}
BETA0 = "truth.params.beta0"


def run(tmp_path, *overrides: str) -> dict:
    """Compose, validate and run one study into ``tmp_path``: run_pipeline's dict and
    the ``spec``."""
    spec = validate(compose_config(["runner.progress=false", *overrides]))
    return {**run_pipeline(spec, tmp_path), "spec": spec}


def context(out: dict, figdir) -> StudyContext:
    """The context a study's render gets, for a finished run's tables."""
    return StudyContext(out["spec"], out["replicates"], out["summary"], figdir, {})


def refused(overrides: list[str]) -> ConfigError:
    """The ConfigError ``validate`` raises for ``overrides``; its text is one line."""
    with pytest.raises(ConfigError) as err:
        validate(compose_config(overrides))
    assert "\n" not in str(err.value)
    return err.value


def binomial_close(share: float, exact: float, r: int, what: str) -> None:
    """|share − exact| < Z · √(exact(1 − exact)/r) (+ 1/r² for an exact 0 or 1)."""
    tol = Z * math.sqrt(exact * (1 - exact) / r) + 1 / r**2
    assert abs(share - exact) < tol, f"{what}: {share} vs exact {exact} (tol {tol:.3g})"


# ===================================================================== class_imbalance
@pytest.fixture(scope="module")
def imbalance(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("class_imbalance")
    out = run(
        tmp,
        "experiment=class_imbalance",
        "n=[100,200]",
        "replications=800",
        f"design.{BETA0}=[0.0,-1.6497,-5.0787]",
    )
    return out, tmp


def test_separation_share_matches_its_exact_probability(imbalance):
    """(b) The MLE fails by separation as often as the exact P(no MLE) says; Firth never
    fails by separation."""
    out, _ = imbalance
    fails = out["failures"]
    for beta0 in (0.0, -1.6497, -5.0787):
        beta = np.array([beta0, 1.0])
        for n in (100, 200):
            cell = fails[(fails[BETA0] == beta0) & (fails["n"] == n)]
            mine = cell[cell["estimator"] == "mle"]["reason"]
            share = mine.str.startswith("separation").sum() / 800
            exact = ci.separation_probability(beta, NORMAL, np.array([n]))[0]
            binomial_close(share, exact, 800, f"separation beta0={beta0} n={n}")
    assert not fails[fails["estimator"] == "firth"]["reason"].str.startswith("separation").any()
    assert (fails["estimator"] == "firth").sum() <= 0.01 * 800 * 6
    # the rare cell has power: about 40% of the fits at n = 100 have no MLE
    assert ci.separation_probability(np.array([-5.0787, 1.0]), NORMAL, np.array([100]))[0] > 0.3


def test_mle_bias_matches_first_order_theory_and_firth_removes_it(imbalance):
    """(a) Where many events are expected (nπ ≥ 20) the MLE's bias is its first-order
    b(β)/n within 4 MCSE and Firth's is 0 within 4 MCSE."""
    out, _ = imbalance
    s = out["summary"]
    for beta0, n in ((0.0, 100), (0.0, 200), (-1.6497, 100), (-1.6497, 200)):
        first = lt.logistic_bias(np.array([beta0, 1.0]), NORMAL, n)
        cell = s[(s[BETA0] == beta0) & (s["n"] == n)]
        for j, param in enumerate(("beta0", "beta1")):
            mle = cell[(cell["estimator"] == "mle") & (cell["param"] == param)].iloc[0]
            firth = cell[(cell["estimator"] == "firth") & (cell["param"] == param)].iloc[0]
            assert abs(mle["bias"] - first[j]) < Z * mle["bias_mcse"], (beta0, n, param)
            assert abs(firth["bias"]) < Z * firth["bias_mcse"], (beta0, n, param)


@pytest.fixture(scope="module")
def per_fit(imbalance):
    """Each successful fit's expected accuracy and mean predicted probability."""
    out, tmp = imbalance
    ctx = context(out, tmp / "figures")
    return ci.per_replicate(ctx, ci.cells(ctx)), ctx.spec.factor_names


def test_accuracy_claim_and_the_report(imbalance, per_fit):
    """(c) No fitted classifier beats the Bayes classifier; at π = 1% the Bayes
    classifier beats the constant prediction by < 1e-7 while the fitted MLE at n = 100
    scores below the constant prediction by more than 4 MCSE. The report has four
    figures and states the four claims."""
    out, tmp = imbalance
    per, keys = per_fit
    rare = np.array([-5.0787, 1.0])
    pi = lt.prevalence(rare, NORMAL)
    rule = ci.AccuracyRule.of(rare, NORMAL)
    h = rule.t[1] - rule.t[0]
    interpolation = h**2 / 8 * (0.5 / np.sqrt(2 * np.pi) + 0.25)  # AccuracyRule.accuracy
    for beta0 in (0.0, -1.6497, -5.0787):
        bayes = ci.bayes_accuracy(np.array([beta0, 1.0]), NORMAL)
        assert (per.loc[per[BETA0] == beta0, "accuracy"] <= bayes + interpolation).all()
    assert 0 < ci.bayes_accuracy(rare, NORMAL) - (1 - pi) < 1e-7
    acc = ci.averages(per, keys, "accuracy")
    row = acc[(acc[BETA0] == -5.0787) & (acc["n"] == 100) & (acc["estimator"] == "mle")].iloc[0]
    assert (1 - pi) - row["mean"] > Z * row["mcse"], row
    names = sorted(p.name for p, _ in out["figures"])
    assert names == [
        f"class_imbalance_{k}.png" for k in ("accuracy", "bias", "calibration", "separation")
    ]
    report = (tmp / "report.md").read_text()
    for claim in ("(a)", "(b)", "(c)", "(d)"):
        assert f"Seed claim {claim}" in report
    assert "log((1 − π)/π)" in report


def test_calibration_at_half_and_the_shift_of_weights_and_focal_loss(per_fit):
    """(d) At π = ½ every estimator's mean predicted probability is ½ within 4 MCSE
    (exact by symmetry); at π = 20% balanced weights and the focal loss raise it above
    π by more than 4 MCSE, towards limits (tested against a large sample below) far
    above π."""
    per, keys = per_fit
    mp = ci.averages(per, keys, "mean_prob")
    half = mp[mp[BETA0] == 0.0]
    assert len(half) == 8
    assert (abs(half["mean"] - 0.5) < Z * half["mcse"]).all(), half
    beta = np.array([-1.6497, 1.0])
    pi = lt.prevalence(beta, NORMAL)
    for label in ("balanced", "focal"):
        row = mp[(mp[BETA0] == -1.6497) & (mp["n"] == 200) & (mp["estimator"] == label)].iloc[0]
        assert row["mean"] - pi > Z * row["mcse"], (label, row)
        assert ci.mean_probability_limit(label, beta, NORMAL, 2.0) > pi + 0.1


def test_accuracy_formula_against_fresh_data():
    """The exact accuracy 1 − π + S(t̂) of a fitted classifier against its accuracy on
    200 000 fresh draws, for slopes of both signs and a constant prediction."""
    rng = np.random.default_rng(4)
    beta = np.array([-1.6497, 1.0])
    rule = ci.AccuracyRule.of(beta, NORMAL)
    beta_hat = np.array([[-1.2, 0.8], [0.4, -0.7], [-0.5, 0.0], [-3.0, 2.5]])
    exact = rule.accuracy(beta_hat)
    z = rng.standard_normal(200_000)
    y = rng.random(z.size) < sc.expit(beta[0] + beta[1] * z)
    for row, value in zip(beta_hat, exact, strict=True):
        hit = (row[0] + row[1] * z > 0) == y
        assert abs(hit.mean() - value) < Z * hit.std() / np.sqrt(z.size), (row, value)


def test_separation_probability_against_direct_simulation():
    """The exact P(no MLE) against the order criterion on simulated samples."""
    rng = np.random.default_rng(9)
    beta = np.array([-3.3715, 1.0])
    for n in (30, 100):
        z = rng.standard_normal((20_000, n))
        y = rng.random(z.shape) < sc.expit(beta[0] + beta[1] * z)
        below = np.where(y, z, np.inf).min(1) > np.where(~y, z, -np.inf).max(1)
        above = np.where(~y, z, np.inf).min(1) > np.where(y, z, -np.inf).max(1)
        share = (below | above).mean()
        binomial_close(
            share, ci.separation_probability(beta, NORMAL, np.array([n]))[0], 20_000, f"n={n}"
        )


def test_balanced_and_focal_limits_against_a_large_sample():
    """The limits drawn for balanced weights and the focal loss against fits to one
    sample of 200 000 (within 4 of the fits' standard errors)."""
    rng = np.random.default_rng(11)
    beta = np.array([-3.3715, 1.0])
    x = lt.sample_covariates(rng, NORMAL, (1, 200_000), 2)
    y = (rng.random((1, 200_000)) < sc.expit(x @ beta)).astype(float)
    weighted = regression.logistic(x, y, sample_weight=_balanced(y, 2))
    focal = regression.focal_logistic(x, y, 2.0)
    for fit, limit in (
        (weighted, ci.balanced_limit(beta, NORMAL)),
        (focal, ci.focal_limit(beta, NORMAL, 2.0)),
    ):
        p = sc.expit(x[0] @ fit.beta[0])
        se = np.sqrt(np.diag(np.linalg.inv(x[0].T @ (x[0] * (p * (1 - p))[:, None]))))
        assert np.all(np.abs(fit.beta[0] - limit) < Z * 3 * se), (fit.beta[0], limit, se)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        (["truth=normal", "design={}", "estimators={mle:{kind:mle}}"], "truth"),
        (["truth.covariates.dist=uniform"], "truth.covariates.dist"),
        (["+design.truth.params.beta1=[1.0,2.0]"], "design.truth.params.beta1"),
        (["~estimators.mle"], "estimators"),
    ],
)
def test_class_imbalance_refuses_bad_configs(override, key):
    assert refused(["experiment=class_imbalance", *override]).key == key


# ===================================================================== cross_entropy_kl
@pytest.fixture(scope="module")
def categorical(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cross_entropy_kl")
    out = run(tmp, "experiment=cross_entropy_kl", "n=[10,30,200]", "replications=4000")
    return out, tmp


P = np.array([0.5, 0.3, 0.15, 0.05])


def _table(out, tmp):
    ctx = context(out, tmp / "figures")
    params = ["p0", "p1", "p2", "p3"]
    return ck.averages(ck.per_replicate(ctx, P, params)), ctx


def test_unseen_share_kl_and_perplexity_match_exact_values(categorical):
    """(b)–(d): the unseen-category share (binomial), E KL of add-one, the MLE's E[KL |
    all seen] and both expected perplexities within 4 MCSE of their exact values; every
    fit's perplexity is above exp H(p)."""
    out, tmp = categorical
    table, _ = _table(out, tmp)
    for row in table.itertuples():
        alpha = "mle" if row.estimator == "mle" else 1.0
        exact = ck.exact_curves(P, np.array([row.n]), alpha)
        assert abs(row.kl - exact["kl"][0]) < Z * row.kl_mcse, row
        assert abs(row.perplexity - exact["perplexity"][0]) < Z * row.perplexity_mcse, row
        assert row.perplexity > np.exp(lt.entropy(P))
        if row.estimator == "mle":
            binomial_close(row.unseen, ck.unseen_probability(P, row.n), row.R, f"n={row.n}")
        else:
            assert row.unseen == 0
    mle10 = table[(table["estimator"] == "mle") & (table["n"] == 10)].iloc[0]
    assert mle10.unseen > 0.6  # the claim has power: most MLE fits at n = 10 miss one


def test_mle_is_the_frequencies_and_the_report_says_so(categorical):
    out, tmp = categorical
    _, ctx = _table(out, tmp)
    worst, compared = ck.frequencies_check(ctx, "mle", ["p0", "p1", "p2", "p3"])
    assert worst == 0 and compared == 3 * 4000
    report = (tmp / "report.md").read_text()
    assert "p̂ equals c/n" in report and "H(p) + KL(p ‖ p̂)" in report
    names = sorted(p.name for p, _ in out["figures"])
    assert names == ["cross_entropy_kl_held_out.png", "cross_entropy_kl_unseen.png"]


def _enumerate(n: int, fn) -> float:
    """E fn(c) over c ~ Multinomial(n, P) by listing every outcome."""
    total = 0.0
    for head in itertools.product(range(n + 1), repeat=P.size - 1):
        if sum(head) > n:
            continue
        c = np.array([*head, n - sum(head)])
        logp = math.lgamma(n + 1) - sum(math.lgamma(k + 1) for k in c) + float(c @ np.log(P))
        total += math.exp(logp) * fn(c)
    return total


@pytest.mark.parametrize("n", [4, 9, 15])
def test_exact_formulas_against_enumeration(n):
    seen = _enumerate(n, lambda c: float((c > 0).all()))
    assert ck.unseen_probability(P, np.array([n]))[0] == pytest.approx(1 - seen, abs=1e-13)
    assert ck.stick_breaking(P, n, ck._seen)[0] == pytest.approx(seen, rel=1e-12)
    kl = _enumerate(n, lambda c: float(P @ np.log(P * n / c)) if (c > 0).all() else 0.0)
    pp = _enumerate(n, lambda c: float(np.prod((c / n) ** -P)) if (c > 0).all() else 0.0)
    assert ck.conditional_mle(P, n) == pytest.approx((kl / seen, pp / seen), rel=1e-11)
    smooth = _enumerate(n, lambda c: float(np.prod(((c + 1) / (n + 4)) ** -P)))
    assert ck.smoothed_perplexity(P, n, 1.0) == pytest.approx(smooth, rel=1e-12)


def test_held_out_cross_entropy_is_the_expected_log_loss_on_fresh_data():
    """H(p) + KL(p ‖ p̂) is E_Y[−log p̂(Y)], Y ~ p: against 400 000 fresh draws."""
    rng = np.random.default_rng(2)
    p_hat = np.array([[0.45, 0.35, 0.12, 0.08]])
    y = rng.choice(4, size=400_000, p=P)
    loss = -np.log(p_hat[0, y])
    ce = ck.held_out(P, p_hat)["cross_entropy"][0]
    assert abs(loss.mean() - ce) < Z * loss.std() / np.sqrt(y.size)
    assert np.isinf(ck.held_out(P, np.array([[0.6, 0.4, 0.0, 0.0]]))["kl"][0])


@pytest.mark.parametrize(
    ("override", "key"),
    [
        (["truth=normal", "estimators={mle:{kind:mle}}"], "truth"),
        (["+design.seed=[1,2]"], "design.seed"),
        (["~estimators.mle"], "estimators"),
        (
            [f"truth.params.p{k}=0.0625" for k in range(4)]
            + [f"+truth.params.p{k}=0.0625" for k in range(4, 16)],
            "truth.params.p",
        ),
    ],
)
def test_cross_entropy_kl_refuses_bad_configs(override, key):
    assert refused(["experiment=cross_entropy_kl", *override]).key == key


# ===================================================================== mixture_collapse
@pytest.fixture(scope="module")
def mixture(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mixture_collapse")
    out = run(tmp, "experiment=mixture_collapse", "n=[10,40]", "replications=400")
    return out, tmp


def test_only_the_mle_collapses_and_collapses_are_failures(mixture):
    """The MLE collapses at n = 10 (the share is > 4 MCSE above 0); the floor and the
    prior never do (exactly 0); collapsed fits are failures (converged False) with
    their reason."""
    out, tmp = mixture
    fails = out["failures"]
    collapsed = fails[fails["reason"].str.startswith("collapsed")]
    assert set(collapsed["estimator"]) == {"mle"}
    share = (collapsed["n"] == 10).sum() / 400
    assert share > Z * math.sqrt(share * (1 - share) / 400), share
    reps = out["replicates"]
    rows = reps.merge(
        collapsed[["n", "estimator", "replicate"]], on=["n", "estimator", "replicate"]
    )
    assert len(rows) and not rows["converged"].any()
    report = (tmp / "report.md").read_text()
    assert "never restarted" in report and "truth=gaussian_mixture,gaussian_mixture_k3" in report
    names = sorted(p.name for p, _ in out["figures"])
    assert names == ["mixture_collapse_bias.png", "mixture_collapse_failures.png"]


def test_three_components_and_reasons_unknown_away_from_the_run(tmp_path):
    """K = 3 draws a 3 × 3 grid of bias panels; figures drawn elsewhere (no
    failures.csv above them, as Results.figures(directory) does) count every failure
    and say the reasons are unknown instead of calling them collapses."""
    out = run(
        tmp_path / "run",
        "experiment=mixture_collapse",
        "truth=gaussian_mixture_k3",
        "n=[12]",
        "replications=60",
        "~estimators.floor",
    )
    assert len(out["figures"]) == 2
    report = (tmp_path / "run" / "report.md").read_text()
    assert "K = 3" in report and "Share of fits that collapsed" in report
    fits, known = mc.fit_reasons(context(out, tmp_path / "elsewhere" / "figures"))
    assert not known and (fits["reason"] == mc.UNKNOWN).sum() == (~fits["converged"]).sum()
    assert (~fits["converged"]).any()  # the check has something to count
    _, notes = render_study(out["spec"], out["replicates"], out["summary"], tmp_path / "other")
    assert "reasons unknown" in notes[0]


def test_mixture_collapse_refuses_bad_configs_in_one_line(tmp_path, monkeypatch, capsys):
    assert (
        refused(["experiment=mixture_collapse", "truth=normal", "estimators={mle:{kind:mle}}"]).key
        == "truth"
    )
    assert refused(["experiment=mixture_collapse", "+design.seed=[1,2]"]).key == "design.seed"
    code, out, err = run_in_process(
        ["experiment=mixture_collapse", "+design.seed=[1,2]"], tmp_path, monkeypatch, capsys
    )
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "design.seed" in lines[0], err
