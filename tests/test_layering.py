"""The package's layers, read from the source with `ast` (nothing is imported or executed).

Every `import` and `from ... import` counts, wherever it is (module level, inside functions, under
`if TYPE_CHECKING:`), relative imports resolved against the importing module, and so do
`importlib.import_module("masked_mixers...")` calls (an f-string counts as its constant prefix:
`f"masked_mixers.commands.{name}"` imports `masked_mixers.commands`). `from pkg import name`
is an edge to `pkg.name` when that is a module of the package, else to `pkg`.

Rules:
- no import cycle between modules;
- models/** imports nothing of masked_mixers outside models/;
- models/family.py and errors.py import nothing of masked_mixers;
- commands/** and cli.py are the top: only cli.py (and commands/** among themselves) import them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "masked_mixers"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


FILES = {module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}
MODULES = set(FILES)


def is_package(module: str) -> bool:
    return FILES[module].name == "__init__.py"


def resolve_relative(module: str, level: int, target: str | None) -> str:
    """`from .x import` (level 1) in module a.b.c -> a.b.x; in package a.b (its __init__) -> a.b.x."""
    base = module.split(".")
    if not is_package(module):
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _import_module_target(call: ast.Call) -> str | None:
    """The module an `importlib.import_module(...)` / `import_module(...)` call names, if it is visible."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if name != "import_module" or not call.args:
        return None
    arg = call.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        return arg.values[0].value.rstrip(".") or None
    return None


def imports_of(module: str) -> dict[str, int]:
    """Modules of the package that `module` imports -> first line number."""
    tree = ast.parse(FILES[module].read_text(encoding="utf-8"), filename=str(FILES[module]))
    found: dict[str, int] = {}

    def add(target: str, line: int) -> None:
        # the longest prefix that is a module of the package (an attribute import names its module)
        parts = target.split(".")
        while parts and ".".join(parts) not in MODULES:
            parts.pop()
        if parts:
            found.setdefault(".".join(parts), line)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = resolve_relative(module, node.level, node.module) if node.level else (node.module or "")
            if base.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                add(candidate if candidate in MODULES else base, node.lineno)
        elif isinstance(node, ast.Call):
            target = _import_module_target(node)
            if target and target.split(".")[0] == PACKAGE:
                add(target, node.lineno)
    found.pop(module, None)  # a package __init__ naming a non-module attribute of itself is no edge
    return found


GRAPH = {m: imports_of(m) for m in sorted(MODULES)}


def where(module: str, target: str) -> str:
    return f"{FILES[module].relative_to(ROOT)}:{GRAPH[module][target]} imports {target}"


def test_the_graph_sees_known_imports():
    """Guard against a parser that silently finds nothing."""
    assert "masked_mixers.models.family" in GRAPH["masked_mixers.models.masked_mixer.family"]  # from ..family import
    assert "masked_mixers.models" in GRAPH["masked_mixers.runs.factory"]  # from .models import FAMILIES
    assert "masked_mixers.commands" in GRAPH["masked_mixers.cli"] or any(
        m.startswith("masked_mixers.commands") for m in GRAPH["masked_mixers.cli"]
    )
    assert sum(map(len, GRAPH.values())) > len(GRAPH)


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components with a cycle (size > 1 or a self-loop)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1 or node in graph[node]:
                        components.append(sorted(component))
    return components


def test_no_import_cycles():
    cycles = strongly_connected(GRAPH)
    detail = []
    for component in cycles:
        members = set(component)
        edges = [where(m, t) for m in component for t in GRAPH[m] if t in members]
        detail.append(" <-> ".join(component) + "\n    " + "\n    ".join(edges))
    assert not cycles, "import cycles:\n  " + "\n  ".join(detail)


def inside(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


MODELS = f"{PACKAGE}.models"
COMMANDS = f"{PACKAGE}.commands"
CLI = f"{PACKAGE}.cli"


def upward_imports() -> dict[str, list[str]]:
    rules = {
        "models/** imports only models/**": (lambda m: inside(m, MODELS), lambda t: not inside(t, MODELS)),
        "models/family.py imports nothing of masked_mixers": (lambda m: m == f"{MODELS}.family", lambda t: True),
        "errors.py imports nothing of masked_mixers": (lambda m: m == f"{PACKAGE}.errors", lambda t: True),
        "only cli.py (and commands/**) import commands/**": (
            lambda m: m != CLI and not inside(m, COMMANDS),
            lambda t: inside(t, COMMANDS),
        ),
        "nothing imports cli.py": (lambda m: True, lambda t: t == CLI),
    }
    return {
        rule: [where(m, t) for m, targets in GRAPH.items() if applies(m) for t in targets if forbidden(t)]
        for rule, (applies, forbidden) in rules.items()
    }


@pytest.mark.parametrize("rule", list(upward_imports()))
def test_no_upward_imports(rule):
    violations = upward_imports()[rule]
    assert not violations, f"{rule}; violated by:\n  " + "\n  ".join(violations)
