"""The layering of the design, checked on the source: ``handlers`` imports nothing above it,
``functions`` and ``producer`` import only the core, and no module imports itself round-about.

Only module-level imports count for cycles: a function-level import is a deliberate lazy
edge (``ordertasks emulator`` must not load Flask), never needed at import time.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The project's folders; each imports as ``ordertasks.<folder>`` (``ordertasks`` is the facade).
FOLDERS = ("ordertasks", "handlers", "functions", "producer", "infra")
ALLOWED = {
    "handlers": {"handlers"},
    "functions": {"functions", "handlers"},
    "producer": {"producer", "handlers"},
}


def dotted(path: Path) -> str:
    """The import name of a module file: ``handlers/kind.py`` is ``ordertasks.handlers.kind``."""
    parts = path.relative_to(REPO).with_suffix("").parts
    parts = parts[:-1] if parts[-1] == "__init__" else parts
    return ".".join(parts if parts[0] == "ordertasks" else ("ordertasks", *parts))


def _layer(name: str) -> str:
    """``ordertasks.handlers.kind`` belongs to the ``handlers`` layer; the facade to ``ordertasks``."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in FOLDERS else parts[0]


def modules() -> Iterator[tuple[str, Path]]:
    """(dotted name, path) of every module of the project's packages."""
    for folder in FOLDERS:
        for path in sorted((REPO / folder).rglob("*.py")):
            yield dotted(path), path


def imported(path: Path, top_level_only: bool) -> set[str]:
    """Project modules ``path`` imports (all of them, or only those at module level)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {n for n in names if n.split(".")[0] in FOLDERS}


MODULES = dict(modules())


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_layer_imports_only_what_the_design_allows(layer: str) -> None:
    wrong = {f"{name} imports {target}" for name, path in MODULES.items() if _layer(name) == layer
             for target in imported(path, top_level_only=False) if _layer(target) not in ALLOWED[layer]}
    assert not wrong, sorted(wrong)


def _python_files() -> Iterator[Path]:
    skip = {".venv", "node_modules", ".git", "var", "build"}
    yield from (p for p in sorted(REPO.rglob("*.py")) if not skip & set(p.relative_to(REPO).parts))


def test_nothing_imports_a_folder_by_its_bare_name() -> None:
    """``import handlers`` would load a second copy of the core beside ``ordertasks.handlers``
    (two ``PermanentError`` classes, two registries) and fails where the wheel is installed."""
    bare = {f"{path.relative_to(REPO)} imports {target}" for path in _python_files()
            for target in imported(path, top_level_only=False) if target.split(".")[0] in FOLDERS[1:]}
    assert not bare, sorted(bare)


def _graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        # A submodule importing its own package (or the package a sibling) is no cycle: Python
        # finishes the package's __init__ first.
        edges[name] = {t for t in imported(path, top_level_only=True)
                       if t in MODULES and t != name and not name.startswith(t + ".")}
    return edges


def test_no_import_cycles() -> None:
    graph, state, cycles = _graph(), {}, []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"
    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_the_graph_is_read_at_all() -> None:
    """Guards the scan: the dispatcher's imports of the core are seen."""
    assert {"ordertasks.handlers.config", "ordertasks.handlers.registry"} <= _graph()["ordertasks.handlers.dispatch"]
