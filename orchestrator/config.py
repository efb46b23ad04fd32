"""Orchestrator configuration (``walrus orchestrator --config orch.yaml``)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from walrus_ha.common.config import EtcdConfig, LogConfig, constrained, load_file, parse_address


@dataclass(frozen=True)
class OrchestratorConfig:
    id: str
    cluster: str = "walrus"
    listen: str = "127.0.0.1:7400"
    advertise: str = ""             # host:port published in etcd for `walrus ctl --etcd`; "" = listen
    etcd: EtcdConfig = field(default_factory=EtcdConfig)
    ttl: float = constrained(10.0, min=1.0, max=3600, help="orchestrator election lease")
    loop_wait: float = constrained(1.0, min=0.01, max=600)
    retry_timeout: float = constrained(3.0, min=0.05, max=600)
    rpc_timeout: float = constrained(1.0, min=0.05, max=600, help="deadline of one agent RPC")
    maximum_lag_on_failover: int = constrained(1024 * 1024, min=-1,
                                               help="bytes behind the primary; -1 = no limit")
    synchronous_mode: bool = False
    synchronous_node_count: int = constrained(1, min=1, max=16)
    synchronous_method: str = constrained("first", choices=("first", "any"))
    fast_path: bool = True          # revoke a provably dead primary's lease (docs/design.md safety 5)
    primary_write_failure_timeout: float = constrained(
        10.0, min=0.0, max=3600, help="seconds a primary's writes may fail (disk full) before it is "
                                      "replaced by a healthy standby; 0 = never")
    reseed_wait: float = constrained(10.0, min=0.0, max=3600,
                                     help="etcd lost its data, asynchronous mode: seconds to wait for the last "
                                          "primary before re-seeding from the other members")
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
