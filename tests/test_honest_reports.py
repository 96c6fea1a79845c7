"""Reports say when a number does not mean what it seems; capped iterations are not
reported as converged."""

from __future__ import annotations

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from mlesim import priors
from mlesim.estimators import make_estimator
from mlesim.failures import fit_safely
from mlesim.families import get_family
from mlesim.pipeline import run_pipeline
from tests.conftest import compose_config, study_spec


def _config(*overrides: str) -> dict:
    config = OmegaConf.to_container(compose_config(list(overrides)), resolve=True)
    config.pop("hydra", None)
    return config


def test_a_contaminated_summary_study_flags_its_bound(tmp_path):
    """The default summary study under contamination: the report has the section on
    the model's bound, with the rows, the figure labels the line as the assumed model's
    √CRLB, and summary_extended.csv flags the rows."""
    spec = study_spec(
        _config("contamination=outliers"),
        runner={"progress": False},
        n=[10, 30],
        replications=200,
    )
    run_pipeline(spec, tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "Misspecified rows: the bound is the model's" in report
    assert "efficiency` can exceed 1" in report
    ext = pd.read_csv(tmp_path / "summary_extended.csv")
    assert ext["misspecified"].all() and not ext["estimand_on_edge"].any()
    clean = study_spec(_config(), runner={"progress": False}, n=[10, 30], replications=200)
    run_pipeline(clean, tmp_path / "clean")
    assert "Misspecified" not in (tmp_path / "clean" / "report.md").read_text()
    assert not pd.read_csv(tmp_path / "clean" / "summary_extended.csv")["misspecified"].any()


def test_map_coordinate_ascent_cap_is_not_convergence(monkeypatch, rng):
    """The normal MAP with priors on both parameters iterates; a replicate that reaches
    the sweep cap is a failure with a reason, not a converged estimate."""
    fam = get_family("normal")
    spec = {
        "kind": "map",
        "prior": {
            "mu": {"dist": "normal", "mean": 0.0, "var": 1.0},
            "sigma2": {"dist": "invgamma", "shape": 3.0, "scale": 2.0},
        },
    }
    x = fam.sample(rng, np.array([1.0, 2.0]), (5, 8))
    assert make_estimator("map", spec, fam).fit(x).converged_.all()
    monkeypatch.setattr(priors, "MAX_SWEEPS", 2)
    values, se, ok, reason = fit_safely(make_estimator("map", spec, fam), x)
    assert not ok.any() and set(reason) == {"iteration cap reached before convergence"}
