"""Regenerate the Python stubs from the .proto sources.

Run from anywhere: ``python -m protos.generate`` (needs grpcio-tools, the
``dev`` extra). ``--check`` regenerates into a temporary folder and exits 1
when the committed stubs differ from the sources, so CI catches a .proto edit
that was not regenerated.
"""
from __future__ import annotations

import filecmp
import pathlib
import shutil
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTOS = sorted(p.name for p in (ROOT / "protos").glob("*.proto"))


def generate(out: pathlib.Path) -> None:
    """Run protoc for every .proto into ``out`` (which mirrors the repo root)."""
    from grpc_tools import protoc  # imported late: only the dev extra has it

    (out / "protos").mkdir(parents=True, exist_ok=True)
    args = ["protoc", f"-I{ROOT}", f"--python_out={out}", f"--grpc_python_out={out}",
            f"--pyi_out={out}"] + [f"protos/{name}" for name in PROTOS]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def _generated(folder: pathlib.Path) -> list[str]:
    return sorted(p.name for p in (folder / "protos").glob("*_pb2*.py*"))


def main(argv: list[str]) -> int:
    if "--check" in argv:
        with tempfile.TemporaryDirectory() as tmp:
            out = pathlib.Path(tmp)
            generate(out)
            fresh = _generated(out)
            stale = [n for n in fresh
                     if not (ROOT / "protos" / n).exists()
                     or not filecmp.cmp(out / "protos" / n, ROOT / "protos" / n, shallow=False)]
            if stale:
                print("stale generated stubs (run python -m protos.generate):", ", ".join(stale))
                return 1
            print(f"generated stubs are current ({len(fresh)} files)")
            return 0
    generate(ROOT)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
