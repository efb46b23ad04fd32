"""DiskSpace: a full data filesystem is reported once, with when it started."""
import os

from walrus_ha.node.engine.postgres.diskspace import DiskSpace


def _vfs(free_blocks: int):
    return lambda _path: os.statvfs_result((4096, 4096, 1000, free_blocks, free_blocks, 100, 50, 50, 0, 255))


class Clock:
    now = 500.0

    def __call__(self):
        return self.now


def test_full_then_room_again():
    clock, free = Clock(), [1000]
    d = DiskSpace("/x", min_free=1 << 20, clock=clock, statvfs=lambda p: _vfs(free[0])(p))
    assert d.check() == ("", 0.0)
    free[0] = 10                                   # 40 KiB left
    error, since = d.check()
    assert "filesystem is full (40960 bytes free)" in error and since == 500.0
    clock.now = 510.0
    assert d.check()[1] == 500.0                   # the same episode
    free[0] = 1000
    assert d.check() == ("", 0.0)


def test_a_missing_path_keeps_what_was_known():
    def gone(_path):
        raise FileNotFoundError(_path)
    d = DiskSpace("/nope", statvfs=gone)
    assert d.check() == ("", 0.0)


def test_real_statvfs_of_a_roomy_directory(tmp_path):
    assert DiskSpace(str(tmp_path)).check() == ("", 0.0)


def test_reset_starts_a_new_episode():
    clock, free = Clock(), [10]
    d = DiskSpace("/x", min_free=1 << 20, clock=clock, statvfs=lambda p: _vfs(free[0])(p))
    assert d.check()[1] == 500.0
    d.reset()                                      # promoted again, later
    clock.now = 560.0
    assert d.check()[1] == 560.0
