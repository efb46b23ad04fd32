"""``EmbeddedEngine`` offers every member of the Protocols its replication
modules and servicers declare (they never import ``engine.py``)."""
import pytest

from walrus_ha.node.config import EmbeddedConfig
from walrus_ha.node.engine.base import Engine
from walrus_ha.node.engine.embedded import EmbeddedEngine
from walrus_ha.node.engine.embedded.receiver import StandbyHost
from walrus_ha.node.engine.embedded.sender import SenderHost
from walrus_ha.node.engine.embedded.store_service import StoreHost
from walrus_ha.node.engine.embedded.walstream_service import WalStreamHost


def protocol_members(proto) -> set[str]:
    names = set(proto.__annotations__)
    names |= {n for n, v in vars(proto).items()
              if not n.startswith("_") and (callable(v) or isinstance(v, property))}
    return names


@pytest.mark.parametrize("proto", [SenderHost, StandbyHost, StoreHost, WalStreamHost, Engine],
                         ids=lambda p: p.__name__)
def test_engine_has_every_member(tmp_path, proto):
    engine = EmbeddedEngine("p", str(tmp_path / "p"), "127.0.0.1:0", EmbeddedConfig())   # not started
    members = protocol_members(proto)
    assert members
    assert sorted(n for n in members if not hasattr(engine, n)) == []


def test_capability_members_are_declared_by_the_engine_protocol():
    assert {"rejoins_stopped", "last_discard"} <= protocol_members(Engine)
    assert EmbeddedEngine.rejoins_stopped is False
