"""Logging: one line per event, ``key=value`` pairs after a short message.

``log_event(logger, "transition", frm=..., to=..., reason=...)`` is the one
way decisions and transitions are logged, so they can be grepped and parsed.
Never pass secrets.

Every line starts with an ISO-8601 timestamp with date, milliseconds and the
zone offset (``2026-12-03T15:47:02.123+00:00``, the process's local zone).
``setup(..., fmt=LogFormat.JSON)`` writes one JSON object per line instead:
``ts``, ``level``, ``component`` (the process: node or orchestrator name),
``logger``, ``msg`` and, for ``log_event`` lines, ``event`` and ``fields``
(the keyword arguments, JSON-typed where they are numbers/booleans/None).
"""
from __future__ import annotations

import datetime
import enum
import json
import logging
import sys

# Attributes log_event attaches to its records (read by the JSON formatter).
_EVENT_ATTR = "walrus_event"
_FIELDS_ATTR = "walrus_fields"


class LogFormat(enum.Enum):
    """The ``log.format`` config value."""
    TEXT = "text"
    JSON = "json"


def timestamp(unix: float) -> str:
    """``unix`` as ISO-8601 with date, milliseconds and the local zone offset."""
    return datetime.datetime.fromtimestamp(unix).astimezone().isoformat(timespec="milliseconds")


class TextFormatter(logging.Formatter):
    """``<ISO ts> LEVEL [component] logger: message``."""

    def __init__(self, component: str = "") -> None:
        super().__init__("%(levelname)s " + (f"[{component}] " if component else "") + "%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return f"{timestamp(record.created)} {super().format(record)}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line (see the module docstring for the keys)."""

    def __init__(self, component: str = "") -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {"ts": timestamp(record.created), "level": record.levelname}
        if self.component:
            data["component"] = self.component
        data["logger"] = record.name
        event = getattr(record, _EVENT_ATTR, None)
        if event is not None:
            data["msg"] = event
            data["event"] = event
            data["fields"] = {k: _json_value(v) for k, v in getattr(record, _FIELDS_ATTR, {}).items()}
        else:
            data["msg"] = record.getMessage()
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, separators=(",", ":"))


def _json_value(value: object) -> object:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, enum.Enum):
        return _json_value(value.value)
    return str(value)


def formatter(fmt: LogFormat | str = LogFormat.TEXT, component: str = "") -> logging.Formatter:
    """The formatter for ``fmt`` (a LogFormat or its value)."""
    return JsonFormatter(component) if LogFormat(fmt) is LogFormat.JSON else TextFormatter(component)


def setup(level: str = "INFO", name: str = "", fmt: LogFormat | str = LogFormat.TEXT) -> None:
    """Configure the root logger once for a process: stderr, ``fmt``, ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt, name))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler], force=True)


def setup_tool(level: str = "WARNING") -> None:
    """For the command-line tools: the same line format, unless logging is
    configured already (a daemon's ``setup`` later replaces it; under pytest
    its capture handlers stay)."""
    if not logging.getLogger().handlers:
        setup(level)


def _fmt(value: object) -> str:
    text = str(value)
    return f'"{text}"' if (" " in text or not text) else text


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: object) -> None:
    """Log ``event key=value ...`` in one line (JSON: ``event`` and ``fields``)."""
    logger.log(level, "%s %s", event, " ".join(f"{k}={_fmt(v)}" for k, v in fields.items()),
               extra={_EVENT_ATTR: event, _FIELDS_ATTR: fields})
