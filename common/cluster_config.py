"""The cluster-wide configuration: one JSON document in etcd (``config`` key).

The one rule: this module is pure (no etcd, no clock). It holds the one
schema (``ClusterConfig``; the node and orchestrator file loaders build
their shared keys from the same ``shared_field`` definitions, so bounds and
errors are the same), and the functions every writer and reader of the
document uses: validate and normalise it, parse ``key=value`` edits, diff
two documents, seed it from a member's file config, and resolve a member's
effective config (etcd wins for every cluster key it holds; keys it lacks
come from the member's file, which is what seeding then adds).

Keys (dotted paths in the document):

* ``ttl``, ``loop_wait``, ``retry_timeout``: the node agents' leader lease
  and loop (``walrus node`` files' keys of the same names);
* ``orchestrator.ttl|loop_wait|retry_timeout|rpc_timeout``: the
  orchestrators' election lease and loop (their files' ``ttl`` ...);
* ``maximum_lag_on_failover``, ``synchronous_mode``,
  ``synchronous_node_count``, ``synchronous_method``, ``fast_path``,
  ``primary_write_failure_timeout``, ``reseed_wait``: the decision core;
* ``postgres.parameters.<name>``: PostgreSQL settings on every member (over
  the node file's ``postgres.parameters`` of the same name).
"""
from __future__ import annotations

import dataclasses
import enum
import math
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from walrus_ha.common.config import PgSetting, constrained, from_dict
from walrus_ha.common.errors import ConfigError

# The bounds of the keys a member file and the cluster document share: one
# definition, used by ``NodeConfig``, ``OrchestratorConfig`` and ``ClusterConfig``.
_SHARED: dict[str, dict[str, Any]] = {
    "ttl": {"default": 10.0, "min": 1.0, "max": 3600, "help": "lease in seconds"},
    "loop_wait": {"default": 1.0, "min": 0.01, "max": 600, "help": "loop interval in seconds"},
    "retry_timeout": {"default": 3.0, "min": 0.05, "max": 600, "help": "deadline of one etcd call with retries"},
    "rpc_timeout": {"default": 1.0, "min": 0.05, "max": 600, "help": "deadline of one agent RPC"},
    "maximum_lag_on_failover": {"default": 1024 * 1024, "min": -1,
                                "help": "bytes behind the primary; -1 = no limit"},
    "synchronous_node_count": {"default": 1, "min": 1, "max": 16},
    "synchronous_method": {"default": "first", "choices": ("first", "any")},
    "primary_write_failure_timeout": {
        "default": 10.0, "min": 0.0, "max": 3600,
        "help": "seconds a primary's writes may fail (disk full) before it is replaced by a healthy standby; "
                "0 = never"},
    "reseed_wait": {"default": 10.0, "min": 0.0, "max": 3600,
                    "help": "etcd lost its data, asynchronous mode: seconds to wait for the last primary before "
                            "re-seeding from the other members"},
}

# PostgreSQL settings walrus itself owns (addresses, replication, fencing): a
# cluster-wide value would break a member, so the document refuses them.
RESERVED_PG_PARAMETERS = frozenset({
    "listen_addresses", "port", "unix_socket_directories", "primary_conninfo", "primary_slot_name",
    "synchronous_standby_names", "default_transaction_read_only", "hot_standby", "wal_level",
    "max_slot_wal_keep_size", "data_directory", "hba_file", "ident_file", "config_file", "include",
    "include_if_exists", "include_dir",
})


def shared_field(key: str, **changes: Any) -> Any:
    """A dataclass field for a key the files and the cluster document share
    (same default and bounds everywhere; ``changes`` may adjust the help)."""
    spec = {**_SHARED[key], **changes}
    return constrained(spec.pop("default"), **spec)


@dataclass(frozen=True)
class OrchestratorTimings:
    """``orchestrator:``: the orchestrators' election lease and loop."""
    ttl: float = shared_field("ttl", help="orchestrator election lease")
    loop_wait: float = shared_field("loop_wait")
    retry_timeout: float = shared_field("retry_timeout")
    rpc_timeout: float = shared_field("rpc_timeout")


@dataclass(frozen=True)
class ClusterPostgres:
    """``postgres:``: settings every PostgreSQL member gets."""
    parameters: dict[str, PgSetting] = field(default_factory=dict)

    def check(self) -> list[tuple[str, str]]:
        problems = []
        for name in sorted(self.parameters):
            if name.lower() in RESERVED_PG_PARAMETERS:
                problems.append((f"parameters.{name}", "is set by walrus itself; it cannot be set cluster-wide"))
            elif not name or not all(c.isalnum() or c in "_." for c in name):
                problems.append((f"parameters.{name}", "is not a PostgreSQL parameter name"))
        return problems


@dataclass(frozen=True)
class ClusterConfig:
    """The document under ``/walrus/<cluster>/config`` (every key optional)."""
    ttl: float = shared_field("ttl", help="leader lease in seconds")
    loop_wait: float = shared_field("loop_wait")
    retry_timeout: float = shared_field("retry_timeout")
    maximum_lag_on_failover: int = shared_field("maximum_lag_on_failover")
    synchronous_mode: bool = False
    synchronous_node_count: int = shared_field("synchronous_node_count")
    synchronous_method: str = shared_field("synchronous_method")
    fast_path: bool = True
    primary_write_failure_timeout: float = shared_field("primary_write_failure_timeout")
    reseed_wait: float = shared_field("reseed_wait")
    orchestrator: OrchestratorTimings = field(default_factory=OrchestratorTimings)
    postgres: ClusterPostgres = field(default_factory=ClusterPostgres)


_TIMINGS = ("ttl", "loop_wait", "retry_timeout")


class MemberKind(enum.Enum):
    """Which file config a member reads, hence which cluster keys it uses."""
    NODE = "node"
    ORCHESTRATOR = "orchestrator"


# cluster key -> attribute path in that kind's file config.
KEYS: dict[MemberKind, dict[str, str]] = {
    MemberKind.NODE: {"ttl": "ttl", "loop_wait": "loop_wait", "retry_timeout": "retry_timeout",
                      "postgres.parameters": "postgres.parameters"},
    MemberKind.ORCHESTRATOR: {
        "orchestrator.ttl": "ttl", "orchestrator.loop_wait": "loop_wait",
        "orchestrator.retry_timeout": "retry_timeout", "orchestrator.rpc_timeout": "rpc_timeout",
        **{k: k for k in ("maximum_lag_on_failover", "synchronous_mode", "synchronous_node_count",
                          "synchronous_method", "fast_path", "primary_write_failure_timeout", "reseed_wait")}},
}
# Keys whose value is a mapping merged name by name (cluster names win).
MAPPING_KEYS = frozenset({"postgres.parameters"})


# -- the document ----------------------------------------------------------------

def validate(doc: Any, source: str = "cluster config") -> ClusterConfig:
    """The document as a ``ClusterConfig``; ConfigError names ``source`` and the key.
    ``loop_wait + 2*retry_timeout <= ttl`` is checked where the document holds
    all three (a member checks its effective config again: ``resolve``)."""
    cfg = from_dict(ClusterConfig, {} if doc is None else doc, source=source)
    for prefix, timings in (("", cfg), ("orchestrator.", cfg.orchestrator)):
        if all(get_path(doc, prefix + k)[0] for k in _TIMINGS):
            ttl, loop_wait, retry = (getattr(timings, k) for k in _TIMINGS)
            if loop_wait + 2 * retry > ttl:
                raise ConfigError(f"{source}: '{prefix}ttl': loop_wait + 2*retry_timeout "
                                  f"({loop_wait + 2 * retry:g}s) must not exceed ttl ({ttl:g}s)")
    return cfg


def normalize(doc: Any, source: str = "cluster config") -> dict:
    """``doc`` validated and in canonical form (``synchronous_commit: on`` ->
    ``"on"``, ints as floats where the key is a float), keeping only the keys it
    holds: an absent key stays absent so a member's file still supplies it."""
    full = flatten(_plain(validate(doc, source)))
    present = flatten(doc or {})
    return unflatten({k: v for k, v in full.items() if k in present})


def _plain(cfg: ClusterConfig) -> dict:
    return dataclasses.asdict(cfg)


def flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` down to scalars (mappings expanded,
    ``postgres.parameters`` name by name)."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, path + "."))
        elif isinstance(value, Mapping):
            out[path] = {}
        else:
            out[path] = value
    return out


def unflatten(flat: Mapping[str, Any]) -> dict:
    """The inverse of ``flatten``."""
    out: dict[str, Any] = {}
    for path, value in flat.items():
        *parents, leaf = path.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        if isinstance(value, Mapping) and leaf in node:
            continue          # an empty mapping does not erase its filled-in entries
        node[leaf] = value
    return out


def get_path(doc: Mapping[str, Any] | None, path: str) -> tuple[bool, Any]:
    """(present, value) of a dotted ``path`` in a nested document."""
    node: Any = doc or {}
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


# -- edits: key=value ------------------------------------------------------------

@dataclass(frozen=True)
class Assignment:
    """One ``key=value``; ``value`` None removes the key (``key=null``)."""
    key: str
    value: Any


def parse_assignments(items: Sequence[str]) -> list[Assignment]:
    """``["ttl=20", "postgres.parameters.work_mem=8MB", "synchronous_mode=on"]``:
    the value is a YAML scalar (``20`` an integer, ``on`` a boolean), ``null``
    or nothing removes the key. ConfigError names a malformed item or an
    unknown key (values are checked with the whole document, ``validate``)."""
    out = []
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"'{item}': expected key=value")
        _known_key(key)
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"'{key}': not a YAML value: {getattr(exc, 'problem', exc)}") from None
        if isinstance(value, (list, dict)):
            raise ConfigError(f"'{key}': expected a single value, got {type(value).__name__}")
        out.append(Assignment(key, value))
    return out


def _known_key(key: str) -> None:
    """ConfigError unless ``key`` names a leaf of the schema (or one PostgreSQL parameter)."""
    if key.startswith("postgres.parameters.") and len(key) > len("postgres.parameters."):
        return
    tp: Any = ClusterConfig
    parts = key.split(".")
    for i, part in enumerate(parts):
        if not dataclasses.is_dataclass(tp):
            raise ConfigError(f"unknown key '{key}' ('{'.'.join(parts[:i])}' has no keys below it)")
        fields = {f.name: f for f in dataclasses.fields(tp)}
        if part not in fields:
            where = ".".join(parts[:i]) or "the cluster config"
            raise ConfigError(f"unknown key '{key}' (allowed in {where}: {', '.join(sorted(fields))})")
        tp = typing.get_type_hints(tp)[part]
    if dataclasses.is_dataclass(tp) or key == "postgres.parameters":
        raise ConfigError(f"'{key}' is a section: set its keys one by one ('{key}.<name>=value')")


def apply_assignments(doc: Mapping[str, Any] | None, assignments: Iterable[Assignment]) -> dict:
    """A copy of ``doc`` with the assignments made (not validated)."""
    flat = flatten(doc or {})
    for a in assignments:
        for k in [k for k in flat if k == a.key or k.startswith(a.key + ".")]:
            del flat[k]
        if a.value is not None:
            flat[a.key] = a.value
    return unflatten(flat)


# -- diff --------------------------------------------------------------------------

@dataclass(frozen=True)
class Change:
    """One key that differs: ``old``/``new`` None when absent on that side."""
    key: str
    old: Any
    new: Any

    def line(self) -> str:
        if self.old is None:
            return f"+ {self.key}: {_show(self.new)}"
        if self.new is None:
            return f"- {self.key}: {_show(self.old)}"
        return f"~ {self.key}: {_show(self.old)} -> {_show(self.new)}"

    def to_dict(self) -> dict:
        return {"key": self.key, "old": self.old, "new": self.new}


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return f"{value:g}"
    return str(value) if not isinstance(value, Mapping) else "{}"


def diff(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[Change]:
    """Key by key (dotted, sorted) what changes from ``old`` to ``new``."""
    # An empty mapping (``postgres.parameters: {}``) is no setting of its own.
    a = {k: v for k, v in flatten(old or {}).items() if v != {}}
    b = {k: v for k, v in flatten(new or {}).items() if v != {}}
    return [Change(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def render_diff(changes: Sequence[Change]) -> str:
    return "\n".join(c.line() for c in changes) if changes else "no change"


def to_yaml(doc: Mapping[str, Any] | None) -> str:
    """The document as YAML for people (``ctl config show``, ``edit-config``)."""
    return yaml.safe_dump(dict(doc or {}), sort_keys=True, default_flow_style=False)


# -- members: seed and resolve ------------------------------------------------------

def _attr(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _replace(obj: Any, path: str, value: Any) -> Any:
    head, _, rest = path.partition(".")
    if not rest:
        return dataclasses.replace(obj, **{head: value})
    return dataclasses.replace(obj, **{head: _replace(getattr(obj, head), rest, value)})


def seed(kind: MemberKind, file_config: Any) -> dict:
    """The cluster keys of ``kind`` with ``file_config``'s values (a nested document)."""
    flat = {}
    for key, attr in KEYS[kind].items():
        value = _attr(file_config, attr)
        flat[key] = dict(value) if isinstance(value, Mapping) else getattr(value, "value", value)
    return unflatten(flat)


def missing(kind: MemberKind, file_config: Any, doc: Mapping[str, Any] | None) -> dict:
    """The keys of ``kind`` absent from ``doc``, with ``file_config``'s values:
    what this member adds when it seeds (never changing a key already there)."""
    flat = {k: v for k, v in top_keys(seed(kind, file_config)).items() if not get_path(doc, k)[0]}
    return unflatten(flat)


def top_keys(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Flatten to the cluster keys (a mapping key such as ``postgres.parameters`` stays whole)."""
    out = {}
    for k, v in flatten(doc).items():
        whole = next((m for m in MAPPING_KEYS if k == m or k.startswith(m + ".")), None)
        if whole is not None:
            out[whole] = get_path(doc, whole)[1]
        else:
            out[k] = v
    return out


@dataclass(frozen=True)
class Override:
    """A cluster key whose etcd value differs from the member file's."""
    key: str
    file_value: Any
    cluster_value: Any


@dataclass(frozen=True)
class Resolved:
    """A member's effective config and where its cluster keys came from."""
    config: Any
    from_cluster: tuple[str, ...]     # keys etcd supplied
    from_file: tuple[str, ...]        # keys etcd lacks: the file's value (what seeding adds)
    overrides: tuple[Override, ...]   # etcd won over a different file value


def resolve(kind: MemberKind, file_config: Any, doc: Mapping[str, Any] | None) -> Resolved:
    """``file_config`` with every cluster key of ``kind`` that ``doc`` holds
    replaced by the document's value (``postgres.parameters``: merged, the
    document's names win). ``doc`` must already be ``normalize``d. Raises
    ConfigError when the result breaks a rule of the member's config (e.g.
    ``safety_margin`` >= ttl/2 on a node), naming the key."""
    cfg = file_config
    from_cluster, from_file, overrides = [], [], []
    for key, attr in KEYS[kind].items():
        present, value = get_path(doc, key)
        if not present:
            from_file.append(key)
            continue
        mine = _attr(file_config, attr)
        if key in MAPPING_KEYS:
            value = {**dict(mine), **dict(value)}
            changed = {n: v for n, v in dict(value).items() if n in mine and mine[n] != v}
            overrides += [Override(f"{key}.{n}", mine[n], v) for n, v in sorted(changed.items())]
        else:
            value = _typed_like(mine, value)
            if value != mine:
                overrides.append(Override(key, getattr(mine, "value", mine), getattr(value, "value", value)))
        cfg = _replace(cfg, attr, value)
        from_cluster.append(key)
    check = getattr(cfg, "check", None)
    if callable(check):
        for bad_key, problem in check():
            raise ConfigError(f"cluster config does not fit this {kind.value}'s file: '{bad_key}': {problem}")
    return Resolved(cfg, tuple(from_cluster), tuple(from_file), tuple(overrides))


def _typed_like(mine: Any, value: Any) -> Any:
    """The document's value in the file field's type (float, int, Enum)."""
    if isinstance(mine, enum.Enum):
        return type(mine)(value)
    if isinstance(mine, float) and not isinstance(value, bool):
        return float(value)
    return value
