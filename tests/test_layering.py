"""The package's two wings and its import graph, read from the source with ``ast`` (nothing is imported).

* The science wing (every module of ``embrepro`` except the ``embrepro.book`` subpackage and
  ``embrepro.kit``, the declared bridge a notebook uses to read recorded runs, and
  ``embrepro.__main__``, which only starts the command line) never imports the
  book wing: not at module level, not inside a function, not relatively, not by ``importlib``.
* No import cycle among ``embrepro`` modules. The graph has an edge for every module-level import
  (including those in ``if``/``try`` blocks and class bodies, excluding ``if TYPE_CHECKING:``);
  importing ``embrepro.data.manifest`` from outside ``embrepro.data`` also runs
  ``embrepro/data/__init__.py``, so it adds an edge to ``embrepro.data`` too.

The first tests run the checks on small packages made for the purpose, so that a check that
cannot fail would be noticed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import embrepro

BOOK_WING = "embrepro.book"
BRIDGES = {"embrepro.kit", "embrepro.__main__"}


def package_modules(package_dir: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> source file, for every ``.py`` file under ``package_dir``."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [package, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_package(name: str, modules: dict[str, Path]) -> bool:
    return modules[name].name == "__init__.py"


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest known module that ``name`` (dotted) starts with, or None outside the package."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in modules:
            return ".".join(parts)
        parts.pop()
    return None


def _targets(node: ast.AST, module: str, modules: dict[str, Path]) -> set[str]:
    """The package's modules that one import statement (or importlib call) names."""
    found: set[str] = set()
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            here = module.split(".") if _is_package(module, modules) else module.split(".")[:-1]
            here = here[:len(here) - (node.level - 1)]
            base = ".".join(here + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        # ``from pkg import sub`` imports the module pkg.sub when there is one, else a name of pkg
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
          and isinstance(node.args[0].value, str)
          and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
               or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__")))):
        names = [node.args[0].value]
    else:
        return found
    for name in names:
        resolved = _resolve(name, modules)
        if resolved is not None:
            found.add(resolved)
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _module_level_statements(body: list[ast.stmt]):
    """Statements run when the module is imported: not function bodies, not TYPE_CHECKING blocks."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from _module_level_statements(node.orelse)
            continue
        yield node
        for field in ("body", "orelse", "finalbody", "handlers"):
            inner = getattr(node, field, None)
            if isinstance(inner, list) and inner and isinstance(inner[0], (ast.stmt, ast.excepthandler)):
                yield from _module_level_statements(inner)


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules its import runs (module-level imports and the packages above them)."""
    graph = {}
    for module, path in modules.items():
        edges: set[str] = set()
        for statement in _module_level_statements(ast.parse(path.read_text(), str(path)).body):
            for target in _targets(statement, module, modules):
                edges.add(target)
                parts = target.split(".")
                for n in range(1, len(parts)):  # packages whose __init__ the import runs
                    parent = ".".join(parts[:n])
                    if parent in modules and not (module == parent or module.startswith(parent + ".")):
                        edges.add(parent)
        edges.discard(module)
        graph[module] = edges
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected group of modules (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    cycles = []
    for group in groups:  # walk inside the group from its first member back to it
        start = min(group)
        path, seen, node = [start], {start}, start
        while True:
            nxt = min(n for n in graph[node] if n in group)
            path.append(nxt)
            if nxt == start or nxt in seen:
                cycles.append(path[path.index(nxt):])
                break
            seen.add(nxt)
            node = nxt
    return cycles


def book_wing_imports(modules: dict[str, Path], book: str, bridges: set[str]) -> list[str]:
    """``module: line: statement`` for every import of the book wing by a science-wing module,
    wherever it is in the module (functions included)."""
    found = []
    for module, path in modules.items():
        if module == book or module.startswith(book + ".") or module in bridges:
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if any(t == book or t.startswith(book + ".") for t in _targets(node, module, modules)):
                found.append(f"{module}:{node.lineno}: {ast.unparse(node)}")
    return found


def write_package(root: Path, files: dict[str, str]) -> dict[str, Path]:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return package_modules(root / "pkg", "pkg")


# --------------------------------------------------------------------------------------------
# The checks themselves, on packages made to break them
# --------------------------------------------------------------------------------------------

def test_book_wing_import_is_found_inside_functions_relative_and_by_importlib(tmp_path):
    modules = write_package(tmp_path, {
        "__init__.py": "",
        "book/__init__.py": "", "book/runner.py": "from pkg import science\n",
        "science.py": "def f():\n    from pkg.book.runner import run\n",
        "relative.py": "from . import book\n",
        "dynamic.py": "import importlib\nmod = importlib.import_module('pkg.book.runner')\n",
        "clean.py": "from pkg import science\n",
        "kit.py": "from pkg.book import runner\n",
    })
    found = book_wing_imports(modules, "pkg.book", {"pkg.kit"})
    assert sorted(line.split(":")[0] for line in found) == ["pkg.dynamic", "pkg.relative", "pkg.science"]
    assert "pkg.science:2: from pkg.book.runner import run" in found


def test_cycles_through_a_package_init_are_found_and_function_imports_are_not(tmp_path):
    modules = write_package(tmp_path, {
        "__init__.py": "",
        "data/__init__.py": "from pkg.data.corpora import tokenize\n",
        "data/manifest.py": "import os\n",
        "data/corpora.py": "from pkg.data.manifest import os\nfrom pkg import derived\n",
        "derived.py": "from pkg.data.manifest import os\n",           # runs data/__init__ -> corpora -> derived
        "a.py": "def f():\n    from pkg import b\n",                # inside a function: no edge
        "b.py": "from pkg import a\n",
        "typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import c\n",
        "c.py": "from pkg import typed\n",
    })
    graph = import_graph(modules)
    assert graph["pkg.derived"] == {"pkg.data", "pkg.data.manifest"}
    assert graph["pkg.data.corpora"] == {"pkg.data.manifest", "pkg.derived"}  # its own package: no edge
    assert graph["pkg.a"] == set() and graph["pkg.typed"] == set()
    cycles = find_cycles(graph)
    assert len(cycles) == 1
    assert set(cycles[0]) == {"pkg.data", "pkg.data.corpora", "pkg.derived"} and cycles[0][0] == cycles[0][-1]


def test_an_acyclic_package_has_no_cycles(tmp_path):
    modules = write_package(tmp_path, {"__init__.py": "", "a.py": "from . import b\n", "b.py": "import os\n"})
    assert import_graph(modules) == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": set()}
    assert find_cycles(import_graph(modules)) == []


# --------------------------------------------------------------------------------------------
# The real package
# --------------------------------------------------------------------------------------------

PACKAGE = package_modules(Path(embrepro.__file__).resolve().parent, "embrepro")


def test_the_package_has_both_wings_and_the_data_families():
    assert BOOK_WING in PACKAGE and _is_package(BOOK_WING, PACKAGE)
    assert {"embrepro.data.manifest", "embrepro.data.corpora", "embrepro.data.benchmarks",
            "embrepro.data.lexicons", "embrepro.derived"} <= set(PACKAGE)


def test_no_science_module_imports_the_book_wing():
    found = book_wing_imports(PACKAGE, BOOK_WING, BRIDGES)
    assert not found, "science-wing modules import the book wing:\n" + "\n".join(found)


def test_no_import_cycle_among_embrepro_modules():
    cycles = find_cycles(import_graph(PACKAGE))
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_data_never_imports_wordnet_even_inside_a_function():
    # data.load_noun_closure used to import embrepro.wordnet, which imports embrepro.data
    data_modules = {m: p for m, p in PACKAGE.items() if m == "embrepro.data" or m.startswith("embrepro.data.")}
    for module, path in data_modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            assert "embrepro.wordnet" not in _targets(node, module, PACKAGE), f"{module}:{node.lineno}"
    assert "embrepro.data.lexicons" in import_graph(PACKAGE)["embrepro.wordnet"]
