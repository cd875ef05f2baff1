"""The library under src/wpnas (outside the Kedro glue) must not import Kedro."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "wpnas"
GLUE = {"settings.py", "pipeline_registry.py", "__main__.py", "cli.py"}


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


#: Layers, highest first: a module may import its own layer or any lower one, never a higher one.
LAYERS = [
    {"pipelines", "settings", "pipeline_registry", "__main__", "cli"},
    {"experiments"},
    {"search", "train", "predictors"},
    {"io", "nasbench", "latency"},
    {"spaces"},
    {"nn"},
    {"data"},
    {"config", "errors", "cost", "seeds", "tracking", "progress", "distributed", "fingerprint", "__init__"},
]


def _module_graph() -> dict[str, set[str]]:
    """module -> wpnas modules it imports (top level, in functions and under TYPE_CHECKING)."""
    modules = {}
    for path in SRC.rglob("*.py"):
        parts = ("wpnas", *path.relative_to(SRC).with_suffix("").parts)
        modules[".".join(p for p in parts if p != "__init__") or "wpnas"] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                # Package __init__ files re-export; edges through them are not dependencies.
                if target and target != name and modules[target].name != "__init__.py":
                    found.add(target)
        graph[name] = found
    return graph


def test_no_import_cycles():
    graph = _module_graph()
    cycles = set()

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    for module in graph:
        for other in graph[module]:
            if module in reach(other):
                cycles.add(tuple(sorted((module, other))))
    assert not cycles, f"import cycles between modules: {sorted(cycles)}"


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module}: top-level module {top!r} has no layer in LAYERS")


def test_layers_point_one_way():
    upward = [
        f"{m} -> {t}" for m, targets in _module_graph().items() for t in targets if _layer(t) < _layer(m)
    ]
    assert not upward, f"lower layers import higher ones: {sorted(upward)}"
