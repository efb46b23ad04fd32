"""Log sequence numbers: byte positions in the write-ahead log.

An LSN is a plain ``int`` (0 .. 2**64-1). It is printed and parsed the
PostgreSQL way: the high and low 32 bits in upper-case hex, ``0/16B3748``.
"""
from __future__ import annotations

MAX_LSN = (1 << 64) - 1


def format_lsn(lsn: int) -> str:
    """Return ``lsn`` as ``HI/LO`` hex, like PostgreSQL's ``pg_lsn``."""
    if not 0 <= lsn <= MAX_LSN:
        raise ValueError(f"LSN out of range: {lsn}")
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    """Parse ``HI/LO`` hex into an int. Raises ValueError with the bad text."""
    hi, sep, lo = text.strip().partition("/")
    if not sep or not hi or not lo or len(hi) > 8 or len(lo) > 8:
        raise ValueError(f"not an LSN (expected HI/LO hex like 0/16B3748): {text!r}")
    try:
        return (int(hi, 16) << 32) | int(lo, 16)
    except ValueError:
        raise ValueError(f"not an LSN (expected HI/LO hex like 0/16B3748): {text!r}") from None
