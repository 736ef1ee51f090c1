"""The package's import graph: no cycle between files or packages, and no import from a lower layer up.

Every ``import`` of a ``uniscale_integrations`` module counts, wherever it is written: at module
level, inside a function (a lazy import is still a dependency) and under ``TYPE_CHECKING`` (a
type is a dependency too). ``from package import name`` counts as importing the module
``package.name`` when that is a module, else the package's ``__init__``.

A *unit* is a top-level module (``engine.py``) or a top-level package (``executor/``, with its
sub-packages). :data:`LAYERS` orders the units from the bottom up, along the data's way:
query -> features -> policy -> executor -> backend -> cost and reward -> store, with the engine
on top of the parts it drives. A unit may import its own modules and those of lower layers;
units that share a layer (the adapters) never import each other. The package's own
``__init__`` is the public facade: it may import anything, and nothing inside imports it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "uniscale_integrations"
PACKAGE = "uniscale_integrations"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors",),  # exceptions
    ("cache",),  # where what is derived once per machine is kept
    ("checks",),  # the one place each rule on a value is written
    ("events",),  # what the engine and the executor tell listeners
    ("answers",),  # final answers in text: extraction, equality
    ("tools",),  # tool calls and structured output: specs, formats, replies read and keyed
    ("features",),  # query validation and encoding, the config space, joint features
    ("reward",),  # eFLOPs, per-query budgets, reward weights
    ("options",),  # RunOptions: one call's options
    ("store",),  # decisions and the feedback log
    ("outcomes",),  # the outcome table: what every configuration did on every question (the prior's data)
    ("policy",),  # the Policy contract, LinUCB, baselines, the replica of the log
    ("models",),  # model specs, weights on disk, loading
    ("backends",),  # Generator / Session: HF in process, OpenAI-compatible over HTTP
    ("executor",),  # search, stopping, aggregation, prompts, styles, verifiers
    ("defaults",),  # builds the default stack
    ("engine",),  # UniScale: select -> execute -> feedback -> update
    ("langchain", "llama_index", "serve", "bench"),  # adapters and the benchmark, side by side
    ("cli",),
)
FACADE = PACKAGE  # uniscale_integrations/__init__.py


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    modules = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _imports(module: str, path: Path) -> set[str]:
    """The package's modules that ``module`` imports, wherever the import is written."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{module}: the package imports absolutely (line {node.lineno})"
            base = node.module or ""
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                while name not in MODULES:  # ``import a.b.c`` of an attribute path: the longest module prefix
                    name = name.rpartition(".")[0]
                if name != module:
                    found.add(name)
    return found


GRAPH: dict[str, set[str]] = {m: _imports(m, p) for m, p in MODULES.items()}


def unit(module: str) -> str:
    """The top-level module or package a module belongs to (the facade is its own)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else FACADE


LAYER_OF: dict[str, int] = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node, or a self-loop (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_unit_has_a_layer() -> None:
    units = {unit(m) for m in MODULES} - {FACADE}
    assert not units - set(LAYER_OF), f"add these to LAYERS: {sorted(units - set(LAYER_OF))}"
    assert not set(LAYER_OF) - units, f"LAYERS names what does not exist: {sorted(set(LAYER_OF) - units)}"


def test_no_import_cycle_between_files() -> None:
    assert _cycles(GRAPH) == []


def test_no_import_cycle_between_packages() -> None:
    packages: dict[str, set[str]] = defaultdict(set)
    for module, targets in GRAPH.items():
        packages[unit(module)].update(unit(t) for t in targets if unit(t) != unit(module))
    assert _cycles(packages) == []


def test_no_import_points_up_or_sideways() -> None:
    wrong = []
    for module, targets in sorted(GRAPH.items()):
        source = unit(module)
        if source == FACADE:
            continue
        for target in sorted(targets):
            to = unit(target)
            if to == source:
                continue
            if to == FACADE or LAYER_OF[to] >= LAYER_OF[source]:
                wrong.append(f"{module} -> {target}")
    assert wrong == [], "imports from a lower layer to a higher (or a sibling) one:\n" + "\n".join(wrong)


def test_the_checker_sees_cycles_and_upward_imports() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"a"}}) == [["a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    assert GRAPH[f"{PACKAGE}.engine"], "the graph must see the engine's imports"
    assert LAYER_OF["engine"] > LAYER_OF["executor"] > LAYER_OF["backends"] > LAYER_OF["features"]


@pytest.mark.parametrize("module", [PACKAGE, f"{PACKAGE}.engine", f"{PACKAGE}.executor", f"{PACKAGE}.backends"])
def test_importing_the_engine_side_loads_no_framework_and_no_torch(module: str) -> None:
    code = (
        f"import sys, {module}; heavy = [m for m in ('torch', 'transformers', 'langchain_core', 'llama_index', "
        "'fastapi') if m in sys.modules]; print(heavy); sys.exit(bool(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
