"""The library under src/wpnas (outside the Kedro glue) must not import Kedro."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "wpnas"
GLUE = {"settings.py", "pipeline_registry.py", "__main__.py"}


def test_library_has_no_kedro_imports():
    offenders = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        if rel.parts[0] == "pipelines" or rel.name in GLUE and len(rel.parts) == 1:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "kedro" or n.startswith(("kedro.", "kedro_")) for n in names):
                offenders.append(str(rel))
    assert not offenders, f"library modules import kedro: {sorted(set(offenders))}"
