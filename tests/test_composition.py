"""Hydra composes the configuration once per command where nothing can set
``hydra.mode`` (its first composition, ``Hydra.get_mode``, only reads it), and twice
as before where something could."""

from __future__ import annotations

import pytest
from conftest import run_in_process
from hydra._internal.hydra import Hydra

import mlesim.__main__ as cli


def test_a_plain_run_composes_once(tmp_path, monkeypatch, capsys):
    calls = []
    compose = Hydra.compose_config

    def counted(self, *args, **kwargs):
        calls.append(kwargs.get("run_mode"))
        return compose(self, *args, **kwargs)

    monkeypatch.setattr(Hydra, "compose_config", counted)
    run = tmp_path / "run"
    args = ["n=[5]", "replications=20", "runner.progress=false", f"hydra.run.dir={run}"]
    code, _, err = run_in_process(args, tmp_path, monkeypatch, capsys)
    assert code == 0, err
    assert len(calls) == 1 and (run / "summary.csv").is_file()
    assert Hydra.get_mode is not None and Hydra.get_mode.__name__ == "get_mode"  # restored


@pytest.mark.parametrize(
    "args",
    [
        ["-m", "n=[5],[10]"],
        ["--multirun"],
        ["hydra.mode=MULTIRUN"],
        ["+hydra.mode=RUN"],
        ["--config-dir", "elsewhere"],
        ["-cd", "elsewhere"],
        ["hydra.searchpath=[file://x]"],
        ["hydra/launcher=slurm"],
    ],
)
def test_hydras_own_way_where_an_argument_could_set_the_mode(args):
    own = Hydra.get_mode
    with cli._one_composition(args):
        assert Hydra.get_mode is own


def test_hydras_own_way_where_a_config_file_sets_the_mode(tmp_path, monkeypatch):
    own = Hydra.get_mode
    with cli._one_composition(["model=normal", "experiment=variance_bias"]):
        assert Hydra.get_mode is not own  # (mlesim's configs set no mode: skipped)
        assert Hydra.get_mode(None, "config", []) is None
    assert Hydra.get_mode is own
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "sweep.yaml").write_text("hydra:\n  mode: MULTIRUN\n")
    monkeypatch.setattr(cli, "config_dir", lambda: str(tmp_path))
    with cli._one_composition(["experiment=sweep"]):
        assert Hydra.get_mode is own
