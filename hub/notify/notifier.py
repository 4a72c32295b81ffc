"""Push alerts to the people of a unit through the channels ``notify.yaml`` gives it.

:class:`Notifier` is the hub's notification runner: ``notify(alert, units)`` returns at
once and queues one delivery per channel of each unit; deliveries run in the background
through the channel registered for each ``type`` (:mod:`gridcall.hub.notify.channels`:
webhook with httpx, e-mail and ~100 other services with apprise), each attempt in a
worker thread so the event loop never blocks on a slow SMTP server.

Failures never reach the caller. A failed attempt is logged (with the channel's reason)
and retried after a backoff that doubles up to ``retry.max_backoff``; after
``retry.attempts`` it is given up, logged as an error and counted. Whether to retry is the
channel's ``classify``: a webhook that answers 4xx (but 408/429) is given up at once (the
request itself is wrong: token, path), and only a person can fix that. :class:`NotifyCounters`
has the rates. Deliveries waiting for a retry live in memory; with an outbox
(:mod:`gridcall.hub.notify.outbox`, what ``gridcall hub run`` uses) a step whose deliveries were not
all sent or given up when the hub stopped or crashed is sent again at the next start.

On leaving ``async with``, deliveries under way get ``drain_timeout`` seconds to finish;
what is left then is counted in ``unsent_at_shutdown`` and logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

import msgspec

from gridcall.config.duty import NO_DUTY, DutyFile
from gridcall.config.notify import Channel, NotifyFile
from gridcall.hub.desk.arrival_reminders import ArrivalReminder
from gridcall.hub.desk.desk import Change, ReminderChange
from gridcall.hub.desk.lifecycle import AlertState, overdue_of
from gridcall.hub.notify.channels import CHANNELS, DeliveryError, Message, Verdict
from gridcall.hub.notify.channels.via_apprise import REASONS
from gridcall.wire import CALL_KINDS, RiskAlert
from gridcall.wire.backoff import Backoff
from gridcall.wire.cancelsafe import STOP_BOUND, stop_tasks
from gridcall.wire.clock import Clock, utc_text
from gridcall.wire.errors import InvariantError
from gridcall.wire.stats import Scalar, flatten

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


@dataclass
class NotifyCounters:
    queued: int = 0
    sent: int = 0
    failed_attempts: int = 0
    given_up: int = 0
    unsent_at_shutdown: int = 0
    without_channel: int = 0
    """Units asked to be notified that have no channel (MQTT only)."""
    to_person: int = 0
    """Deliveries to a person on duty (roster.yaml) instead of their unit's channels."""
    person_fallbacks: int = 0
    """Deliveries to a person given up, sent to the unit's channels instead."""
    sent_by_type: Counter[str] = field(default_factory=Counter)
    given_up_by_unit: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class Delivery:
    unit: str
    index: int
    """The channel's position in the unit's list in notify.yaml."""
    channel: Channel
    alert_id: str
    title: str
    text: str
    json: str
    person: str = ""
    """To a person's own contact (roster.yaml), on behalf of ``unit``."""

    @property
    def where(self) -> str:
        """The channel, as a person reading the log would find it in notify.yaml (or
        roster.yaml); never a secret (the webhook URL is shown without its query)."""
        what = CHANNELS[self.channel.type].target(self.channel)
        if self.person:
            return f"roster.yaml persons[{self.person}].contact ({what})"
        return f"units.{self.unit}[{self.index}] ({what})"

    @property
    def message(self) -> Message:
        return Message(self.title, self.text, self.json)


def render(alert: RiskAlert, note: str = "") -> tuple[str, str]:
    """A title and a plain-text body a grid worker can read on a phone."""
    title = (f"[{alert.tier}] {alert.matter_name} · {alert.state} · {alert.alert_id} "
             f"({alert.unit})")
    lines = [
        f"Alert {alert.alert_id}: {alert.matter_name} ({alert.matter}), tier {alert.tier}, "
        f"state {alert.state}",
        f"Responsible: {alert.unit} ({alert.unit_level}); departments: "
        f"{', '.join([alert.departments.lead, *alert.departments.co])}",
        (f"Sensor {alert.sensor} ({alert.sensor_kind}) in grid {alert.grid}: "
         f"{alert.anomaly_kind}, {alert.severity}, value {alert.value}")
        if alert.anomaly_kind not in CALL_KINDS else
        f"Called in ({alert.anomaly_kind}, via {alert.sensor}) in grid {alert.grid}",
        f"Respond by {utc_text(alert.deadlines.response)}; on site by "
        f"{utc_text(alert.deadlines.arrival)}; disposed of by {utc_text(alert.deadlines.disposal)}",
    ]
    if note:
        lines.append(f"Note: {note}")
    lines += plan_lines(alert)
    return title, "\n".join(lines)


def plan_lines(alert: RiskAlert) -> list[str]:
    """The alert's plan (一事一预案) as lines of the message: its summary, its steps with
    who does each (ticked ones marked), its resources and contacts."""
    plan = alert.plan
    if plan is None:
        return []
    done = {d.step for d in alert.plan_done}
    lines = [f"Plan: {plan.summary}" if plan.summary else "Plan:"]
    lines += [f"  {'[x]' if s.id in done else '[ ]'} {i}. {s.text} ({s.role}; {s.id})"
              for i, s in enumerate(plan.steps, 1)]
    if plan.resources:
        lines.append("Resources: " + "; ".join(
            r.name + (f" ({r.note})" if r.note else "") for r in plan.resources))
    if plan.contacts:
        lines.append("Contacts: " + "; ".join(
            " ".join(x for x in (c.name, c.phone, f"[{c.department}]" if c.department
                                 else "", c.note) if x) for c in plan.contacts))
    return lines


def send(delivery: Delivery, settings: NotifyFile, timeout: float) -> None:
    """One attempt through the delivery's channel, blocking; raises why it failed."""
    CHANNELS[delivery.channel.type].send(delivery.channel, settings, delivery.message,
                                         timeout)


def describe(exc: BaseException) -> str:
    """Why an attempt failed, for the log (never a secret)."""
    if isinstance(exc, DeliveryError):
        return str(exc)
    if isinstance(exc, KeyError):  # an environment variable named in notify.yaml is unset
        return str(exc.args[0]) if exc.args else repr(exc)
    return f"{type(exc).__name__}: {exc}"


class Notifier:
    """``async with Notifier(cfg.notify) as notifier: notifier.notify(alert, units)``."""

    def __init__(self, settings: NotifyFile, *, concurrency: int = 4,
                 drain_timeout: float = 10.0, sleep: Sleep = asyncio.sleep,
                 duty: DutyFile = NO_DUTY) -> None:
        self.settings = settings
        self.duty = duty
        """Persons and their contacts (roster.yaml)."""
        self.counters = NotifyCounters()
        self.drain_timeout = drain_timeout
        self._sleep = sleep
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._open = False

    async def __aenter__(self) -> Self:
        if self._open:
            raise InvariantError("Notifier is already open")
        self._open = True
        REASONS.listen()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._open = False
        try:
            await self.drain(self.drain_timeout)
        finally:
            REASONS.unlisten()

    def stats(self) -> dict[str, Scalar]:
        """Deliveries queued, sent, retried and given up (``sent_by_type.webhook``,
        ``given_up_by_unit.<unit>``...), flat (:mod:`gridcall.wire.stats`)."""
        return flatten(self.counters)

    @property
    def pending(self) -> int:
        """Deliveries queued, under way or waiting for a retry."""
        return len(self._tasks)

    def channels_of(self, unit: str) -> tuple[Channel, ...]:
        return self.settings.units.get(unit, ())

    def notify(self, alert: RiskAlert, units: Iterable[str], *, note: str = "",
               on_done: Callable[[], Awaitable[None]] | None = None,
               person: str = "", title: str = "", text: str = "", body: str = "",
               persons: Mapping[str, str] | None = None) -> int:
        """Queue the alert for every channel of each unit (each unit once); returns how
        many deliveries were queued. Never raises for a delivery problem. ``on_done`` is
        awaited once every one of them was sent or given up (at once if there are none);
        not if the notifier stopped first: those deliveries are not done.

        ``person`` (roster.yaml) is reached *instead of* the first unit's channels when
        they have a contact; if that delivery is given up, the unit's channels get it
        after all. ``title`` replaces the rendered title (a reminder says so); ``text``
        and ``body`` (JSON) replace the rendered text and the alert's JSON (an incident's
        one message, :mod:`gridcall.hub.notify.incident`). ``persons`` names the person
        of further units (a department whistled, the district supervising): each is
        reached like ``person`` for its own unit."""
        if not self._open:
            raise InvariantError("Notifier used outside 'async with'")
        rendered, rendered_text = render(alert, note)
        title = title or rendered
        text = text or rendered_text
        body = body or msgspec.json.encode(alert).decode()
        queued = 0
        tasks: list[asyncio.Task[Any]] = []
        whom = dict(persons or {})
        for i, unit in enumerate(dict.fromkeys(units)):
            name = person if i == 0 and person else whom.get(unit, "")
            who = self.duty.person(name) if name else None
            fallback = [Delivery(unit, index, chan, alert.alert_id, title, text, body)
                        for index, chan in enumerate(self.channels_of(unit))]
            work: list[tuple[str, Coroutine[Any, Any, object]]]
            if who is not None and who.contact is not None:
                own = Delivery(unit, 0, who.contact, alert.alert_id, title, text, body,
                               person=who.id)
                work = [(who.id, self._deliver_or_fall_back(own, fallback))]
                self.counters.to_person += 1
            elif fallback:
                work = [(f"{unit}-{d.index}", self._deliver(d)) for d in fallback]
            else:
                self.counters.without_channel += 1
                continue
            for name, coro in work:
                task = asyncio.create_task(coro, name=f"notify-{alert.alert_id}-{name}")
                self._track(task)
                tasks.append(task)
                queued += 1
        self.counters.queued += queued
        if on_done is not None:
            self._track(asyncio.create_task(self._when_done(tasks, on_done),
                                            name=f"notify-{alert.alert_id}-done"))
        return queued

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _when_done(tasks: list[asyncio.Task[Any]],
                         on_done: Callable[[], Awaitable[None]]) -> None:
        await asyncio.gather(*tasks)  # a cancelled delivery cancels this too: not done
        try:
            await on_done()
        except Exception:  # the mark is lost: the step is notified again at next start
            log.exception("notify: could not record the notifications as done")

    async def _deliver_or_fall_back(self, delivery: Delivery, fallback: list[Delivery]
                                    ) -> None:
        """To the person; if given up, to their unit's channels (counted)."""
        if await self._deliver(delivery):
            return
        self.counters.person_fallbacks += 1
        if not fallback:
            self.counters.without_channel += 1
            return
        self.counters.queued += len(fallback)
        log.warning("notify: alert %s goes to the channels of %s instead",
                    delivery.alert_id, delivery.unit)
        await asyncio.gather(*(self._deliver(d) for d in fallback))

    async def _deliver(self, delivery: Delivery) -> bool:
        """Sent (True) or given up (False)."""
        retry = self.settings.retry
        timeout = retry.timeout.total_seconds()
        channel = CHANNELS[delivery.channel.type]
        delays = Backoff(retry.backoff.total_seconds(), retry.max_backoff.total_seconds(),
                         jitter=0.2).delays()
        for attempt in range(1, retry.attempts + 1):
            try:
                async with self._slots:
                    await asyncio.to_thread(send, delivery, self.settings, timeout)
            except Exception as exc:  # a channel's library raises a wide range; none may
                reason = describe(exc)  # stop the hub
                verdict = channel.classify(exc)
            else:
                self.counters.sent += 1
                self.counters.sent_by_type[delivery.channel.type] += 1
                return True
            self.counters.failed_attempts += 1
            if attempt == retry.attempts or verdict is Verdict.GIVE_UP:
                self.counters.given_up += 1
                self.counters.given_up_by_unit[delivery.unit] += 1
                log.error("notify: gave up on alert %s to %s after %d attempts: %s",
                          delivery.alert_id, delivery.where, attempt, reason)
                return False
            wait = delays.jittered(next(delays))
            log.warning("notify: alert %s to %s failed (attempt %d of %d): %s; retrying in "
                        "%.1fs", delivery.alert_id, delivery.where, attempt, retry.attempts,
                        reason, wait)
            await self._sleep(wait)
        return False  # attempts >= 1: the loop returned

    async def drain(self, within: float) -> int:
        """Wait up to ``within`` s for pending deliveries; cancel and count the rest."""
        tasks = set(self._tasks)
        if not tasks:
            return 0
        _, left = await asyncio.wait(tasks, timeout=within)
        await stop_tasks(left, STOP_BOUND, what="notify", raise_errors=True)
        if left:
            self.counters.unsent_at_shutdown += len(left)
            log.error("notify: %d deliveries not done within %.1fs of stopping; dropped",
                      len(left), within)
        return len(left)


NOTIFIED_ACTIONS = frozenset({"open", "escalate", "reopen", "dispatch", "supervise"})
"""The steps people must hear of: a new call, a call passed up (both levels hear of it),
a call back, departments sent (each department whistled hears of it, through its person
on duty), a department's missed arrival supervised (督办: the district command centre and
the department). Evidence and the units' own answers are not pushed, but
for an overdue step (:func:`gridcall.hub.desk.lifecycle.overdue_of`): a deadline passed
where the alert can go no higher pages the unit's duty leader."""


class Outbox(Protocol):
    async def done(self, alert_id: str, n: int, at: int) -> None: ...


def desk_hook(notifier: Notifier, outbox: Outbox | None = None,
              clock: Clock | None = None) -> Callable[[Change], Awaitable[None]]:
    """A :meth:`gridcall.hub.desk.desk.Desk.add_hook` hook that queues the notifications of a step
        and,
    with an ``outbox`` (:class:`gridcall.hub.notify.outbox.NotifyOutbox`), records the step as
    notified once its deliveries are done. Steps of an alert in an incident are left to
    :func:`gridcall.hub.notify.incident.incident_hook` (one message per incident)."""

    async def hook(change: Change) -> None:
        t = change.transition
        if t.whistled or t.action == "supervise":
            departments(change)
            return
        if t.action == "request_close":  # closure control: the approving unit must know
            a = change.alert.alert
            notifier.notify(a, change.units, note=" · ".join(x for x in (t.reason, t.note)
                                                              if x),
                            title=f"[{a.tier}] CLOSE AWAITS APPROVAL ({t.request}) "
                                  f"{a.matter_name} · {a.alert_id} (asked by {t.actor})")
            return
        overdue = overdue_of(t)
        if not overdue and (t.action not in NOTIFIED_ACTIONS or change.incident is not None):
            # an incident's alerts: one message per incident (notify/incident.py); an
            # overdue page goes out whatever the alert belongs to
            return
        on_done = None
        if outbox is not None:
            async def on_done() -> None:
                await outbox.done(t.alert_id, t.n, clock() if clock else t.at)
        a = change.alert.alert
        # the lead department hears of it too when notify.yaml gives it channels (the
        # maintenance department, of the device faults it leads)
        units = (*change.units, *((a.departments.lead,)
                                  if notifier.channels_of(a.departments.lead) else ()))
        notifier.notify(a, units,
                        note=" · ".join(x for x in (t.reason, t.note) if x), on_done=on_done,
                        person=t.on_duty,
                        # overdue where it can go no higher: a page to the duty leader
                        title=f"[{a.tier}] OVERDUE ({overdue}) {a.matter_name} · "
                              f"{a.alert_id} ({a.unit})" if overdue else "")

    def departments(change: Change) -> None:
        """A dispatch that called departments: each called department through its person
        on duty (else its channels), beside the units as any dispatch (left to the
        incident's one message when the alert is in one). A supervision (督办): the
        district command centre's person on duty, the department, the unit holding it."""
        t = change.transition
        a = change.alert.alert
        on_done = None
        if outbox is not None:
            async def on_done() -> None:
                await outbox.done(t.alert_id, t.n, clock() if clock else t.at)
        if t.action == "supervise":
            call = next((c for c in change.alert.dept_calls if c.department == t.department), None)
            district = a.unit_path[0] if a.unit_path else t.unit
            notifier.notify(a, (district, t.department, *change.units), on_done=on_done,
                            person=t.on_duty,
                            persons={t.department: call.on_duty if call else ""},
                            title=f"[{a.tier}] 督办 SUPERVISION {t.department} not on site · "
                                  f"{a.matter_name} · {a.alert_id} ({a.unit})",
                            note=" · ".join(x for x in (t.reason, t.note) if x))
            return
        called = tuple(w.department for w in t.whistled)
        arrive = "; ".join(f"{w.department} on site by {utc_text(w.arrive_by)}"
                           for w in t.whistled)
        units = called if change.incident is not None else (*change.units, *called)
        notifier.notify(a, units, on_done=None if change.incident is not None else on_done,
                        persons={w.department: w.on_duty for w in t.whistled},
                        note=" · ".join(x for x in (t.reason, t.note, arrive) if x))
    return hook


def reminder_hook(notifier: Notifier) -> Callable[[ReminderChange], Awaitable[None]]:
    """A :meth:`gridcall.hub.desk.desk.Desk.add_reminder_hook` hook: the reminder goes to
    its person's contact, else (and if that delivery is given up) to the channels of the
    person's own unit (a duty leader's is often the unit above), or of the unit holding
    the alert when theirs has none or nobody was named. Not replayed after a crash: the
    desk logged it as sent."""

    async def hook(change: ReminderChange) -> None:
        r = change.reminder
        alert = change.alert.alert
        title, _ = render(alert)
        unit = r.person_unit if notifier.channels_of(r.person_unit) else r.unit
        notifier.notify(alert, (unit,), person=r.person,
                        title=f"Reminder {r.index + 1} · {title}",
                        note=f"reminder {r.index + 1}: not acknowledged yet; respond by "
                             f"{utc_text(r.respond_by)} or it escalates")
    return hook


def arrival_reminder_hook(notifier: Notifier
                          ) -> Callable[[ArrivalReminder, AlertState], Awaitable[None]]:
    """A :meth:`gridcall.hub.desk.arrival_reminders.ArrivalReminders.add_hook` hook: the
    reminder before a department's promised arrival goes to its person on duty's
    contact, else (and if that delivery is given up) to the department's channels in
    notify.yaml. Not replayed after a crash: the desk logged it as sent."""

    async def hook(r: ArrivalReminder, state: AlertState) -> None:
        title, _ = render(state.alert)
        where = "reported in, not on site yet" if r.stage == "reported_in" \
            else "not reported in yet"
        notifier.notify(state.alert, (r.department,), person=r.person,
                        title=f"Reminder · {r.department} on site by "
                              f"{utc_text(r.arrive_by)} · {title}",
                        note=f"吹哨报到: {r.department} promised to be on site by "
                             f"{utc_text(r.arrive_by)} ({where}); missed, the district "
                             "command centre supervises it (督办)")
    return hook
