import pytest
from hypothesis import given
from hypothesis import strategies as st

from walrus_ha.common.lsn import MAX_LSN, format_lsn, parse_lsn


@pytest.mark.parametrize("lsn,text", [(0, "0/0"), (0x16B3748, "0/16B3748"), ((1 << 32) + 0xFF, "1/FF")])
def test_format_known(lsn, text):
    assert format_lsn(lsn) == text
    assert parse_lsn(text) == lsn


@given(st.integers(min_value=0, max_value=MAX_LSN))
def test_roundtrip(lsn):
    assert parse_lsn(format_lsn(lsn)) == lsn


@pytest.mark.parametrize("bad", ["", "12", "x/1", "1/", "/1", "123456789/0"])
def test_parse_rejects(bad):
    with pytest.raises(ValueError, match="not an LSN"):
        parse_lsn(bad)
