"""The one converter from ``EngineStatus`` to protobuf (``common.proto``
``EngineStatus``): used by the agent's ``NodeStatus`` (``node.agent.convert``)
and by the standalone embedded engine's (``embedded/cli.py``).

Lag and retained byte counts are clamped at 0 (the fields are unsigned);
a role without a proto value becomes ``ROLE_UNSPECIFIED``.
"""
from __future__ import annotations

from walrus_ha.node.engine.base import EngineStatus, Role
from walrus_ha.protos import common_pb2

_ROLE_TO_PB = {Role.PRIMARY: common_pb2.ROLE_PRIMARY, Role.STANDBY: common_pb2.ROLE_STANDBY,
               Role.STOPPED: common_pb2.ROLE_STOPPED}


def engine_status_to_pb(s: EngineStatus) -> common_pb2.EngineStatus:
    """``EngineStatus`` dataclass -> message."""
    return common_pb2.EngineStatus(
        role=_ROLE_TO_PB.get(s.role, common_pb2.ROLE_UNSPECIFIED), timeline=s.timeline, term=s.term,
        write_lsn=s.write_lsn, flush_lsn=s.flush_lsn, replay_lsn=s.replay_lsn,
        receive_lsn=s.receive_lsn, upstream=s.upstream, streaming=s.streaming, fenced=s.fenced,
        fence_reason=s.fence_reason, needs_reclone=s.needs_reclone,
        standbys=[common_pb2.StandbyStatus(
            name=x.name, sent_lsn=x.sent_lsn, write_lsn=x.write_lsn, flush_lsn=x.flush_lsn,
            replay_lsn=x.replay_lsn, send_lag_bytes=max(0, x.send_lag_bytes),
            flush_lag_bytes=max(0, x.flush_lag_bytes), replay_lag_bytes=max(0, x.replay_lag_bytes),
            write_lag_s=x.write_lag_s, flush_lag_s=x.flush_lag_s, replay_lag_s=x.replay_lag_s,
            sync_state=x.sync_state) for x in s.standbys],
        slots=[common_pb2.SlotStatus(name=x.name, restart_lsn=x.restart_lsn, active=x.active,
                                     lost=x.lost, retained_bytes=max(0, x.retained_bytes))
               for x in s.slots],
        engine=s.engine, sync_standbys=s.sync_standbys, detail=s.detail,
        write_error=s.write_error, write_error_since=s.write_error_since,
        wal_repairs=s.wal_repairs, wal_repair=s.wal_repair)


__all__ = ["engine_status_to_pb"]
