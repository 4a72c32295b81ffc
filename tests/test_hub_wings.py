"""The hub's wings import only what their ``__init__`` docstrings say they may: read from
the source with ``ast`` (imports inside functions and under ``TYPE_CHECKING`` too), so a
new arrow between the wings is a decision made here, next to the docstring it changes."""

from __future__ import annotations

import ast
from pathlib import Path

import gridcall.hub

HUB = Path(gridcall.hub.__file__).resolve().parent

MAY_IMPORT: dict[str, set[str]] = {
    "ingest": {"deadletter"},
    "desk": {"store", "ingest.sinks.lineproto", "deadletter"},
    "notify": {"store", "desk"},
    "board": {"desk", "ingest.sinks"},
    "api": {"desk", "board"},
    "store": set(),
    "pgstore": {"store"},
    "lease": {"pgstore"},
    "standby": {"api", "desk", "store"},
    "deadletter": set(),
    "service": {"desk", "ingest", "board", "store", "deadletter"},
    "metrics": {"service", "notify", "deadletter"},
    "compose": {"service", "api", "notify", "desk", "metrics"},
}
"""Each part of the hub → the other parts it may import (``gridcall.hub.`` left out; a
part also allows everything below it: ``ingest.sinks`` allows ``ingest.sinks.base``).
wire, config and anything outside the hub are the import-graph test's concern."""


def imports(path: Path) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            found += [(n, node.lineno) for n in names]
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
    return found


def part_of(module: str) -> str | None:
    """``desk`` for gridcall.hub.desk.policy, ``store`` for gridcall.hub.store."""
    parts = module.split(".")
    return parts[2] if parts[:2] == ["gridcall", "hub"] and len(parts) > 2 else None


def test_every_part_of_the_hub_is_drawn() -> None:
    parts = {p.stem if p.is_file() else p.name for p in HUB.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert parts == set(MAY_IMPORT)


def wrong_imports(hub: Path) -> list[str]:
    """Every import of a part of the hub at ``hub`` that :data:`MAY_IMPORT` does not allow."""
    wrong: list[str] = []
    for path in sorted(hub.rglob("*.py")):
        rel = path.relative_to(hub)
        mine = rel.parts[0].removesuffix(".py")
        if mine == "__init__":
            continue
        allowed = MAY_IMPORT[mine]
        for module, line in imports(path):
            theirs = part_of(module)
            if theirs is None or theirs == mine:
                continue
            dotted = module.removeprefix("gridcall.hub.")
            if not any(dotted == a or dotted.startswith(f"{a}.") for a in allowed):
                wrong.append(f"hub/{rel}:{line} imports {module}")
    return wrong


def test_the_wings_import_only_what_they_may() -> None:
    wrong = wrong_imports(HUB)
    assert not wrong, "imports the wing docstrings do not allow:\n" + "\n".join(wrong)


def test_the_check_sees_a_forbidden_import_inside_a_function(tmp_path: Path) -> None:
    (tmp_path / "desk").mkdir()
    (tmp_path / "desk" / "x.py").write_text(
        "from gridcall.hub.store import Store\n"
        "def f():\n    from gridcall.hub.api.app import create_app\n")
    assert wrong_imports(tmp_path) == [
        "hub/desk/x.py:3 imports gridcall.hub.api.app",
        "hub/desk/x.py:3 imports gridcall.hub.api.app.create_app"]


def test_the_desk_wing_docstring_and_architecture_md_name_every_module_of_the_desk() -> None:
    """hub/desk/__init__.py is the map of the desk's rooms, one line each, and
    docs/architecture.md's hub row lists the same: a new module of the desk is named in
    both, or this fails with the missing ones."""
    import gridcall.hub.desk

    doc = gridcall.hub.desk.__doc__ or ""
    architecture = (HUB.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    modules = sorted(p.stem for p in (HUB / "desk").glob("*.py") if p.stem != "__init__")
    assert {"desk", "runtime"} <= set(modules), modules
    not_in_doc = [m for m in modules if f"- ``{m}``:" not in doc]
    not_in_architecture = [m for m in modules if f"`{m}.py`" not in architecture]
    assert not not_in_doc, f"hub/desk/__init__.py does not name {not_in_doc}"
    assert not not_in_architecture, f"docs/architecture.md does not name {not_in_architecture}"
