"""Log lines: ISO-8601 timestamps with date and zone; the JSON format."""
import datetime
import json
import logging
import re

import pytest

from walrus_ha.common import log as wlog

ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d"


def _record(msg="plain %s", args=("text",), **extra):
    rec = logging.LogRecord("walrus_ha.x", logging.WARNING, __file__, 1, msg, args, None)
    rec.created = 1796312822.123          # 2026-12-03T15:47:02.123 UTC
    for k, v in extra.items():
        setattr(rec, k, v)
    return rec


def test_timestamp_has_date_millis_and_zone():
    ts = wlog.timestamp(1796312822.123)
    assert re.fullmatch(ISO, ts)
    assert datetime.datetime.fromisoformat(ts).timestamp() == pytest.approx(1796312822.123, abs=1e-3)


def test_text_line_starts_with_iso_timestamp():
    line = wlog.formatter("text", "node1").format(_record())
    assert re.match(ISO + r" WARNING \[node1\] walrus_ha\.x: plain text$", line), line


def test_log_event_fields_reach_the_json_line():
    captured = []

    class Keep(logging.Handler):
        def emit(self, record):
            captured.append(record)
    logger = logging.getLogger("walrus_ha.test_log")
    logger.addHandler(Keep())
    logger.setLevel(logging.INFO)
    try:
        wlog.log_event(logger, "transition", frm="a", to="b", term=7, ok=True, lag=None,
                       fmt=wlog.LogFormat.JSON, reason="two words")
    finally:
        logger.handlers.clear()
    (rec,) = captured
    assert rec.getMessage() == 'transition frm=a to=b term=7 ok=True lag=None fmt=LogFormat.JSON reason="two words"'
    data = json.loads(wlog.formatter(wlog.LogFormat.JSON, "orch1").format(rec))
    assert re.fullmatch(ISO, data.pop("ts"))
    assert data == {"level": "INFO", "component": "orch1", "logger": "walrus_ha.test_log", "msg": "transition",
                    "event": "transition", "fields": {"frm": "a", "to": "b", "term": 7, "ok": True, "lag": None,
                                                      "fmt": "json", "reason": "two words"}}


def test_json_line_of_a_plain_record_with_exception():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys
        rec = _record(exc_info=sys.exc_info())
    line = wlog.formatter("json").format(rec)
    assert "\n" not in line
    data = json.loads(line)
    assert data["msg"] == "plain text" and "component" not in data and "ValueError: boom" in data["exc"]


def test_setup_installs_the_formatter():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        wlog.setup("DEBUG", "n1", fmt="json")
        assert isinstance(root.handlers[0].formatter, wlog.JsonFormatter) and root.level == logging.DEBUG
        wlog.setup("INFO", "n1")
        assert isinstance(root.handlers[0].formatter, wlog.TextFormatter)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
