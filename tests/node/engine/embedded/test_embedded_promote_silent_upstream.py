"""Promotion must not depend on how the old primary died (issue 10, item 8).

A partitioned primary does not refuse connections: they hang. The standby's
receiver then sits in a TimelineHistory call that only its own deadline
(``receiver.HISTORY_TIMEOUT_S``) ends, and ``promote`` used to wait for it.
Here the old primary's port is taken over by a black hole (accepts TCP,
never speaks HTTP/2), the same as a partition seen from the standby.
"""
import errno
import socket
import threading
import time

import pytest

from embedded_engine_procs import has, wait_for
from walrus_ha.node.engine.embedded.receiver import HISTORY_TIMEOUT_S
from walrus_ha.protos import common_pb2, node_agent_pb2

pytestmark = pytest.mark.integration


class BlackHole:
    """Listens on 127.0.0.1:port, accepts connections and never answers."""

    def __init__(self, port: int):
        self.sock = self._bind(port)
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @staticmethod
    def _bind(port: int) -> socket.socket:
        for _ in range(200):       # the killed engine's port may linger briefly
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
                s.listen(16)
                return s
            except OSError as exc:
                s.close()
                if exc.errno != errno.EADDRINUSE:
                    raise
                time.sleep(0.05)
        raise AssertionError(f"port {port} stayed in use")

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.accepted:
            c.close()


def test_promote_does_not_wait_for_a_silent_upstream(cluster):
    a = cluster.engine("a")
    b = cluster.engine("b", "--upstream", a.upstream_arg)
    a.put(b"k", b"v")
    wait_for(lambda: has(b, b"k") == b"v", what="b streams from a")
    port = a.port
    a.kill()
    hole = BlackHole(port)
    try:
        # The receiver reconnects into the black hole: its history call now
        # hangs until HISTORY_TIMEOUT_S unless promote() interrupts it.
        wait_for(lambda: hole.accepted, what="b's receiver connects to the silent upstream")
        reply = b.control().Promote(node_agent_pb2.PromoteRequest(term=2), timeout=HISTORY_TIMEOUT_S / 2)
    finally:
        hole.close()
    assert reply.status.engine.role == common_pb2.ROLE_PRIMARY
    b.put(b"after", b"promotion")
    assert has(b, b"after") == b"promotion"
