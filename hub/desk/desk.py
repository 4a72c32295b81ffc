"""The alert desk: anomaly events in, answered calls out.

:class:`Desk` is the one service that changes alerts. It groups anomaly events into alerts
(one open alert per matter and grid), takes people's actions (acknowledge, arrive, resolve,
false alarm, call upward, dispatch), escalates on deadline breaches, and writes every step
to the ledger *before* anything else sees it. What an alert becomes (tier, route,
deadlines, reason) when it opens, when evidence joins it and when a deadline passes is
the policy's answer (:mod:`gridcall.hub.desk.policy`): the desk only groups, commits and
calls hooks. Then it calls its hooks with a :class:`Change`
(the MQTT publisher in :mod:`gridcall.hub.service`, the notifier, ...).

Time is injected: every method takes ``now`` (ns). Deadlines fire at their own instant,
whenever :meth:`tick` (or any call with a later ``now``) notices them, so a replay gives
the same timeline however often the clock is looked at, and a deadline that passed while
the hub was down fires at start-up, stamped with the time it passed.

Grouping and anti-flap:

- an event whose ``(agent, seq)`` the ledger already holds is a duplicate: no new step;
- a further anomaly of the same matter in the same grid joins the open alert as
  ``evidence`` (repeats from one sensor closer than ``grouping.evidence_gap`` are counted,
  not written);
- alerts never close by themselves when an anomaly ends: people resolve them, so a sensor
  oscillating around its limit does not open and close alerts;
- an anomaly that recurs within ``grouping.reopen_window`` of closing reopens the alert.

Silences (:mod:`gridcall.hub.desk.silence`): an anomaly a silence covers is muted (a
``mute`` step in the silence ledger) before any of the above; a deadline of an open
alert that falls inside a silence of its scope waits for the silence's end. Silences
are set and lifted here (:meth:`Desk.add_silence`, :meth:`Desk.lift_silence`) and
expire at their end's instant, like deadlines.

Inhibition (:mod:`gridcall.hub.desk.inhibit`): then, an anomaly of a sensor whose edge
agent is offline is held back if an ``inhibit`` rule names its matter or its kind
(sensor faults, stuck, dropout): it opens no alert; the latest held are in
:attr:`Desk.held`. Inputs the hub makes itself (``matter`` given: the outage) are never
held.

Incidents (:mod:`gridcall.hub.desk.incidents`): when an alert opens or reopens, the desk
links it with an open alert of the same matter in a neighbouring grid or at the same
site that saw its matter recently: one incident, with a lead unit (an ``open`` or
``join`` step in the incident ledger). Each :class:`Change` carries its alert's incident;
batch hooks (:meth:`Desk.add_batch_hook`) get every change one call of the desk made, so
the notifier sends one message per incident.

People (roster.yaml, :mod:`gridcall.hub.desk.duty`): a step that hands an alert to a unit
names the person on duty there (``on_duty``), and an action taken with a person's token
names them and their unit. Each hand-over arms the unit's escalation policy: reminders
due before the response deadline fire with the deadlines, at their own instants, while
the alert waits for a response; each is written to the reminder log before the reminder
hooks (:meth:`Desk.add_reminder_hook`) get it (:mod:`gridcall.hub.desk.reminders`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace

import msgspec

from gridcall.config import ConfigSet, Unit
from gridcall.config.models import Matter
from gridcall.hub.desk import audits, duty, lifecycle, plans, whistle
from gridcall.hub.desk.arrival_reminders import ArrivalReminder, ArrivalReminders
from gridcall.hub.desk.audits import NotPermitted
from gridcall.hub.desk.closed_alerts import ClosedAlerts
from gridcall.hub.desk.incident_ledger import IncidentLedger
from gridcall.hub.desk.incidents import (
    Incident,
    IncidentBook,
    IncidentStep,
    Member,
    Neighbours,
    decide,
)
from gridcall.hub.desk.inhibit import Held, Inhibitor
from gridcall.hub.desk.intake import Call, distance_m
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.lifecycle import (
    HANDOVERS,
    HUB,
    OVERDUE,
    Action,
    AlertState,
    IllegalTransition,
    Rating,
    State,
    Transition,
    apply,
    opening,
    step,
)
from gridcall.hub.desk.policy import Decision, Policy, UnknownSensor
from gridcall.hub.desk.reminder_log import ReminderLog
from gridcall.hub.desk.reminders import Reminder, remind, schedule, still_due
from gridcall.hub.desk.silence import (
    NoSuchSilence,
    Scope,
    Silence,
    SilenceBook,
    SilenceEnded,
    SilenceRefused,
    SilenceStep,
    Target,
    draft,
    may_lift,
    repeat_of,
)
from gridcall.hub.desk.silence_ledger import SilenceLedger
from gridcall.hub.desk.snapshots import DeskImage, SnapshotStore, config_key, decode
from gridcall.hub.desk.spread import Sighting, SpreadWindow
from gridcall.hub.desk.timers import DeadlineTimers, Timer
from gridcall.hub.desk.whistle import Whistled
from gridcall.hub.store import Db
from gridcall.wire import AnomalyEvent, Severity, Tier
from gridcall.wire.clock import ns, utc_text
from gridcall.wire.ladder import above
from gridcall.wire.stats import Scalar, flatten

log = logging.getLogger(__name__)

__all__ = ["Change", "Desk", "DeskCounters", "EventOutcome", "IllegalTransition",
           "NoSuchSilence", "NotFound", "NotPermitted", "OutsideArea", "OutsideSubtree",
           "ReminderChange", "SilenceChange", "SilenceEnded", "SilenceRefused",
           "UnknownDepartment", "UnknownSensor", "UnknownUnit"]



HELD_KEPT = 1000
"""How many held-back events the desk remembers (for the API and for dedup)."""

SNAPSHOT_EVERY = 50_000
"""Ledger rows between two snapshots of the desk (:mod:`gridcall.hub.desk.snapshots`)."""


class NotFound(LookupError):
    def __init__(self, alert_id: str) -> None:
        super().__init__(f"no alert {alert_id!r}")
        self.alert_id = alert_id


class UnknownUnit(ValueError):
    def __init__(self, unit: str) -> None:
        super().__init__(f"{unit!r} is not a unit of the config (district, town, community "
                         "or grid id)")
        self.unit = unit


class OutsideSubtree(PermissionError):
    """A unit acted on an alert outside its subtree (a grid on another grid's alert)."""

    def __init__(self, unit: Unit, state: AlertState) -> None:
        super().__init__(f"{unit.level} {unit.id} may not act on {state.alert_id}: it is in "
                         f"{'/'.join(state.place)}, outside {'/'.join(unit.path)}")
        self.unit = unit.id
        self.alert_id = state.alert_id


class OutsideArea(PermissionError):
    """A department acted on an alert outside its area of action (topology.yaml)."""

    def __init__(self, department: str, towns: tuple[str, ...], state: AlertState) -> None:
        super().__init__(f"department {department} acts in {', '.join(towns)} only; "
                         f"{state.alert_id} is in {'/'.join(state.place)}")
        self.department = department
        self.alert_id = state.alert_id


class UnknownDepartment(ValueError):
    def __init__(self, department: str) -> None:
        super().__init__(f"{department!r} is not a department of the config "
                         "(topology.yaml departments)")
        self.department = department


class BadAction(ValueError):
    """An action with a bad argument (an unknown department, a call upward without a
    reason); nothing was written."""


class Unchanged(Exception):
    """An action that would change nothing (a dispatch of departments already on the
    alert): nothing was written; ``state`` is the alert as it stands."""

    def __init__(self, state: AlertState, why: str) -> None:
        super().__init__(f"{state.alert_id}: {why}")
        self.state = state


@dataclass(frozen=True, slots=True)
class Change:
    """What a hook gets after a step was written to the ledger."""

    alert: AlertState
    transition: Transition
    units: tuple[str, ...]
    """Who must hear of it: the responsible unit after the step; after an escalation also
    the unit that held the alert before (both levels are notified); for a
    ``request_close``, the unit that must approve it."""
    incident: Incident | None = None
    """The incident the alert is in after the step, if any."""


Hook = Callable[[Change], Awaitable[None]]
BatchHook = Callable[[list[Change]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ReminderChange:
    """What a reminder hook gets after a reminder was logged: send it."""

    reminder: Reminder
    alert: AlertState


ReminderHook = Callable[[ReminderChange], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SilenceChange:
    """What a silence hook gets after a silence step was written."""

    silence: Silence
    step: SilenceStep


SilenceHook = Callable[[SilenceChange], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class EventOutcome:
    alert: AlertState | None
    """The alert the event opened, joined or reopened; for a duplicate the alert it
    joined before; None for an ``end`` event (it closes nothing)."""
    steps: tuple[Transition, ...] = ()
    duplicate: bool = False
    suppressed: bool = False
    """A repeat within the evidence gap: counted, not written."""
    silenced: str | None = None
    """The silence that muted the event (``alert`` is then None)."""
    held: Held | None = None
    """Held back by an inhibit rule (``alert`` is then None)."""


@dataclass
class DeskCounters:
    events: int = 0
    calls: int = 0
    """Calls no sensor raised (reports, systems' events) taken by :meth:`Desk.call`."""
    ratings: int = 0
    """Reporters' ratings written (``rate`` steps)."""
    duplicates: int = 0
    ends: int = 0
    opened: int = 0
    evidence: int = 0
    evidence_suppressed: int = 0
    reopened: int = 0
    tier_raises: int = 0
    escalations_deadline: int = 0
    escalations_manual: int = 0
    actions: int = 0
    refused: int = 0
    repeats: int = 0
    """Actions that would have changed nothing (answered with the alert as it stands)."""
    hook_errors: int = 0
    snapshot_failures: int = 0
    """Snapshots the store did not take (logged; the ledger holds every step)."""
    silenced: int = 0
    """Anomaly events a silence muted (written to the silence ledger, no alert)."""
    silences_added: int = 0
    silences_repeated: int = 0
    """POSTs of a silence that repeated one not ended: answered with it, nothing written."""
    silences_lifted: int = 0
    silences_expired: int = 0
    reminders: int = 0
    """Reminders logged and handed to the reminder hooks (roster.yaml's escalation)."""
    reminders_to_unit: int = 0
    """Of them, those with nobody on the roster: the unit's channels."""
    deadlines_held: int = 0
    inhibited: int = 0
    incidents_opened: int = 0
    incident_joins: int = 0
    """Anomaly events an inhibit rule held back (an offline agent's sensor faults)."""
    """Deadlines that fell inside a silence of their alert and waited for its end."""
    overdue_at_top: set[str] = field(default_factory=set)
    """Alerts past a deadline where they can go no higher (tier A, or a device fault's
    top tier): shown as overdue and paged, not escalated."""
    overdue_pages: int = 0
    """Overdue steps written (one per alert and deadline): each pages a duty leader."""
    whistles: int = 0
    """Departments called by dispatches (吹哨)."""
    department_steps: int = 0
    """Steps departments took themselves: report-in, arrival, disposal."""
    supervisions: int = 0
    """Missed promised arrivals escalated to the district command centre (督办)."""
    close_requests: int = 0
    """Closings of a high tier by a unit below its approving level: requests written."""
    close_approvals: int = 0
    close_rejections: int = 0
    sampled: int = 0
    """Closings drawn into the audit queue."""
    audits_passed: int = 0
    audits_failed: int = 0
    plan_dispatches: int = 0
    """Dispatch steps the hub wrote for a plan's departments (tier B and A)."""
    plan_steps: int = 0
    """Steps of plans ticked off."""

    @property
    def escalations(self) -> int:
        return self.escalations_deadline + self.escalations_manual + self.tier_raises


def _folded(steps: list[Transition]) -> AlertState:
    state: AlertState | None = None
    for t in steps:
        state = apply(state, t)
    if state is None:
        raise NotFound("")
    return state


def _number(alert_id: str) -> tuple[int, str]:
    """An alert id's order: AL000009 before AL000010 before AL1000000."""
    return (len(alert_id), alert_id)


def _order(state: AlertState) -> tuple[int, tuple[int, str]]:
    return (state.opened_at, _number(state.alert_id))


def _together(*writers: Callable[[Db], None] | None) -> Callable[[Db], None] | None:
    """One writer running each of ``writers`` (None: none), in order, in one transaction."""
    chosen = [w for w in writers if w is not None]
    if len(chosen) < 2:
        return chosen[0] if chosen else None

    def write(db: Db) -> None:
        for w in chosen:
            w(db)
    return write


class Desk:
    """``desk = Desk(config, Ledger(store)); await desk.start()``, then feed it events,
    actions and ticks. One desk per ledger: it is the only writer."""

    def __init__(self, config: ConfigSet, ledger: Ledger) -> None:
        self.config = config
        self.ledger = ledger
        self.policy = Policy(config)
        self.grouping = config.matters.grouping
        self.counters = DeskCounters()
        self._states: dict[str, AlertState] = {}
        self._open: dict[tuple[str, str], str] = {}
        self._open_of: dict[str, dict[tuple[str, str], str]] = {}
        """matter -> its entries of ``_open``, in the same order: spread and incidents look
        at the open alerts of one matter, not every open alert of the district."""
        """(matter, grid) -> the open alert there (:meth:`Policy.group`: an agent's
        outage is keyed by the agent)."""
        self._latest: dict[tuple[str, str], str] = {}
        """The same keys -> the latest alert there, open or closed (for reopening)."""
        self._event_marks: dict[str, int] = {}
        """agent -> the highest ``seq`` of its anomaly events folded into alerts: an event
        above it is not in the ledger (dedup asks the ledger only below it)."""
        self._last_seen: dict[tuple[str, str], int] = {}
        """(alert, sensor) -> when the sensor last added evidence or opened the alert."""
        self._sensors: dict[str, dict[str, None]] = {}
        """alert -> the sensors that opened it or added evidence, in order (the boards)."""
        self._spread = SpreadWindow(ns(config.matters.rules.spread.window))
        self._next = 1
        self._timers = DeadlineTimers()
        """(deadline, alert, step n): the deadline each open alert waits on (a heap)."""
        self._hooks: list[Hook] = []
        self.silences = SilenceBook()
        """Every silence (:mod:`gridcall.hub.desk.silence`), folded from its ledger."""
        self.silence_ledger = SilenceLedger(ledger.store)
        self._muted: dict[tuple[str, int], str] = {}
        """(agent, seq) -> the silence that muted the event."""
        self._silences_followed = 0  # the silence ledger's last row folded
        self._silence_hooks: list[SilenceHook] = []
        self.inhibitor = Inhibitor(config.matters.inhibit)
        """Its ``offline`` is pointed at the roster by the desk in service."""
        self.held: deque[Held] = deque(maxlen=HELD_KEPT)
        """The latest anomaly events held back by inhibition, oldest first."""
        self._held_keys: dict[tuple[str, int], None] = {}
        self.reminder_log = ReminderLog(ledger.store)
        self._reminder_timers = DeadlineTimers()
        """(when, alert, stint, index): the reminders of open alerts' stints."""
        self._reminded: set[tuple[str, int, int]] = set()
        self._stint: dict[str, int] = {}
        """alert -> the step that handed it to its current unit."""
        self._handed: dict[str, str] = {}
        """alert -> the person on duty it was handed to then ("" if nobody)."""
        self._reminder_hooks: list[ReminderHook] = []
        self._arrival_timers = DeadlineTimers()
        """(promised arrival, alert, 0): when a whistled department must be on site; at
        that instant the desk supervises it (督办) if it is not (stale entries dropped)."""
        self.arrival_reminders = ArrivalReminders(config, ledger.store)
        """Reminders to whistled departments before their promised arrival
        (:mod:`gridcall.hub.desk.arrival_reminders`): a log beside the ledger, no steps."""
        self.incidents = IncidentBook()
        """Every incident (:mod:`gridcall.hub.desk.incidents`), folded from its ledger."""
        self.incident_ledger = IncidentLedger(ledger.store)
        self._neighbours = Neighbours(config, config.matters.incidents)
        self._seen_at: dict[str, int] = {}
        """alert -> its latest open, evidence or reopen step (ns)."""
        self._batch_hooks: list[BatchHook] = []
        self._plan_pool = plans.PlanPool()
        """Alerts' plans, one copy of each (:class:`~gridcall.hub.desk.plans.PlanPool`)."""
        self._batch: list[Change] | None = None
        self._lock = asyncio.Lock()
        self.started = False
        self.snapshots = SnapshotStore(ledger.store)
        self.closed = ClosedAlerts(ledger.store)
        """Each closed alert's state, a table beside the ledger written with its steps
        (:mod:`gridcall.hub.desk.closed_alerts`)."""
        self.keep_closed: int | None = max(ns(self.grouping.reopen_window),
                                           ns(config.matters.incidents.window))
        """How long (ns) a closed alert stays in memory after it closed: the reopen window
        (a recurrence reopens it) or the incident window, whichever is longer; older ones
        are dropped at each tick (:meth:`sweep`) and read from the store when asked for
        (:meth:`find`, :meth:`listing`). None: every alert is held (a simulation's
        summaries read them all at once)."""
        self._evicted: Counter[str] = Counter()
        """state -> how many closed alerts the store holds that memory does not."""
        self.writes = True
        self.backfilled = 0
        """Closed alerts' rows the start wrote (a ledger older than the table, or rows
        behind the ledger); 0 when the table was up to date."""
        """False for a standby's desk (:mod:`gridcall.hub.standby`): its start writes
        nothing (the closed alerts' rows are the active hub's)."""
        self.snapshot_every = SNAPSHOT_EVERY
        """Write a snapshot after this many ledger rows (0: never)."""
        self._config_key = config_key(config)
        self._last_at = -(2**63)
        """The latest ``at`` folded (steps are folded in time order)."""
        self._in_order = True
        self._folding = False
        """At start-up: deadline timers are armed once the fold is done."""
        """Whether every step was folded in time order (else no snapshot: it would not be
        what a fold of the ledger gives)."""
        self._unsnapped = 0
        """Steps folded since the latest snapshot (or the start's, if none)."""
        self.restored_from: int | None = None
        """The ledger row the start-up's snapshot was taken after (None: full fold)."""
        self.replayed = 0
        """Ledger rows folded at start-up (the tail after the snapshot, or all)."""
        self._followed = 0
        """The alert ledger's latest row this desk has folded, or an earlier one (a
        standby's :meth:`follow` passes over steps it holds already)."""

    # ------------------------------------------------------------------ set-up

    def stats(self) -> dict[str, Scalar]:
        """The desk's counters, flat (:mod:`gridcall.wire.stats`)."""
        return {**flatten(self.counters), "escalations": self.counters.escalations,
                **{f"arrival_reminders.{k}": v
                   for k, v in flatten(self.arrival_reminders.counters).items()}}

    def add_hook(self, hook: Hook) -> None:
        """Call ``hook`` with every :class:`Change`, in ledger order. A hook that raises is
        logged and counted; the step stays written."""
        self._hooks.append(hook)

    def add_reminder_hook(self, hook: ReminderHook) -> None:
        """Call ``hook`` with every :class:`ReminderChange` (after it was logged)."""
        self._reminder_hooks.append(hook)

    def add_silence_hook(self, hook: SilenceHook) -> None:
        """Call ``hook`` with every :class:`SilenceChange` (add, lift, expire, mute)."""
        self._silence_hooks.append(hook)

    async def start(self, *, snapshot: bool = True) -> None:
        """Rebuild every alert from the ledger (call once, before anything else): from the
        latest snapshot that fits and the steps written after it, or (none, or
        ``snapshot=False``) by folding the whole ledger.

        The cyclic garbage collector is paused meanwhile: the rebuild allocates an
        object graph as large as the desk's state, none of it cycles, and each
        collection it would trigger walks all of it (most of a start-up's time from a
        snapshot in a large process)."""
        paused = gc.isenabled()
        gc.disable()
        try:
            # before the rows: a row written meanwhile is folded by the first follow()
            self._followed = await self.ledger.last_seq()
            image = await self._usable_image() if snapshot else None
            if image is not None:
                self._restore(image)
                tail = await self.ledger.after(image.through_seq)
                self.restored_from = image.through_seq
            else:
                tail = await self.ledger.all()
            await self._reload_before(tail)
            self._folding = True
            for t in tail:
                self._absorb(apply(self._states.get(t.alert_id), t))
            self._folding = False
            if self.writes:  # each closed alert's row the table lacks, as the fold gives
                # it (a ledger written before the table existed fills it here)
                self.backfilled = await self.closed.put(
                    [s for s in self._states.values() if not s.is_open])
            held: Counter[str] = Counter(s.state for s in self._states.values()
                                         if not s.is_open)
            self._evicted = Counter({k: n - held[k] for k, n in (
                await self.closed.count_by_state()).items() if n > held[k]})
            self.sweep(self._last_at)  # the clock is at least there
        finally:
            if paused:
                gc.enable()
        self._timers.restore(self._due_timers())  # one per open alert, not one per step
        self._arrival_timers.restore(sorted(
            Timer(at, s.alert_id, 0) for s in self._states.values() if s.is_open
            if (at := whistle.next_arrival(s.dept_calls)) is not None))
        self.replayed = self._unsnapped = len(tail)
        await self._follow_silences()
        self._reminded.update(r.key for r in await self.reminder_log.all()
                              if r.alert_id in self._states)  # only those it holds
        await self.arrival_reminders.start(s for s in self._states.values() if s.is_open)
        for i in await self.incident_ledger.all():
            self.incidents.absorb(i)
        self.started = True
        if self._states:
            log.info("desk: %d alerts rebuilt from the ledger (%s, %d rows folded), %d open",
                     len(self._states), "no snapshot" if image is None
                     else f"snapshot after row {image.through_seq}", len(tail),
                     len(self._open))
        if self.snapshot_every and self._unsnapped >= self.snapshot_every:
            await self.write_snapshot()

    async def follow(self) -> list[Change]:
        """A standby's read-only copy of the desk another hub holds on the same store
        (:mod:`gridcall.hub.standby`): fold the alert ledger's rows written since the last
        fold, and the incidents and silences as the ledger holds them now; call the hooks
        with each change (the board's live feed). Writes nothing and arms no timer: the
        active hub's desk fires them. The one writer appends steps in row order, so a
        row never commits behind one already followed."""
        rows = await self.ledger.written_after(self._followed)
        await self._reload_before([t for _, t in rows])
        changes: list[Change] = []
        self._folding = True
        try:
            for seq, t in rows:
                self._followed = max(self._followed, seq)
                prev = self._states.get(t.alert_id)
                if prev is not None and prev.n >= t.n:
                    continue  # folded at start-up already
                state = apply(prev, t)
                self._absorb(state)
                changes.append(Change(state, t, (t.unit,)))
        finally:
            self._folding = False
        if changes:
            book = IncidentBook()
            for i in await self.incident_ledger.all():
                book.absorb(i)
            self.incidents = book
            changes = [replace(c, incident=book.of(c.alert.alert_id))
                       for c in changes]
        await self._follow_silences()
        await self._run_hooks(changes, "followed ")
        self.sweep(self._last_at)  # a standby never ticks: its clock is the steps'
        return changes

    async def _follow_silences(self) -> None:
        """Fold the silence ledger's rows written after the last one folded (all of them
        at start): the log is append-only and one writer appends it in row order, so its
        tail is all a standby's :meth:`follow` reads, however long the log grows."""
        for row, silence_step in await self.silence_ledger.written_after(self._silences_followed):
            self._silences_followed = row
            self._absorb_silence(silence_step)

    # ------------------------------------------------------------------ snapshots

    async def _usable_image(self) -> DeskImage | None:
        """The latest snapshot folded under this config of which the ledger's rows after
        it are all later in time (else a fold would put them before some of its rows)."""
        for body in await self.snapshots.latest(self._config_key):
            try:
                image = decode(body)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                log.warning("desk: a snapshot is unreadable, passed over: %s", exc)
                continue
            if await self.ledger.stamped_before(image.through_seq, image.through_at):
                log.warning("desk: steps written after the snapshot at row %d are stamped "
                            "before it: folding the whole ledger", image.through_seq)
                return None
            return image
        return None

    def image(self, through_seq: int) -> DeskImage:
        """The desk's state folded from the alert ledger, which holds rows up to
        ``through_seq`` (:mod:`gridcall.hub.desk.snapshots`), as a fold of those rows
        gives it: a deadline timer per open alert at its due time (one a silence holds is
        held again when it comes up), the reminders of current stints not sent yet.
        Stale timers and sightings older than the spread window are left out: they
        change nothing from then on. The cyclic garbage collector is paused meanwhile, as
        at start-up: the image's tuples are no cycles, and a collection they trigger
        walks the whole heap (9.9 s against 0.2 s at 50,500 alerts in a 2.3 GB process,
        bench/desk_restart.py)."""
        paused = gc.isenabled()
        gc.disable()
        try:
            return self._image(through_seq)
        finally:
            if paused:
                gc.enable()

    def _image(self, through_seq: int) -> DeskImage:
        states = self._states
        return DeskImage(
            through_seq=through_seq, through_at=self._last_at, config=self._config_key,
            states=list(states.values()),
            open=[(m, g, a) for (m, g), a in self._open.items()],
            latest=[(m, g, a) for (m, g), a in self._latest.items()],
            event_marks=sorted(self._event_marks.items()),
            last_seen=[(a, sensor, at) for (a, sensor), at in self._last_seen.items()],
            sensors=[(a, list(seen)) for a, seen in self._sensors.items()],
            seen_at=list(self._seen_at.items()),
            spread=self._spread.since(self._last_at - self._spread.window_ns),
            next=self._next,
            timers=self._due_timers(),
            reminder_timers=[
                tm for tm in self._reminder_timers.entries()
                if tm.alert_id in states and (tm.alert_id, tm.n, tm.which) not in self._reminded
                and still_due(states[tm.alert_id], tm.n, self._stint.get(tm.alert_id, -1))],
            stint=list(self._stint.items()),
            handed=list(self._handed.items()),
        )

    def _due_timers(self) -> list[Timer]:
        """The deadline each open alert waits on, as a fold arms it, earliest first."""
        return sorted(Timer(due[1], s.alert_id, s.n) for s in self._states.values()
                      if (due := s.due()) is not None)

    def _restore(self, image: DeskImage) -> None:
        self._states = {s.alert_id: self._plan_pool.share(s) for s in image.states}
        self._open = {(m, g): a for m, g, a in image.open}
        self._open_of = {}
        for key, alert_id in self._open.items():
            self._open_of.setdefault(key[0], {})[key] = alert_id
        self._latest = {(m, g): a for m, g, a in image.latest}
        self._event_marks = dict(image.event_marks)
        self._last_seen = {(a, sensor): at for a, sensor, at in image.last_seen}
        self._sensors = {a: dict.fromkeys(seen) for a, seen in image.sensors}
        self._seen_at = dict(image.seen_at)
        self._spread.restore(image.spread)
        self._next = image.next
        self._timers.restore(image.timers)
        self._reminder_timers.restore(image.reminder_timers)
        self._stint = dict(image.stint)
        self._handed = dict(image.handed)
        self._last_at = image.through_at

    async def write_snapshot(self) -> int | None:
        """Write a snapshot of the desk as it stands; its size in bytes, or None when
        there is nothing to write or steps were folded out of time order."""
        image = await self._snapshot_image()
        return None if image is None else await self._save_snapshot(image)

    async def _snapshot_image(self) -> DeskImage | None:
        """The image a snapshot writes now (None: nothing to write, or steps folded out
        of time order); the steps counted towards the next one start again from here.
        Taken at once (it shares the frozen states; its lists are its own), so the desk
        may go on while it is encoded and written (:meth:`SnapshotStore.save`)."""
        if not self._in_order or not self._states:
            return None
        image = self.image(await self.ledger.last_seq())
        self._unsnapped = 0
        return image

    async def _save_snapshot(self, image: DeskImage) -> int | None:
        """Write ``image``: its size, or None if the store failed (logged: a snapshot is
        a cache, the ledger holds every step)."""
        try:
            size = await self.snapshots.save(image, written_at=image.through_at)
        except Exception:
            self.counters.snapshot_failures += 1
            log.exception("desk: the snapshot after ledger row %d was not written; the "
                          "next is due after %d more rows", image.through_seq,
                          self.snapshot_every)
            return None
        log.info("desk: snapshot after ledger row %d (%d alerts, %d bytes)",
                 image.through_seq, len(image.states), size)
        return size

    def _absorb(self, state: AlertState) -> None:
        """Index the alert after a step (new state, grouping keys, events, spread)."""
        t = state.last
        if t.at < self._last_at:
            self._in_order = False
        else:
            self._last_at = t.at
        self._unsnapped += 1
        if t.n == 1:  # the plan it opened with: one copy per plan, not per alert
            state = self._plan_pool.share(state)
        self._states[state.alert_id] = state
        key = self.policy.group(state.alert.matter, state.place[-1], state.alert.agent)
        self._latest[key] = state.alert_id
        if state.is_open:
            self._open[key] = state.alert_id
            self._open_of.setdefault(key[0], {})[key] = state.alert_id
            due = state.due()
            if due is not None and not self._folding:
                self._timers.arm(due[1], state.alert_id, state.n)
        elif self._open.get(key) == state.alert_id:
            del self._open[key]
            del self._open_of[key[0]][key]
        if t.evidence is not None:
            agent, seq = t.evidence
            if seq > self._event_marks.get(agent, -1):
                self._event_marks[agent] = seq
        if t.action in HANDOVERS:
            self._arm_reminders(state)
        if t.whistled and not self._folding:
            for w in t.whistled:
                self._arrival_timers.arm(w.arrive_by, state.alert_id, 0)
            self.arrival_reminders.arm(state)
        if t.action in ("open", "evidence", "reopen"):
            self._seen_at[state.alert_id] = t.at
        if t.sensor and t.action in ("open", "evidence", "reopen"):
            self._last_seen[(state.alert_id, t.sensor)] = t.at
            self._sensors.setdefault(state.alert_id, {})[t.sensor] = None
            sensor = self.config.sensors.get(t.sensor)
            if sensor is not None and self.policy.spreads(state.alert.matter):
                self._spread.add(state.alert.matter, Sighting(t.at, t.sensor, sensor.path))
        if t.n == 1:
            number = state.alert_id.removeprefix("AL")
            if number.isdigit():
                self._next = max(self._next, int(number) + 1)

    # ------------------------------------------------------------------ reading

    def get(self, alert_id: str) -> AlertState:
        """An alert the desk holds: every open one, and those closed within
        :attr:`keep_closed`; NotFound for others (:meth:`find` reads them from the
        store)."""
        try:
            return self._states[alert_id]
        except KeyError:
            raise NotFound(alert_id) from None

    def held_alert(self, alert_id: str) -> AlertState | None:
        """The alert if the desk holds it (:meth:`get`), else None."""
        return self._states.get(alert_id)

    async def find(self, alert_id: str) -> AlertState:
        """Any alert, held or not: one closed long ago is folded from its ledger rows
        (the ledger's ``(alert_id, n)`` index). NotFound if the ledger has none."""
        state = self._states.get(alert_id)
        if state is not None:
            return state
        steps = await self.ledger.history(alert_id)
        if not steps:
            raise NotFound(alert_id)
        return _folded(steps)

    async def states_of(self, alert_ids: Iterable[str]) -> dict[str, AlertState]:
        """The alerts of ``alert_ids`` that exist, held or closed in the store."""
        wanted = list(dict.fromkeys(alert_ids))
        out = {a: s for a in wanted if (s := self._states.get(a)) is not None}
        missing = [a for a in wanted if a not in out]
        if missing:
            out.update((s.alert_id, s) for s in await self.closed.many(missing))
            for a in missing:
                if a not in out:
                    with contextlib.suppress(NotFound):
                        out[a] = await self.find(a)
        return out

    async def _holding(self, alert_id: str) -> AlertState:
        """The alert, taken back into memory if it was dropped (an action on an alert
        closed long ago: a reopening, an audit, a rating), with the indexes a fold of
        its steps gives. NotFound if there is none."""
        state = self._states.get(alert_id)
        if state is not None:
            return state
        steps = await self.ledger.history(alert_id)
        if not steps:
            raise NotFound(alert_id)
        return self._take_back(steps)

    def _take_back(self, steps: list[Transition]) -> AlertState:
        """Hold the alert these steps (its first ones, in order) fold to, with its
        sensors, sightings and stint; no timer is armed (it is closed)."""
        state = _folded(steps)
        alert_id = state.alert_id
        for t in steps:
            if t.action in ("open", "evidence", "reopen"):
                self._seen_at[alert_id] = t.at
                if t.sensor:
                    self._last_seen[(alert_id, t.sensor)] = t.at
                    self._sensors.setdefault(alert_id, {})[t.sensor] = None
            if t.action in HANDOVERS:
                self._stint[alert_id] = t.n
                self._handed[alert_id] = t.on_duty
        self._states[alert_id] = state
        if not state.is_open and self._evicted[state.state] > 0:
            self._evicted[state.state] -= 1
        return state

    async def _reload_before(self, steps: Iterable[Transition]) -> None:
        """Hold again each alert not held whose first step in ``steps`` is not its
        opening (a snapshot's tail, a standby's new rows), as its earlier steps fold."""
        first: dict[str, int] = {}
        for t in steps:
            first.setdefault(t.alert_id, t.n)
        for alert_id, n in first.items():
            if n > 1 and alert_id not in self._states:
                earlier = [t for t in await self.ledger.history(alert_id) if t.n < n]
                if earlier:
                    self._take_back(earlier)

    def sweep(self, now: int) -> int:
        """Drop from memory the alerts closed more than :attr:`keep_closed` before
        ``now`` (the store holds them: :mod:`gridcall.hub.desk.closed_alerts`); how many.
        Called at each tick."""
        if self.keep_closed is None:
            return 0
        cutoff = now - self.keep_closed
        gone = [s for s in self._states.values() if not s.is_open
                and s.closed_at is not None and s.closed_at < cutoff]
        for state in gone:
            alert_id = state.alert_id
            del self._states[alert_id]
            for sensor in self._sensors.pop(alert_id, ()):
                self._last_seen.pop((alert_id, sensor), None)
            self._seen_at.pop(alert_id, None)
            self._stint.pop(alert_id, None)
            self._handed.pop(alert_id, None)
            self.counters.overdue_at_top.discard(alert_id)
            key = self.policy.group(state.alert.matter, state.place[-1], state.alert.agent)
            if self._latest.get(key) == alert_id:
                del self._latest[key]
            self._evicted[state.state] += 1
        if gone:  # their reminders' keys too: a closed alert is reminded of nothing, and
            # a reopening starts a stint of its own (the log keeps every reminder sent)
            ids = {s.alert_id for s in gone}
            self._reminded = {k for k in self._reminded if k[0] not in ids}
        return len(gone)

    def alert_counts(self) -> Counter[str]:
        """How many alerts are in each state, closed ones the desk does not hold too."""
        counts: Counter[str] = Counter(s.state for s in self._states.values())
        counts.update(self._evicted)
        return counts

    async def listing(self, *, unit: str | None = None, tier: Tier | None = None,
                      state: State | Iterable[State] | None = None, open_only: bool = False,
                      opened_before: int | None = None, closed_since: int | None = None,
                      audit: str | None = None, offset: int = 0, limit: int | None = None
                      ) -> tuple[int, list[AlertState]]:
        """:meth:`alerts` over every alert, closed ones the desk does not hold too (read
        from the store), oldest opening first: how many match, and those from
        ``offset`` (at most ``limit``). ``opened_before``, ``closed_since``: only alerts
        opened before it, and not closed before it (open, or closed at or after it);
        ``audit``: whose latest closing's audit is this."""
        states = {state} if isinstance(state, str) else (set(state) if state else None)
        stored: list[tuple[int, str]] = []
        closed_states = None if states is None else states - lifecycle.OPEN
        if not open_only and (closed_states is None or closed_states):
            where = self.config.units.get(unit) if unit is not None else None
            prefix = where.path if where is not None else ()
            stored = await self.closed.keys(prefix=prefix, tier=tier, states=closed_states,
                                            closed_since=closed_since, audit=audit)
        # the held alerts after the store's answer, with no await between: an alert the
        # desk dropped or took back meanwhile is counted once, as it stands
        held = [s for s in self.alerts(unit=unit, tier=tier, state=states,
                                       open_only=open_only)
                if (opened_before is None or s.opened_at < opened_before)
                and (closed_since is None or s.closed_at is None
                     or s.closed_at >= closed_since)
                and (audit is None or s.audit == audit)]
        keys = [(s.opened_at, _number(s.alert_id)) for s in held]
        mine = {s.alert_id: s for s in held}
        keys += [(at, _number(a)) for at, a in stored if a not in self._states
                 and (opened_before is None or at < opened_before)]
        keys.sort()
        page = keys[offset:] if limit is None else keys[offset:offset + limit]
        found = {a: mine[a] for _, (_, a) in page if a in mine}
        found.update(await self.states_of(a for _, (_, a) in page if a not in found))
        return len(keys), [found[a] for _, (_, a) in page if a in found]

    def alerts(self, *, unit: str | None = None, tier: Tier | None = None,
               state: State | Iterable[State] | None = None,
               open_only: bool = False) -> list[AlertState]:
        """The alerts the desk holds (oldest first: every open one, those closed within
        :attr:`keep_closed`) in ``unit``'s subtree, of ``tier``, in ``state``;
        :meth:`listing` for every alert."""
        prefix: tuple[str, ...] = ()
        if unit is not None:
            if unit not in self.config.units:
                raise UnknownUnit(unit)
            prefix = self.config.units[unit].path
        states = {state} if isinstance(state, str) else (set(state) if state else None)
        return [s for s in self._states.values()
                if s.place[:len(prefix)] == prefix
                and (tier is None or s.tier == tier)
                and (states is None or s.state in states)
                and (not open_only or s.is_open)]

    async def history(self, alert_id: str) -> list[Transition]:
        steps = await self.ledger.history(alert_id)
        if not steps:
            raise NotFound(alert_id)
        return steps

    async def transitions(self, *, since: int | None = None,
                          until: int | None = None) -> list[Transition]:
        return await self.ledger.all(since=since, until=until)

    async def transitions_of(self, states: Iterable[AlertState], *,
                             until: int | None = None) -> list[Transition]:
        """The steps of these alerts by time (``at < until`` if given)."""
        return await self.ledger.of_alerts((s.alert_id for s in states), until=until)

    def sensors_of(self, alert_id: str) -> tuple[str, ...]:
        """The sensors whose anomalies opened the alert or joined it, first seen first."""
        return tuple(self._sensors.get(alert_id, ()))

    def next_deadline(self) -> int | None:
        """The earliest deadline an open alert waits on, or end of a silence (stale
        entries included: a timer may wake for nothing, never too late)."""
        times = [t for t in (self._timers.next(), self.silences.next_end(),
                             self._reminder_timers.next(), self._arrival_timers.next(),
                             self.arrival_reminders.next())
                 if t is not None]
        return min(times, default=None)

    def target_of(self, state: AlertState) -> Target:
        """What silences are matched against for an alert: its first anomaly's agent and
        sensor, its grid and matter."""
        a = state.alert
        return Target(agent=a.agent, sensor=a.sensor, grid=state.place[-1], matter=a.matter,
                      place=state.place)

    def defer(self, alert_id: str, at: int) -> int:
        """A deadline ``at`` of an alert the desk holds moved past the silences of its
        scope (:func:`gridcall.hub.desk.silence.defer`); ``at`` for one it does not hold
        (the indicators take :meth:`deferral`)."""
        state = self._states.get(alert_id)
        return at if state is None else self.silences.defer(self.target_of(state), at)

    def deferral(self, transitions: Iterable[Transition]) -> Callable[[str, int], int]:
        """:meth:`defer` for the alerts of ``transitions`` too, held or not (a closed
        alert the desk dropped is matched by its open step, among them): what the
        indicators over these steps judge deadlines with."""
        targets: dict[str, Target] = {}
        for t in transitions:
            if t.action == "open" and t.alert is not None and t.alert_id not in self._states:
                place = tuple(t.alert.place) or tuple(t.unit_path)
                targets[t.alert_id] = Target(agent=t.alert.agent, sensor=t.alert.sensor,
                                             grid=place[-1], matter=t.alert.matter,
                                             place=place)

        def defer_(alert_id: str, at: int) -> int:
            state = self._states.get(alert_id)
            target = self.target_of(state) if state is not None else targets.get(alert_id)
            return at if target is None else self.silences.defer(target, at)
        return defer_

    # ------------------------------------------------------------------ writing

    async def _commit(self, steps: list[Transition]) -> list[Change]:
        """Write ``steps`` (built against the current states) in one ledger transaction,
        then index them and tell the hooks. They are folded first, so a step that does
        not follow writes nothing."""
        if not steps:
            return []
        steps = [self._addressed(self._planned(t)) for t in steps]
        folded: list[tuple[AlertState | None, AlertState]] = []
        current: dict[str, AlertState] = {}
        for t in steps:
            prev = current.get(t.alert_id, self._states.get(t.alert_id))
            current[t.alert_id] = apply(prev, t)
            folded.append((prev, current[t.alert_id]))
        # an alert handed over at tier B or A: the plan's departments, after its last
        # step here, in the same transaction (a deadline's escalations dispatch at their
        # own instants: _due_steps)
        for alert_id in dict.fromkeys(t.alert_id for t in steps if plans.calls_in(t)):
            sent = self._plan_dispatch(current[alert_id])
            if sent is not None:
                prev = current[alert_id]
                current[alert_id] = apply(prev, sent)
                folded.append((prev, current[alert_id]))
                steps.append(sent)
                self.counters.plan_dispatches += 1
        links = self._links([state for _, state in folded])
        await self.ledger.append(*steps, also=_together(
            self.incident_ledger.writer(links) if links else None,
            self.closed.writer(state for _, state in folded)))
        for _, state in folded:
            self._absorb(state)
        for link in links:
            self.incidents.absorb(link)
            self.counters.incidents_opened += link.action == "open"
            self.counters.incident_joins += link.action == "join"
        changes: list[Change] = []
        for prev, state in folded:
            t = state.last
            units = (t.unit,) if prev is None or prev.unit == t.unit else (t.unit, prev.unit)
            if t.action == "request_close":  # the unit that must approve it hears of it
                units = (audits.approver_of(self.config.matters.closure, state),)
            changes.append(Change(state, t, units, self.incidents.of(state.alert_id)))
        if self._batch is not None:
            self._batch.extend(changes)
        await self._run_hooks(changes)
        return changes

    async def _run_hooks(self, changes: Iterable[Change], what: str = "") -> None:
        """Every hook on every change, in order; a hook that fails is counted and
        logged, and the others still run (the steps are already committed)."""
        for change in changes:
            for hook in self._hooks:
                try:
                    await hook(change)
                except Exception:
                    self.counters.hook_errors += 1
                    log.exception("desk: hook %r failed on %s%s step %d", hook, what,
                                  change.transition.alert_id, change.transition.n)

    def _planned(self, t: Transition) -> Transition:
        """An open step with its matter's plan on the alert (:mod:`gridcall.hub.desk.plans`)."""
        if t.action != "open" or t.alert is None:
            return t
        matter = self.policy.matter(t.alert.matter)
        return plans.planned(t, matter.plan if matter is not None else None)

    def _plan_dispatch(self, state: AlertState) -> Transition | None:
        """The hub's dispatch of the plan's departments due after a hand-over left
        ``state`` (at tier B or A), or None."""
        if state.tier not in plans.AUTO_TIERS:
            return None
        matter = self.policy.matter(state.alert.matter)
        if matter is None or not matter.plan.dispatch:
            return None
        deps = self.config.departments
        due = plans.due_departments(
            state, matter.plan, tags=self.site_tags(state),
            in_area=lambda d: d in deps and deps[d].in_area(state.place))
        at = state.last.at
        return plans.auto_dispatch(
            state, due, self.whistles(state, (d.department for d in due), at)) if due else None

    def site_tags(self, state: AlertState) -> tuple[str, ...]:
        """The site tags of the alert's sensor and grid (what a plan's conditions test)."""
        sensor = self.config.sensors.get(state.alert.sensor)
        grid = self.config.units.get(state.place[-1]) if state.place else None
        return tuple(dict.fromkeys((*(sensor.tags if sensor else ()),
                                    *(grid.tags if grid else ()))))

    def _addressed(self, t: Transition) -> Transition:
        """A step that hands the alert to a unit, stamped with the person on duty there
        (roster.yaml; :mod:`gridcall.hub.desk.duty`)."""
        if t.action not in HANDOVERS or t.on_duty:
            return t
        stretch = duty.on_duty(self.config.duty, t.unit, t.at)
        return t if stretch is None else replace(t, on_duty=stretch.person.id)

    # ------------------------------------------------------------------ incidents

    def member(self, state: AlertState) -> Member:
        """The alert as the incident rules see it."""
        return Member(alert_id=state.alert_id, matter=state.alert.matter,
                      grid=state.place[-1], unit=state.unit,
                      sensors=self.sensors_of(state.alert_id) or (state.alert.sensor,),
                      last_seen=self._seen_at.get(state.alert_id, state.last.at),
                      open=state.is_open)

    def _links(self, states: list[AlertState]) -> list[IncidentStep]:
        """The incident steps the alerts that open or reopen in ``states`` (about to be
        written) make: written in the same transaction as them, so an alert is never
        without the link its opening made."""
        rules = self.config.matters.incidents
        new = [s for s in states if s.last.action in ("open", "reopen")
               and rules.makes_incidents(s.alert.matter)]
        if not new:
            return []
        book = self.incidents.copy() if len(new) > 1 else self.incidents
        window = ns(rules.window)
        links: list[IncidentStep] = []
        for state in new:
            # the matter's open alerts only: the history grows without bound, the alerts
            # open at once do not, and other matters never join
            matter = state.alert.matter
            current = {a: self._states[a]
                       for a in dict.fromkeys(self._open_of.get(matter, {}).values())}
            current.update((s.alert_id, s) for s in states if s.alert.matter == matter)
            since = state.last.at - window  # seen before that: too old to join (decide)
            others = (self.member(s) for s in current.values()
                      if s.is_open and s.alert.matter == state.alert.matter
                      and self._seen_at.get(s.alert_id, s.last.at) >= since)
            link = decide(self.config, rules, self._neighbours, book, self.member(state),
                          others, state.last.at)
            if link is not None:
                links.append(link)
                if book is not self.incidents:
                    book.absorb(link)
        return links

    def incident_of(self, alert_id: str) -> Incident | None:
        return self.incidents.of(alert_id)

    def incident_id(self, alert_id: str) -> str:
        """The id of the incident the alert is in, "" if none."""
        incident = self.incidents.of(alert_id)
        return "" if incident is None else incident.incident_id

    def incident_list(self, *, unit: str | None = None, open_only: bool = False
                      ) -> list[Incident]:
        """Incidents with an alert the desk holds in ``unit``'s subtree, oldest first;
        ``open_only``: with an alert still open (:meth:`incident_listing`: every alert)."""
        prefix: tuple[str, ...] = ()
        if unit is not None:
            if unit not in self.config.units:
                raise UnknownUnit(unit)
            prefix = self.config.units[unit].path
        out = []
        for incident in self.incidents.all():
            states = [self._states[a] for a in incident.alerts if a in self._states]
            if not any(s.place[:len(prefix)] == prefix for s in states):
                continue
            if open_only and not any(s.is_open for s in states):
                continue
            out.append(incident)
        return out

    async def incident_listing(self, *, unit: str | None = None, open_only: bool = False
                               ) -> list[tuple[Incident, list[AlertState]]]:
        """:meth:`incident_list` over every alert (closed ones read from the store): each
        incident with its alerts as they stand."""
        prefix: tuple[str, ...] = ()
        if unit is not None:
            if unit not in self.config.units:
                raise UnknownUnit(unit)
            prefix = self.config.units[unit].path
        every = list(self.incidents.all())
        known = await self.states_of(a for i in every for a in i.alerts)
        out = []
        for incident in every:
            states = [known[a] for a in incident.alerts if a in known]
            if not any(s.place[:len(prefix)] == prefix for s in states):
                continue
            if open_only and not any(s.is_open for s in states):
                continue
            out.append((incident, states))
        return out

    async def incident_history(self, incident_id: str) -> list[IncidentStep]:
        return await self.incident_ledger.history(incident_id)

    def add_batch_hook(self, hook: BatchHook) -> None:
        """Call ``hook`` once per call of the desk (an event, an action, a tick...) with
        every :class:`Change` it made, in ledger order (none: not called): the notifier
        sends one message per incident from it."""
        self._batch_hooks.append(hook)

    @contextlib.asynccontextmanager
    async def _operation(self) -> AsyncIterator[None]:
        """The desk's lock, gathering the changes made under it for the batch hooks."""
        image: DeskImage | None = None
        async with self._lock:
            self._batch = []
            try:
                yield
            finally:
                batch, self._batch = self._batch, None
                if batch:
                    for hook in self._batch_hooks:
                        try:
                            await hook(batch)
                        except Exception:
                            self.counters.hook_errors += 1
                            log.exception("desk: batch hook %r failed", hook)
            if self.snapshot_every and self._unsnapped >= self.snapshot_every:
                image = await self._snapshot_image()
        if image is not None:  # written with the lock free: the desk goes on meanwhile
            await self._save_snapshot(image)

    def _matter(self, state: AlertState) -> Matter:
        matter = self.policy.matter(state.alert.matter)
        if matter is None:
            raise BadAction(f"{state.alert_id} is of matter {state.alert.matter!r}, which "
                            "is no longer in the catalog (matters.yaml)")
        return matter

    @staticmethod
    def _escalate(state: AlertState, decision: Decision, at: int, *, actor: str,
                  note: str) -> Transition:
        where = decision.route
        return step(state, "escalate", at=at, actor=actor, note=note, reason=decision.reason,
                    tier=decision.tier, unit=where.unit, unit_level=where.level,
                    unit_path=where.address, deadlines=decision.deadlines)

    @staticmethod
    def _place(state: AlertState) -> tuple[str, str, str, str]:
        p = state.place
        return (p[0], p[1], p[2], p[3])

    def _due_steps(self, taken: list[Timer], now: int) -> list[Transition]:
        """Escalations for the deadlines ``taken`` (those passed by ``now``), each at its
        own instant (a breach of the new deadlines fires again, up to tier A). A timer
        whose alert has moved on since it was armed is stale: skipped."""
        steps: list[Transition] = []
        for timer in taken:
            state = self._states.get(timer.alert_id)
            if state is None or state.n != timer.n:
                continue
            while (due := state.due()) is not None and due[1] <= now:
                held = self.silences.defer(self.target_of(state), due[1])
                if held > now:  # inside a silence: due again when it ends
                    self.counters.deadlines_held += 1
                    self._timers.arm(held, state.alert_id, state.n)
                    break
                at = max(held, state.last.at)
                decision = self.policy.on_breach(self._matter(state), state.tier,
                                                 self._place(state), due[0], at)
                if decision is None:
                    self.counters.overdue_at_top.add(state.alert_id)
                    if state.alert.overdue != due[0]:  # paged once per deadline
                        t = self._overdue(state, due[0], at)
                        steps.append(t)
                        state = apply(state, t)
                    break
                t = self._escalate(state, decision, at, actor=HUB, note="")
                steps.append(t)
                state = apply(state, t)
                sent = self._plan_dispatch(state)  # at its own instant, however late
                if sent is not None:
                    steps.append(sent)
                    state = apply(state, sent)
                    self.counters.plan_dispatches += 1
        return steps

    def duty_leader(self, unit: str, at: int) -> str:
        """The person an overdue alert of ``unit`` pages at ``at``: its duty leader
        (roster.yaml, :func:`gridcall.hub.desk.duty.duty_leader`), or "" when the roster
        names none (the unit's own channels are paged then). The one place the desk asks
        who leads a unit's duty."""
        leader = duty.duty_leader(self.config.duty, unit, at)
        return leader.id if leader is not None else ""

    def _overdue(self, state: AlertState, deadline: str, at: int) -> Transition:
        """The step that says ``deadline`` passed where ``state`` can go no higher: shown
        as overdue on the alert (its wire ``overdue``), and the unit's duty leader paged
        (the notifier sends it to them, else to the unit's channels)."""
        leader = self.duty_leader(state.unit, at)
        where = f"{state.unit_level} {state.unit}"
        t = step(state, "evidence", at=at,
                 reason=f"{OVERDUE}{deadline} deadline passed at {where}, nowhere higher "
                        "to go",
                 note=f"paging {leader}, duty leader of {where}" if leader
                 else f"paging {where} (roster.yaml names no duty leader)")
        self.counters.overdue_pages += 1
        return replace(t, on_duty=leader)

    async def _escalate_due(self, now: int) -> list[Change]:
        taken = self._timers.take_due(now)
        try:
            changes = await self._commit(self._due_steps(taken, now))
        except BaseException:
            self._timers.put_back(taken)  # nothing was written: the timers stay armed
            raise
        self.counters.escalations_deadline += sum(
            c.transition.action == "escalate" for c in changes)
        return changes

    async def tick(self, now: int) -> list[Change]:
        """Escalate every alert whose deadline passed by ``now`` (one level per breach),
        then send the reminders due by ``now``."""
        async with self._operation():
            await self._expire_silences(now)
            changes = await self._deadlines_due(now)
            await self._remind_due(now)
            await self.arrival_reminders.fire(now, self._states.get)
            self.sweep(now)
            return changes

    async def _fire(self, now: int) -> None:
        """Silences that ended, deadlines and reminders first: whatever happens at
        ``now`` sees the alerts and silences as they stand."""
        await self._expire_silences(now)
        await self._deadlines_due(now)
        await self._remind_due(now)
        await self.arrival_reminders.fire(now, self._states.get)

    # ------------------------------------------------------------------ departments

    def whistles(self, state: AlertState, departments: Iterable[str], at: int
                 ) -> tuple[Whistled, ...]:
        """The departments a dispatch at ``at`` calls (吹哨): those named whose call on
        the alert is not under way, each with its report-in and promised-arrival
        deadlines (topology.yaml) and its person on duty then (roster.yaml). Dispatches
        by the plans of matters call through here too."""
        out: list[Whistled] = []
        for d in dict.fromkeys(departments):
            dep = self.config.departments.get(d)
            call = whistle.find(state.dept_calls, d)
            if dep is None or (call is not None and call.active):
                continue
            stretch = duty.on_duty(self.config.duty, d, at)
            out.append(Whistled(department=d, report_by=at + ns(dep.report_in or dep.arrival),
                                arrive_by=at + ns(dep.arrival),
                                on_duty=stretch.person.id if stretch else ""))
        return tuple(out)

    def department_alerts(self, department: str, *, open_only: bool = False,
                          called_only: bool = True) -> list[AlertState]:
        """Alerts the desk holds in the department's area, oldest first; ``called_only``:
        only those it was whistled to (:meth:`department_listing`: every alert)."""
        dep = self.config.departments.get(department)
        if dep is None:
            raise UnknownDepartment(department)
        return [s for s in self._states.values() if dep.in_area(s.place)
                and (not open_only or s.is_open)
                and (not called_only or whistle.find(s.dept_calls, department) is not None)]

    async def department_listing(self, department: str, *, open_only: bool = False,
                                 called_only: bool = True) -> list[AlertState]:
        """:meth:`department_alerts` over every alert, closed ones read from the store."""
        dep = self.config.departments.get(department)
        if dep is None:
            raise UnknownDepartment(department)
        found: dict[str, AlertState] = {}
        for town in dep.towns or (None,):
            _, got = await self.listing(unit=town, open_only=open_only)
            found.update((s.alert_id, s) for s in got)
        return sorted((s for s in found.values() if dep.in_area(s.place)
                       and (not called_only
                            or whistle.find(s.dept_calls, department) is not None)),
                      key=_order)

    async def department_act(self, alert_id: str, action: Action, department: str, *,
                             now: int, note: str = "", person: str = "") -> Change:
        """A department's own step on an alert it was whistled to: ``report_in`` (报到),
        ``dept_arrive``, ``dept_dispose``, taken by ``person`` (a person of the
        department in roster.yaml). Refusals raise (NotFound, UnknownDepartment,
        OutsideArea, BadAction, IllegalTransition: not whistled, or out of order) and
        write nothing; supervisions and deadlines due by ``now`` fire first."""
        if action not in whistle.BY_DEPARTMENT:
            raise BadAction(f"{action} is not a department's step (report_in, dept_arrive, "
                            "dept_dispose)")
        dep = self.config.departments.get(department)
        if dep is None:
            self.counters.refused += 1
            raise UnknownDepartment(department)
        who = self.config.duty.person(person) if person else None
        if person and who is not None and who.unit != department:
            self.counters.refused += 1
            raise BadAction(f"{person} is a person of {who.unit}, not of {department} "
                            "(roster.yaml)")
        async with self._operation():
            await self._fire(now)
            state = await self._holding(alert_id)
            try:
                if not dep.in_area(state.place):
                    raise OutsideArea(department, dep.towns, state)
                t = step(state, action, at=max(now, state.last.at), actor=department,
                         note=note, department=department)
            except (OutsideArea, IllegalTransition):
                self.counters.refused += 1
                raise
            if person:
                t = replace(t, person=person, person_unit=department)
            (change,) = await self._commit([t])
            self.counters.department_steps += 1
            return change

    async def _supervise_due(self, now: int) -> list[Change]:
        """A ``supervise`` step (督办) for each whistled department whose promised arrival
        passed by ``now`` while the alert was open and it had not arrived: at that
        instant (or just after the alert's latest step), sent to the district command
        centre's person on duty (``on_duty``) and to the department."""
        taken = self._arrival_timers.take_due(now)
        steps: list[Transition] = []
        current: dict[str, AlertState] = {}
        district = self.config.district
        for timer in taken:
            state = current.get(timer.alert_id, self._states.get(timer.alert_id))
            if state is None or not state.is_open:
                continue
            for call in whistle.due_supervision(state.dept_calls, now):
                at = max(call.arrive_by, state.last.at)
                stretch = duty.on_duty(self.config.duty, district.id, at)
                t = step(state, "supervise", at=at, department=call.department,
                         reason=f"督办: {call.department} promised to arrive by "
                                f"{utc_text(call.arrive_by)} and had not; supervised by "
                                f"{district.level} {district.id}",
                         note=f"{call.department} {call.stage.replace('_', ' ')}")
                t = replace(t, on_duty=stretch.person.id if stretch else "")
                steps.append(t)
                state = current[state.alert_id] = apply(state, t)
            current.setdefault(state.alert_id, state)
        try:
            changes = await self._commit(steps)
        except BaseException:
            self._arrival_timers.put_back(taken)
            raise
        for state in current.values():  # one timer per alert after a restart: the next
            if (due := whistle.next_arrival(state.dept_calls)) is not None:
                self._arrival_timers.arm(due, state.alert_id, 0)
        self.counters.supervisions += len(changes)
        return changes

    async def _deadlines_due(self, now: int) -> list[Change]:
        """Escalations and supervisions due by ``now``, in time order: the ledger's steps
        never go back in time across alerts (snapshots rely on it)."""
        changes: list[Change] = []
        while (first := self._arrival_timers.next()) is not None and first <= now:
            changes += await self._escalate_due(first)
            changes += await self._supervise_due(first)
        changes += await self._escalate_due(now)
        return changes

    # ------------------------------------------------------------------ reminders

    def _arm_reminders(self, state: AlertState) -> None:
        """A hand-over starts a stint: arm the reminders of the unit's escalation policy
        (roster.yaml) that fall before its response deadline."""
        n = state.n
        self._stint[state.alert_id] = n
        self._handed[state.alert_id] = state.last.on_duty
        for at, index in schedule(self.config.duty, state):
            if (state.alert_id, n, index) not in self._reminded:
                self._reminder_timers.arm(at, state.alert_id, n, index)

    async def _remind_due(self, now: int) -> None:
        """Each reminder due by ``now`` whose stint is still current and unanswered:
        logged (at its own instant, or the end of a silence that holds the alert), then
        handed to the reminder hooks. Stale ones are dropped."""
        taken = self._reminder_timers.take_due(now)
        for i, timer in enumerate(taken):
            state = self._states.get(timer.alert_id)
            key = (timer.alert_id, timer.n, timer.which)
            if state is None or key in self._reminded or not still_due(
                    state, timer.n, self._stint.get(timer.alert_id, -1)):
                continue
            held = self.defer(timer.alert_id, timer.deadline)
            if held > now:  # inside a silence: due when it ends
                self._reminder_timers.arm(held, timer.alert_id, timer.n, timer.which)
                continue
            reminder = remind(self.config.duty, state, timer.n, timer.which, held)
            try:
                await self.reminder_log.append(reminder)
            except BaseException:
                self._reminder_timers.put_back(taken[i:])  # not written: armed again
                raise
            self._reminded.add(key)
            self.counters.reminders += 1
            self.counters.reminders_to_unit += not reminder.person
            for hook in self._reminder_hooks:
                try:
                    await hook(ReminderChange(reminder, state))
                except Exception:
                    self.counters.hook_errors += 1
                    log.exception("desk: reminder hook %r failed on %s reminder %d",
                                  hook, timer.alert_id, timer.which)

    def handed_to(self, state: AlertState) -> str:
        """The person on duty the alert's current stint was handed to ("" if nobody)."""
        return self._handed.get(state.alert_id, "")

    async def reminders_of(self, alert_id: str) -> list[Reminder]:
        """The reminders sent for the alert, first first."""
        await self.find(alert_id)
        return await self.reminder_log.of_alert(alert_id)

    async def arrival_reminders_of(self, alert_id: str) -> list[ArrivalReminder]:
        """The reminders sent to departments on the alert before their promised
        arrival, first first."""
        await self.find(alert_id)
        return await self.arrival_reminders.of_alert(alert_id)

    # ------------------------------------------------------------------ events

    async def on_event(self, event: AnomalyEvent, now: int, *, matter: str | None = None,
                       note: str | None = None, grids: Iterable[str] = ()) -> EventOutcome:
        """An anomaly event from an agent, at ``now`` on the desk's clock. A sensor the
        config does not know raises :class:`~gridcall.hub.desk.policy.UnknownSensor` (nothing
        written).

        ``matter`` (a catalog code) and ``note`` are for inputs the hub makes itself from
        what it sees (an edge agent that went offline: ``EDGE-OFFLINE``): the matter then
        does not come from the catalog's triggers, and the note replaces the generic
        "kind severity on sensor" in the ledger; ``grids`` lists every grid an alert it
        opens concerns (an outage: each grid the agent serves). Grouping, tiers,
        deadlines and escalation are those of any other anomaly."""
        sensor = self.policy.sensor(event)
        chosen: Matter | None = None
        if matter is not None:
            chosen = self.policy.matter(matter)
            if chosen is None:
                raise BadAction(f"matter {matter!r} is not in the catalog (matters.yaml)")
        async with self._operation():
            key_ev = (event.agent, event.seq)
            # above the agent's highest event folded: new; else the ledger's (ev_agent,
            # ev_seq) index says (a redelivery), not a dict in memory as long as the ledger
            if event.seq <= self._event_marks.get(event.agent, -1) and (
                    joined := await self.ledger.has_event(*key_ev)) is not None:
                self.counters.duplicates += 1
                return EventOutcome(await self.find(joined), duplicate=True)
            if key_ev in self._muted:
                self.counters.duplicates += 1
                return EventOutcome(None, duplicate=True, silenced=self._muted[key_ev])
            if key_ev in self._held_keys:
                self.counters.duplicates += 1
                return EventOutcome(None, duplicate=True)
            await self._fire(now)
            self.counters.events += 1
            if event.phase != "start":
                self.counters.ends += 1
                return EventOutcome(None)
            matter_ = chosen or self.policy.matter_for(sensor.kind, event.kind)
            held = self.silences.holding(
                Target(agent=event.agent, sensor=sensor.id, grid=sensor.grid,
                       matter=matter_.code, place=sensor.path), now)
            if held is not None:
                await self._mute(held, event, matter_.code, now, note)
                return EventOutcome(None, silenced=held.silence_id)
            why = None if chosen is not None else self.inhibitor.holds(
                agent=event.agent, matter=matter_.code, anomaly_kind=event.kind)
            if why is not None:
                return EventOutcome(None, held=self._hold(event, matter_.code, now, why))
            key = self.policy.group(matter_.code, sensor.grid, event.agent)
            spread: dict[str, int] = {}
            if self.policy.spreads(matter_.code):
                self._spread.add(matter_.code, Sighting(now, sensor.id, sensor.path))
                spread = self._spread.counts(matter_.code, sensor.path[1], now)
            if (open_id := self._open.get(key)) is not None:
                outcome = await self._evidence(self._states[open_id], event, now, spread,
                                               note)
            else:
                latest = self._states.get(self._latest.get(key, ""))
                if latest is not None and latest.closed_at is not None and (
                        now - latest.closed_at <= ns(self.grouping.reopen_window)):
                    outcome = await self._reopen(latest, event, matter_, now, spread, note)
                else:
                    outcome = await self._open_new(event, matter_, now, spread, note,
                                                   tuple(grids))
            if spread:
                await self._spread_to_others(matter_.code, sensor.path[1], outcome, now,
                                             spread)
            return outcome

    # ------------------------------------------------------------------ calls

    async def call(self, call: Call, now: int) -> EventOutcome:
        """A call that no sensor raised (a person's report, a department's system's
        event; :mod:`gridcall.hub.desk.intake`), at ``now`` on the desk's clock: the same
        path as an anomaly's. It opens an alert (:meth:`Policy.on_call` decides its tier,
        route and deadlines), joins the open alert of its matter at the same place as an
        ``evidence`` step (the same grid, or a point within ``grouping.join_radius_m``),
        or reopens the latest alert of its matter in the grid if it closed within the
        reopen window. A call already in the ledger (its ``(source, seq)``) is a
        duplicate: nothing written, the alert it went to answered.

        Unlike an anomaly, a call is never muted by a silence nor held back by
        inhibition (a silence keeps a sensor's noise out; a person or a system calling
        is no noise), and every call is written (no evidence gap). BadAction (nothing
        written) if its matter is not in the catalog or its grid is not a grid."""
        matter = self.policy.matter(call.matter)
        if matter is None:
            raise BadAction(f"matter {call.matter!r} is not in the catalog (matters.yaml)")
        grid = self.config.units.get(call.grid)
        if grid is None or grid.level != "grid":
            raise BadAction(f"{call.grid!r} is not a grid of the config (topology.yaml)")
        place = (grid.path[0], grid.path[1], grid.path[2], grid.path[3])
        async with self._operation():
            if call.seq <= self._event_marks.get(call.source, -1) and (
                    joined := await self.ledger.has_event(call.source, call.seq)) is not None:
                self.counters.duplicates += 1
                return EventOutcome(await self.find(joined), duplicate=True)
            await self._fire(now)
            self.counters.calls += 1
            actor = call.actor or HUB
            key = self.policy.group(matter.code, grid.id, call.source)
            open_id = self._open.get(key) or self._near(matter.code, call.point)
            if open_id is not None:
                state = self._states[open_id]
                t = step(state, "evidence", at=max(now, state.last.at), actor=actor,
                         evidence=(call.source, call.seq), note=call.note)
                t = self._by(t, call)
                self.counters.evidence += 1
                steps = [t]
                rise = self._rise_to_verdict(apply(state, t), call.severity, grid.tags, now,
                                             {})
                asked = self.policy.on_caller_tier(matter, state.tier, place, call.tier, now)
                if asked is not None and (rise is None or above(asked.tier, rise.tier)):
                    rise = self._escalate(apply(state, t), asked, now, actor=HUB, note="")
                if rise is not None:
                    steps.append(rise)
                    self.counters.tier_raises += 1
                changes = await self._commit(steps)
                return EventOutcome(changes[-1].alert, tuple(c.transition for c in changes))
            latest = self._states.get(self._latest.get(key, ""))
            if latest is not None and latest.closed_at is not None and (
                    now - latest.closed_at <= ns(self.grouping.reopen_window)):
                decision = self.policy.on_reopen(matter, latest.tier, place, now)
                t = self._by(step(latest, "reopen", at=max(now, latest.last.at), actor=actor,
                                  evidence=(call.source, call.seq), reason=decision.reason,
                                  deadlines=decision.deadlines, note=call.note), call)
                self.counters.reopened += 1
                changes = await self._commit([t])  # and the plan's dispatch at B or A
                return EventOutcome(changes[-1].alert, tuple(c.transition for c in changes))
            decision = self.policy.on_call(matter, place, severity=call.severity,
                                           tags=grid.tags, at=now, least=call.tier)
            alert = self.policy.call_alert(call, decision, matter=matter, place=place,
                                           alert_id=f"AL{self._next:06d}", at=now)
            t = self._by(opening(alert, place=place, reason=decision.reason, note=call.note,
                                 actor=actor), call)
            changes = await self._commit([t])  # and the plan's dispatch at B or A
            self.counters.opened += 1
            return EventOutcome(changes[-1].alert, tuple(c.transition for c in changes))

    def _by(self, t: Transition, call: Call) -> Transition:
        """The step with the call's photos and the person who called, if a person did."""
        if call.photos:
            t = replace(t, photos=call.photos)
        if not call.person:
            return t
        who = self.config.duty.person(call.person)
        return replace(t, person=call.person,
                       person_unit=who.unit if who else (call.actor or ""))

    def point_of(self, state: AlertState) -> tuple[float, float] | None:
        """Where an alert is: the point its call gave, or its sensor's; None if neither."""
        a = state.alert
        if len(a.point) == 2:
            return (a.point[0], a.point[1])
        sensor = self.config.sensors.get(a.sensor)
        return sensor.coordinates if sensor is not None else None

    def _near(self, matter: str, point: tuple[float, float] | None) -> str | None:
        """The open alert of ``matter`` nearest to ``point`` within the join radius."""
        radius = self.grouping.join_radius_m
        if point is None or radius <= 0:
            return None
        best: tuple[float, str] | None = None
        for alert_id in self._open_of.get(matter, {}).values():
            where = self.point_of(self._states[alert_id])
            if where is None:
                continue
            d = distance_m(where, point)
            if d <= radius and (best is None or d < best[0]):
                best = (d, alert_id)
        return best[1] if best is not None else None

    async def _spread_to_others(self, matter: str, town: str, outcome: EventOutcome,
                                now: int, spread: dict[str, int]) -> None:
        """Spread is one incident seen in several places: when it lifts the alert the event
        went to, the other open alerts of the matter in the town rise with it (each judged
        by its own severity, site and persistence too), so the first grid's alert is not
        left a tier below the same incident one grid over. Written after the event's own
        steps; a crash in between is made good by the next event of the matter there."""
        here = outcome.alert.alert_id if outcome.alert is not None else None
        steps: list[Transition] = []
        for alert_id in list(self._open_of.get(matter, {}).values()):
            state = self._states[alert_id]
            if alert_id == here or state.place[1] != town:
                continue
            sensor = self.config.sensors.get(state.alert.sensor)
            rise = self._rise_to_verdict(state, state.alert.severity,
                                         sensor.tags if sensor else (), now, spread)
            if rise is not None:
                steps.append(rise)
        if steps:
            await self._commit(steps)
            self.counters.tier_raises += len(steps)

    async def _open_new(self, event: AnomalyEvent, matter: Matter, now: int,
                        spread: dict[str, int], note: str | None = None,
                        grids: tuple[str, ...] = ()) -> EventOutcome:
        sensor = self.config.sensors[event.sensor]
        decision = self.policy.opening(matter, sensor, severity=event.severity, spread=spread,
                                       at=now)
        alert = self.policy.alert(event, decision, matter=matter,
                                  alert_id=f"AL{self._next:06d}", at=now, grids=grids)
        t = opening(alert, place=sensor.path, reason=decision.reason, note=note or "")
        changes = await self._commit([t])  # and the plan's dispatch, at tier B or A
        self.counters.opened += 1
        return EventOutcome(changes[-1].alert, tuple(c.transition for c in changes))

    def _rise(self, state: AlertState, event: AnomalyEvent, now: int,
              spread: dict[str, int]) -> Transition | None:
        """An escalation if the rules now put the alert above its tier."""
        sensor = self.config.sensors[event.sensor]
        return self._rise_to_verdict(state, event.severity, sensor.tags, now, spread)

    def _rise_to_verdict(self, state: AlertState, severity: Severity, tags: Iterable[str],
                         now: int, spread: dict[str, int]) -> Transition | None:
        decision = self.policy.on_evidence(
            self._matter(state), state.tier, self._place(state), severity=severity, tags=tags,
            spread=spread, since=state.since, at=now)
        if decision is None:
            return None
        return self._escalate(state, decision, now, actor=HUB, note="")

    async def _evidence(self, state: AlertState, event: AnomalyEvent, now: int,
                        spread: dict[str, int], note: str | None = None) -> EventOutcome:
        last = self._last_seen.get((state.alert_id, event.sensor))
        gap = ns(self.grouping.evidence_gap)
        rise_probe = self._rise(state, event, now, spread)
        if last is not None and now - last < gap and rise_probe is None:
            self.counters.evidence_suppressed += 1
            return EventOutcome(state, suppressed=True)
        t = step(state, "evidence", at=now, evidence=(event.agent, event.seq),
                 sensor=event.sensor,
                 note=note or f"{event.kind} {event.severity} on {event.sensor}")
        self.counters.evidence += 1
        return await self._commit_with_rise(state, t, event, now, spread)

    async def _reopen(self, state: AlertState, event: AnomalyEvent, matter: Matter, now: int,
                      spread: dict[str, int], note: str | None = None) -> EventOutcome:
        decision = self.policy.on_reopen(matter, state.tier, self._place(state), now)
        t = step(state, "reopen", at=now, evidence=(event.agent, event.seq),
                 sensor=event.sensor, reason=decision.reason, deadlines=decision.deadlines,
                 note=note or f"{event.kind} {event.severity} on {event.sensor}")
        self.counters.reopened += 1
        return await self._commit_with_rise(state, t, event, now, spread)

    async def _commit_with_rise(self, state: AlertState, t: Transition, event: AnomalyEvent,
                                now: int, spread: dict[str, int]) -> EventOutcome:
        """Commit a step that brought new evidence, with the tier raise it earns, if any."""
        steps = [t]
        rise = self._rise(apply(state, t), event, now, spread)
        if rise is not None:
            steps.append(rise)
        changes = await self._commit(steps)
        self.counters.tier_raises += rise is not None
        return EventOutcome(changes[-1].alert, tuple(c.transition for c in changes))

    async def note(self, alert_id: str, note: str, now: int) -> Change | None:
        """A fact the hub learnt about an open alert, written as an ``evidence`` step by
        the hub without an anomaly event (an offline edge agent is back online). It
        closes nothing and reopens nothing: None, writing nothing, if the alert is not
        open by then. Deadlines that passed by ``now`` fire first."""
        async with self._operation():
            await self._fire(now)
            state = await self._holding(alert_id)
            if not state.is_open:
                return None
            (change,) = await self._commit([step(state, "evidence", at=max(now, state.last.at),
                                                 note=note)])
            self.counters.evidence += 1
            return change

    # ------------------------------------------------------------------ silences

    def _absorb_silence(self, step: SilenceStep) -> Silence:
        silence = self.silences.absorb(step)
        if step.evidence is not None:
            self._muted[step.evidence] = step.silence_id
        return silence

    async def _commit_silence(self, step: SilenceStep) -> Silence:
        """Write one silence step, index it, tell the silence hooks."""
        await self.silence_ledger.append(step)
        silence = self._absorb_silence(step)
        for hook in self._silence_hooks:
            try:
                await hook(SilenceChange(silence, step))
            except Exception:
                self.counters.hook_errors += 1
                log.exception("desk: silence hook %r failed on %s step %d", hook,
                              step.silence_id, step.n)
        return silence

    async def _expire_silences(self, now: int) -> None:
        """An ``expire`` step, at its end's instant, for each silence that ended by
        ``now``."""
        for silence in self.silences.due(now):
            await self._commit_silence(SilenceStep(
                silence.silence_id, silence.n + 1, "expire", at=silence.end, actor=HUB,
                note=f"ended as planned; it muted {silence.muted} anomaly event(s)"))
            self.counters.silences_expired += 1

    async def _mute(self, silence: Silence, event: AnomalyEvent, matter: str, now: int,
                    note: str | None) -> None:
        await self._commit_silence(SilenceStep(
            silence.silence_id, silence.n + 1, "mute", at=now, actor=HUB,
            note=note or f"{event.kind} {event.severity} on {event.sensor}",
            evidence=(event.agent, event.seq), sensor=event.sensor, matter=matter))
        self.counters.silenced += 1

    def _hold(self, event: AnomalyEvent, matter: str, now: int, why: str) -> Held:
        held = Held(at=now, agent=event.agent, seq=event.seq, sensor=event.sensor,
                    matter=matter, anomaly_kind=event.kind, why=why)
        self.held.append(held)
        self._held_keys[(event.agent, event.seq)] = None
        if len(self._held_keys) > HELD_KEPT:
            del self._held_keys[next(iter(self._held_keys))]
        self.counters.inhibited += 1
        log.info("desk: %s %s on %s held back: %s", matter, event.kind, event.sensor, why)
        return held

    def silence_list(self, *, unit: str | None = None, now: int | None = None,
                     current: bool = False) -> list[Silence]:
        """Silences set inside ``unit``'s subtree or above it (those that may hold
        there), oldest first; ``current``: only those not ended by ``now``."""
        path: tuple[str, ...] = ()
        if unit is not None:
            if unit not in self.config.units:
                raise UnknownUnit(unit)
            path = self.config.units[unit].path
        out = []
        for s in self.silences.all():
            n = min(len(path), len(s.within))
            if s.within[:n] != path[:n]:
                continue
            if current and (s.ended or (now is not None and s.end <= now)):
                continue
            out.append(s)
        return out

    async def silence_history(self, silence_id: str) -> list[SilenceStep]:
        self.silences.get(silence_id)
        return await self.silence_ledger.history(silence_id)

    async def add_silence(self, scope: Scope, *, start: int, end: int, reason: str,
                          author: str, now: int, person: str = "") -> Silence:
        """Set a silence for ``author`` (a unit id); SilenceRefused (nothing written) if
        the scope is unknown or outside the author's subtree, the times are wrong, or it
        is longer than the author's level may set (``silences`` in matters.yaml)."""
        silence, _ = await self._add_silence(scope, start=start, end=end, reason=reason,
                                             author=author, now=now, person=person,
                                             once=False)
        return silence

    async def add_silence_once(self, scope: Scope, *, start: int, end: int, reason: str,
                               author: str, now: int, person: str = ""
                               ) -> tuple[Silence, bool]:
        """:meth:`add_silence`, unless it repeats a silence not ended (same scope, reason
        and author, start and end each within 60 s: :func:`silence.repeat_of`): then that
        one, and nothing is written. The second value is True if it was added."""
        return await self._add_silence(scope, start=start, end=end, reason=reason,
                                       author=author, now=now, person=person, once=True)

    async def _add_silence(self, scope: Scope, *, start: int, end: int, reason: str,
                           author: str, now: int, person: str, once: bool
                           ) -> tuple[Silence, bool]:
        unit = self.config.units.get(author)
        if unit is None:
            raise UnknownUnit(author)
        async with self._operation():  # the check and the add in one operation
            await self._fire(now)
            silence = draft(self.config, self.config.matters.silences,
                            silence_id=self.silences.next_id(), scope=scope, start=start,
                            end=end, reason=reason, author=unit, now=now, person=person)
            same = repeat_of(self.silences.all(), silence) if once else None
            if same is not None:
                self.counters.silences_repeated += 1
                return same, False
            added = await self._commit_silence(SilenceStep(
                silence.silence_id, 1, "add", at=now, actor=unit.id, note=silence.reason,
                silence=silence, person=person))
            self.counters.silences_added += 1
            return added, True

    async def lift_silence(self, silence_id: str, unit_id: str, *, now: int,
                           note: str = "", person: str = "") -> Silence:
        """End a silence before its end; NoSuchSilence, SilenceRefused (outside the
        unit's subtree), SilenceEnded (lifted or expired already). Deadlines it held
        fall due again at once."""
        unit = self.config.units.get(unit_id)
        if unit is None:
            raise UnknownUnit(unit_id)
        async with self._operation():
            await self._fire(now)
            silence = self.silences.get(silence_id)
            may_lift(silence, unit)
            if silence.ended:
                raise SilenceEnded(f"{silence_id} already ended ({silence.status(now)} at "
                                   f"{silence.ends_at})")
            lifted = await self._commit_silence(SilenceStep(
                silence_id, silence.n + 1, "lift", at=now, actor=unit.id, note=note,
                person=person))
            self.counters.silences_lifted += 1
            for state in self.alerts(open_only=True):
                target = self.target_of(state)
                due = state.due()
                if due is not None and lifted.covers(target):
                    self._timers.arm(self.silences.defer(target, due[1]), state.alert_id,
                                     state.n)
            await self._escalate_due(now)
            return lifted

    # ------------------------------------------------------------------ people

    async def act(self, alert_id: str, action: Action, actor: str, *, now: int,
                  note: str = "", reason: str = "", departments: Iterable[str] = (),
                  person: str = "", photos: Iterable[str] = ()) -> Change:
        """A unit's action on an alert: acknowledge, arrive, resolve, false_alarm,
        escalate (call upward; needs a reason), dispatch (departments; default the
        catalog's), reopen (a closed alert in the unit's area; needs a reason).
        ``person``: who in the unit took it (roster.yaml), written with their unit.
        Refusals raise (NotFound, UnknownUnit, OutsideSubtree, BadAction,
        IllegalTransition) and write nothing. Deadlines that passed by ``now`` fire
        first, so the action meets the alert as it stands.

        Repeats write nothing: a dispatch that adds no department to an alert already
        dispatched raises :class:`Unchanged`; the same call upward by the same unit, with
        the same reason, as the alert's last step is an IllegalTransition."""
        if action in ("open", "evidence", "sample"):
            raise BadAction(f"{action} is the hub's own step, not an action a unit takes")
        if action in whistle.DEPT_ACTIONS:
            raise BadAction(f"{action} is a department's step (Desk.department_act), not "
                            "an action a unit takes")
        if action == "rate":
            raise BadAction("a rating is the reporter's, through their report (Desk.rate)")
        if action in ("request_close", "reject_close", "audit"):
            raise BadAction(f"{action} is taken by closing, Desk.reject_close or Desk.audit")
        if action == "plan_step":
            raise BadAction("a plan step is ticked off with Desk.tick_plan, naming the step")
        unit = self._unit(actor)
        async with self._operation():
            await self._fire(now)
            state = await self._holding(alert_id)
            last = state.last
            if action == "escalate" and plans.by_plan(last):
                # the hub's dispatch that followed a call upward is part of that call:
                # the same call again is still a repeat
                last = (await self.ledger.history(alert_id))[-2]
            try:
                if state.place[:len(unit.path)] != unit.path:
                    raise OutsideSubtree(unit, state)
                t = self._action_step(state, action, unit, now=now, note=note, reason=reason,
                                      departments=tuple(departments), last=last)
                t = self._closing(state, t, unit)
                t = self._by_person(t, person, unit)
                if action == "note":
                    t = self._noted(state, replace(t, photos=tuple(photos)))
            except (OutsideSubtree, BadAction, IllegalTransition):
                self.counters.refused += 1
                raise
            except Unchanged:
                self.counters.repeats += 1
                raise
            change = await self._commit_closing(state, t)
            self.counters.actions += 1
            self.counters.escalations_manual += action == "escalate"
            return change

    async def tick_plan(self, alert_id: str, step_id: str, actor: str, *, now: int,
                        note: str = "", person: str = "") -> Change:
        """Tick off step ``step_id`` of the alert's plan for ``actor`` (a unit id), and
        ``person`` of it: a ``plan_step`` step. Refusals raise and write nothing
        (NotFound, UnknownUnit, OutsideSubtree, :class:`~gridcall.hub.desk.plans.NoSuchStep`,
        IllegalTransition once the alert is closed); a step ticked already raises
        :class:`~gridcall.hub.desk.plans.AlreadyTicked` (a repeat, nothing written)."""
        unit = self._unit(actor)
        async with self._operation():
            await self._fire(now)
            state = await self._holding(alert_id)
            try:
                if state.place[:len(unit.path)] != unit.path:
                    raise OutsideSubtree(unit, state)
                t = plans.tick(state, step_id, at=now, actor=unit.id, note=note)
                if person:
                    who = self.config.duty.person(person)
                    t = replace(t, person=person, person_unit=who.unit if who else unit.id)
            except (OutsideSubtree, plans.NoSuchStep, IllegalTransition):
                self.counters.refused += 1
                raise
            except plans.AlreadyTicked:
                self.counters.repeats += 1
                raise
            (change,) = await self._commit([t])
            self.counters.plan_steps += 1
            return change

    @staticmethod
    def _noted(state: AlertState, t: Transition) -> Transition:
        """A note step, unless it is the alert's last step again (a retried request:
        the same unit, person, text and photos): Unchanged then."""
        if not t.note.strip() and not t.photos:
            raise BadAction(f"a note on {state.alert_id} needs text or a photo")
        last = state.last
        if (last.action, last.actor, last.person, last.note, last.photos) == (
                "note", t.actor, t.person, t.note, t.photos):
            raise Unchanged(state, "the same note is its last step already")
        return t

    async def rate(self, alert_id: str, *, report: str, rating: Rating, now: int,
                   actor: str = HUB, person: str = "", note: str = "") -> Change:
        """A reporter's rating of how their report's alert was handled: a ``rate`` step
        (its ``reason`` names the report) on the closed alert; IllegalTransition while it
        is open. Whether this report was rated already is the caller's to check
        (:mod:`gridcall.hub.desk.reporting`)."""
        async with self._operation():
            await self._fire(now)
            state = await self._holding(alert_id)
            t = step(state, "rate", at=max(now, state.last.at), actor=actor, note=note,
                     reason=f"report {report}")
            t = replace(t, rating=rating, person=person,
                        person_unit=actor if person else "")
            (change,) = await self._commit([t])
            self.counters.ratings += 1
            return change

    def last_seq(self, source: str) -> int:
        """The highest number of ``source``'s events or calls the desk holds (-1: none)."""
        return self._event_marks.get(source, -1)
    def _by_person(self, t: Transition, person: str, unit: Unit) -> Transition:
        """``t`` naming the person who took it and their unit (roster.yaml)."""
        if not person:
            return t
        who = self.config.duty.person(person)
        return replace(t, person=person, person_unit=who.unit if who else unit.id)

    # ------------------------------------------------------------------ closure, audits

    def _closing(self, state: AlertState, t: Transition, unit: Unit) -> Transition:
        """A resolve or false alarm by a unit below the level that approves closing the
        alert's tier becomes a request for it (closure.approval, hub/desk/audits.py); by
        a unit of that level while a close is pending, the approval of it."""
        if t.action not in ("resolve", "false_alarm"):
            return t
        need = audits.approver_needed(self.config.matters.closure, state, unit)
        if need is not None and state.pending:
            raise IllegalTransition(
                state.alert_id, state.state, t.action,
                f"closing a tier-{state.tier} alert needs approval by a {need} or above; "
                f"the {state.pending} requested by {state.pending_by} awaits it")
        if need is not None:
            return step(state, "request_close", at=t.at, actor=unit.id, note=t.note,
                        reason=t.reason or f"needs approval by the {need}",
                        request=t.action)
        if state.pending == t.action and not t.reason:
            return replace(t, reason=f"approved: {t.action} requested by "
                                     f"{state.pending_by}")
        return t

    async def _commit_closing(self, state: AlertState, t: Transition) -> Change:
        """Commit ``t``; a step that closed the alert goes with its audit draw (a
        ``sample`` step in the same transaction when drawn). The step's change."""
        sampled = audits.sample(self.config.matters.audits, apply(state, t))
        changes = await self._commit([t] if sampled is None else [t, sampled])
        self.counters.close_requests += t.action == "request_close"
        self.counters.close_approvals += bool(state.pending) and t.action == state.pending
        self.counters.sampled += sampled is not None
        return changes[-1] if sampled is not None else changes[0]

    def _unit(self, actor: str) -> Unit:
        """The unit acting; an id the config lacks is a refusal (UnknownUnit, counted)."""
        unit = self.config.units.get(actor)
        if unit is None:
            self.counters.refused += 1
            raise UnknownUnit(actor)
        return unit

    async def _acting(self, alert_id: str, actor: str) -> tuple[Unit, AlertState]:
        unit = self._unit(actor)
        state = await self._holding(alert_id)
        if state.place[:len(unit.path)] != unit.path:
            self.counters.refused += 1
            raise OutsideSubtree(unit, state)
        return unit, state

    async def approve_close(self, alert_id: str, actor: str, *, now: int, note: str = "",
                            person: str = "") -> Change:
        """Approve the close pending on the alert: ``actor``'s own resolve or false alarm.
        NotPermitted below the approving level; IllegalTransition if nothing is pending."""
        async with self._operation():
            await self._fire(now)
            unit, state = await self._acting(alert_id, actor)
            try:
                audits.check_approver(self.config.matters.closure, state, unit)
                if not state.pending:
                    raise IllegalTransition(alert_id, state.state, "approve",
                                            "no close awaits approval")
                action: Action = "resolve" if state.pending == "resolve" else "false_alarm"
                t = step(state, action, at=max(now, state.last.at), actor=unit.id, note=note,
                         reason=f"approved: {action} requested by {state.pending_by}")
            except (NotPermitted, IllegalTransition):
                self.counters.refused += 1
                raise
            change = await self._commit_closing(state, self._by_person(t, person, unit))
            self.counters.actions += 1
            return change

    async def reject_close(self, alert_id: str, actor: str, *, now: int, reason: str,
                           note: str = "", person: str = "") -> Change:
        """Reject the close pending on the alert, with a reason: it stays open, its
        deadlines run again, moved on by the time the request waited
        (:func:`gridcall.hub.desk.audits.resumed`). NotPermitted below the approving
        level."""
        async with self._operation():
            await self._fire(now)
            unit, state = await self._acting(alert_id, actor)
            try:
                audits.check_approver(self.config.matters.closure, state, unit)
                if not reason.strip():
                    raise BadAction(f"rejecting the close of {alert_id} needs a reason")
                at = max(now, state.last.at)
                t = step(state, "reject_close", at=at, actor=unit.id, note=note,
                         reason=reason,
                         deadlines=audits.resumed(state.deadlines, state.pending_at, at))
            except (NotPermitted, BadAction, IllegalTransition):
                self.counters.refused += 1
                raise
            (change,) = await self._commit([self._by_person(t, person, unit)])
            self.counters.actions += 1
            self.counters.close_rejections += 1
            return change

    async def audit(self, alert_id: str, actor: str, verdict: str, *, now: int,
                    note: str = "", person: str = "") -> Change:
        """An auditor's verdict (``pass`` or ``fail``) on the alert's latest closing.
        A fail needs a note and reopens the alert with it as the reason (the auditor's
        ``reopen``, new deadlines at its tier): the change returned is the reopening."""
        if verdict not in ("pass", "fail"):
            raise BadAction(f"an audit's verdict is pass or fail, not {verdict!r}")
        async with self._operation():
            await self._fire(now)
            unit, state = await self._acting(alert_id, actor)
            at = max(now, state.last.at)
            try:
                audits.check_auditor(self.config.matters.audits or audits.DEFAULT_AUDITS,
                                     unit)
                if verdict == "fail" and not note.strip():
                    raise BadAction(f"failing the audit of {alert_id} needs a note: the "
                                    "reason it is reopened with")
                t = self._by_person(step(state, "audit", at=at, actor=unit.id, note=note,
                                         verdict=verdict), person, unit)
                steps = [t]
                if verdict == "fail":
                    audited = apply(state, t)
                    decision = self.policy.on_reopen(self._matter(state), state.tier,
                                                     self._place(state), at)
                    steps.append(self._by_person(step(
                        audited, "reopen", at=at, actor=unit.id, note=note,
                        reason=f"audit failed: {note}", deadlines=decision.deadlines),
                        person, unit))
            except (NotPermitted, BadAction, IllegalTransition):
                self.counters.refused += 1
                raise
            changes = await self._commit(steps)
            self.counters.actions += 1
            self.counters.audits_passed += verdict == "pass"
            self.counters.audits_failed += verdict == "fail"
            self.counters.reopened += verdict == "fail"
            return changes[len(steps) - 1]  # a plan's dispatch after a reopening follows

    def audit_queue(self, *, unit: str | None = None, status: str = "sampled"
                    ) -> list[AlertState]:
        """Closed alerts in ``unit``'s subtree whose latest closing's audit is ``status``
        (``sampled``: waiting for an auditor; ``pass``; ``fail`` is never seen here,
        since a fail reopens), oldest closing first, among the alerts the desk holds
        (:meth:`audit_listing`: every alert)."""
        return audits.queue(self.alerts(unit=unit), status)

    async def audit_listing(self, *, unit: str | None = None, status: str = "sampled"
                            ) -> list[AlertState]:
        """:meth:`audit_queue` over every alert, closed ones read from the store."""
        _, found = await self.listing(unit=unit, audit=status)
        return audits.queue(found, status)

    async def audit_count(self, *, unit: str | None = None, status: str = "pass") -> int:
        """How many alerts :meth:`audit_listing` lists, none of them decoded."""
        count, _ = await self.listing(unit=unit, audit=status, state=lifecycle.CLOSED,
                                      limit=0)
        return count

    def pending_approvals(self, *, unit: str | None = None) -> list[AlertState]:
        """Alerts in ``unit``'s subtree with a close awaiting approval."""
        return audits.pending(self.alerts(unit=unit, open_only=True))

    def _action_step(self, state: AlertState, action: Action, unit: Unit, *, now: int,
                     note: str, reason: str, departments: tuple[str, ...],
                     last: Transition) -> Transition:
        if action == "escalate":
            lifecycle.check(state, action)
            if (last.action == "escalate" and last.actor == unit.id
                    and (last.reason, last.note) == ((reason or note), note)):
                raise IllegalTransition(
                    state.alert_id, state.state, action,
                    f"{unit.id} already called it upward for this reason; the "
                    f"{last.unit_level} {last.unit} holds it now")
            if not (reason or note).strip():
                raise BadAction(f"calling {state.alert_id} upward needs a reason")
            decision = self.policy.on_call_upward(self._matter(state), state.tier,
                                                  self._place(state), now, reason or note)
            return self._escalate(state, decision, now, actor=unit.id, note=note)
        if action == "reopen":
            # a unit whose area holds a closed alert finds the matter is not disposed of
            # after all: the alert opens again with its tier and unit and new deadlines,
            # as when the anomaly recurs; the reason is required and written
            lifecycle.check(state, action)
            why = (reason or note).strip()
            if not why:
                raise BadAction(f"reopening {state.alert_id} needs a reason")
            decision = self.policy.on_reopen(self._matter(state), state.tier,
                                             self._place(state), now)
            return step(state, "reopen", at=max(now, state.last.at), actor=unit.id,
                        reason=why, deadlines=decision.deadlines, note=note)
        if action == "dispatch":
            unknown = [d for d in departments if d not in self.config.departments]
            if unknown:
                raise BadAction(f"unknown department(s) {unknown}; known: "
                                f"{sorted(self.config.departments)}")
            lifecycle.check(state, action, actor_level=unit.level)
            deps = self.config.departments
            outside = [d for d in departments if not deps[d].in_area(state.place)]
            if outside:
                raise BadAction(f"{state.alert_id} is in {'/'.join(state.place)}, outside the "
                                "area of " + "; ".join(
                                    f"{d} (acts in {', '.join(deps[d].towns)})"
                                    for d in outside))
            chosen = departments or tuple(  # the catalog's, those whose area it is in
                d for d in self.policy.departments(self._matter(state))
                if d in deps and deps[d].in_area(state.place))
            whistled = self.whistles(state, chosen, now)
            if state.state != "opened" and not whistled:
                raise Unchanged(state, f"{', '.join(chosen) or 'no department'} already "
                                "dispatched")
            return step(state, "dispatch", at=now, actor=unit.id, note=note, reason=reason,
                        actor_level=unit.level, departments=chosen, whistled=whistled)
        return step(state, action, at=now, actor=unit.id, note=note, reason=reason)
