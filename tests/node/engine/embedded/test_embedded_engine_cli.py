"""``walrus engine`` refuses bad arguments with one clear line."""
import subprocess
import sys

import pytest


def run_engine(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "walrus_ha", "engine", *args], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)


BASE = ["--name", "a", "--listen", "127.0.0.1:0"]


@pytest.mark.parametrize("args,needle", [
    (["--listen", "nohost", "--name", "a"], "--listen"),
    (BASE + ["--upstream", "no-at-sign"], "NAME@HOST:PORT"),
    (BASE + ["--upstream", "b@host:notaport"], "--upstream"),
    (BASE + ["--sync", "SOME 1 (b)"], "--sync"),
    (BASE + ["--sync", "FIRST 3 (b)"], "asks for 3"),
    (BASE + ["--synchronous-commit", "maybe"], "synchronous_commit"),
    (BASE + ["--segment-size", "100"], "segment_size"),
], ids=["listen", "upstream-format", "upstream-port", "sync-syntax", "sync-count", "level", "segment"])
def test_bad_arguments_fail_with_a_sentence(tmp_path, args, needle):
    res = run_engine(tmp_path, "--data-dir", str(tmp_path / "d"), *args)
    assert res.returncode != 0
    assert needle in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "d").exists()


def test_missing_required_flag(tmp_path):
    res = run_engine(tmp_path, "--name", "a")
    assert res.returncode == 2 and "--data-dir" in res.stderr


def test_port_in_use_is_a_clear_error(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = run_engine(tmp_path, "--name", "a", "--data-dir", str(tmp_path / "d"), "--listen", f"127.0.0.1:{port}")
    assert res.returncode == 1 and "cannot listen" in res.stderr and "Traceback" not in res.stderr
