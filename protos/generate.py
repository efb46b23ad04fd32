"""Regenerate the Python stubs from the .proto sources.

Run from anywhere: ``python -m walrus_ha.protos.generate`` (needs
grpcio-tools, the ``dev`` extra). ``--check`` regenerates into a temporary
folder and exits 1 when the committed stubs differ from the sources, so CI
catches a .proto edit that was not regenerated.

The sources are compiled as ``walrus_ha/protos/*.proto`` (a temporary tree
that links this folder under that name), so the files register in
protobuf's global descriptor pool under a path no other package uses and the
stubs import each other as ``walrus_ha.protos.*``.
"""
from __future__ import annotations

import filecmp
import os
import pathlib
import shutil
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
PROTO_DIR = "walrus_ha/protos"          # the import path of the sources inside protoc
PROTOS = sorted(p.name for p in HERE.glob("*.proto"))


def generate(out: pathlib.Path) -> None:
    """Run protoc for every .proto; the stubs land directly in ``out``."""
    from grpc_tools import protoc  # imported late: only the dev extra has it

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = pathlib.Path(tmp, "src"), pathlib.Path(tmp, "out")
        (src / PROTO_DIR).parent.mkdir(parents=True)
        os.symlink(HERE, src / PROTO_DIR)
        dst.mkdir()
        args = ["protoc", f"-I{src}", f"--python_out={dst}", f"--grpc_python_out={dst}",
                f"--pyi_out={dst}"] + [f"{PROTO_DIR}/{name}" for name in PROTOS]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        out.mkdir(parents=True, exist_ok=True)
        for f in (dst / PROTO_DIR).iterdir():
            shutil.copyfile(f, out / f.name)


def _generated(folder: pathlib.Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*_pb2*.py*"))


def main(argv: list[str]) -> int:
    if "--check" in argv:
        with tempfile.TemporaryDirectory() as tmp:
            out = pathlib.Path(tmp)
            generate(out)
            fresh = _generated(out)
            stale = [n for n in fresh
                     if not (HERE / n).exists() or not filecmp.cmp(out / n, HERE / n, shallow=False)]
            extra = sorted(set(_generated(HERE)) - set(fresh))
            if stale or extra:
                print("stale generated stubs (run python -m walrus_ha.protos.generate):",
                      ", ".join(stale + extra))
                return 1
            print(f"generated stubs are current ({len(fresh)} files)")
            return 0
    generate(HERE)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
