"""Hydra composes the configuration once per command where nothing can set
``hydra.mode`` (its first composition, ``Hydra.get_mode``, only reads it), and twice
as before where something could."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from conftest import run_in_process
from hydra._internal.hydra import Hydra

import mlesim.__main__ as cli


def plain_hydra(*providers: str) -> SimpleNamespace:
    """A stand-in for Hydra with config sources of these providers."""
    sources = [SimpleNamespace(provider=p) for p in ("hydra", "main", "schema", *providers)]
    return SimpleNamespace(config_loader=SimpleNamespace(get_sources=lambda: sources))


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
    assert Hydra.get_mode.__qualname__.startswith("Hydra.")


@pytest.mark.parametrize(
    "args",
    [["-m", "n=[5],[10]"], ["--multirun"], ["--mu"], ["--config-dir", "x"], ["-cd", "x"]]
    + [["-cn", "other"], ["--config-name=other"]],
)
def test_hydras_own_way_where_a_flag_could_set_the_mode(args):
    own = Hydra.get_mode
    with cli._one_composition(args):
        assert Hydra.get_mode is own


@pytest.mark.parametrize(
    "override",
    [
        "hydra.mode=MULTIRUN",
        "+hydra.mode=RUN",
        "++hydra.mode=RUN",
        "hydra={mode:MULTIRUN}",
        "+hydra={run:{dir:x},mode:MULTIRUN}",
        "hydra = {mode: RUN}",
        "hydra.searchpath=[file://x]",
        "hydra/launcher=slurm",
    ],
)
def test_hydras_own_way_where_an_override_could_set_the_mode(override):
    assert cli._mode_unset(plain_hydra(), ["n=[5]"])
    assert not cli._mode_unset(plain_hydra(), ["n=[5]", override])


def test_hydras_own_way_where_a_plugin_adds_a_config_source():
    """A search-path plugin installed in the environment adds configs that may set the
    mode, whatever the command line says."""
    assert not cli._mode_unset(plain_hydra("my-plugin"), ["n=[5]"])
    assert not cli._mode_unset(plain_hydra("command-line"), [])
    assert not cli._mode_unset(SimpleNamespace(), [])  # not Hydra 1.3's: ask it


@pytest.mark.parametrize("line", ["hydra:\n  mode: MULTIRUN\n", '{"mode": RUN}\n'])
def test_hydras_own_way_where_a_config_file_sets_the_mode(tmp_path, monkeypatch, line):
    assert cli._mode_unset(plain_hydra(), ["experiment=variance_bias"])  # (none in mlesim's)
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "sweep.yaml").write_text(line)
    monkeypatch.setattr(cli, "config_dir", lambda: str(tmp_path))
    assert not cli._mode_unset(plain_hydra(), ["experiment=sweep"])


def test_a_mode_set_in_a_whole_hydra_value_still_sweeps(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "sweep"
    args = ["hydra={mode:MULTIRUN}", "n=[5],[10]", "replications=20", "runner.n_jobs=1"]
    args += ["runner.progress=false", f"hydra.sweep.dir={sweep}"]
    code, _, err = run_in_process(args, tmp_path, monkeypatch, capsys)
    assert code == 0, err
    assert (sweep / "0_study" / "summary.csv").is_file()
    assert (sweep / "1_study" / "summary.csv").is_file()
