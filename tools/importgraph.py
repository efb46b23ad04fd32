"""The import graph of walrus, from the source (no module is imported).

``python -m walrus_ha.tools.importgraph`` prints the package-level graph
(which part imports which), every module-level import circle, and every
import that points up the layer order; exit status 1 when there is either.
``--modules`` prints every module's imports as well, ``--json`` all of it for
scripts. ``tests/test_layering.py`` holds the tree to the same rules.

Every import counts: at module level, inside a function (a lazy import hides
a dependency, it does not remove it) and under ``if TYPE_CHECKING``.

Layers, lowest first; a module may import its own part, and parts below it::

    protos        the gRPC contract (generated)
    common        the shared library
    node          the node agent and its engines   } peers: neither imports
    orchestrator  the orchestrators                } the other
    tools         command line, local cluster, drills, benchmarks, demo
"""
from __future__ import annotations

import argparse
import ast
import json
import pathlib
import sys
from dataclasses import dataclass, field

ROOT_PACKAGE = "walrus_ha"
# part -> layer; equal layers are peers and may not import each other. The
# root package sits above all of them (``python -m walrus_ha`` runs the CLI).
LAYERS = {"protos": 0, "common": 1, "node": 2, "orchestrator": 2, "tools": 3}
_PARTS = {f"{ROOT_PACKAGE}.{p}" for p in LAYERS}


@dataclass
class Graph:
    modules: dict[str, pathlib.Path] = field(default_factory=dict)
    edges: dict[str, set[str]] = field(default_factory=dict)   # module -> modules it imports

    def part(self, module: str) -> str:
        """``walrus_ha.node.agent.x`` -> ``node``; the root package -> ``walrus_ha``."""
        names = module.split(".")
        if len(names) == 1 or f"{ROOT_PACKAGE}.{names[1]}" not in _PARTS:
            return ROOT_PACKAGE     # the root package's own modules (``__init__``, ``__main__``)
        return names[1]


def _package_dirs() -> dict[str, pathlib.Path]:
    """Each top-level part's source folder, as installed (editable or not)."""
    import importlib.util
    dirs = {}
    for part in [ROOT_PACKAGE] + [f"{ROOT_PACKAGE}.{p}" for p in LAYERS]:
        spec = importlib.util.find_spec(part)
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit(f"cannot find package {part}")
        dirs[part] = pathlib.Path(list(spec.submodule_search_locations)[0])
    return dirs


def _modules() -> dict[str, pathlib.Path]:
    found: dict[str, pathlib.Path] = {}
    for package, folder in _package_dirs().items():
        if package == ROOT_PACKAGE:
            for path in folder.glob("*.py"):
                found[ROOT_PACKAGE if path.stem == "__init__" else f"{ROOT_PACKAGE}.{path.stem}"] = path
            continue
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("").parts
            if rel[-1] == "__init__":
                rel = rel[:-1]
            found[".".join((package, *rel))] = path
    return found


def _imported_names(module: str, path: pathlib.Path, modules: dict[str, pathlib.Path]) -> set[str]:
    """Every name ``module`` imports, absolute. ``from pkg import sub`` names
    only ``pkg.sub`` when ``sub`` is a module (the package runs anyway, as
    every module's parent does); ``pkg`` itself only when something else is
    imported from it."""
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            subs = [f"{target}.{alias.name}" for alias in node.names]
            names.update(s for s in subs if s in modules)
            if any(s not in modules for s in subs):
                names.add(target)
    return names


def build() -> Graph:
    g = Graph(modules=_modules())
    for module, path in g.modules.items():
        targets = set()
        for name in _imported_names(module, path, g.modules):
            # the longest known module that ``name`` is or is inside of
            while name and name not in g.modules:
                name = name.rpartition(".")[0]
            if name and name != module and not module.startswith(name + "."):
                targets.add(name)   # a module's own ancestors run first anyway: no edge
        g.edges[module] = targets
    return g


def part_edges(g: Graph) -> dict[str, dict[str, int]]:
    """part -> {imported part: number of module imports}."""
    out: dict[str, dict[str, int]] = {}
    for src, targets in g.edges.items():
        for dst in targets:
            a, b = g.part(src), g.part(dst)
            if a != b:
                out.setdefault(a, {}).setdefault(b, 0)
                out[a][b] += 1
    return out


def upward(g: Graph) -> list[tuple[str, str]]:
    """Imports that point up the layers or sideways between peer parts."""
    bad = []
    for src, targets in sorted(g.edges.items()):
        for dst in sorted(targets):
            a, b = g.part(src), g.part(dst)
            if a == b or a == ROOT_PACKAGE:
                continue
            if a not in LAYERS or b not in LAYERS or LAYERS[b] >= LAYERS[a]:
                bad.append((src, dst))
    return bad


def cycles(g: Graph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g.edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for v in sorted(g.edges):
        if v not in index:
            visit(v)
    return sorted(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m walrus_ha.tools.importgraph", description=__doc__.split("\n\n")[0])
    ap.add_argument("--modules", action="store_true", help="also print every module's imports")
    ap.add_argument("--json", action="store_true", help="print everything as one JSON object")
    args = ap.parse_args(argv)
    g = build()
    parts, up, circles = part_edges(g), upward(g), cycles(g)
    if args.json:
        print(json.dumps({"parts": parts, "upward": up, "cycles": circles,
                          "modules": {m: sorted(t) for m, t in sorted(g.edges.items())}}, indent=2))
        return 1 if up or circles else 0
    print(f"{len(g.modules)} modules; imports between parts (module imports):")
    for part in sorted(LAYERS, key=lambda p: (-LAYERS[p], p)):
        targets = parts.get(part, {})
        shown = ", ".join(f"{b} ({n})" for b, n in sorted(targets.items(), key=lambda kv: -LAYERS[kv[0]]))
        print(f"  {part:<13} -> {shown or '(nothing)'}")
    print(f"upward or sideways imports: {len(up)}")
    for src, dst in up:
        print(f"  {src} -> {dst}")
    print(f"import circles: {len(circles)}")
    for comp in circles:
        print("  " + " <-> ".join(comp))
    if args.modules:
        for m, imported in sorted(g.edges.items()):
            print(f"{m}: {', '.join(sorted(imported)) or '-'}")
    return 1 if up or circles else 0


if __name__ == "__main__":
    sys.exit(main())
