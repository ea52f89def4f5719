"""pyproject.toml declares every package the library imports (so `pip install .` gives a library
whose modules all import; the runner's and the cluster's packages are extras)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTION = {"PIL": "pillow"}  # import name -> distribution name, where they differ


def imported_packages(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_third_party_import_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {d.split("[")[0].split("=")[0].split(">")[0].split("<")[0].strip().lower()
                for d in [*project["dependencies"], *[x for extra in project["optional-dependencies"].values()
                                                      for x in extra]]}
    missing = {}
    for path in sorted((ROOT / "snnlib").glob("*.py")):
        for name in imported_packages(path) - set(sys.stdlib_module_names) - {"snnlib", "__future__"}:
            if DISTRIBUTION.get(name, name).lower() not in declared:
                missing.setdefault(name, []).append(path.name)
    assert not missing, f"imported by snnlib but not declared in pyproject.toml: {missing}"


# The library's lower layers, lowest first (snnlib/__init__.py): each imports only those before it.
LOWER_LAYERS = ("params", "system", "kernels", "functional", "dropout", "layers", "network", "data", "training")


def snnlib_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names |= {node.module.split(".")[0]} if node.module else {alias.name for alias in node.names}
    return names


def test_lower_layers_never_import_higher_ones():
    for rank, module in enumerate(LOWER_LAYERS):
        higher = snnlib_imports(ROOT / "snnlib" / f"{module}.py") - set(LOWER_LAYERS[:rank])
        assert not higher, f"snnlib/{module}.py imports {sorted(higher)}, which are not below it"


def test_the_library_imports_no_notebook_or_book():
    for path in (ROOT / "snnlib").glob("*.py"):
        assert not imported_packages(path) & {"notebooks", "book"}, path
