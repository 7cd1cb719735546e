"""The package's structure: no import cycles between its modules (deferred imports inside
functions count too), and no module takes a private name from another package."""

from __future__ import annotations

import ast
from pathlib import Path

import modelcollapse

ROOT = Path(modelcollapse.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(imported module, names taken from it) for every import in ``path``, resolved to
    absolute module names within the package."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.append((module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            out.extend((alias.name, []) for alias in node.names)
    return out


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for module, names in _imports(path):
            targets = [module] + [f"{module}.{n}" for n in names]
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def _package_of(module: str) -> str:
    path = ROOT.parent.joinpath(*module.split("."))
    return module if path.is_dir() else module.rpartition(".")[0]


def test_no_import_cycles():
    graph = _graph()
    # A package's __init__ importing its own submodules is how a package exposes them; a
    # submodule importing a sibling through the package is the cycle that matters.
    edges = {a: {b for b in targets if not (a == _package_of(b) and a != b)}
             for a, targets in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_no_private_name_crosses_a_package():
    crossings = []
    for path in ROOT.rglob("*.py"):
        name = _module_name(path)
        own = _package_of(name)
        for module, names in _imports(path):
            if not module.startswith("modelcollapse") or _package_of(module) == own \
                    or module == own:
                continue
            private = [n for n in names if n.startswith("_") and n != "__version__"]
            if private and not ROOT.parent.joinpath(*module.split(".")).is_dir():
                crossings.append(f"{name} takes {private} from {module}")
    assert not crossings, "\n".join(crossings)
