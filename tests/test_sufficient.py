"""A chunk's sufficient statistics (mlesim.sufficient): computed once per chunk and
shared by its estimators, with the values numpy's own mean and var give."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import study_spec

from mlesim.families import get_family
from mlesim.sufficient import freeze, mean_ss, remembered, shared_statistics
from mlesim.work import run_task


def _normal_study(n: int, replications: int, estimators: dict):
    """A study of N(0.5, 2) data of size ``n`` with these estimators."""
    truth = {"family": "normal", "params": {"mu": 0.5, "sigma2": 2.0}}
    config = {"truth": truth, "n": [n], "replications": replications, "estimators": estimators}
    return study_spec(config, {})


def _frozen(x: np.ndarray) -> np.ndarray:
    x = np.array(x, dtype=float)
    x.flags.writeable = False
    return x


def test_mean_and_ss_are_numpy_s_own():
    """Bit for bit what x.mean(axis=1) and x.var(axis=1) * n compute (the estimates of
    the normal MLE, s² and the mean did not move when they began to share them)."""
    x = np.random.default_rng(1).normal(3.0, 2.0, size=(500, 37))
    m, ss = mean_ss(x)
    np.testing.assert_array_equal(m, x.mean(axis=1))
    np.testing.assert_array_equal(ss / 37, x.var(axis=1))
    np.testing.assert_array_equal(ss / 36, x.var(axis=1, ddof=1))


@pytest.mark.parametrize("value", [0.1, -7.3, 1e300 / 3, 5e-324, 0.0, 1.0 / 3.0])
def test_a_constant_row_has_its_value_as_mean_and_no_spread(value):
    """mean() may be 1 ulp off a constant row (0.1 × 10 / 10 is not 0.1); the row's
    value and SS = 0 exactly, beside rows that are not constant."""
    x = np.vstack([np.full(10, value)] * 2 + [[value] * 9 + [value * (1 + 1e-9) + 1.0]])
    m, ss = mean_ss(x)
    assert m[0] == m[1] == value
    assert ss[0] == ss[1] == 0.0
    assert ss[2] > 0.0


def test_a_row_that_is_nearly_constant_keeps_its_spread():
    x = np.array([[1.0, np.nextafter(1.0, 2.0)] * 4])
    m, ss = mean_ss(x)
    assert ss[0] > 0.0 and m[0] == x.mean()


def test_non_finite_rows_stay_non_finite():
    x = np.array([[np.inf, np.inf], [np.inf, -np.inf], [np.nan, 1.0], [1.0, 2.0]])
    m, ss = mean_ss(x)
    assert m[0] == np.inf and np.isnan(ss[0])
    assert np.isnan(m[1]) and np.isnan(m[2])
    assert (m[3], ss[3]) == (1.5, 0.5)


def test_a_statistic_is_computed_once_per_read_only_array_in_a_scope():
    calls = []

    def count(a):
        calls.append(1)
        return a.sum()

    x = _frozen(np.arange(6.0).reshape(2, 3))
    with shared_statistics():
        assert remembered(x, "s", count) == remembered(x, "s", count) == 15.0
        assert len(calls) == 1
        remembered(x.copy(), "s", count)  # a writable copy: computed, not remembered
        remembered(x.copy(), "s", count)
        assert len(calls) == 3
        y = _frozen(x + 1)  # another array: its own statistic
        assert remembered(y, "s", count) == 21.0
    remembered(x, "s", count)  # outside a scope: computed every time
    remembered(x, "s", count)
    assert len(calls) == 6


def test_threads_do_not_see_each_other_s_statistics():
    """Each thread works its own chunk in its own scope (contextvars)."""
    x = _frozen(np.ones((2, 2)))
    seen = {}

    def work(name):
        with shared_statistics():
            seen[name] = remembered(x, "who", lambda a: name)

    threads = [threading.Thread(target=work, args=(k,)) for k in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"a": "a", "b": "b"}


def test_freeze_makes_a_chunk_s_arrays_read_only():
    """The chunk sees read-only views; the arrays themselves (a user's generator may
    refill its own buffer for the next chunk) stay writable."""
    own = np.zeros((2, 3))
    data = {"x": own, "y": np.ones(2)}
    freeze(data)
    with pytest.raises(ValueError, match="read-only"):
        data["x"][0, 0] = 1.0
    own[0, 0] = 1.0
    assert data["x"][0, 0] == 1.0 and own.flags.writeable


def test_the_shared_statistics_cannot_be_changed_by_an_estimator():
    x = _frozen(np.arange(6.0).reshape(2, 3))
    with shared_statistics():
        m, ss = mean_ss(x)
        with pytest.raises(ValueError, match="read-only"):
            m *= 0.5
        from mlesim.estimators import make_estimator

        est = make_estimator("mean", {"kind": "mean"}, get_family("normal")).fit(x)
        est.params_ *= 0.5  # its own copy
        assert mean_ss(x)[0].tolist() == [1.0, 4.0]


def test_the_normal_hessian_from_the_statistics_is_the_sum_over_observations():
    """H = [[−n/σ², −Σ(x − μ)/σ⁴], [·, n/(2σ⁴) − Σ(x − μ)²/σ⁶]], summed directly, at
    θ away from the estimates (as the MAP's curvature and the observed SE ask)."""
    rng = np.random.default_rng(4)
    x = _frozen(rng.normal(1.0, 1.5, size=(200, 12)))
    theta = np.column_stack([rng.normal(size=200), rng.uniform(0.2, 3.0, size=200)])
    mu, s2 = theta[:, :1], theta[:, 1]
    r = x - mu
    direct = np.empty((200, 2, 2))
    direct[:, 0, 0] = -12 / s2
    direct[:, 0, 1] = direct[:, 1, 0] = -r.sum(axis=1) / s2**2
    direct[:, 1, 1] = 12 / (2 * s2**2) - (r**2).sum(axis=1) / s2**3
    with shared_statistics():
        got = get_family("normal").hessian(x, theta)
    np.testing.assert_allclose(got, direct, rtol=1e-12, atol=1e-12)


def test_a_chunk_s_estimators_share_one_pass_and_give_the_unshared_values(monkeypatch):
    """In run_task the MLE, s², the mean and the MAP of a normal chunk compute x̄ and SS
    once; their estimates equal those of each estimator fitted on its own."""
    from mlesim import sufficient

    spec = _normal_study(
        7,
        50,
        {
            "mle": {"kind": "mle"},
            "s2": {"kind": "unbiased_variance"},
            "mean": {"kind": "mean"},
            "map": {
                "kind": "map",
                "prior": {"sigma2": {"dist": "invgamma", "shape": 2.0, "scale": 1.0}},
            },
        },
    )
    calls = []
    inner = sufficient._mean_ss
    monkeypatch.setattr(sufficient, "_mean_ss", lambda a: calls.append(1) or inner(a))
    from mlesim.chunks import plan
    from mlesim.work import chunk_data

    task = plan(spec)[0]
    out = run_task(task)
    assert len(calls) == 1
    scen, data = chunk_data(task)
    for e, est in enumerate(scen.estimators()):
        alone = est.fit(np.array(data["x"]))  # writable: nothing shared
        for j, name in enumerate(est.param_names_):
            rows = (out["est"] == e) & (out["param"] == scen.model.index(name))
            np.testing.assert_array_equal(out["estimate"][rows], alone.params_[:, j])
            np.testing.assert_array_equal(out["se"][rows], alone.se_[:, j])


def test_a_user_s_estimator_class_gets_writable_data_in_run_task(tmp_path, monkeypatch):
    """run_task hands mlesim's estimators the read-only chunk, a user's Estimator
    subclass (a plugin) a writable copy: sorting it in place works and changes
    nothing the other estimators see."""
    import textwrap

    (tmp_path / "sortplug.py").write_text(
        textwrap.dedent(
            """
            import numpy as np
            from mlesim.estimators import Estimator

            class SortMin(Estimator):
                kind = "sort_min"
                register = False

                @property
                def param_names_(self):
                    return ("mu",)

                def _fit(self, x):
                    x.sort(axis=1)
                    x *= 0.0  # and spoils it: nobody else may see that
                    return x[:, :1], np.full((x.shape[0], 1), np.nan), np.zeros(x.shape[0], int)
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    spec = _normal_study(6, 20, {"sm": {"_target_": "sortplug.SortMin"}, "mean": {"kind": "mean"}})
    from mlesim.chunks import plan
    from mlesim.work import chunk_data

    task = plan(spec)[0]
    out = run_task(task)
    x = chunk_data(task)[1]["x"]
    mean_rows = out["est"] == 1
    np.testing.assert_array_equal(out["estimate"][mean_rows], x.mean(axis=1))
    assert out["fail_est"].size == 0, out["fail_reason"][:1]
