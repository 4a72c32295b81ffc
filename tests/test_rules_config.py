"""The desk's rules in matters.yaml: defaults, deadlines per tier, and named mistakes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from gridcall.config import ConfigSet
from tests.test_config import edit, problems_of, sample

__all__ = ["sample"]


def test_the_sample_declares_rules_grouping_and_tier_deadlines(cfg: ConfigSet) -> None:
    rules = cfg.matters.rules
    assert rules.severity == {"critical": 1}
    assert set(rules.sites) == {"school", "elderly_home", "hazardous_goods"}
    assert rules.spread.window == timedelta(minutes=30)
    assert cfg.matters.grouping.reopen_window == timedelta(hours=2)


def test_deadlines_per_matter_and_tier(cfg: ConfigSet) -> None:
    matters = {m.code: m for m in cfg.matters.matters}
    flood = matters["FLOOD-POINT"]  # an emergency with no deadlines of its own
    assert cfg.deadlines_for(flood, "B").arrival == timedelta(minutes=30)
    assert cfg.deadlines_for(flood, "A").response == timedelta(minutes=10)
    assert cfg.deadlines_for(flood, "C") == cfg.matters.default_deadlines["emergency"]
    gas = matters["GAS-LEAK"]  # its own deadlines hold at every tier
    assert cfg.deadlines_for(gas, "A").response == timedelta(minutes=5)


def test_rule_mistakes_are_named_with_their_place(sample: Path) -> None:
    def bad(data: dict) -> None:  # type: ignore[type-arg]
        data["rules"]["spread"]["when"][1] = {"count": 1, "of": "grid"}
        data["rules"]["persistence"] = [{"longer_than": "soon"}]

    edit(sample / "matters.yaml", bad)
    problems = problems_of(sample)
    assert any("rules.spread.when[1].count: Input should be greater than or equal to 2" in p
               for p in problems)
    assert any("rules.spread.when[1].of: Input should be 'sensors', 'grids' or "
               "'communities'" in p for p in problems)
    assert any("rules.persistence[0].longer_than: 'soon' is not a duration" in p
               for p in problems)


def test_tier_deadlines_must_name_a_type_or_a_matter(sample: Path) -> None:
    def typo(data: dict) -> None:  # type: ignore[type-arg]
        data["tier_deadlines"]["GAS-LEEK"] = {"A": {"response": "5m", "arrival": "10m",
                                                     "disposal": "1h"}}

    edit(sample / "matters.yaml", typo)
    (problem,) = problems_of(sample)
    line = next(i for i, text in enumerate(
        (sample / "matters.yaml").read_text(encoding="utf-8").splitlines(), start=1)
        if text.strip().startswith("GAS-LEEK:"))
    assert problem == (f"matters.yaml:{line}: tier_deadlines.GAS-LEEK: unknown matter type "
                       "or matter code 'GAS-LEEK' (did you mean 'GAS-LEAK'?)")


def test_device_faults_have_maintenance_deadlines_at_every_tier(cfg: ConfigSet) -> None:
    matters = {m.code: m for m in cfg.matters.matters}
    upkeep = cfg.matters.maintenance
    assert upkeep is not None
    assert upkeep.department in cfg.departments
    for code in upkeep.matters:
        assert cfg.matters.maintained(code)
        assert cfg.matters.top_tier(code) == upkeep.top_tier == "B"
        for tier in ("D", "C", "B", "A"):
            assert cfg.deadlines_for(matters[code], tier) == upkeep.deadlines
    assert not cfg.matters.maintained("GAS-LEAK")
    assert cfg.matters.top_tier("GAS-LEAK") == "A"


def test_maintenance_names_each_matter_once(sample: Path) -> None:
    def twice(data: dict) -> None:  # type: ignore[type-arg]
        data["maintenance"]["matters"] = ["SENSOR-FAULT", "EDGE-OFFLINE", "EDGE-OFFLINE"]

    edit(sample / "matters.yaml", twice)
    problems = problems_of(sample)
    assert any("maintenance: matters names ['EDGE-OFFLINE'] more than once"
               in p for p in problems), problems


def test_maintenance_references_are_checked(sample: Path) -> None:
    def typo(data: dict) -> None:  # type: ignore[type-arg]
        data["maintenance"]["matters"] = ["SENSOR-FALT", "EDGE-OFFLINE"]
        data["maintenance"]["department"] = "operations_maintenanse"

    edit(sample / "matters.yaml", typo)
    problems = problems_of(sample)
    assert any("maintenance.matters[0]: unknown matter 'SENSOR-FALT' (did you mean "
               "'SENSOR-FAULT'?)" in p for p in problems), problems
    assert any("maintenance.department: unknown department 'operations_maintenanse' (did "
               "you mean 'operations_maintenance'?)" in p for p in problems), problems
