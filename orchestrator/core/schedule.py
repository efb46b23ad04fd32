"""Time-bound operator plans: a scheduled switchover and a planned restart.

The one rule: an operator's plan only ever holds the core back within a
window it names, and never past it. A switchover scheduled at T starts at T
(DUE), is left alone before (NOT_DUE) and is refused when the core first
sees it more than ``scheduled_grace`` after T (EXPIRED: e.g. every
orchestrator was down at T; a late switchover is a surprise, not a plan).
A leader whose agent answers and reports a planned restart is not
suspected until the restart's deadline; after it, the normal rules apply.
Pure: ``now`` is passed in (wall-clock seconds, as everywhere in the core).
"""
from __future__ import annotations

import enum

from walrus_ha.orchestrator.core.model import MemberView


class Due(enum.Enum):
    NOT_DUE = "not_due"
    DUE = "due"
    EXPIRED = "expired"


def switchover_due(scheduled_at: float, now: float, grace: float) -> Due:
    """Whether a request scheduled at ``scheduled_at`` (0 = at once) runs at
    ``now``. DUE from ``scheduled_at`` up to ``scheduled_at + grace``
    inclusive; EXPIRED after."""
    if scheduled_at <= 0:
        return Due.DUE
    if now < scheduled_at:
        return Due.NOT_DUE
    if now - scheduled_at > grace:
        return Due.EXPIRED
    return Due.DUE


def restarting(member: MemberView | None, now: float) -> bool:
    """``member``'s agent answers and says its engine restarts by an
    operator's request whose deadline (``restarting_until``) is still ahead."""
    return member is not None and member.reachable and now < member.restarting_until


__all__ = ["Due", "restarting", "switchover_due"]
