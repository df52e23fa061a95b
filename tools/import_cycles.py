"""Import cycles among the modules of a package, imports inside functions included.

    python tools/import_cycles.py charrnn            # a package name (as Python finds it)
    python tools/import_cycles.py path/to/package    # or its directory

Every ``.py`` file under the package directory is a module (a sub-package's
``__init__.py`` is the sub-package itself). Its imports of the package are read with
``ast`` from the whole file, function bodies included; relative imports are resolved;
what an ``if TYPE_CHECKING:`` block imports is left out (it never runs). Importing
``a.b.c`` from outside ``a.b`` also runs ``a/b/__init__.py`` first, so it counts as an
import of ``a.b`` too. Prints each strongly connected group of more than one module and
exits 1, or prints ``ok: no import cycle among N modules`` and exits 0.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import sys
from pathlib import Path


def find_package(name_or_path: str) -> tuple[str, Path]:
    """The package's dotted name and directory, from either."""
    p = Path(name_or_path)
    if p.is_dir():
        p = p.resolve()
        if not (p / "__init__.py").is_file():
            raise SystemExit(f"{p} is not a package (no __init__.py)")
        return p.name, p
    spec = importlib.util.find_spec(name_or_path)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"no package named {name_or_path!r}")
    return name_or_path, Path(list(spec.submodule_search_locations)[0])


def module_files(package: str, root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package."""
    mods = {}
    for f in sorted(root.rglob("*.py")):
        parts = f.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join((package, *parts))] = f
    return mods


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """The Import and ImportFrom nodes of a tree, anywhere but under ``if TYPE_CHECKING``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)               # the else branch does run
            continue
        stack.extend(ast.iter_child_nodes(node))


def imported_names(module: str, is_package: bool, tree: ast.AST) -> set[str]:
    """The dotted names a module imports (absolute, relative imports resolved); for
    ``from X import n`` both ``X`` and ``X.n`` (which may be a module or not)."""
    names = set()
    here = module.split(".") if is_package else module.split(".")[:-1]
    for node in _imports(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
            continue
        if node.level:
            up = node.level - 1
            if up >= len(here):
                continue                            # beyond the top package
            base = ".".join(here[:len(here) - up] + ([node.module] if node.module else []))
        else:
            base = node.module
        names.add(base)
        names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _runs(target: str, importer: str):
    """The modules an import of ``target`` runs: it and the packages above it, less those
    that are ``importer`` or hold it (already being imported when ``importer`` runs)."""
    parts = target.split(".")
    for i in range(len(parts), 0, -1):
        m = ".".join(parts[:i])
        if importer == m or importer.startswith(m + "."):
            return
        yield m


def import_graph(package: str, root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the package that importing it runs."""
    files = module_files(package, root)
    graph: dict[str, set[str]] = {}
    for mod, f in files.items():
        tree = ast.parse(f.read_text(encoding="utf-8"), filename=str(f))
        edges = set()
        for name in imported_names(mod, f.name == "__init__.py", tree):
            # the longest prefix that is a module: `from pkg.sub import name` names a
            # module, or something defined in one
            parts = name.split(".")
            while parts and ".".join(parts) not in files:
                parts.pop()
            if parts:
                edges.update(_runs(".".join(parts), mod))
        graph[mod] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
                groups.append(sorted(group))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(groups)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("package", help="a package name or a package directory")
    args = p.parse_args(argv)
    package, root = find_package(args.package)
    graph = import_graph(package, root)
    found = cycles(graph)
    for group in found:
        print(f"cycle: {', '.join(group)}")
        for mod in group:
            inside = sorted(graph[mod] & set(group))
            print(f"    {mod} imports {', '.join(inside)}")
    if found:
        return 1
    print(f"ok: no import cycle among {len(graph)} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
