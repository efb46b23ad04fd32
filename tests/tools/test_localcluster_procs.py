"""Process supervision with real processes: detached start, identity check
before signalling, SIGTERM then SIGKILL."""
import os
import signal
import sys
import time

from walrus_ha.common import procs

SLEEPER = (sys.executable, "-c", "import time; time.sleep(60)")
STUBBORN = (sys.executable, "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
            "time.sleep(60)")


def _wait_for_text(path, text, timeout_s=10.0):
    end = time.monotonic() + timeout_s
    while text not in path.read_text():
        assert time.monotonic() < end, f"{text!r} never appeared in {path}"
        time.sleep(0.02)


def test_spawn_is_detached_and_logged_and_stop_terminates(tmp_path):
    log = tmp_path / "logs" / "p.log"
    popen, handle = procs.spawn((sys.executable, "-c", "print('hello', flush=True); import time; time.sleep(60)"),
                                str(log))
    try:
        assert procs.is_ours(handle)
        assert os.getsid(handle.pid) == handle.pid          # own session: survives our terminal
        assert procs.ProcHandle.from_json(handle.to_json()) == handle
        _wait_for_text(log, "hello")
        assert procs.stop(handle, timeout_s=10) == "terminated"
        assert not procs.is_ours(handle)
    finally:
        popen.kill()
        popen.wait()


def test_stop_escalates_to_sigkill(tmp_path):
    popen, handle = procs.spawn(STUBBORN, str(tmp_path / "s.log"))
    try:
        _wait_for_text(tmp_path / "s.log", "ready")
        assert procs.stop(handle, timeout_s=0.5) == "killed"
        assert not procs.is_ours(handle)
    finally:
        popen.kill()
        popen.wait()


def test_a_recycled_pid_is_never_signalled(tmp_path):
    popen, handle = procs.spawn(SLEEPER, str(tmp_path / "x.log"))
    try:
        impostor_start = procs.ProcHandle(handle.pid, handle.cmdline, handle.start_ticks + 1)
        impostor_cmd = procs.ProcHandle(handle.pid, ("something", "else"), handle.start_ticks)
        for h in (impostor_start, impostor_cmd):
            assert not procs.is_ours(h)
            assert not procs.send(h, signal.SIGKILL)
            assert procs.stop(h) == "gone"
        assert popen.poll() is None                      # the real process was left alone
    finally:
        popen.kill()
        popen.wait()


def test_stopped_process_is_continued_then_terminated(tmp_path):
    popen, handle = procs.spawn(SLEEPER, str(tmp_path / "t.log"))
    try:
        assert procs.send(handle, signal.SIGSTOP)
        end = time.monotonic() + 5
        while not procs.is_stopped(handle) and time.monotonic() < end:
            time.sleep(0.01)
        assert procs.stop(handle, timeout_s=10) == "terminated"
    finally:
        popen.kill()
        popen.wait()
