"""``walrus ctl``: query and steer a running cluster through its orchestrators.

Point it at a cluster with ``--dir DIR`` (reads DIR/cluster.json),
``--orchestrators host:port,...`` (tried in order) or ``--etcd
host:port,...`` (the orchestrators registered under ``orchestrators/`` of
``--cluster``, the active one first). Tables by default, ``--json`` for
scripts (tags typed; an error is ``{"error": ..., "code": ...}`` on stdout
with exit 1); LSNs are printed PostgreSQL style, ``X/XXXXXXXX``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import threading
import time

from google.protobuf.json_format import MessageToDict

import walrus_ha
from walrus_ha.common import log as wlog
from walrus_ha.common.errors import WalrusError
from walrus_ha.common.lsn import format_lsn
from walrus_ha.protos import cluster_pb2, common_pb2
from walrus_ha.tools import ctl_config, ctl_ops, ctl_views
from walrus_ha.tools.localcluster.client import AgentClient, ClusterClient
from walrus_ha.tools.localcluster.table import format_table

ROLE_NAMES = {common_pb2.ROLE_PRIMARY: "primary", common_pb2.ROLE_STANDBY: "standby",
              common_pb2.ROLE_STOPPED: "stopped", common_pb2.ROLE_UNSPECIFIED: "?"}
_INT64_FIELDS = {"term", "lag_bytes", "bytes_possibly_lost", "config_revision"}   # MessageToDict makes these strings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_mutually_exclusive_group()
    where.add_argument("--dir", help="local cluster directory (reads cluster.json)")
    where.add_argument("--orchestrators", help="host:port[,host:port...] of orchestrators (tried in order)")
    where.add_argument("--etcd", help="host:port[,host:port...] of etcd: the orchestrators registered there")
    common.add_argument("--cluster", default="walrus", help="cluster name in etcd, with --etcd (default walrus)")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    common.add_argument("--timeout", type=float, default=3.0, help="seconds per RPC (default 3)")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", parents=[common], help="members, roles, LSNs, lag")
    leader = sub.add_parser("leader", parents=[common], help="the current leader")
    leader.add_argument("--watch", action="store_true", help="stream leader changes (Ctrl-C to stop)")
    leader.add_argument("--writable", action="store_true",
                        help="with --watch: print each new writable leader once (where a client sends writes)")
    waiting = argparse.ArgumentParser(add_help=False)
    waiting.add_argument("--no-wait", action="store_true",
                         help="return once the request is accepted (default: wait for its outcome)")
    waiting.add_argument("--wait-timeout", type=float, default=60.0, metavar="S",
                         help="give up waiting after S seconds, exit 1 (default 60)")
    sw = sub.add_parser("switchover", parents=[common, waiting], help="planned handover to a standby")
    sw.add_argument("--to", default="", metavar="NAME", help="candidate (default: the best standby)")
    sw.add_argument("--leader", default="", metavar="NAME", help="only if NAME is still the leader")
    fo = sub.add_parser("failover", parents=[common, waiting], help="manual failover (leader unhealthy)")
    fo.add_argument("--to", default="", metavar="NAME")
    fo.add_argument("--force", action="store_true",
                    help="promote NAME although no member provably holds every acknowledged write "
                         "(synchronous mode); writes it lacks are lost, and history says so")
    sub.add_parser("pause", parents=[common], help="stop automatic failover")
    sub.add_parser("resume", parents=[common], help="resume automatic failover")
    hist = sub.add_parser("history", parents=[common], help="failovers and switchovers with RPO receipts")
    hist.add_argument("--limit", type=int, default=20)
    sub.add_parser("explain", parents=[common], help="who would win a failover now, and why")
    sub.add_parser("topology", parents=[common], help="replication tree: the primary, its standbys (sync/async, lag)")
    dsn = sub.add_parser("dsn", parents=[common], help="libpq connection string of the primary (or the replicas)")
    dsn.add_argument("--role", choices=("primary", "replica"), default="primary")
    dsn.add_argument("--user", default="postgres", help="user in the string (default postgres)")
    dsn.add_argument("--dbname", default="postgres", help="database in the string (default postgres)")
    ctl_ops.add_arguments(sub, common, sw)
    sub.add_parser("version", parents=[common],
                   help="this walrus's version, and each member's (and, with --etcd, orchestrator's)")
    ctl_config.add_arguments(sub, common)


def orchestrator_addresses(args: argparse.Namespace) -> list[str]:
    """From ``--orchestrators``, ``--etcd``, else ``--dir``'s cluster.json, else $WALRUS_ORCHESTRATORS."""
    if getattr(args, "etcd", None):
        return [r.address for r in _registered(args)]
    if args.orchestrators:
        return [a.strip() for a in args.orchestrators.split(",") if a.strip()]
    if args.dir:
        path = os.path.join(args.dir, "cluster.json")
        try:
            with open(path) as f:
                return list(json.load(f)["orchestrators"])
        except (OSError, ValueError, KeyError) as exc:
            raise WalrusError(f"cannot read orchestrators from {path}: {exc}") from None
    env = os.environ.get("WALRUS_ORCHESTRATORS", "")
    if env:
        return [a.strip() for a in env.split(",") if a.strip()]
    raise WalrusError("say where the cluster is: --dir DIR, --orchestrators host:port,... or --etcd host:port,...")


def _registered(args: argparse.Namespace) -> list:
    """The orchestrators registered in ``--etcd`` for ``--cluster``, the active one first."""
    from walrus_ha.common import registry
    from walrus_ha.common.dcs import Dcs
    endpoints = [e.strip() for e in args.etcd.split(",") if e.strip()]
    with Dcs(endpoints, args.cluster, timeout_s=args.timeout) as dcs:
        active, records = registry.registered(dcs, deadline_s=args.timeout)
    records = registry.ordered(active, records)
    if not records:
        raise WalrusError(f"no orchestrator registered in etcd {','.join(endpoints)} under "
                          f"{dcs.keys.orchestrators_prefix} (wrong --cluster, or none running?)")
    return records


def run(args: argparse.Namespace) -> int:
    """Run one action; under ``--json`` an error is a JSON object on stdout (exit 1)."""
    try:
        if args.action == "version":
            return _version(args)
        if args.action in ctl_config.ACTIONS:
            return ctl_config.run(args, lambda: _agent_addresses(args))
        client = ClusterClient(orchestrator_addresses(args), timeout_s=args.timeout)
        try:
            return _ACTIONS[args.action](client, args)
        finally:
            client.close()
    except WalrusError as exc:
        if not args.json:
            raise
        print(json.dumps(ctl_views.error_json(exc)), flush=True)
        return 1


def to_dict(message) -> dict:
    """A proto message as a dict with snake_case keys and LSNs as ``X/XXXXXXXX`` strings."""
    data = MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    return _lsns(data)


def _lsns(value):
    if isinstance(value, dict):
        return {k: _field(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lsns(v) for v in value]
    return value


def _field(key: str, value):
    if key.endswith("_lsn") and isinstance(value, (str, int)):
        return format_lsn(int(value))
    if key in _INT64_FIELDS and isinstance(value, str) and value.isdigit():
        return int(value)
    if key == "role" and isinstance(value, str):
        return value.removeprefix("ROLE_").lower()
    if key == "tags" and isinstance(value, dict):
        return {k: ctl_views.typed_tag(v) if isinstance(v, str) else v for k, v in value.items()}
    return _lsns(value)


def _emit(args, data: dict, text: str) -> None:
    print(json.dumps(data, indent=2) if args.json else text)


def _ts(unix: float) -> str:
    if not unix:
        return "-"
    return datetime.datetime.fromtimestamp(unix).strftime("%H:%M:%S.%f")[:-3]


def leader_line(leader: cluster_pb2.Leader) -> str:
    if not leader.present:
        return "no leader"
    return (f"{leader.name} (term {leader.term}, timeline {leader.timeline}, data {leader.data_address}, "
            f"since {_ts(leader.since)}) {'writable' if leader.writable else 'NOT writable yet'}")


def _agent_addresses(args) -> dict[str, str]:
    """name -> agent address of every member, from the orchestrators."""
    client = ClusterClient(orchestrator_addresses(args), timeout_s=args.timeout)
    try:
        return {m.name: m.agent_address for m in client.list_members().members if m.agent_address}
    finally:
        client.close()


def _note(m: cluster_pb2.Member) -> str:
    notes = ["fenced"] if m.fenced else []
    if m.restart_left_s > 0:
        notes.append(f"restarting (planned, {m.restart_left_s:.0f}s left)")
    if m.needs_reclone:
        notes.append("needs re-clone")
    if m.pending_restart:
        notes.append(f"pending restart: {', '.join(m.pending_restart)}")
    if m.write_error:
        notes.append(f"WRITES FAIL since {_ts(m.write_error_since)}: {m.write_error}")
    return "; ".join(notes)


def members_table(reply: cluster_pb2.ListMembersReply) -> str:
    rows = []
    for m in sorted(reply.members, key=lambda m: m.name):
        rows.append([m.name + (" *" if m.is_leader else ""), ROLE_NAMES.get(m.role, "?"), m.timeline, m.term,
                     format_lsn(m.flush_lsn), format_lsn(m.replay_lsn), m.lag_bytes,
                     "yes" if m.streaming else "no", m.upstream or "-",
                     "sync" if m.in_sync_set else "-", "" if m.reachable else "UNREACHABLE",
                     _note(m)])
    head = (f"cluster state: {reply.state or '?'}{'  (PAUSED)' if reply.paused else ''}  "
            f"leader: {reply.leader.name if reply.leader.present else '-'}  "
            f"sync: {reply.sync_standbys or '-'}")
    table = format_table(["member", "role", "tl", "term", "flush", "replay", "lag_bytes", "streaming",
                          "upstream", "sync", "reach", "note"], rows)
    return head + "\n" + table


def _list(client: ClusterClient, args) -> int:
    reply = client.active_members() or client.list_members()   # the active one knows the state
    pending = ctl_views.scheduled_line(reply, time.time())
    _emit(args, to_dict(reply), members_table(reply) + (f"\n{pending}" if pending else ""))
    return 0


def _leader(client: ClusterClient, args) -> int:
    if not args.watch:
        leader = client.get_leader()
        _emit(args, to_dict(leader), leader_line(leader))
        return 0 if leader.present else 1
    stop = threading.Event()
    followed = None      # --writable: the (name, term) last printed
    try:
        for leader in client.watch_leader(stop, on_error=lambda e: print(f"# stream broke ({e}), reconnecting",
                                                                         file=sys.stderr, flush=True)):
            if args.writable:
                if not (leader.present and leader.writable) or (leader.name, leader.term) == followed:
                    continue
                followed = (leader.name, leader.term)
            now = wlog.timestamp(time.time())
            if args.json:
                print(json.dumps({"at": now, **to_dict(leader)}), flush=True)
            else:
                print(f"{now}  {leader_line(leader)}", flush=True)
    except KeyboardInterrupt:
        stop.set()
    return 0


def _operation(reply: cluster_pb2.OperationReply, args) -> int:
    text = f"{'accepted' if reply.accepted else 'refused'}: {reply.detail}"
    _emit(args, to_dict(reply), text)
    return 0 if reply.accepted else 1


def _switchover(client: ClusterClient, args) -> int:
    if args.cancel:
        return ctl_ops.cancel(client, args, lambda d, t: _emit(args, d, t), to_dict)
    at = ctl_ops.scheduled_at(args)
    reply = client.switchover(args.to, args.leader, scheduled_at=at)
    if at:      # it runs later, maybe under another orchestrator: the outcome is for list / history
        return _operation(reply, args)
    return _requested(client, reply, args)


def _failover(client: ClusterClient, args) -> int:
    return _requested(client, client.failover(args.to, force=args.force), args)


def _requested(client: ClusterClient, reply: cluster_pb2.OperationReply, args) -> int:
    """After an accepted Switchover/Failover: return at once (``--no-wait``),
    or follow the request to its outcome, printing progress. 0 only when it
    was carried out (and, if one was named, the candidate leads)."""
    if args.no_wait or not reply.accepted or not reply.requested_at:
        return _operation(reply, args)
    if not args.json:
        print(f"accepted: {reply.detail}; waiting for the outcome (--no-wait to return at once)", flush=True)
    deadline = time.monotonic() + args.wait_timeout
    last = ""
    while True:
        try:
            st = client.operation(reply.requested_at)
        except WalrusError as exc:     # an orchestrator may be restarting: keep waiting
            st, progress = None, f"no answer: {exc}"
        else:
            progress = f"{st.state}: {st.detail}" if st.detail else st.state
            done = _ended(st, args)
            if done is not None:
                return _outcome(st, reply, args, done)
        if progress != last and not args.json:
            print(f"  {wlog.timestamp(time.time())} {progress}", flush=True)
            last = progress
        if time.monotonic() >= deadline:
            _emit(args, {"accepted": True, "outcome": "timeout", "reason": last, "requested_at": reply.requested_at},
                  f"timeout: no outcome after {args.wait_timeout:g} s (last: {last})")
            return 1
        time.sleep(0.3)


def _ended(st: cluster_pb2.OperationStatus, args) -> bool | None:
    """True: carried out; False: refused/superseded; None: keep waiting."""
    if st.pending or not st.outcome:
        return None
    if st.outcome != "done":
        return False
    wanted = args.to
    if wanted and not (st.leader.present and st.leader.name == wanted):
        return None        # promoting it: wait until it holds the leader key
    return True


def _outcome(st: cluster_pb2.OperationStatus, reply: cluster_pb2.OperationReply, args, ok: bool) -> int:
    data = {"accepted": True, "outcome": st.outcome, "reason": st.reason, "requested_at": reply.requested_at,
            "leader": to_dict(st.leader)}
    _emit(args, data, f"{st.outcome}: {st.reason}\nleader: {leader_line(st.leader)}")
    return 0 if ok else 1


def _pause(client: ClusterClient, args) -> int:
    return _operation(client.pause(), args)


def _resume(client: ClusterClient, args) -> int:
    return _operation(client.resume(), args)


def receipt_text(r) -> str:
    """The RPO receipt: exact once the old leader rejoined (what it discarded), else a lower bound."""
    if not r.discarded_by:
        return f"at least {r.bytes_possibly_lost} B lost (old leader not rejoined yet)"
    if r.discarded_bytes < 0:
        return f"unknown: {r.discarded_by} was re-cloned"
    counts = f", {r.discarded_records} records, {r.discarded_transactions} writes" if r.discarded_records >= 0 else ""
    return (f"exact: {r.discarded_bytes} B{counts} discarded by {r.discarded_by} "
            f"({format_lsn(r.discard_fork_lsn)}..{format_lsn(r.discard_end_lsn)})")


def history_table(records, width: int = ctl_views.TABLE_WIDTH) -> str:
    """One row per record, its receipt and reason on lines of their own below
    it, wrapped to ``width`` (``--json`` has the whole text on one line)."""
    rows = [[r.term, r.kind, r.old_leader or "-", r.new_leader or "-", format_lsn(r.last_primary_lsn),
             format_lsn(r.promoted_lsn), r.bytes_possibly_lost, _ts(r.started_at),
             f"{max(0.0, r.finished_at - r.started_at):.3f}" if r.finished_at else "-"]
            for r in records]
    lines = format_table(["term", "kind", "old", "new", "last_primary_lsn", "promoted_lsn", "bytes_lost?",
                          "started", "took_s"], rows).splitlines()
    out = lines[:2]
    for line, r in zip(lines[2:], records):
        out.append(line)
        out += ctl_views.detail_lines("receipt", receipt_text(r), width)
        if r.reason:
            out += ctl_views.detail_lines("reason", r.reason, width)
    return "\n".join(out)


def _history(client: ClusterClient, args) -> int:
    reply = client.history(args.limit)
    text = history_table(reply.records) if reply.records else "no history yet"
    members = client.active_members()
    pending = ctl_views.scheduled_line(members, time.time()) if members is not None else ""
    data = to_dict(reply)
    if members is not None and members.switchover_pending:
        data["pending"] = {"candidate": members.switchover_candidate,
                           "scheduled_at": members.switchover_scheduled_at}
    _emit(args, data, text + (f"\n{pending}" if pending else ""))
    return 0


def explain_text(reply: cluster_pb2.ExplainFailoverReply) -> str:
    rows = [[c.rank or "-", c.name, format_lsn(c.flush_lsn), c.timeline, c.priority,
             "yes" if c.eligible else "no", c.reason] for c in sorted(reply.candidates, key=_rank_key)]
    head = f"state: {reply.state or '?'}  winner now: {reply.winner or '(none)'}"
    if reply.detail:
        head += f"\n{reply.detail}"
    return head + "\n" + format_table(["rank", "member", "flush", "tl", "priority", "eligible", "reason"], rows)


def _rank_key(c) -> tuple:
    return (c.rank == 0, c.rank, c.name)


def _explain(client: ClusterClient, args) -> int:
    reply = client.explain()
    _emit(args, to_dict(reply), explain_text(reply))
    return 0


def _topology(client: ClusterClient, args) -> int:
    roots = ctl_views.topology(client.active_members() or client.list_members())
    _emit(args, {"topology": [r.to_dict() for r in roots]}, "\n".join(ctl_views.topology_lines(roots)))
    return 0


def _dsn(client: ClusterClient, args) -> int:
    """PostgreSQL: a libpq string; the embedded engine speaks no libpq, so its
    Store gRPC data address(es), said so."""
    try:
        targets = ctl_views.dsn_targets(client.active_members() or client.list_members(), args.role)
    except ctl_views.DsnUnavailable as exc:
        raise WalrusError(f"dsn --role {args.role}: {exc}") from None
    engine = _engine_of(targets, args.timeout)
    data = {"role": args.role, "engine": engine, "members": [m.name for m in targets],
            "addresses": [m.data_address for m in targets], "dsn": None}
    if engine == "postgres":
        data["dsn"] = ctl_views.libpq_dsn(targets, args.role, args.user, args.dbname)
        text = data["dsn"]
    else:
        text = (f"{', '.join(data['addresses'])}  ({engine} engine: no libpq; "
                f"its Store gRPC service on the data address of {', '.join(data['members'])})")
    _emit(args, data, text)
    return 0


def _engine_of(members, timeout_s: float) -> str:
    """The engine kind ("postgres"/"embedded") the first answering agent reports.
    WalrusError when none answers: a dsn needs to know which."""
    agents = AgentClient(timeout_s=timeout_s)
    try:
        for m in members:
            status = agents.status(m.agent_address) if m.agent_address else None
            if status is not None and status.engine.engine:
                return status.engine.engine
    finally:
        agents.close()
    raise WalrusError(f"cannot tell the engine: no agent of {', '.join(m.name for m in members)} answered "
                      f"within {timeout_s:g} s")


def _version(args) -> int:
    """Our version; with a cluster named, each member's (GetStatus of its agent) and,
    with ``--etcd``, each orchestrator's (its registration)."""
    mine = walrus_ha.__version__
    if not (args.dir or args.orchestrators or args.etcd or os.environ.get("WALRUS_ORCHESTRATORS")):
        _emit(args, {"version": mine}, f"walrus ctl {mine}")
        return 0
    orchestrators = {r.id: r.version for r in _registered(args)} if args.etcd else {}
    client = ClusterClient(orchestrator_addresses(args), timeout_s=args.timeout)
    agents = AgentClient(timeout_s=args.timeout)
    try:
        members: dict[str, str | None] = {}
        for m in client.list_members().members:
            status = agents.status(m.agent_address) if m.agent_address else None
            members[m.name] = status.version if status is not None else None
    finally:
        client.close()
        agents.close()
    _emit(args, {"version": mine, "members": members, "orchestrators": orchestrators},
          ctl_views.versions_table(mine, members, orchestrators))
    return 0


_ACTIONS = {"list": _list, "leader": _leader, "switchover": _switchover, "failover": _failover,
            "pause": _pause, "resume": _resume, "history": _history, "explain": _explain,
            "topology": _topology, "dsn": _dsn,
            "restart": lambda c, a: ctl_ops.restart(c, a, lambda d, t: _emit(a, d, t), to_dict),
            "reinit": lambda c, a: ctl_ops.reinit(c, a, lambda d, t: _emit(a, d, t), to_dict),
            "flush": lambda c, a: ctl_ops.cancel(c, a, lambda d, t: _emit(a, d, t), to_dict)}
