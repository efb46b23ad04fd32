"""A primary on a full disk is reported and replaced (issue 10, item 9).

Real processes: etcd, three ``walrus node`` agents (embedded engine) and
``walrus orchestrator``. The first primary's data directory is a small tmpfs
mounted by the fixture; the test fills it with a ballast file, so the
primary's next WAL segment cannot be created and every write fails with
ENOSPC. The status must say so, ``ListMembers`` (``ctl list``) must show it,
and after ``primary_write_failure_timeout`` the orchestrator must hand the
leadership to a standby without losing an acknowledged write.
"""
from __future__ import annotations

import os
import subprocess

import grpc
import pytest

from orch_procs import history, procs, wait_for  # noqa: F401  (procs is a fixture)
from walrus_ha.protos import cluster_pb2

pytestmark = pytest.mark.integration

SMALL_FS = "16m"
SEGMENT = 64 * 1024
# Longer leases than the other orchestrator tests: on a loaded machine a slow
# etcd must not move the leadership before the disk fills (that is not the
# failover under test). Disk-full failover itself does not wait for a lease.
AGENT = {"ttl": 10.0, "loop_wait": 0.5, "retry_timeout": 3.0, "safety_margin": 1.0, "bootstrap_wait": 0.5}
ORCH = {"ttl": 10.0, "loop_wait": 0.3, "retry_timeout": 3.0, "rpc_timeout": 2.0}


@pytest.fixture
def small_fs(tmp_path):
    """A tmpfs of SMALL_FS at tmp_path/smallfs (unmounted afterwards; set up
    before ``procs`` so the agents are stopped before the unmount)."""
    where = tmp_path / "smallfs"
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL_FS},mode=0755", "tmpfs", str(where)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.strip() or r.returncode}): "
                    "the disk-full test needs mount permission")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(where) -> None:
    """Write a ballast file until the filesystem is full."""
    with open(os.path.join(where, "ballast"), "wb", buffering=0) as f:
        block = b"\xff" * 65536
        try:
            while True:
                f.write(block)
        except OSError:
            pass
        small = b"\xff" * 512
        try:
            while True:
                f.write(small)
        except OSError:
            pass


def test_disk_full_primary_is_reported_and_replaced_without_loss(small_fs, procs, etcd):
    a = procs.agent("a", data_dir=str(small_fs / "a"), embedded={"segment_size": SEGMENT}, **AGENT)
    procs.primary(["a"])
    procs.agent("b", **AGENT)
    procs.agent("c", **AGENT)
    primary, _ = procs.cluster3()
    assert primary.name == "a"
    orch = procs.orchestrator("o1", primary_write_failure_timeout=2.0, **ORCH)
    acked = []
    for i in range(20):
        wait_for(lambda: a.put(b"k%d" % i, b"v" * 1000), 30, what=f"write k{i}")  # retried if a is busy
        acked.append(b"k%d" % i)
    fill(small_fs)

    def write_fails():
        key = b"x%d" % len(acked)
        try:
            a.put(key, b"v" * 1000 * 8)      # big: the next segment is needed after a few
            acked.append(key)
        except grpc.RpcError as exc:       # a slow etcd may fence a for a moment: not what we wait for
            return "No space left on device" in (exc.details() or "")
        return False
    wait_for(write_fails, 120, what="a write that fails on the full disk")

    def seen_as_failing():
        s = a.status().engine
        return s.write_error if s.write_error and s.write_error_since > 0 else None
    assert "No space left on device" in wait_for(seen_as_failing, 20, what="a's status reporting the failure")

    def listed():
        reply = orch.cluster.ListMembers(cluster_pb2.ListMembersRequest(), timeout=5)
        return [m for m in reply.members if m.name == "a" and m.write_error]
    wait_for(listed, 30, what="ListMembers (ctl list) showing a's failing writes")

    new = procs.primary(["b", "c"], timeout=60)
    for key in acked:
        assert new.get(key).value == b"v" * (1000 if key.startswith(b"k") else 8000), key
    rec = wait_for(lambda: [h for h in history(etcd.endpoint, procs.cluster) if h.old_leader == "a"],
                   30, what="the history record")[-1]
    assert (rec.kind, rec.new_leader) == ("failover", new.name)
