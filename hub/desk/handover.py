"""What a unit hands over at a shift change: pure, no I/O, no clock.

:func:`handover` gives a unit, at a moment, who is on duty now and who takes over next
(:mod:`gridcall.hub.desk.duty`), its duty leader, and every open alert in its subtree
with the deadline it waits on next, soonest first: those the unit holds itself, and
those of its subtree another unit holds (below it, or above it after an escalation). A
deadline is "in the shift" when it falls before the end of the incoming person's stretch
(``horizon``), so the outgoing person can say which calls will come due on the next
watch.

``gridcall hub handover --unit X`` and ``GET /v1/handover`` serve it; the board's duty
panel is built on the API.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gridcall.config import ConfigSet
from gridcall.config.duty import Person
from gridcall.hub.desk.duty import Stretch, duty_leader, next_on_duty, on_duty
from gridcall.hub.desk.lifecycle import AlertState, State
from gridcall.wire import Tier
from gridcall.wire.clock import NS

DEFAULT_HORIZON_NS = 12 * 3600 * NS
"""How far ahead deadlines count as coming when the roster names no next stretch."""


@dataclass(frozen=True, slots=True)
class Item:
    """An open alert at the hand-over and the deadline it waits on next."""

    alert_id: str
    matter: str
    matter_name: str
    tier: Tier
    state: State
    unit: str
    """The unit responsible for it now."""
    held: bool
    """The handing-over unit holds it itself (else another unit does: one below it, or
    one above that took it, by escalation or by its tier's route)."""
    grid: str
    deadline: str
    """``response``, ``arrival`` or ``disposal``."""
    due_at: int
    overdue: bool
    in_shift: bool
    """Due before the horizon: on the incoming watch (or overdue already)."""
    on_duty: str
    """The person it was handed to (roster.yaml), "" if nobody was on duty."""


@dataclass(frozen=True, slots=True)
class Handover:
    unit: str
    at: int
    on_duty: Stretch | None
    next: Stretch | None
    leader: Person | None
    horizon: int
    """The end of the incoming stretch (or of the current one, with nobody next; else
    ``at`` + 12 h): deadlines before it are the incoming watch's."""
    items: tuple[Item, ...]

    @property
    def held(self) -> tuple[Item, ...]:
        return tuple(i for i in self.items if i.held)

    @property
    def coming(self) -> tuple[Item, ...]:
        return tuple(i for i in self.items if i.in_shift)


def handover(config: ConfigSet, alerts: Iterable[AlertState], unit: str, at: int, *,
             defer: Callable[[str, int], int] | None = None,
             on_duty_of: Callable[[AlertState], str] | None = None) -> Handover:
    """The hand-over of ``unit`` (a unit of the ladder) at ``at``. ``defer``: a
    deadline as the desk will judge it (held by a silence); ``on_duty_of``: whom the
    alert's current stint was handed to. KeyError for a unit the config lacks."""
    root = config.units[unit]
    duty = config.duty
    now = on_duty(duty, unit, at)
    nxt = next_on_duty(duty, unit, at)
    horizon = nxt.end if nxt is not None else (
        now.end if now is not None else at + DEFAULT_HORIZON_NS)
    items: list[Item] = []
    for state in alerts:
        if not state.is_open or state.place[:len(root.path)] != root.path:
            continue
        due = state.due()
        if due is None:
            continue
        name, when = due
        when = defer(state.alert_id, when) if defer is not None else when
        a = state.alert
        items.append(Item(
            alert_id=state.alert_id, matter=a.matter, matter_name=a.matter_name,
            tier=state.tier, state=state.state, unit=state.unit, held=state.unit == unit,
            grid=state.place[-1], deadline=name, due_at=when, overdue=when <= at,
            in_shift=when < horizon,
            on_duty=on_duty_of(state) if on_duty_of is not None else ""))
    items.sort(key=lambda i: (i.due_at, i.tier, i.alert_id))
    return Handover(unit=unit, at=at, on_duty=now, next=nxt,
                    leader=duty_leader(duty, unit, at), horizon=horizon, items=tuple(items))


__all__ = ["DEFAULT_HORIZON_NS", "Handover", "Item", "handover"]
