"""The orchestrator's pure decision core: no I/O, no clock, no randomness.

``decide(snapshot, config, now, previous=State.STARTING) -> Decision`` and
``explain(snapshot, config) -> Ranking`` are the entry points; the data model
is in ``orchestrator.core.model``, the state machine in
``orchestrator.core.states``.
"""
