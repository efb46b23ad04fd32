"""WriteHealth: one episode per run of failures, not one per failed write."""
from walrus_ha.node.engine.embedded.writehealth import WriteHealth


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_successes_between_failures_do_not_end_the_episode():
    clock = Clock()
    h = WriteHealth("n1", clock, clear_after_s=1.0)
    h.failed("WAL append", OSError(28, "No space left on device"))
    assert h.error and h.since == 1000.0
    for _ in range(50):                 # small writes still fit, big ones fail: 10 ms apart
        clock.now += 0.01
        h.succeeded()
        h.failed("WAL append", OSError(28, "No space left on device"))
    assert h.error and h.since == 1000.0     # one episode, started at the first failure


def test_the_episode_ends_after_a_quiet_second_of_successes():
    clock = Clock()
    h = WriteHealth("n1", clock, clear_after_s=1.0)
    h.failed("WAL flush", OSError(5, "I/O error"))
    clock.now += 0.5
    h.succeeded()
    assert h.error                      # too soon
    clock.now += 0.6
    h.succeeded()
    assert h.error == "" and h.since == 0.0
    h.failed("WAL flush", OSError(5, "I/O error"))
    assert h.since == clock.now         # a new episode


def test_no_failure_no_state():
    h = WriteHealth("n1", Clock())
    h.succeeded()
    assert (h.error, h.since) == ("", 0.0)
