"""PostgreSQL parameters changed at run time (the cluster ``config`` key).

The one rule: after ``postgresql.conf`` is rewritten and the server told to
reload, a setting that only a restart can apply (context ``postmaster``) is
reported as pending, read from ``pg_file_settings``: PostgreSQL parses the
files afresh for that view and marks such a setting ``applied = false``
while the running value differs, so the answer does not depend on when the
reload signal was processed.
"""
from __future__ import annotations

# The last occurrence of each setting in the files wins; earlier ones read as not applied.
PENDING_RESTART_SQL = """
SELECT f.name FROM (SELECT DISTINCT ON (lower(name)) name, applied FROM pg_file_settings
                    ORDER BY lower(name), seqno DESC) f
JOIN pg_settings s ON s.name = lower(f.name)
WHERE NOT f.applied AND s.context = 'postmaster'
ORDER BY f.name
"""


def pending_from_rows(rows: list[tuple]) -> tuple[str, ...]:
    """The setting names of ``PENDING_RESTART_SQL``'s rows."""
    return tuple(str(r[0]) for r in rows)
