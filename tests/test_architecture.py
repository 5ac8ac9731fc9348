"""The house's shape: the compressors folder holds registered compressors only, one file each, and the
import graph has no circle (the layers themselves are import-linter's contract in pyproject.toml)."""

from pathlib import Path

import grimp

import compbench.compressors
from compbench.compressors import COMPRESSORS


def test_the_compressors_folder_holds_one_file_per_registered_compressor_and_nothing_else():
    folder = Path(compbench.compressors.__file__).parent
    files = sorted(path.stem for path in folder.glob("*.py") if path.name != "__init__.py")
    assert files == COMPRESSORS.names()
    assert not [path.name for path in folder.iterdir() if path.is_dir() and path.name != "__pycache__"]
    for name in COMPRESSORS.names():  # each registered in, and compressing with, the file of its name
        assert COMPRESSORS.get(name).compress.__module__ == f"compbench.compressors.{name}"


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one node, or of one node importing itself."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_strongly_connected_finds_a_circle_and_nothing_else():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set(), "c": {"c"}}) == [["c"]]
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_import_graph_has_no_circle_between_modules_or_between_packages():
    graph = grimp.build_graph("compbench")  # every import, at module level or inside a function
    modules = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    assert len(modules) > 100 and "compbench.measure.run" in modules
    assert strongly_connected(modules) == []

    def package(module: str) -> str:
        return ".".join(module.split(".")[:2])  # compbench.X: a top-level package or module

    packages: dict[str, set[str]] = {}
    for module, imported in modules.items():
        packages.setdefault(package(module), set()).update(package(other) for other in imported
                                                           if package(other) != package(module))
    assert strongly_connected(packages) == []
