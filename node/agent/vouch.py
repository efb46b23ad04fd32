"""Terms and upstreams an RPC asks the agent to adopt must be vouched for by etcd.

The one rule: **a term reaches the engine (which persists it) only when an
etcd view shows a cluster term at least that high**, and a Follow/Rejoin
upstream only when etcd names a member (or the leader) of that name at that
data address. A caller can otherwise poison a node with a term no leader will
ever reach (``Follow(term=2**64-1)``: the node then refuses every stream and
every Promote for good) or point it at a stranger.

``problem(view, term, upstream)`` is pure (no I/O); ``check`` asks the
agent's last loop view first and reads etcd afresh (``read_view``) only when
that view does not vouch (terms only grow, so an older view that vouches is
enough).
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from walrus_ha.common.log import log_event
from walrus_ha.common.records import ClusterView
from walrus_ha.node.engine.base import Upstream

log = logging.getLogger(__name__)

MAX_ECHO = 64     # characters of a caller's value echoed in an error (gRPC metadata is small)


def short(value: str) -> str:
    """``value`` as repr, cut to ``MAX_ECHO`` characters (for error sentences)."""
    text = repr(value)
    return text if len(text) <= MAX_ECHO else f"{text[:MAX_ECHO]}... ({len(value)} characters)"


def problem(view: ClusterView, term: int, upstream: Upstream | None = None) -> str | None:
    """Why ``view`` does not vouch for ``term`` (and ``upstream``), or None."""
    if term > view.term:
        return (f"term {term} is newer than the cluster's term {view.term} in etcd; "
                "a term is adopted only when etcd vouches for it")
    if upstream is None:
        return None
    known = set()
    rec = view.member(upstream.name)
    if rec is not None and rec.data_address:
        known.add(rec.data_address)
    if view.leader is not None and view.leader.name == upstream.name and view.leader.data_address:
        known.add(view.leader.data_address)
    if not known:
        return f"unknown member {short(upstream.name)}: etcd has no member or leader of that name"
    if upstream.address not in known:
        return (f"{short(upstream.name)} serves data at {', '.join(sorted(known))} according to etcd, "
                f"not at {short(upstream.address)}")
    return None


def check(last_view: ClusterView | None, read_view: Callable[[], ClusterView], term: int,
          upstream: Upstream | None, what: str) -> str | None:
    """``problem`` against ``last_view`` (the agent's loop view, if any), then
    against a fresh etcd read, ``read_view()`` (which raises ``DcsUnavailable``
    when etcd cannot be read in time)."""
    view = last_view
    if view is not None and problem(view, term, upstream) is None:
        return None
    view = read_view()
    why = problem(view, term, upstream)
    if why is not None:
        log_event(log, "rpc.unvouched", logging.WARNING, rpc=what, term=term, etcd_term=view.term,
                  upstream=short(str(upstream)) if upstream else "", reason=why)
    return why


__all__ = ["MAX_ECHO", "short", "problem", "check"]
