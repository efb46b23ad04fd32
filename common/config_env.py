"""``WALRUS_*`` environment variables that override config file keys.

The mapping: ``<PREFIX><KEY>[__<SUBKEY>...]``, the dotted key path in upper
case with ``__`` (two underscores) between levels; the prefix names the
program, so one environment can hold both without either seeing the other's:

    WALRUS_NODE__NAME=node1                          -> name (walrus node)
    WALRUS_NODE__TAGS__PRIORITY=5                    -> tags.priority
    WALRUS_NODE__POSTGRES__PARAMETERS__MAX_CONNECTIONS=200
    WALRUS_NODE__ETCD__ENDPOINTS=10.0.0.1:2379,10.0.0.2:2379
    WALRUS_ORCHESTRATOR__TTL=20                      -> ttl (walrus orchestrator)
    WALRUS_ORCHESTRATOR__LOG__FORMAT=json            -> log.format

A value is read as a YAML scalar (``5`` an integer, ``on``/``true`` a
boolean, ``[a, b]`` a list, empty = the empty string); a comma-separated
string is accepted for a list key. Each value is checked like a file value
and an error names the variable; a variable naming no key of the config is
an error too, listing the allowed keys. The one rule: this module only turns
variables into the same plain data a file gives; ``config.from_dict``
validates the result.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from walrus_ha.common.errors import ConfigError

SEPARATOR = "__"

# (type, field or None, plain value, source, key) -> None; raises ConfigError.
# ``config.check_value``: validation exactly as for a file value.
Checker = Callable[[Any, "dataclasses.Field | None", Any, str, str], None]


@dataclasses.dataclass(frozen=True)
class Override:
    """One variable: its name, the key path it sets and its parsed value."""
    variable: str
    path: tuple[str, ...]
    value: Any

    @property
    def key(self) -> str:
        return ".".join(self.path)


def overrides(cls: type, env: Mapping[str, str], prefix: str, check: Checker) -> list[Override]:
    """The variables starting with ``prefix``, resolved against ``cls`` and
    checked; sorted by name. Raises ConfigError naming the variable."""
    found = []
    for variable in sorted(v for v in env if v.startswith(prefix)):
        path = tuple(part.lower() for part in variable[len(prefix):].split(SEPARATOR))
        tp, fld = _resolve(cls, path, variable)
        value = _parse(env[variable], tp, variable)
        check(tp, fld, value, f"environment variable {variable}", ".".join(path))
        found.append(Override(variable, path, value))
    return found


def apply_env(cls: type, data: dict, env: Mapping[str, str], prefix: str,
              check: Checker) -> tuple[dict, list[str]]:
    """``data`` (a file's mapping) with the overrides of ``env`` set; the
    names of the variables used. ``data`` itself is not changed."""
    found = overrides(cls, env, prefix, check)
    for o in found:
        data = _set(data, o.path, o.value)
    return data, [o.variable for o in found]


def _unwrap(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(inner) == 1:
            return inner[0]
    return tp


def _resolve(cls: type, path: tuple[str, ...], variable: str) -> tuple[Any, dataclasses.Field | None]:
    """(type, field) of the key ``path`` names in ``cls``; the field is None for a dict entry."""
    tp: Any = cls
    fld: dataclasses.Field | None = None
    for i, part in enumerate(path):
        key = ".".join(path[:i + 1])
        if not part:
            raise ConfigError(f"environment variable {variable}: empty key part in '{key}'")
        if dataclasses.is_dataclass(tp):
            fields = {f.name: f for f in dataclasses.fields(tp) if f.init}
            if part not in fields:
                raise ConfigError(f"environment variable {variable}: unknown key '{key}' "
                                  f"(allowed: {', '.join(sorted(fields))})")
            fld = fields[part]
            tp = _unwrap(typing.get_type_hints(tp)[part])
        elif typing.get_origin(tp) is dict:
            fld, tp = None, _unwrap(typing.get_args(tp)[1])
        else:
            raise ConfigError(f"environment variable {variable}: '{'.'.join(path[:i])}' has no keys below it")
    return tp, fld


def _parse(text: str, tp: Any, variable: str) -> Any:
    if text == "":
        return ""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"environment variable {variable}: not a YAML value: "
                          f"{getattr(exc, 'problem', exc)}") from None
    if typing.get_origin(tp) is tuple and isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _set(data: Any, path: tuple[str, ...], value: Any) -> Any:
    """A copy of ``data`` with ``path`` set. A level that is not a mapping in
    the file is left as it is, so the file's own error is reported."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return data
    head, rest = path[0], path[1:]
    out = dict(data)
    out[head] = _set(data.get(head), rest, value) if rest else value
    return out
