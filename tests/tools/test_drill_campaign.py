"""Campaign verdicts, the round timeline and the HTML page: pure, on recorded data."""
from __future__ import annotations

import json

from walrus_ha.tools.drill import campaign, html, timeline
from walrus_ha.tools.drill.checker import Ack
from walrus_ha.tools.drill.report import RoundResult, document

ACKS = [Ack("k1", 10.0, "a", 1), Ack("k2", 10.5, "a", 1), Ack("k3", 11.4, "b", 2), Ack("k4", 11.45, "b", 2)]
EVENTS = [(10.2, "SIGKILL a"), (12.0, "restart a")]


def test_timeline_buckets_leaders_and_events():
    tl = timeline.build(ACKS, EVENTS, ["a", "b", "c"])
    assert tl["bucket_s"] == 0.02 and tl["duration_s"] == 2.0
    assert sum(tl["acks"]["a"]) == 2 and sum(tl["acks"]["b"]) == 2 and sum(tl["acks"]["c"]) == 0
    assert tl["acks"]["b"][int(1.4 / 0.02)] == 1          # k3 at 1.4 s after the first mark (10.0)
    assert tl["leaders"] == [[0.0, "a", 1], [1.4, "b", 2]]
    assert tl["events"] == [[0.2, "SIGKILL a"], [2.0, "restart a"]]
    json.dumps(tl)                                         # plain JSON data


def test_timeline_keeps_the_picture_small():
    long = [Ack(f"k{i}", i * 0.5, "a", 1) for i in range(200)]
    tl = timeline.build(long, [], ["a"])
    assert len(tl["acks"]["a"]) <= timeline.MAX_BUCKETS + 1 and sum(tl["acks"]["a"]) == 200


def test_timeline_of_nothing():
    assert timeline.build([], [], ["a"])["acks"] == {"a": []}


def _drill(rto: float, lost: int = 0, split: int = 0, error: str = "") -> dict:
    rounds = [RoundResult(round=1, scenario="kill-primary", old_primary="a", new_primary="b", rto_s=rto,
                          rejoin_s=0.5, acked_writes=100, lost_acked_writes=lost, split_brain=split,
                          lost_by_node={"a": lost} if lost else {}, error=error,
                          timeline=timeline.build(ACKS, EVENTS, ["a", "b"]))]
    return document(rounds, {"scenario": "kill-primary", "engine": "embedded", "sync": True})


def test_fault_entry_passes_within_target_and_fails_outside():
    ok = campaign.fault_entry("kill-primary", _drill(0.3), "embedded", True, 4.0)
    assert ok["passed"] and ok["problems"] == [] and ok["target"] == "RTO median < 1 s"
    slow = campaign.fault_entry("kill-primary", _drill(1.3), "embedded", True, 4.0)
    assert not slow["passed"] and "misses the target" in slow["problems"][0]
    assert campaign.fault_entry("kill-primary", _drill(1.3), "postgres", True, 4.0)["passed"]


def test_fault_entry_fails_on_loss_in_sync_mode_and_on_split_brain():
    lost = campaign.fault_entry("kill-primary", _drill(0.3, lost=2), "embedded", True, 4.0)
    assert not lost["passed"] and lost["lost_acked_writes"] == 2
    assert campaign.fault_entry("kill-primary", _drill(0.3, lost=2), "embedded", False, 4.0)["passed"]
    split = campaign.fault_entry("kill-primary", _drill(0.3, split=1), "embedded", False, 4.0)
    assert not split["passed"] and split["split_brain_events"] == 1


def test_campaign_document_summary():
    entries = [campaign.fault_entry("kill-primary", _drill(0.3), "embedded", True, 4.0),
               campaign.not_applicable("kill-engine", "no separate engine process"),
               campaign.fault_entry("etcd-wipe", _drill(0.4, lost=1), "embedded", True, 4.0)]
    doc = campaign.document(entries, {}, {"engine": "embedded"}, "all 6 processes stopped")
    s = doc["summary"]
    assert (s["faults"], s["faults_passed"], s["rounds_total"], s["lost_acked_writes_total"]) == (2, 1, 2, 1)
    assert s["split_brain_total"] == 0 and s["passed"] is False and s["cleanup"] == "all 6 processes stopped"
    for f in doc["faults"]:
        assert {"fault", "rounds", "rto_median_s", "lost_acked_writes", "split_brain_events", "passed"} <= set(f)


def test_html_page_is_self_contained_and_shows_the_verdicts():
    entries = [campaign.fault_entry("kill-primary", _drill(0.3), "embedded", True, 4.0),
               campaign.not_applicable("kill-engine", "not applicable to the embedded engine")]
    page = html.render(campaign.document(entries, {"kill-primary": _drill(0.3)}, {"engine": "embedded"}, "ok"))
    assert page.startswith("<!doctype html>") and "<svg" in page and "SIGKILL a" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert 'class="l pass"' in page and "not applicable to the embedded engine" in page


def test_html_of_a_single_drill_and_escaping():
    doc = _drill(0.3, error="<b>boom</b>")
    page = html.render(doc)
    assert "&lt;b&gt;boom&lt;/b&gt;" in page and "<b>boom</b>" not in page


def test_progress_bar():
    assert campaign.progress_bar(0, 10, 10) == "[----------] 0/10 rounds"
    assert campaign.progress_bar(5, 10, 10) == "[#####-----] 5/10 rounds"
    assert campaign.progress_bar(10, 10, 10) == "[##########] 10/10 rounds"


def test_problems_include_wrong_values_and_standby_gaps():
    from walrus_ha.tools.drill.report import RoundResult, document, problems
    r = RoundResult(round=1, scenario="kill-primary", old_primary="a", new_primary="b", rto_s=0.3, rejoin_s=0.5,
                    acked_writes=10, lost_acked_writes=0, wrong_values=1, standby_missing={"c": 2, "a": 0})
    s = document([r], {})["summary"]
    assert (s["wrong_values_total"], s["standby_missing_total"]) == (1, 2)
    found = problems(s, sync=False)
    assert any("another value" in p for p in found) and any("caught-up standby" in p for p in found)


def test_an_interrupted_campaign_never_passes():
    entries = [campaign.fault_entry("kill-primary", _drill(0.3), "embedded", True, 3.0)]
    done = campaign.document(entries, {}, {"engine": "embedded"}, "ok")
    cut = campaign.document(entries, {}, {"engine": "embedded"}, "ok", interrupted=True)
    assert done["summary"]["passed"] and not done["summary"]["interrupted"]
    assert not cut["summary"]["passed"] and cut["summary"]["interrupted"]
    assert "Interrupted" in html.render(cut) and "Interrupted" not in html.render(done)


def test_fault_entry_reports_notes_without_failing():
    rounds = [RoundResult(round=1, scenario="double-kill", old_primary="a+b", new_primary="c", rto_s=36.0,
                          rejoin_s=35.7, acked_writes=100, lost_acked_writes=0, notes=("slow rejoin: a",))]
    drill = document(rounds, {"scenario": "double-kill", "engine": "postgres", "sync": True})
    entry = campaign.fault_entry("double-kill", drill, "postgres", True, 3.0)
    assert entry["passed"] and entry["note"] == "round 1: slow rejoin: a" and entry["rejoin_max_s"] == 35.7
    page = html.render(campaign.document([entry], {"double-kill": drill}, {}, "clean"))
    assert "round 1: slow rejoin: a" in page
