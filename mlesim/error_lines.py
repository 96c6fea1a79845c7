"""One-line messages for what goes wrong before a study starts.

Hydra and OmegaConf report unknown keys, wrong types and unparsable overrides in
their own words, over several lines; an unwritable run directory surfaces as a bare
``OSError``. The functions here turn each into mlesim's single line,
``<key>: <what is wrong>; allowed: <values>``, which :mod:`mlesim.__main__` prints
after ``mlesim: error: ``.
"""

from __future__ import annotations

import re
from types import CodeType, TracebackType
from typing import Any

from omegaconf import DictConfig, ListConfig
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    ConfigTypeError,
    InterpolationResolutionError,
    OmegaConfBaseException,
    ValidationError,
)
from omegaconf.nodes import BooleanNode, EnumNode, FloatNode, IntegerNode, StringNode

#: what a typed OmegaConf node accepts, for "must be ..." messages
NODE_TYPES: dict[type, str] = {
    IntegerNode: "an integer",
    FloatNode: "a number",
    BooleanNode: "true or false",
    StringNode: "a string",
    ListConfig: "a list, e.g. [a,b]",
}

#: Hydra composition errors without a structured cause: (pattern with a ``key`` group,
#: message); ``{key}`` in the message is filled in
COMPOSITION_MESSAGES: tuple[tuple[str, str], ...] = (
    (
        r"Could not delete from config\. '(?P<key>[^']+)' does not exist",
        "no such key to delete; delete only keys the config has (~key)",
    ),
    (
        r"Could not append to config\. An item is already at '(?P<key>[^']+)'",
        "already set; override it as {key}=<value> (without '+')",
    ),
    (
        r"(?P<key>\S+) appears more than once in the final defaults list",
        "chosen twice; choose one option as {key}=<option> (without '+')",
    ),
    (
        r"Could not override '(?P<key>[^']+)'\. No match in the defaults list",
        "not a config group here; allowed: a group of the defaults list in conf/config.yaml",
    ),
)


def _show(value: Any) -> str:
    """``repr`` of a plain value; containers converted from OmegaConf first."""
    if isinstance(value, DictConfig | ListConfig):
        from omegaconf import OmegaConf

        value = OmegaConf.to_container(value)
    return repr(value)


def _allowed_keys(parent: Any) -> list[str]:
    """Keys of an OmegaConf mapping node, without Hydra's own ``hydra`` branch."""
    if not isinstance(parent, DictConfig):
        return []
    return [str(k) for k in parent.keys() if k != "hydra"]


def _unknown_key_message(cause: OmegaConfBaseException, key: str) -> str:
    """An unknown key: list the keys that exist there."""
    keys = ", ".join(_allowed_keys(getattr(cause, "parent_node", None))) or "none"
    if "not in struct" in str(cause):  # a free mapping: new keys need '+'
        return f"unknown key; allowed: {keys}, or add a new one as +{key}=<value>"
    return f"unknown key; allowed: {keys}"


def _expected_type(cause: ValidationError) -> str:
    """What the node at fault accepts, from its type."""
    child = getattr(cause, "child_node", None)
    if isinstance(child, EnumNode):
        return "one of " + ", ".join(m.name for m in child.enum_type)
    for node_type, text in NODE_TYPES.items():
        if isinstance(child, node_type):
            return text
    if isinstance(child, DictConfig):
        keys = _allowed_keys(child)
        return f"a mapping with keys {', '.join(keys)}" if keys else "a mapping {key: value}"
    return "a value of the declared type"


def omegaconf_error_parts(cause: OmegaConfBaseException) -> tuple[str, str] | None:
    """(key, what is wrong and what is allowed) for an OmegaConf error that knows its
    key; None if it does not."""
    key = getattr(cause, "full_key", None)
    if not key:
        return None
    text = str(cause).splitlines()[0]
    if isinstance(cause, ConfigAttributeError | ConfigKeyError) and (
        "not in" in text or "not found" in text
    ):
        return key, _unknown_key_message(cause, key)
    if isinstance(cause, InterpolationResolutionError):
        return key, f"cannot resolve it ({text}); allowed: a value, or ${{key}} of an existing key"
    if isinstance(cause, ConfigTypeError) and "does not support deletion" in text:
        return key, f"cannot be deleted; allowed: set a value, e.g. {key}=<value>"
    if isinstance(cause, ValidationError):
        expected = _expected_type(cause)
        if "is not Optional" in text:
            return key, f"must not be null; allowed: {expected}"
        return key, f"must be {expected}, got {_show(cause.value)}"
    return key, text


def omegaconf_error_line(cause: OmegaConfBaseException) -> str | None:
    """One line ``<key>: <message>`` for an OmegaConf error; None if it names no key."""
    parts = omegaconf_error_parts(cause)
    return None if parts is None else f"{parts[0]}: {parts[1]}"


def hydra_error_line(err: Exception) -> str:
    """One line naming the key and what is allowed, for Hydra/OmegaConf composition errors."""
    from hydra.errors import MissingConfigException, OverrideParseException

    if isinstance(err, MissingConfigException) and err.missing_cfg_file:
        group, _, name = err.missing_cfg_file.rpartition("/")
        options = ", ".join(err.options or []) or "none"
        return f"{group or 'config'}: unknown option {name!r}; allowed: {options}"
    if isinstance(err, OverrideParseException):
        return override_parse_line(err.override, err.message)
    for cause in (err, err.__cause__):
        if isinstance(cause, OmegaConfBaseException):
            line = omegaconf_error_line(cause)
            if line:
                return line
    text = " ".join(str(err).split())
    for pattern, message in COMPOSITION_MESSAGES:
        match = re.search(pattern, text)
        if match:
            key = match.group("key")
            return f"{key}: {message.format(key=key)}"
    return f"config: {text}"


def override_parse_line(override: str, message: str) -> str:
    """An override Hydra's grammar rejects, e.g. ``n=[1,2`` (an unclosed list)."""
    key = override.split("=", 1)[0].lstrip("+~") if "=" in override else override
    reason = message.splitlines()[0] if message else "syntax error"
    return (
        f"{key or 'override'}: cannot parse override {override!r} ({reason}); "
        "allowed: key=value, lists as [a,b], mappings as {k:v}, quoted strings"
    )


def raised_in(err: BaseException, code: CodeType) -> bool:
    """True if a frame running ``code`` is on ``err``'s traceback."""
    tb: TracebackType | None = err.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is code:
            return True
        tb = tb.tb_next
    return False


def _in_multirun(err: BaseException) -> bool:
    tb: TracebackType | None = err.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "multirun" and frame.f_globals.get("__name__", "").startswith(
            "hydra."
        ):
            return True
        tb = tb.tb_next
    return False


def run_dir_error_line(err: OSError) -> str:
    """Hydra could not create the run (or sweep) directory, or write its record there."""
    key = "hydra.sweep.dir" if _in_multirun(err) else "hydra.run.dir"
    path = err.filename if err.filename is not None else "?"
    reason = err.strerror or str(err)
    if isinstance(err, FileExistsError):
        reason = "it exists and is not a directory"
    return f"{key}: cannot create {str(path)!r}: {reason}; allowed: a directory you can write"
