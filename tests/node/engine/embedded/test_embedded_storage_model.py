"""Property test: any interleaving of writes, checkpoints, restarts and
rewinds leaves Storage equal to a plain dict model replayed to the same LSN."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from walrus_ha.common.errors import NeedsReclone
from walrus_ha.node.config import EmbeddedConfig
from walrus_ha.node.engine.embedded.records import Batch, BatchOp, Delete, Put
from walrus_ha.node.engine.embedded.storage import Storage

CFG = EmbeddedConfig(segment_size=64 * 1024)
keys = st.sampled_from([b"a", b"b", b"c", b"d", b"e", b"f"])
values = st.binary(max_size=3000)
ops = st.one_of(
    st.tuples(st.just("put"), keys, values),
    st.tuples(st.just("del"), keys),
    st.tuples(st.just("batch"), st.lists(st.tuples(keys, st.none() | values), max_size=4)),
    st.tuples(st.just("ckpt")),
    st.tuples(st.just("reopen")),
    st.tuples(st.just("rewind"), st.integers(0, 10**6)),
)


def _apply_model(model: dict, record) -> None:
    if isinstance(record, Put):
        model[record.key] = record.value
    elif isinstance(record, Delete):
        model.pop(record.key, None)
    else:
        for op in record.ops:
            if op.value is None:
                model.pop(op.key, None)
            else:
                model[op.key] = op.value


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=st.lists(ops, max_size=60))
def test_storage_matches_a_dict_model(tmp_path_factory, script):
    path = str(tmp_path_factory.mktemp("data"))
    s = Storage.open(path, CFG)
    history = [(s.wal.write_lsn, {})]          # (lsn, model state at that lsn)
    try:
        for op in script:
            kind = op[0]
            if kind in ("put", "del", "batch"):
                record = (Put(op[1], op[2]) if kind == "put" else Delete(op[1]) if kind == "del"
                          else Batch(tuple(BatchOp(k, v) for k, v in op[1])))
                _, end = s.apply_local(record)
                s.flush(end)
                model = dict(history[-1][1])
                _apply_model(model, record)
                history.append((end, model))
            elif kind == "ckpt":
                s.checkpoint()
            elif kind == "reopen":
                s.close()
                s = Storage.open(path, CFG)
            else:
                idx = op[1] % len(history)
                try:
                    s.rewind_to(history[idx][0])
                except NeedsReclone:
                    continue               # allowed only when WAL/checkpoints are gone; state untouched
                history = history[: idx + 1]
            assert dict(s.state.items()) == history[-1][1]
            assert s.replay_lsn == s.wal.write_lsn == history[-1][0]
    finally:
        s.close()
