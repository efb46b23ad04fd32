"""Run mypy over walrus_ha as installed.

pyproject.toml maps the top-level folders onto one import root
(``walrus_ha.common`` is ``common/``, ...). An editable install resolves that
with an import hook, which no static checker follows, so this lays out a tree
of symlinks shaped like the installed package under ``build/mypy/`` (mapping
read from pyproject's ``package-dir``), runs mypy there with pyproject's
``[tool.mypy]`` settings, and prints paths as they are in the repository.
Extra arguments go to mypy. Exit status is mypy's.
"""
from __future__ import annotations

import os
import pathlib
import re
import shutil
import sys
import tomllib

from mypy import api

ROOT = pathlib.Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
TREE = ROOT / "build" / "mypy" / "tree"


def lay_out_tree() -> dict[str, str]:
    """Symlink each mapped folder into TREE; returns tree prefix -> repo prefix."""
    package_dir = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-dir"]
    shutil.rmtree(TREE, ignore_errors=True)
    root_pkg = TREE / "walrus_ha"
    root_pkg.mkdir(parents=True)
    for source in sorted((ROOT / package_dir["walrus_ha"]).glob("*.py")):
        (root_pkg / source.name).symlink_to(source)
    paths = {}
    for package, folder in package_dir.items():
        if package == "walrus_ha":
            continue
        sub = package.split(".", 1)[1]
        (root_pkg / sub).symlink_to(ROOT / folder, target_is_directory=True)
        paths[f"walrus_ha/{sub}/"] = f"{folder}/"
    paths["walrus_ha/"] = f"{package_dir['walrus_ha']}/"
    return paths


def main() -> int:
    paths = lay_out_tree()
    os.chdir(TREE)
    stdout, stderr, status = api.run(["--config-file", str(PYPROJECT), "--cache-dir", str(TREE.parent / "cache"),
                                      "-p", "walrus_ha", *sys.argv[1:]])
    prefix = re.compile("^(" + "|".join(re.escape(p) for p in sorted(paths, key=len, reverse=True)) + ")")
    sys.stdout.write("".join(prefix.sub(lambda m: paths[m.group(1)], line) for line in stdout.splitlines(True)))
    sys.stderr.write(stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
