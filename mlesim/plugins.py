"""The user's own estimators and data generators, named by Hydra's ``_target_``.

An estimator spec ``{_target_: module.attr, params: [names], vectorized: true, **kwargs}``
names either

- a callable ``f(data, **kwargs)``: ``data`` is the chunk's data, replicate axis first —
  for i.i.d. data one array of shape (R, n), for a generator with several fields the
  mapping of its arrays — and it returns estimates of shape (R,) or (R, k), a tuple
  ``(estimates, se)``, or a mapping with ``estimate`` and optional ``se`` and
  ``converged``; with ``vectorized: false`` it gets one data set (shape (n,)) at a time
  and mlesim loops over the chunk; or
- a subclass of :class:`mlesim.estimators.Estimator`, built with the model and the
  kwargs and fitted like the built-in ones.

A raise, a non-finite value or a wrong shape in one replicate fails that replicate with
its reason; a wrong shape for every replicate of a chunk is a mistake in the plugin and
stops the run with one line naming the key (:class:`PluginContractError`).

A truth ``{_target_: module.sampler, params: {...}}`` is a data generator called as
``sampler(rng, size=(R, n), **params)``, returning an array of shape (R, n) or a mapping
of arrays with the replicate axis first. It has no family, so its true values come from
an ``estimand`` mapping and the theory columns (crlb, efficiency) are NaN.

Modules are imported from the working directory of the run (recorded in the compiled
study and put on ``sys.path`` in every worker) or from the installed packages; a
module's source is fingerprinted into the chunk checkpoints, so an edited plugin is
recomputed on resume.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import inspect
import sys
import tokenize
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

from mlesim.errors import ConfigError
from mlesim.families.base import Domain, Family

TARGET = "_target_"
#: longest failure reason kept (an exception message can be long)
MAX_REASON = 200
#: keys of an estimator plugin spec that are mlesim's, not the callable's
ESTIMATOR_KEYS = (TARGET, "params", "vectorized")


class ShapeError(ValueError):
    """A plugin's output does not have the shape its spec promises."""


def raised(err: BaseException) -> str:
    """Reason for a call that raised: ``'raised <Type>: <first line of the message>'``."""
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"raised {type(err).__name__}: {first}"[:MAX_REASON]


class PluginContractError(ConfigError):
    """A plugin broke its contract for a whole chunk (e.g. a wrong output shape): the
    run stops with one line naming the key, instead of failing every replicate."""


#: prefix of the name of an object handed over in Python (``mlesim.run`` in a notebook)
LOCAL = "local:"
#: objects handed over in this process, by their ``local:`` name (filled by
#: :func:`register_local` and, in a worker, from the scenario that carries them)
_LOCAL_OBJECTS: dict[str, Any] = {}


def register_local(obj: Any) -> str:
    """Give a Python object (a function defined in a notebook, say) a ``local:`` name that
    :func:`resolve` finds in this process; returns the name."""
    label = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"
    name = f"{LOCAL}{label}#{id(obj):x}"  # unique: two lambdas or closures share a qualname
    _LOCAL_OBJECTS[name] = obj
    return name


def local_objects(names: list[str]) -> dict[str, Any]:
    """The registered objects of ``names`` that are ``local:`` names (to carry to workers)."""
    return {n: _LOCAL_OBJECTS[n] for n in names if n.startswith(LOCAL) and n in _LOCAL_OBJECTS}


def adopt(objects: Mapping[str, Any]) -> None:
    """Register objects a scenario carried into this (worker) process."""
    _LOCAL_OBJECTS.update(objects)


def add_search_path(path: str | None) -> None:
    """Put ``path`` (the run's working directory) first on ``sys.path`` if absent."""
    if path and path not in sys.path:
        sys.path.insert(0, path)


def resolve(target: Any, key: str, search_path: str | None = None) -> Any:
    """The object named by ``target`` (``"package.module.attr"``).

    Raises
    ------
    ConfigError
        At ``key`` when ``target`` is not a dotted name or cannot be imported.
    """
    if isinstance(target, str) and target.startswith(LOCAL):
        if target not in _LOCAL_OBJECTS:
            raise ConfigError(
                key,
                f"{target[len(LOCAL) :]} was handed over in Python and is not in this process; "
                "allowed: an importable module.attr, or runner.n_jobs=1",
            )
        return _LOCAL_OBJECTS[target]
    if not isinstance(target, str) or "." not in target.strip("."):
        raise ConfigError(
            key, f"must be a dotted name module.attr, got {target!r}; allowed: e.g. mystudy.f"
        )
    add_search_path(search_path)
    module_name, _, attr = target.rpartition(".")
    try:
        return _import(module_name, attr)
    except (ImportError, AttributeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(
            key,
            f"cannot import {target!r} ({first}); allowed: a module.attr importable from the "
            "working directory or an installed package",
        ) from None


@functools.cache
def _import(module_name: str, attr: str) -> Any:
    return getattr(importlib.import_module(module_name), attr)


def targets_in(config: Any) -> list[str]:
    """Every ``_target_`` string in a (nested) configuration, in order."""
    out: list[str] = []
    if isinstance(config, Mapping):
        for k, v in config.items():
            if k == TARGET and isinstance(v, str):
                out.append(v)
            else:
                out += targets_in(v)
    elif isinstance(config, list | tuple):
        for v in config:
            out += targets_in(v)
    return out


def source_digest(target: str, search_path: str | None = None) -> str:
    """SHA-256 of the source file of ``target``'s module ('' when it has no file); for a
    ``local:`` object, of its own source code."""
    if target.startswith(LOCAL):
        obj = _LOCAL_OBJECTS.get(target)
        try:
            text = inspect.getsource(obj)
        except (TypeError, OSError, SyntaxError, tokenize.TokenError):
            # no source to read (a lambda typed at a prompt, code compiled from a string
            # whose "file" holds something else): its code object stands in
            code = getattr(obj, "__code__", None)
            text = repr(obj) if code is None else repr((code.co_code, code.co_consts))
        return hashlib.sha256(text.encode()).hexdigest()
    add_search_path(search_path)
    module_name = target.rpartition(".")[0]
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return ""
    origin = getattr(spec, "origin", None) if spec else None
    if not origin or not origin.endswith(".py"):
        return ""
    with open(origin, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


# ---------------------------------------------------------------- data generators
class Generator:
    """A user's data generator ``f(rng, size=(R, n), **params)`` standing in for a family
    as the truth (see the module docstring). Picklable: it holds names, not objects."""

    discrete = False

    def __init__(self, target: str, params: Mapping[str, Any], search_path: str | None = None):
        self.target = target
        self.params = dict(params or {})
        self.search_path = search_path
        self.name = target

    def sample(self, rng: np.random.Generator, theta: Any, size: tuple) -> Any:
        """Data of shape ``size`` = (R, n): an array, or a mapping of arrays."""
        func = resolve(self.target, "truth._target_", self.search_path)
        return func(rng, size=size, **self.params)

    def __repr__(self) -> str:
        return f"Generator({self.target}, {self.params})"


class FreeParameters(Family):
    """The parameter names of an explicit ``estimand`` mapping, for a study whose truth is
    a generator and which assumes no model family: no density, no information."""

    name = "none"
    params: tuple[str, ...] = ()
    domains: ClassVar[dict[str, Domain]] = {}

    def __init__(self, names: tuple[str, ...]):
        self.params = tuple(names)
        self.domains = {name: Domain("real") for name in self.params}

    def fisher(self, theta: np.ndarray) -> np.ndarray:
        theta = np.asarray(theta, dtype=float)
        return np.full(theta.shape[:-1] + (self.p, self.p), np.nan)

    def __repr__(self) -> str:
        return f"FreeParameters({self.params})"


# ---------------------------------------------------------------------- estimators
def as_outputs(out: Any) -> tuple[Any, Any, Any]:
    """(estimate, se, converged) from what a plugin returned (see the module docstring)."""
    if isinstance(out, Mapping):
        if "estimate" not in out:
            raise ShapeError(f"returned a mapping without 'estimate' (keys {sorted(out)})")
        return out["estimate"], out.get("se"), out.get("converged")
    if isinstance(out, tuple) and len(out) == 2:
        return out[0], out[1], None
    return out, None, None


def as_columns(values: Any, rows: int, k: int, what: str) -> np.ndarray:
    """``values`` as shape (rows, k): accepts (rows, k), and (rows,) when k == 1.

    Raises :class:`ShapeError` naming the shape otherwise.
    """
    a = np.asarray(values, dtype=float)
    if a.shape == (rows, k):
        return a
    if k == 1 and a.shape == (rows,):
        return a[:, None]
    want = f"({rows},) or ({rows}, 1)" if k == 1 else f"({rows}, {k})"
    raise ShapeError(f"{what} has shape {a.shape}, expected {want}")


def writable(data: Any) -> Any:
    """``data`` (an array or a mapping of arrays) with each read-only array copied: the
    engine makes a chunk's data read-only (:func:`mlesim.sufficient.freeze`), and a
    user's function or class may change what it is given (sort it in place) without
    error (:class:`mlesim.estimators.PluginEstimator`, ``Estimator.fit``)."""
    if isinstance(data, Mapping):
        return {k: writable(v) for k, v in data.items()}
    if isinstance(data, np.ndarray) and not data.flags.writeable:
        return data.copy()
    return data


def call_vectorized(
    func: Callable, data: Any, rows: int, k: int, kwargs: dict
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Call a vectorised plugin on the whole chunk.

    Returns estimates (R, k), se (R, k), converged (R,) and reason (R,) (object).
    A raise fails every replicate with its reason; a wrong shape raises
    :class:`ShapeError` (the caller turns it into a contract error).
    """
    try:
        out = func(data, **kwargs)
    except Exception as err:  # noqa: BLE001 - a plugin's raise fails the chunk's replicates
        nan = np.full((rows, k), np.nan)
        return nan, nan.copy(), np.zeros(rows, bool), np.full(rows, raised(err), object)
    est, se, conv = as_outputs(out)
    est = as_columns(est, rows, k, "the estimate")
    se = np.full((rows, k), np.nan) if se is None else as_columns(se, rows, k, "the se")
    if conv is not None and np.shape(conv) != (rows,):
        raise ShapeError(f"converged has shape {np.shape(conv)}, expected ({rows},)")
    conv = np.ones(rows, bool) if conv is None else _flags(conv)
    return est, se, conv, np.full(rows, "", dtype=object)


def _flags(values: Any) -> np.ndarray:
    """``converged`` as booleans: a bool array, or integers 0/1; anything else (strings,
    NaN) is a contract error, never silently true."""
    a = np.asarray(values)
    if a.dtype == bool:
        return a
    if np.issubdtype(a.dtype, np.integer) and np.isin(a, (0, 1)).all():
        return a.astype(bool)
    raise ShapeError(f"converged must be booleans (or 0/1), got dtype {a.dtype}")


def _one(value: Any, k: int, what: str) -> np.ndarray:
    """One data set's output (a number, or k numbers) as shape (1, k)."""
    a = np.asarray(value, dtype=float)
    if a.size == k and a.ndim <= 1:
        return a.reshape(1, k)
    raise ShapeError(f"{what} has shape {a.shape}, expected {'()' if k == 1 else f'({k},)'}")


def call_per_replicate(
    func: Callable, data: Any, rows: int, k: int, kwargs: dict
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Call a per-replicate (``vectorized: false``) plugin on each data set of the chunk.

    A raise or a wrong shape fails that replicate with its reason; when the shape is
    wrong in every replicate, :class:`ShapeError` is raised (a contract error).
    """
    est, se = np.full((rows, k), np.nan), np.full((rows, k), np.nan)
    conv = np.zeros(rows, dtype=bool)
    reason = np.full(rows, "", dtype=object)
    shape_errors = []
    for i in range(rows):  # the user asked for one data set at a time
        one = {f: v[i] for f, v in data.items()} if isinstance(data, Mapping) else data[i]
        try:
            e, s, c = as_outputs(func(one, **kwargs))
            est[i] = _one(e, k, "the estimate")
            if s is not None:
                se[i] = _one(s, k, "the se")
        except ShapeError as err:
            reason[i] = f"returned {err}"
            shape_errors.append(str(err))
            continue
        except Exception as err:  # noqa: BLE001 - a plugin's raise fails its replicate
            reason[i] = raised(err)
            continue
        conv[i] = True if c is None else bool(_flags(np.reshape(c, 1))[0])
    if rows and len(shape_errors) == rows:
        raise ShapeError(shape_errors[0])
    return est, se, conv, reason
