"""Hook files and remote-target verdicts (pure): templating, checking, a
failing hook's message, undo hooks run on recover, and which faults a remote
target without their hooks calls "not applicable"."""
import pathlib
import subprocess

import pytest

from walrus_ha.common.errors import ConfigError, WalrusError
from walrus_ha.tools.drill import cli, hooks
from walrus_ha.tools.drill.hook_target import HookFailed, HookRunner, parse_orchestrators
from walrus_ha.tools.drill.target import Action, missing_actions

ROOT = pathlib.Path(__file__).resolve().parents[2]
NODE = {"node": "n1", "address": "10.0.0.1:7100", "agent_address": "10.0.0.1:7000"}


def _file(hook_map, variables=None, hook_vars=None, timeout_s=5):
    return hooks.parse("h.yaml", {"hooks": hook_map, "vars": variables or {}, "timeout_s": timeout_s},
                       hook_vars or {})


def test_render_fills_the_action_placeholders_and_variables_and_keeps_literal_braces():
    f = _file({"kill-node": "docker kill {project}-{node}-1 # {{x}} {address}"}, {"project": "p"})
    assert f.render(Action.KILL_NODE, NODE) == "docker kill p-n1-1 # {x} 10.0.0.1:7100"


def test_hook_var_overrides_the_file_vars():
    f = _file({"kill-node": "kill {project}"}, {"project": "from-file"}, {"project": "from-cli"})
    assert f.render(Action.KILL_NODE, NODE) == "kill from-cli"


@pytest.mark.parametrize("data, words", [
    ({"hooks": {"kill-nod": "x"}}, ["hooks.kill-nod", "unknown action"]),
    ({"hooks": {"kill-node": "kill {orchestrator}"}}, ["hooks.kill-node", "{orchestrator}"]),
    ({"hooks": {"kill-node": "kill {dir}"}}, ["{dir}", "--hook-var"]),
    ({"hooks": {"kill-node": "kill {node"}}, ["hooks.kill-node", "malformed"]),
    ({"hooks": {"kill-node": ""}}, ["hooks.kill-node", "non-empty"]),
    ({"hooks": {}}, ["'hooks'"]),
    ({"hooks": {"kill-node": "x"}, "hook": 1}, ["unknown key", "hook"]),
    ({"hooks": {"kill-node": "x"}, "timeout_s": 0}, ["timeout_s"]),
    (["kill-node"], ["mapping"]),
], ids=["unknown-action", "foreign-placeholder", "unset-variable", "malformed", "empty", "no-hooks",
        "unknown-key", "bad-timeout", "not-a-mapping"])
def test_a_bad_hook_file_is_refused_naming_the_file_and_key(data, words):
    with pytest.raises(ConfigError) as err:
        hooks.parse("h.yaml", data, {})
    assert str(err.value).startswith("h.yaml: ")
    for w in words:
        assert w in str(err.value)


def test_rendering_an_action_without_a_hook_is_an_error():
    with pytest.raises(ConfigError, match="no hook for thaw-node"):
        _file({"kill-node": "x"}).render(Action.THAW_NODE, NODE)


@pytest.mark.parametrize("items, expected", [
    (["dir=/tmp/c", "ns=a=b"], {"dir": "/tmp/c", "ns": "a=b"}),
    ([], {}),
])
def test_hook_vars(items, expected):
    assert hooks.parse_hook_vars(items) == expected


@pytest.mark.parametrize("bad", ["dir", "=x", "a b=1"])
def test_malformed_hook_vars(bad):
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        hooks.parse_hook_vars([bad])


def test_orchestrators_with_and_without_names():
    assert parse_orchestrators("o1=h:1, h:2") == {"o1": "h:1", "h:2": "h:2"}
    with pytest.raises(WalrusError):
        parse_orchestrators("o1=nohostport")


class FakeShell:
    """Records the commands; answers with ``codes[command]`` (0 by default)."""

    def __init__(self, codes=None, timeout=()):
        self.commands, self.codes, self.timeout = [], codes or {}, set(timeout)

    def __call__(self, command, timeout_s):
        self.commands.append(command)
        if command in self.timeout:
            raise subprocess.TimeoutExpired(command, timeout_s)
        code = self.codes.get(command, 0)
        return subprocess.CompletedProcess(command, code, "", "boom: no such container\n" if code else "")


def test_a_failing_hook_names_its_command_exit_code_and_stderr():
    shell = FakeShell({"docker kill n1": 125})
    runner = HookRunner(_file({"kill-node": "docker kill {node}", "start-node": "docker start {node}"}), shell)
    with pytest.raises(HookFailed) as err:
        runner.run(Action.KILL_NODE, "n1", NODE)
    assert "`docker kill n1`" in str(err.value) and "exited 125" in str(err.value)
    assert "boom: no such container" in str(err.value)


def test_a_hook_that_times_out_fails_with_its_command():
    shell = FakeShell(timeout=["sleep n1"])
    with pytest.raises(HookFailed, match="timed out after 5s: sleep n1"):
        HookRunner(_file({"freeze-node": "sleep {node}"}), shell).run(Action.FREEZE_NODE, "n1", NODE)


def test_recover_runs_the_undo_of_every_fault_still_in_force_even_if_the_fault_hook_failed():
    shell = FakeShell({"pause n1": 1})
    runner = HookRunner(_file({"freeze-node": "pause {node}", "thaw-node": "unpause {node}",
                               "kill-node": "kill {node}", "start-node": "start {node}"}), shell)
    with pytest.raises(HookFailed):
        runner.run(Action.FREEZE_NODE, "n1", NODE)
    runner.run(Action.KILL_NODE, "n2", {**NODE, "node": "n2"})
    runner.run(Action.START_NODE, "n2", {**NODE, "node": "n2"})      # undone by the scenario itself
    assert runner.recover() == ["thaw-node n1"]
    assert shell.commands == ["pause n1", "kill n2", "start n2", "unpause n1"]
    assert runner.recover() == []                                    # each undo runs once


def test_a_failing_undo_is_reported_once_not_retried_forever():
    shell = FakeShell({"start n1": 2})
    runner = HookRunner(_file({"kill-node": "kill {node}", "start-node": "start {node}"}), shell)
    runner.run(Action.KILL_NODE, "n1", NODE)
    (line,) = runner.recover()
    assert line.startswith("start-node n1 FAILED") and "exited 2" in line
    assert runner.recover() == []


def test_missing_actions_sentence():
    assert missing_actions("x", [Action.KILL_NODE], [Action.KILL_NODE]) is None
    assert missing_actions("freeze-tree", [Action.FREEZE_NODE, Action.THAW_NODE], []) == \
        "freeze-tree: not applicable on this target: needs hooks freeze-node, thaw-node"


class FakeRemote:
    kind = "remote"

    def __init__(self, actions, etcd=("e1",)):
        self.actions, self.etcd = set(actions), list(etcd)

    def etcd_names(self):
        return self.etcd

    def missing(self, actions):
        return [a for a in actions if a not in self.actions]


KILLS = (Action.KILL_NODE, Action.START_NODE)


@pytest.mark.parametrize("fault, actions, etcd, verdict", [
    ("kill-primary", KILLS, ("e1",), None),
    ("switchover", (), (), None),
    ("kill-primary", (Action.KILL_NODE,), ("e1",), "needs hook start-node"),
    ("freeze-primary", KILLS, ("e1",), "needs hooks freeze-agent, thaw-agent"),
    ("partition-primary", KILLS, ("e1",), "needs hooks isolate-node, heal-node"),
    ("etcd-outage", (Action.KILL_ETCD, Action.START_ETCD), (), "needs --etcd"),
    ("etcd-member-loss", (Action.KILL_ETCD, Action.START_ETCD), ("e1",), "it needs 3"),
    ("corrupt-wal", tuple(Action), ("e1",), "needs a local cluster"),
    ("disk-full", tuple(Action), ("e1",), "needs a local cluster"),
    ("kill-engine", tuple(Action), ("e1",), "not applicable to the embedded engine"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_remote_verdicts(fault, actions, etcd, verdict):
    target = FakeRemote(actions, etcd)
    why = cli._not_applicable(fault, "embedded", len(etcd) or None, target)
    assert (why is None) if verdict is None else (why is not None and verdict in why and why.startswith(fault))


def test_the_shipped_hook_files_parse_and_local_covers_every_aimed_fault_but_the_partition():
    files = {p.stem: hooks.load(str(p), {"dir": "/d"}) for p in (ROOT / "deploy" / "drill-hooks").glob("*.yaml")}
    assert set(files) == {"local", "compose", "kubernetes", "podman-kube"}
    local = FakeRemote(files["local"].actions(), ("etcd1", "etcd2", "etcd3"))
    runs = [f for f in cli.SCENARIOS if cli._not_applicable(f, "postgres", 3, local) is None]
    assert sorted(runs) == sorted(["kill-primary", "kill-standby", "kill-engine", "switchover", "freeze-primary",
                                   "freeze-tree", "double-kill", "kill-orchestrator", "etcd-member-loss",
                                   "etcd-outage", "etcd-wipe"])


class _Kind:
    def __init__(self, kind):
        self.kind = kind


@pytest.mark.parametrize("kind", ["local", "remote"])
def test_cause_counts_from_before_the_verb_and_notes_a_hooks_run_time(kind):
    import time

    from walrus_ha.tools.drill.scenarios import DrillContext, cause
    ctx = DrillContext(cluster=_Kind(kind), tracker=None, factory=None, progress=lambda _m: None)
    inside = []
    at = cause(ctx, "SIGKILL n1", lambda who: inside.append((who, time.monotonic())), "n1")
    ((who, ran_at),) = inside
    assert who == "n1" and ctx.notes["events"] == [(at, "SIGKILL n1")] and at <= ran_at
    assert ("fault_hook_s" in ctx.notes) == (kind == "remote")
