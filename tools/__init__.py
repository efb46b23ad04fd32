"""Tools built on the runtime packages: the ``walrus`` command line
(``cli``), ``ctl``, the local cluster (``localcluster``), chaos drills
(``drill``), benchmarks (``bench*``), the demo, and a loopback etcd launcher
for local clusters and tests (``etcd_server``). Nothing in ``common``,
``node`` or ``orchestrator`` imports from here.
"""
