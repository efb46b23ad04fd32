"""The node agent under the cluster-wide config, and ``walrus ctl reload``.

The one rule: the agent's ``config`` is always ``cluster_config.resolve(its
file, the etcd document)`` (``common/dynconfig.py``). What a change reaches:

* ``loop_wait`` and ``retry_timeout`` at once (read on every use);
* ``ttl`` at the next lease grant (a lease's fencing deadline always counts
  with the ttl it was granted with: ``LeaseKeeper.reset(..., ttl=)``);
* ``postgres.parameters`` through the engine (``Engine.apply_parameters``:
  PostgreSQL rewrites ``postgresql.conf`` and reloads; a setting of context
  ``postmaster`` is reported in ``pending_restart`` until the next restart).

``reload`` re-reads the node's own file: tags, ``log_level``,
``bootstrap_wait``, PostgreSQL parameters and cluster keys etcd lacks apply
at once; any other changed key needs an agent restart and is reported as
pending (``agent:<key>``) rather than half-applied.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from walrus_ha.common import cluster_config as cc
from walrus_ha.common.errors import EngineError
from walrus_ha.common.log import log_event

log = logging.getLogger(__name__)

# File keys (dotted) a reload applies live; every other changed key needs a restart.
LIVE_KEYS = ("tags.", "log_level", "bootstrap_wait", "postgres.parameters", "ttl", "loop_wait", "retry_timeout")


@dataclasses.dataclass(frozen=True)
class ReloadResult:
    """What a reload did: the keys applied and the ones waiting for a restart."""
    changed: bool
    applied: tuple[str, ...]
    pending_restart: tuple[str, ...]
    detail: str


def follow(agent: Any, view: Any) -> None:
    """Resolve the agent's config against ``view``'s document; apply a change."""
    before = agent.config
    cfg = agent.config_follower.update(view)
    if cfg is before:
        return
    agent.config = cfg
    if cfg.ttl != before.ttl:
        log_event(log, "config.ttl_changed", ttl=cfg.ttl, previous=before.ttl, applies="at the next lease grant")
    if cfg.postgres.parameters != before.postgres.parameters:
        apply_parameters(agent, cfg)


def apply_parameters(agent: Any, cfg: Any) -> None:
    """Hand the engine its PostgreSQL parameters; record what waits for a restart."""
    try:
        pending = agent.engine.apply_parameters(dict(cfg.postgres.parameters))
    except EngineError as exc:
        log_event(log, "config.parameters_failed", logging.WARNING, error=exc)
        return
    log_event(log, "config.parameters_applied", count=len(cfg.postgres.parameters),
              pending_restart=",".join(pending) or "-")


def pending_restart(agent: Any) -> tuple[str, ...]:
    """Engine settings, then agent keys, that take effect only after a restart."""
    return tuple(getattr(agent.engine, "pending_restart", ())) + tuple(f"agent:{k}" for k in agent.agent_pending)


def reload(agent: Any, load: Callable[[], Any]) -> ReloadResult:
    """Re-read the node's file with ``load`` and apply what can change live.
    ``load`` raising ConfigError (naming the file and key) leaves everything
    as it was."""
    new = load()
    old = agent.config_follower.file_config
    changed = [c.key for c in cc.diff(_plain(old), _plain(new))]
    held = [k for k in changed if cc.get_path(agent.config_follower.document, k)[0]]   # etcd's value wins
    live = [k for k in changed if k.startswith(LIVE_KEYS) and k not in held]
    restart = sorted({k for k in changed if not k.startswith(LIVE_KEYS)})
    applied_file = new
    for key in restart:        # keep the running value until the agent restarts
        applied_file = _put(applied_file, key, _get(old, key))
    with agent.lock:
        agent.config_follower.set_file_config(applied_file)
        agent.agent_pending = tuple(restart)
        if agent.view is not None:
            follow(agent, agent.view)
        if any(k.startswith("log_level") for k in live):
            logging.getLogger().setLevel(agent.config.log_level)
        apply_parameters(agent, agent.config)      # and a PostgreSQL reload, changed or not
    agent.wake()
    detail = (f"applied {', '.join(live) or 'nothing new'}"
              + (f"; the cluster config holds {', '.join(held)} (the file's value is not used)" if held else "")
              + (f"; needs a restart: {', '.join(restart)}" if restart else "")
              + (f"; cluster config refused: {agent.config_follower.error}" if agent.config_follower.error else ""))
    log_event(log, "config.reloaded", applied=",".join(live) or "-", pending_restart=",".join(restart) or "-")
    return ReloadResult(bool(changed), tuple(live), pending_restart(agent), detail)


def _plain(cfg: Any) -> dict:
    out = dataclasses.asdict(cfg)
    return {k: (v.value if hasattr(v, "value") else v) for k, v in out.items()}


def _get(cfg: Any, key: str) -> Any:
    for part in key.split("."):
        if isinstance(cfg, dict):
            return cfg.get(part)
        cfg = getattr(cfg, part)
    return cfg


def _put(cfg: Any, key: str, value: Any) -> Any:
    head, _, rest = key.partition(".")
    current = getattr(cfg, head)
    if not rest:
        return dataclasses.replace(cfg, **{head: value})
    if isinstance(current, dict):
        updated = dict(current)
        if value is None:
            updated.pop(rest, None)
        else:
            updated[rest] = value
        return dataclasses.replace(cfg, **{head: updated})
    return dataclasses.replace(cfg, **{head: _put(current, rest, value)})
