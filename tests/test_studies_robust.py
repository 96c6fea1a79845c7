"""The robustness (outlier_sensitivity) and sensitivity_curve studies end to end, against
exact values where they exist (the mean under contamination, the mean's sensitivity
curve) and the asymptotic theory of mlesim.robust_theory within 4 MCSE where the
finite-sample difference is far below it; and a command-line value replacing a
preset's design factor (DESIGN.md's sweep example)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import Z, compose_config
from omegaconf import OmegaConf

import mlesim.__main__ as cli
from mlesim import robust_theory
from mlesim.config import pin_overrides
from mlesim.errors import ConfigError
from mlesim.estimators import make_estimator
from mlesim.families import get_family
from mlesim.pipeline import run_pipeline
from mlesim.studies.robustness import relative_efficiency
from mlesim.studies.sensitivity_curve import sensitivity_curves
from mlesim.study import validate

FRACTION = "contamination.fraction"


def run(tmp_path, *overrides: str) -> dict:
    spec = validate(compose_config(["runner.progress=false", *overrides]))
    return run_pipeline(spec, tmp_path)


@pytest.fixture(scope="module")
def outliers(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("outliers")
    return run(
        tmp,
        "experiment=outlier_sensitivity",
        "n=[200]",
        "replications=2000",
        f"design.{FRACTION}=[0.0,0.1]",
    ), tmp


def test_bias_against_epsilon_matches_theory(outliers):
    """The mean's bias under ε N(10, 1) outliers is exactly 10ε at any n; the median's and
    Huber's are their functionals' T(F_ε) up to O(1/n), far below the MCSE here."""
    out, _ = outliers
    s = out["summary"]
    s = s[(s["param"] == "mu") & (s[FRACTION] == 0.1)].set_index("estimator")
    want = {
        "mean": 1.0,
        "median": robust_theory.functional("median", 0.1, 10.0, 1.0),
        "huber": robust_theory.functional("huber", 0.1, 10.0, 1.0, k=1.345),
        "tukey": robust_theory.functional("tukey", 0.1, 10.0, 1.0, c=4.685),
    }
    for label, value in want.items():
        row = s.loc[label]
        assert abs(row["bias"] - value) < Z * row["bias_mcse"], (label, row["bias"], value)
    assert s.loc["mean", "bias"] > 5 * s.loc["median", "bias"]  # the seed claim


def test_efficiency_at_the_clean_normal_matches_theory(outliers):
    out, tmp = outliers
    reps = out["replicates"]
    reps = reps[(reps[FRACTION] == 0.0) & (reps["param"] == "mu")]
    for label, name in (
        ("median", "median"),
        ("huber", "huber"),
        ("hodges_lehmann", "hodges_lehmann"),
    ):
        eff, mcse = relative_efficiency(reps, label, "mean")
        theory = robust_theory.efficiency(name)
        assert abs(eff - theory) < Z * mcse + 2 / 200, (label, eff, mcse, theory)
    report = (tmp / "report.md").read_text()
    assert "outliers wreck the mean but not the median" in report
    assert "| median |" in report and "[0.637]" in report  # 2/π beside the simulation
    names = sorted(p.name for p, _ in out["figures"])
    assert names == [
        "robustness_breakdown_n=200.png",
        "robustness_efficiency_n=200.png",
        "robustness_mu_n=200.png",
    ]


def test_relative_efficiency_mcse_is_calibrated():
    """The delta-method MCSE of Var(a)/Var(b) against the spread of the ratio over 200
    independent repetitions (correlated estimators of the same data sets)."""
    rng = np.random.default_rng(3)
    ratios, mcses = [], []
    for _ in range(200):
        x = rng.normal(size=(400, 15))
        rows = []
        for label, est in (("mean", x.mean(axis=1)), ("median", np.median(x, axis=1))):
            rows.append(
                pd.DataFrame({"replicate": np.arange(400), "estimator": label, "estimate": est})
            )
        eff, mcse = relative_efficiency(pd.concat(rows), "median", "mean")
        ratios.append(eff)
        mcses.append(mcse)
    sd = np.std(ratios, ddof=1)
    # the SD of 200 draws is known to about 1/√400 = 5%: allow 4 of those
    assert abs(np.mean(mcses) / sd - 1) < Z * np.sqrt(1 / (2 * 199)), (np.mean(mcses), sd)


def test_sensitivity_curve_of_the_mean_is_exact_and_the_median_matches_numpy():
    rng = np.random.default_rng(5)
    base = rng.normal(size=(50, 9))
    grid = np.array([-3.0, 0.1, 2.0])
    fam = get_family("normal")
    ests = [make_estimator(k, {"kind": k}, fam) for k in ("mean", "median")]
    curves = sensitivity_curves(ests, base, grid, "mu")
    mean_sc = [np.mean(x - base.mean(axis=1)) for x in grid]  # n(x̄ₙ − x̄ₙ₋₁) = x − x̄ₙ₋₁
    np.testing.assert_allclose(curves["mean"][0], mean_sc, rtol=1e-12)
    med = [
        np.mean(
            10
            * (np.median(np.column_stack([base, np.full(50, x)]), axis=1) - np.median(base, axis=1))
        )
        for x in grid
    ]
    np.testing.assert_allclose(curves["median"][0], med, rtol=1e-12)


def test_sensitivity_curve_preset_tends_to_the_influence_function(tmp_path):
    """At n = 400 the mean SC of Huber's estimator is within 3% of its IF, and Tukey's
    redescends to 0 far out: SC(6σ) is 0 within 4 MCSE."""
    out = run(
        tmp_path,
        "experiment=sensitivity_curve",
        "n=[400]",
        "replications=50",
        "analysis.points=7",
        "analysis.samples=400",
        "estimators={mle: {kind: mle}, huber: {kind: huber}, tukey: {kind: tukey}}",
    )
    report = (tmp_path / "report.md").read_text()
    assert "| huber |" in report and "1.637" in report  # Huber's γ* = k / (2Φ(k) − 1)
    names = [p.name for p, _ in out["figures"]]
    assert names == ["sensitivity_curve_mu.png"]
    fam = get_family("normal")
    rng = np.random.default_rng(8)
    base = rng.normal(size=(400, 399))
    grid = np.array([-6.0, 1.0, 6.0])
    ests = [make_estimator(k, {"kind": k}, fam) for k in ("huber", "tukey")]
    curves = sensitivity_curves(ests, base, grid, "mu")
    np.testing.assert_allclose(
        curves["huber"][0], robust_theory.influence("huber", grid, k=1.345), rtol=0.03
    )
    mean, mcse = curves["tukey"]
    assert abs(mean[-1]) < Z * mcse[-1] + 1e-12


# ------------------------------------------------- a command-line value wins
def test_a_command_line_value_replaces_the_design_factor():
    cfg = OmegaConf.create(
        {"design": {"contamination": {"fraction": [0, 0.1]}, "truth": {"params": {"p": [0.1]}}}}
    )
    assert pin_overrides(cfg, ["experiment=x", "contamination.fraction=0.05"]) == [
        "contamination.fraction"
    ]
    assert OmegaConf.to_container(cfg.design) == {"truth": {"params": {"p": [0.1]}}}
    assert pin_overrides(cfg, ["truth.params.p=0.3"]) == ["truth.params.p"]
    assert OmegaConf.to_container(cfg.design) == {}


def test_design_sweep_example_runs_one_value_per_job(tmp_path, monkeypatch, capsys):
    """DESIGN.md: python -m mlesim -m experiment=outlier_sensitivity
    contamination.fraction=0,0.05,0.1 — each job runs its one fraction."""
    monkeypatch.chdir(tmp_path)
    args = [
        "-m",
        "experiment=outlier_sensitivity",
        "contamination.fraction=0,0.1",
        "replications=30",
        "n=[20]",
        "runner.progress=false",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]
    monkeypatch.setattr("sys.argv", ["mlesim", *args])
    try:
        cli.main()
    except SystemExit as stop:  # a refusal exits; a success returns
        pytest.fail(f"exit {stop.code}: {capsys.readouterr().err[-2000:]}")
    runs = sorted((tmp_path / "sweep").glob("*_outlier_sensitivity"))
    assert len(runs) == 2
    for run_dir, eps in zip(runs, (0.0, 0.1), strict=True):
        summary = pd.read_csv(run_dir / "summary.csv")
        assert FRACTION not in summary.columns  # one fraction: no design column
        cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
        assert cfg.contamination.fraction == eps
        assert (run_dir / "figures" / "robustness_mu_n=20.png").exists()


def test_robustness_needs_normal_contamination():
    with pytest.raises(ConfigError) as info:
        validate(compose_config(["experiment=outlier_sensitivity", "~contamination"]))
    assert info.value.key == "contamination"


def test_robustness_refuses_a_second_design_factor():
    with pytest.raises(ConfigError) as info:
        validate(
            compose_config(
                ["experiment=outlier_sensitivity", "+design.estimators.mle.se=[observed,sandwich]"]
            )
        )
    assert info.value.key == "design.estimators.mle.se"


def test_a_mapping_for_a_parent_key_pins_its_design_factors_but_a_group_choice_does_not():
    cfg = OmegaConf.create({"design": {"truth": {"params": {"p": [0.1, 0.5]}}}})
    assert pin_overrides(cfg, ["truth=bernoulli"]) == []
    assert pin_overrides(cfg, ["truth.params={p: 0.3}"]) == ["truth.params.p"]
    assert OmegaConf.to_container(cfg.design) == {}


def test_a_sweeps_failures_do_not_outlive_the_command(tmp_path, monkeypatch, capsys):
    from conftest import run_in_process

    cli.FAILED_JOBS.append("9_left_over")  # as an earlier in-process sweep would leave it
    code, _, err = run_in_process(
        ["n=[5]", "replications=20", "runner.progress=false", f"hydra.run.dir={tmp_path / 'r'}"],
        tmp_path,
        monkeypatch,
        capsys,
    )
    assert code == 0, err
    assert cli.FAILED_JOBS == []
