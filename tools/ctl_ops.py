"""``walrus ctl restart | reinit | flush`` and ``switchover --scheduled /
--cancel``: operator requests on one member or on the pending switchover.

Fetch and print only; the rules are the orchestrator's (``orchestrator/
member_ops.py``, ``core/schedule.py``) and the agent's (``node/agent/
operations.py``). Parsing ``--scheduled`` is ``ctl_views.parse_when``.
"""
from __future__ import annotations

import argparse
import datetime
import time
from collections.abc import Callable

from walrus_ha.common import log as wlog
from walrus_ha.common.errors import InvalidArgument, WalrusError
from walrus_ha.tools import ctl_views
from walrus_ha.tools.localcluster.client import ClusterClient

RESTART_RPC_SLACK_S = 150.0     # the orchestrator's own slack (120 s) plus the way there and back


def add_arguments(sub, common: argparse.ArgumentParser, sw: argparse.ArgumentParser) -> None:
    """The restart / reinit / flush parsers, and ``--scheduled`` / ``--cancel`` on switchover ``sw``."""
    sw.add_argument("--scheduled", default="", metavar="AT",
                    help="start at AT: HH:MM (next such time, local) or ISO-8601; kept in etcd, survives an "
                         "orchestrator failover; shown by list/history; returns once accepted")
    sw.add_argument("--cancel", action="store_true", help="cancel the pending (e.g. scheduled) switchover")
    rs = sub.add_parser("restart", parents=[common], help="restart a member's engine in place (no failover)")
    rs.add_argument("member", metavar="MEMBER")
    rs.add_argument("--role", choices=("primary", "replica", "any"), default="any",
                    help="only if MEMBER has this role now (default any)")
    rs.add_argument("--pending", action="store_true",
                    help="only if a setting waits for a restart (PostgreSQL pending_restart; embedded: never)")
    rs.add_argument("--force", action="store_true", help="even while a failover or switchover is in flight")
    rs.add_argument("--restart-timeout", type=float, default=0.0, metavar="S",
                    help="planned outage: no failover for S seconds while the engine restarts "
                         "(default 2 x the node's ttl); after it, normal failover rules apply")
    ri = sub.add_parser("reinit", parents=[common], help="wipe and re-clone a standby from the primary")
    ri.add_argument("member", metavar="MEMBER")
    ri.add_argument("--force", action="store_true",
                    help="even a member of the synchronous set, or while a failover is in flight")
    ri.add_argument("--wait", action="store_true", help="show progress until it streams again")
    ri.add_argument("--wait-timeout", type=float, default=600.0, metavar="S",
                    help="with --wait: give up after S seconds, exit 1 (default 600)")
    fl = sub.add_parser("flush", parents=[common], help="cancel a pending request (like patronictl flush)")
    fl.add_argument("what", choices=("switchover",), metavar="switchover")


def scheduled_at(args: argparse.Namespace) -> float:
    """``--scheduled`` as unix time (0 = now); InvalidArgument when unreadable."""
    if not getattr(args, "scheduled", ""):
        return 0.0
    try:
        return ctl_views.parse_when(args.scheduled, datetime.datetime.now().astimezone())
    except ValueError as exc:
        raise InvalidArgument(f"--scheduled: {exc}") from None


def cancel(client: ClusterClient, args: argparse.Namespace, emit: Callable[[dict, str], None],
           to_dict: Callable) -> int:
    reply = client.cancel_switchover()
    emit(to_dict(reply), f"cancelled: {reply.detail}")
    return 0


def restart(client: ClusterClient, args: argparse.Namespace, emit: Callable[[dict, str], None],
            to_dict: Callable) -> int:
    rpc = (args.restart_timeout or 60.0) + RESTART_RPC_SLACK_S
    reply = client.restart_member(args.member, role="" if args.role == "any" else args.role,
                                  pending=args.pending, force=args.force, timeout_s=args.restart_timeout,
                                  rpc_timeout_s=rpc)
    emit(to_dict(reply), f"{args.member}: {reply.detail}")
    return 0


def reinit(client: ClusterClient, args: argparse.Namespace, emit: Callable[[dict, str], None],
           to_dict: Callable) -> int:
    reply = client.reinit_member(args.member, force=args.force)
    if not args.wait:
        emit(to_dict(reply), f"{args.member}: {reply.detail} (walrus ctl list shows when it streams again)")
        return 0
    if not args.json:
        print(f"{args.member}: {reply.detail}", flush=True)
    return _follow_reinit(client, args, emit)


def reinit_progress(m) -> tuple[str, bool]:
    """(one line on ``m``'s re-clone, whether it is over: streaming again,
    no re-clone wanted). Pure."""
    if m is None:
        return "not listed", False
    done = m.streaming and not m.needs_reclone and m.reachable
    state = m.state or ("unreachable" if not m.reachable else "?")
    what = "re-clone pending" if m.needs_reclone else ("streaming" if m.streaming else "not streaming")
    return f"{state}: {what}{' from ' + m.upstream if m.upstream and m.streaming else ''}", done


def _follow_reinit(client: ClusterClient, args: argparse.Namespace, emit: Callable[[dict, str], None]) -> int:
    deadline = time.monotonic() + args.wait_timeout
    last = ""
    while True:
        try:
            reply = client.active_members() or client.list_members()
            m = next((x for x in reply.members if x.name == args.member), None)
            line, done = reinit_progress(m)
        except WalrusError as exc:          # an orchestrator may be restarting: keep waiting
            line, done = f"no answer: {exc}", False
        if line != last and not args.json:
            print(f"  {wlog.timestamp(time.time())} {line}", flush=True)
            last = line
        if done:      # the agent set needs_reclone before Reinit returned; only the re-clone clears it
            emit({"member": args.member, "outcome": "done", "state": line}, f"{args.member}: re-cloned, {line}")
            return 0
        if time.monotonic() >= deadline:
            emit({"member": args.member, "outcome": "timeout", "state": line},
                 f"timeout: {args.member} not streaming again after {args.wait_timeout:g} s (last: {line})")
            return 1
        time.sleep(0.3)


__all__ = ["add_arguments", "cancel", "reinit", "reinit_progress", "restart", "scheduled_at"]
