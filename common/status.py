"""The value enums of one member's status, shared by every layer that
describes a member: the engine (``node.engine.base``), the etcd records
(``common.records``, which store the ``.value`` strings) and the
orchestrator's decision core (``orchestrator.core.model``).

The one rule: pure values. This module imports nothing but the standard
library's ``enum`` (the decision core may import it; its purity test checks).
"""
from __future__ import annotations

import enum


class Role(enum.Enum):
    """A member's engine role. An engine reports PRIMARY, STANDBY or STOPPED;
    UNKNOWN is what the others say of a member nobody has heard from (no
    answer and no member record) and the default of ``MemberRecord.role``."""
    PRIMARY = "primary"
    STANDBY = "standby"
    STOPPED = "stopped"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, text: str) -> Role:
        """The role for ``text`` (case-insensitive); UNKNOWN for anything unrecognised."""
        try:
            return cls(str(text).lower())
        except ValueError:
            return cls.UNKNOWN


class SyncMethod(enum.Enum):
    """How a synchronous standby set counts: ``FIRST n (...)`` (the first n
    names that are connected) or ``ANY n (...)`` (any n of them)."""
    FIRST = "first"
    ANY = "any"
