"""Reports from people (issue 18's calls from people), as their own record: pure, no I/O.

A report is what a reporter filed (who, which matter, where, what they saw, photos) and
which alert it went to. Its steps (:class:`ReportStep`) are kept in the report ledger
(:mod:`gridcall.hub.desk.report_ledger`), append-only:

- ``file`` (n = 1): the report as filed, written *before* the desk takes it, so a crash
  between the two is made good at start-up (the call is taken again: the desk's ledger
  knows it by ``("reports", seq)`` and writes nothing twice);
- ``link`` (n = 2): the alert the desk put it in, and how (``open``: it opened the
  alert; ``evidence``: it joined the open alert of the same matter at the same place;
  ``reopen``: it reopened a recently closed one).

What becomes of the alert, and the reporter's rating of the handling, are steps of the
alert ledger (``rate``, :mod:`gridcall.hub.desk.lifecycle`): the indicators read them from
there like every other step. :class:`ReportBook` folds the steps into :class:`Report`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

ReportAction = Literal["file", "link"]
Joined = Literal["open", "evidence", "reopen"]
SOURCE = "reports"
"""The desk's source id for reports: the ledger knows report ``seq`` as
``("reports", seq)``."""
PUBLIC = "public"
"""The reporter of a report filed through the public intake (no unit)."""


class NoSuchReport(LookupError):
    def __init__(self, report_id: str) -> None:
        super().__init__(f"no report {report_id!r}")
        self.report_id = report_id


@dataclass(frozen=True, slots=True)
class Filed:
    """A report as filed."""

    seq: int
    unit: str
    """The reporter's unit (their token's), or :data:`PUBLIC`."""
    person: str
    """The person who filed it (a person's token), else ""."""
    matter: str
    """The matter the reporter chose (a catalog code, or ``UNCLASSIFIED``)."""
    taken_as: str
    """The matter the desk took it as: the chosen one, or ``UNCLASSIFIED`` for the
    public intake (which lands in triage)."""
    grid: str
    point: tuple[float, float] | None
    description: str
    photos: tuple[str, ...]
    client_ref: str = ""
    """The reporter's own id for it: filing the same ``client_ref`` again is the same
    report (a retried request files nothing twice)."""
    follow_hash: str = ""
    """For the public intake: the SHA-256 of the key that lets the resident follow it."""


@dataclass(frozen=True, slots=True)
class ReportStep:
    report_id: str
    n: int
    action: ReportAction
    at: int
    filed: Filed | None = None
    """On ``file``."""
    alert_id: str = ""
    """On ``link``: the alert it went to."""
    joined: Joined | None = None
    """On ``link``: how."""


@dataclass(frozen=True, slots=True)
class Report:
    report_id: str
    filed_at: int
    filed: Filed
    alert_id: str = ""
    joined: Joined | None = None
    n: int = 1

    @property
    def linked(self) -> bool:
        return bool(self.alert_id)


REPEAT_WITHIN_NS = 60 * 10**9
"""A report without a ``client_ref`` filed again within this is a repeat (``repeat_of``)."""


def report_id(seq: int) -> str:
    return f"R{seq:06d}"


class ReportBook:
    """Every report, folded from its steps (in the order written)."""

    def __init__(self) -> None:
        self._reports: dict[str, Report] = {}
        self._refs: dict[tuple[str, str, str], str] = {}
        self.last_seq = 0

    def absorb(self, step: ReportStep) -> Report:
        """The report after ``step``; ValueError if it does not follow."""
        current = self._reports.get(step.report_id)
        if step.action == "file":
            if current is not None or step.filed is None or step.n != 1:
                raise ValueError(f"{step.report_id}: a file step must come first, once")
            report = Report(step.report_id, step.at, step.filed)
            f = step.filed
            if f.client_ref:
                self._refs[(f.unit, f.person, f.client_ref)] = step.report_id
            self.last_seq = max(self.last_seq, f.seq)
        else:
            if current is None or step.n != current.n + 1 or current.linked:
                raise ValueError(f"{step.report_id}: step {step.n} ({step.action}) does not "
                                 "follow")
            report = replace(current, alert_id=step.alert_id, joined=step.joined, n=step.n)
        self._reports[step.report_id] = report
        return report

    def get(self, report_id: str) -> Report:
        try:
            return self._reports[report_id]
        except KeyError:
            raise NoSuchReport(report_id) from None

    def by_ref(self, unit: str, person: str, client_ref: str) -> Report | None:
        """The report this reporter filed under ``client_ref`` before, if any."""
        found = self._refs.get((unit, person, client_ref))
        return self._reports[found] if found is not None else None

    def repeat_of(self, filed: Filed, at: int, within: int = REPEAT_WITHIN_NS
                  ) -> Report | None:
        """A report sent without a ``client_ref`` that repeats one filed at most
        ``within`` before ``at`` by the same reporter (unit and person) with the same
        matter, place, description and photos: a double click or a retry after a lost
        answer, answered with the first. Not for the public intake (each report there
        gets its own follow key, and its route is rate-limited)."""
        for r in reversed(self._reports.values()):  # in the order filed
            if r.filed_at < at - within:
                return None
            f = r.filed
            if (f.unit, f.person, f.matter, f.grid, f.point, f.description, f.photos) == (
                    filed.unit, filed.person, filed.matter, filed.grid, filed.point,
                    filed.description, filed.photos):
                return r
        return None

    def all(self) -> list[Report]:
        return list(self._reports.values())

    def unlinked(self) -> list[Report]:
        return [r for r in self._reports.values() if not r.linked]


__all__ = ["PUBLIC", "SOURCE", "Filed", "Joined", "NoSuchReport", "Report", "ReportAction",
           "ReportBook", "ReportStep", "report_id"]
