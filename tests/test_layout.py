"""The layout promises of the front-door issue: no module over 400 lines without a reason in its docstring,
no import cycle between the project's modules, and one dispatcher / one METHODS registry."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("empirical", "theory", "benchmarks", "tests")
MAX_LINES = 400


def _modules():
    for pkg in PACKAGES:
        yield from sorted((ROOT / pkg).rglob("*.py"))


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


@pytest.mark.parametrize("path", [p for p in _modules() if len(p.read_text().splitlines()) > MAX_LINES],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_long_modules_say_why(path):
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert "Length" in doc, f"{path.relative_to(ROOT)} has over {MAX_LINES} lines and no 'Length: why' in its docstring"


def _imports(path: Path, known: set[str]) -> set[str]:
    """Project modules imported at module level (function-level imports are deliberate late bindings)."""
    tree = ast.parse(path.read_text())
    me = _name(path)
    pkg = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(pkg.split(".")[: len(pkg.split(".")) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for n in names:
            while n and n not in known:
                n = n.rpartition(".")[0]
            if n and n != me:
                out.add(n)
    return out


def test_no_import_cycles():
    paths = {_name(p): p for p in _modules() if not p.parts[-2] == "tests" or p.name != "conftest.py"}
    known = set(paths)
    graph = {m: {d for d in _imports(p, known) if not m.startswith(d + ".") and d != m} for m, p in paths.items()}
    # a package's __init__ re-exporting its own submodules is not a cycle (the submodule does not need it)
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in graph.get(m, ()):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_one_dispatcher_and_one_registry():
    defs = {"METHODS": [], "saliency": []}
    for p in (ROOT / "empirical").rglob("*.py"):
        for node in ast.parse(p.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name in defs:
                defs[node.name].append(p)
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id in defs for t in targets):
                    defs[[t.id for t in targets if isinstance(t, ast.Name) and t.id in defs][0]].append(p)
    assert [p.relative_to(ROOT).as_posix() for p in defs["METHODS"]] == ["empirical/attribution/dispatch.py"]
    assert [p.relative_to(ROOT).as_posix() for p in defs["saliency"]] == ["empirical/attribution/dispatch.py"]


def test_study_method_lists_are_subsets_of_the_registry():
    from empirical.attribution import METHODS
    from empirical.experiments.smoothing.config import STUDY_METHODS as smoothing
    from empirical.experiments.split.config import STUDY_METHODS as split
    assert set(split) <= set(METHODS) and set(smoothing) <= set(METHODS)


def test_one_main_for_every_study():
    """The three entry points are one cli.main over a Study each (no near-copies of the run-and-report loop)."""
    from empirical import cli
    from empirical.experiments.loo import cli as loo
    from empirical.experiments.smoothing import cli as smoothing
    from empirical.experiments.split import cli as split
    for mod in (split, smoothing, loo):
        assert isinstance(mod.STUDY, cli.Study)
        src = Path(mod.__file__).read_text()
        body = src[src.index("def main("):]
        assert "cli.main(STUDY, argv)" in body and "run_main" not in body
