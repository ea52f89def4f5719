"""pyproject.toml declares every package the library imports (so `pip install .` gives a library
whose modules all import; the runner's and the cluster's packages are extras)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
# import name -> distribution name, where they differ
DISTRIBUTION = {"PIL": "pillow", "IPython": "ipython", "matplotlib_inline": "matplotlib-inline",
                "vl_convert": "vl-convert-python"}


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
    for path in sorted((ROOT / "snnlib").rglob("*.py")):
        for name in imported_packages(path) - set(sys.stdlib_module_names) - {"snnlib", "__future__"}:
            if DISTRIBUTION.get(name, name).lower() not in declared:
                missing.setdefault(name, []).append(path.name)
    assert not missing, f"imported by snnlib but not declared in pyproject.toml: {missing}"


# The packages, lowest first (snnlib/__init__.py): each may import only the ones listed for it.
ALLOWED = {"model": set(), "experiment": {"model"}, "bench": {"model", "experiment"},
           "uncertainty": {"model", "experiment"}, "study": {"model", "experiment", "uncertainty"}}
# Inside the model, the modules' order of equations: each imports only those before it.
MODEL_ORDER = ("params", "kernels", "functional", "dropout", "layers", "network")
MAX_LINES = 500  # a module a reader can hold in mind


def snnlib_imports(path: Path) -> set[str]:
    """The snnlib modules ``path`` imports, as ``package.module`` (or ``package``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "snnlib":
            parts = node.module.split(".")[1:]
            if len(parts) >= 2:
                names.add(".".join(parts[:2]))
            else:
                names |= {f"{parts[0]}.{alias.name}" if parts else alias.name for alias in node.names}
        assert not (isinstance(node, ast.ImportFrom) and node.level), f"{path}: relative import"
    return names


def test_each_package_imports_only_the_packages_below_it():
    for package, allowed in ALLOWED.items():
        for path in sorted((ROOT / "snnlib" / package).glob("*.py")):
            outside = {name.split(".")[0] for name in snnlib_imports(path)} - allowed - {package}
            assert not outside, f"snnlib/{package}/{path.name} imports {sorted(outside)}, not below {package}"


def test_the_model_modules_follow_the_equations():
    for rank, module in enumerate(MODEL_ORDER):
        higher = {name.split(".")[1] for name in snnlib_imports(ROOT / "snnlib" / "model" / f"{module}.py")
                  if name.startswith("model.")} - set(MODEL_ORDER[:rank])
        assert not higher, f"snnlib/model/{module}.py imports {sorted(higher)}, which are not below it"


def test_no_package_imports_the_command_line_or_the_live_figures():
    for path in (ROOT / "snnlib").glob("*/*.py"):
        assert not {n for n in snnlib_imports(path) if n.split(".")[0] in ("cli", "widgets")}, path


def test_every_module_is_small_enough_to_read():
    for path in (ROOT / "snnlib").rglob("*.py"):
        rel = path.relative_to(ROOT / "snnlib").as_posix()
        lines = len(path.read_text().splitlines())
        assert lines <= MAX_LINES, f"snnlib/{rel} has {lines} lines"


def test_the_library_imports_no_notebook_or_book():
    for path in (ROOT / "snnlib").rglob("*.py"):
        assert not imported_packages(path) & {"notebooks", "book"}, path


def test_the_map_of_the_library_draws_what_the_code_imports(tmp_path):
    """scripts/library_map.py (the book's page "How the library is built"): its arrows are the code's
    imports between packages, every one of them downward."""
    import runpy

    script = runpy.run_path(str(ROOT / "scripts" / "library_map.py"))
    edges = script["package_edges"]()
    for (source, target), count in edges.items():
        assert count > 0 and (source == "cli" or target in ALLOWED.get(source, set())), (source, target)
    assert ("study", "experiment") in edges and ("experiment", "model") in edges
    script["draw"](tmp_path / "map.png")
    assert (tmp_path / "map.png").read_bytes().startswith(b"\x89PNG")


def test_every_file_the_readme_and_the_chapters_name_exists():
    """Relative links of the README and the book's pages, and every ``snnlib/...py`` path they name in
    text, point at files that exist (a module moved into a package leaves no dangling name behind)."""
    import json
    import os
    import re

    texts = {"README.md": (ROOT / "README.md").read_text()}
    texts |= {str(p.relative_to(ROOT)): p.read_text() for p in sorted((ROOT / "book").glob("*.md"))}
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):  # the book reads them as book/notebooks/
        cells = json.loads(nb.read_text())["cells"]
        texts[f"book/notebooks/{nb.name}"] = "\n".join("".join(c["source"]) for c in cells
                                                       if c["cell_type"] == "markdown")
    dangling = []
    for name, text in texts.items():
        links = re.findall(r"\]\(([^)#\s]+)", text)
        for target in [t for t in links if "://" not in t and not t.startswith("mailto:")]:
            # resolved as the book does, by the path's words (book/notebooks is a link to ../notebooks)
            if not (ROOT / os.path.normpath(Path(name).parent / target)).exists():
                dangling.append(f"{name}: link {target}")
        for module in set(re.findall(r"\bsnnlib/[\w/]+\.py\b", text)):
            if not (ROOT / module).exists():
                dangling.append(f"{name}: {module}")
    assert not dangling, dangling
