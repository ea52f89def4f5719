"""Draws the library's map from its own imports: each package a box listing its modules (with their
lines), each arrow a package importing another (with how many module imports make it), the lowest
package at the bottom. The book's page "How the library is built" shows the figure; run this after
moving code (``make results`` does not).

Usage: python scripts/library_map.py [--out book/figures/library_map.png]
Prints the package-level imports, one ``A -> B (n)`` a line.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# rows, top first: what a reader meets first (the command line) down to the equations
ROWS = [["cli", "widgets"], ["study"], ["bench", "uncertainty"], ["experiment"], ["model"]]
SAYS = {"cli": "python -m snnlib", "widgets": "the book's live figures", "study": "reading the records",
        "bench": "how fast it trains", "uncertainty": "MC dropout, ensembles, shift",
        "experiment": "data, runs, records, grids", "model": "the SRM network, eqs 1-8"}


def unit(path: Path) -> str:
    """The package a file belongs to (a top-level module is its own unit)."""
    rel = path.relative_to(ROOT / "snnlib")
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imports(path: Path) -> list[str]:
    """The snnlib units ``path`` imports."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "snnlib":
            parts = node.module.split(".")
            found.append(parts[1] if len(parts) > 1 else "__init__")
    return found


def package_edges() -> dict[tuple[str, str], int]:
    """{(importer, imported): number of module imports} between different units."""
    edges: dict[tuple[str, str], int] = {}
    for path in sorted((ROOT / "snnlib").rglob("*.py")):
        source = unit(path)
        if source in ("__main__", "__init__"):
            continue
        for target in imports(path):
            if target != source and target != "__init__":
                edges[(source, target)] = edges.get((source, target), 0) + 1
    return edges


def modules(package: str) -> list[tuple[str, int]]:
    folder = ROOT / "snnlib" / package
    if not folder.is_dir():
        return [(f"{package}.py", len((ROOT / "snnlib" / f"{package}.py").read_text().splitlines()))]
    return [(p.name, len(p.read_text().splitlines())) for p in sorted(folder.glob("*.py")) if p.name != "__init__.py"]


def draw(out: Path) -> None:
    fig, ax = plt.subplots(figsize=(7.6, 9.0), dpi=130)
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 10)
    ax.axis("off")
    centres = {}
    heights = [0.9, 2.6, 1.9, 1.9, 1.7]
    gap = (10 - sum(heights)) / (len(ROWS) + 1)
    y = 10 - gap
    for row, height in zip(ROWS, heights, strict=True):
        width = 9.4 / len(row)
        for i, package in enumerate(row):
            x0 = 0.3 + i * width
            box = FancyBboxPatch((x0 + 0.1, y - height), width - 0.2, height, boxstyle="round,pad=0.02,rounding_size=0.15",
                                 fc="#eef3f8", ec="#3d6b99", lw=1.2)
            ax.add_patch(box)
            listed = modules(package)
            ax.text(x0 + 0.25, y - 0.12, f"{package}: {SAYS[package]}", va="top", fontsize=9, weight="bold")
            if len(listed) > 1:
                columns = 2 if len(listed) > 4 else 1
                per_column = -(-len(listed) // columns)
                for k, (name, lines) in enumerate(listed):
                    cx = x0 + 0.3 + (k // per_column) * (width - 0.4) / columns
                    cy = y - 0.42 - (k % per_column) * 0.27
                    ax.text(cx, cy, f"{name.removesuffix('.py')} ({lines})", va="top", fontsize=7.5, color="0.25")
            else:
                ax.text(x0 + 0.3, y - 0.42, f"({listed[0][1]} lines)", va="top", fontsize=7.5, color="0.25")
            centres[package] = (x0 + width / 2, y - height / 2, y, y - height)
        y -= height + gap
    for (source, target), count in sorted(package_edges().items()):
        if source not in centres or target not in centres or source == "cli":
            continue  # the command line imports every package: one note instead of five arrows
        sx, _, _, s_bottom = centres[source]
        tx, _, t_top, _ = centres[target]
        arrow = FancyArrowPatch((sx, s_bottom), (tx, t_top), arrowstyle="-|>", mutation_scale=10, color="#555555",
                                lw=0.6 + 0.15 * min(count, 10), connectionstyle="arc3,rad=0.08", alpha=0.75)
        ax.add_patch(arrow)
    ax.set_title("snnlib: packages (modules, lines); arrows: imports, always downward\n"
                 "(cli imports every package below it; widgets imports none)", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "book" / "figures" / "library_map.png")
    args = parser.parse_args()
    draw(args.out)
    for (source, target), count in sorted(package_edges().items()):
        print(f"{source} -> {target} ({count})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
