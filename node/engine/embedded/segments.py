"""The WAL's segment files: byte I/O at log positions, creation, spares.

Rule: a segment file exists under its final name only once it is fully
allocated (zero-filled and fsynced, or a renamed spare), and every rename or
unlink is followed by an fsync of the directory. Segments never hold WAL
meaning here: ``wal.py`` decides what is valid.

``SegmentStore`` is not thread-safe on its own: its owner (``Wal``) holds
``lock`` around every call; the background preparer takes ``lock`` only to
hand over a finished spare.
"""
from __future__ import annotations

import os
import threading

from walrus_ha.common.errors import EngineError
from walrus_ha.common.lsn import format_lsn

from .framing import parse_segment_name, segment_name

SPARE_PREFIX = "spare-"
MAX_SPARES = 2
_ZERO_CHUNK = 1 << 20


def fsync_dir(path: str) -> None:
    """Make renames/unlinks in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def zero_file(path: str, size: int) -> None:
    """Write ``size`` zero bytes to a new file and fsync it (so later
    fdatasyncs of overwrites need no metadata update)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        zeros = bytes(min(_ZERO_CHUNK, size))
        off = 0
        while off < size:
            off += os.pwrite(fd, zeros[: size - off], off)
        os.fsync(fd)
    finally:
        os.close(fd)


class SegmentStore:
    """Segment files of one WAL directory (see the module docstring)."""

    def __init__(self, directory: str, segment_size: int, lock: threading.Lock) -> None:
        self.directory = directory
        self.segment_size = segment_size
        self._lock = lock
        self.names: dict[int, str] = {}         # segno -> file name
        self._fds: dict[int, int] = {}          # segno -> open fd
        self.dirty: set[int] = set()            # written since the last fdatasync
        self._spares: list[str] = []            # ready-made files: recycled or zero-filled
        self._spare_seq = 0
        self._preparer: threading.Thread | None = None
        self._closed = False

    def load(self) -> None:
        """List the directory: segments, spares; drop half-made ``.tmp`` files."""
        for name in os.listdir(self.directory):
            if name.endswith(".tmp"):
                os.unlink(os.path.join(self.directory, name))
                continue
            if name.startswith(SPARE_PREFIX):
                self._spares.append(name)
                suffix = name[len(SPARE_PREFIX):]
                self._spare_seq = max(self._spare_seq, int(suffix) + 1 if suffix.isdigit() else 0)
                continue
            try:
                tli, segno = parse_segment_name(name, self.segment_size)
            except ValueError:
                continue
            old = self.names.get(segno)
            if old is None or int(old[:8], 16) < tli:
                self.names[segno] = name

    # ----------------------------------------------------------- files
    def fd(self, segno: int) -> int:
        fd = self._fds.get(segno)
        if fd is None:
            name = self.names.get(segno)
            if name is None:
                raise EngineError(f"WAL segment {segno} is missing in {self.directory}")
            fd = os.open(os.path.join(self.directory, name), os.O_RDWR)
            self._fds[segno] = fd
        return fd

    def close_fd(self, segno: int) -> None:
        fd = self._fds.pop(segno, None)
        if fd is not None:
            os.close(fd)

    def dirty_fds(self) -> tuple[list[int], set[int]]:
        """Take the set of written-but-not-synced segments and their fds."""
        done, self.dirty = self.dirty, set()
        return [self._fds[s] for s in done if s in self._fds], done

    def close_old_fds(self, current: int) -> None:
        """Close fds of synced segments well behind ``current``."""
        for s in [s for s in self._fds if s < current - 1 and s not in self.dirty]:
            self.close_fd(s)

    def _create(self, segno: int, timeline: int) -> int:
        """Create segment ``segno`` from a spare (a rename), or zero-fill one
        now if the background preparer has not made one yet."""
        name = segment_name(timeline, segno, self.segment_size)
        path = os.path.join(self.directory, name)
        if self._spares:
            os.rename(os.path.join(self.directory, self._spares.pop(0)), path)
        else:
            zero_file(path + ".tmp", self.segment_size)
            os.rename(path + ".tmp", path)
        fsync_dir(self.directory)
        self.names[segno] = name
        return self.fd(segno)

    # ----------------------------------------------------------- spares
    def maybe_prepare_spare(self, write_lsn: int) -> None:
        """Past a quarter of the current segment with no spare in stock,
        zero-fill the next segment in the background so that crossing into it
        is a rename, not a stall of every committer."""
        if self._spares or self._preparer is not None or self._closed:
            return
        if write_lsn % self.segment_size < self.segment_size // 4:
            return
        name = f"{SPARE_PREFIX}{self._spare_seq}"
        self._spare_seq += 1
        self._preparer = threading.Thread(target=self._prepare_spare, args=(name,),
                                          name="wal-prealloc", daemon=True)
        self._preparer.start()

    def _prepare_spare(self, name: str) -> None:
        path = os.path.join(self.directory, name)
        try:
            zero_file(path + ".tmp", self.segment_size)
            os.rename(path + ".tmp", path)
            fsync_dir(self.directory)
        except OSError:
            with self._lock:
                self._preparer = None
            return
        with self._lock:
            self._preparer = None
            if self._closed:
                os.unlink(path)
            else:
                self._spares.append(name)

    def retire(self, segnos: list[int]) -> None:
        """Remove segments (keeping up to ``MAX_SPARES`` as spares); durable."""
        for s in segnos:
            self.close_fd(s)
            self.dirty.discard(s)
            path = os.path.join(self.directory, self.names.pop(s))
            if len(self._spares) < MAX_SPARES:
                name = f"{SPARE_PREFIX}{self._spare_seq}"
                self._spare_seq += 1
                os.rename(path, os.path.join(self.directory, name))
                self._spares.append(name)
            else:
                os.unlink(path)
        if segnos:
            fsync_dir(self.directory)

    # ----------------------------------------------------------- bytes
    def pwrite(self, lsn: int, data, timeline: int) -> None:
        """Write ``data`` at ``lsn``, creating segments (named with
        ``timeline``) as needed. Raises EngineError on an OS error."""
        mv = memoryview(data)
        try:
            while mv:
                segno, off = divmod(lsn, self.segment_size)
                fd = self._fds.get(segno)
                if fd is None:
                    fd = self.fd(segno) if segno in self.names else self._create(segno, timeline)
                n = os.pwrite(fd, mv[: self.segment_size - off], off)
                self.dirty.add(segno)
                mv = mv[n:]
                lsn += n
        except OSError as exc:
            raise EngineError(f"WAL write at {format_lsn(lsn)} failed: {exc}") from exc

    def pread(self, lsn: int, size: int) -> bytes:
        """Read up to ``size`` bytes at ``lsn`` (short at a missing segment)."""
        parts = []
        while size > 0:
            segno, off = divmod(lsn, self.segment_size)
            if segno not in self.names:
                break
            n = min(size, self.segment_size - off)
            chunk = os.pread(self.fd(segno), n, off)
            parts.append(chunk)
            if len(chunk) < n:
                break
            size -= n
            lsn += n
        return b"".join(parts)

    def cut_tail(self, end: int) -> None:
        """Zero ``end``..end of its segment and delete later segments; durable."""
        segno = end // self.segment_size
        for s in sorted(self.names):
            if s > segno:
                self.close_fd(s)
                self.dirty.discard(s)
                os.unlink(os.path.join(self.directory, self.names.pop(s)))
        if segno in self.names:
            fd = self.fd(segno)
            off = end % self.segment_size
            while off < self.segment_size:
                n = min(_ZERO_CHUNK, self.segment_size - off)
                os.pwrite(fd, bytes(n), off)
                off += n
            os.fdatasync(fd)
        fsync_dir(self.directory)

    def close(self) -> threading.Thread | None:
        """Close every fd; returns the preparer thread to join (outside the lock)."""
        self._closed = True
        for s in list(self._fds):
            self.close_fd(s)
        return self._preparer
