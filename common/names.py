"""What a member name may be, for every place that accepts one from a caller.

Member names become etcd keys (``members/<name>``), upstream strings
(``name@host:port``) and replication slot names, and are echoed in error
sentences: at most ``MAX_NAME`` characters, no ``/``, ``\\`` or ``@``, no
whitespace or control characters, and not ``.`` or ``..``.
"""
from __future__ import annotations

MAX_NAME = 128
_FORBIDDEN = set("/\\@")


def name_problem(name: str, what: str = "name") -> str | None:
    """Why ``name`` is not a valid member name (a short sentence), or None."""
    if not name:
        return f"{what} must not be empty"
    if len(name) > MAX_NAME:
        return f"{what} is {len(name)} characters long; the limit is {MAX_NAME}"
    if name in (".", ".."):
        return f"{what} must not be '.' or '..'"
    bad = sorted({c for c in name if c in _FORBIDDEN or not c.isprintable() or c.isspace()})
    if bad:
        return f"{what} {name!r} must not contain {', '.join(repr(c) for c in bad)}"
    return None


__all__ = ["MAX_NAME", "name_problem"]
