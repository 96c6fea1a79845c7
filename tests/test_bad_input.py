"""Bad input is refused (issue 4, item 6): one line, non-zero exit, no traceback,
no result files.

Every case runs the real command line: most in-process through
:func:`mlesim.__main__.main` with ``sys.argv`` set (fast), a handful as real
``python -m mlesim`` subprocesses. For each case the test checks that

- the exit status is non-zero;
- stderr holds exactly one non-empty line, ``mlesim: error: <key>: ...``, naming the
  offending key, and the text says what is allowed (a per-case pattern);
- neither stderr nor stdout contains a traceback;
- nothing is left in the temporary working directory: no run dir, no results.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_in_process

PREFIX = "mlesim: error: "
RESULT_NAMES = {
    "replicates.parquet",
    "summary.csv",
    "summary_extended.csv",
    "failures.csv",
    "report.md",
}
RESULT_DIRS = {"figures", "chunks"}

#: (id, overrides, offending key, pattern of what is allowed). ``{tmp}`` in an
#: override is the test's temporary working directory.
CASES: list[tuple[str, list[str], str, str]] = [
    # unknown keys
    ("unknown-top-key", ["foo=1"], "foo", r"unknown key; allowed: name, study, seed"),
    ("unknown-top-key-added", ["+foo=1"], "foo", r"unknown key; allowed: name, study, seed"),
    ("unknown-nested-key", ["runner.nope=1"], "runner.nope", r"allowed: n_jobs, backend"),
    (
        "unknown-param-key",
        ["truth.params.q=1"],
        "truth.params.q",
        r"allowed: mu, sigma2, or add a new one as \+truth\.params\.q=",
    ),
    ("delete-missing-key", ["~nosuch"], "nosuch", r"no such key to delete"),
    # wrong types (Hydra's schema)
    ("seed-not-int", ["seed=abc"], "seed", r"must be an integer, got 'abc'"),
    ("confidence-not-number", ["confidence=high"], "confidence", r"must be a number, got 'high'"),
    (
        "n-jobs-not-int",
        ["runner.n_jobs=two"],
        "runner.n_jobs",
        r"must be auto or an integer >= 1 or -1, got 'two'",
    ),
    ("resume-not-bool", ["runner.resume=maybe"], "runner.resume", r"must be true or false"),
    ("family-not-string", ["truth.family=[1]"], "truth.family", r"must be a string, got \[1\]"),
    ("params-not-mapping", ["truth.params=abc"], "truth.params", r"must be a mapping"),
    ("runner-not-mapping", ["runner=abc"], "runner", r"mapping with keys n_jobs, backend"),
    ("design-not-mapping", ["design=abc"], "design", r"must be a mapping"),
    ("name-null", ["name=null"], "name", r"must not be null; allowed: a string"),
    ("delete-typed-key", ["~runner.backend"], "runner.backend", r"cannot be deleted; allowed"),
    ("delete-required-key", ["~seed"], "seed", r"required; allowed: a value such as 2026"),
    # wrong types and ranges (mlesim's checks)
    ("replications-float", ["replications=1.5"], "replications", r"must be an integer >= 2"),
    ("replications-not-int", ["replications=abc"], "replications", r"must be an integer >= 2"),
    ("replications-one", ["replications=1"], "replications", r"must be an integer >= 2"),
    ("replications-zero", ["replications=0"], "replications", r"must be an integer >= 2"),
    ("seed-negative", ["seed=-1"], "seed", r"must be an integer >= 0"),
    ("n-not-list", ["n=abc"], "n", r"non-empty list of integers >= 1"),
    ("n-empty", ["n=[]"], "n", r"non-empty list of integers >= 1"),
    ("n-item-not-int", ["n=[10,abc]"], "n", r"must be an integer >= 1, got 'abc'"),
    ("n-zero", ["n=[0,10]"], "n", r"must be an integer >= 1, got 0"),
    ("n-negative", ["n=[-5]"], "n", r"must be an integer >= 1, got -5"),
    ("n-duplicate", ["n=[10,10]"], "n", r"must be distinct"),
    ("confidence-zero", ["confidence=0"], "confidence", r"in \(0, 1\)"),
    ("confidence-one", ["confidence=1"], "confidence", r"in \(0, 1\)"),
    ("confidence-above-one", ["confidence=1.5"], "confidence", r"in \(0, 1\)"),
    # the truth: family and parameters
    ("sigma2-zero", ["truth.params.sigma2=0"], "truth.params.sigma2", r"must be > 0"),
    ("sigma2-negative", ["truth.params.sigma2=-1"], "truth.params.sigma2", r"must be > 0"),
    (
        "p-above-one",
        ["truth=bernoulli", "truth.params.p=1.5"],
        "truth.params.p",
        r"must be in \(0, 1\)",
    ),
    (
        "lam-negative",
        ["truth=poisson", "truth.params.lam=-2"],
        "truth.params.lam",
        r"must be > 0",
    ),
    (
        "p-wrong-type",
        ["truth=bernoulli", "truth.params.p=abc"],
        "truth.params.p",
        r"must be in \(0, 1\).*got 'abc'",
    ),
    ("param-unknown", ["+truth.params.q=1"], "truth.params.q", r"allowed: mu, sigma2"),
    ("param-missing", ["~truth.params.mu"], "truth.params.mu", r"missing; normal needs mu, sigma2"),
    (
        "truth-group-unknown",
        ["truth=nosuch"],
        "truth",
        r"unknown option 'nosuch'; allowed:.*normal",
    ),
    ("family-unknown", ["truth.family=nosuch"], "truth.family", r"allowed:.*normal"),
    ("model-unknown", ["model=nosuch"], "model", r"unknown family 'nosuch'; allowed:.*normal"),
    ("estimand-unknown", ["estimand=nosuch"], "estimand", r"allowed: auto, truth, pseudo_true"),
    (
        "interpolation-missing",
        ["truth.params.mu=${nosuch}"],
        "truth.params.mu",
        r"cannot resolve it \(.*'nosuch'.*\); allowed: a value, or \$\{key\}",
    ),
    # estimators
    ("kind-unknown", ["estimators.mle.kind=nosuch"], "estimators.mle.kind", r"allowed:.*mle"),
    ("kind-missing", ["~estimators.mle.kind"], "estimators.mle.kind", r"missing; allowed:.*mle"),
    ("kind-not-name", ["estimators.mle.kind=[1]"], "estimators.mle.kind", r"allowed:.*mle"),
    ("estimators-empty", ["~estimators.mle"], "estimators", r"at least one label.*kinds:.*mle"),
    ("estimators-deleted", ["~estimators"], "estimators", r"allowed: a mapping label"),
    ("estimator-not-mapping", ["estimators.mle=abc"], "estimators.mle", r"allowed kinds:.*mle"),
    (
        "estimator-option-unknown",
        ["+estimators.mle.bogus=1"],
        "estimators.mle.bogus",
        r"unknown option; allowed: kind, fixed",
    ),
    (
        "estimator-fixed-not-mapping",
        ["+estimators.mle.fixed=abc"],
        "estimators.mle.fixed",
        r"must be a mapping parameter -> value",
    ),
    (
        "estimator-fixed-out-of-domain",
        ["+estimators.mle.fixed.sigma2=-1"],
        "estimators.mle.fixed.sigma2",
        r"must be > 0",
    ),
    (
        "prior-hyper-negative",
        ["experiment=variance_bias", "estimators.map.prior.sigma2.shape=-1"],
        "estimators.map.prior.sigma2.shape",
        r"must be a number > 0",
    ),
    (
        "prior-hyper-wrong-type",
        ["experiment=variance_bias", "estimators.map.prior.sigma2.scale=abc"],
        "estimators.map.prior.sigma2.scale",
        r"must be a number > 0, got 'abc'",
    ),
    (
        "prior-not-conjugate",
        ["experiment=variance_bias", "estimators.map.prior.sigma2.dist=beta"],
        "estimators.map.prior.sigma2.dist",
        r"a beta prior has support \[0, 1\], which does not cover sigma2's domain",
    ),
    (
        "prior-not-mapping",
        ["experiment=variance_bias", "estimators.map.prior=abc"],
        "estimators.map.prior",
        r"must be a mapping parameter -> \{dist",
    ),
    (
        "prior-entry-not-mapping",
        ["experiment=variance_bias", "estimators.map.prior.sigma2=abc"],
        "estimators.map.prior.sigma2",
        r"must be a mapping \{dist",
    ),
    # runner
    ("backend-unknown", ["runner.backend=spark"], "runner.backend", r"allowed: loky"),
    ("n-jobs-zero", ["runner.n_jobs=0"], "runner.n_jobs", r"auto or an integer >= 1 or -1"),
    ("n-jobs-negative", ["runner.n_jobs=-3"], "runner.n_jobs", r"auto or an integer >= 1 or -1"),
    ("chunk-size-zero", ["runner.chunk_size=0"], "runner.chunk_size", r"integer >= 1"),
    ("max-chunk-mb-negative", ["runner.max_chunk_mb=-1"], "runner.max_chunk_mb", r"> 0"),
    ("dask-workers-zero", ["runner.dask.n_workers=0"], "runner.dask.n_workers", r">= 1"),
    ("stopping-measure-unknown", ["stopping.measure=nosuch"], "stopping.measure", r"allowed: bias"),
    # design
    (
        "design-unknown-key",
        ["+design.truth.params.nope=[1,2]"],
        "design.truth.params.nope",
        r"allowed:.*truth\.params\.mu",
    ),
    ("design-empty", ["+design.truth.params.mu=[]"], "design.truth.params.mu", r"non-empty list"),
    ("design-not-list", ["+design.truth.params.mu=5"], "design.truth.params.mu", r"non-empty list"),
    ("design-fixed-key", ["+design.seed=[1,2]"], "design.seed", r"allowed: truth\.\*"),
    (
        "design-value-wrong-type",
        ["+design.truth.params.mu=[a,b]"],
        "design.truth.params.mu",
        r"finite real number",
    ),
    (
        "design-value-out-of-domain",
        ["+design.truth.params.sigma2=[1,-1]"],
        "design.truth.params.sigma2",
        r"must be > 0",
    ),
    # experiment, study, analysis, contamination
    ("experiment-unknown", ["experiment=nosuch"], "experiment", r"allowed:.*variance_bias"),
    ("study-unknown", ["study=nosuch"], "study", r"allowed: .*summary"),
    (
        "analysis-option-unknown",
        ["experiment=consistency", "+analysis.nosuch=1"],
        "analysis.nosuch",
        r"allowed: .*delta",
    ),
    (
        "contamination-fraction-one",
        ["contamination=outliers", "contamination.fraction=1.0"],
        "contamination.fraction",
        r"in \[0, 1\)",
    ),
    (
        "contamination-unknown",
        ["contamination=nosuch"],
        "contamination",
        r"allowed: gross_errors, outliers",
    ),
    # the command line itself
    ("override-unparsable", ["n=[1,2"], "n", r"cannot parse override.*allowed: key=value"),
    ("override-already-set", ["+n=5"], "n", r"already set; override it as n=<value>"),
    # the run directory
    (
        "run-dir-in-proc",
        ["hydra.run.dir=/proc/mlesim_cannot_write"],
        "hydra.run.dir",
        r"cannot create '/proc/mlesim_cannot_write': .*allowed: a directory you can write",
    ),
    (
        "run-dir-under-a-file",
        ["hydra.run.dir={tmp}/afile/run"],
        "hydra.run.dir",
        r"cannot create '.*/afile/run': Not a directory",
    ),
    (
        "sweep-dir-in-proc",
        ["-m", "hydra.sweep.dir=/proc/mlesim_cannot_write", "replications=2,3"],
        "hydra.sweep.dir",
        r"cannot create '/proc/mlesim_cannot_write': ",
    ),
    (
        "run-dir-is-a-file",
        ["hydra.run.dir={tmp}/afile"],
        "hydra.run.dir",
        r"cannot create '.*/afile': it exists and is not a directory",
    ),
    # issue 7: values a study would silently ignore or crash on after the simulation
    (  # a command-line value replaces the design factor, and is checked as any other
        "design-key-set-directly",
        ["experiment=coin_flip", "truth.params.p=1.2"],
        "truth.params.p",
        r"must be in \(0, 1\) for bernoulli, got 1\.2",
    ),
    (
        "study-needs-kind",
        ["experiment=coin_flip", "~estimators.mle"],
        "estimators",
        r"needs an estimator of kind mle; .* add one, e\.g\. \+estimators\.mle=",
    ),
    (
        "mean-without-a-mean",
        ["truth=student_t", "truth.params.nu=1", "~estimators.mle", "+estimators.m={kind:mean}"],
        "estimators.m.kind",
        r"needs the data's mean, which does not exist .* allowed: .*median",
    ),
    # issue 13: what a fuzz campaign broke (one line, not a traceback)
    (
        "fraction-without-contamination",
        ["contamination.fraction=0.1"],
        "contamination",
        r"choose the group first, e\.g\. contamination=outliers",
    ),
    ("max-chunk-mb-inf", ["runner.max_chunk_mb=inf"], "runner.max_chunk_mb", r"finite number"),
    (
        "histogram-n-not-a-list",
        ["experiment=coin_flip", "analysis.histogram_n=5"],
        "analysis.histogram_n",
        r"allowed: e\.g\. \[3, 10, 100\]",
    ),
    ("run-dir-empty", ["hydra.run.dir="], "hydra.run.dir", r"allowed: a directory"),
    (
        "lam-overflows",
        ["truth=poisson", "truth.params.lam=1e300"],
        "truth.params",
        r"allowed: values whose draws stay within floating point",
    ),
    (
        "size-underflows",
        ["truth=negative_binomial", "truth.params.size=1e-300"],
        "truth.params",
        r"allowed: values whose draws",
    ),
    (
        "rate-gives-inf-draws",
        ["truth=exponential", "truth.params.rate=1e-320"],
        "truth.params",
        r"draws are not finite",
    ),
    (
        "too-many-replications",
        ["replications=1000000000000000"],
        "replications",
        r"chunks, more than mlesim plans .* allowed: fewer",
    ),
    ("n-beyond-memory", ["n=[1000000000]"], "n", r"allowed: n up to about"),
    (
        "dask-address-unreachable",
        ["runner.backend=dask", "runner.dask.address=tcp://127.0.0.1:1", "n=[5]"],
        "runner.dask.address",
        r"cannot reach a dask scheduler .* within 10 s .* allowed: the address of a running",
    ),
    (
        "label-too-long",
        ["+estimators." + "a" * 300 + "={kind:mean}"],
        "overrides",
        r"too long to be a config name .* allowed: labels of a few words",
    ),
    (
        "group-set-to-null",
        ["contamination=null"],
        "overrides",
        r"allowed: a group option such as contamination=outliers",
    ),
]

#: run as real subprocesses too (each costs ~1.5 s)
SUBPROCESS_IDS = ("unknown-top-key", "sigma2-zero", "override-unparsable", "run-dir-under-a-file")


def _prepare(tmp: Path, overrides: list[str]) -> tuple[list[str], set[str]]:
    """The overrides with ``{tmp}`` filled in and a run dir under ``tmp`` unless one is
    given; and the names that may exist in ``tmp`` afterwards (what the test made)."""
    args = [o.replace("{tmp}", str(tmp)) for o in overrides]
    made = set()
    if any("afile" in a for a in args):
        (tmp / "afile").write_text("a regular file, not a directory\n")
        made.add("afile")
    if not any(a.startswith(("hydra.run.dir=", "hydra.sweep.dir=")) for a in args):
        args.append(f"hydra.run.dir={tmp / 'run'}")
    return args, made


def run_subprocess(args: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run ``python -m mlesim <args>`` with ``cwd`` as working directory."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["MPLBACKEND"] = "Agg"
    proc = subprocess.run(
        [sys.executable, "-m", "mlesim", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, proc.stdout, proc.stderr


def assert_refused(
    code: int, out: str, err: str, key: str, allowed: str, tmp: Path, made: set[str]
) -> None:
    """The checks every bad input must pass (see the module docstring)."""
    assert code != 0, f"exit status 0; stderr: {err!r}"
    assert "Traceback" not in err and "Traceback" not in out, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {lines}"
    line = lines[0]
    assert line.startswith(f"{PREFIX}{key}: "), f"does not name {key!r}: {line}"
    assert re.search(allowed, line[len(PREFIX) + len(key) + 2 :]), (
        f"does not say what is allowed ({allowed!r}): {line}"
    )
    left = {p.name for p in tmp.iterdir()}
    assert left == made, f"left behind in the working directory: {sorted(left - made)}"
    written = [p for p in tmp.rglob("*") if p.name in RESULT_NAMES | RESULT_DIRS]
    assert not written, f"result files written: {written}"


@pytest.mark.parametrize(
    ("overrides", "key", "allowed"),
    [pytest.param(o, k, a, id=i) for i, o, k, a in CASES],
)
def test_bad_input_is_refused_in_one_line(overrides, key, allowed, tmp_path, monkeypatch, capsys):
    args, made = _prepare(tmp_path, overrides)
    code, out, err = run_in_process(args, tmp_path, monkeypatch, capsys)
    assert_refused(code, out, err, key, allowed, tmp_path, made)


@pytest.mark.parametrize(
    ("overrides", "key", "allowed"),
    [pytest.param(o, k, a, id=i) for i, o, k, a in CASES if i in SUBPROCESS_IDS],
)
def test_bad_input_is_refused_by_the_real_command(overrides, key, allowed, tmp_path):
    args, made = _prepare(tmp_path, overrides)
    code, out, err = run_subprocess(args, tmp_path)
    assert code == 2, err
    assert_refused(code, out, err, key, allowed, tmp_path, made)


def test_case_table_is_large_and_distinct():
    assert len(CASES) >= 25
    assert len({c[0] for c in CASES}) == len(CASES)
    assert set(SUBPROCESS_IDS) <= {c[0] for c in CASES}


def _read_only_dir(tmp: Path) -> Path | None:
    """A directory this process cannot write into, or None (root writes anywhere)."""
    ro = tmp / "readonly"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        (ro / "probe").mkdir()
    except PermissionError:
        return ro
    (ro / "probe").rmdir()
    return None


def test_run_dir_in_a_read_only_directory_is_refused(tmp_path, monkeypatch, capsys):
    ro = _read_only_dir(tmp_path)
    if ro is None:  # running as root: a path under a regular file can never be created
        (tmp_path / "afile").write_text("x\n")
        target, made, reason = tmp_path / "afile" / "run", {"readonly", "afile"}, "Not a directory"
    else:
        target, made, reason = ro / "run", {"readonly"}, "Permission denied"
    try:
        code, out, err = run_in_process([f"hydra.run.dir={target}"], tmp_path, monkeypatch, capsys)
    finally:
        (tmp_path / "readonly").chmod(0o700)
    assert_refused(code, out, err, "hydra.run.dir", f"cannot create .*: {reason}", tmp_path, made)
    assert not any((tmp_path / "readonly").iterdir())


def test_failed_validation_keeps_the_users_directories(tmp_path, monkeypatch, capsys):
    """The empty run dir Hydra made is removed, but not the directory above it."""
    parent = tmp_path / "mine"
    parent.mkdir()
    code, _, err = run_in_process(
        ["seed=-1", f"hydra.run.dir={parent / 'run'}"], tmp_path, monkeypatch, capsys
    )
    assert code == 2 and err.startswith(f"{PREFIX}seed: ")
    assert parent.is_dir() and not any(parent.iterdir())


def test_failed_validation_in_default_layout_leaves_no_empty_dirs(tmp_path, monkeypatch, capsys):
    """With the default run dir, experiments/<name>/<timestamp> goes, and
    experiments/<name>/ with it when it is left empty."""
    code, _, err = run_in_process(["seed=-1", "name=badrun"], tmp_path, monkeypatch, capsys)
    assert code == 2 and err.startswith(f"{PREFIX}seed: ")
    assert not (tmp_path / "experiments").exists()  # not even an empty experiments/


def test_valid_run_succeeds_without_an_error_line(tmp_path, monkeypatch, capsys):
    outdir = tmp_path / "ok"
    args = ["experiment=variance_bias", "replications=20", "n=[2,10]", f"hydra.run.dir={outdir}"]
    code, out, err = run_in_process(args, tmp_path, monkeypatch, capsys)
    assert code == 0, err
    assert PREFIX not in err and "Traceback" not in err + out
    assert (outdir / "summary.csv").is_file() and (outdir / "replicates.parquet").is_file()
