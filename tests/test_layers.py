"""The package's layers: each subpackage of `helpers/` imports only from itself and the layers
below it, in the order data flows, and no modules import each other in a cycle."""

import ast
import graphlib
from pathlib import Path

import pytest

HELPERS = Path(__file__).resolve().parents[1] / "helpers"
# Lowest first; the top-level modules (colab, cli, notebooks) may import any layer.
LAYERS = ("core", "data", "demo", "models", "train", "evaluate")


def _module(path: Path) -> str:
    return ".".join(path.relative_to(HELPERS.parent).with_suffix("").parts).removesuffix(
        ".__init__")


def _imports(path: Path) -> set[str]:
    """The `helpers` modules `path` imports (at any depth of the file, lazily or not)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("helpers"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                submodule = (HELPERS.parent / candidate.replace(".", "/")).with_suffix(".py")
                found.add(candidate if submodule.is_file() else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("helpers.")}
    return found


def _graph() -> dict[str, set[str]]:
    """Each module of `helpers` and the modules it imports."""
    return {_module(path): _imports(path) for path in HELPERS.rglob("*.py")}


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else len(LAYERS)


def test_every_module_sits_in_a_layer_and_the_top_holds_only_the_entry_points():
    top = {m for m in _graph() if _layer(m) == len(LAYERS)}
    assert top == {"helpers", "helpers.cli", "helpers.colab", "helpers.notebooks"}
    assert {p.name for p in HELPERS.iterdir() if p.is_dir() and p.name != "__pycache__"} == set(
        LAYERS)


def test_no_layer_imports_a_higher_one():
    upward = [(a, b) for a, targets in _graph().items() for b in targets
              if _layer(b) > _layer(a)]
    assert upward == []


def test_no_import_cycle():
    try:
        tuple(graphlib.TopologicalSorter(_graph()).static_order())
    except graphlib.CycleError as err:
        pytest.fail(f"modules import each other in a cycle: {' -> '.join(err.args[1])}")
