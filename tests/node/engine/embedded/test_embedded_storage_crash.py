"""Crash safety with real processes: a child writes with group commit and
reports each acknowledged (key, lsn) after its flush; it is SIGKILLed at a
random moment; after reopening, every acknowledged write is present."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from walrus_ha.node.config import EmbeddedConfig
from walrus_ha.node.engine.embedded.storage import Storage

SEG = 64 * 1024
CFG = EmbeddedConfig(segment_size=SEG)

CHILD = r"""
import os, sys, threading
from walrus_ha.node.config import EmbeddedConfig
from walrus_ha.node.engine.embedded.storage import Storage

data_dir, ack_path, round_no, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
storage = Storage.open(data_dir, EmbeddedConfig(segment_size=%d))
ack = os.open(ack_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

def writer(t):
    i = 0
    while True:
        key = f"r{round_no}-t{t}-{i}".encode()
        _, end = storage.put(key, key * 3)
        storage.flush(end)
        os.write(ack, key + b" %%d\n" %% end)
        i += 1

def checkpointer():
    while True:
        storage.checkpoint()

for t in range(threads):
    threading.Thread(target=writer, args=(t,), daemon=True).start()
threading.Thread(target=checkpointer, daemon=True).start()
threading.Event().wait()
""" % SEG  # noqa: UP031 (a script template full of braces)


STANDBY_CHILD = r"""
import os, sys, threading
from walrus_ha.node.config import EmbeddedConfig
from walrus_ha.node.engine.embedded.records import Put, encode
from walrus_ha.node.engine.embedded.storage import Storage
from walrus_ha.node.engine.embedded.wal import encode_record

data_dir, ack_path, round_no = sys.argv[1], sys.argv[2], sys.argv[3]
storage = Storage.open(data_dir, EmbeddedConfig(segment_size=%d))
ack = os.open(ack_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

def replayer():
    while True:
        storage.wal.wait_for_flush(storage.replay_lsn, 0.5)
        storage.replay_up_to(storage.wal.flush_lsn)

def checkpointer():
    while True:
        storage.checkpoint()

threading.Thread(target=replayer, daemon=True).start()
threading.Thread(target=checkpointer, daemon=True).start()
i = 0
while True:                      # play a WAL stream: chunks of 1..20 records
    pos = start = storage.wal.write_lsn
    frames, keys = [], []
    for _ in range(1 + i %% 20):
        key = f"r{round_no}-{i}".encode()
        frame = encode_record(pos, 1, encode(Put(key, key * 3)))
        frames.append(frame)
        keys.append(key)
        pos += len(frame)
        i += 1
    end = storage.receive(start, b"".join(frames))
    storage.flush(end)
    os.write(ack, b"".join(k + b" %%d\n" %% end for k in keys))
""" % SEG  # noqa: UP031 (a script template full of braces)


def _acked(path) -> dict[bytes, int]:
    if not os.path.exists(path):
        return {}
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")[:-1]          # a torn last line was never acknowledged
    return {k: int(v) for k, v in (line.split(b" ") for line in lines)}


def _run_round(data_dir: str, ack_path: str, round_no: int, target: int, script: str = CHILD) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    child = subprocess.Popen([sys.executable, "-c", script, data_dir, ack_path, str(round_no), "8"],
                             env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while len(_acked(ack_path)) < target and time.monotonic() < deadline:
            if child.poll() is not None:
                raise AssertionError(f"writer died: {child.stderr.read().decode()}")
            time.sleep(0.01)
        assert len(_acked(ack_path)) >= target, "writer made no progress"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        child.stderr.close()


def test_kill_9_during_write_storm_loses_no_acknowledged_write(tmp_path):
    data_dir = str(tmp_path / "data")
    rng = random.Random(os.getpid())
    for round_no in range(5):
        ack_path = str(tmp_path / f"acks-{round_no}")
        _run_round(data_dir, ack_path, round_no, target=rng.randint(200, 3000))

        storage = Storage.open(data_dir, CFG)
        try:
            for r in range(round_no + 1):
                acks = _acked(str(tmp_path / f"acks-{r}"))
                missing = [k for k in acks if storage.get(k) != k * 3]
                assert not missing, f"round {r}: {len(missing)} acknowledged writes lost, e.g. {missing[:3]}"
                assert all(lsn <= storage.wal.flush_lsn for lsn in acks.values())
            _assert_per_thread_prefix(storage, round_no)
        finally:
            storage.close()


def _assert_per_thread_prefix(storage: Storage, round_no: int) -> None:
    """Each writer waited for its previous write: what survived is a prefix."""
    seen: dict[str, list[int]] = {}
    for key, _ in storage.state.items():
        r, t, i = key.decode().split("-")
        if r == f"r{round_no}":
            seen.setdefault(t, []).append(int(i))
    for t, idx in seen.items():
        assert sorted(idx) == list(range(len(idx))), f"thread {t} has a gap"


def test_kill_9_while_receiving_keeps_every_flushed_chunk(tmp_path):
    data_dir = str(tmp_path / "data")
    rng = random.Random(os.getpid() + 1)
    for round_no in range(4):
        ack_path = str(tmp_path / f"acks-{round_no}")
        _run_round(data_dir, ack_path, round_no, rng.randint(200, 3000), script=STANDBY_CHILD)
        storage = Storage.open(data_dir, CFG)
        try:
            for r in range(round_no + 1):
                acks = _acked(str(tmp_path / f"acks-{r}"))
                assert all(lsn <= storage.wal.flush_lsn for lsn in acks.values())
                missing = [k for k in acks if storage.get(k) != k * 3]
                assert not missing, f"round {r}: {len(missing)} flushed records lost, e.g. {missing[:3]}"
            assert storage.replay_lsn == storage.wal.write_lsn
        finally:
            storage.close()
