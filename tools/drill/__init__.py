"""Chaos failover drills (``walrus drill``): workload, checker, report, scenarios."""
