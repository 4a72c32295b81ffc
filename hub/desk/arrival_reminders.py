"""Reminders to departments before their promised arrival (吹哨报到).

A whistled department promises to be on site by its ``arrival`` (topology.yaml, 30
minutes by default); missed, the desk writes a ``supervise`` step (督办) to the district.
Before that, its person on duty is reminded once, ``remind_before`` the promise (default:
a third of it, so 10 minutes before a 30-minute promise; ``off``: none), if the
department is not on site by then: reported in or not, arrival is what was promised.

**A notification, not a ledger step.** The reminder changes nothing about the alert or
the call: not its state, deadlines or stage. Written to the alert's ledger it would
publish the alert again (retained) at every address it has had, add a value to the wire
contract's ``last_action``, and show in the steps the indicators and the district's
assessment read: a department would have more steps to its name for being late. So, as
the units' reminders (:mod:`gridcall.hub.desk.reminders`), each is written *before* it
is sent to an append-only log of its own beside the ledger (``arrival_reminders``:
``(alert_id, department, whistled_at)`` unique, no UPDATE or DELETE), and only the writer
whose row went in sends it. So a reminder is sent once across restarts and a failover
(the hub taking over reads the log; a row already there is not sent again); a crash
between the log and the delivery loses that one reminder (the 督办 follows at the
promise).

**When.** The reminder of a call is armed when the dispatch whistles it and at start-up
for every call of an open alert not on site yet; it fires with the desk's deadlines, at
its own instant, and is sent if then the alert is open, the call is the same one (not a
later whistle), and the department has neither arrived, disposed of its part nor been
supervised, and its promise has not passed: when the desk looks only after the promise
(the hub was down), the 督办 is due instead and the reminder is dropped (counted).

The rules (:func:`due_at`, :func:`still_due`, :func:`remind`) are pure; the
:class:`ArrivalReminders` the desk owns keeps the timers, the log and the hooks.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from gridcall.config import ConfigSet
from gridcall.config.models import Department
from gridcall.hub.desk import duty, whistle
from gridcall.hub.desk.appendlog import AppendLog, Row, Table
from gridcall.hub.desk.lifecycle import AlertState
from gridcall.hub.desk.whistle import DeptCall, Stage
from gridcall.hub.store import DeskStore
from gridcall.wire import Tier
from gridcall.wire.clock import ns

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ArrivalReminder:
    """One reminder to a department, as the log keeps it and the hooks get it."""

    alert_id: str
    department: str
    whistled_at: int
    """The whistle of the call it reminds of (ns): with the alert and the department,
    which call."""
    at: int
    """When it was due (ns, desk clock)."""
    arrive_by: int
    """The promised arrival it reminds of."""
    person: str
    """The department's person on duty at ``at`` (roster.yaml), whom it goes to; "" for
    the department's channels (nobody on the roster)."""
    stage: Stage
    """Where the call stood: ``whistled`` (not reported in) or ``reported_in``."""
    unit: str
    """The unit holding the alert then."""
    tier: Tier

    @property
    def key(self) -> tuple[str, str, int]:
        return self.alert_id, self.department, self.whistled_at


def due_at(department: Department, call: DeptCall) -> int | None:
    """When the call's reminder is due: ``remind_before`` its promised arrival (a third
    of the promise by default); None if the department has none."""
    lead = department.reminder_lead
    if lead is None:
        return None
    at = call.arrive_by - ns(lead)
    return at if at > call.whistled_at else None


def still_due(state: AlertState, department: str, whistled_at: int, now: int) -> bool:
    """Whether the reminder of the call whistled at ``whistled_at`` still has a point at
    ``now``: the alert is open, that call is the department's current one, it is not on
    site, not disposed of, not supervised, and its promise has not passed."""
    call = whistle.find(state.dept_calls, department)
    return (state.is_open and call is not None and call.whistled_at == whistled_at
            and call.arrived_at is None and call.disposed_at is None
            and call.supervised_at is None and now < call.arrive_by)


def remind(config: ConfigSet, state: AlertState, call: DeptCall, at: int) -> ArrivalReminder:
    """The reminder of ``call``, due at ``at``: to the department's person on duty then."""
    stretch = duty.on_duty(config.duty, call.department, at)
    return ArrivalReminder(alert_id=state.alert_id, department=call.department,
                           whistled_at=call.whistled_at, at=at, arrive_by=call.arrive_by,
                           person=stretch.person.id if stretch else "", stage=call.stage,
                           unit=state.unit, tier=state.tier)


TABLE = Table(
    name="arrival_reminders", what="the arrival reminder log",
    columns=("alert_id", "department", "whistled_at", "at", "person"),
    schema="""
CREATE TABLE IF NOT EXISTS arrival_reminders (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL, department TEXT NOT NULL, whistled_at INTEGER NOT NULL,
    at INTEGER NOT NULL, person TEXT NOT NULL, body BLOB NOT NULL,
    UNIQUE (alert_id, department, whistled_at)
);
""")
"""PostgreSQL's is :mod:`gridcall.hub.pgstore`'s migration 6."""


def _columns(r: ArrivalReminder) -> Row:
    return (r.alert_id, r.department, r.whistled_at, r.at, r.person)


class _Armed(NamedTuple):
    at: int
    alert_id: str
    department: str
    whistled_at: int


ArrivalReminderHook = Callable[[ArrivalReminder, AlertState], Awaitable[None]]


@dataclass
class ArrivalReminderCounters:
    sent: int = 0
    """Reminders logged and handed to the hooks."""
    to_department: int = 0
    """Of them, those with nobody on the department's roster: its channels."""
    dropped_late: int = 0
    """Reminders the desk looked at only after the promise had passed (the hub was
    down): not sent, the 督办 is due instead."""
    hook_errors: int = 0


class ArrivalReminders:
    """The desk's reminders to departments (one per desk): armed from its alerts, fired
    with its deadlines, logged in ``store`` (use inside ``async with store``)."""

    def __init__(self, config: ConfigSet, store: DeskStore) -> None:
        self.config = config
        self.log = AppendLog(store, TABLE, ArrivalReminder, _columns)
        self.counters = ArrivalReminderCounters()
        self._heap: list[_Armed] = []
        self._sent: set[tuple[str, str, int]] = set()
        self._hooks: list[ArrivalReminderHook] = []

    def add_hook(self, hook: ArrivalReminderHook) -> None:
        """Call ``hook`` with every reminder, once it was logged."""
        self._hooks.append(hook)

    def arm(self, state: AlertState, calls: Iterable[DeptCall] | None = None) -> None:
        """Arm the reminders of ``calls`` (default: the calls the alert's latest step
        whistled) not sent yet."""
        if calls is None:
            t = state.last
            named = {w.department for w in t.whistled}
            calls = [c for c in state.dept_calls
                     if c.department in named and c.whistled_at == t.at]
        for call in calls:
            dep = self.config.departments.get(call.department)
            if dep is None or call.arrived_at is not None or call.disposed_at is not None:
                continue
            at = due_at(dep, call)
            key = (state.alert_id, call.department, call.whistled_at)
            if at is not None and key not in self._sent:
                heapq.heappush(self._heap, _Armed(at, *key))

    async def start(self, states: Iterable[AlertState]) -> None:
        """Read back the reminders sent (by this hub or the one before it) and arm those of
        the open alerts' calls not sent yet."""
        self._sent.update(r.key for r in await self.log.select())
        self._heap = []
        for state in states:
            if state.is_open and state.dept_calls:
                self.arm(state, state.dept_calls)

    def next(self) -> int | None:
        """The earliest reminder armed (stale ones included: a timer may wake for
        nothing, never too late)."""
        return self._heap[0].at if self._heap else None

    async def fire(self, now: int, alert: Callable[[str], AlertState | None]
                   ) -> list[ArrivalReminder]:
        """Each reminder due by ``now`` that still has a point (:func:`still_due`):
        logged, then handed to the hooks; the others dropped. ``alert``: the alert as it
        stands, by id."""
        sent: list[ArrivalReminder] = []
        while self._heap and self._heap[0].at <= now:
            armed = heapq.heappop(self._heap)
            key = (armed.alert_id, armed.department, armed.whistled_at)
            state = alert(armed.alert_id)
            if key in self._sent or state is None:
                continue
            call = whistle.find(state.dept_calls, armed.department)
            if call is None or not still_due(state, armed.department, armed.whistled_at,
                                             now):
                if call is not None and call.whistled_at == armed.whistled_at \
                        and state.is_open and call.arrived_at is None \
                        and call.disposed_at is None and now >= call.arrive_by:
                    self.counters.dropped_late += 1
                continue
            reminder = remind(self.config, state, call, armed.at)
            try:
                written = await self.log.add(reminder)
            except BaseException:
                heapq.heappush(self._heap, armed)  # not written: armed again
                raise
            self._sent.add(key)
            if not written:  # logged (so sent) by another hub: a failover's overlap
                continue
            self.counters.sent += 1
            self.counters.to_department += not reminder.person
            sent.append(reminder)
            for hook in self._hooks:
                try:
                    await hook(reminder, state)
                except Exception:
                    self.counters.hook_errors += 1
                    log.exception("desk: arrival reminder hook %r failed on %s (%s)", hook,
                                  armed.alert_id, armed.department)
        return sent

    async def of_alert(self, alert_id: str) -> list[ArrivalReminder]:
        """The reminders sent to departments on the alert, first first."""
        return await self.log.select("alert_id = ?", (alert_id,), order="at, seq")

    async def all(self) -> list[ArrivalReminder]:
        return await self.log.select(order="at, seq")


__all__ = ["ArrivalReminder", "ArrivalReminderCounters", "ArrivalReminderHook",
           "ArrivalReminders", "due_at", "remind", "still_due"]
