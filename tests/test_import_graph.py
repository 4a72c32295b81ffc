"""The house's drawing, checked from the source: every module of the installed package is
parsed with ``ast`` (imports inside functions and under ``TYPE_CHECKING`` included), and
the graph of imports between gridcall's modules has no cycle and no arrow that runs up
the layers of docs/architecture.md:

    gridcall.wire, gridcall.detectors      leaves
    gridcall.config                        may import wire
    gridcall.firmware_bridge
    gridcall.edge_agent | gridcall.hub     never import each other
    gridcall.simulators
    the CLI level                          gridcall.cli, gridcall.demo, commission, boards,
                                           testing, the rest of gridcall/

``gridcall/__init__.py`` stays light: the version and nothing of gridcall's own.
"""

from __future__ import annotations

import ast
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import gridcall

PACKAGE = Path(gridcall.__file__).resolve().parent
"""gridcall/ as installed; its client folders (hub, config...) are symlinks, followed."""

LAYERS: dict[str, set[str]] = {
    "gridcall.wire": set(),
    "gridcall.detectors": set(),
    "gridcall.config": {"gridcall.wire"},
    "gridcall.firmware_bridge": {"gridcall.wire", "gridcall.detectors", "gridcall.config"},
    "gridcall.edge_agent": {"gridcall.wire", "gridcall.detectors", "gridcall.config",
                            "gridcall.firmware_bridge"},
    "gridcall.hub": {"gridcall.wire", "gridcall.detectors", "gridcall.config",
                     "gridcall.firmware_bridge"},
    "gridcall.simulators": {"gridcall.wire", "gridcall.detectors", "gridcall.config",
                            "gridcall.firmware_bridge", "gridcall.edge_agent",
                            "gridcall.hub"},
}
"""Each layer's package → the packages it may import (besides its own modules). Anything
else under gridcall/ is the CLI level, which may import them all."""


def modules() -> dict[str, Path]:
    """Every module under gridcall/ by dotted name, following the symlinked folders."""
    found: dict[str, Path] = {}
    for folder, dirs, files in os.walk(PACKAGE, followlinks=True):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if (here / d / "__init__.py").is_file())
        for name in files:
            if not name.endswith(".py"):
                continue
            parts = [PACKAGE.name, *(here / name).relative_to(PACKAGE).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = here / name
    return found


def imports(name: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """The gridcall modules ``name`` imports, with the line: ``from a import b`` counts as
    ``a.b`` when that is a module, else as ``a`` (or its nearest package we have)."""

    def nearest(dotted: str) -> str | None:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if (target := nearest(alias.name)) is not None:
                    yield target, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                full = f"{source}.{alias.name}"
                target = full if full in known else nearest(source)
                if target is not None:
                    yield target, node.lineno


def graph() -> tuple[dict[str, dict[str, int]], dict[str, Path]]:
    found = modules()
    known = set(found)
    edges: dict[str, dict[str, int]] = {}
    for name, path in found.items():
        edges[name] = {}
        for target, line in imports(name, path, known):
            if target != name:
                edges[name].setdefault(target, line)
    return edges, found


def layer_of(module: str) -> str | None:
    """The layer package ``module`` belongs to; None for the CLI level."""
    return next((p for p in LAYERS if module == p or module.startswith(p + ".")), None)


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle (as a path a → b → ... → a) per strongly connected group of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm; the graph has a few hundred nodes
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return [_cycle_in(group, edges) for group in groups]


def _cycle_in(group: set[str], edges: dict[str, dict[str, int]]) -> list[str]:
    """A shortest path from the group's first module back to itself, inside the group."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(edges[v]):
                if w == start:
                    return [*paths[v], start]
                if w in group and w not in paths:
                    paths[w] = [*paths[v], w]
                    nxt.append(w)
        frontier = nxt
    return sorted(group)  # not reached: a strongly connected group has a cycle


def test_the_walk_sees_every_layer_and_function_level_imports() -> None:
    """The checks below are only as good as the graph: it must hold every layer's
    modules (through the symlinks) and the imports made inside functions."""
    edges, found = graph()
    for package in [*LAYERS, "gridcall.cli", "gridcall.testing"]:
        assert package in found, f"{package} not found under {PACKAGE}"
    # gridcall.cli.common imports the detectors inside load_config_set, not at the top
    assert "gridcall.detectors" in edges["gridcall.cli.common"]
    assert len(found) > 100


def test_no_import_cycle() -> None:
    edges, found = graph()
    found_cycles = cycles(edges)

    def describe(cycle: list[str]) -> str:
        steps = [f"{a} ({found[a].relative_to(PACKAGE.parent)}:{edges[a][b]})"
                 for a, b in itertools.pairwise(cycle)]
        return " → ".join([*steps, cycle[-1]])

    assert not found_cycles, "import cycles:\n" + "\n".join(map(describe, found_cycles))


def test_no_import_runs_up_the_layers() -> None:
    edges, found = graph()
    upward = []
    for module, targets in sorted(edges.items()):
        own = layer_of(module)
        if own is None and module != "gridcall":
            continue  # the CLI level may import anything
        allowed = set() if own is None else LAYERS[own] | {own}
        for target, line in sorted(targets.items()):
            theirs = layer_of(target)
            if theirs not in allowed:
                where = f"{found[module].relative_to(PACKAGE.parent)}:{line}"
                upward.append(f"{module} → {target} ({where})")
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


def test_no_cycle_between_the_hubs_wings() -> None:
    """The hub's wings (hub/ingest, hub/desk, hub/notify, hub/board, hub/api) and its
    modules beside them, each taken as one node: their imports form no cycle either, even
    where no two single modules do."""
    edges, _ = graph()

    def wing(module: str) -> str | None:
        parts = module.split(".")
        return ".".join(parts[:3]) if parts[:2] == ["gridcall", "hub"] and len(parts) > 2 else None

    wings: dict[str, dict[str, int]] = {}
    for module, targets in edges.items():
        if (mine := wing(module)) is None:
            continue
        wings.setdefault(mine, {})
        for target, line in targets.items():
            theirs = wing(target)
            if theirs is not None and theirs != mine:
                wings[mine].setdefault(theirs, line)
                wings.setdefault(theirs, {})
    assert {"gridcall.hub.ingest", "gridcall.hub.desk", "gridcall.hub.api"} <= set(wings)
    found_cycles = cycles(wings)
    assert not found_cycles, "cycles between the hub's wings:\n" + "\n".join(
        " → ".join(cycle) for cycle in found_cycles)


def test_the_cli_is_built_from_the_top() -> None:
    """gridcall/cli/__init__ builds the app from one module per command group; none of
    them (nor anything else) imports it back, and their shared leaf, cli.common, imports
    none of them."""
    edges, _ = graph()
    entries = {"gridcall.__main__", "gridcall.cli.__main__"}  # python -m gridcall[.cli]
    back = sorted(m for m, targets in edges.items()
                  if "gridcall.cli" in targets and m not in entries)
    assert not back, f"import gridcall.cli (the app) from below it: {back}"
    common = sorted(t for t in edges["gridcall.cli.common"] if t.startswith("gridcall.cli"))
    assert not common, f"gridcall.cli.common imports {common}"
    assert {"gridcall.cli.common", "gridcall.cli.hub", "gridcall.cli.edge"} <= set(
        edges["gridcall.cli"])


def test_the_package_root_stays_light() -> None:
    """``import gridcall`` (what every ``gridcall.x`` import runs first) loads nothing of
    gridcall's and no third-party library: just the version."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    assert imported <= {"importlib.metadata", "__future__"}, imported
    assert isinstance(gridcall.__version__, str)
    assert gridcall.__version__


@pytest.mark.parametrize(("source", "expected"), [
    ("import os\nfrom gridcall.hub import service\n", {"gridcall.hub.service"}),
    ("def f():\n    from gridcall.wire.codec import decode\n", {"gridcall.wire.codec"}),
    ("from . import frames\n", {"gridcall.firmware_bridge.frames"}),
    ("from .frames import encode\n", {"gridcall.firmware_bridge.frames"}),
    ("import gridcall.config.models as m\n", {"gridcall.config.models"}),
])
def test_imports_are_read_as_written(tmp_path: Path, source: str, expected: set[str]) -> None:
    """The parser of the checks above on lines of each kind, in a module of
    gridcall.firmware_bridge."""
    path = tmp_path / "probe.py"
    path.write_text(source, encoding="utf-8")
    known = set(modules())
    found = {t for t, _ in imports("gridcall.firmware_bridge.probe", path, known)}
    assert found == expected
