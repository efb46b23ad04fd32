"""Issue 10, item 11: the slot store under concurrent base backups, against a
real ``walrus engine`` process. Two standbys cloning at once used to race on
the fixed ``slots.json.tmp`` (a FileNotFoundError on the rename failed one
BaseBackup), readers could see a partial file, and an unreadable file
stopped the engine from starting."""
from __future__ import annotations

import json
import os
import threading

import grpc

from walrus_ha.protos import walstream_pb2, walstream_pb2_grpc


def _log_has_traceback(proc) -> bool:
    return "Traceback" in open(proc.log_path, errors="replace").read()


def test_concurrent_base_backups_all_succeed_and_slots_json_stays_whole(cluster):
    """Item 11: two (here 6) standbys cloning at once used to race on the fixed
    ``slots.json.tmp`` (FileNotFoundError on the rename) and readers could see
    a partial file."""
    p = cluster.engine("p")
    for i in range(50):
        p.put(f"k{i}".encode(), b"v" * 100)
    ws = walstream_pb2_grpc.WalStreamStub(p.channel())
    path = os.path.join(p.data_dir, "slots.json")
    errors: list[str] = []
    done = threading.Event()

    def clone(n: int) -> None:
        for j in range(15):
            try:
                chunks = list(ws.BaseBackup(walstream_pb2.BaseBackupRequest(standby_name=f"s{n}"), timeout=30))
                assert chunks[-1].last
            except grpc.RpcError as exc:
                errors.append(f"s{n}#{j}: {exc.code().name} {exc.details()}")

    def read() -> None:
        while not done.is_set():
            try:
                with open(path) as f:
                    json.load(f)
            except FileNotFoundError:
                pass
            except ValueError as exc:
                errors.append(f"reader saw a partial slots.json: {exc}")
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    threads = [threading.Thread(target=clone, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    reader.join()
    assert errors == []
    assert sorted(s.name for s in p.status().slots) == [f"s{n}" for n in range(6)]
    assert sorted(x["name"] for x in json.load(open(path))["slots"]) == [f"s{n}" for n in range(6)]
    assert not _log_has_traceback(p)


def test_unreadable_slots_json_is_set_aside_and_the_engine_starts(cluster):
    p = cluster.engine("p")
    ws = walstream_pb2_grpc.WalStreamStub(p.channel())
    list(ws.BaseBackup(walstream_pb2.BaseBackupRequest(standby_name="s1"), timeout=30))
    p.stop()
    path = os.path.join(p.data_dir, "slots.json")
    with open(path, "w") as f:
        f.write('{"slots": [{"name": "s1", "restart')      # torn by something outside walrus
    p.start()
    assert p.status().role == 1 and p.put(b"k", b"v").lsn > 0
    assert os.path.exists(path + ".unreadable")
