"""Plain-text tables for the operator tools (no dependencies)."""
from __future__ import annotations


def format_table(headers: list[str], rows: list[list[object]], rule: bool = True) -> str:
    """Left-aligned columns separated by two spaces; a dashed rule under the
    header unless ``rule`` is False."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    if rule:
        lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
