"""Reports in service: filing a report through the desk, following it, rating it.

:class:`Reporting` numbers reports, writes each to the report ledger
(:mod:`gridcall.hub.desk.report_ledger`) and hands it to the desk as a
:class:`~gridcall.hub.desk.intake.Call` (source ``reports``, its number as ``seq``): the
desk opens an alert, joins the open one of the same matter at the same place, or reopens
a recent one, exactly as for a sensor. The link to the alert is a second report step.

Order, so a crash loses nothing and writes nothing twice: the report's ``file`` step first,
then the desk's step (idempotent by ``("reports", seq)``), then the ``link`` step. At
:meth:`start`, a report filed but not linked is taken again (the desk answers with the
alert it went to if it had it) and linked. A retried request with the same
``client_ref`` is the same report.

Ratings are steps of the alert ledger (``rate``), one per report, once its alert is
closed (resolved or a false alarm: the reporter may disagree with either).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import weakref
from dataclasses import dataclass

from gridcall.hub.desk.desk import BadAction, Desk
from gridcall.hub.desk.intake import Call
from gridcall.hub.desk.lifecycle import CLOSED, AlertState, IllegalTransition, Rating, Transition
from gridcall.hub.desk.report_ledger import ReportLedger
from gridcall.hub.desk.reports import (
    PUBLIC,
    SOURCE,
    Filed,
    Joined,
    NoSuchReport,
    Report,
    ReportBook,
    ReportStep,
    report_id,
)

UNCLASSIFIED = "UNCLASSIFIED"


class AlreadyRated(ValueError):
    """A report is rated once."""


@dataclass(frozen=True, slots=True)
class ReportView:
    """A report as its reporter follows it."""

    report: Report
    alert: AlertState | None
    rating: Transition | None
    """The ``rate`` step of this report, if rated."""

    @property
    def rateable(self) -> bool:
        return (self.alert is not None and self.alert.state in CLOSED
                and self.rating is None)


def follow_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


_OF_DESK: weakref.WeakKeyDictionary[Desk, Reporting] = weakref.WeakKeyDictionary()


class Reporting:
    """Reports over ``desk`` (its store holds the report ledger). ``await start()`` once
    (the API does it on first use). One per desk (:meth:`of`): it numbers the reports."""

    @classmethod
    def of(cls, desk: Desk) -> Reporting:
        """The desk's one :class:`Reporting` (the API's and the simulator's are the same,
        so two writers never number reports side by side)."""
        found = _OF_DESK.get(desk)
        if found is None:
            found = _OF_DESK[desk] = cls(desk)
        return found

    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        self.ledger = ReportLedger(desk.ledger.store)
        self.book = ReportBook()
        self._lock = asyncio.Lock()
        self.started = False

    async def start(self, now: int) -> None:
        """Fold the report ledger; take again, and link, what a crash left unlinked."""
        if self.started:
            return
        async with self._lock:
            if self.started:
                return
            for s in await self.ledger.all():
                self.book.absorb(s)
            for report in self.book.unlinked():
                await self._take(report, now)
            self.started = True

    def _next_seq(self) -> int:
        """After every report of the book and every call ``reports`` made to the desk
        (a report written to the desk's ledger whose file step a crash lost cannot be:
        the file step comes first; this is belt and braces)."""
        return max(self.book.last_seq, self.desk.last_seq(SOURCE)) + 1

    async def file(self, *, unit: str, person: str, matter: str, grid: str,
                   point: tuple[float, float] | None, description: str,
                   photos: tuple[str, ...], now: int, client_ref: str = "",
                   follow_key: str = "") -> tuple[Report, bool]:
        """File a report (its grid already located, its photos stored); the report and
        whether it is new (False: the same ``client_ref`` was filed before, or, without
        one, the same report by the same reporter within a minute:
        :meth:`ReportBook.repeat_of`). The public
        intake (``unit`` :data:`PUBLIC`) lands in triage: taken as ``UNCLASSIFIED``.
        BadAction from the desk (an unknown matter) writes nothing."""
        await self.start(now)
        if self.desk.policy.matter(matter) is None:
            raise BadAction(f"matter {matter!r} is not in the catalog (matters.yaml); "
                            f"{UNCLASSIFIED} sends it to triage")
        async with self._lock:
            if client_ref and (old := self.book.by_ref(unit, person, client_ref)):
                return old, False
            seq = self._next_seq()
            filed = Filed(seq=seq, unit=unit, person=person, matter=matter,
                          taken_as=UNCLASSIFIED if unit == PUBLIC else matter, grid=grid,
                          point=point, description=description, photos=photos,
                          client_ref=client_ref,
                          follow_hash=follow_hash(follow_key) if follow_key else "")
            if not client_ref and unit != PUBLIC \
                    and (same := self.book.repeat_of(filed, now)) is not None:
                return same, False  # the same report again within a minute: a retry
            step = ReportStep(report_id(seq), 1, "file", at=now, filed=filed)
            await self.ledger.append(step)
            report = self.book.absorb(step)
            return await self._take(report, now), True

    async def _take(self, report: Report, now: int) -> Report:
        """Hand the report to the desk and link it to the alert it went to."""
        f = report.filed
        public = f.unit == PUBLIC
        call = Call(source=SOURCE, seq=f.seq, kind="report", matter=f.taken_as, grid=f.grid,
                    note=(f"report {report.report_id}: {f.description}"),
                    at=report.filed_at, point=f.point, actor="" if public else f.unit,
                    person=f.person, photos=f.photos)
        out = await self.desk.call(call, now)
        if out.alert is None:  # a call always lands in an alert; defensive
            raise RuntimeError(f"{report.report_id}: the desk took it into no alert")
        joined: Joined = "open"
        for t in out.steps:
            if t.evidence == (SOURCE, f.seq) and t.action in ("open", "evidence", "reopen"):
                joined = t.action
        if out.duplicate:
            joined = await self._how(out.alert.alert_id, f.seq)
        step = ReportStep(report.report_id, report.n + 1, "link", at=now,
                          alert_id=out.alert.alert_id, joined=joined)
        await self.ledger.append(step)
        return self.book.absorb(step)

    async def _how(self, alert_id: str, seq: int) -> Joined:
        for t in await self.desk.history(alert_id):
            if t.evidence == (SOURCE, seq) and t.action in ("open", "evidence", "reopen"):
                return t.action
        return "evidence"

    async def view(self, rid: str, now: int) -> ReportView:
        await self.start(now)
        report = self.book.get(rid)
        if not report.linked:
            return ReportView(report, None, None)
        state = await self.desk.find(report.alert_id)
        return ReportView(report, state, await self._rating(report))

    async def _rating(self, report: Report) -> Transition | None:
        mine = f"report {report.report_id}"
        for t in await self.desk.history(report.alert_id):
            if t.action == "rate" and t.reason == mine:
                return t
        return None

    async def rate(self, rid: str, rating: Rating, *, now: int, note: str = "") -> ReportView:
        """The reporter's rating, once, after the alert closed: IllegalTransition while it
        is open, AlreadyRated the second time."""
        await self.start(now)
        async with self._lock:
            view = await self.view(rid, now)
            if view.rating is not None:
                raise AlreadyRated(f"{rid} was rated already ({view.rating.rating})")
            if view.alert is None:
                raise NoSuchReport(rid)
            if view.alert.state not in CLOSED:
                raise IllegalTransition(view.alert.alert_id, view.alert.state, "rate",
                                        f"{rid} can be rated once its alert is resolved")
            f = view.report.filed
            await self.desk.rate(view.alert.alert_id, report=rid, rating=rating, now=now,
                                 actor="hub" if f.unit == PUBLIC else f.unit,
                                 person=f.person, note=note)
            return await self.view(rid, now)

    def follows(self, rid: str, key: str) -> bool:
        """Whether ``key`` is the follow key of public report ``rid``."""
        try:
            report = self.book.get(rid)
        except NoSuchReport:
            return False
        want = report.filed.follow_hash
        return bool(want) and hmac.compare_digest(want, follow_hash(key))

    def mine(self, unit: str, person: str) -> list[Report]:
        """The reports a unit's token (``person`` "") or a person filed, oldest first."""
        return [r for r in self.book.all()
                if r.filed.unit == unit and (not person or r.filed.person == person)]


__all__ = ["AlreadyRated", "ReportView", "Reporting", "follow_hash"]
