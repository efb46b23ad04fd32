"""The drill checker and report math on synthetic data."""
import pytest

from walrus_ha.tools.drill import checker, report
from walrus_ha.tools.drill.checker import Ack

ACKS = [Ack("k1", 1.0, "a"), Ack("k2", 2.0, "a"), Ack("k3", 2.4, "a"),   # k3 acked just after the kill
        Ack("k4", 3.5, "b"), Ack("k5", 3.2, "c"), Ack("k6", 4.0, "b")]


def test_rto_is_kill_to_first_ack_by_another_node():
    assert checker.rto(ACKS, 2.2, "a") == pytest.approx((1.0, "c"))
    assert checker.rto(ACKS, 5.0, "a") is None
    assert checker.rto([], 0.0, "a") is None


def test_lost_writes_in_ack_order():
    assert checker.lost_writes(ACKS, {"k1", "k4", "k5", "k6"}) == ["k2", "k3"]
    assert checker.lost_writes(ACKS, {a.key for a in ACKS}) == []


def test_dual_primary_acks():
    assert checker.dual_primary_acks(ACKS, "a", "b") == []
    late = ACKS + [Ack("k7", 3.6, "a")]
    assert [a.key for a in checker.dual_primary_acks(late, "a", "b")] == ["k7"]
    assert checker.dual_primary_acks(late, "a", "nobody") == []


def test_dual_primary_acks_excuse_late_replies_kept_by_the_new_primary():
    # b's first ack is at 3.5; a's reply at 3.6 to a write sent at 2.3 (in
    # flight at the freeze) that b holds is not a second primary.
    late = ACKS + [Ack("k7", 3.6, "a", value="v7", sent=2.3)]
    assert checker.dual_primary_acks(late, "a", "b", {"k7": "v7"}) == []
    assert checker.late_dual_acks_kept(late, "a", "b", {"k7": "v7"}) == 1
    for kept in ({}, {"k7": "other"}):                       # missing or different on the final leader
        assert [a.key for a in checker.dual_primary_acks(late, "a", "b", kept)] == ["k7"]
    sent_late = ACKS + [Ack("k7", 3.6, "a", value="v7", sent=3.55)]  # sent after b's first ack
    assert [a.key for a in checker.dual_primary_acks(sent_late, "a", "b", {"k7": "v7"})] == ["k7"]
    unknown = ACKS + [Ack("k7", 3.6, "a", value="v7")]                # send time not recorded
    assert [a.key for a in checker.dual_primary_acks(unknown, "a", "b", {"k7": "v7"})] == ["k7"]


def test_acked_by():
    assert checker.acked_by(ACKS) == {"a": 3, "b": 2, "c": 1}


@pytest.mark.parametrize("values,q,expected", [
    ([], 0.5, None), ([3.0], 0.9, 3.0), ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9, 9),
    ([5, 1, 3], 0.5, 3), ([1, 2], 1.0, 2),
], ids=["empty", "one", "p90-of-10", "unsorted-median", "max"])
def test_quantile(values, q, expected):
    assert report.quantile(values, q) == expected


def _round(n, rto, rejoin=1.0, lost=0, error=""):
    return report.RoundResult(round=n, scenario="kill-primary", old_primary="a", new_primary="b", rto_s=rto,
                              rejoin_s=rejoin, acked_writes=100, lost_acked_writes=lost, error=error)


def test_document_has_the_documented_keys():
    rounds = [_round(1, 0.4), _round(2, 0.2, lost=2), _round(3, None, None, error="timed out")]
    doc = report.document(rounds, {"scenario": "kill-primary"})
    assert set(doc) == {"rounds", "summary", "config"}
    for r in doc["rounds"]:
        assert {"round", "rto_s", "lost_acked_writes", "rejoin_s", "old_primary", "new_primary",
                "acked_writes"} <= set(r)
    s = doc["summary"]
    assert s["rto_median_s"] == pytest.approx(0.3)
    assert s["rto_max_s"] == pytest.approx(0.4)
    assert s["rto_p90_s"] == pytest.approx(0.4)
    assert s["lost_acked_writes_total"] == 2
    assert s["rejoin_median_s"] == pytest.approx(1.0)
    assert s["failed_rounds"] == 1
    assert s["acked_writes_total"] == 300
    assert "timed out" in report.rounds_table(rounds)
    assert "RTO median 0.300" in report.summary_text(s)


def test_losses_by_survivors_are_counted_apart():
    r1 = report.RoundResult(round=1, scenario="kill-primary", old_primary="a", new_primary="b", rto_s=0.1,
                            rejoin_s=1.0, acked_writes=10, lost_acked_writes=3, lost_by_node={"a": 2, "b": 1})
    s = report.summarize([r1])
    assert s["lost_acked_writes_total"] == 3 and s["lost_acked_by_survivors_total"] == 1


def test_summary_of_no_measurements():
    s = report.summarize([])
    assert s["rto_median_s"] is None and s["rejoin_median_s"] is None and s["rounds"] == 0


def test_lost_by_node():
    assert checker.lost_by_node(ACKS, ["k2", "k4", "zz"]) == {"a": 1, "b": 1, "?": 1}


# -- split brain, values, synchronous promise: recorded histories -------------------

def _h(*rows):
    """Acks from (key, at, node, term) rows."""
    return [Ack(k, at, n, term) for k, at, n, term in rows]


CLEAN_FAILOVER = _h(("k1", 1.0, "a", 1), ("k2", 2.0, "a", 1), ("k3", 3.0, "b", 2), ("k4", 4.0, "b", 2),
                    ("k5", 5.0, "c", 3))


def test_a_clean_history_has_no_split_brain():
    assert checker.split_brain(CLEAN_FAILOVER) == []
    assert checker.split_brain([]) == []


def test_old_primary_acking_after_the_new_one_is_split_brain():
    late = CLEAN_FAILOVER + _h(("k9", 3.5, "a", 1))
    events = checker.split_brain(late)
    assert [(e.rule, e.ack.key, e.against.key) for e in events] == [(checker.Rule.OLDER_TERM, "k9", "k3")]
    assert "a acknowledged k9 at term 1 after b had acknowledged k3 at term 2" == events[0].describe()


def test_a_late_ack_of_a_write_sent_before_the_takeover_and_kept_is_not_split_brain():
    # A frozen primary thawed after the takeover acknowledges a write it had
    # committed (a sync standby held it) before the freeze: sent at 2.9,
    # before the new term's first ack at 3.0, and the final leader holds it.
    late = Ack("k9", 3.5, "a", 1, "v9", sent=2.9)
    kept = {"k9": "v9", "k3": ""}
    assert checker.split_brain(CLEAN_FAILOVER + [late], kept) == []
    excused = checker.late_acks_kept(CLEAN_FAILOVER + [late], kept)
    assert [(e.ack.key, e.against.key) for e in excused] == [("k9", "k3")]


@pytest.mark.parametrize("late, kept", [
    (Ack("k9", 3.5, "a", 1, "v9", sent=3.1), {"k9": "v9"}),     # sent after the new term's first ack
    (Ack("k9", 3.5, "a", 1, "v9", sent=2.9), {}),               # the final leader lacks it
    (Ack("k9", 3.5, "a", 1, "v9", sent=2.9), {"k9": "other"}),  # it holds another value
    (Ack("k9", 3.5, "a", 1, "v9"), {"k9": "v9"}),               # send time not recorded
])
def test_late_acks_that_stay_split_brain(late, kept):
    events = checker.split_brain(CLEAN_FAILOVER + [late], kept)
    assert [(e.rule, e.ack.key) for e in events] == [(checker.Rule.OLDER_TERM, "k9")]
    assert checker.late_acks_kept(CLEAN_FAILOVER + [late], kept) == []


def test_a_shared_term_is_never_excused():
    acks = [Ack("k1", 1.0, "a", 4, "v1", sent=0.5), Ack("k2", 1.5, "b", 4, "v2", sent=0.6)]
    assert len(checker.split_brain(acks, {"k1": "v1", "k2": "v2"})) == 1


def test_two_nodes_in_one_term_is_split_brain():
    events = checker.split_brain(_h(("k1", 1.0, "a", 4), ("k2", 1.5, "b", 4)))
    assert [(e.rule, e.ack.node, e.against.node) for e in events] == [(checker.Rule.SHARED_TERM, "b", "a")]


def test_order_is_by_ack_time_not_by_list_order():
    shuffled = list(reversed(CLEAN_FAILOVER))
    assert checker.split_brain(shuffled) == []


def test_acks_without_a_term_are_not_judged():
    assert checker.split_brain(_h(("k1", 1.0, "a", 0), ("k2", 2.0, "b", 0), ("k3", 3.0, "a", 0))) == []


def test_wrong_values():
    acks = [Ack("k1", 1.0, "a", 1, "v1"), Ack("k2", 2.0, "a", 1, "v2"), Ack("k1", 3.0, "b", 2, "v3")]
    assert checker.wrong_values(acks, {"k1": "v3", "k2": "v2"}) == []
    assert checker.wrong_values(acks, {"k1": "v1", "k2": None}) == ["k1", "k2"]
    assert checker.wrong_values(acks, {}) == []


def test_a_sync_ack_held_only_by_its_primary_broke_the_promise():
    acks = [Ack("k1", 1.0, "a", 1, sync=True), Ack("k2", 2.0, "a", 1, sync=True), Ack("k3", 2.5, "a", 1)]
    held = {"a": {"k1", "k2", "k3"}, "b": {"k1"}, "c": set()}
    assert [a.key for a in checker.unreplicated_sync_acks(acks, held)] == ["k2"]
    assert checker.unreplicated_sync_acks(acks, {"a": {"k1", "k2"}}) == acks[:2]


def test_receipt_gap():
    assert checker.receipt_gap(3, 3) == 0
    assert checker.receipt_gap(5, 3) == 2
    assert checker.receipt_gap(0, None) is None


def test_write_gap():
    acks = _h(("k1", 1.0, "a", 1), ("k2", 1.1, "a", 1), ("k3", 1.9, "a", 1), ("k4", 2.0, "a", 1))
    assert checker.write_gap(acks, 1.05, 2.0) == pytest.approx(0.8)      # 1.1 -> 1.9
    assert checker.write_gap(acks, 2.0, 3.0) == pytest.approx(1.0)       # stalled to the end
    assert checker.write_gap([], 0.0, 0.5) == pytest.approx(0.5)


def test_partition_finds_the_tcp_connections_of_a_process():
    import socket

    from walrus_ha.tools.drill import partition
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    try:
        import os
        pairs = partition.tcp_connections([os.getpid()])
        local, remote = client.getsockname()[1], server.getsockname()[1]
        assert (local, remote) in pairs
    finally:
        client.close()
        server.close()


def test_corrupt_wal_finds_the_segment_and_flips_bytes(tmp_path):
    from walrus_ha.tools.drill import disk_faults
    wal = tmp_path / "wal"
    wal.mkdir()
    seg = 4 * 1024 * 1024
    for name in ("000000010000000000000000", "000000010000000000000001", "000000020000000000000001"):
        (wal / name).write_bytes(bytes(range(256)) * 16)
    path, offset = disk_faults.wal_file_at("embedded", str(tmp_path), 2, seg + 300, seg)
    assert path.endswith("000000020000000000000001") and offset == 300     # the newest timeline's file
    path1, _ = disk_faults.wal_file_at("embedded", str(tmp_path), 1, seg + 300, seg)
    assert path1.endswith("000000010000000000000001")                     # not a later timeline's
    old = disk_faults.flip(path, 10, 4)
    data = (wal / "000000020000000000000001").read_bytes()
    assert old == bytes([10, 11, 12, 13]) and data[10:14] == bytes(b ^ 0xFF for b in old)
    with pytest.raises(disk_faults.RoundFailed):
        disk_faults.wal_file_at("embedded", str(tmp_path), 1, 5 * seg, seg)


@pytest.mark.parametrize("failover, writable, rejoins, problems, notes", [
    (0.3, 2.1, {"a": 1.9, "b": 2.0}, [], []),
    # The restarted first node's pg_rewind took 33 s: writes waited for it (sync
    # mode, no other standby), nothing lost: reported, not failed.
    (0.3, 36.0, {"a": 35.7, "b": 2.0}, [], ["waiting for a standby to rejoin", "slow rejoin: a"]),
    (0.3, 2.1, {"a": 1.9, "b": 12.0}, [], ["slow rejoin: b"]),
    (0.3, 2.1, {"a": 1.9, "b": None}, [], ["b did not rejoin"]),
    (None, None, {}, ["no new primary within 30 s", "no write acknowledged"], []),
    (31.0, 32.0, {"a": 2.0}, ["no new primary within 30 s of the fault (took 31.000 s)"], []),
    (0.3, None, {"a": 2.0}, ["no write acknowledged"], []),
], ids=["fast", "slow-rejoin-blocks-sync-writes", "slow-second-rejoin", "no-rejoin", "nothing",
        "slow-failover", "never-writable"])
def test_takeover_verdict(failover, writable, rejoins, problems, notes):
    v = checker.takeover_verdict(failover, writable, rejoins, failover_limit_s=30.0, slow_rejoin_s=10.0)
    assert len(v.problems) == len(problems) and all(p in got for p, got in zip(problems, v.problems))
    assert len(v.notes) == len(notes) and all(any(n in got for got in v.notes) for n in notes)


def test_notes_are_reported_but_do_not_fail():
    noted = report.RoundResult(round=2, scenario="double-kill", old_primary="a+b", new_primary="c", rto_s=36.0,
                               rejoin_s=35.7, acked_writes=10, lost_acked_writes=0,
                               notes=("slow rejoin: a streamed again 35.700 s after its restart (> 10 s)",))
    s = report.summarize([_round(1, 2.0), noted])
    assert s["failed_rounds"] == 0 and report.problems(s, sync=True) == []
    assert s["notes"] == ["round 2: slow rejoin: a streamed again 35.700 s after its restart (> 10 s)"]
    assert s["rejoin_max_s"] == pytest.approx(35.7)
    assert "note: round 2: slow rejoin" in report.summary_text(s)
    assert noted.to_json()["notes"] == [noted.notes[0]]
