"""The package's import graph, read from the source with `ast` (nothing is imported or executed).

Used by tests/test_layering.py (the layer rules) and to draw docs/architecture.md:

    python3 scripts/import_graph.py --mermaid   # the package-level drawing, as docs/architecture.md embeds it

Every `import` and `from ... import` counts, wherever it is (module level, inside functions, under
`if TYPE_CHECKING:`), relative imports resolved against the importing module, and so do
`importlib.import_module("masked_mixers...")` calls (an f-string counts as its constant prefix:
`f"masked_mixers.commands.{name}"` imports `masked_mixers.commands`). `from pkg import name`
is an edge to `pkg.name` when that is a module of the package, else to `pkg`. The entry module
`masked_mixers_entry.py` (outside the package, for a fast --help) is part of the graph.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "masked_mixers"
ENTRY = "masked_mixers_entry"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


FILES = {module_name(p): p for p in [*sorted((ROOT / PACKAGE).rglob("*.py")), ROOT / f"{ENTRY}.py"]}
MODULES = set(FILES)
OURS = (PACKAGE, ENTRY)


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
    """Modules of ours that `module` imports -> first line number."""
    tree = ast.parse(FILES[module].read_text(encoding="utf-8"), filename=str(FILES[module]))
    found: dict[str, int] = {}

    def add(target: str, line: int) -> None:
        parts = target.split(
            "."
        )  # the longest prefix that is one of our modules (an attribute import names its module)
        while parts and ".".join(parts) not in MODULES:
            parts.pop()
        if parts:
            found.setdefault(".".join(parts), line)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in OURS:
                    add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = resolve_relative(module, node.level, node.module) if node.level else (node.module or "")
            if base.split(".")[0] not in OURS:
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                add(candidate if candidate in MODULES else base, node.lineno)
        elif isinstance(node, ast.Call):
            target = _import_module_target(node)
            if target and target.split(".")[0] in OURS:
                add(target, node.lineno)
    found.pop(module, None)  # a package __init__ naming a non-module attribute of itself is no edge
    return found


GRAPH = {m: imports_of(m) for m in sorted(MODULES)}


def layer(module: str) -> str:
    """The package a module belongs to: `core`, `models`, ...; `(root)` for the package's own
    __init__, `main` for its __main__, `cli` for cli.py, `entry` for the entry module."""
    if module == ENTRY:
        return "entry"
    parts = module.split(".")
    if len(parts) == 1:
        return "(root)"
    if parts[1] == "__main__":
        return "main"
    if len(parts) == 2 and not is_package(module):
        return parts[1].removesuffix(".py")  # a loose module at the root (cli)
    return parts[1]


def layer_edges() -> dict[str, dict[str, str]]:
    """package -> {package it imports: one example, 'file:line imports module'}."""
    edges: dict[str, dict[str, str]] = defaultdict(dict)
    for module, targets in GRAPH.items():
        for target, line in targets.items():
            a, b = layer(module), layer(target)
            if a != b:
                edges[a].setdefault(b, f"{FILES[module].relative_to(ROOT)}:{line} imports {target}")
    return edges


def _reaches(edges: dict[str, dict[str, str]], start: str, goal: str, skip: tuple[str, str]) -> bool:
    """Whether `goal` is reachable from `start` without the direct edge `skip`."""
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        for nxt in edges.get(node, {}):
            if (node, nxt) == skip or nxt in seen:
                continue
            if nxt == goal:
                return True
            seen.add(nxt)
            todo.append(nxt)
    return False


def mermaid() -> str:
    """The package-level graph as a mermaid flowchart (what docs/architecture.md embeds).

    Drawn as its transitive reduction (an edge a -> b is left out when a reaches b through another
    package), so the layers read top to bottom; `layer_edges()` has every edge.
    """
    edges = layer_edges()
    lines = ["```mermaid", "flowchart TD"]
    for a in sorted(edges):
        for b in sorted(edges[a]):
            if not _reaches(edges, a, b, skip=(a, b)):
                lines.append(f"    {_node(a)} --> {_node(b)}")
    lines.append("```")
    return "\n".join(lines)


def _node(name: str) -> str:
    return "root" if name == "(root)" else name


if __name__ == "__main__":
    if sys.argv[1:] != ["--mermaid"]:
        sys.exit("usage: python3 scripts/import_graph.py --mermaid")
    print(mermaid())
