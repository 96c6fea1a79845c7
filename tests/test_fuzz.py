"""A fuzz test of the command line's contract (issue 13): for any combination of good and
bad overrides, ``mlesim`` either exits 0 with complete results, or exits 2 with exactly
one line ``mlesim: error: <key>: ...``, no traceback and no result files. Hypothesis draws
the combinations from a pool of keys and values (derandomized, so the examples are the
same on every run; bounded to keep the suite fast)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_bad_input import PREFIX, RESULT_DIRS, RESULT_NAMES, run_in_process

#: key → values, good and bad, including the ones a fuzz campaign broke
POOL = {
    "experiment": ["variance_bias", "coin_flip", "consistency", "nosuch"],
    "truth": ["normal", "poisson", "student_t", "negative_binomial", "exponential", "nope"],
    "truth.params.lam": ["2", "1e300", "-1", "x"],
    "model": ["null", "student_t", "laplace", "poisson"],
    "n": ["[5,10]", "[1]", "[0]", "[5,5]", "abc"],
    "estimand": ["auto", "truth", "pseudo_true", "bogus"],
    "confidence": ["0.9", "1.5", "0"],
    "compare": ["own", "common", "all"],
    "runner.max_chunk_mb": ["64", "inf", "-1"],
    "runner.chunk_size": ["7", "0"],
    "+estimators.med": ["{kind:median}", "{kind:nosuch}", "{_target_:nosuch.f,params:[mu]}"],
    "+design.confidence": ["[0.5,0.95]", "[0.5,1.5]", "[0,0.0]"],
    "contamination": ["null", "outliers"],
    "contamination.fraction": ["0.1", "2"],
}


@st.composite
def overrides(draw) -> list[str]:
    keys = draw(st.lists(st.sampled_from(sorted(POOL)), min_size=1, max_size=4, unique=True))
    return [f"{k}={draw(st.sampled_from(POOL[k]))}" for k in keys]


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(args=overrides())
def test_the_command_line_contract_holds(args, monkeypatch, capsys):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = tmp / "run"
        argv = [*args, "replications=12", "runner.progress=false", f"hydra.run.dir={run}"]
        code, out, err = run_in_process(argv, tmp, monkeypatch, capsys)
        assert "Traceback" not in err and "Traceback" not in out, (args, err[-2000:])
        if code == 0:
            for name in ("summary.csv", "replicates.parquet", "report.md", "failures.csv"):
                assert (run / name).is_file(), (args, name)
            return
        assert code == 2, (args, code, err[-2000:])
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(PREFIX), (args, lines)
        written = [p for p in tmp.rglob("*") if p.name in RESULT_NAMES | RESULT_DIRS]
        assert not written, (args, written)
