"""The layers of DESIGN: zoo/ (math, nets, data, pipelines, infrastructure) under trainers/
and ui/, bench/ on top. Imports only point down, and ui/ keeps layout, wiring and
formatting: it never computes on tensors."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BELOW = {"zoo": {"zoo"}, "trainers": {"zoo", "trainers"}, "ui": {"zoo", "ui"}}
PROJECT = {"zoo", "trainers", "ui", "bench", "app"}


def imported(path: Path) -> set:
    """Top-level package names a module imports (anywhere in it, lazy imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("layer", sorted(BELOW))
def test_imports_only_point_down(layer):
    for path in (ROOT / layer).rglob("*.py"):
        upward = (imported(path) & PROJECT) - BELOW[layer]
        assert not upward, f"{path.relative_to(ROOT)} imports {sorted(upward)}"


def test_ui_does_not_compute_on_tensors():
    for path in (ROOT / "ui").glob("*.py"):
        assert "torch" not in imported(path), path.name
