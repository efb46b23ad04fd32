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


def test_reset_ends_the_episode_and_a_later_failure_starts_a_new_one():
    clock = Clock()
    h = WriteHealth("n1", clock)
    h.failed("WAL append", OSError(28, "No space left on device"))
    clock.now += 60.0
    h.reset("demoted")
    assert (h.error, h.since) == ("", 0.0)
    h.failed("WAL append", OSError(28, "No space left on device"))
    assert h.since == clock.now          # not the failure of a minute ago


def test_a_primary_promoted_again_does_not_report_its_old_failure(tmp_path):
    """The embedded disk-full cascade: a demoted node's episode never ended (no
    write succeeds on a standby), so promoted later it reported "cannot write
    since 60 s ago" and the orchestrator replaced it at once."""
    from walrus_ha.node.config import EmbeddedConfig
    from walrus_ha.node.engine.embedded import EmbeddedEngine
    e = EmbeddedEngine("p", str(tmp_path / "p"), "127.0.0.1:0", EmbeddedConfig())
    e.bootstrap()
    e.start()
    try:
        e.write_health.failed("WAL append", OSError(28, "No space left on device"))
        assert e.status().write_error
        e.demote(1)
        e.promote(2)
        st = e.status()
        assert (st.write_error, st.write_error_since) == ("", 0.0)
    finally:
        e.stop()
