"""Push alerts to the people of a unit through the channels ``notify.yaml`` gives it.

:class:`Notifier` is the hub's notification runner: ``notify(alert, units)`` returns at
once and queues one delivery per channel of each unit; deliveries run in the background
through apprise (a maintained library that speaks webhook/JSON, SMTP and ~100 other
services), each attempt in a worker thread so the event loop never blocks on a slow
SMTP server.

Failures never reach the caller. A failed attempt is logged (with apprise's reason) and
retried after a backoff that doubles up to ``retry.max_backoff``; after
``retry.attempts`` it is given up, logged as an error and counted. A webhook that answers
4xx (but 408/429) is given up at once: the request itself is wrong (token, path), and
only a person can fix that. :class:`NotifyCounters`
has the rates. Deliveries waiting for a retry live in memory; with an outbox
(:mod:`gridcall.hub.notify.outbox`, what ``gridcall hub run`` uses) a step whose deliveries were not
all sent or given up when the hub stopped or crashed is sent again at the next start.

On leaving ``async with``, deliveries under way get ``drain_timeout`` seconds to finish;
what is left then is counted in ``unsent_at_shutdown`` and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, Self
from urllib.parse import parse_qsl, urlsplit

import apprise
import msgspec

from gridcall.config.notify import (
    Channel,
    EmailChannel,
    NotifyFile,
    WebhookChannel,
    secret,
)
from gridcall.hub.desk.desk import Change
from gridcall.wire import RiskAlert

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

    @property
    def where(self) -> str:
        """The channel, as a person reading the log would find it in notify.yaml; never
        a secret (the webhook URL is shown without its query)."""
        chan = self.channel
        if isinstance(chan, WebhookChannel):
            parts = urlsplit(chan.url)
            what = f"webhook {parts.scheme}://{parts.netloc}{parts.path}"
        elif isinstance(chan, EmailChannel):
            what = f"email to {', '.join(chan.to)}"
        else:
            what = f"apprise URL from ${chan.url_env}"
        return f"units.{self.unit}[{self.index}] ({what})"


def _time(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render(alert: RiskAlert, note: str = "") -> tuple[str, str]:
    """A title and a plain-text body a grid worker can read on a phone."""
    title = (f"[{alert.tier}] {alert.matter_name} · {alert.state} · {alert.alert_id} "
             f"({alert.unit})")
    lines = [
        f"Alert {alert.alert_id}: {alert.matter_name} ({alert.matter}), tier {alert.tier}, "
        f"state {alert.state}",
        f"Responsible: {alert.unit} ({alert.unit_level}); departments: "
        f"{', '.join([alert.departments.lead, *alert.departments.co])}",
        f"Sensor {alert.sensor} ({alert.sensor_kind}) in grid {alert.grid}: "
        f"{alert.anomaly_kind}, {alert.severity}, value {alert.value}",
        f"Respond by {_time(alert.deadlines.response)}; on site by "
        f"{_time(alert.deadlines.arrival)}; disposed of by {_time(alert.deadlines.disposal)}",
    ]
    if note:
        lines.append(f"Note: {note}")
    return title, "\n".join(lines)


class _LastError(logging.Handler):
    """Remembers, per thread, the last warning apprise logged: apprise reports why a send
    failed only in its log, and each attempt runs in its own worker thread."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.local = threading.local()
        self.users = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.local.message = record.getMessage()

    def take(self) -> str | None:
        message: str | None = getattr(self.local, "message", None)
        self.local.message = None
        return message


_last_error = _LastError()
"""Sits on apprise's logger only while a notifier is open (no import-time change to a
library's logging); ``users`` counts the open notifiers."""


def apprise_target(delivery: Delivery, settings: NotifyFile, timeout: float) -> dict[str, Any]:
    """apprise's URL dictionary for one channel, secrets read from the environment now
    (KeyError naming the variable if unset). The dictionary form keeps passwords and
    tokens out of URL strings, where one unquoted '@' or '/' would break the URL."""
    chan = delivery.channel
    common: dict[str, Any] = {"cto": timeout, "rto": timeout}
    if isinstance(chan, WebhookChannel):
        parts = urlsplit(chan.url)
        headers = dict(chan.headers)
        token = secret(chan.token_env)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return {**common, "schema": "jsons" if parts.scheme == "https" else "json",
                "host": parts.hostname, "port": parts.port, "fullpath": parts.path or "/",
                "params": dict(parse_qsl(parts.query)), "headers": headers,
                "user": None, "password": None}
    if isinstance(chan, EmailChannel):
        smtp = settings.smtp
        if smtp is None:  # refused by NotifyFile's validation; kept for the type checker
            raise ValueError("an e-mail channel needs the smtp section")
        user, password = smtp.credentials()
        return {**common, "schema": "mailto" if smtp.security == "insecure" else "mailtos",
                "host": smtp.host, "port": smtp.port, "secure_mode": smtp.security,
                "from_addr": smtp.sender, "targets": list(chan.to), "user": user,
                "password": password}
    url = secret(chan.url_env)
    if not url:
        raise ValueError(f"environment variable {chan.url_env} is empty")
    target = apprise.Apprise.instantiate(url)
    if target is None:
        raise ValueError(f"${chan.url_env} is not an apprise URL apprise can use")
    return {"instance": target}


def send(delivery: Delivery, settings: NotifyFile, timeout: float) -> str | None:
    """One attempt, blocking; None if delivered, else why not (never raises)."""
    _last_error.take()
    try:
        target = apprise_target(delivery, settings, timeout)
        plugin = target.get("instance") or apprise.Apprise.instantiate(
            target, suppress_exceptions=False)
        if plugin is None:
            return "apprise could not set up the channel"
        body = delivery.json if isinstance(delivery.channel, WebhookChannel) else delivery.text
        if plugin.notify(body=body, title=delivery.title):
            return None
        return _last_error.take() or "apprise reported a failure without a reason"
    except KeyError as exc:  # an environment variable named in notify.yaml is unset
        return str(exc.args[0]) if exc.args else repr(exc)
    except Exception as exc:  # apprise raises a wide range; none may stop the hub
        return f"{type(exc).__name__}: {exc}"


_HTTP_ERROR = re.compile(r"error=(\d{3})\b")


def refused_for_good(reason: str) -> bool:
    """True when the receiver refused the request itself (HTTP 4xx other than 408 and
    429, e.g. 401 for a wrong token, 404 for a wrong path): sending it again cannot help
    until someone fixes notify.yaml or the receiver, so it is given up at once."""
    match = _HTTP_ERROR.search(reason)
    return match is not None and 400 <= int(match[1]) < 500 and int(match[1]) not in (408, 429)


class Notifier:
    """``async with Notifier(cfg.notify) as notifier: notifier.notify(alert, units)``."""

    def __init__(self, settings: NotifyFile, *, concurrency: int = 4,
                 drain_timeout: float = 10.0, sleep: Sleep = asyncio.sleep) -> None:
        self.settings = settings
        self.counters = NotifyCounters()
        self.drain_timeout = drain_timeout
        self._sleep = sleep
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._open = False

    async def __aenter__(self) -> Self:
        if self._open:
            raise RuntimeError("Notifier is already open")
        self._open = True
        _last_error.users += 1
        logging.getLogger("apprise").addHandler(_last_error)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._open = False
        try:
            await self.drain(self.drain_timeout)
        finally:
            _last_error.users -= 1
            if _last_error.users == 0:
                logging.getLogger("apprise").removeHandler(_last_error)

    @property
    def pending(self) -> int:
        """Deliveries queued, under way or waiting for a retry."""
        return len(self._tasks)

    def channels_of(self, unit: str) -> tuple[Channel, ...]:
        return self.settings.units.get(unit, ())

    def notify(self, alert: RiskAlert, units: Iterable[str], *, note: str = "",
               on_done: Callable[[], Awaitable[None]] | None = None) -> int:
        """Queue the alert for every channel of each unit (each unit once); returns how
        many deliveries were queued. Never raises for a delivery problem. ``on_done`` is
        awaited once every one of them was sent or given up (at once if there are none);
        not if the notifier stopped first: those deliveries are not done."""
        if not self._open:
            raise RuntimeError("Notifier used outside 'async with'")
        title, text = render(alert, note)
        body = msgspec.json.encode(alert).decode()
        queued = 0
        tasks: list[asyncio.Task[None]] = []
        for unit in dict.fromkeys(units):
            chans = self.channels_of(unit)
            if not chans:
                self.counters.without_channel += 1
                continue
            for index, chan in enumerate(chans):
                delivery = Delivery(unit, index, chan, alert.alert_id, title, text, body)
                task = asyncio.create_task(self._deliver(delivery),
                                           name=f"notify-{alert.alert_id}-{unit}-{index}")
                self._track(task)
                tasks.append(task)
                queued += 1
        self.counters.queued += queued
        if on_done is not None:
            self._track(asyncio.create_task(self._when_done(tasks, on_done),
                                            name=f"notify-{alert.alert_id}-done"))
        return queued

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _when_done(tasks: list[asyncio.Task[None]],
                         on_done: Callable[[], Awaitable[None]]) -> None:
        await asyncio.gather(*tasks)  # a cancelled delivery cancels this too: not done
        try:
            await on_done()
        except Exception:  # the mark is lost: the step is notified again at next start
            log.exception("notify: could not record the notifications as done")

    async def _deliver(self, delivery: Delivery) -> None:
        retry = self.settings.retry
        timeout = retry.timeout.total_seconds()
        backoff = retry.backoff.total_seconds()
        for attempt in range(1, retry.attempts + 1):
            async with self._slots:
                reason = await asyncio.to_thread(send, delivery, self.settings, timeout)
            if reason is None:
                self.counters.sent += 1
                self.counters.sent_by_type[delivery.channel.type] += 1
                return
            self.counters.failed_attempts += 1
            if attempt == retry.attempts or refused_for_good(reason):
                self.counters.given_up += 1
                self.counters.given_up_by_unit[delivery.unit] += 1
                log.error("notify: gave up on alert %s to %s after %d attempts: %s",
                          delivery.alert_id, delivery.where, attempt, reason)
                return
            wait = min(backoff, retry.max_backoff.total_seconds()) * random.uniform(0.8, 1.2)
            log.warning("notify: alert %s to %s failed (attempt %d of %d): %s; retrying in "
                        "%.1fs", delivery.alert_id, delivery.where, attempt, retry.attempts,
                        reason, wait)
            await self._sleep(wait)
            backoff *= 2

    async def drain(self, within: float) -> int:
        """Wait up to ``within`` s for pending deliveries; cancel and count the rest."""
        tasks = set(self._tasks)
        if not tasks:
            return 0
        _, left = await asyncio.wait(tasks, timeout=within)
        for task in left:
            task.cancel()
        for task in left:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if left:
            self.counters.unsent_at_shutdown += len(left)
            log.error("notify: %d deliveries not done within %.1fs of stopping; dropped",
                      len(left), within)
        return len(left)


NOTIFIED_ACTIONS = frozenset({"open", "escalate", "reopen", "dispatch"})
"""The steps people must hear of: a new call, a call passed up (both levels hear of it),
a call back, departments sent. Evidence and the units' own answers are not pushed."""


class Outbox(Protocol):
    async def done(self, alert_id: str, n: int, at: int) -> None: ...


def desk_hook(notifier: Notifier, outbox: Outbox | None = None,
              clock: Callable[[], int] | None = None) -> Callable[[Change], Awaitable[None]]:
    """A :meth:`gridcall.hub.desk.desk.Desk.add_hook` hook that queues the notifications of a step
        and,
    with an ``outbox`` (:class:`gridcall.hub.notify.outbox.NotifyOutbox`), records the step as
    notified once its deliveries are done."""

    async def hook(change: Change) -> None:
        t = change.transition
        if t.action not in NOTIFIED_ACTIONS:
            return
        on_done = None
        if outbox is not None:
            async def on_done() -> None:
                await outbox.done(t.alert_id, t.n, clock() if clock else t.at)
        notifier.notify(change.alert.alert, change.units,
                        note=" · ".join(x for x in (t.reason, t.note) if x), on_done=on_done)
    return hook
