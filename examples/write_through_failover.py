#!/usr/bin/env python3
"""Write in a loop through a failover with ``walrus_ha.client`` (embedded engine).

    walrus cluster up --dir /tmp/wc                # a local cluster (see README)
    python examples/write_through_failover.py --orchestrators 127.0.0.1:7400,127.0.0.1:7401
    # meanwhile, in another shell: walrus cluster signal n1 --signal KILL   (the primary)

Each write goes to the current writable leader; a write whose outcome was
unknown when the leader died is read back from the next leader before it is
sent again, so nothing is applied twice. At the end every acknowledged key is
read back from the final leader: with ``synchronous_mode: true`` none is
missing; in asynchronous mode a failover may lose the old primary's unshipped
tail (docs/design.md, "What async mode can lose").
"""
from __future__ import annotations

import argparse
import time

from walrus_ha.client import StoreWriter, connect
from walrus_ha.common import grpcutil
from walrus_ha.protos import store_pb2, store_pb2_grpc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orchestrators", required=True, help="host:port[,host:port...]")
    ap.add_argument("--writes", type=int, default=2000)
    ap.add_argument("--prefix", default=f"example-{int(time.time())}")
    args = ap.parse_args()
    acked: list[bytes] = []
    with connect(args.orchestrators.split(","), timeout=30) as leaders:
        writer = StoreWriter(leaders, deadline_s=60)
        last = None
        for i in range(args.writes):
            key = f"{args.prefix}/{i}".encode()
            t0 = time.monotonic()
            lead = writer.put(key, b"value-%d" % i)
            acked.append(key)
            if lead.name != last:
                print(f"write {i}: leader {lead.name} (term {lead.term}), this write took "
                      f"{(time.monotonic() - t0) * 1000:.0f} ms", flush=True)
                last = lead.name
        final = leaders.wait_writable(30)
        writer.close()
    with grpcutil.channel(final.data_address) as ch:
        store = store_pb2_grpc.StoreStub(ch)
        missing = [k for k in acked if not store.Get(store_pb2.GetRequest(key=k), timeout=5).found]
    print(f"{len(acked)} writes acknowledged, {writer.retries} retries, {writer.read_back_hits} confirmed by "
          f"read-back; {len(missing)} missing on the final leader {final.name}")
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
