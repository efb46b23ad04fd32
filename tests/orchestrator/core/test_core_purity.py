"""The decision core does no I/O: its modules import nothing that could.
Besides itself it may import one module of the shared library,
``common.status`` (the shared ``Role``/``SyncMethod``), which must be pure too."""
from __future__ import annotations

import ast
import pathlib

import walrus_ha.common.status
import walrus_ha.orchestrator.core

FORBIDDEN = {"grpc", "etcd3", "subprocess", "socket", "time", "threading", "random", "os", "asyncio",
             "walrus_ha.protos", "walrus_ha.common.dcs", "walrus_ha.common.grpcutil", "logging", "datetime",
             "multiprocessing", "signal", "select", "shutil", "tempfile", "urllib", "http", "requests", "psycopg",
             "walrus_ha.node"}
CORE_DIR = pathlib.Path(walrus_ha.orchestrator.core.__file__).parent
SHARED = "walrus_ha.common.status"     # the one module outside the core the core may import
SHARED_FILE = pathlib.Path(walrus_ha.common.status.__file__)
STDLIB_ROOTS = {"__future__", "enum", "dataclasses", "typing"}


def _imports(path: pathlib.Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("__import__", "exec", "eval", "open"):
            names.add(f"<call {node.func.id}>")
    return names


def _bad(name: str) -> bool:
    return name.startswith("<call") or any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def test_core_modules_exist() -> None:
    found = {p.name for p in CORE_DIR.glob("*.py")}
    assert {"__init__.py", "model.py", "states.py", "ranking.py", "syncset.py", "decide.py"} <= found


def test_core_imports_no_io() -> None:
    offenders = {p.name: sorted(n for n in _imports(p) if _bad(n)) for p in sorted(CORE_DIR.glob("*.py"))}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_core_imports_only_stdlib_itself_and_the_shared_status() -> None:
    allowed_roots = STDLIB_ROOTS | {"walrus_ha"}
    allowed_modules = {"collections.abc"}   # typing's abstract types, where ruff (UP035) wants them
    for p in CORE_DIR.glob("*.py"):
        for name in _imports(p):
            assert name in allowed_modules or name.split(".")[0] in allowed_roots, f"{p.name} imports {name}"
            if name.startswith("walrus_ha"):
                assert name.startswith("walrus_ha.orchestrator.core") or name == SHARED, f"{p.name} imports {name}"


def test_shared_status_module_is_pure() -> None:
    names = _imports(SHARED_FILE)
    assert sorted(n for n in names if _bad(n)) == []
    assert all(n.split(".")[0] in STDLIB_ROOTS for n in names), sorted(names)


def test_detector_catches_a_forbidden_import(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nfrom os import path\nfrom grpc import aio\nimport socket as s\n")
    assert sorted(n for n in _imports(bad) if _bad(n)) == ["grpc", "os", "socket", "time"]


def test_core_modules_are_small() -> None:
    for p in CORE_DIR.glob("*.py"):
        assert len(p.read_text().splitlines()) < 500, p.name
