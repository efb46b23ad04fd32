"""Damaged WAL on a standby is reported, not repaired silently (issue 10, item 10).

Recovery cuts the WAL at the first record that fails its check, and the
standby streams the rest from its primary again (that repair is kept). It
must say so: an ERROR line with the LSN range and the reason, and a counter
plus the last range in the engine status.
"""
import os

import pytest

from embedded_engine_procs import has, wait_for
from walrus_ha.common.lsn import format_lsn
from walrus_ha.node.engine.embedded.framing import parse_segment_name

pytestmark = pytest.mark.integration

SEGMENT = 16 * 1024 * 1024      # the engine's default segment_size


def flip_byte(data_dir: str, lsn: int) -> None:
    """Invert one byte of the WAL segment that holds ``lsn``."""
    wal_dir = os.path.join(data_dir, "wal")
    segno, off = divmod(lsn, SEGMENT)
    name = next(n for n in sorted(os.listdir(wal_dir))
                if len(n) == 24 and parse_segment_name(n, SEGMENT)[1] == segno)
    with open(os.path.join(wal_dir, name), "r+b") as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ 0xFF]))


def test_damaged_standby_wal_is_logged_counted_and_streamed_again(cluster):
    a = cluster.engine("a", "--checkpoint-interval", "3600")
    b = cluster.engine("b", "--upstream", a.upstream_arg, "--checkpoint-interval", "3600")
    for i in range(50):
        a.put(b"k%d" % i, b"v%d" % i)
    damaged_at = a.status().flush_lsn          # the next record starts here
    for i in range(50, 200):
        a.put(b"k%d" % i, b"v%d" % i)
    end = a.status().flush_lsn
    wait_for(lambda: b.status().flush_lsn >= end, what="b caught up")
    assert b.status().wal_repairs == 0
    b.kill()                                    # no shutdown checkpoint: recovery replays the WAL
    flip_byte(b.data_dir, damaged_at + 30)      # inside the record's payload (header is 20 bytes)

    b.start()
    st = b.status()
    assert st.wal_repairs == 1
    assert st.wal_repair.startswith(f"dropped {format_lsn(damaged_at)}..{format_lsn(end)} ")
    assert "CRC" in st.wal_repair
    wait_for(lambda: b.status().flush_lsn >= end, what="b streamed the dropped range again")
    assert [has(b, b"k%d" % i) for i in (0, 49, 50, 199)] == [b"v0", b"v49", b"v50", b"v199"]
    with open(b.log_path, encoding="utf-8", errors="replace") as f:
        assert "wal_damaged" in f.read()        # the loud line exists (its wording is not asserted)
