"""Public functions of `helpers` with more than three parameters take the rest by keyword, so
a call says what each argument is (`fit_head(...)` once took ten positionals)."""

import ast
from pathlib import Path

HELPERS = Path(__file__).resolve().parents[1] / "helpers"
MOST_POSITIONAL = 3


def _public_functions(path: Path):
    """(name, node) of every public function and method in `path` (constructors included)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if node.name.startswith("_") and node.name != "__init__":
            continue
        yield node.name, node


def _too_positional(path: Path, root: Path = HELPERS.parent) -> list[str]:
    out = []
    for name, node in _public_functions(path):
        positional = [a.arg for a in node.args.posonlyargs + node.args.args
                      if a.arg not in ("self", "cls")]
        total = len(positional) + len(node.args.kwonlyargs)
        if total > MOST_POSITIONAL and len(positional) > MOST_POSITIONAL:
            out.append(f"{path.relative_to(root)}:{node.lineno} {name}"
                       f"({', '.join(positional)})")
    return out


def test_public_functions_take_all_but_three_parameters_by_keyword():
    offenders = [o for p in sorted(HELPERS.rglob("*.py")) for o in _too_positional(p)]
    assert offenders == [], "\n".join(offenders)


def test_the_rule_finds_a_long_positional_signature(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("def fit(a, b, c, d): ...\ndef ok(a, b, c, *, d): ...\n"
                       "class M:\n    def step(self, a, b, c): ...\n")
    found = _too_positional(planted, tmp_path)
    assert [o.split(" ", 1)[1] for o in found] == ["fit(a, b, c, d)"]
