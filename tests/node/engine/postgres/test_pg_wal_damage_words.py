"""Which PostgreSQL recovery messages the engine reports as WAL damage
(status.wal_repairs) and which are only the normal end of the log."""
import pytest

from walrus_ha.node.engine.postgres.engine import _WAL_DAMAGE


@pytest.mark.parametrize("line,damage", [
    ("LOG:  incorrect resource manager data checksum in record at 0/3000060", True),
    ("LOG:  invalid record length at 0/3000060: wanted 24, got 7", True),
    ("LOG:  invalid resource manager ID 77 at 0/3000060", True),
    ("LOG:  incorrect hole size in record at 0/3000060", True),
    ("LOG:  invalid magic number D10B in log segment 000000010000000000000003, offset 0", True),
    ("LOG:  invalid record length at 0/3000060: wanted 24, got 0", False),          # zeros: the end
    ("LOG:  invalid magic number 0000 in log segment 000000010000000000000003, offset 0", False),
    ("LOG:  redo done at 0/3000028 system usage: CPU: user: 0.00 s", False),
])
def test_damage_words(line, damage):
    assert bool(_WAL_DAMAGE.search(line)) is damage
