"""Orchestrator configuration (``walrus orchestrator --config orch.yaml``)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from walrus_ha.common.cluster_config import shared_field
from walrus_ha.common.config import EtcdConfig, LogConfig, constrained, load_file, parse_address


@dataclass(frozen=True)
class OrchestratorConfig:
    id: str
    cluster: str = "walrus"
    listen: str = "127.0.0.1:7400"
    advertise: str = ""             # host:port published in etcd for `walrus ctl --etcd`; "" = listen
    etcd: EtcdConfig = field(default_factory=EtcdConfig)
    # Cluster keys (common/cluster_config.py; ttl/loop_wait/retry_timeout/rpc_timeout are
    # ``orchestrator.*`` there): the ``config`` key in etcd wins over these.
    ttl: float = shared_field("ttl", help="orchestrator election lease")
    loop_wait: float = shared_field("loop_wait")
    retry_timeout: float = shared_field("retry_timeout")
    rpc_timeout: float = shared_field("rpc_timeout")
    maximum_lag_on_failover: int = shared_field("maximum_lag_on_failover")
    synchronous_mode: bool = False
    synchronous_node_count: int = shared_field("synchronous_node_count")
    synchronous_method: str = shared_field("synchronous_method")
    fast_path: bool = True          # revoke a provably dead primary's lease (docs/design.md safety 5)
    primary_write_failure_timeout: float = shared_field("primary_write_failure_timeout")
    reseed_wait: float = shared_field("reseed_wait")
    log_level: str = constrained("INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    log: LogConfig = field(default_factory=LogConfig)   # log.format: text | json
    # Prometheus /metrics over HTTP (orchestrator.metrics) on host:port; "" = off.
    metrics_listen: str = ""

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if not self.id or "/" in self.id:
            problems.append(("id", "must be a non-empty name without '/'"))
        for key in ("listen", "advertise", "metrics_listen"):
            try:
                if key == "listen" or getattr(self, key):
                    parse_address(getattr(self, key))
            except ValueError as exc:
                problems.append((key, str(exc)))
        if self.loop_wait + 2 * self.retry_timeout > self.ttl:
            problems.append(("ttl", f"loop_wait + 2*retry_timeout ({self.loop_wait + 2 * self.retry_timeout:g}s) "
                                    f"must not exceed ttl ({self.ttl:g}s)"))
        return problems


ENV_PREFIX = "WALRUS_ORCHESTRATOR__"


def load_orchestrator_config(path: str, overrides: dict | None = None,
                             env: Mapping[str, str] | None = None) -> OrchestratorConfig:
    """Load and validate an orchestrator config file; with ``env``,
    ``WALRUS_ORCHESTRATOR__*`` variables override keys (``common/config_env.py``)."""
    return load_file(OrchestratorConfig, path, overrides, env=env, env_prefix=ENV_PREFIX)
