"""Back off an action the core keeps asking for when running it does not help.

The one rule: **an action that failed for a reason retrying cannot fix (the
agent answered FAILED_PRECONDITION, INVALID_ARGUMENT, INTERNAL, ...), or that
was a no-op (``changed`` False) while the core keeps deciding it, runs
``FREE_RUNS`` more times as usual and then only after a jittered exponential
delay** (``BASE_S`` doubling up to ``CAP_S``), instead of once per loop (the
issue-10 case: 2,000 identical Follow calls in 2.5 minutes to a standby that
could never stream). An unreachable agent (UNAVAILABLE / DEADLINE_EXCEEDED /
a refused port) is not hopeless: the core handles a dead member itself.

A change of the action's arguments (a new term, another leader) is another
action with a fresh count; one the core stops asking for is forgotten
(``keep_only``); one that changed something clears its backoff.

Pure but for the injected clock and random source.
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

FREE_RUNS = 3        # unhelpful runs allowed back to back before backing off
BASE_S = 0.5         # first delay (before jitter)
CAP_S = 10.0         # longest delay: a member that becomes fixable is retried within this


@dataclass
class _Entry:
    unhelpful: int = 0          # unhelpful runs in a row
    not_before: float = 0.0     # clock value before which the action is not run again
    delay: float = 0.0


class ActionBackoff:
    """Per-action backoff state, keyed by the action's description."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, rand: Callable[[], float] = random.random,
                 free_runs: int = FREE_RUNS, base_s: float = BASE_S, cap_s: float = CAP_S) -> None:
        self._clock, self._rand = clock, rand
        self._free, self._base, self._cap = free_runs, base_s, cap_s
        self._entries: dict[str, _Entry] = {}

    def wait_s(self, key: str) -> float:
        """Seconds until ``key`` may run again (0: run it now)."""
        e = self._entries.get(key)
        return 0.0 if e is None else max(0.0, e.not_before - self._clock())

    def unhelpful(self, key: str) -> tuple[int, float] | None:
        """Record an unhelpful run. Returns (runs in a row, delay in s) when
        the backoff changed (log it), None while still within the free runs."""
        e = self._entries.setdefault(key, _Entry())
        e.unhelpful += 1
        over = e.unhelpful - self._free
        if over <= 0:
            return None
        full = min(self._cap, self._base * 2 ** (over - 1))
        e.delay = full / 2 + self._rand() * full / 2      # "equal jitter": between half and all of it
        e.not_before = self._clock() + e.delay
        return e.unhelpful, e.delay

    def helped(self, key: str) -> int:
        """Record a run that changed something; returns the unhelpful runs it
        ends (> FREE_RUNS: a backoff was cleared, log it)."""
        e = self._entries.pop(key, None)
        return 0 if e is None else e.unhelpful

    def keep_only(self, keys: Iterable[str]) -> None:
        """Forget every action the core no longer asks for."""
        wanted = set(keys)
        for key in [k for k in self._entries if k not in wanted]:
            del self._entries[key]

    def backing_off(self, key: str) -> bool:
        e = self._entries.get(key)
        return e is not None and e.unhelpful > self._free


__all__ = ["ActionBackoff", "FREE_RUNS", "BASE_S", "CAP_S"]
