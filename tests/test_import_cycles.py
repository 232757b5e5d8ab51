"""No import cycles inside loratui: every module-level and function-level import, read with ast, forms a DAG.

An edge goes from a module to each loratui module it imports: ``import a.b``, ``from a import b`` (to ``a.b`` when
that is a submodule, else to ``a``'s ``__init__``) and relative imports alike. Imports under ``if TYPE_CHECKING:``
never run, so they make no edge. Importing ``a.b`` also runs ``a/__init__``, but only named modules count: a
package's own ``__init__`` is not an edge of every module inside it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "loratui"

Edges = dict[str, dict[str, int]]  # module -> imported module -> line of the (first) import


def module_names(package: Path) -> dict[str, Path]:
    """Every module under ``package`` by dotted name; a package's ``__init__.py`` goes by the package's name."""
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Every Import and ImportFrom node, at any depth, except those that only type checkers see."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _base(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` names, relative levels resolved."""
    if not node.level:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[:len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def import_graph(package: Path) -> Edges:
    names = module_names(package)
    graph: Edges = {name: {} for name in names}
    for module, path in names.items():
        is_package = path.name == "__init__.py"
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = _base(module, is_package, node)
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    targets.append(submodule if submodule in names else base)
            for target in targets:
                if target in names and target != module:
                    graph[module].setdefault(target, node.lineno)
    return graph


def find_cycles(graph: Edges) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) for each group of modules that import each other (strongly connected)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(start: str) -> None:  # Tarjan's algorithm, iterative (no recursion limit on long chains)
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return [_cycle_in(graph, group) for group in sorted(groups)]


def _cycle_in(graph: Edges, group: list[str]) -> list[str]:
    """The shortest cycle through the group's first module, staying inside the group."""
    members, start = set(group), group[0]
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child not in members:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child not in came_from:
                    came_from[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle in {group}")  # a strongly connected group always has one


def describe(graph: Edges, cycle: list[str]) -> str:
    return " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:], strict=False)) + \
        f" -> {cycle[-1]}"


def test_loratui_has_no_import_cycle():
    graph = import_graph(PACKAGE)
    cycles = find_cycles(graph)
    assert not cycles, "import cycles (each edge: module (line of its import) -> imported module):\n" + \
        "\n".join(describe(graph, cycle) for cycle in cycles)


def test_the_graph_sees_every_kind_of_import():
    graph = import_graph(PACKAGE)
    assert "loratui.commands.demo_cmd" in graph["loratui.cli"]  # from package import submodule
    assert "loratui.commands" not in graph["loratui.cli"]  # ... which is no edge to the package's __init__
    assert "loratui.demo.headless" in graph["loratui.commands.demo_cmd"]  # an import inside a function


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_a_cycle_through_function_level_and_relative_imports_is_found(tmp_path):
    package = write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.sub import b\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/b.py": "def f():\n    from ..c import thing\n",
        "pkg/c.py": "import pkg.a as a\nthing = 1\n",
        "pkg/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n",
    })
    graph = import_graph(package)
    assert graph["pkg.sub.b"] == {"pkg.c": 2}
    assert graph["pkg.d"] == {}
    assert find_cycles(graph) == [["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]]
    assert describe(graph, find_cycles(graph)[0]) == \
        "pkg.a (line 1) -> pkg.sub.b (line 2) -> pkg.c (line 1) -> pkg.a"


def test_packages_and_their_submodules_make_no_false_cycle(tmp_path):
    package = write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/cli.py": "from pkg.commands import one, two\n",
        "pkg/commands/__init__.py": "",
        "pkg/commands/one.py": "from . import two\n",
        "pkg/commands/two.py": "from pkg import helpers\n",
        "pkg/helpers.py": "def f():\n    from pkg.commands.one import x\n",
    })
    graph = import_graph(package)
    assert graph["pkg.commands.one"] == {"pkg.commands.two": 1}
    assert find_cycles(graph) == [["pkg.commands.one", "pkg.commands.two", "pkg.helpers", "pkg.commands.one"]]
    (package / "helpers.py").write_text("")
    assert find_cycles(import_graph(package)) == []
