"""The import graph has no circles and no import that points up the layers
(``protos`` < ``common`` < ``node``, ``orchestrator`` (peers) < ``tools``);
see ``tools/importgraph.py`` and ``python -m walrus_ha.tools.importgraph``."""
from __future__ import annotations

from walrus_ha.tools import importgraph


def test_no_upward_or_sideways_imports():
    assert importgraph.upward(importgraph.build()) == []


def test_no_import_circles():
    assert importgraph.cycles(importgraph.build()) == []


def test_every_part_is_found_and_the_checks_can_fail():
    g = importgraph.build()
    assert {g.part(m) for m in g.modules} == {"walrus_ha", *importgraph.LAYERS}
    # an edge from common up to tools, and a two-module circle, are caught
    g.edges["walrus_ha.common.log"].add("walrus_ha.tools.cli")
    g.edges["walrus_ha.common.lsn"].add("walrus_ha.common.names")
    g.edges["walrus_ha.common.names"].add("walrus_ha.common.lsn")
    assert ("walrus_ha.common.log", "walrus_ha.tools.cli") in importgraph.upward(g)
    assert ["walrus_ha.common.lsn", "walrus_ha.common.names"] in importgraph.cycles(g)
