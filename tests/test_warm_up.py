"""Before helper processes are forked, the main process imports what a Newton-fitted
family's first chunk would import (mlesim.work.warm_up), so that the helpers inherit it;
a closed-form study imports no scipy."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
from mlesim.api import compose_config
from mlesim.engine import plan
from mlesim.study import validate
from mlesim.work import warm_up
spec = validate(compose_config(None, {overrides!r}))
before = "scipy.special" in sys.modules
warm_up(plan(spec))
print(before, "scipy.special" in sys.modules)
"""


@pytest.mark.parametrize(
    ("overrides", "imported"),
    [
        (["truth=student_t", "n=[20]", "replications=10"], True),
        (["truth=gamma", "n=[20]", "replications=10"], True),
        (["experiment=variance_bias", "n=[5]", "replications=10"], False),
    ],
)
def test_warm_up_imports_scipy_special_for_newton_fits_only(overrides, imported):
    code = PROBE.format(overrides=overrides)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False", str(imported)]
