"""YAML configuration into frozen, typed dataclasses.

The one rule: a config either loads completely and consistently, or raises
``ConfigError`` naming the file and the dotted key. Unknown keys, wrong types,
out-of-range values and contradictions are all errors; nothing is guessed.

Field constraints live in ``dataclasses.field(metadata=...)``:
``min``/``max`` (inclusive bounds), ``choices`` (allowed values) and
``help`` (one line shown in errors). A ``PgSetting`` field (or dict value)
is a PostgreSQL setting: YAML 1.1 reads ``on``/``off``/``yes``/``no`` as
booleans and ``200`` as a number, so those are taken as PostgreSQL writes
them (``on``/``off``, ``200``, ``0.9``); lists, mappings and nothing are
still errors. A dataclass may define
``check(self) -> list[tuple[str, str]]`` returning ``(key, problem)`` pairs
for contradictions between fields; the loader raises on the first one.

``EtcdConfig`` (the ``etcd:`` section) and ``LogConfig`` (``log:``) live
here because the node agent and the orchestrator both read them.
"""
from __future__ import annotations

import dataclasses
import enum
import pathlib
import types
import typing
from collections.abc import Mapping
from typing import Any, NewType, TypeVar

import yaml

from walrus_ha.common.config_env import apply_env
from walrus_ha.common.errors import ConfigError
from walrus_ha.common.log import LogFormat

T = TypeVar("T")

PgSetting = NewType("PgSetting", str)
"""A string that PostgreSQL parses (see the module docstring)."""


def constrained(default: Any = dataclasses.MISSING, *, min: float | None = None,
                max: float | None = None, choices: tuple | None = None, help: str = "",
                default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with bounds or choices checked by the loader."""
    meta = {"min": min, "max": max, "choices": choices, "help": help}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def load_file(cls: type[T], path: str | pathlib.Path, overrides: dict | None = None,
              env: Mapping[str, str] | None = None, env_prefix: str = "") -> T:
    """Read YAML at ``path`` into ``cls``. Raises ConfigError naming the file.

    With ``env`` (e.g. ``os.environ``) and ``env_prefix`` (``WALRUS_NODE__``),
    the variables named ``<prefix><KEY>[__<SUBKEY>...]`` override the file's
    keys (``config_env``); an error in one names the variable."""
    source = str(path)
    try:
        text = pathlib.Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read config: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source}:{where} is not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        data = {}
    if overrides:
        data = {**data, **overrides}
    if env is not None and env_prefix:
        data, used = apply_env(cls, data, env, env_prefix, check_value)
        if used:
            source = f"{source} (with {', '.join(used)})"
    return from_dict(cls, data, source=source)


def from_dict(cls: type[T], data: Any, *, source: str = "<config>", prefix: str = "") -> T:
    """Build ``cls`` from plain data; ConfigError names ``source`` and the key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix or 'top level'} must be a mapping, got {_kind(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(map(str, data)) - set(fields))
    if unknown:
        key = _join(prefix, unknown[0])
        raise ConfigError(f"{source}: unknown key '{key}' (allowed: {', '.join(sorted(fields))})")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, f in fields.items():
        key = _join(prefix, name)
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{source}: missing required key '{key}'")
            continue
        value = _convert(hints[name], data[name], source, key)
        _check_bounds(f, value, source, key)
        values[name] = value
    obj = cls(**values)
    check = getattr(obj, "check", None)
    if callable(check):
        for bad_key, problem in check():
            raise ConfigError(f"{source}: '{_join(prefix, bad_key)}': {problem}")
    return obj


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "nothing"}.get(type(value), type(value).__name__)


def _convert(tp: Any, value: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, source, key)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, source=source, prefix=key)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        allowed = [m.value for m in tp]
        if value not in allowed:
            raise ConfigError(f"{source}: '{key}' must be one of {allowed}, got {value!r}")
        return tp(value)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{source}: '{key}' must be a list, got {_kind(value)}")
        return tuple(_convert(args[0], v, source, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{key}' must be a mapping, got {_kind(value)}")
        return {str(k): _convert(args[1], v, source, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: '{key}' must be true or false, got {_kind(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: '{key}' must be an integer, got {_kind(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: '{key}' must be a number, got {_kind(value)}")
        return float(value)
    if tp is PgSetting:
        return pg_setting(value, source, key)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: '{key}' must be a string, got {_kind(value)}")
        return value
    if tp is Any:
        return value
    raise TypeError(f"config type not supported: {tp!r} at {key}")


def check_value(tp: Any, f: dataclasses.Field | None, value: Any, source: str, key: str) -> None:
    """Check one plain value against its type (and ``f``'s bounds) as ``from_dict`` would."""
    converted = _convert(tp, value, source, key)
    if f is not None:
        _check_bounds(f, converted, source, key)


def pg_setting(value: Any, source: str, key: str) -> str:
    """A YAML scalar as PostgreSQL's configuration parser reads it: booleans
    as ``on``/``off``, numbers as their literal; ConfigError otherwise."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{source}: '{key}' must be a finite number, got {value}")
        return repr(value)
    if isinstance(value, str):
        return value
    raise ConfigError(f"{source}: '{key}' must be a PostgreSQL setting (a string, number or on/off), "
                      f"got {_kind(value)}")


def _check_bounds(f: dataclasses.Field, value: Any, source: str, key: str) -> None:
    meta = f.metadata
    if not meta or value is None:
        return
    lo, hi, choices = meta.get("min"), meta.get("max"), meta.get("choices")
    if lo is not None and value < lo:
        raise ConfigError(f"{source}: '{key}' must be >= {lo}, got {value}")
    if hi is not None and value > hi:
        raise ConfigError(f"{source}: '{key}' must be <= {hi}, got {value}")
    if choices is not None and value not in choices:
        raise ConfigError(f"{source}: '{key}' must be one of {list(choices)}, got {value!r}")


def parse_address(text: str) -> tuple[str, int]:
    """Split ``host:port``; ValueError with a sentence when malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not a host:port address: {text!r}")
    return host, int(port)


@dataclasses.dataclass(frozen=True)
class EtcdConfig:
    """The ``etcd:`` section of the node and orchestrator configs."""
    endpoints: tuple[str, ...] = ("127.0.0.1:2379",)
    timeout_s: float = constrained(2.0, min=0.1, max=60)

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if not self.endpoints:
            problems.append(("endpoints", "needs at least one host:port"))
        for i, ep in enumerate(self.endpoints):
            try:
                parse_address(ep.removeprefix("http://"))
            except ValueError as exc:
                problems.append((f"endpoints[{i}]", str(exc)))
        return problems


@dataclasses.dataclass(frozen=True)
class LogConfig:
    """The ``log:`` section: ``format: text`` (default) or ``json`` (one object per line)."""
    format: LogFormat = LogFormat.TEXT
