"""The shape of the package, read from the source with `ast`: no import cycles anywhere in roi/ (imports
inside functions count: moving an import into a function hides a cycle, it does not remove it; imports
for type annotations only, under `if TYPE_CHECKING:`, do not run and are left out), nothing below the
report imports it, the evaluation does not reach back to the run, and torch is imported only inside roi/backends/."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "roi"
# What may use the report: the run that writes it, and the command line with its terminal output.
ABOVE_REPORT = {"roi.runner", "roi.cli", "roi.console", "roi.__main__"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def imported(path: Path) -> set[str]:
    """Modules of roi that `path` imports, resolved to the deepest module that exists."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {_existing(a.name) for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            found |= {_existing(f"{base}.{a.name}") for a in node.names}
    return {m for m in found if m.startswith("roi")}


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under `if TYPE_CHECKING:`."""
    nodes: list[ast.AST] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            pending += node.orelse
            continue
        pending += list(ast.iter_child_nodes(node))
    return nodes


def _existing(name: str) -> str:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


GRAPH = {name: imported(path) - {name} for name, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    assert cycles(GRAPH) == []


def test_nothing_below_the_report_imports_it() -> None:
    reaching = {m for m, deps in GRAPH.items() if any(d == "roi.report" or d.startswith("roi.report.") for d in deps)}
    below = {m for m in reaching if m not in ABOVE_REPORT and not m.startswith("roi.report")}
    assert below == set()


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, pending = set(), [start]
    while pending:
        for w in graph.get(pending.pop(), ()):
            if w not in seen:
                seen.add(w)
                pending.append(w)
    return seen


def test_the_evaluation_reads_the_store_not_the_modules_that_make_calls() -> None:
    """Evaluating a finished run reads what the run stored; it never reaches back up to the run."""
    assert {"roi.runner", "roi.probe.run"} & reachable(GRAPH, "roi.evaluation") == set()
    assert "roi.probe.run" in reachable(GRAPH, "roi.runner")  # the check sees the module it keeps out


def test_torch_only_inside_the_backends() -> None:
    users = set()
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n == "torch" or n.startswith("torch.") for n in names):
                users.add(name)
    assert users and all(u.startswith("roi.backends.") for u in users), sorted(users)


def test_the_checks_see_a_cycle_and_a_deep_module() -> None:
    """The reader resolves `from roi.report import charts` to the module, and a cycle is found."""
    assert "roi.report.charts" in GRAPH["roi.report.evidence"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_backend_name_is_checked_outside_the_registry() -> None:
    """What differs between backends is declared in their registry entries (`Traits`); only the registry
    (roi/backends/__init__.py) and the pilot schema (roi/pilot.py) compare a model's `backend` to a name."""
    allowed = {"roi.backends", "roi.pilot"}
    found = []
    for name, path in MODULES.items():
        if name in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Compare):
                continue
            sides = [node.left, *node.comparators]
            if any(_is_backend(s) for s in sides) and any(_names(s) for s in sides):
                found.append(f"{name}:{node.lineno}")
    assert found == []


def _is_backend(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "backend"


def _names(node: ast.expr) -> bool:
    """A string, or a collection written out with one."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    return isinstance(node, ast.Tuple | ast.List | ast.Set) and any(_names(e) for e in node.elts)
