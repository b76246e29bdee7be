"""The package's layers: one rule per package saying which packages it may import.

The graph is read from the source (scripts/import_graph.py: `ast`, nothing imported), the entry
module `masked_mixers_entry.py` included. A package missing from LAYERS fails (a new folder
declares its layer here), and so does any import across packages that its row does not allow:
an upward import is a test failure, not a review comment. docs/architecture.md draws the same
graph and is checked against it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
graph = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(graph)

# package -> the packages it may import (bottom first). Within a package, imports are free (no cycles).
LAYERS: dict[str, set[str]] = {
    "core": set(),  # errors, files, YAML configs, progress, devices, clocks, argparse pieces
    "models": set(),  # the families: Hugging Face models, nothing of the toolkit
    "objectives": {"core", "models"},
    "runs": {"core", "models", "objectives"},  # run config, model factory, run folders, publishing
    "data": {"core", "runs"},
    "training": {"core", "data", "models", "objectives", "runs"},
    "generation": {"core", "models", "objectives", "runs"},
    "retrieval": {"core", "data", "models", "runs"},
    "serving": {"core", "generation", "models"},
    "probes": {"core", "data", "models", "runs", "training"},
    "compare": {"core", "data", "models", "objectives", "retrieval", "runs", "training"},
    "bench": {"compare", "core", "data", "generation", "models", "objectives", "runs", "serving"},
    "scaling": {"core", "runs"},  # isoFLOP fits, frontiers and crossovers of a sweep's results; the report
    "reproduce": {"bench", "compare", "core", "data", "models", "probes", "retrieval", "runs", "training"},
    "sweep": {"compare", "core", "runs", "training"},  # many train runs on an engine; results.jsonl
    "commands": {
        "bench",
        "compare",
        "core",
        "data",
        "generation",
        "models",
        "objectives",
        "probes",
        "reproduce",
        "retrieval",
        "runs",
        "scaling",
        "serving",
        "sweep",
        "training",
    },
    "entry": {"commands", "core"},  # masked_mixers_entry.py: the dispatch table; the package only once a command runs
    "cli": {"entry"},  # `python -m masked_mixers.cli`
    "main": {"entry"},  # `python -m masked_mixers`
    "(root)": {"models"},  # `import masked_mixers` registers the families with the Auto classes
}
LEAVES = ("masked_mixers.models.family", "masked_mixers.core.errors")  # import nothing of the toolkit


def test_the_graph_sees_known_imports():
    """Guard against a parser that silently finds nothing."""
    g = graph.GRAPH
    assert "masked_mixers.models.family" in g["masked_mixers.models.masked_mixer.family"]  # from ..family import
    assert "masked_mixers.models" in g["masked_mixers.runs.factory"]  # from ..models import FAMILIES
    assert (
        "masked_mixers.commands" in g["masked_mixers_entry"]
    )  # importlib.import_module(f"masked_mixers.commands.{...}")
    assert "masked_mixers_entry" in g["masked_mixers.cli"]
    assert sum(map(len, g.values())) > len(g)


def test_every_package_declares_its_layer():
    packages = {graph.layer(m) for m in graph.MODULES}
    assert packages - LAYERS.keys() == set(), "declare these packages in LAYERS"
    assert LAYERS.keys() - packages == set(), "LAYERS names packages that do not exist"


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_imports_only_what_its_layer_allows(package):
    edges = graph.layer_edges().get(package, {})
    upward = {target: where for target, where in edges.items() if target not in LAYERS[package]}
    assert not upward, f"{package} may import only {sorted(LAYERS[package])}; found:\n  " + "\n  ".join(upward.values())


@pytest.mark.parametrize("leaf", LEAVES)
def test_leaves_import_nothing_of_the_toolkit(leaf):
    assert not graph.GRAPH[leaf], f"{leaf} imports {sorted(graph.GRAPH[leaf])}"


def strongly_connected(g: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components with a cycle (size > 1 or a self-loop)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    counter = 0
    for root in g:
        if root in index:
            continue
        work = [(root, iter(g[root]))]
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
                    work.append((child, iter(g[child])))
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
                    if len(component) > 1 or node in g[node]:
                        components.append(sorted(component))
    return components


def test_no_import_cycles():
    cycles = strongly_connected(graph.GRAPH)
    assert not cycles, "import cycles:\n  " + "\n  ".join(" <-> ".join(c) for c in cycles)


def test_the_rules_catch_an_upward_import(monkeypatch):
    """The checker itself: an invented edge data -> training is reported."""
    fake = dict(graph.GRAPH)
    fake["masked_mixers.data.stream"] = {**fake["masked_mixers.data.stream"], "masked_mixers.training.train": 1}
    monkeypatch.setattr(graph, "GRAPH", fake)
    assert "training" in graph.layer_edges()["data"] and "training" not in LAYERS["data"]


def test_architecture_doc_draws_the_current_graph():
    """docs/architecture.md embeds `python3 scripts/import_graph.py --mermaid`, regenerated, not hand-made."""
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert graph.mermaid() in doc, "regenerate the drawing: python3 scripts/import_graph.py --mermaid"
