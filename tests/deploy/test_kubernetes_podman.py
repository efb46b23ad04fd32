"""deploy/kubernetes/ run for real under ``podman kube play``
(tools/podkube): the drill hooks for it name verbs the tool has, and, where
podman and the images are present (marker ``podman``), the manifests come
up, the primary's pod is SIGKILLed, a write goes through the HAProxy pod at
a newer term, the pod is recreated and streams again, and everything is
removed. Opt-in (WALRUS_TEST_PODMAN=1: it takes 1-2 minutes); skipped,
saying why, where podman or an image is missing."""
from __future__ import annotations

import os
import pathlib
import re

import pytest

from walrus_ha.tools.drill import hooks
from walrus_ha.tools.drill.target import Action
from walrus_ha.tools.podkube import __main__ as podkube_cli
from walrus_ha.tools.podkube import play

HOOKS = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "drill-hooks" / "podman-kube.yaml"


def test_podman_hooks_cover_the_faults_and_name_real_verbs():
    h = hooks.load(str(HOOKS), {})
    assert {Action.KILL_NODE, Action.START_NODE, Action.FREEZE_NODE, Action.THAW_NODE, Action.ISOLATE_NODE,
            Action.HEAL_NODE, Action.KILL_ORCHESTRATOR, Action.START_ORCHESTRATOR, Action.KILL_ETCD,
            Action.START_ETCD, Action.WIPE_ETCD} <= h.actions()
    verbs = set(re.findall(r"podkube (\w[\w-]*)", HOOKS.read_text()))
    parser_choices = podkube_cli.COMMANDS
    assert verbs and verbs <= set(parser_choices), verbs - set(parser_choices)
    assert h.hooks[Action.KILL_NODE] == "{podman} pod kill --signal KILL {node}"
    assert h.variables["podman"].startswith("nsenter --mount=$PODKUBE_HOST_MNT")


class _Podman:
    """The remote target as ``cli._not_applicable`` sees it, with the podman hooks."""
    kind = "remote"

    def __init__(self, actions):
        self.actions = set(actions)

    def etcd_names(self):
        return ["walrus-etcd-0", "walrus-etcd-1", "walrus-etcd-2"]

    def missing(self, actions):
        return [a for a in actions if a not in self.actions]


def test_podman_hooks_run_every_fault_but_the_local_only_ones_on_the_embedded_engine():
    from walrus_ha.tools.drill import cli
    target = _Podman(hooks.load(str(HOOKS), {}).actions())
    runs = [f for f in cli.SCENARIOS if cli._not_applicable(f, "embedded", 3, target) is None]
    # What the campaign here ran: all but kill-engine (postgres only), corrupt-wal and disk-full (local only).
    assert sorted(runs) == sorted(["kill-primary", "kill-standby", "switchover", "kill-orchestrator",
                                   "freeze-primary", "freeze-tree", "partition-primary", "double-kill",
                                   "etcd-member-loss", "etcd-outage", "etcd-wipe"])


@pytest.mark.podman
def test_podman_kube_play_pod_kill_of_the_primary_keeps_writes_going_through_haproxy(tmp_path):
    # 1-2 minutes (ten pods up, one round, down): over the suite's budget, so opt-in.
    if os.environ.get("WALRUS_TEST_PODMAN") != "1":
        pytest.skip("real Kubernetes-manifest test under podman: set WALRUS_TEST_PODMAN=1 to run it (1-2 min)")
    why = play.preflight()
    if why:
        pytest.skip(f"real Kubernetes-manifest test under podman: {why}")
    from walrus_ha.tools.podkube import failover
    out = failover.run(rounds=1, state=tmp_path / "state", network="walrus-kube-pytest")
    (r,) = out["rounds"]
    print(f"\npodman pod kill {r['killed']} -> first write through HAProxy at term {r['new_term']} "
          f"on {r['new_leader']} after {r['kill_to_write_s']:.2f}s")
    assert r["new_leader"] != r["killed"] and r["new_term"] > r["old_term"]
    assert not (tmp_path / "state").exists()
    assert play.podman(["network", "exists", "walrus-kube-pytest"], check=False).returncode != 0
