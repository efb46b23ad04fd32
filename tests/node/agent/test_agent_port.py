"""``NodeAgent`` offers every member of ``port.AgentPort`` (the only part of
the agent the actions use), and the actions do not import the agent."""
import ast
import inspect

from walrus_ha.node.agent import actions, vouch
from walrus_ha.node.agent.agent import NodeAgent
from walrus_ha.node.agent.port import AgentPort
from walrus_ha.node.config import load_node_config
from walrus_ha.node.engine.embedded import EmbeddedEngine

CONFIG = "name: n1\ndata_dir: {d}\nttl: 3\nloop_wait: 0.2\nretry_timeout: 1\nsafety_margin: 0.5\n"


def protocol_members(proto) -> set[str]:
    names = set(proto.__annotations__)
    names |= {n for n, v in vars(proto).items()
              if not n.startswith("_") and (callable(v) or isinstance(v, property))}
    return names


def test_node_agent_has_every_port_member(tmp_path):
    path = tmp_path / "node.yaml"
    path.write_text(CONFIG.format(d=tmp_path / "data"))
    config = load_node_config(path)
    engine = EmbeddedEngine.from_node_config(config)       # not started: nothing runs
    agent = NodeAgent(config, engine=engine, dcs=object())  # not started: the dcs is never called
    missing = sorted(n for n in protocol_members(AgentPort) if not hasattr(agent, n))
    assert missing == []
    assert {"set_state", "fence", "drop_leader", "reapply_sync", "engine", "held_term"} <= protocol_members(AgentPort)


def test_actions_and_vouch_reach_no_private_agent_member():
    for module in (actions, vouch):
        tree = ast.parse(inspect.getsource(module))
        private = [n.attr for n in ast.walk(tree)
                   if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
                   and n.value.id == "agent" and n.attr.startswith("_")]
        assert private == [], module.__name__
