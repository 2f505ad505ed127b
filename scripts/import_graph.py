"""The package's import graph from its modules' own ``import`` statements: circles, imports
that run from a lower layer to a higher one, and module sizes.

    python scripts/import_graph.py                 # this checkout's src/asym_sweep
    python scripts/import_graph.py --src OTHER/src  # another checkout (say, an older revision)

Every import counts, wherever it stands (inside a function or under ``TYPE_CHECKING`` too):
a lazy import still ties two modules together. Exit 1 when there is a circle or an arrow
back up, so ``tests/test_structure.py`` and a reviewer run the same check.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
from fnmatch import fnmatch
from pathlib import Path

PACKAGE = "asym_sweep"
SRC = Path(__file__).resolve().parents[1] / "src"
# Bottom to top: a module may import its own layer and the layers below, never one above.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "utilities",
        (
            "paths",
            "timing",
            "native",
            "selection",
            "dropout",
            "resources",
            "provenance",
            "allocator",
            "data",
            "progress",
            "download",
            "runlock",
            "timing_records",
        ),
    ),
    ("engine", ("engine", "engine.*")),
    ("rules", ("rules", "rules.*")),
    ("model", ("model", "methods", "sparse")),
    ("setup", ("config", "grid", "records")),
    ("running", ("train", "projection", "launch", "status", "timing_sweep")),
    ("report", ("report", "report.*")),
    ("command line", ("__main__",)),
]
# What a rule module may use: the engine (a rule with its own step also the procedure).
RULE_IMPORTS = ("engine", "engine.*", "selection", "timing", "rules", "rules.*")


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src / PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) or "__init__"


def imports_of(path: Path, name: str) -> set[str]:
    """The package modules ``path`` imports (relative to the package: ``rules.thesis``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:  # relative: resolve against this module's package
                pkg = (
                    name.split(".")[: -node.level]
                    if not path.name == "__init__.py"
                    else name.split(".")[: len(name.split(".")) - node.level + 1]
                )
                base = ".".join([PACKAGE, *pkg, node.module])
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target == PACKAGE or target.startswith(PACKAGE + "."):
                found.add(target[len(PACKAGE) + 1 :] or "__init__")
    return found


def graph(src: Path) -> tuple[dict[str, set[str]], dict[str, int]]:
    files = {module_name(p, src): p for p in sorted((src / PACKAGE).rglob("*.py"))}
    edges = {}
    for name, path in files.items():
        targets = {t for t in imports_of(path, name) if t in files and t != name}
        edges[name] = targets
    sizes = {name: len(path.read_text().splitlines()) for name, path in files.items()}
    return edges, sizes


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def layer_of(module: str) -> int | None:
    for i, (_, patterns) in enumerate(LAYERS):
        if any(fnmatch(module, p) for p in patterns):
            return i
    return None


def arrows_up(edges: dict[str, set[str]]) -> list[str]:
    """Imports from a lower layer to a higher one, rule modules that import beyond the engine,
    and modules no layer names."""
    problems = []
    for source, targets in sorted(edges.items()):
        here = layer_of(source)
        if here is None:
            problems.append(f"{source}: in no layer of scripts/import_graph.py (add it to LAYERS)")
            continue
        for target in sorted(targets):
            there = layer_of(target)
            if there is not None and there > here:
                problems.append(f"{source} ({LAYERS[here][0]}) imports {target} ({LAYERS[there][0]})")
            if fnmatch(source, "rules.*") and not any(fnmatch(target, p) for p in RULE_IMPORTS):
                problems.append(f"{source}: a rule module imports {target} (rules import only the engine)")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--src", type=Path, default=SRC, help="the folder holding the asym_sweep package (default: this checkout's src)"
    )
    args = p.parse_args(argv)
    if not (args.src / PACKAGE).is_dir():
        print(f"import_graph: error: no {PACKAGE} package under {args.src}", file=sys.stderr)
        return 2
    edges, sizes = graph(args.src)
    loops, up = circles(edges), arrows_up(edges)
    print(
        f"{len(edges)} modules, {sum(len(t) for t in edges.values())} imports between them, {sum(sizes.values())} lines"
    )
    print(f"circles: {len(loops)}")
    for group in loops:
        print("  " + " <-> ".join(group))
    print(f"imports against the layers: {len(up)}")
    for line in up:
        print("  " + line)
    print("modules by layer (lines):")
    for i, (layer, _) in enumerate(LAYERS):
        members = sorted((m for m in edges if layer_of(m) == i), key=lambda m: -sizes[m])
        if members:
            print(f"  {layer:13} " + ", ".join(f"{m} {sizes[m]}" for m in members))
    return 1 if loops or up else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # `... | head` closed the pipe: what was asked for was printed
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        sys.exit(0)
