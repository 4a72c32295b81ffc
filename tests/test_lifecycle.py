"""An alert's life: every legal move from every state, every illegal one refused with the
alert, its state and the reason, and the fold that rebuilds state from the steps."""

from __future__ import annotations

import msgspec
import pytest

from gridcall.config import ConfigSet
from gridcall.hub.desk.lifecycle import (
    ACTIONS,
    CLOSED,
    OPEN,
    REQUIRES,
    STATES,
    AlertState,
    IllegalTransition,
    apply,
    fold,
    opening,
    refusal,
    step,
)
from gridcall.hub.desk.policy import Policy, route
from gridcall.wire import AnomalyEvent, Deadlines, Decoder, RiskAlert, UnitLevel

T0 = 1_800_000_000_000_000_000
MIN = 60 * 10**9

# The shortest way from a fresh alert to each state.
PATH_TO: dict[str, tuple[str, ...]] = {
    "opened": (),
    "dispatched": ("dispatch",),
    "acknowledged": ("acknowledge",),
    "on_site": ("acknowledge", "arrive"),
    "resolved": ("acknowledge", "arrive", "resolve"),
    "false_alarm": ("false_alarm",),
}


def drafted(cfg: ConfigSet, kind: str = "noise") -> tuple[RiskAlert, tuple[str, ...]]:
    sensor = next(s for s in cfg.sensors.values() if s.kind == kind)
    event = AnomalyEvent(agent="edge-x", seq=7, sensor=sensor.id, kind="out_of_limits",
                         severity="major", score=0.9, value=80.0, ts=T0 - 5)
    return Policy(cfg).draft(event, alert_id="AL000007", now_ns=T0), sensor.path


def later_deadlines(at: int) -> Deadlines:
    return Deadlines(response=at + 10 * MIN, arrival=at + 30 * MIN, disposal=at + 120 * MIN)


def take(state: AlertState, action: str, at: int) -> AlertState:
    """Take ``action`` with whatever an escalation or reopening needs, and apply it."""
    extra: dict[str, object] = {}
    if action == "escalate":
        tier = {"D": "C", "C": "B", "B": "A"}.get(state.tier, "A")
        where = route(tier, state.place)  # type: ignore[arg-type]
        extra = {"tier": tier, "unit": where.unit, "unit_level": where.level,
                 "unit_path": where.address, "deadlines": later_deadlines(at)}
    elif action == "reopen":
        extra = {"deadlines": later_deadlines(at)}
    elif action == "evidence":
        extra = {"evidence": ("edge-x", at)}
    elif action == "request_close":
        extra = {"request": "resolve" if state.state == "on_site" else "false_alarm"}
    elif action == "audit":
        extra = {"verdict": "pass"}
    t = step(state, action, at=at, actor="u1", note=f"{action} by test", **extra)  # type: ignore[arg-type]
    return apply(state, t)


def alert_in(cfg: ConfigSet, state_name: str, kind: str = "noise") -> AlertState:
    alert, place = drafted(cfg, kind)
    state = apply(None, opening(alert, place=place))
    for i, action in enumerate(PATH_TO[state_name], start=1):
        state = take(state, action, T0 + i * MIN)
    assert state.state == state_name
    return state


def test_every_state_and_action_is_covered() -> None:
    assert set(REQUIRES) == set(ACTIONS)
    assert set(STATES) == OPEN | CLOSED
    assert set(PATH_TO) == set(STATES)


def test_opening_makes_an_opened_alert_with_its_first_step(cfg: ConfigSet) -> None:
    alert, place = drafted(cfg)
    first = opening(alert, place=place, reason="base tier D")
    state = apply(None, first)
    assert (first.n, first.action, first.actor, first.state) == (1, "open", "hub", "opened")
    assert first.evidence == ("edge-x", 7)
    assert state.alert.place == list(place)
    assert state.addresses == (tuple(alert.unit_path),)
    assert state.due() == ("response", alert.deadlines.response)
    assert state.last.evidence == ("edge-x", 7)


EXPECTED_AFTER: dict[tuple[str, str], str] = {
    ("opened", "dispatch"): "dispatched",
    ("dispatched", "dispatch"): "dispatched",
    ("acknowledged", "dispatch"): "acknowledged",
    ("on_site", "dispatch"): "on_site",
    ("opened", "acknowledge"): "acknowledged",
    ("dispatched", "acknowledge"): "acknowledged",
    ("acknowledged", "arrive"): "on_site",
    ("on_site", "resolve"): "resolved",
    ("resolved", "reopen"): "opened",
    ("false_alarm", "reopen"): "opened",
    **{(s, "false_alarm"): "false_alarm" for s in OPEN},
    **{(s, "escalate"): "opened" for s in OPEN},
    **{(s, "evidence"): s for s in OPEN},
    **{(s, "note"): s for s in OPEN | CLOSED},
    **{(s, "rate"): s for s in CLOSED},
    **{(s, "request_close"): s for s in OPEN},   # a close awaiting approval
    **{(s, "sample"): s for s in CLOSED},        # into the audit queue
    **{(s, "audit"): s for s in CLOSED},
    **{(s, "plan_step"): s for s in OPEN},
}


@pytest.mark.parametrize(("before", "action"), sorted(EXPECTED_AFTER))
def test_legal_move(cfg: ConfigSet, before: str, action: str) -> None:
    state = alert_in(cfg, before)
    after = take(state, action, T0 + 10 * MIN)
    assert after.state == EXPECTED_AFTER[(before, action)]
    assert after.n == state.n + 1
    assert after.last.action == action
    assert after.last.actor == "u1"
    assert after.alert.state == after.state
    assert after.alert.n == after.n
    assert after.alert.updated_at == T0 + 10 * MIN


DEPARTMENTS_OWN = {"report_in", "dept_arrive", "dept_dispose", "supervise"}
"""Legal in an open state only for a department whistled to the alert (the whistle's
own table: tests/test_whistle.py)."""
ILLEGAL = sorted((s, a) for s in STATES for a in ACTIONS
                 if a not in ("open", "reject_close") and (s, a) not in EXPECTED_AFTER
                 and not (a in DEPARTMENTS_OWN and s in OPEN))
"""(reject_close needs a close pending, whatever the state: tests/test_audits.py)"""


@pytest.mark.parametrize(("before", "action"),
                         sorted((s, a) for s in OPEN for a in DEPARTMENTS_OWN))
def test_a_department_step_needs_a_whistle(cfg: ConfigSet, before: str, action: str
                                           ) -> None:
    state = alert_in(cfg, before)
    with pytest.raises(IllegalTransition) as refused:
        step(state, action, at=T0 + 10 * MIN, actor="fire_safety",  # type: ignore[arg-type]
             department="fire_safety")
    assert str(refused.value) == (f"AL000007 is {before}; fire_safety was not dispatched "
                                  "to it (no whistle to answer)")


@pytest.mark.parametrize(("before", "action"), ILLEGAL)
def test_illegal_move_is_refused_with_a_reason(cfg: ConfigSet, before: str,
                                               action: str) -> None:
    state = alert_in(cfg, before)
    with pytest.raises(IllegalTransition) as refused:
        take(state, action, T0 + 10 * MIN)
    need = " or ".join(s for s in STATES if s in REQUIRES[action])  # type: ignore[index]
    assert str(refused.value) == f"AL000007 is {before}; {action} needs {need}"
    assert (refused.value.alert_id, refused.value.state) == ("AL000007", before)


def test_the_example_refusal_reads_as_documented(cfg: ConfigSet) -> None:
    with pytest.raises(IllegalTransition, match=r"^AL000007 is resolved; acknowledge needs "
                       r"opened or dispatched$"):
        take(alert_in(cfg, "resolved"), "acknowledge", T0 + 10 * MIN)


def test_an_alert_opens_once(cfg: ConfigSet) -> None:
    state = alert_in(cfg, "opened")
    assert refusal(state, "open") == "an alert is opened once"
    alert, place = drafted(cfg)
    with pytest.raises(IllegalTransition, match="step 1 does not follow step 1"):
        apply(state, opening(alert, place=place))


def test_escalation_climbs_the_ladder_and_stops_at_the_district(cfg: ConfigSet) -> None:
    state = alert_in(cfg, "acknowledged")  # a noise alert: tier D at its grid
    seen = [(state.tier, state.unit_level)]
    for i in range(3):
        state = take(state, "escalate", T0 + (20 + i) * MIN)
        seen.append((state.tier, state.unit_level))
        assert state.state == "opened"  # the new unit must respond
    assert seen == [("D", "grid"), ("C", "community"), ("B", "town"), ("A", "district")]
    assert state.escalations == 3 == state.alert.escalations
    assert [len(a) for a in state.addresses] == [4, 3, 2]  # A is addressed at the town
    with pytest.raises(IllegalTransition, match="AL000007 is opened; escalate needs a tier "
                       "below A: the district already holds it"):
        take(state, "escalate", T0 + 30 * MIN)


def test_escalation_must_raise_the_tier(cfg: ConfigSet) -> None:
    state = alert_in(cfg, "opened", kind="manhole_tilt")  # tier C
    with pytest.raises(IllegalTransition, match="escalate needs a tier above C, not D"):
        step(state, "escalate", at=T0 + MIN, tier="D", unit="g", unit_level="grid",
             deadlines=later_deadlines(T0))
    t = step(state, "escalate", at=T0 + MIN, tier="A", unit="huangpu", unit_level="district",
             deadlines=later_deadlines(T0 + MIN), reason="spread: 3 grids within 30m")
    assert (t.tier, t.reason) == ("A", "spread: 3 grids within 30m")


def test_dispatch_needs_a_unit_at_or_above_the_responsible_level(cfg: ConfigSet) -> None:
    state = alert_in(cfg, "opened", kind="manhole_tilt")  # tier C: a community's
    assert state.unit_level == "community"
    with pytest.raises(IllegalTransition, match="dispatch needs a unit at or above the "
                       f"responsible community {state.unit}, not a grid"):
        step(state, "dispatch", at=T0 + MIN, actor="g1", actor_level="grid",
             departments=("police",))
    levels: tuple[UnitLevel, ...] = ("community", "town", "district")
    for level in levels:
        t = step(state, "dispatch", at=T0 + MIN, actor="x", actor_level=level,
                 departments=("police", "urban_mgmt"))
        assert t.departments[0] == state.departments[0]  # the lead stays first
        assert t.departments.count("urban_mgmt") == 1
        assert "police" in t.departments


def test_at_tier_a_the_town_dispatches_with_the_district(cfg: ConfigSet) -> None:
    state = alert_in(cfg, "opened", kind="gas")  # GAS-LEAK: tier A, addressed at the town
    town = state.last.unit_path[-1]
    assert (state.unit_level, len(state.last.unit_path)) == ("district", 2)
    t = step(state, "dispatch", at=T0 + MIN, actor=town, actor_level="town",
             departments=("police",))
    assert t.state == "dispatched"
    with pytest.raises(IllegalTransition, match=f"dispatch needs a unit at or above the "
                       f"responsible district {state.unit} or its town {town}, not a "
                       "community"):
        step(state, "dispatch", at=T0 + MIN, actor="c", actor_level="community")


def test_evidence_never_changes_state_but_is_counted(cfg: ConfigSet) -> None:
    state = alert_in(cfg, "on_site")
    after = take(state, "evidence", T0 + 10 * MIN)
    assert (after.state, after.tier, after.unit) == (state.state, state.tier, state.unit)
    assert after.evidence == 1
    assert after.last.evidence == ("edge-x", T0 + 10 * MIN)


def test_a_step_back_in_time_is_refused(cfg: ConfigSet) -> None:
    state = alert_in(cfg, "dispatched")
    with pytest.raises(IllegalTransition, match="before the last step"):
        step(state, "acknowledge", at=T0, actor="u1")


def test_escalation_and_reopening_must_say_where_to(cfg: ConfigSet) -> None:
    with pytest.raises(ValueError, match="new tier, unit and deadlines"):
        step(alert_in(cfg, "opened"), "escalate", at=T0 + MIN)
    with pytest.raises(ValueError, match="new deadlines"):
        step(alert_in(cfg, "resolved"), "reopen", at=T0 + 10 * MIN)


def test_closing_and_reopening_track_closed_at(cfg: ConfigSet) -> None:
    resolved = alert_in(cfg, "resolved")
    assert resolved.closed_at == T0 + 3 * MIN
    assert resolved.due() is None
    again = take(resolved, "reopen", T0 + 5 * MIN)
    assert again.closed_at is None
    assert again.reopened == 1
    assert again.due() == ("response", T0 + 15 * MIN)


def test_fold_rebuilds_what_apply_built(cfg: ConfigSet) -> None:
    alert, place = drafted(cfg)
    state = apply(None, opening(alert, place=place))
    history = [state.last]
    for i, action in enumerate(("acknowledge", "arrive", "escalate", "evidence"), start=1):
        state = take(state, action, T0 + i * MIN)
        history.append(state.last)
    assert fold(history) == {"AL000007": state}


def test_fold_refuses_a_gap_or_an_illegal_step(cfg: ConfigSet) -> None:
    alert, place = drafted(cfg)
    first = opening(alert, place=place)
    state = apply(None, first)
    ack = step(state, "acknowledge", at=T0 + MIN, actor="u1")
    resolve = step(apply(state, ack), "arrive", at=T0 + 2 * MIN, actor="u1")
    with pytest.raises(IllegalTransition, match="step 3 does not follow step 1"):
        fold([first, resolve])
    with pytest.raises(IllegalTransition, match="needs an open step first"):
        fold([ack])


def test_an_alert_of_the_first_wire_version_still_decodes(cfg: ConfigSet) -> None:
    alert, _ = drafted(cfg)
    old = msgspec.json.decode(msgspec.json.encode(alert))
    for added in ("place", "n", "updated_at", "last_action", "reason", "escalations"):
        del old[added]
    again = Decoder().alert("gridcall/v1/alerts/x/_/_/_/AL000007", msgspec.json.encode(old))
    assert (again.n, again.last_action, again.place) == (1, "open", [])
