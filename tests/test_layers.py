"""The package is layered: no import cycles, and the light entry points stay light.

The graph is built from the source with ``ast``: module-level imports between medmtl modules
(imports inside functions and under ``if TYPE_CHECKING:`` run later or never, so they do not
count). Importing ``medmtl.a.b`` from outside package ``medmtl.a`` also runs ``medmtl/a/__init__.py``,
so that is an edge too.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "medmtl"
HEAVY_OPTIONAL = ("medmtl.wsi", "zarr", "tifffile", "openslide", "dask", "distributed", "SimpleITK")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted((SRC / ROOT).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Import statements that run when the module is imported (not in functions or TYPE_CHECKING)."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.append(node)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            elif isinstance(node, ast.If):
                if not _is_type_checking(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.ClassDef):
                visit(node.body)
            else:  # try/except, with, for, while, match: their bodies run at import
                for field in ("body", "orelse", "finalbody"):
                    visit(getattr(node, field, []) or [])
                for handler in getattr(node, "handlers", []) or []:
                    visit(handler.body)
                for case in getattr(node, "cases", []) or []:
                    visit(case.body)

    visit(tree.body)
    return found


def _targets(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool, modules: set[str]) -> set[str]:
    """The medmtl modules an import statement loads (including packages' ``__init__``)."""
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = importer if is_package else importer.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}" if base else package
        for alias in node.names:
            candidate = f"{base}.{alias.name}"
            names.append(candidate if candidate in modules else base)
    out: set[str] = set()
    for name in names:
        if name != ROOT and not name.startswith(ROOT + "."):
            continue
        parts = name.split(".")
        for depth in range(2, len(parts) + 1):  # the packages on the way run their __init__ first
            prefix = ".".join(parts[:depth])
            inside = importer == prefix or importer.startswith(prefix + ".")
            if prefix in modules and (depth == len(parts) or not inside):
                out.add(prefix)
    out.discard(importer)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        edges: set[str] = set()
        for node in _module_level_imports(tree):
            edges |= _targets(node, name, path.name == "__init__.py", set(modules))
        graph[name] = edges
    return graph


def package_of(module: str) -> str:
    """The first component under medmtl: ``data``, ``wsi``, … or a top-level module (``config``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for module, targets in graph.items():
        source = package_of(module)
        out.setdefault(source, set())
        for target in targets:
            if package_of(target) not in (source, ROOT):
                out[source].add(package_of(target))
    return out


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle ``[a, b, …, a]`` of ``graph``, or ``None``."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def _edges_of(cycle: list[str], graph: dict[str, set[str]], modules: dict[str, set[str]] | None = None) -> str:
    """The cycle, and for a package cycle the module imports that make each step."""
    lines = [" -> ".join(cycle)]
    if modules is not None:
        for source, target in zip(cycle, cycle[1:]):
            lines += [f"    {m} imports {t}" for m, targets in sorted(modules.items()) for t in sorted(targets)
                      if package_of(m) == source and package_of(t) == target]
    return "\n".join(lines)


def test_the_checker_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    tree = ast.parse("import os\nfrom medmtl.x import y\nif TYPE_CHECKING:\n    import medmtl.z\n"
                     "def f():\n    import medmtl.w\ntry:\n    import medmtl.v\nexcept ImportError:\n    pass\n")
    modules = {"medmtl.x", "medmtl.x.y", "medmtl.z", "medmtl.w", "medmtl.v"}
    found = set().union(*(_targets(n, "medmtl.q", False, modules) for n in _module_level_imports(tree)))
    assert found == {"medmtl.x", "medmtl.x.y", "medmtl.v"}  # not z (TYPE_CHECKING) nor w (in a function)
    assert _targets(ast.parse("from medmtl.x import y").body[0], "medmtl.q", False,
                    {"medmtl.x", "medmtl.x.y"}) == {"medmtl.x", "medmtl.x.y"}
    assert _targets(ast.parse("from . import y").body[0], "medmtl.x.q", False,
                    {"medmtl.x", "medmtl.x.y"}) == {"medmtl.x.y"}


def test_no_import_cycle_between_modules():
    graph = import_graph()
    assert "medmtl.data.build" in graph and "medmtl.wsi.slide" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle between modules:\n" + _edges_of(cycle, graph)


def test_no_import_cycle_between_packages():
    modules = import_graph()
    graph = package_graph(modules)
    assert {"data", "wsi", "config", "grid_store"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle between packages:\n" + _edges_of(cycle, graph, modules)


@pytest.mark.parametrize("entry", ["medmtl.config", "medmtl.data", "medmtl.data.build"])
def test_light_entry_points_load_no_slide_stack(entry):
    code = (f"import sys, json, {entry}\n"
            "print(json.dumps(sorted(m for m in sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    heavy = [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY_OPTIONAL)]
    assert heavy == [], f"import {entry} loads {heavy}"
    assert "medmtl.data.grid" not in loaded and "medmtl.grid_store" not in loaded


def test_reading_a_configuration_loads_no_training_or_plotting_stack():
    """``import medmtl.config`` needs torch (task options live beside their nn.Modules) but not the
    detection, segmentation-loss, training, plotting or data-frame libraries."""
    heavy = ("torchvision", "monai", "lightning", "matplotlib", "pandas", "sklearn")
    code = "import sys, json, medmtl.config\nprint(json.dumps(sorted(m for m in sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    found = sorted({m.split(".")[0] for m in loaded} & set(heavy))
    assert found == [], f"import medmtl.config loads {found}"
