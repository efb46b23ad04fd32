"""``walrus ctl config show|set``, ``edit-config`` and ``reload``.

The config verbs talk to etcd directly (docs/design.md, "Cluster-wide
configuration"): the document is data with a revision, validated here by the
same schema the members use (``common/cluster_config.py``) and written by
compare-and-swap on the revision read, so two editors cannot lose each
other's change, and it stays editable while no orchestrator runs. They need
etcd: ``--etcd`` (with ``--cluster``) or ``--dir`` (its ``cluster.json``).
``reload`` asks each agent's ``NodeAgent.Reload``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from walrus_ha.common import cluster_config as cc
from walrus_ha.common.dcs import Dcs
from walrus_ha.common.errors import ConfigError, WalrusError
from walrus_ha.tools.localcluster.table import format_table

SET_ATTEMPTS = 5     # `config set`: re-apply on a newer revision this often before giving up


class ConcurrentEdit(WalrusError):
    """The document changed between our read and our write; nothing was written."""


def add_arguments(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``config``, ``edit-config`` and ``reload`` under ``walrus ctl``."""
    confirm = argparse.ArgumentParser(add_help=False)
    confirm.add_argument("--force", action="store_true", help="write without asking (never asks without a tty)")
    cfg = sub.add_parser("config", help="the cluster-wide config in etcd: show, set k=v")
    cfg_sub = cfg.add_subparsers(dest="config_action", metavar="show|set", required=True)
    cfg_sub.add_parser("show", parents=[common], help="the document, its revision, which member runs which")
    st = cfg_sub.add_parser("set", parents=[common, confirm],
                            help="change keys: ttl=20 postgres.parameters.work_mem=8MB")
    st.add_argument("assignments", nargs="+", metavar="KEY=VALUE", help="a YAML scalar; KEY=null removes KEY")
    ed = sub.add_parser("edit-config", parents=[common, confirm],
                        help="edit the cluster config in $EDITOR (or --set / --apply), validated, CAS-written")
    ed.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE")
    ed.add_argument("--apply", metavar="FILE", help="replace the document with FILE's YAML ('-' = stdin)")
    rl = sub.add_parser("reload", parents=[common],
                        help="agents re-read their own config file and apply what can change live")
    rl.add_argument("member", nargs="?", default="", help="only this member (default: all)")


ACTIONS = ("config", "edit-config", "reload")


def run(args: argparse.Namespace, agent_addresses: Callable[[], dict[str, str]]) -> int:
    """One config verb; ``agent_addresses()`` lists members (for ``reload``
    when etcd is not known)."""
    if args.action == "reload":
        return _reload(args, agent_addresses)
    with _dcs(args) as dcs:
        if args.action == "config" and args.config_action == "show":
            return _show(dcs, args)
        if args.action == "edit-config" and not args.assignments:
            return _edit(dcs, args)
        return _set(dcs, args)


def _etcd(args: argparse.Namespace) -> tuple[list[str], str] | None:
    """(endpoints, cluster) from ``--etcd`` or ``--dir``'s cluster.json; None if neither."""
    if getattr(args, "etcd", None):
        return [e.strip() for e in args.etcd.split(",") if e.strip()], args.cluster
    if getattr(args, "dir", None):
        path = os.path.join(args.dir, "cluster.json")
        try:
            with open(path) as f:
                data = json.load(f)
            return list(data["etcd_endpoints"]), data["spec"]["cluster"]
        except (OSError, ValueError, KeyError) as exc:
            raise WalrusError(f"cannot read etcd endpoints from {path}: {exc}") from None
    return None


def _dcs(args: argparse.Namespace) -> Dcs:
    where = _etcd(args)
    if where is None:
        raise WalrusError(f"ctl {args.action} reads and writes etcd: give --etcd host:port,... [--cluster NAME] "
                          "or --dir DIR")
    return Dcs(where[0], where[1], timeout_s=args.timeout)


# -- show ---------------------------------------------------------------------------

def _show(dcs: Dcs, args: argparse.Namespace) -> int:
    view = dcs.read_view(deadline_s=args.timeout)
    doc, rev = view.config or {}, view.config_mod_revision
    members = {m.name: m.config_revision for m in view.members}
    if args.json:
        print(json.dumps({"revision": rev, "config": doc, "members": members}, indent=2))
        return 0
    print(f"# cluster config, revision {rev or '(none: not seeded yet)'}")
    print(cc.to_yaml(doc), end="")
    if members:
        rows: list[list[object]] = [[n, r or "-", "yes" if r == rev else "no"] for n, r in sorted(members.items())]
        print("\n" + format_table(["member", "runs revision", "current"], rows))
    return 0


# -- set / apply / edit ----------------------------------------------------------------

@dataclass(frozen=True)
class Written:
    revision: int
    changes: tuple[cc.Change, ...]
    written: bool


def edit(dcs: Dcs, transform: Callable[[dict], dict], confirm: Callable[[list[cc.Change]], bool], *,
         attempts: int = 1, deadline_s: float = 3.0) -> Written:
    """Read the document, ``transform`` it, validate, ask ``confirm(changes)``,
    write by compare-and-swap on the revision read. A newer revision at the
    write: the whole round again (``attempts`` in all), else ConcurrentEdit.
    ConfigError (naming the key) before anything is written."""
    for _ in range(attempts):
        doc, rev = dcs.get(dcs.keys.config, deadline_s=deadline_s)
        doc = doc if isinstance(doc, dict) else {}
        new = cc.normalize(transform(doc), source="new cluster config")
        changes = cc.diff(doc, new)
        if not changes:
            return Written(rev, (), False)
        if not confirm(changes):
            return Written(rev, tuple(changes), False)
        if dcs.cas_put(dcs.keys.config, new, rev, deadline_s=deadline_s):
            _, now = dcs.get(dcs.keys.config, deadline_s=deadline_s)
            return Written(now, tuple(changes), True)
    raise ConcurrentEdit(f"the cluster config changed while it was being edited (revision {rev} is no longer "
                         "current); nothing was written: look at it again ('walrus ctl config show') and retry")


def _set(dcs: Dcs, args: argparse.Namespace) -> int:
    assignments = cc.parse_assignments(args.assignments)
    replace_with = _read_apply(args.apply) if getattr(args, "apply", None) else None

    def transform(doc: dict) -> dict:
        base = replace_with if replace_with is not None else doc
        return cc.apply_assignments(base, assignments)

    asking = _asking(args)
    # A person confirmed one diff: never write another one. Otherwise key=value
    # edits re-apply on the newer document (they lose nothing there).
    attempts = 1 if asking or replace_with is not None else SET_ATTEMPTS
    return _report(args, edit(dcs, transform, _confirmer(args, asking), attempts=attempts, deadline_s=args.timeout))


def _read_apply(path: str) -> dict:
    try:
        text = sys.stdin.read() if path == "-" else open(path).read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return _parse_yaml(text, path)


def _parse_yaml(text: str, source: str) -> dict:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the cluster config must be a mapping")
    return data


def _edit(dcs: Dcs, args: argparse.Namespace) -> int:
    """$EDITOR on the document's YAML; validated, diffed, CAS on the revision edited."""
    if getattr(args, "apply", None):
        return _set(dcs, args)
    doc, rev = dcs.get(dcs.keys.config, deadline_s=args.timeout)
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    fd, path = tempfile.mkstemp(suffix=".yaml", prefix="walrus-config-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(f"# walrus cluster config, revision {rev}; save and quit to apply, empty the file to abort\n")
            f.write(cc.to_yaml(doc if isinstance(doc, dict) else {}))
        if subprocess.call([*shlex.split(editor), path]) != 0:
            raise WalrusError(f"editor {editor!r} failed; nothing written")
        with open(path) as f:       # by name: editors may save by replacing the file
            text = f.read()
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    if not text.strip() or all(line.startswith("#") for line in text.splitlines() if line.strip()):
        print("empty file: nothing written")
        return 1
    edited = _parse_yaml(text, "edited config")

    def transform(current: dict) -> dict:
        if current != (doc if isinstance(doc, dict) else {}):
            raise ConcurrentEdit(f"the cluster config changed while you edited it (revision {rev} is no "
                                 "longer current); nothing was written")
        return edited

    return _report(args, edit(dcs, transform, _confirmer(args, _asking(args)), deadline_s=args.timeout))


def _asking(args: argparse.Namespace) -> bool:
    return not args.force and not args.json and sys.stdin.isatty()


def _confirmer(args: argparse.Namespace, asking: bool) -> Callable[[list[cc.Change]], bool]:
    def confirm(changes: list[cc.Change]) -> bool:
        if args.json:
            return True
        print(cc.render_diff(changes), flush=True)
        if not asking:
            return True
        return input("Apply these changes? [y/N] ").strip().lower() in ("y", "yes")
    return confirm


def _report(args: argparse.Namespace, w: Written) -> int:
    if args.json:
        print(json.dumps({"written": w.written, "revision": w.revision,
                          "changes": [c.to_dict() for c in w.changes]}, indent=2))
    elif not w.changes:
        print(f"no change (revision {w.revision})")
    elif w.written:
        print(f"written: revision {w.revision}")
    else:
        print("not written")
    return 0 if w.written or not w.changes else 1


# -- reload ---------------------------------------------------------------------------------

def _reload(args: argparse.Namespace, agent_addresses: Callable[[], dict[str, str]]) -> int:
    from walrus_ha.tools.localcluster.client import AgentClient
    members = _members(args, agent_addresses)
    if args.member:
        if args.member not in members:
            raise WalrusError(f"no member {args.member!r} (members: {', '.join(sorted(members)) or 'none'})")
        members = {args.member: members[args.member]}
    agents = AgentClient(timeout_s=args.timeout)
    results: dict[str, dict[str, Any]] = {}
    failed = False
    try:
        for name, address in sorted(members.items()):
            try:
                r = agents.reload(address)
                results[name] = {"changed": r.changed, "applied": list(r.applied),
                                 "pending_restart": list(r.pending_restart), "detail": r.detail,
                                 "config_revision": r.config_revision}
            except WalrusError as exc:
                failed = True
                results[name] = {"error": str(exc)}
    finally:
        agents.close()
    if args.json:
        print(json.dumps({"members": results}, indent=2))
    else:
        rows = [[n, r.get("error") and "FAILED" or ("yes" if r["changed"] else "no"),
                 ", ".join(r.get("pending_restart", [])) or "-", r.get("error") or r["detail"]]
                for n, r in results.items()]
        print(format_table(["member", "changed", "pending restart", "detail"], rows))
    return 1 if failed else 0


def _members(args: argparse.Namespace, agent_addresses: Callable[[], dict[str, str]]) -> dict[str, str]:
    """name -> agent address: from etcd's member records when etcd is known, else the orchestrators."""
    if _etcd(args) is None:
        return agent_addresses()
    with _dcs(args) as dcs:
        view = dcs.read_view(deadline_s=args.timeout)
    return {m.name: m.agent_address for m in view.members if m.agent_address}
