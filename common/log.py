"""Logging: one line per event, ``key=value`` pairs after a short message.

``log_event(logger, "transition", frm=..., to=..., reason=...)`` is the one
way decisions and transitions are logged, so they can be grepped and parsed.
Never pass secrets.
"""
from __future__ import annotations

import logging
import sys


def setup(level: str = "INFO", name: str = "") -> None:
    """Configure the root logger once for a process."""
    fmt = "%(asctime)s.%(msecs)03d %(levelname)s " + (f"[{name}] " if name else "") + "%(name)s: %(message)s"
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), format=fmt,
                        datefmt="%H:%M:%S", stream=sys.stderr, force=True)


def _fmt(value: object) -> str:
    text = str(value)
    return f'"{text}"' if (" " in text or not text) else text


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: object) -> None:
    """Log ``event key=value ...`` in one line."""
    logger.log(level, "%s %s", event, " ".join(f"{k}={_fmt(v)}" for k, v in fields.items()))
