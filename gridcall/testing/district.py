"""The district the ``sim_district`` fixture hands out, with readable expectations.

The pytest plugin (:mod:`gridcall.testing.plugin`, loaded through the ``pytest11`` entry
point) gives tests the ``sim_district`` fixture; this module holds what it hands out:
:class:`District`, a :class:`gridcall.simulators.sim.SimDistrict` with expectations that advance
simulated time until what they expect happens, or fail with what happened instead::

    async def test_gas(sim_district):
        district = await sim_district("gas-leak-spreads")
        await district.expect_alert(matter="GAS-LEAK", tier="A", unit="huangpu",
                                    within="15m")
        await district.expect_no_alert(matter="FIRE-SMOKE", within="1h")

Times are simulated: ``within`` is a duration from now (seconds, ``"10m"``,
``"01:30"``); ``by`` is an offset from the scenario's start, as in scenario files.
See docs/testing.md.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from datetime import timedelta

from gridcall.config import ConfigSet
from gridcall.simulators.scenario import parse_offset
from gridcall.simulators.sim import SimDistrict, TimelineEntry, hms
from gridcall.wire import RiskAlert
from gridcall.wire.clock import NS
from gridcall.wire.ladder import LEVELS, TIERS

__all__ = ["District", "ExpectationFailed", "Match"]

When = float | int | str | timedelta


class ExpectationFailed(AssertionError):
    """An expectation that did not hold; the message shows the alerts and timeline."""


class Match:
    """Which alert steps an expectation means. ``unit`` is a unit id or a level
    (``"town"``); ``tier`` a letter; every criterion given must hold on the same step."""

    def __init__(self, *, matter: str | None = None, tier: str | None = None,
                 unit: str | None = None, grid: str | None = None,
                 sensor: str | None = None, state: str | None = None,
                 action: str | None = None, alert: str | None = None,
                 department: str | None = None) -> None:
        if tier is not None and tier not in TIERS:
            raise ValueError(f"tier must be one of {', '.join(TIERS)}, got {tier!r}")
        self.criteria = {k: v for k, v in (
            ("matter", matter), ("tier", tier), ("unit", unit), ("grid", grid),
            ("sensor", sensor), ("state", state), ("action", action), ("alert", alert),
            ("department", department))
            if v is not None}

    def check(self, config: ConfigSet) -> Match:
        """``self`` if every name it uses exists in ``config``, else :class:`ValueError`
        naming the unknown value and its near misses: a misspelt matter or unit would
        otherwise match nothing, and ``expect_no_alert`` would pass whatever happened."""
        c = self.criteria
        known: dict[str, Iterable[str]] = {
            "matter": (m.code for m in config.matters.matters),
            "unit": (*config.units, *LEVELS),
            "grid": (u.id for u in config.units.values() if u.level == "grid"),
            "sensor": config.sensors,
            "department": config.departments,
        }
        for key, names in known.items():
            if key in c:
                _known(key, c[key], names, config)
        return self

    def __call__(self, e: TimelineEntry) -> bool:
        if e.kind != "alert":
            return False
        c = self.criteria
        unit = c.get("unit")
        return (
            all(getattr(e, k) == c[k] for k in ("matter", "tier", "grid", "sensor",
                                                  "state", "action", "department")
                if k in c)
            and ("alert" not in c or e.alert_id == c["alert"])
            and (unit is None or (e.level == unit if unit in LEVELS else e.unit == unit)))

    def __str__(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.criteria.items()) or "(any)"


def _known(key: str, value: str, names: Iterable[str], config: ConfigSet) -> None:
    choices = sorted(set(names))
    if value in choices:
        return
    near = difflib.get_close_matches(value, choices, n=3, cutoff=0.6)
    if near:
        hint = f"did you mean {', '.join(near)}?"
    else:
        hint = "known: " + ", ".join(choices[:12]) + (", ..." if len(choices) > 12 else "")
    raise ValueError(f"unknown {key} {value!r} in config {config.directory}; {hint}")


class District(SimDistrict):
    """A :class:`SimDistrict` with expectations (what the ``sim_district`` fixture gives)."""

    def _found(self, match: Callable[[TimelineEntry], bool]) -> list[TimelineEntry]:
        return [e for e in self.timeline if match(e)]

    async def _until(self, match: Callable[[TimelineEntry], bool], end_ns: int) -> bool:
        """Advance until a timeline entry matches (True) or ``end_ns`` passes (False)."""
        count = len(self.timeline)

        def seen() -> bool:
            nonlocal count
            entries = self.timeline
            fresh = entries[count:]
            count = len(entries)
            return any(match(e) for e in fresh)

        if self._found(match):
            return True
        if end_ns <= self.clock():
            return False
        return await self.advance_to(end_ns, until=seen)

    def _fail(self, text: str) -> ExpectationFailed:
        return ExpectationFailed(f"{text}\nWhat happened instead (sim time {hms(self.elapsed_s)}"
                                 f"):\n{self.describe()}")

    def _end(self, within: When | None, by: When | None) -> int:
        if by is not None:
            return self.scenario.start_ns + round(parse_offset(by).total_seconds() * NS)
        return self.clock() + round(parse_offset(within or 0).total_seconds() * NS)

    async def expect_alert(self, *, matter: str | None = None, tier: str | None = None,
                           unit: str | None = None, grid: str | None = None,
                           sensor: str | None = None, state: str | None = None,
                           within: When = 0, by: When | None = None) -> RiskAlert:
        """An alert that stands (at some step) at ``tier`` with ``unit``, of ``matter``
        in ``grid``: already, or within ``within`` from now (or ``by`` an offset from
        the start), advancing simulated time no further than it appears. Its current
        state; :class:`ExpectationFailed` with the timeline if it never came."""
        __tracebackhide__ = True
        match = Match(matter=matter, tier=tier, unit=unit, grid=grid, sensor=sensor,
                      state=state).check(self.config)
        start = self.elapsed_s
        if not await self._until(match, self._end(within, by)):
            raise self._fail(f"expected an alert {match} between {hms(start)} and "
                             f"{hms(self.elapsed_s)}, but none came.")
        alert_id = self._found(match)[0].alert_id
        return self.alerts[alert_id]

    async def expect_escalation(self, *, to: str, by: When | None = None,
                                within: When | None = None, matter: str | None = None,
                                grid: str | None = None, alert: str | None = None
                                ) -> RiskAlert:
        """An escalation to ``to`` (a tier letter, a unit id or a level) of the alert
        of ``matter``/``grid`` (or ``alert``), by ``by`` (an offset from the start,
        like ``"00:45"``) or within ``within`` from now."""
        __tracebackhide__ = True
        if to in TIERS:
            match = Match(action="escalate", tier=to, matter=matter, grid=grid, alert=alert)
        else:
            match = Match(action="escalate", unit=to, matter=matter, grid=grid, alert=alert)
        match.check(self.config)
        if by is None and within is None:
            raise ValueError("say by when: by= (offset from the start) or within= (from now)")
        end = self._end(within, by)
        if not await self._until(match, end):
            raise self._fail(f"expected an escalation to {to} ({match}) by "
                             f"{hms((end - self.scenario.start_ns) / NS)}, but there was "
                             "none.")
        return self.alerts[self._found(match)[0].alert_id]

    async def expect_department(self, department: str, *, step: str = "report_in",
                                by: When | None = None, within: When | None = None,
                                matter: str | None = None, grid: str | None = None,
                                alert: str | None = None) -> RiskAlert:
        """A department's step (吹哨报到) on the alert of ``matter``/``grid`` (or
        ``alert``) by ``by`` or within ``within``: its own ``report_in``, ``dept_arrive``
        or ``dept_dispose``, or the hub's ``supervise`` (督办) of its missed arrival."""
        __tracebackhide__ = True
        if step not in ("report_in", "dept_arrive", "dept_dispose", "supervise"):
            raise ValueError(f"step must be report_in, dept_arrive, dept_dispose or "
                             f"supervise, got {step!r}")
        match = Match(action=step, department=department, matter=matter, grid=grid,
                      alert=alert).check(self.config)
        if by is None and within is None:
            raise ValueError("say by when: by= (offset from the start) or within= (from now)")
        end = self._end(within, by)
        if not await self._until(match, end):
            raise self._fail(f"expected {department} to {step} ({match}) by "
                             f"{hms((end - self.scenario.start_ns) / NS)}, but it did not.")
        return self.alerts[self._found(match)[0].alert_id]

    async def expect_no_alert(self, *, matter: str | None = None, tier: str | None = None,
                              unit: str | None = None, grid: str | None = None,
                              sensor: str | None = None, within: When = 0,
                              by: When | None = None) -> None:
        """No alert matching, from the start until ``within`` from now (or ``by``): time
        advances that far, then :class:`ExpectationFailed` names the first that came."""
        __tracebackhide__ = True
        match = Match(matter=matter, tier=tier, unit=unit, grid=grid,
                      sensor=sensor).check(self.config)
        end = self._end(within, by)
        if await self._until(match, max(end, self.clock())):
            first = self._found(match)[0]
            raise self._fail(f"expected no alert {match} until "
                             f"{hms((end - self.scenario.start_ns) / NS)}, but at "
                             f"{hms(first.offset_s)}: {first.text}")
